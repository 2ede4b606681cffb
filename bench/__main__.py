"""`python -m bench`: start the fake upstream, the proxy and its references, measure each
scenario, report.

Scenarios run in groups, each with an upstream and a proxy of its own: the proxy's cache layer
(the cache scenarios, bench/cached.py, need it on; the others keep it off), its guards (the
guarded scenarios, bench/guarded.py: a key, its limits and budget, a guardrail policy), its
observability (the observed scenarios, bench/observed.py: all of it on) and the way the
upstream writes a stream (at once, or event by event) make a group. Beside each proxy, on its
core, run the references its scenarios name: the bare aiohttp pass-through
(bench/floor.py) and nginx (bench/nginx.py) where it is installed, measured in the same
interleaved runs, since issue 11's targets are ratios to them (bench/targets.py); `--no-floor`
and `--no-nginx` leave them out. Beside a guarded proxy runs the same proxy without its guards
(the `plain` reference), so the guards' cost comes from the same runs; beside an observed proxy,
the same proxy with its observability off (the `off` reference). Then the workers scenarios (a
pod of 2 worker processes against one, bench/workers.py), the memory soak (bench/soak.py) and
the chaos run (bench/chaos.py), each with processes of its own. Results go
to stdout (markdown) and bench/results/latest.jsonl; the configs and every server's log are
left in bench/results/ for a post-mortem.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import uvloop

from bench import cached, chaos, guarded, nginx, observed, soak, workers
from bench.cached import RedisPrefix
from bench.chaos import ChaosRun, ChaosSettings
from bench.load import Limits
from bench.procs import Child, Children, Pinning, free_port
from bench.report import chaos_markdown, markdown, metadata, soak_markdown, write_jsonl
from bench.runner import (
    SCENARIO_GROUPS,
    SCENARIOS,
    STREAM_CHUNKS,
    Bench,
    CacheLayer,
    Guarding,
    Reference,
    Scenario,
    Server,
    Settings,
    Split,
    proxy_config,
    start_configured,
)
from bench.soak import SoakSettings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# The floor maps and forwards JSON, relays streams, and (for l1-hit) answers repeated bodies
# from a dict.
FLOOR_SCENARIOS = [
    "nonstream-c1",
    "nonstream-c16",
    "stream-c16",
    "stream-events-c16",
    "l1-hit-c1",
    "l1-hit-c16",
]
# `--scenario data-plane`: what issue 11 is judged by (bench/targets.py), and the memory soak.
DATA_PLANE = (*FLOOR_SCENARIOS, soak.NAME)
GROUPS = {
    **SCENARIO_GROUPS,
    "data-plane": DATA_PLANE,
    guarded.NAME: guarded.SCENARIOS,
    observed.NAME: observed.SCENARIOS,
}
# The references that are the measured proxy with something off: without the guards (plain,
# bench/guarded.py), with its observability off (off, bench/observed.py).
SAME_PROXY: dict[Reference, Callable[..., str]] = {
    "plain": proxy_config,
    "off": observed.off_config,
}
T = TypeVar("T")
GroupKey = tuple[CacheLayer | None, Split, Guarding | None, bool]  # ..., observed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure what edgeproxy adds over talking to the upstream directly, and "
        "what its clients see while one of three deployments flaps (the chaos run).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs: a smoke check, not numbers to quote"
    )
    parser.add_argument(
        "--repeat", type=int, help="measured runs per side and scenario (default 5; quick 2)"
    )
    parser.add_argument(
        "--duration", type=float, help="wall-time cap per measured run, s (default 2; quick 0.3)"
    )
    parser.add_argument(
        "--requests", type=int, help="request cap per measured run (default 20000; quick 2000)"
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="measure the bare aiohttp pass-through (bench/floor.py) in the proxy's place "
        "(default scenarios: nonstream, stream and l1-hit, the latter answered from a plain "
        "dict), with no references beside it",
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="do not run the floor beside the proxy (its ratios are then not judged)",
    )
    parser.add_argument(
        "--no-nginx",
        action="store_true",
        help="do not run nginx beside the proxy (default: wherever it is installed)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[*SCENARIOS, *GROUPS, workers.NAME, soak.NAME, chaos.NAME],
        help="run only this scenario (repeatable; default: all, then workers, rss and chaos); "
        "workers for a pod of 2 worker processes against one (bench/workers.py); l1-hit "
        "and l2-hit stand for their c=1 and c=16 scenarios, semantic-hit for "
        "semantic-hit-c1/c16 and semantic-repeat-c1/c16, data-plane for those issue 11 is "
        "judged by and rss, guarded for guarded-c16, guarded-pii-c16 and guarded-stream-c16 "
        "(each beside the same proxy without its guards), observed for observed-c16 and "
        "observed-stream-c16 (each beside the same proxy with its observability off)",
    )
    group = parser.add_argument_group("chaos run (one of three deployments flapping)")
    group.add_argument(
        "--chaos-mode",
        choices=("error", "reset"),
        default="error",
        help="while down, the flapping upstream answers 500 (error) or drops the connection",
    )
    group.add_argument(
        "--chaos-stream", action="store_true", help="stream the chaos run's requests (SSE)"
    )
    group.add_argument(
        "--chaos-seconds", type=float, help="length of the load (default 30; quick 6)"
    )
    group.add_argument(
        "--chaos-period", type=float, help="seconds down, then as many up (default 5; quick 1)"
    )
    return parser


def _settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Settings:
    repeat = args.repeat if args.repeat is not None else (2 if args.quick else 5)
    seconds = args.duration if args.duration is not None else (0.3 if args.quick else 2.0)
    requests = args.requests if args.requests is not None else (2000 if args.quick else 20_000)
    if repeat < 1 or seconds <= 0 or requests < 1:
        parser.error("--repeat, --duration and --requests must be positive")
    warmup = Limits(requests=max(1, requests // 5), seconds=min(1.0, seconds / 2))
    return Settings(repeat, Limits(requests, seconds), warmup)


def _chaos_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ChaosSettings:
    default = ChaosSettings.default(args.quick)
    seconds = args.chaos_seconds if args.chaos_seconds is not None else default.seconds
    period = args.chaos_period if args.chaos_period is not None else default.period
    if seconds <= 0 or period <= 0:
        parser.error("--chaos-seconds and --chaos-period must be positive")
    return ChaosSettings(seconds, period, args.chaos_mode, args.chaos_stream)


@dataclass(frozen=True)
class References:
    """What runs beside the proxies: the floor or not, nginx's binary or None (the plain
    proxy always runs beside a guarded one, the off one beside an observed one); `described`
    says what each is, or why it is not measured, for the report."""

    floor: bool
    nginx: Path | None
    described: dict[Reference, str]


def _references(args: argparse.Namespace, names: list[str]) -> References:
    """The references the chosen scenarios name, less those switched off or not installed."""
    wanted = {r for name in names if name in SCENARIOS for r in SCENARIOS[name].references}
    if args.floor:
        why = "not measured: --floor puts the floor in the proxy's place"
        return References(False, None, {"floor": why, "nginx": why, "plain": why, "off": why})
    unused = "not measured: no scenario chosen compares with it"
    floor = "floor" in wanted and not args.no_floor
    described: dict[Reference, str] = {
        "floor": f"bench.floor on aiohttp {aiohttp.__version__}"
        if floor
        else ("not measured (--no-floor)" if args.no_floor else unused)
    }
    plain = "the guarded proxy's config without the guards' sections"
    described["plain"] = plain if "plain" in wanted else unused
    off = "the observed proxy's config with its observability off"
    described["off"] = off if "off" in wanted else unused
    binary = None
    if args.no_nginx:
        described["nginx"] = "not measured (--no-nginx)"
    elif "nginx" not in wanted:
        described["nginx"] = unused
    elif (binary := nginx.locate()) is None:
        described["nginx"] = f"not measured: not found on PATH or in {nginx.SBIN}"
        print(
            f"bench: nginx not found on PATH or in {nginx.SBIN}: the nginx column is skipped "
            "(apt-get install nginx to measure it)",
            file=sys.stderr,
            flush=True,
        )
    else:
        described["nginx"] = f"{nginx.version(binary)} ({binary})"
    return References(floor, binary, described)


async def _cancellable(work: Coroutine[Any, Any, T]) -> T:
    """`work`, cancelled by a SIGTERM so the servers are stopped on the way out."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await work


async def _measure_all(
    bench: Bench, scenarios: list[Scenario], l2: RedisPrefix | None
) -> list[dict[str, Any]]:
    """Each scenario against `bench`'s proxy; a cache scenario that cannot be prefilled becomes
    a row that says so (its proxy's log has the rest), and the others still run."""
    rows = []
    for scenario in scenarios:
        print(f"bench: {scenario.name} ({scenario.about}) ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        if scenario.cache is None:
            rows.append(await bench.measure(scenario))
        else:
            try:
                rows.append(await cached.measure(bench, scenario, l2))
            except RuntimeError as err:  # reported with the rest; the exit status says it
                print(f"bench: {scenario.name} FAILED: {err}", file=sys.stderr, flush=True)
                rows.append(cached.not_measured(scenario, "failed", str(err)))
        print(f"bench:   done in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return rows


def _main_proxy(
    args: argparse.Namespace, children: Children, upstream_url: str, pinning: Pinning, label: str
) -> tuple[str, Child]:
    """A proxy with the cache off (or the floor in its place), with its base URL; `label`
    starts the names of its config and log."""
    port = free_port()
    config = RESULTS / f"{label.replace(' ', '-')}proxy.yaml"
    config.write_text(proxy_config(port, upstream_url))
    if args.floor:
        proxy = children.floor(upstream_url, port, pinning.proxy, name=f"{label}floor")
    else:
        proxy = children.proxy(config, port, pinning.proxy, name=f"{label}proxy")
    return f"http://127.0.0.1:{port}", proxy


def _label(key: GroupKey) -> str:
    """How a group's processes are named: `` for the first, `cache l1 `, `events `,
    `guarded answers `, `observed `..."""
    layer, split, guards, watched = key
    return (
        ("" if layer is None else f"cache {layer} ")
        + ("" if guards is None else f"guarded {guards} ")
        + ("observed " if watched else "")
        + ("events " if split == "events" else "")
    )


def _start_references(
    children: Children,
    refs: References,
    scenarios: list[Scenario],
    *,
    key: GroupKey,
    upstream_url: str,
    pinning: Pinning,
) -> dict[Reference, Server]:
    """The references the group's scenarios name, on the proxy's core (each idles while
    another side runs); the floor of the l1 group answers repeated bodies from its dict, as
    the proxy there answers from its L1."""
    wanted = {r for scenario in scenarios for r in scenario.references}
    layer = key[0]
    label = _label(key)
    servers: dict[Reference, Server] = {}
    if refs.floor and "floor" in wanted:
        port = free_port()
        floor = children.floor(
            upstream_url, port, pinning.proxy, cache=layer == "l1", name=f"{label}floor"
        )
        servers["floor"] = Server(f"http://127.0.0.1:{port}", floor)
    if refs.nginx is not None and "nginx" in wanted:
        port = free_port()
        process = nginx.start(
            children,
            refs.nginx,
            upstream_url,
            port,
            pinning.proxy,
            results=RESULTS,
            name=f"{label}nginx",
        )
        servers["nginx"] = Server(f"http://127.0.0.1:{port}", process)
    for name in SAME_PROXY.keys() & wanted:  # the proxy itself, something off, same core
        config = partial(SAME_PROXY[name], upstream_url=upstream_url)
        servers[name] = start_configured(
            children, pinning, config, results=RESULTS, name=f"{label}{name} proxy"
        )
    return servers


def _group(
    args: argparse.Namespace,
    settings: Settings,
    key: GroupKey,
    scenarios: list[Scenario],
    *,
    pinning: Pinning,
    refs: References,
) -> tuple[list[dict[str, Any]], float | None]:
    """The scenarios of one proxy (`key`: its cache layer, None for the cache off, how its
    upstream writes streams, its guards, None for none, and whether it is observed), with an
    upstream, a proxy and references of their own that stop before the next group's start, so
    no idle server of another group shares the cores.
    Also that proxy's starting RSS. The l2 group needs Redis: without it its scenarios are
    skipped; with it, the run's keys are deleted once the proxy has stopped. An observed
    proxy's events go to a temporary directory, removed once it has stopped."""
    layer, split, guards, watched = key
    label = _label(key)
    with contextlib.ExitStack() as stack:
        l2 = None
        if layer == "l2":
            found = stack.enter_context(cached.redis_for_bench())
            if isinstance(found, str):
                for scenario in scenarios:
                    print(f"bench: {scenario.name} skipped: {found}", file=sys.stderr, flush=True)
                return [cached.not_measured(s, "skipped", found) for s in scenarios], None
            l2 = found
        spool = stack.enter_context(tempfile.TemporaryDirectory(prefix="edgeproxy-bench-"))
        children = stack.enter_context(Children(ROOT, RESULTS))  # stopped before Redis is purged
        upstream, upstream_url = children.upstream(
            pinning.upstream, STREAM_CHUNKS, name=f"{label}fake upstream", split=split
        )
        if guards is not None:
            url, proxy = guarded.start_proxy(
                children, pinning, upstream_url, guards, results=RESULTS, label=label
            )
        elif watched:
            url, proxy = observed.start_proxy(
                children, pinning, upstream_url, spool=Path(spool), results=RESULTS, label=label
            )
        elif layer is None:
            url, proxy = _main_proxy(args, children, upstream_url, pinning, label)
        elif args.floor:  # the l1 scenarios (the others are refused)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            proxy = children.floor(
                upstream_url, port, pinning.proxy, cache=True, name=f"{label}floor"
            )
        else:
            url, proxy = cached.start_proxy(
                children, pinning, upstream_url, layer, l2=l2, results=RESULTS
            )
        references = _start_references(
            children, refs, scenarios, key=key, upstream_url=upstream_url, pinning=pinning
        )
        rss_start_mib = proxy.rss_kib() / 1024
        bench = Bench(Server(upstream_url, upstream), Server(url, proxy), settings, references)
        return uvloop.run(_cancellable(_measure_all(bench, scenarios, l2))), rss_start_mib


def _scenarios(
    args: argparse.Namespace,
    settings: Settings,
    scenarios: list[Scenario],
    pinning: Pinning,
    refs: References,
) -> tuple[list[dict[str, Any]], float | None]:
    """The direct-versus-proxy scenarios, group by group (see `_group`); also the starting RSS
    of the first proxy (the cache-off one when it runs)."""
    groups: dict[GroupKey, list[Scenario]] = {}
    for scenario in scenarios:
        key = (scenario.cache, scenario.split, scenario.guards, scenario.observed)
        groups.setdefault(key, []).append(scenario)
    rows: list[dict[str, Any]] = []
    rss_start_mib = None
    for key, members in groups.items():
        found, rss = _group(args, settings, key, members, pinning=pinning, refs=refs)
        rows += found
        rss_start_mib = rss if rss_start_mib is None else rss_start_mib
    return rows, rss_start_mib


def _soak(args: argparse.Namespace, settings: SoakSettings, pinning: Pinning) -> dict[str, Any]:
    """The memory soak, with an upstream and a proxy of its own (started before any event
    loop runs)."""
    print(f"bench: {soak.NAME} ({settings.about}) ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    with Children(ROOT, RESULTS) as children:
        _, upstream_url = children.upstream(
            pinning.upstream, STREAM_CHUNKS, name="soak fake upstream", split="whole"
        )
        url, proxy = _main_proxy(args, children, upstream_url, pinning, "soak ")
        row = uvloop.run(_cancellable(soak.measure(url, proxy, settings)))
    print(f"bench:   done in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return row


def _workers(settings: Settings) -> list[dict[str, Any]]:
    """The workers scenarios, with an upstream and two proxies of their own, nothing pinned
    (bench/workers.py); this process is unpinned for them and pinned back after."""
    print(
        f"bench: {workers.NAME} (1 and {workers.WORKERS} workers) ...", file=sys.stderr, flush=True
    )
    started = time.monotonic()
    pinned = os.sched_getaffinity(0)
    os.sched_setaffinity(0, workers.unpinned())
    try:
        with Children(ROOT, RESULTS) as children:
            targets = workers.start(children, RESULTS)
            rows = uvloop.run(_cancellable(workers.measure(targets, settings)))
    finally:
        os.sched_setaffinity(0, pinned)
    print(f"bench:   done in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return rows


def _chaos(settings: ChaosSettings, pinning: Pinning) -> dict[str, Any]:
    """The chaos run, with processes of its own (started before any event loop runs)."""
    about = settings.scenario.about
    print(f"bench: {chaos.NAME} ({about}) ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    with Children(ROOT, RESULTS) as children:
        run = ChaosRun.start(children, pinning, settings, RESULTS)
        row = run.finish(uvloop.run(_cancellable(run.measure())))
    print(f"bench:   done in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return row


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    settings = _settings(parser, args)
    chaos_settings = _chaos_settings(parser, args)
    default = FLOOR_SCENARIOS if args.floor else [*SCENARIOS, workers.NAME, soak.NAME, chaos.NAME]
    chosen = args.scenario or default
    names = list(dict.fromkeys(n for c in chosen for n in GROUPS.get(c, (c,))))
    if args.floor and workers.NAME in names:
        parser.error("--floor runs no workers; leave out --scenario workers")
    if args.floor and chaos.NAME in names:
        parser.error("--floor has no routing to put under chaos; leave out --scenario chaos")
    if args.floor and any(SCENARIOS[n].cache not in (None, "l1") for n in names if n in SCENARIOS):
        parser.error("--floor has only an L1 of sorts; leave out l2-hit and semantic-*")
    if args.floor and any(SCENARIOS[n].guards for n in names if n in SCENARIOS):
        parser.error("--floor has no keys, limits or guardrails; leave out guarded-*")
    if args.floor and any(SCENARIOS[n].observed for n in names if n in SCENARIOS):
        parser.error("--floor has no observability to switch on; leave out observed-*")
    scenarios = [SCENARIOS[name] for name in names if name in SCENARIOS]
    RESULTS.mkdir(parents=True, exist_ok=True)
    refs = _references(args, names)
    pinning = Pinning.plan()
    if pinning.load is not None:
        os.sched_setaffinity(0, pinning.load)
    rows: list[dict[str, Any]] = []
    rss_start_mib = None
    soak_row, chaos_row = None, None
    worker_rows: list[dict[str, Any]] = []
    late_errors: list[RuntimeError] = []  # after some results: those are still reported
    try:
        if scenarios:
            rows, rss_start_mib = _scenarios(args, settings, scenarios, pinning, refs)
        if workers.NAME in names:
            worker_rows = _workers(settings)
        if soak.NAME in names:
            try:
                soak_row = _soak(args, SoakSettings.default(args.quick), pinning)
            except RuntimeError as err:
                if not rows:
                    raise
                late_errors.append(err)
        if chaos.NAME in names:
            try:
                chaos_row = _chaos(chaos_settings, pinning)
            except RuntimeError as err:
                if not rows and soak_row is None:
                    raise
                late_errors.append(err)
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped", file=sys.stderr)
        return 130
    except asyncio.CancelledError:
        print("bench: terminated; servers stopped", file=sys.stderr)
        return 143
    except RuntimeError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 1
    meta = metadata(ROOT, settings, pinning, args.quick)
    meta["measured"] = "bench.floor (bare aiohttp)" if args.floor else "edgeproxy"
    meta["references"] = refs.described
    if rss_start_mib is not None:
        meta["proxy_rss_mib_at_start"] = round(rss_start_mib, 1)
    sections = []
    if rows:
        sections.append(markdown(rows, meta, settings, pinning))
    if worker_rows:
        sections.append(workers.markdown(worker_rows, settings))
    if soak_row is not None:
        sections.append(soak_markdown(soak_row, meta))
    if chaos_row is not None:
        sections.append(chaos_markdown(chaos_row, meta))
    print("\n".join(sections))
    output = RESULTS / "latest.jsonl"
    others = [*worker_rows, *(row for row in (soak_row, chaos_row) if row)]
    write_jsonl(output, [*rows, *others], meta)
    print(f"\nJSON lines: {output.relative_to(ROOT)}")
    failed = [problem for row in rows if (problem := cached.hit_problem(row))]
    for problem in failed:
        print(f"bench: FAILED {problem}", file=sys.stderr)
    for late in late_errors:
        print(f"bench: {late}", file=sys.stderr)
    return 1 if failed or late_errors else 0


if __name__ == "__main__":
    sys.exit(main())
