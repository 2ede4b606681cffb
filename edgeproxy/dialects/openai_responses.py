"""OpenAI's Responses API (`POST /v1/responses`): usage, errors, and the answers the mock gives.

The proxy serves it same-dialect only: to OpenAI, Azure OpenAI's v1 API and OpenAI-compatible
servers, whose bytes pass through. Its usage differs from chat's in name (`input_tokens`,
`output_tokens`, `input_tokens_details.cached_tokens`, `output_tokens_details.reasoning_tokens`)
and, in a stream, arrives inside the `response.completed` (or `.incomplete`, `.failed`) event's
`response` object. Error bodies are OpenAI's; a stream that fails after it started ends with
the Responses API's own `error` event.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

import orjson

from edgeproxy.dialects.neutral import ChatResponse, Usage, split_text
from edgeproxy.dialects.openai import error_object, render_error, status_for
from edgeproxy.dialects.usage_body import body_usage
from edgeproxy.errors import ProxyError
from edgeproxy.sse import SSEEvent

__all__ = [  # a Codec: its error bodies are OpenAI's
    "NAME",
    "USAGE_MARKERS",
    "StreamUsage",
    "answer_id_of_body",
    "error_event",
    "read_usage",
    "render_error",
    "render_response",
    "response_stream",
    "status_for",
    "usage_of_body",
]
NAME = "openai"  # the dialect, as headers and logs name it
# What an event must contain for StreamUsage to learn from it: the response created (its id),
# the final response's usage, or an error (an `error` event, or a response that failed).
USAGE_MARKERS = (b'"usage":{', b'"usage": {', b'"error"', b'"response.created"')
# The answer's own id leads its object, before any output item's (`msg_...`, `fc_...`).
_ANSWER_ID = re.compile(rb'"id"\s*:\s*"(resp_[A-Za-z0-9_\-]{1,200})"')
# The same, alone: in a stream, and in a stored-response call's path, where it is sent as one
# path segment as it is.
is_answer_id = re.compile(r"resp_[A-Za-z0-9_\-]{1,200}").fullmatch
STORED_PREFIX: Final = "/v1/responses/"
# The calls on a stored answer, by method and what follows its id in the path.
STORED_CALLS: Final[Mapping[tuple[str, str], str]] = {
    ("GET", ""): "retrieve",
    ("DELETE", ""): "delete",
    ("GET", "/input_items"): "input_items",
    ("POST", "/cancel"): "cancel",
}
_STORED_SUFFIXES = frozenset(suffix for _, suffix in STORED_CALLS)
_ID_WITHIN = 1024  # bytes of a whole answer its id is looked for in


def error_event(err: ProxyError) -> bytes:
    """The last event of a stream that failed after it started: the Responses API's `error`
    event (its `code` and `message`, as typed clients read it), carrying OpenAI's error object
    too, on which the SDKs raise."""
    error = error_object(err)
    event = {
        "type": "error",
        "code": error["code"],
        "message": error["message"],
        "param": error["param"],
        "error": error,
    }
    return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"


def read_usage(obj: dict[str, Any]) -> Usage | None:
    """Usage from a Response object (or any object with a Responses-style `usage`)."""
    raw = obj.get("usage")
    if not isinstance(raw, dict):
        return None
    return Usage(
        input_tokens=_count(raw, "input_tokens"),
        output_tokens=_count(raw, "output_tokens"),
        cached_tokens=_count(raw.get("input_tokens_details"), "cached_tokens"),
        reasoning_tokens=_count(raw.get("output_tokens_details"), "reasoning_tokens"),
    )


def _count(holder: object, name: str) -> int:
    """A token count, 0 where a provider sent none, or something that is not one."""
    value = holder.get(name) if isinstance(holder, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_of_body(body: bytes) -> Usage | None:
    """Usage from a whole Response body; None if it has none or is not JSON."""
    return body_usage(body, read_usage)


def answer_id_of_body(body: bytes) -> str | None:
    """The id of a whole Response (`resp_...`), for routing/affinity.py."""
    found = _ANSWER_ID.search(body, 0, _ID_WITHIN)
    return found.group(1).decode() if found is not None else None


class StreamUsage:
    """Watches relayed Responses events for the response's id, its final usage, and a failure
    (an `error` event, or `response.failed`)."""

    __slots__ = ("answer_id", "failed", "usage")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.failed = False
        self.answer_id: str | None = None

    def observe(self, event: SSEEvent) -> None:
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(payload, dict):
            return
        kind = payload.get("type")
        if kind in ("error", "response.failed"):
            self.failed = True
        response = payload.get("response")
        if isinstance(response, dict):
            self.usage = read_usage(response) or self.usage
            answer_id = response.get("id")
            if self.answer_id is None and isinstance(answer_id, str) and is_answer_id(answer_id):
                self.answer_id = answer_id


def _usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _response(reply: ChatResponse, *, done: bool, payload: dict[str, Any]) -> dict[str, Any]:
    """A Response object: in progress and empty, or complete with the answer and its usage."""
    return {
        "id": "resp_" + reply.id,
        "object": "response",
        "created_at": reply.created,
        "status": "completed" if done else "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": payload.get("instructions"),
        "max_output_tokens": payload.get("max_output_tokens"),
        "model": reply.model,
        "output": [_message(reply, done=True)] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": payload.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": payload.get("store", True),
        "temperature": payload.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": payload.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": _usage_object(reply.usage) if done else None,
        "user": None,
        "metadata": payload.get("metadata") or {},
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


def _message(reply: ChatResponse, *, done: bool) -> dict[str, Any]:
    return {
        "id": "msg_" + reply.id,
        "type": "message",
        "status": "completed" if done else "in_progress",
        "role": "assistant",
        "content": [_text_part(reply.text)] if done else [],
    }


def render_response(reply: ChatResponse, payload: dict[str, Any]) -> bytes:
    """A whole Response, as `POST /v1/responses` answers without `stream`."""
    return orjson.dumps(_response(reply, done=True, payload=payload))


def response_stream(reply: ChatResponse, payload: dict[str, Any], pieces: int) -> Iterator[bytes]:
    """The answer as the Responses API streams one: the response created, its message and text
    part opened, the text in `pieces` deltas, each closed again, and the response completed."""
    item = "msg_" + reply.id
    text = reply.text
    where = {"item_id": item, "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response(reply, done=False, payload=payload)},
        {"type": "response.in_progress", "response": _response(reply, done=False, payload=payload)},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": _message(reply, done=False),
        },
        {"type": "response.content_part.added", **where, "part": _text_part("")},
        *(
            {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
            for piece in split_text(text, pieces)
        ),
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": _text_part(text)},
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": _message(reply, done=True),
        },
        {"type": "response.completed", "response": _response(reply, done=True, payload=payload)},
    ]
    for number, event in enumerate(events):
        event["sequence_number"] = number
        yield b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def stored_call(path: str) -> tuple[str, str] | None:
    """(answer id, what follows it) when `path` names a stored answer or one of its calls."""
    if not path.startswith(STORED_PREFIX):
        return None
    answer_id, slash, rest = path[len(STORED_PREFIX) :].partition("/")
    suffix = slash + rest
    if suffix not in _STORED_SUFFIXES or not is_answer_id(answer_id):
        return None
    return answer_id, suffix
