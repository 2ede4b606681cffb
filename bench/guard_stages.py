"""`python -m bench.guard_stages`: where the guarded scenarios' time goes, stage by stage.

The guarded proxy of bench/guarded.py is built in-process by the proxy's own `build_state`,
and each of its guards is driven alone on prepared requests, with no sockets: authenticate;
the key's limits checked and settled; its budget checked and the answer charged (the
background record included); the usage the relay must read from an answer once limits or
budgets count tokens; the screening stage with its whole policy and with one rule at a time;
and the answer side: placeholders restored in a whole answer, and an output rule screening a
stream. Each is timed on two requests: the guarded scenarios' own (the bench's short chat,
about 200 bytes) and a longer conversation (`LONG_TURNS`, about 3.5 KB); the rows that say
`2 values found` use the same requests with an e-mail address and a phone number in the last
user turn.

Time is this process's CPU time (`time.process_time_ns`), so other work on the machine slows
it less than it would a wall clock: per row, batches of `--batch` requests (the background
drained inside each), the median of `--repeat` batches after one discarded.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import uvloop
import yaml

from bench import load
from bench.guarded import (
    BLOCKED_PATTERN,
    BLOCKED_TERMS,
    MAX_MESSAGES,
    MAX_PROMPT_CHARS,
    guarded_config,
)
from bench.runner import PII_QUESTION, SCENARIOS, Guarding
from edgeproxy.config import parse
from edgeproxy.dialects import openai
from edgeproxy.dialects.neutral import Usage
from edgeproxy.exchange import Exchange, Stage
from edgeproxy.operations import Operation
from edgeproxy.security.auth import Authenticate
from edgeproxy.security.limits import AdmitLimits
from edgeproxy.security.screen import Screen
from edgeproxy.security.spend import CheckBudget
from edgeproxy.state import ProxyState, build_state

T = TypeVar("T")
# The background runs at most 1,024 tasks at once (edgeproxy/background.py): a batch's budget
# charges must all fit, or the ones dropped would go unmeasured.
MAX_BATCH = 1000
UPSTREAM = "http://127.0.0.1:9"  # never called: nothing here reaches dispatch
HEADERS = {name.lower(): value for name, value in load.HEADERS.items()}
USAGE = Usage(input_tokens=40, output_tokens=60)
ANSWER_TEXT = (
    "Every request pays for the sidecar twice, in CPU and in latency, so it must stay small; "
    "I will send the summary to [EMAIL_1] and call [PHONE_1] if anything is unclear."
)
STREAM_PIECES = 20  # content events of the answer's stream, as the fake upstream sends
# A support conversation: what a longer prompt looks like (about 3.5 KB in all).
LONG_TURNS = (
    "Our checkout service started timing out after the deploy on Tuesday. The logs show the "
    "payment client retrying three times per request, each retry waiting 2 seconds, and the "
    "gateway closing the connection at 5 seconds. We run 12 pods behind the load balancer, "
    "each with 4 workers, and the database pool is capped at 20 connections per pod. ",
    "Thanks. The pool metrics say 18 of 20 connections are busy at peak, and the slow query "
    "log has a SELECT on the orders table that takes 1.8 seconds when the cache is cold. "
    "We added an index on customer_id last month, but the query also filters on status and "
    "created_at, and sorts by created_at descending with a LIMIT of 50. ",
    "We tried raising the gateway timeout to 10 seconds in staging and the errors moved to "
    "the client side instead. The mobile app gives up after 8 seconds. Product wants the "
    "checkout page to answer in under 2 seconds at the 99th percentile during the sale. ",
)
LONG_ANSWERS = (
    "The retries multiply the load when the database is slow: each timed-out request holds a "
    "pool connection for up to 6 seconds. Start by capping retries at one, with a budget. ",
    "A composite index on (customer_id, status, created_at DESC) would let the query stop "
    "after 50 rows instead of sorting every order the customer has ever placed. ",
)


def _chat(system: str, turns: list[tuple[str, str]], last: str) -> bytes:
    messages = [{"role": "system", "content": system}]
    for asked, answered in turns:
        messages += [
            {"role": "user", "content": asked},
            {"role": "assistant", "content": answered},
        ]
    messages.append({"role": "user", "content": last})
    return orjson.dumps({"model": "bench-model", "messages": messages, "max_tokens": 512})


def _long(last: str) -> bytes:
    turns = [(LONG_TURNS[i] * 2, LONG_ANSWERS[i % 2] * 2) for i in range(len(LONG_TURNS))]
    system = "You are a senior site reliability engineer. Answer with concrete steps."
    return _chat(system, turns, LONG_TURNS[-1] + last)


# name -> (without personal data, with it)
BODIES = {
    "bench chat": (SCENARIOS["guarded-c16"].body(), SCENARIOS["guarded-pii-c16"].body()),
    "long conversation": (_long("What should we change first?"), _long(PII_QUESTION)),
}


def answer_body(text: str = ANSWER_TEXT) -> bytes:
    """A chat completion as an OpenAI-compatible upstream sends it, usage included."""
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "bench-upstream-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 40, "completion_tokens": 60, "total_tokens": 100},
        }
    )


def answer_events(text: str = ANSWER_TEXT, pieces: int = STREAM_PIECES) -> list[bytes]:
    """The same answer as an OpenAI stream: a role event, `pieces` content events, the
    finish, usage and [DONE], each one SSE event."""
    cuts = [len(text) * i // pieces for i in range(pieces + 1)]
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000}
    head["model"] = "bench-upstream-model"

    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    events = [event({"role": "assistant", "content": ""})]
    events += [event({"content": text[a:b]}) for a, b in itertools.pairwise(cuts)]
    events.append(event({}, "stop"))
    usage = {"prompt_tokens": 40, "completion_tokens": 60, "total_tokens": 100}
    events.append(b"data: " + orjson.dumps({**head, "choices": [], "usage": usage}) + b"\n\n")
    return [*events, b"data: [DONE]\n\n"]


ANSWER = answer_body()
EVENTS = answer_events()


def guarded_state(guards: Guarding, policy: dict[str, Any] | None = None) -> ProxyState:
    """The guarded proxy's state, built as `edgeproxy serve` builds it; `policy` in place of
    the default guardrail policy when given."""
    raw = yaml.safe_load(guarded_config(8000, UPSTREAM, guards))
    if policy is not None:
        raw["guardrails"]["policies"]["bench"] = policy
    return build_state(parse(raw, {}))


@dataclass(frozen=True)
class GuardedProxy:
    """What every row drives: a guarded proxy's state, and requests made for it."""

    state: ProxyState

    def exchange(self, body: bytes) -> Exchange:
        """A request as the handler hands it to the pipeline, routed and authenticated."""
        payload = orjson.loads(body)
        exchange = Exchange(
            request_id="bench",
            operation=Operation.CHAT,
            headers=HEADERS,
            body=body,
            payload=payload,
            model=payload["model"],
            stream=bool(payload.get("stream")),
            started=0.0,
        )
        group = self.state.table.resolve(exchange.model)
        assert group is not None, "bench-model is configured"
        exchange.group = group
        exchange.caller = self.state.config.security.auth.keys[0]
        return exchange

    def stage(self, kind: type[T]) -> T:
        """The guarded pipeline's stage of type `kind`."""
        guards = self.state.guards
        return next(s for s in (*guards.before_route, *guards.after_route) if isinstance(s, kind))

    def answered(self, exchange: Exchange) -> Exchange:
        """`exchange` as the relay leaves it: answered by the deployment, usage read."""
        assert exchange.group is not None
        exchange.deployment = exchange.group.deployments[0]
        exchange.usage = USAGE
        exchange.status = 200
        return exchange


Step = Callable[[Exchange], Awaitable[None]]


@dataclass(frozen=True)
class Row:
    """One thing measured: `step` on each request, after `prepare` (not timed)."""

    name: str
    proxy: GuardedProxy
    step: Step
    pii: bool = False  # on the requests with personal data
    prepare: Step | None = None

    @property
    def label(self) -> str:
        return f"{self.name}, 2 values found" if self.pii else self.name


async def _measure(row: Row, body: bytes, batch: int, repeat: int) -> float:
    """µs of CPU per request of `row.step`, the median over `repeat` batches (one more first,
    discarded), each on fresh requests; background work it started is drained in the time."""
    background = row.proxy.state.background
    results = []
    for _ in range(repeat + 1):
        requests = [row.proxy.exchange(body) for _ in range(batch)]
        if row.prepare is not None:
            for exchange in requests:
                await row.prepare(exchange)
            await background.drain(5.0)
        started = time.process_time_ns()
        for exchange in requests:
            await row.step(exchange)
        await background.drain(5.0)
        results.append((time.process_time_ns() - started) / batch / 1000)
    return statistics.median(results[1:])


def _checked(stage: Stage) -> Step:
    async def step(exchange: Exchange) -> None:
        if await stage(exchange) is not None:
            raise RuntimeError(f"{type(stage).__name__} refused a request it must let through")

    return step


def _settled(proxy: GuardedProxy, stage: Stage) -> Step:
    """The stage, then the exchange settled as it is after the answer: the tokens reserved
    reconciled and the slot freed, or the answer charged."""
    check = _checked(stage)

    async def step(exchange: Exchange) -> None:
        await check(exchange)
        proxy.answered(exchange).settle(0.0)

    return step


async def _read_usage(exchange: Exchange) -> None:
    openai.usage_of_body(ANSWER)


async def _restore(exchange: Exchange) -> None:
    answer = exchange.answer_screen
    assert answer is not None, "a redacted request has its answer screened"
    answer.whole(ANSWER)


async def _screen_stream(exchange: Exchange) -> None:
    """Every event of the answer's stream fed on its own (a provider writing each event as it
    comes), then the end."""
    answer = exchange.answer_screen
    assert answer is not None, "an output rule screens every answer"
    for event in EVENTS:
        answer.feed(event)
    answer.finish()


# The default policy's rules one at a time, for the screen's breakdown.
SINGLE_RULES: dict[str, dict[str, Any]] = {
    "input limits": {"max_messages": MAX_MESSAGES, "max_prompt_chars": MAX_PROMPT_CHARS},
    "blocklist": {
        "blocklist": {"mode": "block", "terms": list(BLOCKED_TERMS), "patterns": [BLOCKED_PATTERN]}
    },
    "injection": {"injection": {"mode": "block"}},
    "injection, every text new": {"injection": {"mode": "block", "remember_clean": 0}},
    "pii redact": {"pii": {"mode": "redact"}},
}


AUTHENTICATE = "authenticate"
LIMITS = "limits: check, then settle"
BUDGET = "budget: check, then charge"
USAGE_READ = "relay: usage read from the answer"
SCREENED = "screen: the policy"
RESTORED = "answer: placeholders restored"
OUTPUT = "answer: output rule on a stream"
# What each guarded scenario's request goes through, by row and whether it carries personal
# data (the plain proxy reads no usage from a whole answer; a stream's is watched either way).
SCENARIO_ROWS = {
    "guarded-c16": (
        (AUTHENTICATE, False),
        (LIMITS, False),
        (BUDGET, False),
        (USAGE_READ, False),
        (SCREENED, False),
    ),
    "guarded-pii-c16": (
        (AUTHENTICATE, False),
        (LIMITS, False),
        (BUDGET, False),
        (USAGE_READ, False),
        (SCREENED, True),
        (RESTORED, True),
    ),
    "guarded-stream-c16": (
        (AUTHENTICATE, False),
        (LIMITS, False),
        (BUDGET, False),
        (SCREENED, False),
        (OUTPUT, False),
    ),
}


def rows() -> list[Row]:
    """What is measured, in the order the report lists it."""
    request = GuardedProxy(guarded_state("request"))
    answers = GuardedProxy(guarded_state("answers"))
    screen = _checked(request.stage(Screen))
    found = [
        Row(AUTHENTICATE, request, _checked(request.stage(Authenticate))),
        Row(LIMITS, request, _settled(request, request.stage(AdmitLimits))),
        Row(BUDGET, request, _settled(request, request.stage(CheckBudget))),
        Row(USAGE_READ, request, _read_usage),
        Row(SCREENED, request, screen),
        Row(SCREENED, request, screen, pii=True),
    ]
    for name, policy in SINGLE_RULES.items():
        alone = GuardedProxy(guarded_state("request", policy))
        step = _checked(alone.stage(Screen))
        found += [Row(f"screen: {name} alone", alone, step, pii=pii) for pii in (False, True)]
    found += [
        Row(RESTORED, request, _restore, pii=True, prepare=screen),
        Row(OUTPUT, answers, _screen_stream, prepare=_checked(answers.stage(Screen))),
    ]
    return found


async def measure_all(batch: int, repeat: int) -> list[tuple[Row, list[float]]]:
    measured = []
    for row in rows():
        bodies = [pair[1] if row.pii else pair[0] for pair in BODIES.values()]
        measured.append((row, [await _measure(row, body, batch, repeat) for body in bodies]))
    return measured


def table(measured: list[tuple[Row, list[float]]]) -> str:
    """The rows as markdown, then what each guarded scenario's request goes through, summed."""
    sizes = [f"{name} ({len(pair[0]):,} B)" for name, pair in BODIES.items()]
    lines = [
        f"| µs CPU per request | {' | '.join(sizes)} |",
        "|---" + "|---:" * len(sizes) + "|",
    ]
    lines += [
        f"| {row.label} | " + " | ".join(f"{us:.1f}" for us in values) + " |"
        for row, values in measured
    ]
    by_row = {(row.name, row.pii): values for row, values in measured}
    lines += ["", f"Each stream: {len(EVENTS)} SSE events, fed one at a time.", ""]
    for scenario, parts in SCENARIO_ROWS.items():
        sums = [sum(by_row[part][column] for part in parts) for column in range(len(sizes))]
        shown = ", ".join(f"{us:.0f} µs ({size})" for us, size in zip(sums, sizes, strict=True))
        lines.append(f"- {scenario}'s guards, summed: {shown}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.guard_stages", description=__doc__)
    parser.add_argument("--batch", type=int, default=200, help="requests per timed batch")
    parser.add_argument("--repeat", type=int, default=9, help="timed batches per row")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeat < 1:
        parser.error("--batch and --repeat must be positive")
    if args.batch > MAX_BATCH:
        parser.error(f"--batch at most {MAX_BATCH}: budget charges beyond would be dropped")
    print(table(uvloop.run(measure_all(args.batch, args.repeat))))


if __name__ == "__main__":
    main()
