"""The workers scenarios: one pod's throughput with 1 and with 2 worker processes, saturated.

`edgeproxy serve --workers N` runs N processes on one port (edgeproxy.workers). Here the
cache-off proxy (`runner.proxy_config`) runs twice side by side through its CLI: as one
process (`single`) and as a pod of 2 workers (`pod`), with the load also sent straight to the
upstream (`direct`), in interleaved runs (ABBA) at c=32.

Nothing is pinned, unlike the other scenarios: a pod of 2 workers needs both cores, and its
upstream and load generator run on those same cores. To leave the proxy as much of them as
can be, both are cheap: canned answers on a raw protocol (bench/cheap_upstream.py) and a raw
closed-loop client (bench/raw_load.py), together a fraction of the proxy's CPU per request;
bench/load.py and the fake upstream (aiohttp) would each cost about what the proxy does, and
this would measure them. Even so the pod never has 2 cores to itself here, so the throughput
ratio is a floor of what 2 dedicated cores give. What does not depend on the machine is the CPU
the pod spends per request (supervisor and workers, `Child(workers=True)`): if it stays flat
from 1 worker to 2, throughput grows with the cores given, and cores per 1,000 requests per
second = CPU ms per request is the sizing figure.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench.procs import Child, Children, free_port, machine_busy_seconds
from bench.raw_load import RawLoad, RawResult, post
from bench.runner import SCENARIOS, Settings, proxy_config, run_order

NAME = "workers"  # the `--scenario` name of both
CONCURRENCY = 32
WORKERS = 2
Side = Literal["direct", "single", "pod"]
SIDES: tuple[Side, ...] = ("direct", "single", "pod")


@dataclass(frozen=True)
class Case:
    name: str
    stream: bool
    about: str

    def body(self) -> bytes:
        """nonstream-c16's request, or stream-c16's."""
        return SCENARIOS["stream-c16" if self.stream else "nonstream-c16"].body()


CASES = (
    Case("workers-c32", False, f"JSON as nonstream-c16, c={CONCURRENCY}"),
    Case("workers-stream-c32", True, f"SSE as stream-c16 (22 events), c={CONCURRENCY}"),
)


@dataclass(frozen=True)
class Target:
    port: int
    process: Child


@dataclass(frozen=True)
class Sample:
    side: Side
    result: RawResult
    server_cpu: float  # the proxy's (supervisor and workers); the upstream's for direct
    upstream_cpu: float
    load_cpu: float
    machine_cpu: float  # every process on the machine, ours included


def start(children: Children, results: Path) -> dict[Side, Target]:
    """The cheap upstream and the two proxies in front of it, unpinned."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.cheap_upstream", str(port)]
    upstream = Target(port, children.server("workers upstream", argv, port, None))
    targets: dict[Side, Target] = {"direct": upstream}
    for side, count in (("single", 1), ("pod", WORKERS)):
        proxy_port = free_port()
        path = results / f"workers-{side}.yaml"
        path.write_text(proxy_config(proxy_port, f"http://127.0.0.1:{port}"))
        argv = [sys.executable, "-m", "edgeproxy", "serve", "--config", str(path)]
        argv += ["--workers", str(count)]
        name = f"workers {side} proxy"
        targets[side] = Target(
            proxy_port, children.server(name, argv, proxy_port, None, workers=True)
        )
    return targets


def unpinned() -> frozenset[int]:
    """Every core of the machine (the processes started inherit the starter's mask)."""
    return frozenset(range(os.cpu_count() or 1))


async def measure(targets: dict[Side, Target], settings: Settings) -> list[dict[str, Any]]:
    return [await _case(case, targets, settings) for case in CASES]


async def _case(case: Case, targets: dict[Side, Target], settings: Settings) -> dict[str, Any]:
    loads: dict[Side, RawLoad] = {}
    samples: list[Sample] = []
    try:
        for side, target in targets.items():
            request = post("127.0.0.1", target.port, "/v1/chat/completions", case.body())
            loads[side] = RawLoad("127.0.0.1", target.port, request, CONCURRENCY)
            await loads[side].open()
            await loads[side].run(settings.warmup)
        for repetition in range(settings.repeat):
            order = run_order(SIDES, repetition)
            samples += [await _sample(side, loads[side], targets, settings) for side in order]
    finally:
        for load in loads.values():
            load.close()
    return summarize(case, settings, samples)


async def _sample(
    side: Side, load: RawLoad, targets: dict[Side, Target], settings: Settings
) -> Sample:
    server, upstream = targets[side].process, targets["direct"].process
    before = (server.cpu_seconds(), upstream.cpu_seconds(), time.process_time())
    machine = machine_busy_seconds()
    result = await load.run(settings.run)
    for target in targets.values():
        target.process.check_alive()
    return Sample(
        side,
        result,
        server_cpu=server.cpu_seconds() - before[0],
        upstream_cpu=upstream.cpu_seconds() - before[1],
        load_cpu=time.process_time() - before[2],
        machine_cpu=machine_busy_seconds() - machine,
    )


def _others(sample: Sample) -> float:
    """CPU seconds the machine spent on processes other than the run's own."""
    own = sample.load_cpu + sample.upstream_cpu
    if sample.side != "direct":
        own += sample.server_cpu
    return max(0.0, sample.machine_cpu - own)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(case: Case, settings: Settings, samples: list[Sample]) -> dict[str, Any]:
    """Medians per side; for the proxies, CPU ms per request (= cores per 1,000 rps)."""
    row: dict[str, Any] = {
        "scenario": case.name,
        "description": case.about,
        "concurrency": CONCURRENCY,
        "stream": case.stream,
        "workers": WORKERS,
        "repetitions": settings.repeat,
    }
    for side in SIDES:
        runs = [s for s in samples if s.side == side and s.result.seconds]
        row[f"rps_{side}"] = _median([s.result.rps for s in runs])
        row[f"errors_{side}"] = sum(s.result.errors for s in runs)
        row[f"load_cores_{side}"] = _median(
            [(s.load_cpu + s.upstream_cpu) / s.result.seconds for s in runs]
        )
        row[f"other_cores_{side}"] = _median([_others(s) / s.result.seconds for s in runs])
        if side != "direct":
            row[f"cores_{side}"] = _median([s.server_cpu / s.result.seconds for s in runs])
            row[f"cpu_ms_per_request_{side}"] = _median(
                [s.server_cpu * 1000 / s.result.completed for s in runs if s.result.completed]
            )
    single, pod = row["rps_single"], row["rps_pod"]
    row["rps_ratio"] = pod / single if single and pod is not None else None
    # Throughput per core of the pod over one process's: 1.00 is linear in the cores it got.
    one, two = row["cpu_ms_per_request_single"], row["cpu_ms_per_request_pod"]
    row["per_core_ratio"] = one / two if one and two else None
    return row


def markdown(rows: list[dict[str, Any]], settings: Settings) -> str:
    """The workers section of the report."""
    lines = [
        "",
        f"**Workers: one process against a pod of {WORKERS} (bench/workers.py)**",
        "",
        "| scenario | direct rps | 1 worker rps | 2 workers rps | 2/1 | per core 2/1 | "
        "proxy cores 1 / 2 | "
        "load+upstream cores 1 / 2 | other processes' cores 1 / 2 | "
        "CPU ms/req = cores per 1,000 rps, 1 / 2 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [_line(row) for row in rows]
    errors = [
        f"{row['scenario']} {side} {row[f'errors_{side}']}"
        for row in rows
        for side in SIDES
        if row[f"errors_{side}"]
    ]
    lines += [
        "",
        f"Medians of {settings.repeat} interleaved repetitions (ABBA) of at most "
        f"{settings.run.requests:,} requests or {settings.run.seconds:g} s per side. Nothing "
        "pinned: the proxies, the cheap upstream and the raw load generator share every core, "
        "so the 2-worker pod never has 2 cores to itself and 2/1 is a floor of what 2 "
        "dedicated cores give. Cores = CPU seconds per wall second (the pod's: supervisor and "
        "workers); per core 2/1 = the pod's requests per CPU second over one process's (1.00: "
        "throughput linear in the cores it got); other processes' cores = what the rest of the "
        "machine took meanwhile (from /proc/stat): above 0.1 the run shared its cores with "
        "someone else.",
    ]
    if errors:
        lines += ["", f"WORKERS PROBLEMS: failed requests: {', '.join(errors)}"]
    return "\n".join(lines)


def _line(row: dict[str, Any]) -> str:
    def pair(field: str, digits: int) -> str:
        return f"{_n(row[f'{field}_single'], digits)} / {_n(row[f'{field}_pod'], digits)}"

    return (
        f"| {row['scenario']} | {_n(row['rps_direct'], 0)} | {_n(row['rps_single'], 0)} | "
        f"{_n(row['rps_pod'], 0)} | {_n(row['rps_ratio'], 2)} | {_n(row['per_core_ratio'], 2)} | "
        f"{pair('cores', 2)} | "
        f"{pair('load_cores', 2)} | {pair('other_cores', 2)} | {pair('cpu_ms_per_request', 3)} |"
    )


def _n(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
