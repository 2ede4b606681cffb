"""The dialect-neutral shapes that codecs translate to and from.

Only cross-dialect routes build these: the client's body is parsed into a `ChatRequest`, the
provider's codec encodes that, and the answer comes back as a `ChatResponse` or as a sequence
of `StreamEvent`s that the client's codec renders. Same-dialect routes forward bytes instead.

Stream event contract (every decoder produces it, every encoder may rely on it):
- `Start` comes first, exactly once.
- Content events follow: `TextDelta` and `ThinkingDelta` extend the current block of their
  kind; `ToolCallStart` opens tool call number `index` (0, 1, 2, ... in order of appearance)
  and `ToolCallDelta` appends JSON text to the arguments of call `index`.
- `Stop` at most once, after all content. `UsageReport` may come before or after `Stop`, and
  more than once: each carries the complete usage known so far (the last one wins).
- A failure is raised as a `ProxyError` by the decoder, never sent as an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Finish = Literal["stop", "length", "tool_calls", "content_filter"]
Role = Literal["user", "assistant"]


@dataclass(slots=True)
class Usage:
    """Token counts as every provider reports them, in neutral names.

    `input_tokens` counts the whole prompt, cached part included (OpenAI's convention);
    `cached_tokens` is the part read from a provider's prompt cache, `cache_write_tokens` the
    part written to it; `reasoning_tokens` is the part of `output_tokens` spent thinking.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


# --- content parts ----------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Text:
    text: str


@dataclass(slots=True, frozen=True)
class Image:
    """An image given by http(s) `url`, or inline as base64 `data` with its `media_type`."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None


@dataclass(slots=True, frozen=True)
class ToolCall:
    """A call the assistant made; `arguments` is the JSON text of an object ("{}" if none)."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True, frozen=True)
class ToolResult:
    """The answer to tool call `call_id`, sent back in a user turn."""

    call_id: str
    content: tuple[Text | Image, ...]
    is_error: bool = False


@dataclass(slots=True, frozen=True)
class Thinking:
    """Reasoning the model showed. `signature` lets a provider verify it when sent back;
    `redacted` holds the opaque payload of a block the provider would not show."""

    text: str
    signature: str | None = None
    redacted: str | None = None


Part = Text | Image | ToolCall | ToolResult | Thinking
OutputPart = Text | ToolCall | Thinking


@dataclass(slots=True)
class Message:
    """One turn. Tool results travel in user turns (as Anthropic, Gemini and Bedrock have it);
    OpenAI's `tool` messages become such turns when parsed and are split out when rendered."""

    role: Role
    parts: list[Part]


# --- request ----------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Tool:
    """A function the model may call; `parameters` is the JSON Schema of its arguments."""

    name: str
    description: str | None
    parameters: dict[str, Any]


@dataclass(slots=True, frozen=True)
class ToolChoice:
    """`tool` forces the function `name`; `required` forces some tool; `none` forbids tools."""

    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None


@dataclass(slots=True, frozen=True)
class ResponseFormat:
    """Structured output: any JSON object, or JSON matching `schema`."""

    kind: Literal["json_object", "json_schema"]
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(slots=True, frozen=True)
class Reasoning:
    """Extended thinking: an effort level (OpenAI style) and/or a token budget (Anthropic)."""

    effort: Literal["minimal", "low", "medium", "high"] | None = None
    budget_tokens: int | None = None


@dataclass(slots=True)
class ChatRequest:
    """A chat request in neutral form. `extra` holds client fields no neutral field captures;
    a provider codec passes them on only to its own dialect and otherwise asks the policy."""

    model: str
    messages: list[Message]
    system: list[Text] = field(default_factory=list)
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning: Reasoning | None = None
    n: int | None = None
    stream: bool = False
    include_usage: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# --- response ---------------------------------------------------------------------------------


@dataclass(slots=True)
class ChatResponse:
    """A complete answer. `stop_sequence` names the stop string that ended it, if one did."""

    id: str
    model: str
    parts: list[OutputPart]
    finish: Finish
    usage: Usage
    created: int
    stop_sequence: str | None = None

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))


# --- stream events (see the contract in the module docstring) ---------------------------------


@dataclass(slots=True, frozen=True)
class Start:
    id: str
    model: str
    usage: Usage | None = None


@dataclass(slots=True, frozen=True)
class TextDelta:
    text: str


@dataclass(slots=True, frozen=True)
class ThinkingDelta:
    text: str = ""
    signature: str | None = None


@dataclass(slots=True, frozen=True)
class ToolCallStart:
    index: int
    id: str
    name: str


@dataclass(slots=True, frozen=True)
class ToolCallDelta:
    index: int
    arguments: str


@dataclass(slots=True, frozen=True)
class Stop:
    finish: Finish
    stop_sequence: str | None = None


@dataclass(slots=True, frozen=True)
class UsageReport:
    usage: Usage


StreamEvent = Start | TextDelta | ThinkingDelta | ToolCallStart | ToolCallDelta | Stop | UsageReport


# --- embeddings -------------------------------------------------------------------------------


@dataclass(slots=True)
class EmbeddingRequest:
    """OpenAI's embeddings request in neutral form: texts (or token arrays) to embed."""

    model: str
    inputs: list[str] | list[list[int]]
    dimensions: int | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class EmbeddingResponse:
    model: str
    vectors: list[list[float]]
    usage: Usage


def split_text(text: str, pieces: int) -> list[str]:
    """Cut `text` into `pieces` non-empty parts of near-equal length (fewer if text is short)."""
    pieces = max(1, min(pieces, len(text)))
    size, extra = divmod(len(text), pieces)
    parts, start = [], 0
    for i in range(pieces):
        end = start + size + (1 if i < extra else 0)
        parts.append(text[start:end])
        start = end
    return parts


def events_of(response: ChatResponse, text_pieces: int = 1) -> list[StreamEvent]:
    """A complete answer as the stream events that would have produced it, each text part
    cut into `text_pieces` deltas.

    Lets a non-streamed answer (or a stored one) be sent to a client that asked for a stream.
    """
    events: list[StreamEvent] = [Start(response.id, response.model)]
    tool_index = 0
    for part in response.parts:
        if isinstance(part, Text):
            events.extend(TextDelta(piece) for piece in split_text(part.text, text_pieces))
        elif isinstance(part, Thinking):
            events.append(ThinkingDelta(part.text, part.signature))
        else:
            events.append(ToolCallStart(tool_index, part.id, part.name))
            events.append(ToolCallDelta(tool_index, part.arguments))
            tool_index += 1
    events.append(Stop(response.finish, response.stop_sequence))
    events.append(UsageReport(response.usage))
    return events


def assemble(events: list[StreamEvent]) -> ChatResponse:
    """The complete answer a stream of events makes (the inverse of `events_of`): text and
    thinking deltas joined per block, tool-call arguments joined per call, the last usage.

    Lets a stored stream answer a client that did not ask for one.
    """
    start = next((e for e in events if isinstance(e, Start)), Start("", ""))
    parts: list[OutputPart] = []
    calls: dict[int, int] = {}  # tool-call index -> position in parts
    finish: Finish = "stop"
    stop_sequence = None
    usage = start.usage or Usage()
    for event in events:
        last = parts[-1] if parts else None
        if isinstance(event, TextDelta):
            if isinstance(last, Text):
                parts[-1] = Text(last.text + event.text)
            else:
                parts.append(Text(event.text))
        elif isinstance(event, ThinkingDelta):
            if isinstance(last, Thinking) and last.signature is None:
                parts[-1] = Thinking(last.text + event.text, event.signature)
            else:
                parts.append(Thinking(event.text, event.signature))
        elif isinstance(event, ToolCallStart):
            calls[event.index] = len(parts)
            parts.append(ToolCall(event.id, event.name, ""))
        elif isinstance(event, ToolCallDelta) and event.index in calls:
            call = parts[calls[event.index]]
            assert isinstance(call, ToolCall)
            parts[calls[event.index]] = ToolCall(
                call.id, call.name, call.arguments + event.arguments
            )
        elif isinstance(event, Stop):
            finish, stop_sequence = event.finish, event.stop_sequence
        elif isinstance(event, UsageReport):
            usage = event.usage
    parts = [
        ToolCall(p.id, p.name, p.arguments or "{}") if isinstance(p, ToolCall) else p for p in parts
    ]
    return ChatResponse(start.id, start.model, parts, finish, usage, 0, stop_sequence)
