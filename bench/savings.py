"""`python -m bench.savings` (`make savings`): what the cache saves on a realistic workload.

It generates a seeded workload (bench/savings_workload.py: Zipf-distributed repeats, labelled
paraphrases, unique questions, each text with its own token counts), starts a loopback upstream
that reports those counts as its usage (bench/savings_upstream.py) and the proxy in front of
it, replays the workload through the proxy with bounded concurrency, then reads the proxy's
`/metrics` and reports, as the metrics count them: answers by cache layer, upstream calls
avoided, dollars spent and saved; each number set against the client's and the upstream's own
accounts and a hand computation at the pricing table's prices (bench/savings_report.py).

The proxy: one model group, `gpt-4o-mini` by default (priced by the table under the provider
kind `openai`), the cache on with the default L1; when the machine's Redis answers
(127.0.0.1:6379), an L2 there under a prefix of this run's own, deleted afterwards, and two
replicas sharing it, requests spread over them in turn, as sidecars of two application
instances would be (one replica's L1 always holds what it stored in Redis itself, so only a
second one shows what L2 is for); when the `semantic` extra is installed, the semantic layer
serving for the group at the default threshold, with a budget of 1 s so that embeddings
queued behind each other on a busy two-core machine are not skipped (the report is about hit
rates and precision, not latency).

Bounded: `--requests` and `--seconds` (no request is issued past it; those in flight finish).
Loopback only. The markdown tables go to stdout, the JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import load
from bench.cached import RedisPrefix, redis_for_bench
from bench.procs import Children, free_ports
from bench.savings_report import (
    NO_HEADER,
    Answer,
    Samples,
    SavingsReport,
    build,
    markdown,
    sum_scrapes,
    total,
)
from bench.savings_upstream import answered_question
from bench.savings_workload import SOURCES, Shape, Workload, generate
from edgeproxy.extras import SEMANTIC_PACKAGES, missing
from edgeproxy.pricing import ModelPrice, load_pricing

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SYSTEM_PROMPT = "You are the support assistant of an online shop. Answer briefly and kindly."
MAX_TOKENS = 1024
SEMANTIC_BUDGET = "1s"
PROXY_START_SECONDS = 60.0  # the semantic model loads before the proxy listens
METRICS_SETTLE_SECONDS = 10.0  # longest wait for the last answers to be counted
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30.0)  # a stalled answer is a failed request


@dataclass(frozen=True)
class Options:
    """One run: the workload's shape and seed, and what the proxy runs with."""

    shape: Shape
    seed: int = 1
    model: str = "gpt-4o-mini"
    concurrency: int = 8
    seconds: float = 300.0  # of replay: no request is issued after it
    upstream_latency: float = 0.05
    redis: bool = True
    semantic: bool = True
    replicas: int | None = None  # None: two with Redis, else one


@dataclass(frozen=True)
class Setup:
    """What the run really had: Redis and the semantic extra only when available."""

    model: str
    replicas: int
    l2: RedisPrefix | None
    semantic: bool
    concurrency: int
    seconds: float
    upstream_latency: float

    def describe(self) -> str:
        layers = ["L1"]
        if self.l2 is not None:
            layers.append("L2 (Redis)")
        if self.semantic:
            layers.append("semantic (serve)")
        return (
            f"{self.model}, cache {' + '.join(layers)}, {self.replicas} "
            f"replica{'s' if self.replicas > 1 else ''}, concurrency {self.concurrency}, "
            f"upstream latency {self.upstream_latency * 1000:g} ms"
        )


def proxy_config(port: int, admin_port: int, upstream_url: str, setup: Setup) -> str:
    """A replica's config: the one group, its deployment at the upstream, the cache layers."""
    redis = (
        f'{{url: "{setup.l2.url}", prefix: "{setup.l2.prefix}"}}'
        if setup.l2 is not None
        else '{url: ""}'
    )
    semantic = f"  semantic: {{mode: serve, budget: {SEMANTIC_BUDGET}}}\n" if setup.semantic else ""
    group_cache = "{semantic: true}" if setup.semantic else "true"
    return f"""\
server: {{host: 127.0.0.1, port: {port}, access_log: false, shutdown_grace: 2s}}
admin: {{enabled: true, host: 127.0.0.1, port: {admin_port}}}
logging: {{level: warning}}
cache:
  enabled: true
  redis: {redis}
{semantic}providers:
  up: {{kind: openai, base_url: "{upstream_url}/v1", api_key: sk-bench, max_connections: 64}}
models:
  {setup.model}:
    {{deployments: [{{provider: up, model: {setup.model}}}], cache: {group_cache}}}
"""


def request_body(workload: Workload, index: int, model: str) -> bytes:
    """Request `index`: the question, and in `metadata` the usage the upstream is to report."""
    question = workload.asked(index)
    return orjson.dumps(
        {
            "model": model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": question.text},
            ],
            "max_tokens": MAX_TOKENS,
            "metadata": {
                "question": str(question.id),
                "prompt_tokens": str(question.prompt_tokens),
                "completion_tokens": str(question.completion_tokens),
            },
        }
    )


def _served(data: bytes) -> int | None:
    """The question an answer was written for (its text's tag)."""
    try:
        content = orjson.loads(data)["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return None
    return answered_question(content) if isinstance(content, str) else None


async def replay(
    workload: Workload, model: str, urls: Sequence[str], concurrency: int, seconds: float
) -> list[Answer]:
    """The workload's requests in order, request i to replica i mod replicas, `concurrency`
    at a time, none issued after `seconds`: an answer for every request issued, in order (a
    request that got no HTTP answer has status 0)."""
    indices = iter(range(len(workload.asks)))
    deadline = time.monotonic() + seconds
    answers: list[Answer] = []
    client = load.session(concurrency)

    async def ask(index: int) -> Answer:
        url = urls[index % len(urls)] + "/v1/chat/completions"
        try:
            body = request_body(workload, index, model)
            sent = client.post(url, data=body, headers=load.HEADERS, timeout=REQUEST_TIMEOUT)
            async with sent as response:
                data = await response.read()
                cache = response.headers.get("x-edgeproxy-cache", NO_HEADER)
                served = _served(data) if response.status == 200 else None
                return Answer(index, response.status, cache, served)
        except (aiohttp.ClientError, TimeoutError):
            return Answer(index, 0, NO_HEADER, None)

    async def worker() -> None:
        for index in indices:
            if time.monotonic() > deadline:
                return
            answers.append(await ask(index))

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await client.close()
    answers.sort(key=lambda a: a.index)
    return answers


async def _get(client: aiohttp.ClientSession, url: str) -> bytes:
    async with client.get(url) as response:
        data = await response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {url}: HTTP {response.status}: {data[:200]!r}")
        return data


async def scrape(admin_urls: Sequence[str], answered: int) -> Samples:
    """Every replica's /metrics, summed, once they count all `answered` requests (a request is
    counted just after its answer is sent)."""
    deadline = time.monotonic() + METRICS_SETTLE_SECONDS
    async with load.session(len(admin_urls)) as client:
        while True:
            texts = [(await _get(client, url + "/metrics")).decode() for url in admin_urls]
            samples = sum_scrapes(texts)
            if total(samples, "edgeproxy_requests_total") >= answered:
                return samples
            if time.monotonic() > deadline:
                return samples  # the report names the difference
            await asyncio.sleep(0.05)


async def upstream_calls(upstream_url: str) -> dict[int, int]:
    async with load.session(1) as client:
        calls = orjson.loads(await _get(client, upstream_url + "/calls"))["calls"]
    return {int(q): int(n) for q, n in calls.items()}


async def _drive(
    workload: Workload, setup: Setup, urls: list[str], admins: list[str], upstream: str
) -> tuple[list[Answer], Samples, dict[int, int]]:
    answers = await replay(workload, setup.model, urls, setup.concurrency, setup.seconds)
    reached = sum(1 for a in answers if a.status != 0)
    samples = await scrape(admins, reached)
    return answers, samples, await upstream_calls(upstream)


def semantic_available() -> bool:
    return not missing(SEMANTIC_PACKAGES)


def price_of(model: str) -> ModelPrice:
    """The table's price of `model` under `openai`, as the proxy will find it."""
    price = load_pricing().price("openai", model)
    if price is None:
        raise SystemExit(f"savings: the pricing table has no price for openai model {model!r}")
    return price


@contextlib.contextmanager
def _redis(wanted: bool) -> Iterator[RedisPrefix | None]:
    """This run's Redis prefix (keys deleted on the way out), or None when not wanted or not
    reachable (said on stderr)."""
    if not wanted:
        yield None
        return
    with redis_for_bench() as target:
        if isinstance(target, str):
            print(f"savings: without L2: {target}", file=sys.stderr)
            yield None
        else:
            yield target


def run(options: Options, workload: Workload, out: Path) -> tuple[Setup, SavingsReport]:
    """Start the upstream and the replicas, replay, scrape, report; every child stopped (and
    the Redis prefix deleted) on the way out. Logs and configs are left in `out`."""
    price = price_of(options.model)
    out.mkdir(parents=True, exist_ok=True)
    semantic = options.semantic and semantic_available()
    if options.semantic and not semantic:
        print("savings: without the semantic layer: the extra is not installed", file=sys.stderr)
    with _redis(options.redis) as l2, Children(ROOT, out) as children:
        replicas = options.replicas or (2 if l2 is not None else 1)
        setup = Setup(
            options.model,
            replicas,
            l2,
            semantic,
            options.concurrency,
            options.seconds,
            options.upstream_latency,
        )
        ports = free_ports(1 + 2 * replicas)
        upstream_port = ports[0]
        argv = [sys.executable, "-m", "bench.savings_upstream", "--port", str(upstream_port)]
        argv += ["--latency", str(options.upstream_latency)]
        children.server("savings upstream", argv, upstream_port, None)
        upstream = f"http://127.0.0.1:{upstream_port}"
        urls, admins = [], []
        for n in range(replicas):
            port, admin = ports[1 + 2 * n], ports[2 + 2 * n]
            config = out / f"proxy-{n}.yaml"
            config.write_text(proxy_config(port, admin, upstream, setup))
            children.proxy(config, port, None, PROXY_START_SECONDS, name=f"proxy {n}")
            urls.append(f"http://127.0.0.1:{port}")
            admins.append(f"http://127.0.0.1:{admin}")
        answers, samples, calls = asyncio.run(_drive(workload, setup, urls, admins, upstream))
    return setup, build(workload, answers, calls, samples, price)


def workload_summary(workload: Workload) -> dict[str, Any]:
    sources = Counter(workload.asked(i).source for i in range(len(workload.asks)))
    return {
        "seed": workload.seed,
        "shape": asdict(workload.shape),
        "requests_by_source": {s: sources[s] for s in SOURCES},
        "distinct_questions_asked": len(set(workload.asks)),
        "labelled_different_pairs": len(workload.labelled_different),
    }


def _parser() -> argparse.ArgumentParser:
    defaults = Shape()
    options = Options(defaults)
    parser = argparse.ArgumentParser(
        prog="python -m bench.savings",
        description="Replay a generated workload through the proxy and report what the cache "
        "saved, by layer, in upstream calls and in dollars.",
    )
    parser.add_argument("--requests", type=int, default=defaults.requests)
    parser.add_argument(
        "--seconds", type=float, default=options.seconds, help="issue no request after this"
    )
    parser.add_argument("--seed", type=int, default=options.seed)
    parser.add_argument("--popular-share", type=float, default=defaults.popular_share)
    parser.add_argument("--paraphrase-share", type=float, default=defaults.paraphrase_share)
    parser.add_argument("--zipf", type=float, default=defaults.zipf_exponent)
    parser.add_argument("--model", default=options.model, help="a model the table prices")
    parser.add_argument("--concurrency", type=int, default=options.concurrency)
    parser.add_argument(
        "--upstream-latency", type=float, default=options.upstream_latency, help="seconds"
    )
    parser.add_argument("--replicas", type=int, help="default: 2 with Redis, else 1")
    parser.add_argument("--no-redis", action="store_true", help="L1 only")
    parser.add_argument("--no-semantic", action="store_true", help="no semantic layer")
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        shape = Shape(args.requests, args.popular_share, args.paraphrase_share, args.zipf)
    except ValueError as err:
        parser.error(str(err))
    if args.concurrency < 1 or (args.replicas is not None and args.replicas < 1):
        parser.error("--concurrency and --replicas must be >= 1")
    options = Options(
        shape,
        seed=args.seed,
        model=args.model,
        concurrency=args.concurrency,
        seconds=args.seconds,
        upstream_latency=args.upstream_latency,
        redis=not args.no_redis,
        semantic=not args.no_semantic,
        replicas=args.replicas,
    )
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    workload = generate(shape, args.seed)
    setup, report = run(options, workload, args.results / f"savings-{stamp}")
    title = f"Savings: {report.issued:,} requests, seed {args.seed}, {setup.describe()}"
    print(markdown(report, title))
    result = {
        "command": "python -m bench.savings " + " ".join(argv or sys.argv[1:]),
        "setup": {**asdict(setup), "l2": setup.l2.prefix if setup.l2 is not None else None},
        "workload": workload_summary(workload),
        "report": report.as_dict(),
    }
    path = args.results / f"savings-{stamp}.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"savings: results in {path}", file=sys.stderr)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
