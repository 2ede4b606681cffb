"""The pod's admin listener: which requests reach one worker, which reach all, and how their
answers become one. The workers here are small aiohttp apps on the unix sockets where real
workers serve their admin app, each counting what it was asked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edgeproxy.pod_admin import PodAdmin, parse_answer
from edgeproxy.worker import admin_socket


@dataclass
class FakeWorker:
    index: int
    ready: bool = True
    asked: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        async def answer(request: web.Request) -> web.Response:
            self.asked.append(f"{request.method} {request.path_qs}")
            if request.path == "/readyz":
                status = 200 if self.ready else 503
                return web.json_response(
                    {"status": "ready" if self.ready else "draining"}, status=status
                )
            if request.path == "/ui":
                page = "<p>status</p>"
                headers = {"content-security-policy": "default-src 'none'"}
                return web.Response(text=page, content_type="text/html", headers=headers)
            if request.path == "/admin/routing":
                return web.json_response({"deployments": [{"name": "d", "in_flight": self.index}]})
            if request.headers.get("authorization") != "Bearer t":
                return web.json_response({"error": "admin token required"}, status=401)
            if request.path == "/admin/reload":  # a resource would not open on worker 1
                failed = {"result": "failed", "problems": ["redis unreachable"]}
                applied = {"result": "applied", "problems": []}
                status = 422 if self.index == 1 else 200
                return web.json_response(failed if self.index == 1 else applied, status=status)
            return web.json_response(
                {"removed": {"l1": self.index + 1, "l2": 0}, "worker": self.index}
            )

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        return app


@dataclass
class Fixture:
    url: str
    workers: list[FakeWorker]
    live: dict[int, int]


@pytest.fixture
async def pod(tmp_path: Path) -> AsyncIterator[Fixture]:
    fakes = [FakeWorker(0), FakeWorker(1)]
    runners = []
    for fake in fakes:
        runner = web.AppRunner(fake.app())
        await runner.setup()
        await web.UnixSite(runner, str(admin_socket(tmp_path, fake.index))).start()
        runners.append(runner)
    live = {0: 100, 1: 101}
    admin = PodAdmin(tmp_path, 2, lambda: live, list)
    host, port = await admin.start("127.0.0.1", 0)
    try:
        yield Fixture(f"http://{host}:{port}", fakes, live)
    finally:
        await admin.stop()
        for runner in runners:
            await runner.cleanup()


async def call(method: str, url: str, token: str | None = "t") -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_a_change_of_state_reaches_every_worker_and_their_answers_are_combined(
    pod: Fixture,
) -> None:
    status, body = await call("DELETE", pod.url + "/admin/cache/tags/t?namespace=n")
    assert status == 200
    assert body["removed"] == {"l1": 3, "l2": 0}
    assert [row["status"] for row in body["workers"]] == [200, 200]
    assert all(w.asked == ["DELETE /admin/cache/tags/t?namespace=n"] for w in pod.workers)


async def test_key_changes_reach_one_worker_since_keys_live_in_redis(pod: Fixture) -> None:
    status, _ = await call("POST", pod.url + "/admin/keys")
    assert status == 200
    assert [len(w.asked) for w in pod.workers] == [1, 0]


async def test_the_token_is_the_workers_to_check_and_the_worst_status_is_the_pod_s(
    pod: Fixture,
) -> None:
    status, body = await call("POST", pod.url + "/admin/reload", token=None)
    assert status == 401
    assert body["error"] == "admin token required"


@pytest.mark.parametrize(
    ("running", "draining", "ready"),
    [({0, 1}, set(), True), ({0}, set(), False), ({0, 1}, {1}, False)],
)
async def test_the_pod_is_ready_only_when_every_worker_runs_and_is_ready(
    pod: Fixture, running: set[int], draining: set[int], ready: bool
) -> None:
    for index in {0, 1} - running:
        del pod.live[index]
    for index in draining:
        pod.workers[index].ready = False
    status, body = await call("GET", pod.url + "/readyz", token=None)
    assert (status, body["status"]) == ((200, "ready") if ready else (503, "not ready"))
    assert [row["worker"] for row in body["workers"]] == [0, 1]


async def test_routing_lists_each_worker_s_own_view(pod: Fixture) -> None:
    status, body = await call("GET", pod.url + "/admin/routing")
    assert status == 200
    assert [(w["worker"], w["pid"], w["deployments"][0]["in_flight"]) for w in body["workers"]] == [
        (0, 100, 0),
        (1, 101, 1),
    ]


async def test_a_worker_that_does_not_answer_is_reported_as_such(
    pod: Fixture, tmp_path: Path
) -> None:
    admin_socket(tmp_path, 1).unlink()  # running, says the supervisor, but not listening
    status, body = await call("DELETE", pod.url + "/admin/cache/namespaces/n")
    assert status == 503
    assert body["removed"] == {"l1": 1, "l2": 0}  # what worker 0 did
    assert [row["status"] for row in body["workers"]] == [200, 503]


@pytest.mark.parametrize(
    ("data", "status", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<p>", 200, b"<p>"),
        (b"HTTP/1.0 404 Not Found\r\n\r\n", 404, b""),
        (b"", 503, b'{"error":"worker 0 answered something that is not HTTP"}'),
        (b"garbage\r\n\r\n", 503, b'{"error":"worker 0 answered something that is not HTTP"}'),
    ],
)
def test_a_worker_s_answer_is_read_to_the_close(data: bytes, status: int, body: bytes) -> None:
    answer = parse_answer(0, 100, data)
    assert (answer.status, answer.body) == (status, body)


async def test_a_page_from_one_worker_keeps_its_headers(pod: Fixture) -> None:
    async with aiohttp.ClientSession() as session, session.get(pod.url + "/ui") as response:
        assert response.status == 200
        assert await response.text() == "<p>status</p>"
        assert response.headers["content-security-policy"] == "default-src 'none'"
        assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert [len(w.asked) for w in pod.workers] == [1, 0]


async def test_a_worker_that_failed_says_why_beside_its_status(
    pod: Fixture, tmp_path: Path
) -> None:
    status, body = await call("POST", pod.url + "/admin/reload")
    assert status == 422
    assert body["workers"][1]["answer"] == {"result": "failed", "problems": ["redis unreachable"]}
    admin_socket(tmp_path, 1).unlink()
    status, body = await call("DELETE", pod.url + "/admin/cache/namespaces/n")
    assert body["workers"][1]["answer"]["error"].startswith("worker 1 did not answer")
    assert "answer" not in body["workers"][0]
