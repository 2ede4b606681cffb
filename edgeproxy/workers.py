"""`edgeproxy serve --workers N` (or `server.workers: N`): N processes serving one port as one pod.

The process started becomes a small supervisor that serves no request. It starts each worker
by running the command line again (`python -m edgeproxy serve --worker-index I --pod-dir DIR`)
rather than by fork or multiprocessing: a fork after uvloop, aiohttp and the configuration's
imports copies what no child may share (the ONNX runtime's threads, open sockets, the event
loop), and multiprocessing's spawn adds a pickling channel and a resource tracker for nothing.
A worker so started loads the configuration, logs, reloads and drains exactly like a lone
`edgeproxy serve`, and `ps` says what it is. Each binds the data port with SO_REUSEPORT, and
the kernel spreads new connections across them (edgeproxy.worker).

Signals: SIGTERM and SIGINT go on to every worker, which drains as a lone process does, and
the supervisor exits once they all have: 0 when every worker exited 0 (or was ended by that
signal before it had started serving), else 1. SIGHUP goes on to every worker (each reloads
its configuration).

A worker that exits when nobody asked is started again after a backoff (0.5 s, doubling up to
10 s; back to 0.5 s after a worker lived a minute). A worker slot that failed `FAILURES` times
within `FAILURE_WINDOW` seconds (a port taken, a crash at start-up) stops the pod with exit
status 1: restarting it forever would hide the fault from the orchestrator. A worker whose
event loop stops answering its `/healthz` is killed and so restarted (edgeproxy.worker_liveness),
as the kubelet would restart a lone process that fails its liveness probe.

The pod's directory (`telemetry.metrics.shared_dir` when configured, else a private temporary
directory removed at exit) holds each worker's admin socket and metrics file; the pod's admin
port is the supervisor's (edgeproxy.pod_admin), answering for every worker. With one worker
none of this exists: `edgeproxy serve` serves in its own process, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import sys
import tempfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from edgeproxy import worker_liveness
from edgeproxy.config import Config
from edgeproxy.telemetry.pod_metrics import retire
from edgeproxy.worker import admin_socket

log = logging.getLogger("edgeproxy")

RESTART_DELAY = 0.5
RESTART_DELAY_MAX = 10.0
HEALTHY_AFTER = 60.0  # seconds a worker lives before its slot's backoff starts over
FAILURES = 5
FAILURE_WINDOW = 60.0
_STALE = ("metrics-*.prom", "metrics-*.tmp", "admin-*.sock")


@dataclass(eq=False)
class Slot:
    """Worker `index`: its current process and its history."""

    index: int
    process: asyncio.subprocess.Process | None = None
    exit_code: int | None = None
    restarts: int = 0
    failures: deque[float] = field(default_factory=deque)


class Supervisor:
    """Runs `count` workers of the configuration at `config_path` (see the module docstring)."""

    def __init__(
        self, config: Config, config_path: str | None, count: int, directory: Path
    ) -> None:
        self._config = config
        self._config_path = config_path
        self._directory = directory
        self.slots = [Slot(index) for index in range(count)]
        self._stopping: signal.Signals | None = None
        self._stopped = asyncio.Event()
        self._gave_up = False

    def live(self) -> dict[int, int]:
        """Each running worker's index and pid."""
        return {
            slot.index: slot.process.pid
            for slot in self.slots
            if slot.process is not None and slot.process.returncode is None
        }

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(signum, self._signalled, signum)
        admin, admin_url = None, None
        if self._config.admin.enabled:
            from edgeproxy.pod_admin import PodAdmin

            admin = PodAdmin(self._directory, len(self.slots), self.live, self.own_metrics)
            host, port = await admin.start(self._config.admin.host, self._config.admin.port)
            admin_url = f"http://{host}:{port}"
        server = self._config.server
        log.info(
            "edgeproxy pod starting",
            extra={
                "url": f"http://{server.host}:{server.port}",
                "admin": admin_url,
                "workers": len(self.slots),
                "pod_dir": str(self._directory),
            },
        )
        watches = [self._watch(slot) for slot in self.slots] if admin is not None else []
        try:
            await asyncio.gather(*(self._keep(slot) for slot in self.slots), *watches)
        finally:
            if admin is not None:
                await admin.stop()
        # A worker the stop signal reached before it could handle it had served nothing yet.
        stopped = -self._stopping if self._stopping is not None else 0
        clean = not self._gave_up and all(s.exit_code in (0, stopped) for s in self.slots)
        log.info("edgeproxy pod stopped", extra={"clean": clean})
        return 0 if clean else 1

    def own_metrics(self) -> Iterator[Metric]:
        """The supervisor's families on the pod's /metrics."""
        yield GaugeMetricFamily(
            "edgeproxy_workers", "Worker processes running.", value=len(self.live())
        )
        restarts = CounterMetricFamily(
            "edgeproxy_worker_restarts",
            "Workers started again after exiting unexpectedly.",
            labels=["worker"],
        )
        for slot in self.slots:
            restarts.add_metric([str(slot.index)], slot.restarts)
        yield restarts

    def _signalled(self, signum: signal.Signals) -> None:
        if signum != signal.SIGHUP:
            self._stopping = signum
            self._stopped.set()
        for slot in self.slots:
            process = slot.process
            if process is None or process.returncode is not None:
                continue
            if signum == signal.SIGHUP and not _takes_sighup(process.pid):
                continue  # still exec'ing: it reads the file it starts with, after this
            process.send_signal(signum)

    async def _watch(self, slot: Slot) -> None:
        """Restart the worker of `slot` when its event loop stops answering (liveness)."""
        socket = admin_socket(self._directory, slot.index)
        await worker_liveness.watch(socket, lambda: slot.process, self._stopped, slot.index)

    def _stop_all(self) -> None:
        self._signalled(signal.SIGTERM)

    def command(self, index: int) -> list[str]:
        """How worker `index` is started: this command line again, in the worker's role."""
        command = [sys.executable, "-m", "edgeproxy", "serve"]
        if self._config_path is not None:
            command += ["--config", self._config_path]
        return [*command, "--worker-index", str(index), "--pod-dir", str(self._directory)]

    async def _keep(self, slot: Slot) -> None:
        """Run worker `slot` until the pod stops, restarting it when it fails."""
        loop = asyncio.get_running_loop()
        delay = RESTART_DELAY
        while True:
            # A session of its own: a terminal's Ctrl-C reaches the supervisor alone, which
            # passes it on once (twice, a worker would take it as "hurry" and cut its streams).
            slot.process = await asyncio.create_subprocess_exec(
                *self.command(slot.index), start_new_session=True
            )
            if self._stopping is not None:  # a signal came while it started
                slot.process.send_signal(self._stopping)
            started = loop.time()
            slot.exit_code = await slot.process.wait()
            if self._stopping is not None:
                return
            retire(self._directory, slot.index, slot.process.pid)
            now = loop.time()
            if now - started >= HEALTHY_AFTER:
                delay = RESTART_DELAY
            slot.failures.append(now)
            while now - slot.failures[0] > FAILURE_WINDOW:
                slot.failures.popleft()
            if len(slot.failures) >= FAILURES:
                log.error(
                    "worker keeps failing: stopping the pod",
                    extra={"worker": slot.index, "failures": len(slot.failures)},
                )
                self._gave_up = True
                self._stop_all()
                return
            log.warning(
                "worker exited unexpectedly: starting it again",
                extra={"worker": slot.index, "exit_code": slot.exit_code, "delay_s": delay},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)
            if self._stopping is not None:
                return
            slot.restarts += 1
            delay = min(delay * 2, RESTART_DELAY_MAX)


def _takes_sighup(pid: int) -> bool:
    """Whether process `pid` ignores or handles SIGHUP (edgeproxy/__main__.py ignores it from
    a worker's first line until serve handles it). Before that, in the moment between fork
    and exec, SIGHUP would end it. Unknown (no /proc): assumed so."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    bit = 1 << (signal.SIGHUP - 1)
    return any(int(fields.get(name, "0"), 16) & bit for name in ("SigIgn", "SigCgt"))


@contextlib.contextmanager
def pod_directory(config: Config) -> Iterator[Path]:
    """The configured shared directory, cleared of an earlier pod's files, or a private
    temporary one removed at exit."""
    configured = config.telemetry.metrics.shared_dir
    if configured is not None:
        directory = Path(configured)
        for pattern in _STALE:
            for stale in directory.glob(pattern):
                stale.unlink(missing_ok=True)
        yield directory
        return
    directory = Path(tempfile.mkdtemp(prefix="edgeproxy-pod-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_pod(config: Config, config_path: str | None, count: int) -> int:
    """Supervise `count` workers until they have all exited; the exit status of the pod."""
    import uvloop

    if config.server.port == 0:
        print("edgeproxy: server.port 0 cannot be shared by workers: name a port", file=sys.stderr)
        return 2
    with pod_directory(config) as directory:
        return uvloop.run(Supervisor(config, config_path, count, directory).run())
