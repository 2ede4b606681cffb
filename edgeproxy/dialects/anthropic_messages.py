"""Anthropic's Messages API as a translation dialect, for clients and for upstreams.

As a client dialect it parses an Anthropic SDK's request into neutral form and renders neutral
answers as Anthropic would; as an upstream dialect it builds the body for Anthropic's API (or
an Anthropic-compatible server) and reads its answers, streams and errors back. The module is
the codec: it implements `translation.ClientChat` and `translation.UpstreamChat`.

What Claude accepts depends on the model, and Anthropic answers a field a model cannot take
with a 400, so `build_chat` decides from the model id's version (`claude-sonnet-4-5-…`,
`claude-3-7-sonnet-…`): thinking by budget up to 4.5 and adaptive from 4.6, no sampling
settings from 4.7, temperature or top_p (not both) from 4.1, structured output from 4.5, no
prefill from 4.6. A Claude id with no version is taken as the newest kind; a model whose id
does not name Claude (a compatible server's own) gets the plain fields and no Claude extras.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from edgeproxy import errors
from edgeproxy.dialects import anthropic, fields
from edgeproxy.dialects.anthropic_stream import (
    MessageStreamDecoder,
    MessageStreamEncoder,
    finish_of,
    stop_reason_of,
)
from edgeproxy.dialects.neutral import (
    ChatRequest,
    ChatResponse,
    Image,
    Message,
    OutputPart,
    Part,
    Reasoning,
    ResponseFormat,
    Role,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    Usage,
)
from edgeproxy.dialects.openai_chat import Effort, effort_for
from edgeproxy.dialects.params import ParamPolicy
from edgeproxy.dialects.turns import add_message, alternating, call_arguments
from edgeproxy.dialects.upstream import code_for_status, retry_after
from edgeproxy.errors import ProxyError

# output_config.effort to neutral: "xhigh" and "max" (the newest models) become "high", the
# most any other provider's effort scale gives.
_EFFORTS: dict[str, Effort] = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}
_REQUEST_FIELDS = frozenset(
    [
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "metadata",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "output_format",
        "stream",
        "cache_control",  # a caching hint, meaningless to another provider
    ]
)
_CONTENT = "expected a string or an array of content blocks"
# A raw tool-call argument text that is not a JSON object, as the object Anthropic's
# `tool_use.input` must be.
RAW_ARGUMENTS = "raw_arguments"


# --- parsing an Anthropic client's request ----------------------------------------------------


def _text_block(block: dict[str, Any], path: str) -> Text:
    """A text block; its cache_control and citations say nothing another provider can use."""
    return Text(fields.required_string(block, "text", f"{path}.text"))


def _image_block(block: dict[str, Any], path: str) -> Image:
    source = fields.as_object(block.get("source"), f"{path}.source")
    kind = source.get("type")
    if kind == "base64":
        media_type = fields.required_string(source, "media_type", f"{path}.source.media_type")
        return Image(
            data=fields.required_string(source, "data", f"{path}.source.data"),
            media_type=media_type,
        )
    if kind == "url":
        return Image(url=fields.required_string(source, "url", f"{path}.source.url"))
    raise fields.untranslatable(f"{path}.source", kind)  # a Files API id lives only at Anthropic


def _result_part(raw: object, path: str) -> Text | Image:
    block = fields.as_object(raw, path)
    kind = block.get("type")
    if kind == "text":
        return _text_block(block, path)
    if kind == "image":
        return _image_block(block, path)
    raise fields.untranslatable(path, kind)


def _tool_result_block(block: dict[str, Any], path: str) -> ToolResult:
    content = block.get("content")
    if content is None or isinstance(content, str):
        parts: tuple[Text | Image, ...] = (Text(content),) if content else ()
    else:
        blocks = fields.as_array(content, f"{path}.content", _CONTENT)
        parts = tuple(_result_part(b, f"{path}.content[{k}]") for k, b in enumerate(blocks))
    failed = fields.flag(block, "is_error", f"{path}.is_error")
    return ToolResult(
        fields.required_string(block, "tool_use_id", f"{path}.tool_use_id"), parts, bool(failed)
    )


def _tool_use_block(block: dict[str, Any], path: str) -> ToolCall:
    arguments = fields.as_object(block.get("input", {}), f"{path}.input")
    return ToolCall(
        fields.required_string(block, "id", f"{path}.id"),
        fields.required_string(block, "name", f"{path}.name"),
        orjson.dumps(arguments).decode(),
    )


def _thinking_block(block: dict[str, Any], path: str) -> Thinking:
    signature = fields.string(block, "signature", f"{path}.signature")
    return Thinking(
        fields.required_string(block, "thinking", f"{path}.thinking"), signature or None
    )


def _redacted_block(block: dict[str, Any], path: str) -> Thinking:
    return Thinking("", redacted=fields.required_string(block, "data", f"{path}.data"))


_BlockParser = Callable[[dict[str, Any], str], Part]
_USER_BLOCKS: dict[str, _BlockParser] = {
    "text": _text_block,
    "image": _image_block,
    "tool_result": _tool_result_block,
}
_ASSISTANT_BLOCKS: dict[str, _BlockParser] = {
    "text": _text_block,
    "tool_use": _tool_use_block,
    "thinking": _thinking_block,
    "redacted_thinking": _redacted_block,
}


def _block(role: Role, raw: object, path: str) -> Part:
    """One content block. Documents, search results, server tools and the like have no
    neutral form: the client learns which block, rather than an answer that ignored it."""
    block = fields.as_object(raw, path)
    kind = block.get("type")
    parsers, others = (
        (_USER_BLOCKS, _ASSISTANT_BLOCKS) if role == "user" else (_ASSISTANT_BLOCKS, _USER_BLOCKS)
    )
    if not isinstance(kind, str) or kind not in parsers:
        if isinstance(kind, str) and kind in others:
            raise fields.invalid(f"{path}.type", f'"{kind}" is not allowed in a {role} turn')
        raise fields.untranslatable(path, kind)
    return parsers[kind](block, path)


def _messages(payload: dict[str, Any]) -> list[Message]:
    """The turns; consecutive turns of one role are merged, as Anthropic's API does."""
    messages: list[Message] = []
    for i, raw in enumerate(fields.as_array(payload.get("messages"), "messages")):
        path = f"messages[{i}]"
        message = fields.as_object(raw, path)
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise fields.invalid(f"{path}.role", 'expected "user" or "assistant"')
        content = message.get("content")
        if isinstance(content, str):
            parts: list[Part] = [Text(content)]
        else:
            blocks = fields.as_array(content, f"{path}.content", _CONTENT)
            parts = [_block(role, b, f"{path}.content[{j}]") for j, b in enumerate(blocks)]
        add_message(messages, role, parts)
    return messages


def _system(payload: dict[str, Any]) -> list[Text]:
    system = payload.get("system")
    if system is None or isinstance(system, str):
        return [Text(system)] if system else []
    texts = []
    for j, raw in enumerate(
        fields.as_array(system, "system", "expected a string or an array of text blocks")
    ):
        block = fields.as_object(raw, f"system[{j}]")
        if block.get("type") != "text":
            raise fields.untranslatable(f"system[{j}]", block.get("type"))
        texts.append(_text_block(block, f"system[{j}]"))
    return texts


def _tool(raw: object, path: str) -> Tool:
    """A client tool. Server tools (web search, bash, text editor, …) run at Anthropic and
    have no equivalent elsewhere; `strict` has no neutral form and is left out."""
    tool = fields.as_object(raw, path)
    if tool.get("type") not in (None, "custom"):
        raise fields.untranslatable(path, tool.get("type"))
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise fields.invalid(f"{path}.name", "expected a non-empty string")
    schema = fields.as_object(tool.get("input_schema"), f"{path}.input_schema")
    return Tool(name, fields.string(tool, "description", f"{path}.description"), schema)


def _tools(payload: dict[str, Any]) -> list[Tool]:
    tools = fields.as_array(payload.get("tools") or [], "tools")
    return [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]


def _tool_choice(payload: dict[str, Any]) -> tuple[ToolChoice | None, bool | None]:
    """The choice, and False for parallel_tool_calls when parallel tool use is disabled."""
    if payload.get("tool_choice") is None:
        return None, None
    choice = fields.as_object(payload["tool_choice"], "tool_choice")
    single = fields.flag(
        choice, "disable_parallel_tool_use", "tool_choice.disable_parallel_tool_use"
    )
    parallel = False if single else None
    kind = choice.get("type")
    if kind in ("auto", "none"):
        return ToolChoice(kind), parallel
    if kind == "any":
        return ToolChoice("required"), parallel
    if kind == "tool":
        name = fields.required_string(choice, "name", "tool_choice.name")
        return ToolChoice("tool", name), parallel
    raise fields.invalid("tool_choice.type", 'expected "auto", "any", "tool" or "none"')


def _effort(payload: dict[str, Any]) -> Effort | None:
    config = payload.get("output_config")
    effort = fields.as_object(config, "output_config").get("effort") if config is not None else None
    if effort is None:
        return None
    if not isinstance(effort, str) or effort not in _EFFORTS:
        raise fields.invalid(
            "output_config.effort", 'expected "low", "medium", "high", "xhigh" or "max"'
        )
    return _EFFORTS[effort]


def _reasoning(payload: dict[str, Any]) -> Reasoning | None:
    """Thinking and effort. Adaptive thinking is the model's own choice at an effort level
    (Anthropic's default is high); an effort alone still sets how much the model spends."""
    effort = _effort(payload)
    if payload.get("thinking") is None:
        return Reasoning(effort=effort) if effort else None
    thinking = fields.as_object(payload["thinking"], "thinking")
    kind = thinking.get("type")
    if kind == "disabled":
        return None
    if kind == "adaptive":
        return Reasoning(effort=effort or "high")
    if kind == "enabled":
        budget = fields.integer(thinking, "budget_tokens", "thinking.budget_tokens")
        if budget is None:
            raise fields.invalid("thinking.budget_tokens", "expected an integer")
        return Reasoning(effort=effort, budget_tokens=budget)
    raise fields.untranslatable("thinking", kind)


def _response_format(payload: dict[str, Any]) -> ResponseFormat | None:
    """Structured output: `output_config.format`, or the beta's top-level `output_format`."""
    config = payload.get("output_config")
    nested = config.get("format") if isinstance(config, dict) else None
    spec, path = (
        (nested, "output_config.format")
        if nested is not None
        else (payload.get("output_format"), "output_format")
    )
    if spec is None:
        return None
    spec = fields.as_object(spec, path)
    if spec.get("type") != "json_schema":
        raise fields.untranslatable(path, spec.get("type"))
    return ResponseFormat(
        "json_schema", schema=fields.as_object(spec.get("schema"), f"{path}.schema")
    )


def _stops(payload: dict[str, Any]) -> list[str]:
    stops = payload.get("stop_sequences")
    if stops is None:
        return []
    if isinstance(stops, list) and all(isinstance(s, str) for s in stops):
        return stops
    raise fields.invalid("stop_sequences", "expected an array of strings")


def _user(payload: dict[str, Any]) -> str | None:
    if payload.get("metadata") is None:
        return None
    return fields.string(
        fields.as_object(payload["metadata"], "metadata"), "user_id", "metadata.user_id"
    )


def _extra(payload: dict[str, Any]) -> dict[str, Any]:
    """Fields no neutral one captures (service_tier, container, mcp_servers, …), and the
    output_config settings other than effort and format."""
    extra = {k: v for k, v in payload.items() if k not in _REQUEST_FIELDS}
    config = payload.get("output_config")
    if isinstance(config, dict) and (
        rest := {k: v for k, v in config.items() if k not in ("effort", "format")}
    ):
        extra["output_config"] = rest
    return extra


def parse_chat_request(payload: dict[str, Any]) -> ChatRequest:
    """An Anthropic SDK's request in neutral form; 400s name the field path they are about."""
    choice, parallel = _tool_choice(payload)
    return ChatRequest(
        model=str(payload.get("model") or ""),
        messages=_messages(payload),
        system=_system(payload),
        max_tokens=fields.integer(payload, "max_tokens"),
        temperature=fields.number(payload, "temperature"),
        top_p=fields.number(payload, "top_p"),
        top_k=fields.integer(payload, "top_k"),
        stop=_stops(payload),
        user=_user(payload),
        tools=_tools(payload),
        tool_choice=choice,
        parallel_tool_calls=parallel,
        response_format=_response_format(payload),
        reasoning=_reasoning(payload),
        stream=fields.flag(payload, "stream") or False,
        extra=_extra(payload),
    )


# --- rendering an answer for an Anthropic client ----------------------------------------------


def _input_object(arguments: str) -> dict[str, Any]:
    """A call's JSON text as the object `input` must be. Text that is not a JSON object (a
    provider's broken output) is kept whole under RAW_ARGUMENTS rather than lost."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {RAW_ARGUMENTS: arguments}


def _output_block(part: OutputPart) -> dict[str, Any] | None:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text} if part.text else None
    if isinstance(part, ToolCall):
        return {
            "type": "tool_use",
            "id": part.id,
            "name": part.name,
            "input": _input_object(part.arguments),
        }
    if part.redacted:
        return {"type": "redacted_thinking", "data": part.redacted}
    if part.text or part.signature:
        return {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
    return None


def _append(content: list[dict[str, Any]], block: dict[str, Any]) -> None:
    """Adds a block, extending the last one as a stream would: text after text, and
    thinking after thinking that is not yet signed."""
    last = content[-1] if content else None
    if last is not None and last["type"] == block["type"] == "text":
        last["text"] += block["text"]
    elif last is not None and last["type"] == block["type"] == "thinking" and not last["signature"]:
        last["thinking"] += block["thinking"]
        last["signature"] = block["signature"]
    else:
        content.append(block)


def render_chat(response: ChatResponse) -> bytes:
    """A Messages API `message` as Anthropic returns it."""
    content: list[dict[str, Any]] = []
    for part in response.parts:
        if (block := _output_block(part)) is not None:
            _append(content, block)
    return orjson.dumps(
        {
            "id": response.id,
            "type": "message",
            "role": "assistant",
            "model": response.model,
            "content": content,
            "stop_reason": stop_reason_of(response.finish, response.stop_sequence),
            "stop_sequence": response.stop_sequence,
            "stop_details": None,
            "usage": anthropic.usage_object(response.usage),
        }
    )


def chat_stream_encoder(request: ChatRequest) -> MessageStreamEncoder:
    return MessageStreamEncoder()


# --- what a model accepts ---------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class _Model:
    """What a model takes, decided once per request from its id."""

    thinking: Literal["none", "budget", "adaptive"]
    sampling: bool  # takes temperature, top_p and top_k
    either_sampling: bool  # takes temperature or top_p, not both
    structured_output: bool
    prefill: bool  # may continue a conversation that ends with an assistant turn


_NEWEST = _Model(
    "adaptive", sampling=False, either_sampling=True, structured_output=True, prefill=False
)
_BY_VERSION = (
    ((4, 7), _NEWEST),
    ((4, 6), _Model("adaptive", True, True, structured_output=True, prefill=False)),
    ((4, 5), _Model("budget", True, True, structured_output=True, prefill=True)),
    ((4, 1), _Model("budget", True, True, structured_output=False, prefill=True)),
    ((3, 7), _Model("budget", True, False, structured_output=False, prefill=True)),
    ((0, 0), _Model("none", True, False, structured_output=False, prefill=True)),
)
_COMPATIBLE = _Model("budget", True, False, structured_output=False, prefill=True)
# The version in `claude-3-7-sonnet-20250219`, `claude-sonnet-4-5`, `claude-opus-4-1@2025…`:
# the first one- or two-digit number after "claude-", and the next as minor (a date is not).
_VERSION = re.compile(r"claude-(?:[a-z]+-)*?(\d{1,2})(?:[-.](\d{1,2}))?(?!\d)")


def _model(model: str) -> _Model:
    if "claude" not in model:
        return _COMPATIBLE
    match = _VERSION.search(model)
    if match is None:  # claude-mythos-preview and other names without a version
        return _NEWEST
    version = (int(match[1]), int(match[2] or 0))
    return next(kind for floor, kind in _BY_VERSION if version >= floor)


# --- building the body for Anthropic ----------------------------------------------------------

_MEDIA_TYPES = {
    "image/jpeg": "image/jpeg",
    "image/jpg": "image/jpeg",
    "image/png": "image/png",
    "image/gif": "image/gif",
    "image/webp": "image/webp",
}
# Tool-use ids must match ^[a-zA-Z0-9_-]+$; other providers' ids (`functions.get:0`) may not.
_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
# Anthropic refuses a request without messages; this stands in, saying as little as possible.
_OPENING = "(conversation start)"
# A reasoning effort as a thinking budget; openai_chat.effort_for reads each back as itself.
_EFFORT_BUDGETS = {"minimal": 1024, "low": 4096, "medium": 12288, "high": 24576}
_MIN_THINKING_BUDGET = 1024
_SIGNED_THINKING = ("thinking", "redacted_thinking")
_CHOICE_TYPES = {"auto": "auto", "required": "any", "tool": "tool"}


def _image(image: Image) -> dict[str, Any]:
    if image.url is not None:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    media_type = _MEDIA_TYPES.get((image.media_type or "").lower())
    if media_type is None:
        raise errors.bad_request(
            f"messages: image type {image.media_type!r} cannot be sent to Anthropic "
            "(jpeg, png, gif or webp only)",
            param="messages",
        )
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": media_type, "data": image.data},
    }


def _tool_id(call_id: str) -> str:
    return _ID_UNSAFE.sub("_", call_id)


def _tool_result(result: ToolResult) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": _tool_id(result.call_id)}
    content = [
        _image(part) if isinstance(part, Image) else {"type": "text", "text": part.text}
        for part in result.content
        if isinstance(part, Image) or part.text.strip()
    ]
    if content:
        block["content"] = content
    if result.is_error:
        block["is_error"] = True
    return block


def _thinking(part: Thinking) -> dict[str, Any] | None:
    """Reasoning goes back only as Claude gave it, signed or redacted; Claude refuses
    reasoning it cannot verify (another provider's, or one whose signature was lost)."""
    if part.redacted:
        return {"type": "redacted_thinking", "data": part.redacted}
    if part.signature:
        return {"type": "thinking", "thinking": part.text, "signature": part.signature}
    return None


def _content_block(part: Part, role: Role, model: _Model) -> dict[str, Any] | None:
    """One content block; None for what Anthropic must not see (blank text, unverifiable
    reasoning, parts in a turn of the wrong role)."""
    if isinstance(part, Text):
        return {"type": "text", "text": part.text} if part.text.strip() else None
    if role == "user":
        if isinstance(part, Image):
            return _image(part)
        return _tool_result(part) if isinstance(part, ToolResult) else None
    if isinstance(part, ToolCall):
        return {
            "type": "tool_use",
            "id": _tool_id(part.id),
            "name": part.name,
            "input": call_arguments(part),
        }
    if isinstance(part, Thinking) and model.thinking != "none":
        return _thinking(part)
    return None


def _content(message: Message, model: _Model) -> list[dict[str, Any]]:
    return [b for p in message.parts if (b := _content_block(p, message.role, model)) is not None]


def _turns(request: ChatRequest, model: _Model) -> list[dict[str, Any]]:
    """Turns that alternate strictly, tool results leading their user turn, as Anthropic
    requires. A conversation may open with the assistant (Anthropic's API takes that); one
    with no turn gets a placeholder."""
    turns = alternating(
        ((message.role, _content(message, model)) for message in request.messages),
        lambda block: block["type"] == "tool_result",
    )
    return turns or [{"role": "user", "content": [{"type": "text", "text": _OPENING}]}]


def _check_prefill(turns: list[dict[str, Any]], model: _Model, name: str) -> None:
    """A conversation that ends with an assistant turn asks Claude to continue it; its text
    may not end in whitespace (Anthropic refuses that), and newer models cannot continue."""
    last = turns[-1]
    if last["role"] != "assistant":
        return
    if not model.prefill:
        raise errors.bad_request(
            f"messages: {name} cannot continue an assistant turn; end with a user message",
            param="messages",
        )
    if last["content"][-1]["type"] == "text":
        last["content"][-1]["text"] = last["content"][-1]["text"].rstrip()


def _unsigned_tool_turn(turns: list[dict[str, Any]]) -> bool:
    """Whether the last assistant turn calls tools without the signed thinking Claude needs
    at its start to think on (it refuses a tool loop whose reasoning was lost)."""
    last = next((turn for turn in reversed(turns) if turn["role"] == "assistant"), None)
    if last is None:
        return False
    content = last["content"]
    calls = any(block["type"] == "tool_use" for block in content)
    return calls and content[0]["type"] not in _SIGNED_THINKING


def _why_no_thinking(
    request: ChatRequest, model: _Model, turns: list[dict[str, Any]]
) -> str | None:
    if model.thinking == "none":
        return "this model cannot think"
    forced = request.tool_choice is not None and request.tool_choice.mode in ("required", "tool")
    if request.tools and forced:
        return "Claude cannot think while it is forced to call a tool"
    if turns[-1]["role"] == "assistant":
        return "Claude cannot think while continuing an assistant turn"
    if _unsigned_tool_turn(turns):
        return "the last tool calls come without the signed thinking Claude needs to go on thinking"
    return None


def budget_thinking(
    reasoning: Reasoning,
    max_tokens: int | None,
    budgets: Mapping[str, int],
    policy: ParamPolicy,
    body: dict[str, Any],
) -> int | None:
    """Claude's extended thinking by budget, here and on Bedrock: the budget asked for (or
    the effort's in `budgets`), at least Claude's minimum and below max_tokens as Claude
    requires, set in `body` and returned; None when max_tokens leaves no room to think."""
    budget = reasoning.budget_tokens or budgets[reasoning.effort or "medium"]
    budget = max(budget, _MIN_THINKING_BUDGET)
    if max_tokens is not None:
        budget = min(budget, max_tokens - 1)
    if budget < _MIN_THINKING_BUDGET:
        policy.unsupported("reasoning", "Claude needs max_tokens above 1024 to think")
        return None
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    return budget


def _reasoning_fields(
    request: ChatRequest,
    model: _Model,
    turns: list[dict[str, Any]],
    policy: ParamPolicy,
    body: dict[str, Any],
) -> int | None:
    """Thinking: a budget up to Claude 4.5, adaptive with an effort from 4.6. Returns the
    tokens to add to the default max_tokens (thinking counts towards it), or None when
    Claude does not think."""
    reasoning = request.reasoning
    if reasoning is None:
        return None
    if (why_not := _why_no_thinking(request, model, turns)) is not None:
        policy.unsupported("reasoning", why_not)
        return None
    if model.thinking == "adaptive":
        effort = effort_for(reasoning)
        body["thinking"] = {"type": "adaptive"}
        body["output_config"] = {"effort": "low" if effort == "minimal" else effort}
        return _EFFORT_BUDGETS[effort]
    return budget_thinking(reasoning, request.max_tokens, _EFFORT_BUDGETS, policy, body)


def _temperature(
    request: ChatRequest, model: _Model, thinking: bool, policy: ParamPolicy, body: dict[str, Any]
) -> None:
    value = request.temperature
    if value is None or (value == 1 and not model.sampling):
        return  # 1 is the default, and all a model without sampling settings has
    if value > 1:
        policy.unsupported("temperature", "Anthropic takes temperatures from 0 to 1")
    elif not model.sampling:
        policy.unsupported("temperature", "this model takes no sampling settings")
    elif thinking and value != 1:
        policy.unsupported("temperature", "Claude takes no temperature but 1 while thinking")
    else:
        body["temperature"] = value


def _top_p(
    request: ChatRequest, model: _Model, thinking: bool, policy: ParamPolicy, body: dict[str, Any]
) -> None:
    value = request.top_p
    if value is None:
        return
    if not model.sampling:
        policy.unsupported("top_p", "this model takes no sampling settings")
    elif thinking and value < 0.95:
        policy.unsupported("top_p", "Claude takes top_p from 0.95 to 1 while thinking")
    elif model.either_sampling and "temperature" in body:
        policy.unsupported("top_p", "this model takes temperature or top_p, not both")
    else:
        body["top_p"] = value


def _top_k(
    request: ChatRequest, model: _Model, thinking: bool, policy: ParamPolicy, body: dict[str, Any]
) -> None:
    if request.top_k is None:
        return
    if not model.sampling:
        policy.unsupported("top_k", "this model takes no sampling settings")
    elif thinking:
        policy.unsupported("top_k", "Claude takes no top_k while thinking")
    else:
        body["top_k"] = request.top_k


def _tool_object(tool: Tool) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": tool.name}
    if tool.description:
        spec["description"] = tool.description
    spec["input_schema"] = tool.parameters
    return spec


def _tool_choice_object(request: ChatRequest) -> dict[str, Any] | None:
    """The choice; unsaid when the client said nothing (auto is Anthropic's default too)."""
    choice = request.tool_choice or ToolChoice("auto")
    if choice.mode == "none":
        return {"type": "none"}
    if request.tool_choice is None and request.parallel_tool_calls is not False:
        return None
    anthropic_choice: dict[str, Any] = {"type": _CHOICE_TYPES[choice.mode]}
    if choice.mode == "tool":
        anthropic_choice["name"] = choice.name
    if request.parallel_tool_calls is False:
        anthropic_choice["disable_parallel_tool_use"] = True
    return anthropic_choice


def _tool_fields(request: ChatRequest, body: dict[str, Any]) -> None:
    """Tools, and the choice among them (which Anthropic refuses without tools)."""
    if not request.tools:
        return
    body["tools"] = [_tool_object(tool) for tool in request.tools]
    if (choice := _tool_choice_object(request)) is not None:
        body["tool_choice"] = choice


def _stop_sequences(request: ChatRequest, policy: ParamPolicy, body: dict[str, Any]) -> None:
    stops = [stop for stop in request.stop if stop.strip()]
    if len(stops) < len(request.stop):
        policy.unsupported("stop", "Anthropic takes no blank or whitespace-only stop sequences")
    if stops:
        body["stop_sequences"] = stops


def _output_format(
    request: ChatRequest, model: _Model, name: str, policy: ParamPolicy
) -> dict[str, Any] | None:
    """Native structured output (`output_config.format`), which takes a JSON schema only."""
    spec = request.response_format
    if spec is None:
        return None
    if spec.kind != "json_schema" or spec.schema is None:
        policy.unsupported("response_format", "Anthropic takes a JSON schema, not a bare JSON mode")
        return None
    if not model.structured_output:
        policy.unsupported("response_format", f"{name} has no structured output")
        return None
    return {"type": "json_schema", "schema": spec.schema}


def _unsupported(request: ChatRequest, policy: ParamPolicy) -> None:
    """The fields the Messages API has no place for."""
    for name in ("seed", "frequency_penalty", "presence_penalty"):
        if getattr(request, name) is not None:
            policy.unsupported(name)
    if request.metadata is not None:
        policy.unsupported("metadata", "Anthropic's metadata holds only a user id")
    if request.n is not None and request.n > 1:
        policy.unsupported("n", "Anthropic gives one answer per request")
    for name in request.extra:
        policy.unsupported(name)


def build_chat(
    request: ChatRequest,
    model: str,
    policy: ParamPolicy,
    *,
    default_max_tokens: int = 4096,
) -> bytes:
    """The Messages body for `model`. Anthropic requires max_tokens: without the client's,
    it is `default_max_tokens`, plus the thinking budget when Claude thinks (thinking
    counts towards it)."""
    kind = _model(model)
    turns = _turns(request, kind)
    _check_prefill(turns, kind, model)
    options: dict[str, Any] = {}
    thinking_tokens = _reasoning_fields(request, kind, turns, policy, options)
    thinking = thinking_tokens is not None
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens
        if request.max_tokens is not None
        else default_max_tokens + (thinking_tokens or 0),
    }
    if system := [{"type": "text", "text": t.text} for t in request.system if t.text.strip()]:
        body["system"] = system
    body["messages"] = turns
    _tool_fields(request, body)
    _stop_sequences(request, policy, body)
    _temperature(request, kind, thinking, policy, body)
    _top_p(request, kind, thinking, policy, body)
    _top_k(request, kind, thinking, policy, body)
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    body.update(options)
    if (output := _output_format(request, kind, model, policy)) is not None:
        body.setdefault("output_config", {})["format"] = output
    _unsupported(request, policy)
    if request.stream:
        body["stream"] = True
    return orjson.dumps(body)


# --- reading Anthropic's answers --------------------------------------------------------------


def _output_part(block: object) -> OutputPart | None:
    """Text, a tool call or reasoning; None for server tool blocks and kinds yet unknown."""
    if not isinstance(block, dict):
        return None
    kind = block.get("type")
    if kind == "text" and isinstance(text := block.get("text"), str):
        return Text(text)
    if kind == "tool_use":
        arguments = orjson.dumps(block.get("input") or {}).decode()
        return ToolCall(str(block.get("id") or ""), str(block.get("name") or ""), arguments)
    if kind == "thinking" and isinstance(shown := block.get("thinking"), str):
        signature = block.get("signature")
        return Thinking(shown, signature if signature and isinstance(signature, str) else None)
    if kind == "redacted_thinking" and isinstance(data := block.get("data"), str):
        return Thinking("", redacted=data)
    return None


def parse_chat(
    body: bytes, provider: str, *, clock: Callable[[], float] = time.time
) -> ChatResponse:
    """A Messages answer. It has no creation time: the time it is read stands in."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    if isinstance(answer, dict) and answer.get("type") == "error":
        raise _reported_error(answer, provider)
    content = answer.get("content") if isinstance(answer, dict) else None
    if not isinstance(answer, dict) or not isinstance(content, list):
        raise errors.upstream_broken(provider, f"answer is not a message: {body[:200]!r}")
    parts = [part for block in content if (part := _output_part(block)) is not None]
    sequence = answer.get("stop_sequence")
    return ChatResponse(
        id=str(answer.get("id") or ""),
        model=str(answer.get("model") or ""),
        parts=parts,
        finish=finish_of(answer.get("stop_reason"), any(isinstance(p, ToolCall) for p in parts)),
        usage=anthropic.read_usage(answer) or Usage(),
        created=int(clock()),
        stop_sequence=sequence if isinstance(sequence, str) else None,
    )


def chat_stream_decoder(provider: str) -> MessageStreamDecoder:
    return MessageStreamDecoder(provider, lambda payload: _reported_error(payload, provider))


# --- errors -----------------------------------------------------------------------------------

# Anthropic's error types, as the status each stands for and its neutral code.
_TYPES: dict[str, tuple[int, str]] = {
    "invalid_request_error": (400, "invalid_request"),
    "authentication_error": (401, "authentication_error"),
    "billing_error": (402, "permission_denied"),
    "permission_error": (403, "permission_denied"),
    "not_found_error": (404, "not_found"),
    "request_too_large": (413, "request_too_large"),
    "rate_limit_error": (429, "rate_limited"),
    "api_error": (500, "upstream_error"),
    "timeout_error": (504, "upstream_timeout"),
    "overloaded_error": (529, "overloaded"),
}
# "prompt is too long: 208310 tokens > 200000 maximum"; "input length and `max_tokens` exceed
# context limit: 197626 + 8192 > 200000, decrease input length or `max_tokens` and try again".
_CONTEXT_OVERFLOW = ("prompt is too long", "exceed context limit", "context window")


def _upstream_error(
    status: int | None,
    payload: object,
    provider: str,
    retry_after: float | None = None,
) -> ProxyError:
    """The error in `{"type": "error", "error": {"type", "message"}}` (or an OpenAI-shaped
    `{"error": {...}}` from a compatible server); a stream's error has no status of its own
    and takes the one its type stands for."""
    error = payload.get("error") if isinstance(payload, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    known = _TYPES.get(kind) if isinstance(kind, str) else None
    if status is None:
        status = known[0] if known else 500
    code = known[1] if known else code_for_status(status)
    text = (
        message
        if isinstance(message, str) and message
        else f"Provider '{provider}' answered with HTTP status {status}."
    )
    if code == "invalid_request" and any(sign in text.lower() for sign in _CONTEXT_OVERFLOW):
        code = "context_length_exceeded"
    return errors.from_upstream(
        status,
        code,
        text,
        retry_after=retry_after,
        detail=f"{provider} HTTP {status}: type={kind!r}",
    )


def _reported_error(payload: dict[str, Any], provider: str) -> ProxyError:
    return _upstream_error(None, payload, provider)


def parse_error(status: int, headers: Mapping[str, str], body: bytes, provider: str) -> ProxyError:
    """Anthropic's error answer in neutral terms. Only the provider's own `message` reaches
    the client; a body that is not JSON (a gateway's HTML page) goes to the log only.
    `headers` must look names up case-insensitively, as aiohttp's do."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    err = _upstream_error(status, payload, provider, retry_after(headers))
    if payload is None:
        err.detail += f" body={body[:300]!r}"
    return err
