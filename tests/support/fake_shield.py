"""A fake Shield guard service (docs/shield.md) for the hook's tests.

Tests script its answers in order (`script`; `default` once the script is used up): verdicts
(`Answer.verdict`), raw bodies and statuses for malformed and non-200 answers, an answer held
until the test opens its gate (`Answer.gate`) or for `delay` seconds, a black hole (`BLACK_HOLE`:
the request is read and never answered) and a hang-up (`HANG_UP`: the connection is closed
instead of answered). It counts calls and keeps each request's parsed body and headers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict


@dataclass
class Answer:
    """One answer: `body` (a JSON value, or bytes sent as they are) with `status`."""

    body: Any = field(default_factory=lambda: {"action": "allow"})
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    gate: asyncio.Event | None = None  # answer only once the test sets it
    delay: float = 0.0
    black_hole: bool = False  # never answer (until the fake closes)
    hang_up: bool = False  # close the connection instead of answering
    chunked: bool = False  # no Content-Length: the size shows only while reading

    @classmethod
    def verdict(
        cls,
        action: str,
        *rules: str,
        score: float | None = None,
        message: str | None = None,
        redactions: list[dict[str, Any]] | None = None,
        gate: asyncio.Event | None = None,
    ) -> Answer:
        reasons = [{"rule": rule} | ({} if score is None else {"score": score}) for rule in rules]
        body: dict[str, Any] = {"action": action, "reasons": reasons}
        if message is not None:
            body["message"] = message
        if redactions is not None:
            body["redactions"] = redactions
        return cls(body, gate=gate)


BLACK_HOLE = Answer(black_hole=True)
HANG_UP = Answer(hang_up=True)


class FakeShield:
    """Serves POST on any path at `url` (set by `start`)."""

    def __init__(self) -> None:
        self.default = Answer()
        self._script: deque[Answer] = deque()
        self.calls = 0
        self.bodies: list[Any] = []
        self.headers: list[CIMultiDict[str]] = []
        self.paths: list[str] = []
        self.peers: list[tuple[str, int]] = []  # the client's address of each call
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def script(self, *answers: Answer) -> None:
        self._script.extend(answers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.calls += 1
        self.paths.append(request.path_qs)
        self.headers.append(CIMultiDict(request.headers))
        assert request.transport is not None
        self.peers.append(request.transport.get_extra_info("peername"))
        try:
            self.bodies.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            self.bodies.append(raw)
        answer = self._script.popleft() if self._script else self.default
        if answer.black_hole:
            await self._closing.wait()
        if answer.gate is not None:
            await answer.gate.wait()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.hang_up:
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)  # never sent: the transport is gone
        body = answer.body if isinstance(answer.body, bytes) else orjson.dumps(answer.body)
        response = web.Response(
            status=answer.status,
            body=body,
            headers=answer.headers,
            content_type=answer.content_type,
        )
        if answer.chunked:
            response.enable_chunked_encoding()
        return response
