"""`edgeproxy serve --workers 2`: real processes on real sockets, one pod on one port.

Every request is sent on a connection of its own, so the kernel's SO_REUSEPORT spreading
reaches both workers (the chance that 40 connections all land on one is 2**-39).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgeproxy import workers
from edgeproxy.config import load
from edgeproxy.security.auth import hash_key
from tests.support.fake_upstream import FakeUpstream
from tests.support.poll import eventually
from tests.support.redis_servers import free_port

REPO = Path(__file__).resolve().parents[1]
TOKEN = "admin-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}
REQUESTS = 40
PROCESSES = 30.0  # seconds a wait on processes may take: they start and stop under load
CONFIG = """
server: {{port: {port}, drain_delay: 0s, shutdown_grace: 10s}}
reload: {{enabled: false}}
admin: {{host: 127.0.0.1, port: {admin}, token: {token}}}
cache: {{enabled: true}}
telemetry: {{metrics: {{shared_dir: "{pod_dir}"}}}}
providers:
  mock: {{kind: mock}}
  slow: {{kind: mock, mock: {{stream_chunks: 5, chunk_interval: 200ms}}}}
models:
  m: {{deployments: [{{provider: mock}}]}}
  slow: {{deployments: [{{provider: slow}}]}}
"""


@dataclass
class Pod:
    process: asyncio.subprocess.Process
    config: Path
    url: str
    admin: str
    session: aiohttp.ClientSession  # a new connection per request

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.admin + path, headers=AUTH) as response:
            return response.status, await response.json()

    async def chat(self, content: str, model: str = "m") -> int:
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
        async with self.session.post(self.url + "/v1/chat/completions", json=body) as response:
            await response.read()
            return response.status

    async def answer(self) -> str:
        body = {"model": "m", "messages": [{"role": "user", "content": "which reply?"}]}
        headers = {"cache-control": "no-store"}
        async with self.session.post(
            self.url + "/v1/chat/completions", json=body, headers=headers
        ) as response:
            content: str = (await response.json())["choices"][0]["message"]["content"]
            return content

    async def worker_pids(self) -> dict[int, int | None]:
        _, ready = await self.get("/readyz")
        return {row["worker"]: row["pid"] for row in ready["workers"]}

    async def ready(self) -> bool:
        try:
            status, _ = await self.get("/readyz")
        except aiohttp.ClientError:
            return False
        return status == 200

    async def metric(self, sample: str) -> float:
        """The pod's total of `sample` over all its label sets."""
        async with self.session.get(self.admin + "/metrics") as response:
            text = await response.text()
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == sample
        )


def counted(pod: Pod, requests: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await pod.metric("edgeproxy_requests_total") == requests

    return check


@contextlib.asynccontextmanager
async def running_pod(tmp_path: Path, template: str, **values: str) -> AsyncIterator[Pod]:
    """A pod of two workers on `template` (formatted with its ports, token, directory and
    `values`), ready; drained and stopped after."""
    port, admin = free_port(), free_port()
    config = tmp_path / "pod.yaml"
    pod_dir = tmp_path / "pod"
    pod_dir.mkdir()
    config.write_text(
        template.format(port=port, admin=admin, token=TOKEN, pod_dir=pod_dir, **values)
    )
    log = (tmp_path / "pod.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "edgeproxy", "serve", "--config", str(config), "--workers", "2"),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,  # a process group of its own, as a terminal would start it
    )
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = Pod(
            process, config, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}", session
        )
        try:
            await eventually(started.ready, "both workers to be ready", within=PROCESSES)
            yield started
        finally:
            if process.returncode is None:
                process.terminate()  # the pod drains and stops its workers
                try:
                    await asyncio.wait_for(process.wait(), 30)
                except TimeoutError:
                    process.kill()
            await asyncio.wait_for(process.wait(), 30)
            log.close()


@pytest.fixture
async def pod(tmp_path: Path) -> AsyncIterator[Pod]:
    async with running_pod(tmp_path, CONFIG) as started:
        yield started


async def test_two_workers_serve_one_port_and_the_pod_s_metrics_count_every_request(
    pod: Pod,
) -> None:
    statuses = await asyncio.gather(*(pod.chat(f"hello {n}") for n in range(REQUESTS)))
    assert statuses == [200] * REQUESTS
    _, routing = await pod.get("/admin/routing")
    served = [sum(d["requests"] for d in worker["deployments"]) for worker in routing["workers"]]
    assert len({worker["pid"] for worker in routing["workers"]}) == 2
    assert all(count > 0 for count in served) and sum(served) == REQUESTS
    await eventually(
        counted(pod, REQUESTS), f"the pod's /metrics to count {REQUESTS} requests", within=PROCESSES
    )
    assert await pod.metric("edgeproxy_cache_entries") == REQUESTS
    assert await pod.metric("edgeproxy_workers") == 2


async def test_sigterm_to_the_supervisor_drains_every_worker_and_exits_zero(pod: Pod) -> None:
    pids = await pod.worker_pids()
    body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with pod.session.post(pod.url + "/v1/chat/completions", json=body) as response:
        first = await response.content.readline()
        pod.process.send_signal(signal.SIGTERM)
        rest = await response.read()
    assert first.startswith(b"data: ") and rest.rstrip().endswith(b"data: [DONE]")
    assert await asyncio.wait_for(pod.process.wait(), 30) == 0
    for pid in pids.values():
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_ctrl_c_in_a_terminal_drains_the_workers_once(pod: Pod) -> None:
    body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with pod.session.post(pod.url + "/v1/chat/completions", json=body) as response:
        first = await response.content.readline()
        os.killpg(pod.process.pid, signal.SIGINT)  # what Ctrl-C does: the whole group
        rest = await response.read()
    # Had the workers had the signal twice (the terminal's, then the supervisor's), the second
    # would have cut the stream short with an error event.
    assert first.startswith(b"data: ") and rest.rstrip().endswith(b"data: [DONE]")
    assert b"shutting_down" not in rest
    assert await asyncio.wait_for(pod.process.wait(), 30) == 0


RELOADED = "The configuration was reloaded."


def reconfigured(pod: Pod) -> None:
    """The pod's file, its mock provider now answering `RELOADED`."""
    text = pod.config.read_text()
    pod.config.write_text(
        text.replace("mock: {kind: mock}", f'mock: {{kind: mock, mock: {{reply: "{RELOADED}"}}}}')
    )


async def every_worker_answers(pod: Pod, reply: str) -> bool:
    answers = await asyncio.gather(*(pod.answer() for _ in range(REQUESTS)))
    return set(answers) == {reply}


async def test_a_reload_through_the_pod_admin_reaches_every_worker(pod: Pod) -> None:
    reconfigured(pod)
    async with pod.session.post(pod.admin + "/admin/reload", headers=AUTH) as response:
        assert response.status == 200
        reloaded = await response.json()
    assert [w["status"] for w in reloaded["workers"]] == [200, 200]
    assert await every_worker_answers(pod, RELOADED)


async def test_sighup_to_the_supervisor_reloads_every_worker(pod: Pod) -> None:
    pids = await pod.worker_pids()
    reconfigured(pod)
    pod.process.send_signal(signal.SIGHUP)
    await eventually(
        lambda: every_worker_answers(pod, RELOADED), "both workers to reload", within=PROCESSES
    )
    assert await pod.worker_pids() == pids  # reloaded in place, not restarted


async def test_a_killed_worker_is_replaced_and_the_pod_keeps_its_counts(pod: Pod) -> None:
    assert await asyncio.gather(*(pod.chat(f"before {n}") for n in range(10))) == [200] * 10
    await eventually(
        counted(pod, 10), "the pod's /metrics to count the first 10 requests", within=PROCESSES
    )
    before = await pod.worker_pids()
    killed = before[0]
    assert killed is not None
    os.kill(killed, signal.SIGKILL)

    async def replaced() -> bool:
        pids = await pod.worker_pids()
        return pids[0] not in (None, killed) and await pod.ready()

    await eventually(replaced, "worker 0 to be started again", within=PROCESSES)
    assert (await pod.worker_pids())[1] == before[1]
    assert await pod.metric("edgeproxy_worker_restarts_total") == 1
    assert await asyncio.gather(*(pod.chat(f"after {n}") for n in range(10))) == [200] * 10
    # The killed worker's last snapshot still counts: the pod's total never goes down.
    await eventually(
        counted(pod, 20), "the pod's /metrics to count all 20 requests", within=PROCESSES
    )


async def test_a_cache_purge_through_the_pod_admin_reaches_every_worker(pod: Pod) -> None:
    assert (
        await asyncio.gather(*(pod.chat(f"cached {n}") for n in range(REQUESTS)))
        == [200] * REQUESTS
    )
    _, cache = await pod.get("/admin/cache")
    assert cache["l1"]["entries"] == REQUESTS
    async with pod.session.delete(
        pod.admin + "/admin/cache/namespaces/default", headers=AUTH
    ) as response:
        assert response.status == 200
        purged = await response.json()
    assert purged["removed"]["l1"] == REQUESTS
    assert [w["status"] for w in purged["workers"]] == [200, 200]
    _, after = await pod.get("/admin/cache")
    assert after["l1"]["entries"] == 0


def test_a_worker_slot_that_keeps_failing_stops_the_pod_with_status_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "RESTART_DELAY", 0.01)

    class Failing(workers.Supervisor):
        def command(self, index: int) -> list[str]:
            return [sys.executable, "-c", "raise SystemExit(3)"]

    path = tmp_path / "quiet.yaml"
    path.write_text("admin: {enabled: false}\n")
    supervisor = Failing(load(path, {}), str(path), 2, tmp_path)
    assert asyncio.run(supervisor.run()) == 1
    assert max(slot.restarts for slot in supervisor.slots) == workers.FAILURES - 1


def gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie nobody reaped yet has ended too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


async def test_workers_end_when_their_supervisor_is_killed(pod: Pod) -> None:
    pids = [pid for pid in (await pod.worker_pids()).values() if pid is not None]
    assert len(pids) == 2
    pod.process.kill()

    async def ended() -> bool:
        return all(gone(pid) for pid in pids)

    await eventually(ended, "the workers of a killed supervisor to end", within=PROCESSES)


def test_a_port_of_the_kernel_s_choosing_cannot_be_shared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "any-port.yaml"
    path.write_text("server: {port: 0}\nadmin: {enabled: false}\n")
    assert workers.run_pod(load(path, {}), str(path), 2) == 2
    assert "server.port 0 cannot be shared by workers" in capsys.readouterr().err


def test_a_configured_pod_directory_is_cleared_of_an_earlier_pod_s_files(tmp_path: Path) -> None:
    stale = [tmp_path / "metrics-0-123.prom", tmp_path / "admin-1.sock"]
    kept = tmp_path / "requests-123.json"
    for path in (*stale, kept):
        path.write_text("")
    path = tmp_path / "pod.yaml"
    path.write_text(f"telemetry: {{metrics: {{shared_dir: '{tmp_path}'}}}}\n")
    with workers.pod_directory(load(path, {})) as directory:
        assert directory == tmp_path
        assert not any(p.exists() for p in stale) and kept.exists()
    assert directory.exists()


def test_a_private_pod_directory_is_removed_at_exit() -> None:
    with workers.pod_directory(load(None, {})) as directory:
        (directory / "metrics-0-1.prom").write_text("")
    assert not directory.exists()


async def test_a_sighup_while_a_worker_starts_does_not_end_it(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    path = tmp_path / "pod.yaml"
    path.write_text(CONFIG.format(port=port, admin=admin, token=TOKEN, pod_dir=tmp_path))
    supervisor = workers.Supervisor(load(path, {}), str(path), 1, tmp_path)
    running = asyncio.get_running_loop().create_task(supervisor.run())
    slot = supervisor.slots[0]

    async def spawned() -> bool:
        return slot.process is not None

    await eventually(spawned, "the worker to be spawned", within=PROCESSES)
    os.kill(os.getpid(), signal.SIGHUP)  # a reload asked for while the worker imports
    async with aiohttp.ClientSession() as session:

        async def ready() -> bool:
            try:
                async with session.get(f"http://127.0.0.1:{admin}/readyz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, "the worker to be ready", within=PROCESSES)
    supervisor._signalled(signal.SIGTERM)
    assert await asyncio.wait_for(running, 30) == 0
    assert slot.restarts == 0


@pytest.mark.parametrize(("disposition", "takes"), [("SIG_DFL", False), ("SIG_IGN", True)])
def test_sighup_is_passed_only_to_a_worker_that_takes_it(disposition: str, takes: bool) -> None:
    code = f"import signal, sys; signal.signal(signal.SIGHUP, signal.{disposition}); "
    code += "print(flush=True); sys.stdin.read()"
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as child:
        assert child.stdout is not None
        child.stdout.readline()  # its disposition is set
        try:
            assert workers._takes_sighup(child.pid) is takes
        finally:
            child.kill()


RESPONSES_CONFIG = """
server: {{port: {port}, drain_delay: 0s, shutdown_grace: 10s}}
reload: {{enabled: false}}
admin: {{host: 127.0.0.1, port: {admin}, token: {token}}}
telemetry: {{metrics: {{shared_dir: "{pod_dir}"}}}}
auth: {{mode: keys, keys: [{{id: ann, hash: "{ann}"}}]}}
providers:
  up: {{kind: openai, base_url: "{upstream}/v1", api_key: sk-upstream-0123456789}}
models:
  gpt-4o: {{deployments: [{{provider: up}}]}}
"""


async def test_a_responses_answer_is_reachable_from_every_worker(tmp_path: Path) -> None:
    """With virtual keys the proxy serves only the answers it vouches for: whichever worker an
    app's next connection lands on learns from the one that relayed the answer who holds it
    (its /admin/affinity), for a retrieval as for a follow-up."""
    fake = FakeUpstream()
    await fake.start()
    ann = "sk-ann-0123456789"
    try:
        async with running_pod(
            tmp_path, RESPONSES_CONFIG, upstream=fake.url, ann=hash_key(ann)
        ) as pod:
            headers = {"authorization": f"Bearer {ann}"}
            body = {"model": "gpt-4o", "input": "Hello"}
            async with pod.session.post(
                pod.url + "/v1/responses", json=body, headers=headers
            ) as created:
                answer_id = (await created.json())["id"]
            for _ in range(12):  # a new connection each: both workers are reached
                async with pod.session.get(
                    pod.url + f"/v1/responses/{answer_id}", headers=headers
                ) as retrieved:
                    assert retrieved.status == 200, await retrieved.text()
            follow_up = {**body, "previous_response_id": answer_id}
            for _ in range(6):
                async with pod.session.post(
                    pod.url + "/v1/responses", json=follow_up, headers=headers
                ) as continued:
                    assert continued.status == 200
            _, routing = await pod.get("/admin/routing")
            holder = await pod.get(f"/admin/affinity/{answer_id}")
    finally:
        await fake.close()
    assert holder == (200, {"deployment": "up/*", "key": "ann"})  # whichever worker relayed it
    served = [sum(d["requests"] for d in worker["deployments"]) for worker in routing["workers"]]
    assert all(count > 0 for count in served)  # both workers relayed follow-ups
