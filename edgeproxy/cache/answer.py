"""A stored answer: what a complete, successful response was, in a form any client can get.

Chat answers are kept as their neutral event sequence (`dialects.neutral`), captured from what
the client was sent (decoded with that client dialect's own codec, in the background), so a
later request, streamed or not, in either dialect, is answered from it: a stream replays every
event in the client's dialect with the original deltas; a complete answer is assembled from
them with its usage. Embeddings answers are kept as the body that was sent (one dialect).

An answer is kept compact, its events as encoded rows (L1 holds thousands, and every
long-lived object is work for the garbage collector); `encode`/`decode` give the bytes stored
in Redis: a JSON header line with a format version, then the rows or the body as they are, so
an entry written by another version of the proxy reads as a miss, never as a wrong answer.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import orjson

from edgeproxy.dialects import anthropic_messages, openai_chat
from edgeproxy.dialects.neutral import (
    ChatRequest,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageReport,
    assemble,
    events_of,
)
from edgeproxy.dialects.neutral import Start as StartEvent
from edgeproxy.dialects.neutral import Stop as StopEvent
from edgeproxy.dialects.translation import ClientChat, UpstreamChat
from edgeproxy.errors import ProxyError
from edgeproxy.operations import Operation

FORMAT = 2  # of the bytes kept in Redis; another version's entries read as misses
# Deltas a stored complete answer is cut into when a client asks for it as a stream.
REPLAY_PIECES = 8


class ChatDialect(ClientChat, UpstreamChat, Protocol):
    """A dialect spoken both ways: it renders answers for clients and reads them back."""


_CHAT: dict[Operation, ChatDialect] = {
    Operation.CHAT: openai_chat,
    Operation.MESSAGES: anthropic_messages,
}
CACHEABLE = frozenset({*_CHAT, Operation.EMBEDDINGS})


# Request fields whose answers carry more than the neutral form holds (several choices, token
# log-probabilities, audio, server-side tools' results and citations): such requests are not
# cached, rather than replayed without part of their answer.
_OPENAI_LOSSY = ("logprobs", "top_logprobs", "audio", "web_search_options")
_OPENAI_SUSPECT = frozenset({"n", "modalities", *_OPENAI_LOSSY})
_ANTHROPIC_SERVER_TOOLS = ("web_search", "web_fetch", "code_execution", "computer", "bash")


def replayable(operation: Operation, payload: dict[str, Any]) -> bool:
    """Whether an answer to this request survives being stored in neutral form."""
    if operation is Operation.EMBEDDINGS:
        return True
    if operation is Operation.CHAT:
        if _OPENAI_SUSPECT.isdisjoint(payload):  # the usual request: none of those fields
            return True
        n = payload.get("n")
        if (isinstance(n, int) and n > 1) or any(payload.get(f) for f in _OPENAI_LOSSY):
            return False
        modalities = payload.get("modalities")
        return not (isinstance(modalities, list) and "audio" in modalities)
    tools = payload.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            kind = tool.get("type") if isinstance(tool, dict) else None
            if isinstance(kind, str) and kind.startswith(_ANTHROPIC_SERVER_TOOLS):
                return False
    return "mcp_servers" not in payload


Shape = tuple[Operation, bool, bool]  # what a client asked for: operation, stream, include_usage


@dataclass(slots=True, eq=False)
class StoredAnswer:
    """A complete answer: a chat answer's neutral events as encoded rows (`rows`, see
    `_event_row`), or another operation's `body` as it was sent; `created` is the wall-clock
    time it was stored (the edge sends its age). Compact because L1 holds thousands: a few
    objects each rather than one per event keeps memory and the garbage collector's work
    (which grows with every long-lived object) small. The events are decoded when a new form
    is rendered; the forms clients asked for are kept in `rendered` and count in `size`."""

    rows: bytes = b""
    body: bytes = b""
    created: float = 0.0
    tags: tuple[str, ...] = ()
    rendered: dict[Shape, bytes] = field(default_factory=dict)

    @classmethod
    def of_events(
        cls, events: Sequence[StreamEvent], created: float, tags: tuple[str, ...] = ()
    ) -> StoredAnswer:
        return cls(_exact(orjson.dumps([_event_row(e) for e in events])), b"", created, tags)

    @property
    def events(self) -> tuple[StreamEvent, ...]:
        """The chat answer's events, decoded anew on every call (none for a body)."""
        return tuple(_event(row) for row in orjson.loads(self.rows)) if self.rows else ()

    @property
    def size(self) -> int:
        """Roughly the bytes it holds in memory, rendered forms included (the L1 byte bound)."""
        held = _HELD + len(self.rows) + len(self.body)
        return held + sum(_BYTES + len(form) for form in self.rendered.values())

    def render(self, operation: Operation, stream: bool, include_usage: bool) -> bytes:
        """The answer as `operation`'s client expects it, rendered once per shape (a body is
        its own one form)."""
        if not self.rows:
            return self.body
        shape = (operation, stream, include_usage)
        form = self.rendered.get(shape)
        if form is None:
            form = self.rendered[shape] = _exact(self._render(operation, stream, include_usage))
        return form

    def forget(self, shape: Shape) -> None:
        """Drop a rendered form (it is rendered again when asked for)."""
        self.rendered.pop(shape, None)

    def _render(self, operation: Operation, stream: bool, include_usage: bool) -> bytes:
        events = self.events
        client = _CHAT[operation]
        if not stream:
            response = assemble(list(events))
            response.created = int(self.created)
            return client.render_chat(response)
        start = events[0]
        model = start.model if isinstance(start, StartEvent) else ""
        request = ChatRequest(model, [], stream=True, include_usage=include_usage)
        encoder = client.chat_stream_encoder(request)
        return b"".join(encoder.encode(e) for e in events) + encoder.finish()


def _exact(data: bytes) -> bytes:
    """`data` in a buffer of its own size: orjson's output keeps at least 4 KiB allocated, which
    a kept answer of a few hundred bytes must not hold for the whole of its life."""
    return memoryview(data).tobytes()


_BYTES = sys.getsizeof(b"")  # a bytes object without its content
# The answer object with its bytes and dict headers, and what its L1 entry takes (key, record).
_HELD = sys.getsizeof(StoredAnswer()) + 2 * _BYTES + sys.getsizeof({}) + 400


# --- capture: what the client was sent, back to neutral form ---------------------------------


def from_body(operation: Operation, body: bytes, tags: tuple[str, ...]) -> StoredAnswer | None:
    """A complete (non-streamed) answer as sent to the client; None if it is not one, or is
    one the cache must not replay (see `_REFUSAL`)."""
    if operation is Operation.EMBEDDINGS:
        return StoredAnswer(body=_exact(body), created=time.time(), tags=tags)
    if _REFUSAL(body):
        return None
    try:
        response = _CHAT[operation].parse_chat(body, "cache")
    except (ProxyError, KeyError):
        return None
    if response.finish == "content_filter":
        return None
    return StoredAnswer.of_events(list(events_of(response, REPLAY_PIECES)), time.time(), tags)


def from_stream(operation: Operation, sent: bytes, tags: tuple[str, ...]) -> StoredAnswer | None:
    """A streamed answer as sent to the client, if it is complete: it ended with its stop
    event and no error (a stream cut short, or ended by an error event, is never stored), and
    is not one the cache must not replay (see `_REFUSAL`)."""
    client = _CHAT.get(operation)
    if client is None or _REFUSAL(sent):
        return None
    decoder = client.chat_stream_decoder("cache")
    try:
        events = decoder.feed(sent) + decoder.close()
    except ProxyError:
        return None
    if not events or not isinstance(events[0], StartEvent):
        return None
    stops = [e for e in events if isinstance(e, StopEvent)]
    if not stops or any(stop.finish == "content_filter" for stop in stops):
        return None
    return StoredAnswer.of_events(events, time.time(), tags)


# Answers never stored: a content filter cut them, or the model refused in OpenAI's `refusal`
# field (structured outputs). The neutral form reads a refusal as text, so a replay would hand
# a client that parses JSON the refusal as its content instead of in `message.refusal`; a
# refusal or a filtered answer is also the least likely to be right for a repeated question.
# A string-valued `"refusal"` member anywhere in what the client was sent (not an escaped one
# inside some text) is one.
_REFUSAL = re.compile(rb'(?<!\\)"refusal"\s*:\s*"').search


# --- the bytes kept in Redis ------------------------------------------------------------------


# Each event kind as a row: a one-letter tag, then its fields in declaration order (usage as
# a list of `_USAGE_FIELDS`), so a row is read back positionally.
_TAGS: dict[type, str] = {
    StartEvent: "b",
    TextDelta: "t",
    ThinkingDelta: "r",
    ToolCallStart: "c",
    ToolCallDelta: "a",
    StopEvent: "s",
    UsageReport: "u",
}
_ROWS = {kind: (tag, tuple(f.name for f in fields(kind))) for kind, tag in _TAGS.items()}
# tag -> (kind, row length, where its usage cell is or -1)
_KINDS = {
    tag: (kind, len(names) + 1, names.index("usage") + 1 if "usage" in names else -1)
    for kind, (tag, names) in _ROWS.items()
}
_USAGE_FIELDS = tuple(f.name for f in fields(Usage))


def _cell(value: Any) -> Any:
    return [getattr(value, name) for name in _USAGE_FIELDS] if isinstance(value, Usage) else value


def _event_row(event: StreamEvent) -> list[Any]:
    tag, names = _ROWS[type(event)]
    return [tag, *(_cell(getattr(event, name)) for name in names)]


def _event(row: list[Any]) -> StreamEvent:
    """The event of a row `_readable` accepts (every row this module writes)."""
    kind, _, usage_at = _KINDS[row[0]]
    if usage_at > 0 and (usage := row[usage_at]) is not None:
        row[usage_at] = Usage(*usage)
    event: StreamEvent = kind(*row[1:])
    return event


def _readable(row: Any) -> bool:
    """Whether `row` has the shape of an event row: a known tag, as many cells as the event
    has fields, and a usage (if any) of every usage field."""
    if not isinstance(row, list) or not row or not isinstance(row[0], str):
        return False
    known = _KINDS.get(row[0])
    if known is None or len(row) != known[1]:
        return False
    usage = row[known[2]] if known[2] > 0 else None
    return usage is None or (isinstance(usage, list) and len(usage) == len(_USAGE_FIELDS))


def encode(answer: StoredAnswer) -> bytes:
    """A JSON header line, then the event rows or the body as they are."""
    head = {"v": FORMAT, "created": answer.created, "tags": answer.tags, "chat": bool(answer.rows)}
    return orjson.dumps(head) + b"\n" + (answer.rows or answer.body)


def decode(data: bytes) -> StoredAnswer | None:
    """The stored answer, or None for anything this version cannot read (a miss): every row
    of a chat answer must read back as an event."""
    head, newline, payload = data.partition(b"\n")
    try:
        doc = orjson.loads(head)
        if not newline or not isinstance(doc, dict) or doc.get("v") != FORMAT:
            return None
        created = float(doc["created"])
        tags = tuple(doc["tags"])
        if not all(isinstance(tag, str) for tag in tags):
            return None
        if not doc["chat"]:
            return StoredAnswer(body=payload, created=created, tags=tags)
        rows = orjson.loads(payload)
        if not isinstance(rows, list) or not rows or not all(map(_readable, rows)):
            return None
        return StoredAnswer(rows=payload, created=created, tags=tags)
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None
