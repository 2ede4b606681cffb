"""The order of trying, without sockets: scripted providers, a manual clock, recorded waits."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from edgeproxy import errors
from edgeproxy.config import parse
from edgeproxy.dialects import anthropic_messages, openai_chat
from edgeproxy.errors import ProxyError
from edgeproxy.exchange import Exchange
from edgeproxy.operations import Operation
from edgeproxy.pipeline import Pipeline, build_pipeline
from edgeproxy.providers.base import OutboundRequest, Provider
from edgeproxy.providers.http import BufferedUpstream
from edgeproxy.routing.router import ModelTable

# A scripted answer: a status (optionally with headers and a body), a raised ProxyError, a
# stream's chunks (a ProxyError among them is raised when reached), or "hang" (until cancelled).
Step = int | tuple[int, dict[str, str], bytes] | ProxyError | list[bytes | ProxyError] | str


class Streamed:
    """A 200 event stream whose chunks are given; an exception in the list is raised."""

    def __init__(self, chunks: list[bytes | ProxyError]) -> None:
        self._chunks = deque(chunks)
        self.headers: MutableMapping[str, str] = CIMultiDict({"content-type": "text/event-stream"})
        self.status = 200
        self.closed = False

    @property
    def is_event_stream(self) -> bool:
        return True

    async def read(self) -> bytes:
        return b""

    async def next_chunk(self) -> bytes:
        if not self._chunks:
            return b""
        chunk = self._chunks.popleft()
        if isinstance(chunk, ProxyError):
            raise chunk
        return chunk

    def close(self) -> None:
        self.closed = True


class Scripted(Provider):
    """Answers with its next scripted step, 200 once the script is spent; counts calls and
    cancellations."""

    operations = frozenset(Operation)

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.script: deque[Step] = deque()
        self.calls = 0
        self.cancelled = 0

    @property
    def chat_codec(self) -> Any:
        return openai_chat

    async def send(self, request: OutboundRequest) -> Any:
        self.calls += 1
        step = self.script.popleft() if self.script else 200
        if step == "hang":
            try:
                await asyncio.Event().wait()
            finally:
                self.cancelled += 1
        if isinstance(step, ProxyError):
            raise step
        if isinstance(step, list):
            return Streamed(step)
        status, headers, body = step if isinstance(step, tuple) else (step, {}, b"")
        body = body or orjson.dumps({"status": status, "by": self.name})
        return BufferedUpstream(status, CIMultiDict(headers), body)


class ScriptedAnthropic(Scripted):
    """Speaks Anthropic's dialect: an OpenAI client's chat request is translated for it."""

    operations = frozenset({Operation.MESSAGES, Operation.COUNT_TOKENS})

    @property
    def chat_codec(self) -> Any:
        return anthropic_messages


@dataclass
class Clock:
    """The routing clock; `sleep` records each wait and moves time on by it."""

    now: float = 1000.0
    waits: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@dataclass
class Rig:
    pipeline: Pipeline
    providers: dict[str, Scripted]
    clock: Clock
    table: ModelTable

    def script(self, provider: str, *steps: Step) -> None:
        self.providers[provider].script.extend(steps)

    def calls(self) -> dict[str, int]:
        return {name: p.calls for name, p in self.providers.items()}

    async def ask(
        self, model: str = "m", *, stream: bool = False, seed: int | None = None, **headers: str
    ) -> tuple[Any, Exchange]:
        """One request through route and dispatch: the reply and the exchange, settled."""
        payload: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        if seed is not None:
            payload["seed"] = seed
        exchange = Exchange(
            request_id="r",
            operation=Operation.CHAT,
            headers=CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()}),
            body=orjson.dumps(payload),
            payload=payload,
            model=model,
            stream=stream,
            started=asyncio.get_running_loop().time(),
        )
        reply = await self.pipeline.run(exchange)
        if not isinstance(reply, ProxyError):
            exchange.status = reply.status
            reply.close()
        else:
            exchange.status = reply.status
        exchange.settle(self.clock())
        return reply, exchange

    def health(self, name: str) -> Any:
        return self.table.health[f"{name}/*"]


def rig(models: dict[str, Any], routing: dict[str, Any] | None = None, total: str = "10m") -> Rig:
    """Providers a, b, c and (Anthropic-speaking) x, scripted, behind `models`; waits happen
    on a manual clock, and `total` is each provider's total timeout (the request's deadline)."""
    config = parse(
        {
            "providers": {n: {"kind": "mock", "timeouts": {"total": total}} for n in "abcx"},
            "routing": routing or {},
            "models": models,
        },
        {},
    )
    providers = {
        n: (ScriptedAnthropic if n == "x" else Scripted)(p) for n, p in config.providers.items()
    }
    table = ModelTable(config.models, providers, config.routing)
    clock = Clock()
    pipeline = build_pipeline(table, clock, random.Random(5).random, clock.sleep)
    return Rig(pipeline, providers, clock, table)


def in_order(*names: str, **extra: Any) -> dict[str, Any]:
    """A group that tries its deployments in the order given (cheapest first)."""
    deployments = [
        {"provider": n, "price": {"input": i + 1, "output": i + 1}} for i, n in enumerate(names)
    ]
    return {"strategy": "cost", "deployments": deployments, **extra}


def served_by(reply: Any) -> str:
    assert not isinstance(reply, ProxyError), reply
    return str(orjson.loads(reply._body)["by"])


CONTEXT_ERROR = orjson.dumps(
    {
        "error": {
            "message": "This model's maximum context length is 8192 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
)


async def test_a_failed_attempt_moves_to_the_next_deployment_without_waiting() -> None:
    r = rig({"m": in_order("a", "b")})
    r.script("a", 500)
    reply, exchange = await r.ask()
    assert (served_by(reply), exchange.attempts, r.clock.waits) == ("b", 2, [])


async def test_a_lone_deployment_is_retried_after_a_jittered_exponential_backoff() -> None:
    r = rig({"m": in_order("a")}, {"retry": {"backoff_base": "100ms", "max_attempts": 3}})
    r.script("a", 502, 503)
    reply, exchange = await r.ask()
    assert served_by(reply) == "a" and exchange.attempts == 3
    first, second = r.clock.waits
    assert 0 <= first <= 0.1 and 0 <= second <= 0.2


async def test_the_attempt_cap_relays_the_last_failure() -> None:
    r = rig({"m": in_order("a", "b")}, {"retry": {"max_attempts": 3}})
    r.script("a", 500, 500, 500)
    r.script("b", 503, 503, 503)
    reply, exchange = await r.ask()
    assert reply.status in (500, 503) and exchange.attempts == 3
    assert sum(r.calls().values()) == 3


@pytest.mark.parametrize(
    ("headers", "wait"),
    [({"retry-after": "7"}, 7.0), ({"retry-after-ms": "1500"}, 1.5)],
)
async def test_a_retry_after_is_honoured_before_the_same_deployment_is_tried_again(
    headers: dict[str, str], wait: float
) -> None:
    r = rig({"m": in_order("a")})
    r.script("a", (429, headers, b""))
    reply, exchange = await r.ask()
    assert served_by(reply) == "a" and exchange.attempts == 2
    assert r.clock.waits == [pytest.approx(wait)]


async def test_a_deployment_cooling_after_a_retry_after_is_skipped_by_other_requests() -> None:
    r = rig({"m": in_order("a", "b")})
    r.script("a", (429, {"retry-after": "20"}, b""))
    await r.ask()
    replies = [served_by((await r.ask())[0]) for _ in range(3)]
    assert replies == ["b", "b", "b"] and r.calls()["a"] == 1
    r.clock.now += 21
    assert served_by((await r.ask())[0]) == "a"


@pytest.mark.parametrize(
    ("routing", "total"),
    [({"retry": {"max_wait": "5s"}}, "10m"), ({}, "5s")],
    ids=["beyond max_wait", "beyond the request deadline"],
)
async def test_a_retry_after_too_long_to_wait_is_relayed_at_once(
    routing: dict[str, Any], total: str
) -> None:
    r = rig({"m": in_order("a")}, routing, total)
    r.script("a", (429, {"retry-after": "10"}, b""))
    reply, exchange = await r.ask()
    assert reply.status == 429 and exchange.attempts == 1 and r.clock.waits == []


async def test_an_empty_budget_still_fails_over_but_never_calls_a_deployment_twice() -> None:
    r = rig(
        {"m": in_order("a", "b"), "lone": in_order("c")},
        {"retry": {"budget_ratio": 0, "budget_min": 0}},
    )
    r.script("a", 500)
    reply, exchange = await r.ask()
    assert served_by(reply) == "b" and exchange.attempts == 2, "failover needs no budget"
    r.script("c", 500)
    reply, exchange = await r.ask("lone")
    assert reply.status == 500 and exchange.attempts == 1
    assert r.table.resolve("lone").budget.denied == 1  # type: ignore[union-attr]


async def test_a_retry_beyond_the_budget_relays_the_failure() -> None:
    r = rig({"m": in_order("a")}, {"retry": {"budget_ratio": 0, "budget_min": 1}})
    budget = r.table.groups[0].budget
    assert budget.try_acquire(), "another request's retry holds the only place"
    r.script("a", 500)
    reply, exchange = await r.ask()
    assert reply.status == 500 and exchange.attempts == 1
    budget.release()
    r.script("a", 500)
    reply, exchange = await r.ask()
    assert served_by(reply) == "a" and exchange.attempts == 2
    assert budget.snapshot()["retries_in_flight"] == 0


@pytest.mark.parametrize("status", [401, 403])
async def test_a_deployment_refusing_the_proxys_key_fails_over(status: int) -> None:
    r = rig({"m": in_order("a", "b")})
    r.script("a", status)
    reply, exchange = await r.ask()
    assert served_by(reply) == "b" and exchange.attempts == 2


async def test_a_stream_whose_first_event_is_an_error_is_failed_over() -> None:
    r = rig({"m": in_order("a", "b")})
    overloaded = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n'
    r.script("a", [overloaded])
    r.script("b", [b"data: 1\n\n"])
    reply, exchange = await r.ask(stream=True)
    assert exchange.attempts == 2 and await reply.next_chunk() == b"data: 1\n\n"
    assert r.health("a").failures == 1


async def test_a_stream_failing_at_once_everywhere_is_relayed_as_the_provider_sent_it() -> None:
    r = rig({"m": in_order("a")}, {"retry": {"max_attempts": 1}})
    error = b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n'
    r.script("a", [error])
    reply, _ = await r.ask(stream=True)
    assert reply.status == 200 and await reply.next_chunk() == error


async def test_errors_that_are_not_retryable_are_relayed_after_one_attempt() -> None:
    r = rig({"m": in_order("a", "b")})
    r.script("a", 400)
    reply, exchange = await r.ask()
    assert reply.status == 400 and exchange.attempts == 1 and r.calls()["b"] == 0


async def test_transport_failures_are_retried_elsewhere() -> None:
    r = rig({"m": in_order("a", "b")})
    r.script("a", errors.upstream_unreachable("a", "refused"))
    reply, _ = await r.ask()
    assert served_by(reply) == "b"


async def test_a_dead_lone_primary_stops_being_called_once_its_breaker_opens() -> None:
    r = rig(
        {
            "m": in_order("a", fallbacks=["backup"]),
            "backup": in_order("b"),
        },
        {"retry": {"max_attempts": 1}},
    )
    r.script("a", *[500] * 100)
    served = [served_by((await r.ask())[0]) for _ in range(12)]
    assert served == ["b"] * 12, "every client request succeeds through the fallback"
    assert r.calls()["a"] == 5, "after five failures the breaker keeps traffic away"


async def test_a_lone_deployment_with_an_open_breaker_fails_fast_with_503() -> None:
    r = rig({"m": in_order("a")}, {"retry": {"max_attempts": 1}})
    r.script("a", *[500] * 5)
    for _ in range(5):
        await r.ask()
    reply, exchange = await r.ask()
    assert isinstance(reply, ProxyError) and reply.status == 503
    assert reply.code == "no_deployment_available"
    assert reply.retry_after == pytest.approx(60.0)
    assert exchange.attempts == 0 and r.calls()["a"] == 5


def rate_limit(seconds: int) -> Step:
    return (429, {"retry-after": str(seconds)}, b"")


async def unavailable(r: Rig) -> ProxyError:
    """The answer to a request for which nothing is available: nothing is called."""
    calls = r.calls()
    reply, exchange = await r.ask()
    assert isinstance(reply, ProxyError) and exchange.attempts == 0 and r.calls() == calls
    return reply


async def test_a_group_held_back_only_by_rate_limits_answers_429_with_the_remaining_wait() -> None:
    r = rig({"m": in_order("a", "b")}, {"retry": {"max_wait": "5s"}})
    r.script("a", rate_limit(60))
    r.script("b", rate_limit(30))
    reply, _ = await r.ask()
    assert reply.status == 429, "the provider's own 429, relayed"
    r.clock.now += 10

    reply = await unavailable(r)

    assert (reply.status, reply.code) == (429, "rate_limit_exceeded")
    assert reply.retry_after == pytest.approx(20.0), "b's retry-after, the earlier one, less 10s"


@pytest.mark.parametrize(
    "b_is",
    ["open", "cooling after a 503", "at its in-flight ceiling", "at its rpm ceiling"],
)
async def test_any_deployment_held_back_for_another_reason_keeps_the_503(b_is: str) -> None:
    group = in_order("a", "b")
    ceiling = {"at its in-flight ceiling": "max_in_flight", "at its rpm ceiling": "rpm"}
    if b_is in ceiling:
        group["deployments"][1][ceiling[b_is]] = 1
    r = rig({"m": group}, {"retry": {"max_attempts": 1}})
    r.script("a", rate_limit(60))
    await r.ask()
    if b_is == "open":
        r.script("b", *[500] * 5)
        for _ in range(5):
            await r.ask()
    elif b_is == "cooling after a 503":
        r.script("b", (503, {"retry-after": "60"}, b""))
        await r.ask()
    elif b_is == "at its in-flight ceiling":
        assert r.health("b").acquire(r.clock(), 0), "another request holds b's only place"
    else:
        await r.ask()

    reply = await unavailable(r)

    assert (reply.status, reply.code) == (503, "no_deployment_available")


async def test_a_breaker_opened_by_rate_limits_is_a_429_until_the_retry_after_passes() -> None:
    r = rig({"m": in_order("a")}, {"retry": {"max_attempts": 1}})
    r.script("a", *[rate_limit(10)] * 5)
    for attempt in range(5):
        r.clock.now += 10 if attempt else 0
        await r.ask()
    assert r.health("a").breaker.state.value == "open"

    assert (await unavailable(r)).status == 429, "the provider's pause is still running"
    r.clock.now += 10
    reply = await unavailable(r)
    assert reply.status == 503 and reply.retry_after == pytest.approx(50.0), "now the breaker's"


@pytest.mark.parametrize(("fallback_rate_limited", "status"), [(True, 429), (False, 503)])
async def test_fallback_groups_count_towards_the_answer(
    fallback_rate_limited: bool, status: int
) -> None:
    r = rig(
        {"m": in_order("a", fallbacks=["n"]), "n": in_order("b")},
        {"retry": {"max_attempts": 1}},
    )
    r.script("a", rate_limit(60))
    r.script("b", rate_limit(60) if fallback_rate_limited else 500)
    await r.ask()
    if not fallback_rate_limited:
        r.script("b", *[500] * 4)
        for _ in range(4):
            await r.ask("n")

    assert (await unavailable(r)).status == status


async def test_half_open_probes_close_the_breaker_after_recovery() -> None:
    r = rig({"m": in_order("a")}, {"retry": {"max_attempts": 1}})
    r.script("a", *[500] * 5)
    for _ in range(5):
        await r.ask()
    assert r.health("a").breaker.state.value == "open"
    r.clock.now += 60
    for _ in range(3):
        reply, _ = await r.ask()
        assert served_by(reply) == "a"
    assert r.health("a").breaker.state.value == "closed"


async def test_a_failed_probe_opens_the_breaker_again() -> None:
    r = rig({"m": in_order("a")}, {"retry": {"max_attempts": 1}})
    r.script("a", *[500] * 6)
    for _ in range(5):
        await r.ask()
    r.clock.now += 60
    reply, _ = await r.ask()
    assert reply.status == 500 and r.health("a").breaker.state.value == "open"
    reply, _ = await r.ask()
    assert isinstance(reply, ProxyError) and reply.status == 503


async def test_a_context_length_error_moves_to_the_larger_context_group() -> None:
    r = rig(
        {
            "m": in_order("a", context_fallbacks=["long"]),
            "long": in_order("b"),
        }
    )
    r.script("a", (400, {}, CONTEXT_ERROR))
    reply, exchange = await r.ask()
    assert served_by(reply) == "b" and exchange.attempts == 2


async def test_a_context_length_error_without_a_larger_group_is_relayed() -> None:
    r = rig({"m": in_order("a", "b")})
    r.script("a", (400, {}, CONTEXT_ERROR))
    reply, exchange = await r.ask()
    assert reply.status == 400 and exchange.attempts == 1


async def test_a_stream_that_fails_before_its_first_chunk_is_retried() -> None:
    r = rig({"m": in_order("a", "b")})
    r.script("a", [errors.upstream_broken("a", "reset")])
    r.script("b", [b"data: 1\n\n", b"data: 2\n\n"])
    reply, exchange = await r.ask(stream=True)
    assert exchange.attempts == 2 and exchange.deployment is not None
    assert exchange.deployment.provider.name == "b"
    assert await reply.next_chunk() == b"data: 1\n\n", "the first chunk is replayed"


async def test_a_request_one_dialect_refuses_is_served_by_another_deployment() -> None:
    r = rig({"m": in_order("x", "a", unsupported_params="reject")})
    reply, exchange = await r.ask(seed=7)
    assert served_by(reply) == "a" and exchange.attempts == 1
    assert exchange.translator is None, "the state is the serving attempt's"


async def test_a_providers_failure_is_relayed_rather_than_another_deployments_refusal() -> None:
    r = rig({"m": in_order("a", "x", unsupported_params="reject", retry={"max_attempts": 2})})
    r.script("a", 503)
    reply, exchange = await r.ask(seed=7)
    assert reply.status == 503 and r.calls()["x"] == 0
    assert exchange.deployment is not None and exchange.deployment.provider.name == "a"
    assert exchange.translator is None, "relayed as a's answer, not through x's translator"


async def test_everything_refusing_the_request_answers_with_the_refusal() -> None:
    r = rig({"m": in_order("x", unsupported_params="reject")})
    reply, exchange = await r.ask(seed=7)
    assert isinstance(reply, ProxyError) and reply.status == 400 and reply.param == "seed"
    assert exchange.attempts == 0


async def test_a_fallback_group_chooses_by_its_own_strategy() -> None:
    r = rig(
        {
            "m": {"fallbacks": ["n"], "deployments": [{"provider": "a"}]},
            "n": {
                "strategy": "cost",
                "deployments": [
                    {"provider": "b", "weight": 1000, "price": {"input": 9, "output": 9}},
                    {"provider": "c", "weight": 0.001, "price": {"input": 1, "output": 1}},
                ],
            },
        },
        {"retry": {"max_attempts": 1}},
    )
    r.script("a", 500)
    reply, _ = await r.ask()
    assert served_by(reply) == "c"


async def test_an_unknown_strategy_header_is_a_400_and_a_known_one_is_used() -> None:
    r = rig({"m": {"deployments": [{"provider": "a"}, {"provider": "b", "weight": 1000}]}})
    bad, _ = await r.ask(x_edgeproxy_strategy="fastest")
    assert isinstance(bad, ProxyError) and bad.status == 400
    _, exchange = await r.ask(x_edgeproxy_strategy="latency")
    assert exchange.strategy == "latency"


async def test_places_are_given_back_when_exchanges_end() -> None:
    r = rig({"m": in_order("a", "b")})
    r.script("a", 500)
    await r.ask()
    await r.ask(stream=True)
    assert [h.in_flight for h in r.table.health.values()] == [0, 0]


async def test_a_slow_first_byte_is_hedged_and_the_loser_cancelled() -> None:
    r = rig({"m": in_order("a", "b", hedge_after="10ms")})
    r.script("a", "hang")
    reply, exchange = await r.ask()
    assert served_by(reply) == "b" and exchange.attempts == 2
    assert r.providers["a"].cancelled == 1
    assert r.health("a").hedges == 1 and r.pipeline.dispatch.hedges == 1
    assert r.health("a").in_flight == 0
