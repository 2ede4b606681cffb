"""Collapsing identical requests in flight into one upstream call.

The first request for a cache key leads: it goes upstream, and what its client is sent is
published as it is sent. Requests for the same key arriving meanwhile wait instead of calling
the provider:
- a streaming waiter of the leader's shape (same operation, both streaming, same usage-chunk
  option) follows the leader's stream live once it has started: what was already sent, then
  the rest as it comes;
- any other waiter gets the complete answer, rendered for it, when the leader finishes.
If the leader fails before its stream starts (an error, or its client gone), the flight is
abandoned and the waiters take over: the first becomes the new leader and calls the provider,
the others wait for it. If the leader's client goes away once its stream has started and
others follow it, the rest of the stream is read for them in the background
(`lookup.Capture.follow_through`). A follower receiving a stream that then breaks upstream ends
with an error event, as the leader's client does.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping

from multidict import CIMultiDict

from edgeproxy import errors
from edgeproxy.cache.answer import Shape, StoredAnswer

_SSE = "text/event-stream; charset=utf-8"


class Flight:
    """One upstream call that several identical requests share."""

    __slots__ = ("_changed", "answer", "chunks", "followers", "shape", "state", "waiting")

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.chunks: list[bytes] = []
        self.state = "running"  # then "done" or "failed"
        self.answer: StoredAnswer | None = None
        self.waiting = 0  # requests waiting for the flight to start or end
        self.followers = 0  # requests relaying its stream to their clients
        self._changed: asyncio.Event | None = None  # made only when someone waits

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def changed(self) -> None:
        """Until the next chunk, the end or the failure."""
        if self._changed is None:
            self._changed = asyncio.Event()
        await self._changed.wait()

    def publish(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self._notify()

    def finish(self, answer: StoredAnswer | None) -> None:
        """The leader's answer is complete (`answer`: decoded for waiters of another shape;
        None when nobody waits or it could not be decoded, which they treat as a failure)."""
        self.state, self.answer = "done", answer
        self._notify()

    def fail(self) -> None:
        self.state = "failed"
        self._notify()

    @property
    def started(self) -> bool:
        return bool(self.chunks)


class Following:
    """A waiter's stream: the leader's chunks so far, then each new one as it is sent."""

    __slots__ = ("_closed", "_flight", "_next", "headers")

    status = 200
    is_event_stream = True

    def __init__(self, flight: Flight) -> None:
        self._flight = flight
        self._next = 0
        self._closed = False
        self.headers: MutableMapping[str, str] = CIMultiDict({"content-type": _SSE})
        flight.followers += 1

    async def read(self) -> bytes:
        return b""

    async def next_chunk(self) -> bytes:
        flight = self._flight
        while True:
            if self._next < len(flight.chunks):
                sent = flight.chunks[self._next :]
                self._next = len(flight.chunks)
                return b"".join(sent)
            if flight.state == "done":
                return b""
            if flight.state == "failed":
                raise errors.upstream_broken(
                    "coalesced", "the identical request this stream followed failed"
                )
            await flight.changed()

    def close(self) -> None:
        """No connection to release (the leader holds it); one follower fewer."""
        if not self._closed:
            self._closed = True
            self._flight.followers -= 1
