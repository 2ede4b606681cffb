"""`python -m bench`: start the fake upstream and the proxy, measure each scenario, report.

Results go to stdout (markdown) and bench/results/latest.jsonl; the proxy's config and both
servers' logs are left in bench/results/ for a post-mortem.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvloop

from bench.load import Limits
from bench.procs import Children, Pinning, free_port
from bench.report import markdown, metadata, write_jsonl
from bench.runner import SCENARIOS, STREAM_CHUNKS, Bench, Scenario, Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
FLOOR_SCENARIOS = ["nonstream-c1", "nonstream-c16"]  # the floor only maps and forwards JSON


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure what edgeproxy adds over talking to the upstream directly.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs: a smoke check, not numbers to quote"
    )
    parser.add_argument(
        "--repeat", type=int, help="measured runs per side and scenario (default 5; quick 2)"
    )
    parser.add_argument(
        "--duration", type=float, help="wall-time cap per measured run, s (default 2; quick 0.5)"
    )
    parser.add_argument(
        "--requests", type=int, help="request cap per measured run (default 20000; quick 2000)"
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="measure the bare aiohttp pass-through (bench/floor.py) in the proxy's place",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=list(SCENARIOS),
        help="run only this scenario (repeatable; default: all)",
    )
    return parser


def _settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Settings:
    repeat = args.repeat if args.repeat is not None else (2 if args.quick else 5)
    seconds = args.duration if args.duration is not None else (0.5 if args.quick else 2.0)
    requests = args.requests if args.requests is not None else (2000 if args.quick else 20_000)
    if repeat < 1 or seconds <= 0 or requests < 1:
        parser.error("--repeat, --duration and --requests must be positive")
    warmup = Limits(requests=max(1, requests // 5), seconds=min(1.0, seconds / 2))
    return Settings(repeat, Limits(requests, seconds), warmup)


def _proxy_config(port: int, upstream_url: str) -> str:
    """`bench-model` is mapped (the body is re-encoded); `bench-claude` goes to an Anthropic
    upstream (translated both ways); any other name passes through as is."""
    return f"""\
server: {{host: 127.0.0.1, port: {port}, access_log: false, shutdown_grace: 2s}}
admin: {{enabled: false}}
logging: {{level: warning}}
providers:
  up: {{kind: openai, base_url: "{upstream_url}/v1", api_key: sk-bench, max_connections: 64}}
  up-anthropic:
    {{kind: anthropic, base_url: "{upstream_url}", api_key: sk-bench, max_connections: 64}}
models:
  bench-model: {{deployments: [{{provider: up, model: bench-upstream-model}}]}}
  bench-claude: {{deployments: [{{provider: up-anthropic, model: claude-bench}}]}}
  "*": {{deployments: [{{provider: up}}]}}
"""


async def _measure_all(bench: Bench, scenarios: list[Scenario]) -> list[dict[str, Any]]:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    rows = []
    for scenario in scenarios:
        print(f"bench: {scenario.name} ({scenario.about}) ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        rows.append(await bench.measure(scenario))
        print(f"bench:   done in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    settings = _settings(parser, args)
    default = FLOOR_SCENARIOS if args.floor else list(SCENARIOS)
    scenarios = [SCENARIOS[name] for name in dict.fromkeys(args.scenario or default)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    pinning = Pinning.plan()
    if pinning.load is not None:
        os.sched_setaffinity(0, pinning.load)
    try:
        with Children(ROOT, RESULTS) as children:
            upstream, upstream_url = children.upstream(pinning.upstream, STREAM_CHUNKS)
            port = free_port()
            config = RESULTS / "proxy.yaml"
            config.write_text(_proxy_config(port, upstream_url))
            if args.floor:
                proxy = children.floor(upstream_url, port, pinning.proxy)
            else:
                proxy = children.proxy(config, port, pinning.proxy)
            rss_start_mib = proxy.rss_kib() / 1024
            bench = Bench(upstream_url, f"http://127.0.0.1:{port}", upstream, proxy, settings)
            rows = uvloop.run(_measure_all(bench, scenarios))
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
    meta["proxy_rss_mib_at_start"] = round(rss_start_mib, 1)
    print(markdown(rows, meta, settings, pinning))
    output = RESULTS / "latest.jsonl"
    write_jsonl(output, rows, meta)
    print(f"\nJSON lines: {output.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
