"""Graceful drain: what a stop signal starts, step by step, and how long each step may take.

On SIGTERM (t = 0):
  t = 0             readiness turns false (`/readyz` answers 503); the data listener keeps
                    accepting and serving, keep-alive as usual, so that the endpoint's removal
                    reaches every client (`server.drain_delay`);
  t = drain_delay   the listener stops accepting: idle connections close, every response from
                    now on says `connection: close`, so clients reconnect elsewhere;
  until + grace     requests and streams in flight run to completion (`server.shutdown_grace`);
  then              those still running are interrupted: a stream ends with an error event in
                    its client's dialect and its terminator, a request with nothing sent yet
                    gets a 503, and their upstream calls are cancelled (edgeproxy.relay);
  last              background work (events, cache writes, the workers' shared metrics) is
                    flushed within what is left of the grace, and `FLUSH_FLOOR` seconds at
                    least; pools close; the process exits 0.
So a stop takes drain_delay + shutdown_grace + `OVERRUN` at most: a pod's
terminationGracePeriodSeconds must cover that (plus any preStop sleep), or the kubelet's
SIGKILL drops what the drain was finishing.

SIGINT (Ctrl-C) does the same without the delay: no load balancer waits on an interactive
run. A second signal, either one, stops waiting: the listener closes if it is still open,
what is in flight is interrupted at once (with its error event), and the flush gets
`FLUSH_FLOOR`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from edgeproxy.wire.server import HttpServer

log = logging.getLogger("edgeproxy")

FLUSH_FLOOR = 2.0  # seconds background work gets to flush, however late the requests ended
# Seconds a stop may take beyond drain_delay + shutdown_grace: the flush floor, the linger of
# interrupted connections (wire.server), the pools and exporters closing.
OVERRUN = 5.0


class StopSignals:
    """SIGTERM and SIGINT: the first starts the drain, any later one hurries it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._first: asyncio.Future[signal.Signals] = loop.create_future()
        self.hurry: asyncio.Future[None] = loop.create_future()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._received, signum)

    def _received(self, signum: signal.Signals) -> None:
        if not self._first.done():
            self._first.set_result(signum)
        elif not self.hurry.done():
            log.warning("second stop signal: ending the requests in flight now")
            self.hurry.set_result(None)

    async def first(self) -> signal.Signals:
        """The signal that asked the process to stop."""
        return await self._first


@dataclass(frozen=True, slots=True)
class Drain:
    """How long a stop may wait at each step; `hurry`, once done, ends every wait."""

    delay: float
    grace: float
    hurry: asyncio.Future[None]

    @classmethod
    def after(
        cls, signum: signal.Signals, drain_delay: float, grace: float, hurry: asyncio.Future[None]
    ) -> Drain:
        """The drain a signal asks for: SIGINT (interactive) skips the delay."""
        return cls(0.0 if signum == signal.SIGINT else drain_delay, grace, hurry)

    async def listener(self, server: HttpServer) -> float:
        """Drain the data listener (readiness is already off); returns the seconds left for
        flushing background work."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.delay + self.grace
        await asyncio.wait((self.hurry,), timeout=self.delay)
        log.info("drain: closing the listener", extra={"in_flight": server.handlers_running})
        await server.shutdown(max(0.0, deadline - loop.time()), self.hurry)
        if self.hurry.done():
            return FLUSH_FLOOR
        return max(FLUSH_FLOOR, deadline - loop.time())


def never() -> asyncio.Future[None]:
    """A hurry that never comes: a stop asked for by code, not by signals."""
    return asyncio.get_running_loop().create_future()
