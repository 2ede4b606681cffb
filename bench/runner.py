"""Scenarios, and measuring each one: direct, via the proxy and via the references (the aiohttp
floor, nginx; beside a guarded proxy, the plain one; beside an observed one, the same with its
observability off), interleaved and repeated.

Interleaving in ABBA order (direct, proxy, proxy, direct, ...; with references, direct, proxy,
floor, nginx, then the same backwards; for a guarded proxy, direct, proxy, plain) on the same
machine at the same time means slow drift and noisy neighbours hit every side alike; medians
over the repetitions then discard the odd disturbed run, and ratios and differences between
sides are taken within a repetition.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
import orjson

from bench import load
from bench.load import Limits, Observer, RunResult
from bench.procs import Child, Children, Pinning, free_port, machine_busy_seconds

CacheLayer = Literal["l1", "l2", "semantic"]
# Run beside the proxy: the bare aiohttp pass-through (bench/floor.py), nginx (bench/nginx.py)
# beside a guarded proxy, the same proxy without its guards (bench/guarded.py); beside an
# observed proxy, the same proxy with its observability off (bench/observed.py).
Reference = Literal["floor", "nginx", "plain", "off"]
# The data plane's references (issue 11); the guarded and observed scenarios bring their own.
REFERENCES: tuple[Reference, ...] = ("floor", "nginx")
ALL_REFERENCES: tuple[Reference, ...] = (*REFERENCES, "plain", "off")
Target = Literal["direct", "proxy", "floor", "nginx", "plain", "off"]
# What a guarded proxy screens (bench/guarded.py): the request only, or its answers too.
Guarding = Literal["request", "answers"]
# How the fake upstream writes a stream (its `Reply.split`): all at once, or event by event.
Split = Literal["whole", "events"]


@dataclass(frozen=True)
class Scenario:
    """What one scenario sends, at which concurrency; `cache` names the layer a cache scenario
    expects to answer every request (its proxy then has the cache on, see bench/cached.py), and
    `variants` how many distinct questions its load cycles over. `asks`, when given, are those
    questions (the semantic scenarios' paraphrases); otherwise they are made up. `references`
    are measured in the same runs (for a cache scenario, the floor answers from its dict), and
    `split` is how the upstream writes a stream. `guards`, when given, puts the scenario behind
    a key, its limits and budget, and a guardrail policy (bench/guarded.py); `observed` puts it
    through a proxy with every observability feature on (bench/observed.py)."""

    name: str
    concurrency: int
    stream: bool
    model: str
    about: str
    cache: CacheLayer | None = None
    variants: int = 1
    asks: tuple[str, ...] = ()
    outcome: str | None = None  # x-edgeproxy-cache of every answer; default hit-<cache>
    references: tuple[Reference, ...] = ()
    split: Split = "whole"
    guards: Guarding | None = None
    observed: bool = False

    def __post_init__(self) -> None:
        if self.asks and len(self.asks) != self.variants:
            raise ValueError(f"{self.name}: {self.variants} variants but {len(self.asks)} asks")

    @property
    def expected(self) -> str | None:
        """The x-edgeproxy-cache value every measured answer of a cache scenario carries."""
        if self.cache is None:
            return None
        return self.outcome or f"hit-{self.cache}"

    def body(self, variant: int = 0) -> bytes:
        """A small but realistic chat request, the shape most sidecar traffic has; with several
        variants, variant n asks a question of its own (a cache entry of its own)."""
        if self.asks:
            return self.asking(self.asks[variant])
        question = "Summarise why sidecar proxies must be cheap."
        if self.variants > 1:
            question += f" (variant {variant})"
        return self.asking(question)

    def asking(self, question: str) -> bytes:
        """The scenario's request with `question` as its user turn (everything else, the
        system prompt included, the same for every question: one semantic partition)."""
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": "You are a concise assistant. Answer in one line."},
                {"role": "user", "content": question},
            ],
            "max_tokens": 64,
            "temperature": 0.2,
        }
        if self.stream:
            payload["stream"] = True
        return orjson.dumps(payload)

    def bodies(self) -> list[bytes]:
        """Every distinct request of the scenario, in the order the load sends them."""
        return [self.body(variant) for variant in range(self.variants)]


STREAM_CHUNKS = 20  # content chunks the fake upstream sends per stream
CACHED_MODEL = "bench-cached"  # the cache scenarios' model group: cache on (bench/cached.py)
# Distinct questions of the l2-hit scenarios: far more than the requests in flight at c=16, so
# the one entry their L1 holds (the last answer filled from Redis) is never the one asked next.
L2_VARIANTS = 101
# The semantic scenarios' (question prefilled, paraphrase asked) pairs: labelled `same` in
# tests/data/semantic_pairs.jsonl, each at cosine >= 0.98 with the shipped model (threshold
# 0.95) and passed by the lexical guard (tests/bench/test_cached.py checks both).
SEMANTIC_PAIRS = (
    ("How do I reset my password?", "How can I reset my password?"),
    ("How do I reverse a list in Python?", "How can I reverse a list in Python?"),
    ("how do i cancel my subscription", "How do I cancel my subscription?"),
    ("How do I install Docker on Ubuntu?", "How can I install Docker on Ubuntu?"),
    ("How do I clear my browser cache in Chrome?", "How can I clear the browser cache in Chrome?"),
    ("What time zone is Chicago in?", "Which time zone is Chicago in?"),
    ("How do I delete my account?", "How can I delete my account?"),
    ("How do I rename a branch in git?", "How can I rename a git branch?"),
)
# Distinct texts of the semantic-hit scenarios: more than the proxy's embeddings cache holds
# (4096, edgeproxy/cache/embed.py), so cycling over them, every lookup embeds its text.
SEMANTIC_DISTINCT = 5120
# Distinct questions of l1-miss-c16: more than a default run sends to one side (5 runs of at
# most 20,000 requests and a warm-up of 4,000), so no question is asked twice. A longer run
# would come back around to them and be flagged: its answers would be hits, not misses.
MISS_VARIANTS = 110_000
# guarded-pii-c16's user turn: nonstream-c16's question with an e-mail address and a phone
# number, each replaced by a placeholder on the way up and looked for in the answer.
PII_QUESTION = (
    "Summarise why sidecar proxies must be cheap, then send it to jane.doe@example.com "
    "or call me on +1 415 555 0134."
)


def proxy_config(port: int, upstream_url: str, *, access_log: bool = False) -> str:
    """The cache-off proxy's config (the guarded scenarios' plain reference too): `bench-model`
    is mapped (the body is re-encoded); `bench-claude` goes to an Anthropic upstream
    (translated both ways); any other name passes through as is. With `access_log`, a line
    per request, at info (the level it is written at)."""
    logged, level = ("true", "info") if access_log else ("false", "warning")
    return f"""\
server: {{host: 127.0.0.1, port: {port}, access_log: {logged}, shutdown_grace: 2s}}
admin: {{enabled: false}}
logging: {{level: {level}}}
cache: {{enabled: false}}  # every request goes upstream: this measures the proxy
providers:
  up: {{kind: openai, base_url: "{upstream_url}/v1", api_key: sk-bench, max_connections: 64}}
  up-anthropic:
    {{kind: anthropic, base_url: "{upstream_url}", api_key: sk-bench, max_connections: 64}}
models:
  bench-model: {{deployments: [{{provider: up, model: bench-upstream-model}}]}}
  bench-claude: {{deployments: [{{provider: up-anthropic, model: claude-bench}}]}}
  "*": {{deployments: [{{provider: up}}]}}
"""


def respaced(text: str, n: int) -> str:
    """`text` with a trailing run of spaces and tabs of its own for each n (n in binary). The
    tokenizer drops whitespace, so the model reads the very tokens of `text` (same vector, same
    inference cost), and the lexical guard ignores it; but the text, the key of the proxy's
    embeddings cache, differs, so each is embedded anew."""
    return text + " " + "".join(" \t"[int(bit)] for bit in f"{n:b}")


def semantic_asks(distinct: int) -> tuple[str, ...]:
    """`distinct` paraphrases, the pairs in turn: each pair's paraphrase as written when
    `distinct` is the number of pairs, else respaced (text n: pair n % pairs, by n // pairs)."""
    pairs = len(SEMANTIC_PAIRS)
    if distinct == pairs:
        return tuple(paraphrase for _, paraphrase in SEMANTIC_PAIRS)
    return tuple(respaced(SEMANTIC_PAIRS[n % pairs][1], n // pairs) for n in range(distinct))


def _semantic(name: str, concurrency: int, distinct: int) -> Scenario:
    if distinct == len(SEMANTIC_PAIRS):
        what = f"the same {distinct} paraphrases over and over (embeddings-cache hits)"
    else:
        what = f"{distinct:,} distinct paraphrases in turn (each one embedded)"
    return Scenario(
        name,
        concurrency,
        False,
        CACHED_MODEL,
        f"JSON, every request a semantic hit, {what}, c={concurrency}",
        "semantic",
        distinct,
        semantic_asks(distinct),
    )


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "nonstream-c1",
            1,
            False,
            "bench-model",
            "JSON, model name mapped, c=1",
            references=REFERENCES,
        ),
        Scenario(
            "nonstream-c16",
            16,
            False,
            "bench-model",
            "JSON, model name mapped, c=16",
            references=REFERENCES,
        ),
        Scenario(
            "stream-c16",
            16,
            True,
            "bench-model",
            "SSE read to the end, mapped, the upstream writing the whole stream at once, c=16",
            references=REFERENCES,
        ),
        Scenario(
            "stream-events-c16",
            16,
            True,
            "bench-model",
            "SSE read to the end, mapped, the upstream writing each event on its own, c=16",
            references=REFERENCES,
            split="events",
        ),
        Scenario("passthrough-c16", 16, False, "gpt-4o-mini", "JSON, body forwarded as is, c=16"),
        Scenario(
            "stream-xdialect-c16",
            16,
            True,
            "bench-claude",
            "SSE, OpenAI client to an Anthropic upstream: every event translated, c=16",
        ),
        Scenario(
            "l1-hit-c1",
            1,
            False,
            CACHED_MODEL,
            "JSON, every request an L1 hit, c=1",
            "l1",
            references=("floor",),
        ),
        Scenario(
            "l1-hit-c16",
            16,
            False,
            CACHED_MODEL,
            "JSON, every request an L1 hit, c=16",
            "l1",
            references=("floor",),
        ),
        Scenario(
            "l1-miss-c16",
            16,
            False,
            CACHED_MODEL,
            "JSON, cache on, every request a new question (a miss: asked upstream, then the "
            "answer stored), c=16",
            "l1",
            MISS_VARIANTS,
            outcome="miss",
        ),
        Scenario(
            "l2-hit-c1",
            1,
            False,
            CACHED_MODEL,
            f"JSON, every request an L2 (Redis) hit, {L2_VARIANTS} questions in turn, c=1",
            "l2",
            L2_VARIANTS,
        ),
        Scenario(
            "l2-hit-c16",
            16,
            False,
            CACHED_MODEL,
            f"JSON, every request an L2 (Redis) hit, {L2_VARIANTS} questions in turn, c=16",
            "l2",
            L2_VARIANTS,
        ),
        Scenario(
            "guarded-c16",
            16,
            False,
            "bench-model",
            "JSON as nonstream-c16, through a key with limits and a budget and a guardrail "
            "policy (nothing found to redact), c=16",
            references=("plain",),
            guards="request",
        ),
        Scenario(
            "guarded-pii-c16",
            16,
            False,
            "bench-model",
            "JSON as guarded-c16, the question carrying an e-mail address and a phone number "
            "(both redacted, the answer screened for their placeholders), c=16",
            asks=(PII_QUESTION,),
            references=("plain",),
            guards="request",
        ),
        Scenario(
            "guarded-stream-c16",
            16,
            True,
            "bench-model",
            "SSE as stream-c16, through the guards of guarded-c16 and an output rule (every "
            "event screened for secrets), c=16",
            references=("plain",),
            guards="answers",
        ),
        Scenario(
            "observed-c16",
            16,
            False,
            "bench-model",
            "JSON as nonstream-c16, through a proxy with every observability feature on "
            "(access log, events, incidents, feedback, tracing), c=16",
            references=("off",),
            observed=True,
        ),
        Scenario(
            "observed-stream-c16",
            16,
            True,
            "bench-model",
            "SSE as stream-c16, through the observed proxy of observed-c16, c=16",
            references=("off",),
            observed=True,
        ),
        _semantic("semantic-hit-c1", 1, SEMANTIC_DISTINCT),
        _semantic("semantic-hit-c16", 16, SEMANTIC_DISTINCT),
        _semantic("semantic-repeat-c1", 1, len(SEMANTIC_PAIRS)),
        _semantic("semantic-repeat-c16", 16, len(SEMANTIC_PAIRS)),
    )
}
# `--scenario` names that stand for several scenarios (the cache issue's names).
SCENARIO_GROUPS = {
    "l1-hit": ("l1-hit-c1", "l1-hit-c16"),
    "l2-hit": ("l2-hit-c1", "l2-hit-c16"),
    "semantic-hit": (
        "semantic-hit-c1",
        "semantic-hit-c16",
        "semantic-repeat-c1",
        "semantic-repeat-c16",
    ),
}


@dataclass(frozen=True)
class Settings:
    repeat: int
    run: Limits
    warmup: Limits


@dataclass(frozen=True)
class Server:
    """Somewhere the load can be sent: a base URL and the process that answers there."""

    url: str
    process: Child


def start_configured(
    children: Children,
    pinning: Pinning,
    config: Callable[[int], str],
    *,
    results: Path,
    name: str,
) -> Server:
    """A proxy on the proxy's core from `config` (its text for the port it is to listen on);
    the config is left in `results` as `<name>.yaml`, beside the proxy's log."""
    port = free_port()
    path = results / f"{name.replace(' ', '-')}.yaml"
    path.write_text(config(port))
    return Server(f"http://127.0.0.1:{port}", children.proxy(path, port, pinning.proxy, name=name))


@dataclass
class Sample:
    """One measured run, with the CPU seconds each party spent during it; `server_cpu` is the
    process the load went through (proxy, floor or nginx; none for direct runs)."""

    target: Target
    result: RunResult
    server_cpu: float
    upstream_cpu: float
    load_cpu: float
    other_cpu: float = 0.0  # everything else on the machine (other processes, Redis, softirq)

    @property
    def cpu_ms_per_request(self) -> float | None:
        if self.target == "direct" or not self.result.completed:
            return None
        return self.server_cpu * 1000 / self.result.completed


def run_order(targets: Sequence[Target], repetition: int) -> list[Target]:
    """ABBA for any number of sides: in order on even repetitions, backwards on odd ones, so
    over each pair of repetitions every side runs as often early as late."""
    return list(targets) if repetition % 2 == 0 else list(reversed(targets))


class Bench:
    """The running upstream, proxy and references, and how to measure one scenario against
    them. `references` are those running for this group of scenarios; a scenario measures the
    ones it names that are here."""

    def __init__(
        self,
        upstream: Server,
        proxy: Server,
        settings: Settings,
        references: Mapping[Reference, Server] | None = None,
    ) -> None:
        self._upstream = upstream
        self._servers: dict[Target, Server] = {"direct": upstream, "proxy": proxy}
        for name, server in (references or {}).items():
            self._servers[name] = server
        self.settings = settings

    @property
    def proxy_url(self) -> str:
        """The proxy's chat completions endpoint."""
        return self._url("proxy")

    def _url(self, target: Target) -> str:
        return self._servers[target].url + "/v1/chat/completions"

    def targets(self, scenario: Scenario) -> list[Target]:
        """Direct, the proxy, then the scenario's references that are running, in that order."""
        return ["direct", "proxy", *(r for r in scenario.references if r in self._servers)]

    async def measure(self, scenario: Scenario, observe: Observer | None = None) -> dict[str, Any]:
        """Warm up every side, then the measured runs in ABBA order; `observe` sees every
        answer of the measured proxy runs (not the warm-up's, not the other sides'). Each side
        cycles over the scenario's bodies from one run to the next without starting over."""
        targets = self.targets(scenario)
        cycles = {target: itertools.cycle(scenario.bodies()) for target in targets}
        clients = {target: load.session(scenario.concurrency) for target in targets}
        samples: list[Sample] = []
        rss_kib: list[int] = []
        try:
            for target, client in clients.items():  # warm-up: connections, caches; discarded
                await self._run(scenario, target, client, cycles[target], self.settings.warmup)
            for rep in range(self.settings.repeat):
                for target in run_order(targets, rep):
                    seen = observe if target == "proxy" else None
                    client, bodies = clients[target], cycles[target]
                    samples.append(
                        await self._sample(scenario, target, client, bodies, observe=seen)
                    )
                rss_kib.append(self._servers["proxy"].process.rss_kib())
        finally:
            for client in clients.values():
                await client.close()
        return summarize(scenario, self.settings, samples, rss_kib)

    async def _run(
        self,
        scenario: Scenario,
        target: Target,
        client: aiohttp.ClientSession,
        bodies: Iterator[bytes],
        limits: Limits,
        *,
        observe: Observer | None = None,
    ) -> RunResult:
        return await load.run(
            client,
            self._url(target),
            bodies,
            stream=scenario.stream,
            concurrency=scenario.concurrency,
            limits=limits,
            observe=observe,
        )

    async def _sample(
        self,
        scenario: Scenario,
        target: Target,
        client: aiohttp.ClientSession,
        bodies: Iterator[bytes],
        *,
        observe: Observer | None,
    ) -> Sample:
        server = None if target == "direct" else self._servers[target].process
        upstream = self._upstream.process
        server_before = server.cpu_seconds() if server else 0.0
        upstream_before = upstream.cpu_seconds()
        load_before = time.process_time()
        machine_before = machine_busy_seconds()
        result = await self._run(
            scenario, target, client, bodies, self.settings.run, observe=observe
        )
        sample = Sample(
            target,
            result,
            server_cpu=server.cpu_seconds() - server_before if server else 0.0,
            upstream_cpu=upstream.cpu_seconds() - upstream_before,
            load_cpu=time.process_time() - load_before,
        )
        ours = sample.server_cpu + sample.upstream_cpu + sample.load_cpu
        sample.other_cpu = max(0.0, machine_busy_seconds() - machine_before - ours)
        for running in self._servers.values():
            running.process.check_alive()
        return sample


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _rps(runs: list[Sample]) -> float | None:
    return _median([s.result.rps for s in runs])


def _pct(runs: list[Sample], pct: float) -> float | None:
    return _median([s.result.percentile_ms(pct) for s in runs])


def _busy(runs: list[Sample], *parties: str) -> float | None:
    """Median share of one core that `parties` (Sample CPU fields) kept busy during the runs."""
    return _median(
        [sum(getattr(s, p) for p in parties) / s.result.seconds for s in runs if s.result.seconds]
    )


def _cpu(runs: list[Sample]) -> float | None:
    return _median([v for s in runs if (v := s.cpu_ms_per_request) is not None])


def _paired(
    first: list[Sample], second: list[Sample], compare: Callable[[Sample, Sample], float | None]
) -> float | None:
    """The median of `compare` over the runs of the same repetition (the n-th run of each side
    is from repetition n): drift between repetitions cancels out."""
    return _median(
        [v for a, b in zip(first, second, strict=True) if (v := compare(a, b)) is not None]
    )


def _added(pct: float) -> Callable[[Sample, Sample], float]:
    """Latency at `pct` of the second run minus the first's, ms."""
    return lambda base, via: via.result.percentile_ms(pct) - base.result.percentile_ms(pct)


def _cpu_ratio(reference: Sample, proxy: Sample) -> float | None:
    """The proxy's CPU per request over the reference's, within one repetition."""
    ours, theirs = proxy.cpu_ms_per_request, reference.cpu_ms_per_request
    return ours / theirs if ours is not None and theirs else None


def _cpu_added(reference: Sample, proxy: Sample) -> float | None:
    """The proxy's CPU per request minus the reference's, ms, within one repetition."""
    ours, theirs = proxy.cpu_ms_per_request, reference.cpu_ms_per_request
    return ours - theirs if ours is not None and theirs is not None else None


def _reference_fields(
    name: Reference, direct: list[Sample], proxy: list[Sample], runs: list[Sample]
) -> dict[str, Any]:
    """A reference's own figures, and the proxy's CPU per request as a ratio of its own and
    as a difference from it."""
    return {
        f"rps_{name}": _rps(runs),
        f"p50_{name}_ms": _pct(runs, 50),
        f"p50_{name}_added_ms": _paired(direct, runs, _added(50)),
        f"p99_{name}_ms": _pct(runs, 99),
        f"p99_{name}_added_ms": _paired(direct, runs, _added(99)),
        f"{name}_cpu_ms_per_request": _cpu(runs),
        f"{name}_core_busy": _busy(runs, "server_cpu"),
        f"proxy_cpu_ratio_to_{name}": _paired(runs, proxy, _cpu_ratio),
        f"proxy_cpu_added_over_{name}_ms": _paired(runs, proxy, _cpu_added),
        f"requests_{name}": sum(s.result.completed for s in runs),
        f"errors_{name}": sum(s.result.errors for s in runs),
        f"stalled_{name}": sum(s.result.stalled for s in runs),
    }


def summarize(
    scenario: Scenario, settings: Settings, samples: list[Sample], rss_kib: list[int]
) -> dict[str, Any]:
    """Per-scenario medians; added latency and CPU ratios are medians of per-repetition
    differences and ratios."""
    direct = [s for s in samples if s.target == "direct"]
    proxy = [s for s in samples if s.target == "proxy"]
    references = [r for r in ALL_REFERENCES if any(s.target == r for s in samples)]
    rps_direct, rps_proxy = _rps(direct), _rps(proxy)
    cpu_per_request = _cpu(proxy)
    completed = sum(s.result.completed for s in proxy)
    events_per_stream = (
        sum(s.result.events for s in proxy) / completed if scenario.stream and completed else None
    )
    cpu_per_chunk = (
        cpu_per_request / events_per_stream if cpu_per_request and events_per_stream else None
    )
    row: dict[str, Any] = {
        "scenario": scenario.name,
        "description": scenario.about,
        "concurrency": scenario.concurrency,
        "stream": scenario.stream,
        "upstream_split": scenario.split if scenario.stream else None,
        "model": scenario.model,
        "repetitions": settings.repeat,
        "requests_direct": sum(s.result.completed for s in direct),
        "requests_proxy": completed,
        "rps_direct": rps_direct,
        "rps_proxy": rps_proxy,
        "rps_ratio": rps_proxy / rps_direct if rps_direct and rps_proxy is not None else None,
        "p50_direct_ms": _pct(direct, 50),
        "p50_proxy_ms": _pct(proxy, 50),
        "p50_added_ms": _paired(direct, proxy, _added(50)),
        "p99_direct_ms": _pct(direct, 99),
        "p99_proxy_ms": _pct(proxy, 99),
        "p99_added_ms": _paired(direct, proxy, _added(99)),
        "proxy_cpu_ms_per_request": cpu_per_request,
        "proxy_cpu_ms_per_chunk": cpu_per_chunk,
        "events_per_stream": events_per_stream,
        "proxy_core_busy": _busy(proxy, "server_cpu"),
        "load_core_busy_direct": _busy(direct, "upstream_cpu", "load_cpu"),
        "load_core_busy_proxy": _busy(proxy, "upstream_cpu", "load_cpu"),
        "other_cores_busy": _busy(samples, "other_cpu"),
        "proxy_rss_mib": rss_kib[-1] / 1024 if rss_kib else None,
        "proxy_rss_mib_per_repetition": [round(k / 1024, 1) for k in rss_kib],
        "errors_direct": sum(s.result.errors for s in direct),
        "errors_proxy": sum(s.result.errors for s in proxy),
        "stalled_direct": sum(s.result.stalled for s in direct),
        "stalled_proxy": sum(s.result.stalled for s in proxy),
        "references": references,
    }
    for name in references:
        runs = [s for s in samples if s.target == name]
        row.update(_reference_fields(name, direct, proxy, runs))
    row["error_samples"] = sorted({e for s in samples for e in s.result.error_samples})
    row["runs"] = [
        {
            "target": s.target,
            "requests": s.result.completed,
            "seconds": round(s.result.seconds, 3),
            "rps": round(s.result.rps, 1),
            "p50_ms": round(s.result.percentile_ms(50), 3),
            "p99_ms": round(s.result.percentile_ms(99), 3),
            "cpu_ms_per_request": s.cpu_ms_per_request,
        }
        for s in samples
    ]
    return row
