"""The observed scenarios: what observability costs a request on the hot path.

Issue 13 asks that the request path with all of its observability on cost at most 10 % more
CPU per request than with it off, in the same run. An observed scenario's proxy is the
cache-off one (`runner.proxy_config`: same upstream, same mapped model, a price for it so every
answer has a cost) with every feature on:

- request metrics and cost, always on (on both sides);
- the access log (`server.access_log: true`), a JSON line per request at info, on stderr (the
  proxy's log in bench/results/);
- telemetry events to a JSONL file in a temporary directory, removed after the run;
- incident detection (on by default), judging its rolling windows every interval;
- feedback (`telemetry.feedback.enabled`): every served id remembered;
- tracing, every request sampled (`sample_ratio: 1.0`), its spans exported over OTLP/HTTP in
  the JSON encoding to a local sink (bench/otlp_sink.py) that answers 200, on the upstream's
  core.

Beside it, on the same core and in the same interleaved runs, runs the same proxy with all of
it off (the `off` reference): no access log, no events, incidents disabled, feedback and
tracing off. The ratio of their CPU per request is what issue 13's target judges.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

from bench.guarded import PRICING
from bench.procs import Child, Children, Pinning, free_port
from bench.runner import proxy_config, start_configured
from bench.targets import CpuRatio

NAME = "observed"  # the `--scenario` name of all of them
SCENARIOS = ("observed-c16", "observed-stream-c16")
TARGET = CpuRatio("off", 1.10)  # "at most 10 % more CPU per request than with it off"
TRACES_PATH = "/v1/traces"
EVENTS_FILE = "events.jsonl"


def observed_config(port: int, upstream_url: str, events: Path, traces_url: str) -> str:
    """The `off` proxy's config with every observability feature on: events to the file
    `events`, spans to `traces_url`."""
    return (
        proxy_config(port, upstream_url, access_log=True)
        + PRICING
        + f"""\
telemetry:
  events: {{file: "{events}"}}
  feedback: {{enabled: true}}
  incidents: {{enabled: true}}
  tracing: {{enabled: true, endpoint: "{traces_url}", sample_ratio: 1.0, protocol: http/json}}
"""
    )


def off_config(port: int, upstream_url: str) -> str:
    """The same proxy with all of its observability off: the `off` reference."""
    return (
        proxy_config(port, upstream_url)
        + PRICING
        + """\
telemetry:
  incidents: {enabled: false}
"""
    )


def describe() -> str:
    """What the observed proxies do, for the report."""
    return (
        "Observed scenarios (bench/observed.py): the cache-off proxy, with a price for the "
        "upstream model on both sides (every answer costed), plus the access log (a JSON line "
        "per request at info), telemetry events to a JSONL file, incident detection, feedback, "
        "and tracing with every request sampled, exported over OTLP/HTTP to a local sink "
        "(bench/otlp_sink.py) on the upstream's core. off: the same proxy with the access log "
        "off, no events, incidents disabled, feedback and tracing off, on the same core, in the "
        "same interleaved runs; on - off and on/off are medians of per-repetition differences "
        f"and ratios. Target: {TARGET.text}."
    )


def start_sink(children: Children, pinning: Pinning, *, label: str) -> str:
    """The OTLP sink on the upstream's core (it takes the proxy's spans in the background, as
    a collector would), with the URL those spans go to."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.otlp_sink", str(port)]
    children.server(f"{label}otlp sink", argv, port, pinning.upstream)
    return f"http://127.0.0.1:{port}{TRACES_PATH}"


def start_proxy(
    children: Children,
    pinning: Pinning,
    upstream_url: str,
    *,
    spool: Path,
    results: Path,
    label: str,
) -> tuple[str, Child]:
    """The observed proxy and its OTLP sink, with the proxy's base URL; its events go to a
    file in `spool`, its config is left in `results`."""
    traces = start_sink(children, pinning, label=label)
    events = spool / EVENTS_FILE
    config = partial(observed_config, upstream_url=upstream_url, events=events, traces_url=traces)
    server = start_configured(children, pinning, config, results=results, name=f"{label}proxy")
    return server.url, server.process
