"""Feedback on served answers: what is accepted, what each refusal is (unit and through the
proxy in both dialects, with the official SDKs), the quality it makes, and how the hybrid
strategy weighs it."""

from __future__ import annotations

import gzip
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest

from edgeproxy.app import listener_limits
from edgeproxy.config import parse
from edgeproxy.config_reader import Reader
from edgeproxy.errors import ProxyError
from edgeproxy.handlers import ProxyHandlers
from edgeproxy.operations import Operation
from edgeproxy.providers import build_provider
from edgeproxy.relay import Relay
from edgeproxy.routing.router import ModelTable
from edgeproxy.security.auth import Authenticate, hash_key
from edgeproxy.state import build_state
from edgeproxy.stored_responses import StoredResponses
from edgeproxy.telemetry.feedback import MAX_BODY, Accepted, Feedback, FeedbackEndpoint
from edgeproxy.telemetry.feedback_settings import FeedbackSettings, parse_feedback
from edgeproxy.telemetry.recorder import Recorder
from edgeproxy.telemetry.served import ServedLedger
from edgeproxy.wire.server import HttpServer
from tests.support.clock import ManualClock
from tests.support.records import answered

WINDOW = 3600.0
SETTINGS = FeedbackSettings(enabled=True, window=WINDOW, min_count=3, quality_samples=4)
WEB_KEY, BATCH_KEY = "sk-web-0123456789abcdef", "sk-batch-0123456789abcdef"


def feedback(clock: ManualClock | None = None, table: ModelTable | None = None) -> Feedback:
    ledger = ServedLedger(WINDOW, 1000, clock or ManualClock())
    return Feedback(ledger, SETTINGS, table.health if table is not None else {})


def accepted(result: Accepted | ProxyError) -> Accepted:
    assert isinstance(result, Accepted), result
    return result


def refused(result: Accepted | ProxyError) -> ProxyError:
    assert isinstance(result, ProxyError), result
    return result


# --- what is accepted ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "label"),
    [(0, None), (1, None), (0.5, "thumbs_up"), (1.0, "x" * 64), (0.25, "a/b:c-d.e")],
)
def test_a_score_for_a_served_answer_is_accepted(score: float, label: str | None) -> None:
    taken = feedback()
    taken.ledger.served(answered("r1"))
    result = accepted(taken.submit("r1", score, label))
    assert result == Accepted("r1", float(score), label, counted=True)
    assert orjson.loads(result.body()) == {
        "object": "feedback",
        "request_id": "r1",
        "score": score,
        "label": label,
        "counted": True,
    }


@pytest.mark.parametrize(
    ("request_id", "score", "label", "param"),
    [
        (None, 0.5, None, "request_id"),
        (7, 0.5, None, "request_id"),
        ("has space", 0.5, None, "request_id"),
        ("x" * 129, 0.5, None, "request_id"),
        ("r1", None, None, "score"),
        ("r1", "0.5", None, "score"),
        ("r1", True, None, "score"),
        ("r1", -0.01, None, "score"),
        ("r1", 1.01, None, "score"),
        ("r1", math.nan, None, "score"),
        ("r1", math.inf, None, "score"),
        ("r1", 0.5, "", "label"),
        ("r1", 0.5, "x" * 65, "label"),
        ("r1", 0.5, "two words", "label"),
        ("r1", 0.5, "naïve", "label"),
        ("r1", 0.5, 3, "label"),
        ("r1", 0.5, ["a"], "label"),
    ],
)
def test_invalid_feedback_is_a_400_naming_its_field(
    request_id: object, score: object, label: object, param: str
) -> None:
    taken = feedback()
    taken.ledger.served(answered("r1"))
    err = refused(taken.submit(request_id, score, label))
    assert (err.status, err.code, err.param) == (400, "invalid_request", param)
    assert taken.scores("a") is None


def _served_to_web(taken: Feedback, clock: ManualClock) -> None:
    taken.ledger.served(answered("failed", status=502))
    taken.ledger.served(answered("old"))
    clock.advance(WINDOW)
    taken.ledger.served(answered("web", key_id="web"))


@pytest.mark.parametrize(
    ("request_id", "caller"),
    [
        ("never-served", None),
        ("failed", None),  # no answer to rate
        ("old", None),  # served longer ago than the window
        ("web", "batch"),  # another key's answer
        ("web", None),  # a keyed answer, rated without a key
    ],
)
def test_feedback_on_an_answer_not_served_to_the_caller_is_a_404(
    request_id: str, caller: str | None
) -> None:
    clock = ManualClock()
    taken = feedback(clock)
    _served_to_web(taken, clock)
    err = refused(taken.submit(request_id, 0.5, None, caller))
    assert (err.status, err.code, err.param) == (404, "request_not_found", "request_id")
    assert "1h0m" in err.message
    assert accepted(taken.submit("web", 0.5, None, "web")).counted


def test_the_same_feedback_again_is_answered_as_the_first_and_counted_once() -> None:
    taken = feedback()
    taken.ledger.served(answered("r1"))
    first = accepted(taken.submit("r1", 0.5, "ok"))
    assert accepted(taken.submit("r1", 0.5, "ok")) == first
    scores = taken.scores("a")
    assert scores is not None and len(scores) == 1


@pytest.mark.parametrize(("score", "label"), [(0.6, "ok"), (0.5, None), (0.5, "bad")])
def test_different_feedback_for_a_rated_answer_is_a_409_and_the_first_stands(
    score: float, label: str | None
) -> None:
    taken = feedback()
    taken.ledger.served(answered("r1"))
    accepted(taken.submit("r1", 0.5, "ok"))
    err = refused(taken.submit("r1", score, label))
    assert (err.status, err.code) == (409, "feedback_exists")
    scores = taken.scores("a")
    assert scores is not None and (len(scores), scores.mean) == (1, 0.5)


def test_feedback_on_a_cache_answer_is_accepted_but_counts_for_no_deployment() -> None:
    taken = feedback()
    taken.ledger.served(answered("cached", deployment=None))
    assert accepted(taken.submit("cached", 0.1)).counted is False
    assert taken.scores("a") is None


# --- quality -------------------------------------------------------------------------------


def two_deployments(strategy: str = "hybrid", quality: float = 0.5) -> ModelTable:
    """Group g over mock deployments a and b, alike in everything feedback does not tell."""
    config = parse(
        {
            "providers": {"m1": {"kind": "mock"}, "m2": {"kind": "mock"}},
            "routing": {"hybrid": {"quality": quality}},
            "models": {
                "g": {
                    "strategy": strategy,
                    "deployments": [
                        {"provider": "m1", "name": "a"},
                        {"provider": "m2", "name": "b"},
                    ],
                }
            },
        },
        {},
    )
    providers = {name: build_provider(p) for name, p in config.providers.items()}
    return ModelTable(config.models, providers, config.routing)


def rate(taken: Feedback, deployment: str, scores: list[float], prefix: str = "") -> None:
    for n, score in enumerate(scores):
        request_id = f"{prefix}{deployment}-{n}"
        taken.ledger.served(answered(request_id, deployment))
        accepted(taken.submit(request_id, score, "bad" if score < 0.5 else None))


def test_quality_is_published_once_a_deployment_has_min_count_scores() -> None:
    table = two_deployments()
    taken = feedback(table=table)
    rate(taken, "a", [0.2, 0.5])
    assert (taken.quality("a"), table.health["a"].quality) == (None, None)
    rate(taken, "a", [0.8], prefix="more-")
    assert taken.quality("a") == table.health["a"].quality == pytest.approx(0.5)
    assert table.health["b"].quality is None
    assert table.health["a"].snapshot(0.0)["quality"] == 0.5


def test_quality_is_the_mean_of_the_latest_scores_and_their_labels() -> None:
    taken = feedback()
    rate(taken, "a", [0.0, 0.25, 1.0, 1.0, 0.75])  # quality_samples 4: the 0.0 is dropped
    assert taken.quality("a") == pytest.approx(0.75)
    scores = taken.scores("a")
    assert scores is not None and dict(scores.labels) == {"bad": 1}


def test_with_quality_weighted_the_hybrid_strategy_prefers_the_better_deployment() -> None:
    table = two_deployments(quality=0.5)
    taken = feedback(table=table)
    group = table.resolve("g")
    assert group is not None
    rng = random.Random(1).random
    assert group.choose("hybrid", 0.0, rng, Operation.CHAT).name == "a"  # a tie: the first
    rate(taken, "a", [0.6, 0.6, 0.6])
    rate(taken, "b", [0.9, 0.9, 0.9])
    assert group.choose("hybrid", 0.0, rng, Operation.CHAT).name == "b"


def test_without_a_quality_weight_feedback_leaves_the_hybrid_choice_alone() -> None:
    table = two_deployments(quality=0.0)
    taken = feedback(table=table)
    group = table.resolve("g")
    assert group is not None
    rate(taken, "a", [0.1, 0.1, 0.1])
    rate(taken, "b", [0.9, 0.9, 0.9])
    assert group.choose("hybrid", 0.0, random.Random(1).random, Operation.CHAT).name == "a"


# --- settings ------------------------------------------------------------------------------


def test_settings_parse_with_defaults() -> None:
    r = Reader({})
    assert parse_feedback(r, None, "telemetry.feedback") == FeedbackSettings()
    given = {
        "enabled": True,
        "window": "30m",
        "max_ids": 5000,
        "min_count": 10,
        "quality_samples": 200,
        "quality_tolerance": 0.05,
        "latency_tolerance": 0.5,
    }
    assert parse_feedback(r, given, "telemetry.feedback") == FeedbackSettings(
        True, 1800.0, 5000, 10, 200, 0.05, 0.5
    )
    assert r.problems == []


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"window": 0}, "telemetry.feedback.window: expected a duration > 0"),
        ({"max_ids": 0}, "telemetry.feedback.max_ids: expected an integer >= 1"),
        ({"quality_tolerance": 2}, "telemetry.feedback.quality_tolerance: expected a number"),
        ({"latency_tolerance": -1}, "telemetry.feedback.latency_tolerance: expected a number"),
        (
            {"min_count": 50, "quality_samples": 20},
            "telemetry.feedback.min_count: must not exceed quality_samples",
        ),
        ({"windw": "1h"}, "telemetry.feedback.windw: unknown field"),
    ],
)
def test_settings_problems_name_their_field(raw: dict[str, Any], problem: str) -> None:
    r = Reader({})
    parse_feedback(r, raw, "telemetry.feedback")
    assert len(r.problems) == 1 and r.problems[0].startswith(problem), r.problems


# --- through the proxy ---------------------------------------------------------------------


@dataclass
class FeedbackProxy:
    url: str
    feedback: Feedback
    clock: ManualClock


ProxyFactory = Callable[..., Awaitable[FeedbackProxy]]


@pytest.fixture
async def make_proxy() -> AsyncIterator[ProxyFactory]:
    """`await make_proxy(auth=..., enabled=...)`: the data listener with POST /v1/feedback
    (when enabled), answers seeded into its ledger by the test."""
    servers: list[HttpServer] = []

    async def factory(auth: dict[str, Any] | None = None, enabled: bool = True) -> FeedbackProxy:
        raw: dict[str, Any] = {
            "providers": {"mock": {"kind": "mock"}},
            "models": {"g": {"deployments": [{"provider": "mock", "name": "a"}]}},
        }
        if auth is not None:
            raw["auth"] = auth
        config = parse(raw, {})
        state = build_state(config)
        clock = ManualClock()
        taken = Feedback(ServedLedger(WINDOW, 1000, clock), SETTINGS, state.table.health)
        stages = state.guards.before_route
        identify = next((s.caller for s in stages if isinstance(s, Authenticate)), None)
        costing = state.costing
        gaps = state.requests.chunk_gaps
        relay = Relay(state.pipeline.clock, state.redactor, costing, gaps)
        affinity = state.pipeline.dispatch.affinity
        handlers = ProxyHandlers(
            state.pipeline,
            state.table,
            relay,
            Recorder(costing, state.requests),
            config.server.max_body_bytes,
            stored=StoredResponses(
                state.table,
                affinity,
                relay,
                None,
                screen=None,
                record=state.requests.count_forwarded,
            ),
            feedback=FeedbackEndpoint(taken, identify) if enabled else None,
        )
        server = HttpServer(handlers, listener_limits(config.server), handlers.reject)
        host, port = await server.start("127.0.0.1", 0)
        servers.append(server)
        return FeedbackProxy(f"http://{host}:{port}", taken, clock)

    yield factory
    for server in servers:
        await server.shutdown(1.0)


async def sdk_post(proxy: FeedbackProxy, dialect: str, body: dict[str, Any]) -> Any:
    """POST /v1/feedback with the dialect's official SDK (which raises on an error status)."""
    if dialect == "openai":
        async with openai.AsyncOpenAI(
            base_url=proxy.url + "/v1", api_key="unused", max_retries=0
        ) as client:
            return await client.post("/feedback", body=body, cast_to=object)
    async with anthropic.AsyncAnthropic(
        base_url=proxy.url, api_key="unused", max_retries=0
    ) as claude:
        return await claude.post("/v1/feedback", body=body, cast_to=object)


# body -> status, ((type, code, param) as OpenAI renders it, Anthropic's type)
REFUSALS = [
    (
        {"request_id": "served", "score": 2},
        400,
        (("invalid_request_error", "invalid_request", "score"), "invalid_request_error"),
    ),
    (
        {"request_id": "served", "score": 0.5, "label": "two words"},
        400,
        (("invalid_request_error", "invalid_request", "label"), "invalid_request_error"),
    ),
    (
        {"request_id": "served", "score": 0.5, "comment": "great"},
        400,
        (("invalid_request_error", "invalid_request", "comment"), "invalid_request_error"),
    ),
    (
        {"request_id": "never-served", "score": 0.5},
        404,
        (("invalid_request_error", "request_not_found", "request_id"), "not_found_error"),
    ),
    (
        {"request_id": "rated", "score": 0.9},
        409,
        (("invalid_request_error", "feedback_exists", "request_id"), "invalid_request_error"),
    ),
    (
        {"request_id": "served", "score": 0.5, "label": "x" * MAX_BODY},
        413,
        (("invalid_request_error", "request_too_large", None), "request_too_large"),
    ),
]
Rendered = tuple[tuple[str, str, str | None], str]


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
@pytest.mark.parametrize(("body", "status", "rendered"), REFUSALS)
async def test_each_refusal_reaches_the_sdk_in_its_dialect(
    make_proxy: ProxyFactory, dialect: str, body: dict[str, Any], status: int, rendered: Rendered
) -> None:
    proxy = await make_proxy()
    proxy.feedback.ledger.served(answered("served"))
    proxy.feedback.ledger.served(answered("rated"))
    accepted(proxy.feedback.submit("rated", 0.1))
    error_class = openai.APIStatusError if dialect == "openai" else anthropic.APIStatusError
    with pytest.raises(error_class) as raised:
        await sdk_post(proxy, dialect, body)
    assert raised.value.status_code == status
    payload = raised.value.response.json()
    openai_error, anthropic_type = rendered
    if dialect == "openai":
        error = payload["error"]
        assert (error["type"], error["code"], error["param"]) == openai_error
    else:
        assert (payload["type"], payload["error"]["type"]) == ("error", anthropic_type)
    scores = proxy.feedback.scores("a")
    assert scores is not None and len(scores) == 1, "only the seeded score"


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_accepted_feedback_answers_200_with_what_was_taken(
    make_proxy: ProxyFactory, dialect: str
) -> None:
    proxy = await make_proxy()
    proxy.feedback.ledger.served(answered("served"))
    body = {"request_id": "served", "score": 0.75, "label": "thumbs_up"}
    assert await sdk_post(proxy, dialect, body) == {
        "object": "feedback",
        "request_id": "served",
        "score": 0.75,
        "label": "thumbs_up",
        "counted": True,
    }
    assert await sdk_post(proxy, dialect, body) == await sdk_post(proxy, dialect, body)
    scores = proxy.feedback.scores("a")
    assert scores is not None and len(scores) == 1


async def raw_post(
    url: str, data: bytes, headers: dict[str, str] | None = None, method: str = "POST"
) -> tuple[int, dict[str, str], dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url + "/v1/feedback", data=data, headers=headers) as response,
    ):
        return response.status, dict(response.headers), orjson.loads(await response.read())


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_request"),
        (b"", 400, "invalid_json"),
        (b" " * (MAX_BODY + 1), 413, "request_too_large"),
    ],
)
async def test_a_body_that_is_no_feedback_object_is_refused(
    make_proxy: ProxyFactory, data: bytes, status: int, code: str
) -> None:
    proxy = await make_proxy()
    got, _, body = await raw_post(proxy.url, data)
    assert (got, body["error"]["code"]) == (status, code)


async def test_a_compressed_body_is_decoded_within_the_limit(make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy()
    proxy.feedback.ledger.served(answered("served"))
    small = gzip.compress(orjson.dumps({"request_id": "served", "score": 1}))
    status, _, body = await raw_post(proxy.url, small, {"content-encoding": "gzip"})
    assert (status, body["counted"]) == (200, True)
    bomb = gzip.compress(orjson.dumps({"request_id": "served", "score": 1, "label": "x" * 9000}))
    assert len(bomb) < MAX_BODY
    status, _, body = await raw_post(proxy.url, bomb, {"content-encoding": "gzip"})
    assert (status, body["error"]["code"]) == (413, "request_too_large")


async def test_a_conflict_tells_the_sdks_not_to_retry(make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy()
    proxy.feedback.ledger.served(answered("rated"))
    accepted(proxy.feedback.submit("rated", 0.1))
    status, headers, _ = await raw_post(proxy.url, b'{"request_id": "rated", "score": 1}')
    assert (status, headers.get("x-should-retry")) == (409, "false")


async def test_only_post_is_allowed_and_only_when_feedback_is_enabled(
    make_proxy: ProxyFactory,
) -> None:
    enabled, disabled = await make_proxy(), await make_proxy(enabled=False)
    status, headers, body = await raw_post(enabled.url, b"", method="GET")
    assert (status, headers.get("Allow"), body["error"]["code"]) == (
        405,
        "POST",
        "method_not_allowed",
    )
    status, _, body = await raw_post(disabled.url, b'{"request_id": "r", "score": 1}')
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_with_virtual_keys_only_the_key_that_asked_may_rate_the_answer(
    make_proxy: ProxyFactory,
) -> None:
    keys = [{"id": "web", "hash": hash_key(WEB_KEY)}, {"id": "batch", "hash": hash_key(BATCH_KEY)}]
    proxy = await make_proxy(auth={"mode": "keys", "keys": keys})
    proxy.feedback.ledger.served(answered("web-answer", key_id="web"))
    body = orjson.dumps({"request_id": "web-answer", "score": 1})
    status, _, answer = await raw_post(proxy.url, body)
    assert (status, answer["error"]["code"]) == (401, "missing_api_key")
    status, _, answer = await raw_post(proxy.url, body, {"authorization": "Bearer sk-nobody"})
    assert (status, answer["error"]["code"]) == (401, "invalid_api_key")
    status, _, answer = await raw_post(proxy.url, body, {"x-api-key": BATCH_KEY})
    assert (status, answer["error"]["code"]) == (404, "request_not_found")
    status, _, answer = await raw_post(proxy.url, body, {"authorization": f"Bearer {WEB_KEY}"})
    assert (status, answer["counted"]) == (200, True)
