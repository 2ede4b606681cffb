"""Cache keys: when two requests are the same question.

A key is the hex SHA-256 of one canonical byte string: a format version, the key settings,
the tenant namespace, the operation, the form of the body, the model group (the resolved
public name, never the payload's `model`, so aliases share entries) and the body. A hit must
never answer a different question: every field is part of the key except `EXCLUDED_FIELDS`,
which shape only delivery, billing or logging, and a field nobody has judged stays in (a
missed hit costs money, a wrong hit is a bug). `include` and `exclude` name top-level fields.

The body, in the client's own dialect (the default):
- JSON with sorted keys: member order and formatting never matter (the payload is parsed).
- An integral float is its integer (1.0 ≡ 1, -0.0 ≡ 0) up to 2**53, beyond which floats are
  not exact; booleans stay booleans (true never equals 1).
- A message's `content` (both dialects) or Anthropic's `system` that is one plain text part,
  `{"type": "text", "text": s}` and nothing else, is s; a part that carries more
  (`cache_control`, `citations`) is kept as it is. OpenAI's `stop` ["s"] is "s".
- Text inside prompts is kept exactly: leading, trailing and inner whitespace can change an
  answer (code, tables, poems), and so can Unicode forms, which are not normalised either.
- `case_insensitive` case-folds the text of system, user and assistant messages; tool
  results, tool calls, reasoning, schemas and settings keep their case.

With `share_across_dialects`, chat and messages requests are keyed over the neutral form that
cross-dialect routes translate (`dialects.neutral.ChatRequest`), so an OpenAI and an Anthropic
client asking the same thing share an entry. That parse is lossy in places (it drops a
message's `name`, an image's `detail`, a tool's `strict`; it reads `reasoning_effort` "xhigh"
as "high"), so only a request it keeps whole is keyed that way: the `_OPENAI_*` and
`_ANTHROPIC_*` tables say what may appear (Anthropic's `cache_control`, a caching hint, may).
Any other request, and one the parser refuses, is keyed in its own dialect, never shared.

Request headers can change answers too (Anthropic's `anthropic-beta` turns on features):
`key_scope` adds the values of the headers the settings name to the model group, and both the
exact key and the semantic partition are taken over that scope.

The exclusions in effect and case folding are part of every key, so an entry stored under one
setting is never served under another. Pure: no I/O, no clock. Never raises on the shape of a
payload: what canonical JSON cannot hold (integers beyond 64 bits, lone surrogates, nesting
deeper than `_MAX_DEPTH`, objects of other types) is keyed by `_encode`, exactly but without
the equivalences. NaN and infinities, which no JSON parser of the proxy yields, key as null.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from edgeproxy.config import CacheKeySettings
from edgeproxy.dialects import anthropic_messages, openai_chat
from edgeproxy.dialects.neutral import ChatRequest, Text
from edgeproxy.operations import Operation

VERSION: Final = "edgeproxy-cache-key/1"  # change it whenever a canonical form changes

# Top-level fields that cannot change the answer, in either dialect.
EXCLUDED_FIELDS: Final = frozenset(
    {
        "model",  # replaced by the resolved group, so aliases of one group share entries
        "stream",  # a stored answer is replayed as JSON or as events alike
        "stream_options",  # OpenAI: whether a stream ends with a usage chunk
        "user",  # OpenAI: the end user's id, for abuse monitoring
        "metadata",  # OpenAI: tags of stored completions; Anthropic: `user_id` for abuse
        "store",  # OpenAI: keep the completion for evals and distillation
        "service_tier",  # both: processing priority and price, not content
        "safety_identifier",  # OpenAI: the end user's id for abuse detection
        "prompt_cache_key",  # OpenAI: routing hint for the provider's prompt cache
        "prompt_cache_retention",  # OpenAI: how long the provider keeps that cache
        "cache_control",  # Anthropic, top level: automatic prompt caching (price, latency)
    }
)

_MAX_DEPTH = 100  # real requests nest under 20; orjson stops at 254
_EXACT = 2**53  # the largest integers a float holds exactly
_SORTED = orjson.OPT_SORT_KEYS


class _Unencodable(Exception):
    """A value canonical JSON cannot hold exactly: left to `_encode`."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """What the settings decide, worked out once per settings object."""

    excluded: frozenset[str]
    fold: bool
    share: bool
    tag: str  # the settings that change canonical bodies, as part of every key


@functools.lru_cache(maxsize=64)
def _plan(settings: CacheKeySettings) -> _Plan:
    excluded = (EXCLUDED_FIELDS | settings.exclude) - settings.include
    tag = orjson.dumps([sorted(excluded), settings.case_insensitive]).decode()
    return _Plan(excluded, settings.case_insensitive, settings.share_across_dialects, tag)


def key_scope(group: str, headers: Mapping[str, str], settings: CacheKeySettings) -> str:
    """Model group `group`, with every value of each request header `settings.headers` names
    (a header sent twice counts twice): what a cache key's group stands for."""
    if not settings.headers:
        return group
    getall = getattr(headers, "getall", None)  # a multidict keeps every value
    parts = [group]
    for name in settings.headers:
        if getall is not None:
            values = getall(name, ())
        else:
            values = () if (value := headers.get(name)) is None else (value,)
        parts.extend([f"{name}: {value}" for value in values])
    return group if len(parts) == 1 else "\n".join(parts)


def cache_key(
    operation: Operation,
    payload: dict[str, Any],
    group: str,
    namespace: str,
    settings: CacheKeySettings,
) -> str:
    """The key of `payload` (a parsed request of `operation`) sent to model group `group`
    by tenant `namespace`: 64 hex digits."""
    plan = _plan(settings)
    try:
        data = _canonical(operation, payload, group, namespace, plan)
    except (_Unencodable, orjson.JSONEncodeError):
        data = _exact(operation, payload, group, namespace, plan)
    return hashlib.sha256(data).hexdigest()


def _canonical(
    operation: Operation, payload: dict[str, Any], group: str, namespace: str, plan: _Plan
) -> bytes:
    if plan.share and operation in _SHAREABLE and isinstance(payload, dict):
        neutral = _neutral_body(payload, operation, plan)
        if neutral is not None:
            return _dump([VERSION, plan.tag, namespace, "chat", "neutral", group], neutral)
    head = [VERSION, plan.tag, namespace, operation.label, operation.dialect.value, group]
    if isinstance(payload, dict):
        return _dump(head, _dialect_body(payload, operation, plan.excluded, plan.fold))
    return _dump(head, payload)


def _dump(head: list[str], body: object) -> bytes:
    """Canonical JSON. orjson writes every integral float below 1e16 as digits and ".0", so a
    body with no such number is already canonical; the rare one that has one (or a string that
    looks like one) is normalised first."""
    data = orjson.dumps([*head, body], option=_SORTED)
    if not _integral_float(data):
        return data
    return orjson.dumps([*head, _value(body, 0)], option=_SORTED)


def _integral_float(data: bytes) -> bool:
    """Whether JSON text may hold a number such as 1.0 or -0.0: ".0" ending a value, after
    digits (16 at most below 1e16) that begin a value. Strings only cause false alarms."""
    end = _FLOAT_END(data)
    while end is not None:
        at = end.start()
        if _FLOAT_START(data, max(0, at - 24), at):
            return True
        end = _FLOAT_END(data, at + 2)
    return False


def _exact(
    operation: Operation, payload: dict[str, Any], group: str, namespace: str, plan: _Plan
) -> bytes:
    """The slow path's bytes; the leading NUL keeps them apart from canonical JSON."""
    if isinstance(payload, dict):
        payload = {name: value for name, value in payload.items() if name not in plan.excluded}
    head = [VERSION, plan.tag, namespace, operation.label, operation.dialect.value, group]
    return b"\x00" + _encode([*head, payload])


# --- the canonical form of JSON values --------------------------------------------------------

_FLOAT_END = re.compile(rb"\.0[\]},]").search  # a literal first: a fast scan
_FLOAT_START = re.compile(rb"[\[:,]-?[0-9]+\Z").search
_FIELDS: dict[type, tuple[str, ...]] = {}  # the field names of each dataclass met


def _value(value: object, depth: int) -> object:
    """`value` with its integral floats as integers, in new containers (dataclasses, the
    neutral form's, stay dataclasses: orjson writes their fields in their own order)."""
    if type(value) is float:
        return _number(value)
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if depth > _MAX_DEPTH:
        raise _Unencodable
    if isinstance(value, dict):
        return {key: _value(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_value(item, depth + 1) for item in value]
    return _other(value, depth)


def _other(value: object, depth: int) -> object:
    """Subclasses of JSON's types (orjson writes them as their base) and dataclasses."""
    if isinstance(value, float):
        return _number(float(value))
    if isinstance(value, str | int):
        return value
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        raise _Unencodable  # no JSON value: a caller's own object
    names = _FIELDS.get(type(value))
    if names is None:
        names = _FIELDS.setdefault(type(value), tuple(f.name for f in dataclasses.fields(value)))
    fields = {name: _value(getattr(value, name), depth + 1) for name in names}
    try:
        return dataclasses.replace(value, **fields)
    except (TypeError, ValueError):  # a caller's dataclass with fields __init__ does not take
        raise _Unencodable from None


def _number(value: float) -> object:
    if value.is_integer():
        return int(value) if -_EXACT <= value <= _EXACT else value
    if not math.isfinite(value):
        raise _Unencodable  # orjson would write null
    return value


# Equivalent encodings. Each rule returns its value itself when nothing changes, else a
# shallow copy of what changed: most payloads are keyed without copying their messages.


def _fold(text: str, fold: bool) -> str:
    return text.casefold() if fold else text


def _plain_text(part: object) -> bool:
    return (
        type(part) is dict
        and len(part) == 2
        and part.get("type") == "text"
        and type(part.get("text")) is str
    )


def _content(content: object, fold: bool) -> object:
    """A message's content or Anthropic's system: one plain text part is its string; the
    text of text parts is folded when asked."""
    if type(content) is str:
        return _fold(content, fold)
    if type(content) is not list:
        return content
    if len(content) == 1 and _plain_text(content[0]):
        return _fold(content[0]["text"], fold)
    if not fold:
        return content
    return [
        {**part, "text": _fold(part["text"], True)}
        if type(part) is dict and part.get("type") == "text" and type(part.get("text")) is str
        else part
        for part in content
    ]


def _messages(messages: object, fold: bool) -> object:
    if type(messages) is not list:
        return messages
    changed = None
    for index, message in enumerate(messages):
        if type(message) is not dict:
            continue
        content = message.get("content")
        folds = fold and message.get("role") not in ("tool", "function")  # results keep case
        if not folds and (
            type(content) is not list or len(content) != 1 or not _plain_text(content[0])
        ):
            continue
        if changed is None:
            changed = list(messages)
        changed[index] = copied = message.copy()
        copied["content"] = _content(content, folds)
    return messages if changed is None else changed


def _stop(stop: object, _fold: bool) -> object:
    if type(stop) is list and len(stop) == 1 and type(stop[0]) is str:
        return stop[0]
    return stop


_Rule = Callable[[object, bool], object]
_OPENAI_CHAT: dict[str, _Rule] = {"messages": _messages, "stop": _stop}
_ANTHROPIC: dict[str, _Rule] = {"messages": _messages, "system": _content}
_RULES: dict[Operation, dict[str, _Rule]] = {
    Operation.CHAT: _OPENAI_CHAT,
    Operation.COMPLETIONS: {"stop": _stop},
    Operation.EMBEDDINGS: {},
    Operation.RESPONSES: {},
    Operation.MESSAGES: _ANTHROPIC,
    Operation.COUNT_TOKENS: _ANTHROPIC,
}


def _dialect_body(
    payload: dict[str, Any], operation: Operation, excluded: frozenset[str], fold: bool
) -> dict[str, Any]:
    """The payload's fields but the excluded ones, equivalent encodings made one."""
    rules = _RULES[operation]
    body = {}
    for name, value in payload.items():
        if name not in excluded:
            rule = rules.get(name)
            body[name] = value if rule is None else rule(value, fold)
    return body


# --- the neutral form (share_across_dialects) -------------------------------------------------

_REQUEST_FIELDS = tuple(
    f.name for f in dataclasses.fields(ChatRequest) if f.name not in ("messages", "system")
)


def _neutral_body(payload: dict[str, Any], operation: Operation, plan: _Plan) -> object | None:
    """The neutral form of a request, or None when it would not keep all the request says.

    Top-level numbers and the thinking budget are normalised before the parse, which takes
    integers only (so 1.0 ≡ 1 holds for them). A tool call's arguments are the JSON text the
    parse gives (OpenAI's as sent, Anthropic's input as orjson writes it): the same call
    spelled otherwise misses. The neutral parts tell each other apart by their field names
    (`text` alone is a Text; `text`, `signature` and `redacted` a Thinking...).
    """
    parse, shareable = _SHAREABLE[operation]
    body = _dialect_body(payload, operation, plan.excluded, False)
    for name, value in body.items():
        if type(value) is float:
            body[name] = _number(value)
    if type(thinking := body.get("thinking")) is dict:
        body["thinking"] = _value(thinking, 1)
    try:
        if not shareable(body):
            return None
        request = parse(body)
    except Exception:  # a 400 to come (ProxyError), or a shape the parser never expected
        return None
    neutral: dict[str, object] = {name: getattr(request, name) for name in _REQUEST_FIELDS}
    fold = plan.fold
    neutral["system"] = [_fold(text.text, fold) for text in request.system]
    neutral["messages"] = [
        [m.role, [Text(_fold(p.text, True)) if type(p) is Text else p for p in m.parts]]
        if fold
        else [m.role, m.parts]
        for m in request.messages
    ]
    return neutral


def _within(value: object, allowed: frozenset[str]) -> bool:
    """An object with no fields but `allowed` (a field that is null or [] says nothing)."""
    return type(value) is dict and (
        value.keys() <= allowed
        or all(key in allowed or item is None or item == [] for key, item in value.items())
    )


def _each(values: object, check: Callable[[Any], bool]) -> bool:
    return values is None or (type(values) is list and all(check(value) for value in values))


def _keys(*names: str) -> frozenset[str]:
    return frozenset(names)


# What the OpenAI parse keeps. It also merges consecutive turns of one role and moves every
# system message to the front, so a request where either would change something is not kept.
_OPENAI_MESSAGE = _keys(
    "role",
    "content",
    "tool_calls",
    "tool_call_id",
    "function_call",
    "refusal",
    "reasoning_content",
    "reasoning",
)
_OPENAI_TEXT = _keys("type", "text")
_OPENAI_IMAGE = _keys("type", "image_url")
_OPENAI_CALL = _keys("id", "type", "function")
_OPENAI_TOOL = _keys("type", "function")
_OPENAI_FUNCTION = _keys("name", "description", "parameters")
_OPENAI_ARGUMENTS = _keys("name", "arguments")
_OPENAI_FORMAT = _keys("type", "json_schema")
_OPENAI_SCHEMA = _keys("name", "schema", "strict")
_NAME = _keys("name")
_URL = _keys("url")
_OPENAI_EFFORTS = (None, "minimal", "low", "medium", "high")  # "none", "xhigh", "max" are mapped


def _openai_texts(content: object) -> bool:
    """A string, or text parts none of which is empty (the parse drops empty parts)."""
    return type(content) is str or _each(
        content,
        lambda part: (
            _within(part, _OPENAI_TEXT) and part.get("type") == "text" and part.get("text") != ""
        ),
    )


def _openai_user_part(part: object) -> bool:
    if type(part) is not dict:
        return False
    if part.get("type") == "text":
        return _within(part, _OPENAI_TEXT)
    image = part.get("image_url")
    return (
        part.get("type") == "image_url"
        and _within(part, _OPENAI_IMAGE)
        and (type(image) is str or _within(image, _URL))
    )


def _openai_call(call: Any) -> bool:
    return _within(call, _OPENAI_CALL) and _within(call.get("function"), _OPENAI_ARGUMENTS)


def _openai_named(choice: Any, nested: bool) -> bool:
    """A tool choice (`nested`: `{"type", "function": {"name"}}`) or a legacy function_call."""
    if choice is None or type(choice) is str:
        return True
    if not nested:
        return _within(choice, _NAME)
    return _within(choice, _OPENAI_TOOL) and _within(choice.get("function"), _NAME)


def _openai_assistant(message: dict[str, Any]) -> bool:
    """A turn that says something (an empty one is dropped and the user turns around it
    merge), with no refusal (it would become plain text) and one reasoning field at most."""
    content, calls = message.get("content"), message.get("tool_calls")
    legacy = message.get("function_call")
    if not (_openai_texts(content) and _each(calls, _openai_call)):
        return False
    texts = [content] if type(content) is str else [part.get("text") for part in content or ()]
    return bool(
        (any(texts) or calls or legacy is not None)
        and (legacy is None or _within(legacy, _OPENAI_ARGUMENTS))
        and not message.get("refusal")
        and (message.get("reasoning_content") is None or message.get("reasoning") is None)
    )


def _openai_turn(message: Any, previous: object) -> bool:
    if not _within(message, _OPENAI_MESSAGE):
        return False
    role, content = message.get("role"), message.get("content")
    if role == "system":  # an empty one is dropped: no longer there at all
        return previous is None and content not in ("", []) and _openai_texts(content)
    if role == "user":
        parts = type(content) is list and bool(content) and _each(content, _openai_user_part)
        return previous != "user" and (type(content) is str or parts)
    if role == "assistant":
        return previous != "assistant" and _openai_assistant(message)
    return role == "tool" and (content is None or _openai_texts(content))


def _openai_shareable(body: dict[str, Any]) -> bool:
    messages, spec = body.get("messages"), body.get("response_format")
    if type(messages) is not list:
        return False
    previous = None
    for message in messages:
        if not _openai_turn(message, previous):
            return False
        previous = message.get("role")
    choice, legacy = body.get("tool_choice"), body.get("function_call")
    tools, functions = body.get("tools"), body.get("functions")
    return bool(
        (body.get("max_completion_tokens") is None or body.get("max_tokens") is None)
        and body.get("reasoning_effort") in _OPENAI_EFFORTS
        and not (tools and functions)
        and (choice is None or legacy is None)
        and _each(
            tools,
            lambda tool: (
                _within(tool, _OPENAI_TOOL) and _within(tool.get("function"), _OPENAI_FUNCTION)
            ),
        )
        and _each(functions, lambda function: _within(function, _OPENAI_FUNCTION))
        and _openai_named(choice, nested=True)
        and _openai_named(legacy, nested=False)
        and (
            spec is None
            or (
                _within(spec, _OPENAI_FORMAT)
                and (
                    spec.get("json_schema") is None or _within(spec["json_schema"], _OPENAI_SCHEMA)
                )
            )
        )
    )


# What the Anthropic parse keeps (Anthropic itself merges consecutive turns of one role).
_ANTHROPIC_BLOCKS = {
    "text": _keys("type", "text", "cache_control"),
    "image": _keys("type", "source", "cache_control"),
    "tool_use": _keys("type", "id", "name", "input", "cache_control"),
    "tool_result": _keys("type", "tool_use_id", "content", "is_error", "cache_control"),
    "thinking": _keys("type", "thinking", "signature"),
    "redacted_thinking": _keys("type", "data"),
}
_ANTHROPIC_MESSAGE = _keys("role", "content")
_IMAGE_SOURCE = _keys("type", "media_type", "data", "url")
_ANTHROPIC_TOOL = _keys("type", "name", "description", "input_schema", "cache_control")
_ANTHROPIC_CHOICE = _keys("type", "name", "disable_parallel_tool_use")
_THINKING = _keys("type", "budget_tokens")
_FORMAT = _keys("type", "schema")
_ANTHROPIC_EFFORTS = ("low", "medium", "high")  # "xhigh" and "max" are mapped to "high"
_ON = ("adaptive", "enabled")


def _anthropic_block(block: Any) -> bool:
    kind = block.get("type") if type(block) is dict else None
    allowed = _ANTHROPIC_BLOCKS.get(kind) if type(kind) is str else None
    if allowed is None or not _within(block, allowed):
        return False
    if kind == "image":
        return _within(block.get("source"), _IMAGE_SOURCE)
    content = block.get("content") if kind == "tool_result" else None
    return type(content) is str or _each(content, _anthropic_block)


def _anthropic_content(content: object) -> bool:
    return type(content) is str or (type(content) is list and _each(content, _anthropic_block))


def _anthropic_shareable(body: dict[str, Any]) -> bool:
    """Thinking, if given, is on: the parse reads "disabled" as no thinking at all, and effort
    alone as adaptive thinking, so an effort counts only next to thinking."""
    messages, system, thinking = body.get("messages"), body.get("system"), body.get("thinking")
    config = body.get("output_config")
    effort = config.get("effort") if type(config) is dict else None
    nested = config.get("format") if type(config) is dict else None
    beta = body.get("output_format")
    return bool(
        type(messages) is list
        and all(
            _within(m, _ANTHROPIC_MESSAGE) and _anthropic_content(m.get("content"))
            for m in messages
        )
        and system != ""  # dropped: no longer there at all
        and (
            system is None
            or type(system) is str
            or _each(system, lambda b: _anthropic_block(b) and b.get("type") == "text")
        )
        and _each(body.get("tools"), lambda tool: _within(tool, _ANTHROPIC_TOOL))
        and (body.get("tool_choice") is None or _within(body["tool_choice"], _ANTHROPIC_CHOICE))
        and (thinking is None or (_within(thinking, _THINKING) and thinking.get("type") in _ON))
        and (effort is None or (effort in _ANTHROPIC_EFFORTS and thinking is not None))
        and (nested is None or beta is None)
        and all(spec is None or _within(spec, _FORMAT) for spec in (nested, beta))
    )


_SHAREABLE: dict[
    Operation, tuple[Callable[[dict[str, Any]], ChatRequest], Callable[[dict[str, Any]], bool]]
] = {
    Operation.CHAT: (openai_chat.parse_chat_request, _openai_shareable),
    Operation.MESSAGES: (anthropic_messages.parse_chat_request, _anthropic_shareable),
}


# --- the exact slow path ----------------------------------------------------------------------


def _encode(value: object) -> bytes:
    """Any value as bytes, at any depth, with no loss: each item is a tag and a length or a
    terminator, so distinct JSON values never give the same bytes. Object members are sorted;
    numbers and text are kept exactly as they are (no 1.0 ≡ 1 here). A container met again
    (a cycle, in a caller's own value) is written as a reference to its first appearance."""
    out = bytearray()
    stack = [value]
    seen: dict[int, int] = {}
    while stack:
        item = stack.pop()
        if isinstance(item, dict | list | tuple):
            if (first := seen.get(id(item))) is not None:
                out += b"r%d;" % first
                continue
            seen[id(item)] = len(seen)
        if item is None or item is True or item is False:
            out += b"n" if item is None else b"t" if item else b"f"
        elif isinstance(item, int):
            out += b"i%x;" % item  # hexadecimal: no digit limit
        elif isinstance(item, float):
            out += b"d%s;" % repr(item).encode()
        elif isinstance(item, str):
            _chunk(out, b"s", item.encode("utf-8", "surrogatepass"))
        elif isinstance(item, dict):
            out += b"{%d;" % len(item)
            for key, member in sorted(item.items(), key=_member_order, reverse=True):
                stack += (member, key)
        elif isinstance(item, list | tuple):
            out += b"[%d;" % len(item)
            stack.extend(reversed(item))
        else:
            _chunk(out, b"o", _describe(item))
    return bytes(out)


def _chunk(out: bytearray, tag: bytes, data: bytes) -> None:
    out += b"%s%d:%s" % (tag, len(data), data)


def _member_order(member: tuple[object, object]) -> tuple[str, bytes]:
    key = member[0]
    order = key.encode("utf-8", "surrogatepass") if isinstance(key, str) else _describe(key)
    return type(key).__name__, order


def _describe(item: object) -> bytes:
    """A caller's own object (never in a parsed payload), by its type and repr."""
    try:
        text = f"{type(item).__qualname__}:{item!r}"
    except Exception:  # a repr that fails, or an integer too long to print in decimal
        text = type(item).__qualname__
    return text.encode("utf-8", "surrogatepass")
