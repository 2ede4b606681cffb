"""Where the text of a request, an answer and a stream event lives, in each API's shape.

A guardrail reads and rewrites text (redacts it, restores it, screens it) without knowing the
dialect: each function here yields `TextSlot`s over a parsed JSON payload, and a slot's `set`
writes into the payload in place. Operations are named by their label (`Operation.label`).

What counts as text: messages and their parts, system prompts, tool results, documents with
a text source, legacy prompts and embedding inputs; and, written by a model, tool-call
arguments. Those arguments are JSON source in OpenAI's shape (`json` is set on their slots:
a value put back into them must be escaped) and a parsed object in Anthropic's, whose string
values are slots of their own (keys are names the tool defines, not text). Left alone:
images, files, audio, and Anthropic's thinking blocks, whose signature covers their text (a
rewritten block would be refused when the client sends it back on its next turn).

Streams: a slot of an event belongs to a channel, `(field, index, sub-index)`, where the index
is the choice (OpenAI) or the content block (Anthropic): a caller keeps one stream restorer or
screen per channel, and flushes a channel's when `finished_indexes` names its index (or the
stream ends), putting what the flush returns into the event that closes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool", "document"]
Channel = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class TextSlot:
    """One text in a payload: who wrote it and where it is. `container[key]` holds it: a dict
    and a key, or a list and an index (typed `Any` for that reason)."""

    role: Role
    container: Any
    key: str | int
    json: bool = False  # the text is JSON source (tool-call arguments)

    def get(self) -> str:
        text: str = self.container[self.key]
        return text

    def set(self, new: str) -> None:
        self.container[self.key] = new


@dataclass(frozen=True, slots=True)
class StreamSlot(TextSlot):
    """A slot of a stream event, with the channel its text continues."""

    channel: Channel = ("", 0, 0)


_CHAT_ROLES: dict[Any, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}


def _slot(container: Any, key: str | int, role: Role, json: bool = False) -> Iterator[TextSlot]:
    """The slot at `container[key]`, if a string is there."""
    if isinstance(container[key], str):
        yield TextSlot(role, container, key, json)


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    """The objects of a list (anything else in it, or a value that is no list, is skipped)."""
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _strings(container: Any, role: Role) -> Iterator[TextSlot]:
    """Every string value in a parsed JSON value, at any depth (object keys excluded)."""
    keys = range(len(container)) if isinstance(container, list) else container.keys()
    for key in keys:
        value = container[key]
        if isinstance(value, str):
            yield TextSlot(role, container, key)
        elif isinstance(value, dict | list):
            yield from _strings(value, role)


# --- OpenAI ------------------------------------------------------------------------------


def _openai_content(message: dict[str, Any], role: Role) -> Iterator[TextSlot]:
    """`content` as a string or as parts; text and refusal parts are text."""
    content = message.get("content")
    if isinstance(content, str):
        yield TextSlot(role, message, "content")
    for part in _objects(content):
        kind = part.get("type")
        if kind in ("text", "refusal") and kind in part:
            yield from _slot(part, kind, role)


def _openai_message(message: dict[str, Any], role: Role) -> Iterator[TextSlot]:
    yield from _openai_content(message, role)
    for field in ("refusal", "reasoning_content", "reasoning"):
        if field in message:
            yield from _slot(message, field, role)
    for call in _objects(message.get("tool_calls")):
        function = call.get("function")
        if isinstance(function, dict) and "arguments" in function:
            yield from _slot(function, "arguments", role, json=True)
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and "arguments" in legacy:
        yield from _slot(legacy, "arguments", role, json=True)


def _chat_request(payload: dict[str, Any]) -> Iterator[TextSlot]:
    for message in _objects(payload.get("messages")):
        role = message.get("role")
        yield from _openai_message(
            message, _CHAT_ROLES.get(role, "user") if isinstance(role, str) else "user"
        )


def _strings_or_list(payload: dict[str, Any], field: str) -> Iterator[TextSlot]:
    """A string, or a list whose strings are texts (token arrays are not)."""
    value = payload.get(field)
    if isinstance(value, str):
        yield TextSlot("user", payload, field)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                yield TextSlot("user", value, index)


def _completions_request(payload: dict[str, Any]) -> Iterator[TextSlot]:
    yield from _strings_or_list(payload, "prompt")
    if "suffix" in payload:
        yield from _slot(payload, "suffix", "user")


def _embeddings_request(payload: dict[str, Any]) -> Iterator[TextSlot]:
    yield from _strings_or_list(payload, "input")


def _chat_answer(body: dict[str, Any]) -> Iterator[TextSlot]:
    for choice in _objects(body.get("choices")):
        message = choice.get("message")
        if isinstance(message, dict):
            yield from _openai_message(message, "assistant")


def _completions_answer(body: dict[str, Any]) -> Iterator[TextSlot]:
    for choice in _objects(body.get("choices")):
        if "text" in choice:
            yield from _slot(choice, "text", "assistant")


# --- Anthropic ---------------------------------------------------------------------------


def _anthropic_blocks(holder: dict[str, Any], field: str, role: Role) -> Iterator[TextSlot]:
    """`holder[field]` as a string or as content blocks."""
    content = holder.get(field)
    if isinstance(content, str):
        yield TextSlot(role, holder, field)
    for block in _objects(content):
        yield from _anthropic_block(block, role)


def _anthropic_block(block: dict[str, Any], role: Role) -> Iterator[TextSlot]:
    kind = block.get("type")
    if kind == "text" and "text" in block:
        yield from _slot(block, "text", role)
    elif kind == "tool_result":
        yield from _anthropic_blocks(block, "content", "tool")
    elif kind == "tool_use" and isinstance(block.get("input"), dict):
        yield from _strings(block["input"], role)
    elif kind == "document":
        yield from _document(block)


def _document(block: dict[str, Any]) -> Iterator[TextSlot]:
    """A document's text: a plain-text source's data, or a content source's blocks, and the
    context given with it. PDFs and files are not text here."""
    source = block.get("source")
    if isinstance(source, dict):
        if source.get("type") == "text" and "data" in source:
            yield from _slot(source, "data", "document")
        elif source.get("type") == "content":
            yield from _anthropic_blocks(source, "content", "document")
    if "context" in block:
        yield from _slot(block, "context", "document")


def _messages_request(payload: dict[str, Any]) -> Iterator[TextSlot]:
    yield from _anthropic_blocks(payload, "system", "system")
    for message in _objects(payload.get("messages")):
        role: Role = "assistant" if message.get("role") == "assistant" else "user"
        yield from _anthropic_blocks(message, "content", role)


def _messages_answer(body: dict[str, Any]) -> Iterator[TextSlot]:
    yield from _anthropic_blocks(body, "content", "assistant")


# --- streams -----------------------------------------------------------------------------


def _chat_stream(data: dict[str, Any]) -> Iterator[StreamSlot]:
    for position, choice in enumerate(_objects(data.get("choices"))):
        index = _index(choice, position)
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        for field, channel in (
            ("content", "content"),
            ("refusal", "refusal"),
            ("reasoning_content", "reasoning"),
            ("reasoning", "reasoning"),
        ):
            if isinstance(delta.get(field), str):
                yield StreamSlot("assistant", delta, field, channel=(channel, index, 0))
        for order, call in enumerate(_objects(delta.get("tool_calls"))):
            function = call.get("function")
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                channel_key = ("arguments", index, _index(call, order))
                yield StreamSlot("assistant", function, "arguments", True, channel_key)
        legacy = delta.get("function_call")
        if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
            yield StreamSlot("assistant", legacy, "arguments", True, ("function_call", index, 0))


def _completions_stream(data: dict[str, Any]) -> Iterator[StreamSlot]:
    for position, choice in enumerate(_objects(data.get("choices"))):
        if isinstance(choice.get("text"), str):
            index = _index(choice, position)
            yield StreamSlot("assistant", choice, "text", channel=("text", index, 0))


def _messages_stream(data: dict[str, Any]) -> Iterator[StreamSlot]:
    index = _index(data, 0)
    kind = data.get("type")
    if kind == "content_block_delta":
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return
        if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
            yield StreamSlot("assistant", delta, "text", channel=("text", index, 0))
        elif delta.get("type") == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            yield StreamSlot("assistant", delta, "partial_json", True, ("input_json", index, 0))
    elif kind == "content_block_start":
        block = data.get("content_block")
        if isinstance(block, dict) and block.get("type") == "text" and block.get("text"):
            yield StreamSlot("assistant", block, "text", channel=("text", index, 0))


def _index(holder: dict[str, Any], default: int) -> int:
    index = holder.get("index")
    return index if isinstance(index, int) else default


def _no_texts(body: dict[str, Any]) -> Iterator[TextSlot]:
    return iter(())


def _no_stream(data: dict[str, Any]) -> Iterator[StreamSlot]:
    return iter(())


# --- OpenAI's Responses API --------------------------------------------------------------


def _responses_request(payload: dict[str, Any]) -> Iterator[TextSlot]:
    """`instructions`, and `input`: a string, or items (messages with a string or parts,
    function calls' arguments and their outputs)."""
    if "instructions" in payload:
        yield from _slot(payload, "instructions", "system")
    if "input" in payload:
        yield from _slot(payload, "input", "user")
    for item in _objects(payload.get("input")):
        named = item.get("role")
        role = _CHAT_ROLES.get(named, "user") if isinstance(named, str) else "user"
        if "content" in item:
            yield from _slot(item, "content", role)
        for part in _objects(item.get("content")):
            if part.get("type") in ("input_text", "output_text") and "text" in part:
                yield from _slot(part, "text", role)
        if item.get("type") == "function_call" and "arguments" in item:
            yield from _slot(item, "arguments", "assistant", json=True)
        if item.get("type") == "function_call_output" and "output" in item:
            yield from _slot(item, "output", "tool")


def _responses_output(items: Any) -> Iterator[TextSlot]:
    """A response's output items: messages' text parts, and function calls' arguments."""
    for item in _objects(items):
        for part in _objects(item.get("content")):
            if part.get("type") == "output_text" and "text" in part:
                yield from _slot(part, "text", "assistant")
        if item.get("type") == "function_call" and "arguments" in item:
            yield from _slot(item, "arguments", "assistant", json=True)


def _responses_answer(body: dict[str, Any]) -> Iterator[TextSlot]:
    yield from _responses_output(body.get("output"))


def _event_type(data: dict[str, Any]) -> str:
    """A Responses or Anthropic stream event's `type`; "" when it has none that is text."""
    kind = data.get("type")
    return kind if isinstance(kind, str) else ""


def _responses_stream(data: dict[str, Any]) -> Iterator[StreamSlot]:
    """The deltas of a Responses stream: text, channelled by output item and content part,
    and function-call arguments, by output item. The events that repeat a text whole are
    `stream_whole_texts`'."""
    kind = _event_type(data)
    if kind == "response.output_text.delta" and isinstance(data.get("delta"), str):
        channel = ("text", _int(data, "output_index"), _int(data, "content_index"))
        yield StreamSlot("assistant", data, "delta", channel=channel)
    elif kind == "response.function_call_arguments.delta" and isinstance(data.get("delta"), str):
        channel = ("arguments", _int(data, "output_index"), 0)
        yield StreamSlot("assistant", data, "delta", True, channel)


def _responses_whole_texts(data: dict[str, Any]) -> Iterator[TextSlot]:
    """The texts a Responses stream event repeats whole once its deltas are over: a text or
    arguments done, a part or an item done, and the response's final output."""
    kind = _event_type(data)
    if kind == "response.output_text.done" and "text" in data:
        yield from _slot(data, "text", "assistant")
    elif kind == "response.function_call_arguments.done" and "arguments" in data:
        yield from _slot(data, "arguments", "assistant", json=True)
    elif kind == "response.content_part.done":
        yield from _responses_output([{"content": [data.get("part")]}])
    elif kind == "response.output_item.done":
        yield from _responses_output([data.get("item")])
    elif kind in _RESPONSES_ENDS:
        response = data.get("response")
        if isinstance(response, dict):
            yield from _responses_output(response.get("output"))


_RESPONSES_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})
# Stream events after which nothing more of any channel can come, by operation.
_STREAM_ENDS = {"messages": frozenset({"message_stop"}), "responses": _RESPONSES_ENDS}
_RESPONSES_CLOSING = frozenset(
    {"response.output_text.done", "response.function_call_arguments.done"}
)


def _int(holder: dict[str, Any], key: str) -> int:
    value = holder.get(key)
    return value if isinstance(value, int) else 0


_REQUESTS: dict[str, Callable[[dict[str, Any]], Iterator[TextSlot]]] = {
    "chat": _chat_request,
    "completions": _completions_request,
    "embeddings": _embeddings_request,
    "messages": _messages_request,
    "count_tokens": _messages_request,
    "responses": _responses_request,
}
_ANSWERS: dict[str, Callable[[dict[str, Any]], Iterator[TextSlot]]] = {
    "chat": _chat_answer,
    "completions": _completions_answer,
    "messages": _messages_answer,
    "responses": _responses_answer,
    "embeddings": _no_texts,
    "count_tokens": _no_texts,
}
_STREAMS: dict[str, Callable[[dict[str, Any]], Iterator[StreamSlot]]] = {
    "chat": _chat_stream,
    "completions": _completions_stream,
    "messages": _messages_stream,
    "responses": _responses_stream,
    "embeddings": _no_stream,
    "count_tokens": _no_stream,
}


def request_texts(operation: str, payload: dict[str, Any]) -> Iterator[TextSlot]:
    """The texts of a request body (a parsed JSON object), in order."""
    return _REQUESTS[operation](payload)


def answer_texts(operation: str, body: dict[str, Any]) -> Iterator[TextSlot]:
    """The texts of a whole (non-streamed) answer body; none for embeddings and counts."""
    return _ANSWERS[operation](body)


def stream_texts(operation: str, data: dict[str, Any]) -> list[StreamSlot]:
    """The texts of one stream event (its `data`, parsed), with their channels."""
    return list(_STREAMS[operation](data))


def stream_whole_texts(operation: str, data: dict[str, Any]) -> list[TextSlot]:
    """The texts a stream event repeats whole after their deltas (the Responses API's done
    events and final response; no other API repeats them)."""
    return list(_responses_whole_texts(data)) if operation == "responses" else []


def closes_every_channel(operation: str, data: dict[str, Any]) -> bool:
    """Whether nothing more of any text can follow this stream event (Anthropic's
    message_stop, the Responses API's final response); `[DONE]` is the caller's to see."""
    ends = _STREAM_ENDS.get(operation)
    return ends is not None and _event_type(data) in ends


def finished_indexes(operation: str, data: dict[str, Any]) -> list[int]:
    """The indexes whose channels this stream event closes: a choice with a finish reason, an
    Anthropic content block that stops, or a Responses output item's text or arguments done."""
    if operation == "messages":
        return [_index(data, 0)] if data.get("type") == "content_block_stop" else []
    if operation == "responses":
        return [_int(data, "output_index")] if _event_type(data) in _RESPONSES_CLOSING else []
    return [
        _index(choice, position)
        for position, choice in enumerate(_objects(data.get("choices")))
        if choice.get("finish_reason") is not None
    ]
