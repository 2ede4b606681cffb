"""What a request needs from a deployment: capabilities, and room in its context window.

Read once per request, and only for groups that filter by capability, so it may walk the
payload: one linear pass that never decodes images and never raises on a malformed shape
(whatever cannot be read is skipped; the codecs answer 400 later).

`prompt_tokens` is a rough, upper-ish estimate with no tokenizer: a quarter of the characters
of the system text, message texts, tool calls and results, and of the JSON of the tool
definitions, plus `IMAGE_TOKENS` per image (providers charge a few hundred to about 1600 for
usual sizes). Audio, files and PDF documents are not counted: their size cannot be told
without decoding them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import orjson

from edgeproxy.config import CAPABILITIES
from edgeproxy.operations import Operation

IMAGE_TOKENS = 1000
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Needs:
    """What serving one request takes: capabilities (a subset of config.CAPABILITIES), an
    estimate of its prompt tokens, and the output tokens it asks for (None: not given)."""

    capabilities: frozenset[str]
    prompt_tokens: int
    output_tokens: int | None


class _Tally:
    """Characters of text, images and exact token ids seen so far in one payload."""

    __slots__ = ("chars", "images", "tokens")

    def __init__(self) -> None:
        self.chars = 0
        self.images = 0
        self.tokens = 0

    def text(self, value: object) -> None:
        if isinstance(value, str):
            self.chars += len(value)

    def json(self, value: object) -> None:
        with suppress(orjson.JSONEncodeError):  # an integer beyond 64 bits, or absurd nesting
            self.chars += len(orjson.dumps(value))

    def parts(self, content: object, kinds: Mapping[str, _Part]) -> None:
        """A string, or a list of typed parts read by `kinds` (unknown types are skipped)."""
        if isinstance(content, str):
            self.chars += len(content)
            return
        for part in _dicts(content):
            kind = part.get("type")
            if isinstance(kind, str) and (read := kinds.get(kind)) is not None:
                read(self, part)

    def prompt_tokens(self) -> int:
        return -(-self.chars // CHARS_PER_TOKEN) + self.tokens + self.images * IMAGE_TOKENS

    def capabilities(self, stream: bool) -> set[str]:
        found = set()
        if self.images:
            found.add("vision")
        if stream:
            found.add("streaming")
        return found


_Part = Callable[[_Tally, dict[str, Any]], None]


def _dicts(value: object) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _image(tally: _Tally, _part: dict[str, Any]) -> None:
    tally.images += 1


def _function_call(tally: _Tally, function: object) -> None:
    if isinstance(function, dict):
        tally.text(function.get("name"))
        tally.text(function.get("arguments"))


def _tool_use(tally: _Tally, block: dict[str, Any]) -> None:
    tally.text(block.get("name"))
    tally.json(block.get("input"))


def _document(tally: _Tally, block: dict[str, Any]) -> None:
    source = block.get("source")
    if isinstance(source, dict):
        if source.get("type") == "text":
            tally.text(source.get("data"))
        tally.parts(source.get("content"), _NESTED)


# What a tool result or a document may hold. Kept apart from _PARTS so that nesting is one
# level deep: a hostile payload cannot drive the walk into deep recursion.
_NESTED: dict[str, _Part] = {
    "text": lambda tally, part: tally.text(part.get("text")),
    "image": _image,
}
# OpenAI parts and Anthropic blocks together: the two dialects' type names do not collide.
_PARTS: dict[str, _Part] = {
    **_NESTED,
    "refusal": lambda tally, part: tally.text(part.get("refusal")),
    "image_url": _image,
    "thinking": lambda tally, part: tally.text(part.get("thinking")),
    "tool_use": _tool_use,
    "tool_result": lambda tally, part: tally.parts(part.get("content"), _NESTED),
    "document": _document,
}


def _declares(payload: dict[str, Any], name: str) -> bool:
    value = payload.get(name)
    return isinstance(value, list) and bool(value)


def _max_tokens(payload: dict[str, Any], *names: str) -> int | None:
    """The first of `names` that holds a positive integer."""
    for name in names:
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _chat(payload: dict[str, Any], stream: bool) -> Needs:
    tally = _Tally()
    for message in _dicts(payload.get("messages")):
        tally.parts(message.get("content"), _PARTS)
        for call in _dicts(message.get("tool_calls")):
            _function_call(tally, call.get("function"))
        _function_call(tally, message.get("function_call"))
    found = tally.capabilities(stream)
    for name in ("tools", "functions"):
        if _declares(payload, name):
            tally.json(payload[name])
            found.add("tools")
    spec = payload.get("response_format")
    if isinstance(spec, dict) and spec.get("type") in ("json_object", "json_schema"):
        found.add("json")
    output = _max_tokens(payload, "max_completion_tokens", "max_tokens")
    return Needs(frozenset(found), tally.prompt_tokens(), output)


def _inputs(tally: _Tally, value: object) -> None:
    """A prompt or embedding input: a string, or a list of strings or token-id arrays."""
    tally.text(value)
    if isinstance(value, list):
        for item in value:
            tally.text(item)
            if isinstance(item, int):
                tally.tokens += 1
            elif isinstance(item, list):
                tally.tokens += len(item)


def _completions(payload: dict[str, Any], stream: bool) -> Needs:
    tally = _Tally()
    _inputs(tally, payload.get("prompt"))
    output = _max_tokens(payload, "max_tokens")
    return Needs(frozenset(tally.capabilities(stream)), tally.prompt_tokens(), output)


def _embeddings(payload: dict[str, Any], _stream: bool) -> Needs:
    tally = _Tally()
    _inputs(tally, payload.get("input"))
    return Needs(frozenset(), tally.prompt_tokens(), None)


# Responses API input parts: text and images by their own type names.
_RESPONSE_PARTS: dict[str, _Part] = {
    "input_text": lambda tally, part: tally.text(part.get("text")),
    "output_text": lambda tally, part: tally.text(part.get("text")),
    "input_image": _image,
}


def _responses(payload: dict[str, Any], stream: bool) -> Needs:
    """The Responses API: `instructions`, and `input` as a string or a list of items (messages
    with text or parts, function calls and their outputs)."""
    tally = _Tally()
    tally.text(payload.get("instructions"))
    items = payload.get("input")
    tally.text(items)
    for item in _dicts(items):
        content = item.get("content")
        tally.text(content)
        tally.parts(content, _RESPONSE_PARTS)
        tally.text(item.get("arguments"))
        tally.text(item.get("output"))
    found = tally.capabilities(stream)
    if _declares(payload, "tools"):
        tally.json(payload["tools"])
        found.add("tools")
    text = payload.get("text")
    spec = text.get("format") if isinstance(text, dict) else None
    if isinstance(spec, dict) and spec.get("type") in ("json_object", "json_schema"):
        found.add("json")
    return Needs(frozenset(found), tally.prompt_tokens(), _max_tokens(payload, "max_output_tokens"))


def _asks_json(payload: dict[str, Any]) -> bool:
    """Structured output: the beta's top-level `output_format`, or `output_config.format`."""
    config = payload.get("output_config")
    nested = config.get("format") if isinstance(config, dict) else None
    spec = payload.get("output_format") if nested is None else nested
    return isinstance(spec, dict) and spec.get("type") == "json_schema"


def _messages(payload: dict[str, Any], stream: bool) -> Needs:
    tally = _Tally()
    tally.parts(payload.get("system"), _PARTS)
    for message in _dicts(payload.get("messages")):
        tally.parts(message.get("content"), _PARTS)
    found = tally.capabilities(stream)
    if _declares(payload, "tools"):
        tally.json(payload["tools"])
        found.add("tools")
    if _asks_json(payload):
        found.add("json")
    return Needs(frozenset(found), tally.prompt_tokens(), _max_tokens(payload, "max_tokens"))


_READERS: dict[Operation, Callable[[dict[str, Any], bool], Needs]] = {
    Operation.CHAT: _chat,
    Operation.COMPLETIONS: _completions,
    Operation.EMBEDDINGS: _embeddings,
    Operation.RESPONSES: _responses,
    Operation.MESSAGES: _messages,
    Operation.COUNT_TOKENS: _messages,
}


def needs_of(operation: Operation, payload: dict[str, Any], stream: bool) -> Needs:
    """What `payload` (already known to be a JSON object) needs; never raises on its shape."""
    return _READERS[operation](payload, stream)


def missing(needs: Needs, capabilities: frozenset[str] | None) -> frozenset[str]:
    """The needed capabilities a deployment does not declare (None declares everything)."""
    return frozenset() if capabilities is None else needs.capabilities - capabilities


def exceeds_context(needs: Needs, context_window: int | None) -> bool:
    """Whether prompt and requested output overflow the window (None: unknown, never)."""
    total = needs.prompt_tokens + (needs.output_tokens or 0)
    return context_window is not None and total > context_window


def fits(needs: Needs, capabilities: frozenset[str] | None, context_window: int | None) -> bool:
    """Whether a deployment can serve the request. When `missing` is empty and only
    `exceeds_context` is true, a larger-context fallback group may serve it instead."""
    return not missing(needs, capabilities) and not exceeds_context(needs, context_window)


def why_unfit(needs: Needs, capabilities: frozenset[str] | None, context_window: int | None) -> str:
    """A short reason for a 400 message, e.g. "needs vision and tools"; empty when it fits."""
    reasons = []
    if lacking := missing(needs, capabilities):
        reasons.append("needs " + " and ".join(c for c in CAPABILITIES if c in lacking))
    if exceeds_context(needs, context_window):
        output = f" and up to {needs.output_tokens} output" if needs.output_tokens else ""
        reasons.append(
            f"about {needs.prompt_tokens} prompt{output} tokens exceed "
            f"a {context_window}-token context window"
        )
    return "; ".join(reasons)
