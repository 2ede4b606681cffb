"""The pod's one admin listener, run by the supervisor (edgeproxy.workers), answering for all
its workers.

Each worker serves the usual admin app (edgeproxy.admin) on a private unix socket in the pod's
directory (edgeproxy.worker). This listener answers the probes and `/metrics` itself and
passes the rest on, route by route:
- `/healthz`: the supervisor is running;
- `/readyz`: asks every worker, ready only when every worker is running and ready (a worker
  restarting or draining makes the pod not ready); each worker's answer is listed;
- `/metrics`: the merge of the workers' metric files (edgeproxy.telemetry.pod_metrics), and
  the supervisor's own families: workers running, restarts per worker;
- an action that changes state (any method but GET, HEAD and OPTIONS: cache purges, reload)
  goes to every worker, since each holds its own L1 cache, breakers and configuration; the
  answer combines theirs (edgeproxy.pod_answers) and lists each worker's status, and its
  status is the worst of theirs;
- `/admin/keys...` go to one worker: keys live in Redis, which every worker follows, and a key
  created by each worker would be N keys;
- `GET /admin/cache` and `GET /admin/stats` combine every worker's answer; `GET /admin/routing`
  lists each worker's, since each has its own breakers, in-flight counts and latencies;
- other reads (the status page, incidents, recommendations) come from one worker.
The workers check the admin token: each gets the request's Authorization header as sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client.metrics_core import Metric

from edgeproxy.pod_answers import combine
from edgeproxy.telemetry.metrics import CONTENT_TYPE
from edgeproxy.telemetry.pod_metrics import exposition, merge, snapshots
from edgeproxy.worker import admin_socket

JSON = "application/json"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
COMBINED_READS = frozenset({"/admin/cache", "/admin/stats"})
_FORWARDED_HEADERS = ("authorization", "content-type", "accept")
_WORKER_TIMEOUT = aiohttp.ClientTimeout(total=10.0)


@dataclass(frozen=True, slots=True)
class Answer:
    """One worker's answer to a forwarded request."""

    worker: int
    pid: int | None
    status: int
    body: bytes
    content_type: str = JSON

    def json(self) -> Any:
        if not self.content_type.startswith(JSON):
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    def row(self) -> dict[str, Any]:
        return {"worker": self.worker, "pid": self.pid, "status": self.status}


def _missing(worker: int, why: str) -> Answer:
    return Answer(worker, None, 503, orjson.dumps({"error": f"worker {worker} {why}"}))


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type=JSON)


def combined(answers: list[Answer]) -> web.Response:
    """Every worker's JSON answer as one (edgeproxy.pod_answers), with each one's status."""
    succeeded = [a.json() for a in answers if 200 <= a.status < 300]
    bodies = [body for body in succeeded if isinstance(body, dict)]
    if not bodies:
        bodies = [body for a in answers if isinstance(body := a.json(), dict)]
    payload = combine(bodies) or {}
    payload["workers"] = [answer.row() for answer in answers]
    return _json(payload, max(answer.status for answer in answers))


class PodAdmin:
    """The listener of the module docstring, for `count` workers whose files are in
    `directory`; `live` maps each running worker's index to its pid, `own_metrics` are the
    supervisor's families."""

    def __init__(
        self,
        directory: Path,
        count: int,
        live: Callable[[], Mapping[int, int]],
        own_metrics: Callable[[], Iterable[Metric]],
    ) -> None:
        self._directory = directory
        self._count = count
        self._live = live
        self._own_metrics = own_metrics
        self._sessions: dict[int, aiohttp.ClientSession] = {}
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        for index in range(self._count):
            # A connection per request: a restarted worker's socket is a new one.
            socket = str(admin_socket(self._directory, index))
            connector = aiohttp.UnixConnector(path=socket, force_close=True)
            self._sessions[index] = aiohttp.ClientSession(
                connector=connector, timeout=_WORKER_TIMEOUT
            )
        self._runner = web.AppRunner(
            self.app(), access_log=None, keepalive_timeout=10.0, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound: tuple[str, int] = self._runner.addresses[0][:2]
        return bound

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        for session in self._sessions.values():
            await session.close()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        return app

    async def _healthz(self, _: web.Request) -> web.Response:
        return _json({"status": "ok", "workers": len(self._live())})

    async def _readyz(self, request: web.Request) -> web.Response:
        answers = await self._ask_all(request, b"")
        ready = all(answer.status == 200 for answer in answers)
        workers = [{**(a.json() or {}), "worker": a.worker, "pid": a.pid} for a in answers]
        status = "ready" if ready else "not ready"
        return _json({"status": status, "workers": workers}, 200 if ready else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        families = [*merge(snapshots(self._directory), self._live()), *self._own_metrics()]
        return web.Response(body=exposition(families), headers={"content-type": CONTENT_TYPE})

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        path = request.path
        if path == "/admin/keys" or path.startswith("/admin/keys/"):
            return self._passed(await self._ask_one(request, body))
        if request.method not in READ_METHODS or path in COMBINED_READS:
            return combined(await self._ask_all(request, body))
        if path == "/admin/routing":
            answers = await self._ask_all(request, body)
            rows = [{**a.row(), **(a.json() or {})} for a in answers]
            return _json({"workers": rows}, max(a.status for a in answers))
        return self._passed(await self._ask_one(request, body))

    @staticmethod
    def _passed(answer: Answer) -> web.Response:
        return web.Response(
            status=answer.status, body=answer.body, headers={"content-type": answer.content_type}
        )

    async def _ask_all(self, request: web.Request, body: bytes) -> list[Answer]:
        asks = (self._ask(index, request, body) for index in range(self._count))
        return list(await asyncio.gather(*asks))

    async def _ask_one(self, request: web.Request, body: bytes) -> Answer:
        live = self._live()
        if not live:
            return Answer(0, None, 503, orjson.dumps({"error": "no worker is running"}))
        return await self._ask(min(live), request, body)

    async def _ask(self, index: int, request: web.Request, body: bytes) -> Answer:
        pid = self._live().get(index)
        if pid is None:
            return _missing(index, "is not running")
        headers = {k: v for k in _FORWARDED_HEADERS if (v := request.headers.get(k)) is not None}
        try:
            async with self._sessions[index].request(
                request.method,
                f"http://worker{request.path_qs}",
                headers=headers,
                data=body or None,
            ) as response:
                content_type = response.headers.get("content-type", JSON)
                return Answer(index, pid, response.status, await response.read(), content_type)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _missing(index, f"did not answer: {exc!r}")
