"""Real Redis for the tests: the machine's server, private `redis-server` processes on free
ports, and a Redis Cluster of private processes.

- `require_redis()` / `require_redis_server()`: a test needing Redis skips with the reason on a
  laptop without it, and FAILS when `CI=true` (CI must never pass by skipping).
- `RedisServer`: one `redis-server` (no persistence) on a free port, which a test may `kill()`
  (a crash), `pause()`/`resume()` (SIGSTOP: a server that hangs) and `restart()` on the same
  port. redis-server cannot listen on port 0, so ports are found by binding and releasing a
  socket, and a start that loses the race for its port is retried on another.
- `start_cluster()`: 3 masters (by default), slots assigned with CLUSTER ADDSLOTSRANGE and the
  nodes introduced with CLUSTER MEET (no redis-cli, and no one-second sleeps), waited for until
  every node reports `cluster_state:ok`.

Every wait is a bounded poll: a server that does not come up raises with its log's tail.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from tests.support.requires import unavailable

SHARED_HOST = "127.0.0.1"
SHARED_PORT = 6379
HOST = "127.0.0.1"
SLOTS = 16384
_START_WITHIN = 10.0
_CLUSTER_OK_WITHIN = 30.0
_PORT_ATTEMPTS = 5


def _probe(host: str, port: int, timeout: float = 0.5) -> str | None:
    """None when a Redis answers PING on host:port, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        return exc.strerror or repr(exc)
    if reply.startswith(b"+PONG"):
        return None
    return f"PING answered {reply[:40]!r}"


def redis_available(host: str = SHARED_HOST, port: int = SHARED_PORT) -> bool:
    return _probe(host, port) is None


def require_redis(host: str = SHARED_HOST, port: int = SHARED_PORT) -> None:
    reason = _probe(host, port)
    if reason is not None:
        unavailable(f"Redis not reachable on {host}:{port}: {reason}")


def require_redis_server() -> None:
    for program in ("redis-server",):
        if shutil.which(program) is None:
            unavailable(f"{program} not found on PATH: cannot start private Redis servers")


def free_port() -> int:
    """A port free right now (another process may take it before we do: callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait(condition: Callable[[], bool], within: float, what: str) -> None:
    """Poll `condition` until it holds (a process starting or stopping has no event to wait
    on), bounded by `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {within}s waiting for {what}")
        time.sleep(0.01)


class RedisServer:
    """A private redis-server process; `url` is where it listens once started."""

    def __init__(self, directory: Path, *, cluster: bool = False) -> None:
        self.directory = directory
        self.cluster = cluster
        self.port = 0
        self.bus_port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def start(self) -> None:
        """Start on free ports, trying others when one is taken meanwhile."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for attempt in range(_PORT_ATTEMPTS):
            self.port = free_port()
            self.bus_port = free_port() if self.cluster else 0
            if self._launch() or attempt == _PORT_ATTEMPTS - 1:
                break
        if not self.running:
            raise RuntimeError(f"redis-server did not start: {self._log_tail()}")

    def restart(self) -> None:
        """Start again on the same port (after `kill` or `stop`)."""
        if not self._launch():
            raise RuntimeError(f"redis-server did not restart: {self._log_tail()}")

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye to clients."""
        self._signal_and_reap(signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)  # a paused server cannot handle SIGTERM
        self._signal_and_reap(signal.SIGTERM)

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, the server answers nothing."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> redis.Redis:
        """A blocking client for a test's own checks (use it in a `with`)."""
        return redis.Redis(host=HOST, port=self.port, socket_timeout=5.0)

    def _arguments(self) -> list[str]:
        args = [
            "redis-server",
            "--port", str(self.port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        if self.cluster:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-port", str(self.bus_port),
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
        return args

    def _launch(self) -> bool:
        """Spawn and wait for PING; False when the process died (its port taken, usually)."""
        self.process = subprocess.Popen(
            self._arguments(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        process = self.process

        def up_or_dead() -> bool:
            return process.poll() is not None or _probe(HOST, self.port, timeout=0.2) is None

        try:
            _wait(up_or_dead, _START_WITHIN, f"redis-server on port {self.port} to answer")
        except TimeoutError:
            self._signal_and_reap(signal.SIGKILL)
            raise
        return process.poll() is None

    def _signal_and_reap(self, signum: int) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(timeout=_START_WITHIN)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_START_WITHIN)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-600:]
        except OSError:
            return "(no log)"


def start_redis(directory: Path) -> RedisServer:
    """A private server, started (stop it with `stop()`)."""
    server = RedisServer(directory)
    server.start()
    return server


class Cluster:
    """Masters of one Redis Cluster; `nodes` in the "host:port" form of `cluster_nodes`."""

    def __init__(self, servers: list[RedisServer], directory: Path) -> None:
        self.servers = servers
        self.directory = directory

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(server.address for server in self.servers)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _cluster_ok(server: RedisServer, masters: int) -> bool:
    with server.client() as client:
        info = client.execute_command("CLUSTER", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
    return (
        fields.get("cluster_state") == "ok"
        and fields.get("cluster_known_nodes") == str(masters)
        and fields.get("cluster_slots_ok") == str(SLOTS)
    )


def start_cluster(directory: Path, masters: int = 3) -> Cluster:
    """Start `masters` nodes, give each an equal share of the slots, join them, wait for ok."""
    directory.mkdir(parents=True, exist_ok=True)
    servers = [RedisServer(directory / f"node{i}", cluster=True) for i in range(masters)]
    cluster = Cluster(servers, directory)
    try:
        for server in servers:
            server.start()
        for i, server in enumerate(servers):
            first, last = SLOTS * i // masters, SLOTS * (i + 1) // masters - 1
            with server.client() as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
        with servers[0].client() as client:
            for server in servers[1:]:
                client.execute_command("CLUSTER", "MEET", HOST, server.port, server.bus_port)
        for server in servers:
            ok = functools.partial(_cluster_ok, server, masters)
            _wait(ok, _CLUSTER_OK_WITHIN, f"cluster_state:ok on {server.address}")
    except BaseException:
        cluster.stop()
        raise
    return cluster
