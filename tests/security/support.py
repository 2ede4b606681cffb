"""What the security tests share: a fake upstream that notes every request target it is sent,
serves Azure's deployment URLs too, and can quote back every credential it was sent."""

from __future__ import annotations

import re
from typing import Literal

import orjson
from aiohttp import web
from yarl import URL

from tests.support.fake_upstream import ROUTES, Fail, FakeUpstream, Reply

AZURE_PATH = re.compile(r"/openai/deployments/[^/]+/(.+)")
# How the upstream quotes back what it was sent: an error answer (401 or 500, in the route's
# provider format) with the quote in its message and in a header, or a stream that starts
# well and ends with the provider's own error event quoting it (chat and messages only).
Echo = Literal["401", "500", "stream"]


class SecurityUpstream(FakeUpstream):
    """The fake upstream, noting every request target (routes it knows or not); Azure's
    deployment URLs are answered as the OpenAI routes they stand for."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.targets: list[tuple[str, str]] = []
        self.echo: Echo | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.targets.append((request.method, request.raw_path))
        azure = AZURE_PATH.fullmatch(request.raw_path.partition("?")[0])
        if azure is not None:
            request = request.clone(rel_url=URL("/v1/" + azure[1]))
        route = self._route(request)
        if self.echo is None or route is None:
            return await super()._handle(request)
        # Every header, then every value's last word, as OpenAI quotes a key without "Bearer".
        values = request.headers.items()
        quoted = "; ".join(f"{name}: {value}" for name, value in values)
        quoted += "; tokens: " + " ".join(value.rpartition(" ")[2] for _, value in values)
        if self.echo == "stream" and route in ("chat", "messages"):
            return await self._failing_stream(request, route, quoted)
        status = 500 if self.echo == "500" else 401
        message = f"Invalid credentials, we were sent {quoted}"
        self.script(route, Fail(status, message=message, headers={"x-echo": quoted}))
        return await super()._handle(request)

    def _route(self, request: web.Request) -> str | None:
        mode = next((m for m in self.modes if m.owns(request)), None)
        return mode.route(request) if mode else ROUTES.get((request.method, request.path))

    async def _failing_stream(
        self, request: web.Request, route: str, quoted: str
    ) -> web.StreamResponse:
        """One good event, then the provider's error event quoting `quoted`."""
        payload = await request.json()
        model = payload.get("model", "unknown")
        message = f"Stream failed, we were sent {quoted}"
        if route == "messages":
            first = self._message_frames(payload, model, Reply(), 1)[0]
            error = b"event: error\ndata: " + orjson.dumps(
                {"type": "error", "error": {"type": "api_error", "message": message}}
            )
        else:
            first = self._chat_frames(payload, model, Reply(), 1)[0]
            error = b"data: " + orjson.dumps(
                {"error": {"message": message, "type": "server_error"}}
            )
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(first)
        await response.write(error + b"\n\n")
        await response.write_eof()
        return response
