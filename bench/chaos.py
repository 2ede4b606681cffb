"""The chaos run: one of three deployments flaps while the proxy is under load.

It answers the routing issue's question: with one deployment failing half the time (down
`period` s, up `period` s), does every client request still succeed, how many extra upstream
attempts does that cost, and what happens to tail latency? Three fake upstreams, one flapping
by itself (the fake's `--flap-*` options), sit behind one model group of three equally
weighted OpenAI-kind deployments with the default retry settings.

There is no direct side: a client calling the flapping upstream itself would just see the
outage. The report sets the proxy's numbers against that outage instead: the share of the
window it was down, which is what a client spreading its calls over the three would lose on a
third of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import orjson

from bench import load
from bench.load import Limits, RunResult
from bench.procs import Child, Children, Pinning, free_ports
from bench.runner import STREAM_CHUNKS, Scenario

NAME = "chaos"
MODEL = "chaos-model"
FLAPPING = "flapping"
STEADY = ("steady-a", "steady-b")
ROLES = (*STEADY, FLAPPING)  # one upstream and one deployment each
CONCURRENCY = 16
MAX_RPS = 20_000  # request cap = seconds x this: far beyond one proxy core, so time ends a run
ADMIN_POLL = 0.25  # seconds between looks at /admin/routing: cheap, and fine enough for 1 s phases
_MAX_SAMPLES = 5  # failed answers kept whole
_MAX_TIMES = 100  # failures whose time is reported

Mode = Literal["error", "reset"]


@dataclass(frozen=True)
class ChaosSettings:
    seconds: float
    period: float
    mode: Mode = "error"
    stream: bool = False
    concurrency: int = CONCURRENCY

    @staticmethod
    def default(quick: bool) -> ChaosSettings:
        """30 s of load over three 10 s flap cycles; quick: 6 s over three 2 s cycles."""
        return ChaosSettings(seconds=6.0, period=1.0) if quick else ChaosSettings(30.0, 5.0)

    @property
    def reset_timeout(self) -> float:
        """The breaker's pause before probing an open deployment: 0.4 of the flap period.

        2 s against 5 s outages, so the flapping deployment keeps leaving and rejoining: probed
        about twice in every outage (the probes fail and reopen it, a few extra attempts each
        time) and back within 2 s of every recovery. The default 60 s would open it once and
        keep it out for the whole run, testing nothing about rejoining; a pause far shorter
        than the period would probe so often that an outage costs many extra attempts.
        """
        return round(self.period * 0.4, 3)

    @property
    def limits(self) -> Limits:
        return Limits(requests=int(self.seconds * MAX_RPS), seconds=self.seconds)

    @property
    def scenario(self) -> Scenario:
        kind = "SSE read to the end" if self.stream else "JSON"
        about = (
            f"{kind}, c={self.concurrency}, one of three deployments down {self.period:g} s / "
            f"up {self.period:g} s ({self.mode})"
        )
        return Scenario(NAME, self.concurrency, self.stream, MODEL, about)


def proxy_config(port: int, admin_port: int, urls: dict[str, str], settings: ChaosSettings) -> str:
    """One model group over the three upstreams, equal weights, default retry settings; the
    breaker's pause shortened (see `ChaosSettings.reset_timeout`), the rest of it default."""
    providers = "\n".join(
        f'  {role}: {{kind: openai, base_url: "{urls[role]}/v1", api_key: sk-bench, '
        "max_connections: 64}"
        for role in ROLES
    )
    deployments = "\n".join(
        f"      - {{provider: {role}, model: bench-upstream-model, name: {role}, weight: 1}}"
        for role in ROLES
    )
    return f"""\
server: {{host: 127.0.0.1, port: {port}, access_log: false, shutdown_grace: 2s}}
admin: {{enabled: true, host: 127.0.0.1, port: {admin_port}}}
logging: {{level: warning}}
cache: {{enabled: false}}  # every request goes upstream: this measures the proxy
routing:
  breaker: {{reset_timeout: {round(settings.reset_timeout * 1000)}ms}}
providers:
{providers}
models:
  {MODEL}:
    deployments:
{deployments}
"""


def down_seconds(first_outage: float, period: float, start: float, end: float) -> float:
    """How long, within [start, end], a flap that goes down at `first_outage` for `period`
    seconds and up for as long, over and over, was down (the fake's `Flap` convention)."""

    def down_until(t: float) -> float:
        elapsed = t - first_outage
        if elapsed <= 0:
            return 0.0
        cycles, into = divmod(elapsed, 2 * period)
        return cycles * period + min(into, period)

    return max(0.0, down_until(end) - down_until(start)) if end > start else 0.0


def phase_at(first_outage: float, period: float, now: float) -> tuple[str, float]:
    """The flap's phase at `now` ("before" the first outage, "down" or "up") and how many
    seconds into it."""
    elapsed = now - first_outage
    if elapsed < 0:
        return "before", elapsed  # negative: seconds to go
    cycles = int(elapsed // period)
    return ("down" if cycles % 2 == 0 else "up"), elapsed - cycles * period


def is_down(first_outage: float, period: float, now: float) -> bool:
    return phase_at(first_outage, period, now)[0] == "down"


@dataclass
class Observed:
    """What the proxy's answers said about themselves (its x-edgeproxy-* headers)."""

    answers: int = 0
    attempts: int = 0  # sum of x-edgeproxy-attempts over answers that carry it
    unmarked: int = 0  # answers without it: the proxy made no upstream attempt for them
    by_attempts: Counter[int] = field(default_factory=Counter)
    served_by: Counter[str] = field(default_factory=Counter)  # successes per deployment
    failures: list[dict[str, Any]] = field(default_factory=list)  # the first few, in full
    failed_at: list[float] = field(default_factory=list)  # time.monotonic() of every failure

    def __call__(self, response: aiohttp.ClientResponse, data: bytes) -> None:
        self.answers += 1
        headers = response.headers
        marked = headers.get("x-edgeproxy-attempts")
        if marked is None:
            self.unmarked += 1
        else:
            attempts = int(marked)
            self.attempts += attempts
            self.by_attempts[attempts] += 1
        deployment = headers.get("x-edgeproxy-deployment", "?")
        if response.status == 200:
            self.served_by[deployment] += 1
            return
        self.failed_at.append(time.monotonic())
        if len(self.failures) < _MAX_SAMPLES:
            self.failures.append(
                {
                    "status": response.status,
                    "attempts": marked,
                    "deployment": deployment,
                    "request_id": headers.get("x-request-id"),
                    "body": data[:300].decode(errors="replace"),
                }
            )

    @property
    def extra_attempts_per_request(self) -> float | None:
        """Upstream attempts beyond the first, per answer that says how many it took."""
        marked = self.answers - self.unmarked
        return (self.attempts - marked) / marked if marked else None


@dataclass
class Measured:
    result: RunResult
    observed: Observed
    window: tuple[float, float]  # time.monotonic() at the start and the end of the load
    admin_before: dict[str, Any]
    admin_after: dict[str, Any]
    breaker_samples: list[tuple[float, str]]  # (monotonic time, flapping breaker's state)


def _counts(log: Path) -> dict[str, Any] | None:
    """The `CALLS {...}` line a fake upstream prints when it is stopped."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("CALLS "):
            counts: dict[str, Any] = orjson.loads(line.removeprefix("CALLS "))
            return counts
    return None


def _first_outage(log: Path) -> float:
    """From the flapping fake's `FLAP ... first_outage=<monotonic s>` line (printed before
    READY): CLOCK_MONOTONIC is one clock for every process on the machine."""
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("FLAP "):
            fields = dict(part.split("=", 1) for part in line.split()[1:])
            return float(fields["first_outage"])
    raise RuntimeError(f"no FLAP line in {log}")


async def _routing(client: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with client.get(url) as response:
        response.raise_for_status()
        status: dict[str, Any] = orjson.loads(await response.read())
        return status


def _deployments(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in status.get("deployments", [])}


@dataclass
class ChaosRun:
    """The three upstreams and the proxy of one chaos run, started; then measured; then read."""

    settings: ChaosSettings
    upstreams: dict[str, Child]
    proxy: Child
    url: str  # the proxy's chat completions endpoint
    admin_url: str  # its /admin/routing
    first_outage: float  # time.monotonic() when the flapping upstream first goes down

    @staticmethod
    def start(
        children: Children, pinning: Pinning, settings: ChaosSettings, results: Path
    ) -> ChaosRun:
        """Spawn the upstreams (sharing the upstream core, as in the other scenarios) and the
        proxy on its own core. The flapping upstream starts last, once the proxy is ready, on a
        port chosen for it beforehand: its flap cycle then starts when the load does (give or
        take its own start-up), whatever the proxy's start-up took. It serves normally for one
        `period` first, so the load meets a healthy group and whole cycles fill the window."""
        upstreams, urls = {}, {}
        for role in STEADY:
            upstreams[role], urls[role] = children.upstream(
                pinning.upstream, STREAM_CHUNKS, name=f"chaos upstream {role}"
            )
        flap_port, port, admin_port = free_ports(3)
        urls[FLAPPING] = f"http://127.0.0.1:{flap_port}"
        config = results / "chaos-proxy.yaml"
        config.write_text(proxy_config(port, admin_port, urls, settings))
        proxy = children.proxy(config, port, pinning.proxy, name="chaos proxy")
        period = f"{settings.period:g}"
        upstreams[FLAPPING], _ = children.upstream(
            pinning.upstream,
            STREAM_CHUNKS,
            name=f"chaos upstream {FLAPPING}",
            port=flap_port,
            extra=["--flap-period", period, "--flap-mode", settings.mode, "--flap-offset", period],
        )
        return ChaosRun(
            settings,
            upstreams,
            proxy,
            url=f"http://127.0.0.1:{port}/v1/chat/completions",
            admin_url=f"http://127.0.0.1:{admin_port}/admin/routing",
            first_outage=_first_outage(upstreams[FLAPPING].log),
        )

    async def measure(self) -> Measured:
        settings = self.settings
        body = settings.scenario.body()
        observed = Observed()
        samples: list[tuple[float, str]] = []
        client = load.session(settings.concurrency)
        admin = aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=5.0))
        try:
            before = await _routing(admin, self.admin_url)
            done = asyncio.Event()
            watcher = asyncio.create_task(self._watch(admin, done, samples))
            started = time.monotonic()
            try:
                result = await load.run(
                    client,
                    self.url,
                    body,
                    stream=settings.stream,
                    concurrency=settings.concurrency,
                    limits=settings.limits,
                    observe=observed,
                )
            finally:
                ended = time.monotonic()
                done.set()
                await watcher
            self.proxy.check_alive()
            after = await _routing(admin, self.admin_url)
        except (aiohttp.ClientError, TimeoutError) as err:
            self.proxy.check_alive()  # a crash explains itself with its log's tail
            raise RuntimeError(f"chaos: the proxy's /admin/routing failed: {err!r}") from err
        finally:
            await client.close()
            await admin.close()
        return Measured(result, observed, (started, ended), before, after, samples)

    async def _watch(
        self, admin: aiohttp.ClientSession, done: asyncio.Event, samples: list[tuple[float, str]]
    ) -> None:
        """The flapping deployment's breaker state, every ADMIN_POLL s until the load is done
        (and never more often than the run's length allows)."""
        cap = math.ceil((self.settings.seconds + load.STALL_GRACE) / ADMIN_POLL) + 1
        while not done.is_set() and len(samples) < cap:
            try:
                status = await _routing(admin, self.admin_url)
            except (aiohttp.ClientError, TimeoutError):
                samples.append((time.monotonic(), "unknown"))
            else:
                flapping = _deployments(status).get(FLAPPING, {})
                samples.append((time.monotonic(), flapping.get("breaker", {}).get("state", "?")))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), ADMIN_POLL)

    def finish(self, measured: Measured) -> dict[str, Any]:
        """Stop the upstreams (each then prints what it served) and summarize the run."""
        for child in self.upstreams.values():
            child.check_alive()
            child.stop()
        counts = {role: _counts(child.log) for role, child in self.upstreams.items()}
        return summarize(self.settings, measured, counts, self.first_outage)


def _dig(value: Any, *path: str) -> Any:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _delta(after: dict[str, Any], before: dict[str, Any], *path: str) -> int | None:
    """A counter's growth between two /admin/routing snapshots."""
    a, b = _dig(after, *path), _dig(before, *path)
    return a - (b or 0) if isinstance(a, int) else None


def _breaker_shares(
    samples: list[tuple[float, str]], first_outage: float, period: float
) -> tuple[float | None, float | None]:
    """Share of the samples in down phases, then in up phases, that found the flapping
    deployment's breaker not closed (open or probing): kept out while down, and how long it
    lingers out after recovering."""
    down = [state != "closed" for t, state in samples if is_down(first_outage, period, t)]
    up = [state != "closed" for t, state in samples if not is_down(first_outage, period, t)]
    return (
        sum(down) / len(down) if down else None,
        sum(up) / len(up) if up else None,
    )


def summarize(
    settings: ChaosSettings,
    measured: Measured,
    upstream_counts: dict[str, dict[str, Any] | None],
    first_outage: float,
) -> dict[str, Any]:
    """One JSON-ready row: client-side outcome, the proxy's own accounting, the upstreams'."""
    result, observed = measured.result, measured.observed
    start, end = measured.window
    window = end - start
    down = down_seconds(first_outage, settings.period, start, end)
    down_share = down / window if window > 0 else None
    before, after = _deployments(measured.admin_before), _deployments(measured.admin_after)
    deployments = {}
    for role in ROLES:
        a, b = after.get(role, {}), before.get(role, {})
        counts = upstream_counts.get(role) or {}
        deployments[role] = {
            "proxy_attempts": _delta(a, b, "requests"),
            "proxy_failures": _delta(a, b, "failures"),
            "breaker_opened": _delta(a, b, "breaker", "opened"),
            "breaker_state_at_end": a.get("breaker", {}).get("state"),
            "upstream_calls": (counts.get("calls") or {}).get("chat"),
            "upstream_failed_by_flap": counts.get("flapped"),
            "served": observed.served_by.get(role, 0),
        }
    upstream_total = [d["upstream_calls"] for d in deployments.values()]
    admin_total = [d["proxy_attempts"] for d in deployments.values()]
    group_after: dict[str, Any] = next(iter(measured.admin_after.get("groups", [])), {})
    group_before: dict[str, Any] = next(iter(measured.admin_before.get("groups", [])), {})
    down_closed, up_closed = _breaker_shares(
        measured.breaker_samples, first_outage, settings.period
    )
    failure_phases = [phase_at(first_outage, settings.period, t) for t in observed.failed_at]
    return {
        "scenario": NAME,
        "description": settings.scenario.about,
        "concurrency": settings.concurrency,
        "stream": settings.stream,
        "model": MODEL,
        "flap_mode": settings.mode,
        "flap_period_s": settings.period,
        "breaker_reset_timeout_s": settings.reset_timeout,
        "planned_seconds": settings.seconds,
        "request_cap": settings.limits.requests,
        "seconds": result.seconds,
        "issued": result.issued,
        "completed": result.completed,
        "errors": result.errors,
        "stalled": result.stalled,
        "success_rate": result.completed / result.issued if result.issued else None,
        "rps": result.rps,
        "p50_ms": result.percentile_ms(50),
        "p99_ms": result.percentile_ms(99),
        "p999_ms": result.percentile_ms(99.9),
        "max_ms": result.percentile_ms(100),
        "attempts_total": observed.attempts,
        "answers": observed.answers,
        "answers_without_attempts": observed.unmarked,
        "extra_attempts_per_request": observed.extra_attempts_per_request,
        "requests_by_attempts": {str(k): v for k, v in sorted(observed.by_attempts.items())},
        "upstream_calls_total": None if None in upstream_total else sum(upstream_total),
        "proxy_attempts_total": None if None in admin_total else sum(admin_total),
        "deployments": deployments,
        "flapping_breaker_opened": deployments[FLAPPING]["breaker_opened"],
        "flapping_down_share": down_share,
        "direct_failure_share_one_in_three": down_share / 3 if down_share is not None else None,
        "flapping_out_share_while_down": down_closed,
        "flapping_out_share_while_up": up_closed,
        "breaker_samples": len(measured.breaker_samples),
        "breaker_poll_s": ADMIN_POLL,
        "retry_budget_denied": _delta(group_after, group_before, "retry_budget", "denied"),
        "failures_by_phase": dict(Counter(phase for phase, _ in failure_phases)),
        "failure_times": [
            {"at_s": t - start, "phase": phase, "into_phase_s": into}
            for t, (phase, into) in zip(
                observed.failed_at[:_MAX_TIMES], failure_phases[:_MAX_TIMES], strict=True
            )
        ],
        "error_samples": result.error_samples,
        "failure_samples": observed.failures,
    }
