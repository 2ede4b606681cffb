"""The benchmark's child processes: started pinned, awaited until ready, sampled, always stopped.

CPU time and RSS come from /proc so the proxy is measured from the outside, with no
instrumentation inside it that would change what is measured.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Pinning:
    """Which CPUs each party may use; all None when there is a single core to share."""

    proxy: frozenset[int] | None
    upstream: frozenset[int] | None
    load: frozenset[int] | None

    @staticmethod
    def plan() -> Pinning:
        """Proxy alone on the first core; upstream and load generator share the second."""
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            return Pinning(None, None, None)
        return Pinning(frozenset({cores[0]}), frozenset({cores[1]}), frozenset({cores[1]}))

    def as_dict(self) -> dict[str, list[int] | None]:
        return {
            name: None if cores is None else sorted(cores)
            for name, cores in (
                ("proxy", self.proxy),
                ("upstream", self.upstream),
                ("load", self.load),
            )
        }

    def describe(self) -> str:
        if self.proxy is None or self.upstream is None:
            return (
                "Not pinned: only one CPU is available, so proxy, fake upstream and load "
                "generator all share it (RPS and latency are then not comparable to 2-core runs)."
            )
        return (
            f"Proxy pinned to CPU {min(self.proxy)}; fake upstream and the load generator share "
            f"CPU {min(self.upstream)}, so direct runs are bounded by that one core "
            "and proxy runs add the proxy's own core."
        )


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy so far, over all CPUs (idle and iowait left
    out, steal counted: time the hypervisor gave to others). Over a run, this minus what the
    bench's own processes spent is what everything else took: whether the numbers were measured
    on a quiet machine."""
    with Path("/proc/stat").open() as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def free_port() -> int:
    """A port the kernel just considered free on loopback (the proxy binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free on loopback together (each socket held open until
    all are chosen, so none is handed out twice)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _child_setup(cores: frozenset[int] | None) -> Callable[[], None]:
    """Runs in the child before exec: pin it (threads inherit the mask) and tie its life to ours.

    The parent-death signal means even a SIGKILLed benchmark leaves no servers behind.
    """

    def setup() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if cores is not None:
            os.sched_setaffinity(0, cores)

    return setup


def _child_env() -> dict[str, str]:
    """Our environment minus EDGEPROXY_* overrides, which would win over the bench config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPROXY_")}
    env["PYTHONUNBUFFERED"] = "1"  # the READY line must reach the log file at once
    return env


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of all the threads of process `pid` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def _children(pid: int) -> list[int]:
    """The processes `pid` has forked and not yet reaped, from every one of its threads."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


class Child:
    """One subprocess, its log file, and readings of its CPU time and memory from /proc.

    With `workers`, its CPU time includes that of the processes it forked (nginx serves from
    a worker process; its master only supervises)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        cwd: Path,
        log: Path,
        cores: frozenset[int] | None,
        *,
        workers: bool = False,
    ):
        self.name = name
        self.log = log
        self._workers = workers
        with log.open("wb") as sink:
            self._proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=_child_env(),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal Ctrl-C reaches us only; we stop children
                # Spawned before the event loop starts, while this process has one thread.
                preexec_fn=_child_setup(cores),  # noqa: PLW1509
            )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def check_alive(self) -> None:
        code = self._proc.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with status {code}:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """User plus system CPU time of all its threads so far (and its workers')."""
        total = _cpu_seconds(self.pid)
        if self._workers:
            for worker in _children(self.pid):
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # just exited
                    total += _cpu_seconds(worker)
        return total

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"{self.name}: no VmRSS in /proc/{self.pid}/status")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
        if self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(grace)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(grace)


def _answers(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


class Children:
    """Starts the benchmark's subprocesses and stops every one of them on exit, whatever happens."""

    def __init__(self, root: Path, logs: Path) -> None:
        self._root = root
        self._logs = logs
        self._started: list[Child] = []

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *_: object) -> None:
        for child in reversed(self._started):
            child.stop()

    def _spawn(
        self, name: str, argv: list[str], cores: frozenset[int] | None, *, workers: bool = False
    ) -> Child:
        log = self._logs / (name.replace(" ", "-") + ".log")
        child = Child(name, argv, self._root, log, cores, workers=workers)
        self._started.append(child)
        return child

    def upstream(
        self,
        cores: frozenset[int] | None,
        chunks: int,
        timeout: float = 20.0,
        *,
        name: str = "fake upstream",
        port: int = 0,
        split: str = "frames",
        extra: Sequence[str] = (),
    ) -> tuple[Child, str]:
        """The fake upstream on `port` (0: of its choosing), with the URL from its READY line;
        `split` is how it cuts a stream into writes (its `Reply.split`), `extra` more of its
        options (the chaos run's `--flap-*`)."""
        argv = [sys.executable, "-m", "tests.support.fake_upstream", "--port", str(port)]
        argv += ["--chunks", str(chunks), "--split", split, *extra]
        child = self._spawn(name, argv, cores)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in child.log.read_text(errors="replace").splitlines():
                if line.startswith("READY "):
                    return child, line.split()[1].rstrip("/")
            child.check_alive()
            time.sleep(0.02)
        raise RuntimeError(f"fake upstream not ready after {timeout:.0f}s:\n{child.log_tail()}")

    def proxy(
        self,
        config: Path,
        port: int,
        cores: frozenset[int] | None,
        timeout: float = 20.0,
        *,
        name: str = "proxy",
    ) -> Child:
        """The proxy from its CLI, as deployed; ready once GET /v1/models answers 200."""
        argv = [sys.executable, "-m", "edgeproxy", "serve", "--config", str(config)]
        return self.server(name, argv, port, cores, timeout)

    def floor(
        self,
        upstream_url: str,
        port: int,
        cores: frozenset[int] | None,
        timeout: float = 20.0,
        *,
        cache: bool = False,
        name: str = "floor",
    ) -> Child:
        """The bare aiohttp pass-through (`bench.floor`); with `cache`, answering repeated
        bodies from a dict (the L1 floor)."""
        argv = [sys.executable, "-m", "bench.floor", str(port), upstream_url]
        if cache:
            argv.append("--cache")
        return self.server(name, argv, port, cores, timeout)

    def server(
        self,
        name: str,
        argv: list[str],
        port: int,
        cores: frozenset[int] | None,
        timeout: float = 20.0,
        *,
        workers: bool = False,
    ) -> Child:
        """Any server the load can be put through (the proxy, the floor, nginx), started from
        `argv` and ready once GET /v1/models on `port` answers 200; `workers`: see `Child`."""
        child = self._spawn(name, argv, cores, workers=workers)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _answers(port, "/v1/models"):
                return child
            child.check_alive()
            time.sleep(0.05)
        raise RuntimeError(f"{child.name} not ready after {timeout:.0f}s:\n{child.log_tail()}")
