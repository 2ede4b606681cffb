"""The semantic layer on the request path: a paraphrase of a cached question is answered from
the cache (serve) or counted as a would-be hit next to the real answer (shadow); a negated
question, another system prompt or a group that did not opt in never is."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from edgeproxy.telemetry.latency import SEMANTIC_LOOKUP_SECONDS
from tests.conftest import StackFactory
from tests.support.requires import require_semantic
from tests.support.stack import Stack, background_done

QUESTION = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"
NEGATED_PAIR = (
    "Is it legal to drive with headphones in California?",
    "Is it illegal to drive with headphones in California?",
)
SEMANTIC = {"gpt-4o": {"cache": {"semantic": True}}}


@pytest.fixture(autouse=True)
def _semantic_extra() -> None:
    require_semantic()


def cache(mode: str) -> dict[str, Any]:
    return {"enabled": True, "semantic": {"mode": mode, "budget": "5s"}}


async def ask(stack: Stack, text: str, system: str | None = None) -> str:
    messages = [{"role": "user", "content": text}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    body = {"model": "gpt-4o", "messages": messages, "max_tokens": 50}
    async with (
        aiohttp.ClientSession() as session,
        session.post(stack.openai_url + "/chat/completions", json=body) as response,
    ):
        await response.read()
        assert response.status == 200
        status = response.headers["x-edgeproxy-cache"]
    await background_done(stack)  # the answer stored and its question indexed
    return status


def lookups_timed() -> float:
    """Semantic lookups observed by the latency histogram (of every proxy in this process)."""
    (family,) = SEMANTIC_LOOKUP_SECONDS.collect()
    return next(s.value for s in family.samples if s.name.endswith("_count"))


def counts(stack: Stack) -> dict[str, object]:
    layer = stack.proxy.state.cache
    assert layer is not None and layer.semantic is not None
    return layer.semantic.snapshot()


async def test_a_paraphrase_is_answered_from_the_cache_in_serve_mode(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache=cache("serve"), model_settings=SEMANTIC)
    assert await ask(stack, QUESTION) == "miss"
    assert await ask(stack, PARAPHRASE) == "hit-semantic"
    assert stack.fake.calls["chat"] == 1
    assert counts(stack)["hits"] == 1


@pytest.mark.parametrize(
    ("first", "second", "system"),
    [
        (*NEGATED_PAIR, None),
        (QUESTION, PARAPHRASE, "Answer as a pirate."),
    ],
    ids=["negation", "another system prompt"],
)
async def test_what_must_not_match_goes_upstream(
    make_stack: StackFactory, first: str, second: str, system: str | None
) -> None:
    stack = await make_stack(cache=cache("serve"), model_settings=SEMANTIC)
    await ask(stack, first)
    assert await ask(stack, second, system) == "miss"
    assert stack.fake.calls["chat"] == 2


async def test_shadow_mode_counts_would_be_hits_and_serves_the_real_answer(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache=cache("shadow"), model_settings=SEMANTIC)
    looked_up = lookups_timed()
    await ask(stack, QUESTION)
    assert await ask(stack, PARAPHRASE) == "miss"
    assert stack.fake.calls["chat"] == 2
    seen = counts(stack)
    assert (seen["shadow_hits"], seen["agreed"], seen["hits"]) == (1, 1, 0)
    async with (
        aiohttp.ClientSession() as session,
        session.get(stack.proxy.admin_url + "/metrics") as response,
    ):
        metrics = await response.text()
    assert 'edgeproxy_cache_semantic_total{event="agreed"} 1.0' in metrics
    assert lookups_timed() - looked_up == 2  # each question was looked up, and timed
    assert "edgeproxy_cache_semantic_lookup_seconds_count" in metrics


async def test_a_group_that_did_not_opt_in_has_no_semantic_hits(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(
        cache=cache("serve"), model_settings={"claude-sonnet": {"cache": {"semantic": True}}}
    )
    await ask(stack, QUESTION)
    assert await ask(stack, PARAPHRASE) == "miss"


async def test_an_embeddings_model_group_can_be_the_embedder(
    make_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake's vectors hash their text; here every text gets one vector, so only the
    # lexical guard tells questions apart, and the embedder is seen to be the fake's.
    monkeypatch.setattr(
        "tests.support.fake_upstream.embedding_vector", lambda item, dims: [0.5] * dims
    )
    semantic = {"mode": "serve", "budget": "5s", "embedder": "text-embedding-3-small", "dims": 8}
    stack = await make_stack(cache={"enabled": True, "semantic": semantic}, model_settings=SEMANTIC)
    assert await ask(stack, QUESTION) == "miss"
    assert await ask(stack, PARAPHRASE) == "hit-semantic"
    assert await ask(stack, NEGATED_PAIR[0]) == "miss", "the guard still refuses"
    assert stack.fake.calls["embeddings"] >= 3
    assert stack.fake.calls["chat"] == 2
    embedded = [r.json for r in stack.fake.requests if r.route == "embeddings"]
    assert embedded[0] == {"model": "text-embedding-3-small", "input": [QUESTION]}


async def test_a_failing_embedder_only_skips_the_semantic_layer(
    make_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    semantic = {"mode": "serve", "budget": "5s", "embedder": "no-such-group", "dims": 8}
    stack = await make_stack(
        cache={"enabled": True, "semantic": semantic},
        model_settings=SEMANTIC,
        catch_all=False,
    )
    assert await ask(stack, QUESTION) == "miss"
    assert await ask(stack, PARAPHRASE) == "miss"
    assert counts(stack)["embed_failed"] >= 2
    warned = [r for r in caplog.records if "the embedder failed" in r.getMessage()]
    assert [r.levelname for r in warned if r.levelname == "WARNING"] == ["WARNING"], (
        "an outage is logged once, not on every request"
    )
