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
  answer combines theirs (edgeproxy.pod_answers) and lists each worker's status (and the
  answer of one that failed), and its status is the worst of theirs;
- `/admin/keys...` go to one worker: keys live in Redis, which every worker follows, and a key
  created by each worker would be N keys;
- `GET /admin/affinity/{id}` asks every worker, and answers with the one that remembers the
  Responses answer (each remembers those it relayed);
- `GET /admin/cache` and `GET /admin/stats` combine every worker's answer; `GET /admin/routing`
  lists each worker's, since each has its own breakers, in-flight counts and latencies;
- other reads (the status page, incidents, recommendations) come from one worker.
The workers check the admin token: each gets the request's Authorization header as sent.

It runs on edgeproxy.wire (the data plane's HTTP server) and asks the workers over plain
HTTP/1.0 on their sockets, a connection per request (a restarted worker's socket is a new
one): the supervisor imports no aiohttp, and stays small beside its workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.metrics_core import Metric

from edgeproxy.pod_affinity import PATH as AFFINITY_PATH
from edgeproxy.pod_answers import combine
from edgeproxy.telemetry.metrics import CONTENT_TYPE
from edgeproxy.telemetry.pod_metrics import exposition, merge, snapshots
from edgeproxy.wire.limits import Limits
from edgeproxy.wire.server import HttpServer, Request, Response
from edgeproxy.worker import admin_socket, ask_worker

JSON = "application/json"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
COMBINED_READS = frozenset({"/admin/cache", "/admin/stats"})
_FORWARDED_HEADERS = ("authorization", "content-type", "accept")
# A worker's answer keeps its headers (the status page's Content-Security-Policy, say) but for
# those of its own connection, which the listener writes for each of its own.
_CONNECTION_HEADERS = frozenset(
    {"connection", "content-length", "date", "keep-alive", "server", "transfer-encoding"}
)
_JSON_HEADERS = (("content-type", JSON), ("cache-control", "no-store"))
_WORKER_TIMEOUT = 10.0
# Reachable from the pod network: keep slow clients short, as the workers' admin app does.
_LIMITS = Limits(max_body=1024 * 1024, keepalive_timeout=10.0, body_timeout=10.0)


@dataclass(frozen=True, slots=True)
class Answer:
    """One worker's answer to a forwarded request (or the reason there is none)."""

    worker: int
    pid: int | None
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = _JSON_HEADERS

    def json(self) -> Any:
        content_type = next((v for k, v in self.headers if k == "content-type"), "")
        if not content_type.startswith(JSON):
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    def row(self) -> dict[str, Any]:
        return {"worker": self.worker, "pid": self.pid, "status": self.status}


def _missing(worker: int, pid: int | None, why: str) -> Answer:
    return Answer(worker, pid, 503, orjson.dumps({"error": f"worker {worker} {why}"}))


def _reply(response: Response, status: int, payload: Any) -> None:
    response.send(status, _JSON_HEADERS, orjson.dumps(payload))


def _passed(response: Response, answer: Answer) -> None:
    response.send(answer.status, answer.headers, answer.body)


def _holding(answers: list[Answer]) -> Answer:
    """The worker that remembers a Responses answer (each remembers those it relayed), else
    one that says it does not, else the first answer."""
    for status in (200, 404):
        found = next((answer for answer in answers if answer.status == status), None)
        if found is not None:
            return found
    return answers[0]


def combined(answers: list[Answer]) -> tuple[int, dict[str, Any]]:
    """Every worker's JSON answer as one (edgeproxy.pod_answers), with each one's status."""
    succeeded = [a.json() for a in answers if 200 <= a.status < 300]
    bodies = [body for body in succeeded if isinstance(body, dict)]
    if not bodies:
        bodies = [body for a in answers if isinstance(body := a.json(), dict)]
    payload = combine(bodies) or {}
    # A worker that failed says why beside its status: the combination is of those that did.
    payload["workers"] = [
        a.row() if 200 <= a.status < 300 else {**a.row(), "answer": a.json()} for a in answers
    ]
    return max(answer.status for answer in answers), payload


def parse_answer(worker: int, pid: int, data: bytes) -> Answer:
    """A worker's whole HTTP/1.0 answer (read to the close) as an `Answer`."""
    head, separator, body = data.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if not separator or len(parts) < 2 or not parts[1].isdigit():
        return _missing(worker, pid, "answered something that is not HTTP")
    headers = []
    for field in fields:
        name, _, value = field.partition(":")
        name = name.strip().lower()
        if name not in _CONNECTION_HEADERS:
            headers.append((name, value.strip()))
    return Answer(worker, pid, int(parts[1]), body, tuple(headers))


async def ask(path: Path, request: Request, worker: int, pid: int) -> Answer:
    """`request` passed on to the worker listening at `path`."""
    lines = [f"{request.method} {request.target} HTTP/1.0", "host: worker"]
    lines += [f"{k}: {v}" for k in _FORWARDED_HEADERS if (v := request.headers.get(k))]
    lines.append(f"content-length: {len(request.body)}")
    sent = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body
    try:
        async with asyncio.timeout(_WORKER_TIMEOUT):
            data = await ask_worker(path, sent)
    except (OSError, TimeoutError) as exc:
        return _missing(worker, pid, f"did not answer: {exc!r}")
    return parse_answer(worker, pid, data)


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
        self._server = HttpServer(self._handle, _LIMITS)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        return await self._server.start(host, port)

    async def stop(self) -> None:
        await self._server.shutdown(grace=1.0)

    async def _handle(self, request: Request, response: Response) -> None:
        path, method = request.path, request.method
        if path == "/healthz" and method == "GET":
            _reply(response, 200, {"status": "ok", "workers": len(self._live())})
        elif path == "/readyz" and method == "GET":
            self._readyz(response, await self._ask_all(request))
        elif path == "/metrics" and method == "GET":
            families = [*merge(snapshots(self._directory), self._live()), *self._own_metrics()]
            response.send(200, [("content-type", CONTENT_TYPE)], exposition(families))
        elif path == "/admin/keys" or path.startswith("/admin/keys/"):
            _passed(response, await self._ask_one(request))
        elif path.startswith(AFFINITY_PATH) and method == "GET":
            _passed(response, _holding(await self._ask_all(request)))
        elif method not in READ_METHODS or path in COMBINED_READS:
            _reply(response, *combined(await self._ask_all(request)))
        elif path == "/admin/routing":
            answers = await self._ask_all(request)
            rows = [{**a.row(), **(a.json() or {})} for a in answers]
            _reply(response, max(a.status for a in answers), {"workers": rows})
        else:
            _passed(response, await self._ask_one(request))

    @staticmethod
    def _readyz(response: Response, answers: list[Answer]) -> None:
        ready = all(answer.status == 200 for answer in answers)
        workers = [{**(a.json() or {}), "worker": a.worker, "pid": a.pid} for a in answers]
        status = "ready" if ready else "not ready"
        _reply(response, 200 if ready else 503, {"status": status, "workers": workers})

    async def _ask_all(self, request: Request) -> list[Answer]:
        asks = (self._ask(index, request) for index in range(self._count))
        return list(await asyncio.gather(*asks))

    async def _ask_one(self, request: Request) -> Answer:
        live = self._live()
        if not live:
            return Answer(0, None, 503, orjson.dumps({"error": "no worker is running"}))
        return await self._ask(min(live), request)

    async def _ask(self, index: int, request: Request) -> Answer:
        pid = self._live().get(index)
        if pid is None:
            return _missing(index, None, "is not running")
        return await ask(admin_socket(self._directory, index), request, index, pid)
