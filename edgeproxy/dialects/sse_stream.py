"""The frame of an upstream's SSE stream decoder: chunks in, neutral events out, and one way
to fail.

A failure (an error event, or an event that cannot be read) is raised once the events before
it in the same feed have been returned, so the client sees the same answer however the bytes
were cut; every later feed and `close` raise it again. A subclass reads the events.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from edgeproxy import errors
from edgeproxy.dialects.neutral import StreamEvent
from edgeproxy.errors import ProxyError
from edgeproxy.sse import SSEDecoder, SSEEvent

_FLUSH = b"\n\n"


class SSEStreamDecoder(ABC):
    __slots__ = ("_failure", "_provider", "_sse")

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._sse = SSEDecoder()
        self._failure: ProxyError | None = None

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        if self._failure is not None:
            raise self._failure
        events: list[StreamEvent] = []
        try:
            for event in self._sse.feed(chunk):
                self._event(event, events)
        except ProxyError as err:
            self._failure = err
        if self._failure is not None and not events:
            raise self._failure
        return events

    def close(self) -> list[StreamEvent]:
        """Also dispatches a last event the body did not end with a blank line."""
        events = self.feed(_FLUSH)
        if self._failure is not None:
            raise self._failure
        if (missing := self._missing()) is not None:
            raise errors.upstream_broken(self._provider, f"stream ended before {missing}")
        return events

    @abstractmethod
    def _event(self, event: SSEEvent, events: list[StreamEvent]) -> None:
        """Appends the neutral events `event` stands for; raises ProxyError to fail."""

    @abstractmethod
    def _missing(self) -> str | None:
        """What a complete stream would have sent and this one has not (None: nothing)."""
