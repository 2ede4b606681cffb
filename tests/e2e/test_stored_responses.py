"""The Responses API's calls on a stored answer through the proxy, with the official openai SDK:
retrieve (whole and streamed), delete, cancel and input items reach the provider that holds the
answer, with the proxy's credential; with virtual keys only the key the answer was given to
reaches it; errors come back as OpenAI's, masked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from edgeproxy.security.auth import hash_key
from tests.conftest import StackFactory
from tests.support.fake_upstream import Fail, FakeUpstream, Reply
from tests.support.stack import CLIENT_KEY, OPENAI_KEY, Stack

WEST_KEY = "sk-upstream-west-0123456789abcdef"
ANN_KEY, BOB_KEY = "sk-ann-0123456789", "sk-bob-0123456789"
KEYS = {
    "auth": {
        "mode": "keys",
        "keys": [
            {"id": "ann", "hash": hash_key(ANN_KEY)},
            {"id": "bob", "hash": hash_key(BOB_KEY)},
        ],
    }
}


def client(stack: Stack, key: str = CLIENT_KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.openai_url, api_key=key, max_retries=0)


def stored_calls(fake: FakeUpstream) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in fake.requests if r.route.startswith("responses.")]


@pytest.fixture
async def west() -> AsyncIterator[FakeUpstream]:
    """A second OpenAI account, with its own stored answers."""
    fake = FakeUpstream(seed=1)
    await fake.start()
    yield fake
    await fake.close()


def two_accounts(west: FakeUpstream) -> dict[str, Any]:
    """Group `east` on the stack's fake, group `west` on the other one."""
    return {
        "more_providers": {
            "openai-west": {"kind": "openai", "base_url": west.url + "/v1", "api_key": WEST_KEY}
        },
        "sections": {
            "models": {
                "east": {"deployments": [{"provider": "openai-up", "model": "gpt-4o"}]},
                "west": {"deployments": [{"provider": "openai-west", "model": "gpt-4o"}]},
            }
        },
        "catch_all": False,
    }


async def test_a_stored_answer_is_retrieved_with_the_proxys_credential(stack: Stack) -> None:
    async with client(stack) as sdk:
        created = await sdk.responses.create(model="gpt-4o", input="Remember me")
        raw = await sdk.responses.with_raw_response.retrieve(created.id)
    retrieved = raw.parse()
    assert retrieved.id == created.id
    assert retrieved.output_text == created.output_text
    assert stored_calls(stack.fake) == [("GET", f"/v1/responses/{created.id}")]
    sent = stack.fake.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert CLIENT_KEY not in str(sent.headers)
    assert raw.headers["x-edgeproxy-provider"] == "openai-up"
    assert raw.headers["x-edgeproxy-cost-usd"] == "0.00000000"  # a look costs no tokens


async def test_a_retrieved_stream_replays_the_events_after_the_one_named(stack: Stack) -> None:
    stack.fake.default["responses"] = Reply(text="One two three four.", chunks=4)
    async with client(stack) as sdk:
        created = await sdk.responses.create(model="gpt-4o", input="Count", background=True)
        assert created.status == "queued"
        replay = await sdk.responses.retrieve(created.id, stream=True, starting_after=2)
        events = [event async for event in replay]
    assert [e.sequence_number for e in events] == list(range(3, 3 + len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "One two three four."  # the first delta is event 3
    assert events[-1].type == "response.completed"
    assert events[-1].response.status == "completed"
    assert sorted(stack.fake.requests[-1].query.split("&")) == ["starting_after=2", "stream=true"]


async def test_a_replay_cut_short_ends_with_the_responses_error_event(stack: Stack) -> None:
    async with client(stack) as sdk:
        created = await sdk.responses.create(model="gpt-4o", input="Count")
        stack.fake.script("responses.retrieve", Reply(drop_after=3, split="frames"))
        raw = await sdk.responses.with_raw_response.retrieve(created.id, stream=True)
        body = (await raw.http_response.aread()).decode()
    assert body.count("event: response.") == 3
    assert body.endswith("\n\n") and "event: error\n" in body.rsplit("event: response.", 1)[1]


async def test_input_items_are_listed_with_the_clients_query(stack: Stack) -> None:
    async with client(stack) as sdk:
        created = await sdk.responses.create(
            model="gpt-4o",
            input=[
                {"role": "user", "content": [{"type": "input_text", "text": "First"}]},
                {"role": "user", "content": [{"type": "input_text", "text": "Second"}]},
            ],
        )
        page = await sdk.responses.input_items.list(created.id, order="asc", limit=1)
    assert [item.content[0].text for item in page.data] == ["First"]  # type: ignore[union-attr]
    assert page.has_more is True
    assert "order=asc" in stack.fake.requests[-1].query


async def test_a_deleted_answer_is_gone_and_forgotten(stack: Stack) -> None:
    async with client(stack) as sdk:
        created = await sdk.responses.create(model="gpt-4o", input="Forget me")
        await sdk.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError) as missing:
            await sdk.responses.retrieve(created.id)
    assert missing.value.body == {
        "message": f"Response with id '{created.id}' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert stack.proxy.state.pipeline.dispatch.affinity.holder(created.id) is None


async def test_a_background_answer_is_cancelled_and_a_plain_one_refused(stack: Stack) -> None:
    async with client(stack) as sdk:
        background = await sdk.responses.create(model="gpt-4o", input="Slow", background=True)
        cancelled = await sdk.responses.cancel(background.id)
        plain = await sdk.responses.create(model="gpt-4o", input="Quick")
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.responses.cancel(plain.id)
    assert cancelled.status == "cancelled"
    assert "background=true" in refused.value.message
    assert stored_calls(stack.fake)[-1] == ("POST", f"/v1/responses/{plain.id}/cancel")


async def test_each_answer_is_asked_of_the_account_that_holds_it(
    west: FakeUpstream, make_stack: StackFactory
) -> None:
    stack = await make_stack(**two_accounts(west))
    async with client(stack) as sdk:
        east_answer = await sdk.responses.create(model="east", input="Hi")
        west_answer = await sdk.responses.create(model="west", input="Hi")
        for _ in range(2):
            assert (await sdk.responses.retrieve(west_answer.id)).id == west_answer.id
            assert (await sdk.responses.retrieve(east_answer.id)).id == east_answer.id
    assert stored_calls(stack.fake) == [("GET", f"/v1/responses/{east_answer.id}")] * 2
    assert stored_calls(west) == [("GET", f"/v1/responses/{west_answer.id}")] * 2
    assert west.requests[-1].headers["authorization"] == f"Bearer {WEST_KEY}"


async def test_without_keys_an_unknown_answer_is_asked_of_each_account_in_turn(
    west: FakeUpstream, make_stack: StackFactory
) -> None:
    """Given through another worker or pod, the answer is found where it is; nowhere, the
    client gets the last account's own 404."""
    stack = await make_stack(**two_accounts(west))
    async with client(stack) as sdk:
        # Made straight at the west account, as another worker of this proxy would have.
        async with openai.AsyncOpenAI(base_url=west.url + "/v1", api_key=WEST_KEY) as direct:
            elsewhere = await direct.responses.create(model="gpt-4o", input="Hi")
        found = await sdk.responses.retrieve(elsewhere.id)
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve("resp_nowhere")
    assert found.id == elsewhere.id
    assert stored_calls(stack.fake) == [
        ("GET", f"/v1/responses/{elsewhere.id}"),
        ("GET", "/v1/responses/resp_nowhere"),
    ]
    assert stored_calls(west)[-2:] == [
        ("GET", f"/v1/responses/{elsewhere.id}"),
        ("GET", "/v1/responses/resp_nowhere"),
    ]


async def test_with_keys_an_answer_is_only_its_own_keys(make_stack: StackFactory) -> None:
    """Another key's answer, or one the proxy cannot vouch for, does not exist for the caller:
    not to read, delete or continue. The provider is never asked."""
    stack = await make_stack(sections=KEYS)
    async with client(stack, ANN_KEY) as ann, client(stack, BOB_KEY) as bob:
        created = await ann.responses.create(model="gpt-4o", input="Mine")
        asked = len(stack.fake.requests)
        with pytest.raises(openai.NotFoundError):
            await bob.responses.retrieve(created.id)
        with pytest.raises(openai.NotFoundError):
            await bob.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            await ann.responses.retrieve("resp_given_elsewhere")
        with pytest.raises(openai.BadRequestError) as refused:
            await bob.responses.create(
                model="gpt-4o", input="Go on", previous_response_id=created.id
            )
        assert len(stack.fake.requests) == asked
        assert refused.value.code == "previous_response_not_found"
        assert (await ann.responses.retrieve(created.id)).id == created.id
        follow_up = await ann.responses.create(
            model="gpt-4o", input="Go on", previous_response_id=created.id
        )
    assert follow_up.output_text


async def test_with_keys_a_call_without_one_is_refused(make_stack: StackFactory) -> None:
    stack = await make_stack(sections=KEYS)
    async with (
        aiohttp.ClientSession() as http,
        http.get(stack.openai_url + "/responses/resp_abc") as answer,
    ):
        assert answer.status == 401
        assert (await answer.json())["error"]["type"] == "authentication_error"


async def test_an_upstream_error_quoting_the_credential_is_masked(stack: Stack) -> None:
    async with client(stack) as sdk:
        created = await sdk.responses.create(model="gpt-4o", input="Hi")
        stack.fake.script(
            "responses.retrieve", Fail(500, message=f"Backend refused key {OPENAI_KEY}")
        )
        with pytest.raises(openai.InternalServerError) as failed:
            await sdk.responses.retrieve(created.id)
    assert OPENAI_KEY not in str(failed.value.body)
    assert OPENAI_KEY not in failed.value.response.text


async def test_a_retrieved_answer_is_screened_by_the_output_rules(make_stack: StackFactory) -> None:
    screening = {"policies": {"out": {"output": {"mode": "redact"}}}, "default_policy": "out"}
    stack = await make_stack(sections={"guardrails": screening})
    stack.fake.default["responses"] = Reply(text="Her mail is bob@example.net, ok?")
    async with client(stack) as sdk:
        created = await sdk.responses.create(model="gpt-4o", input="Who?")
        retrieved = await sdk.responses.retrieve(created.id)
        replay = await sdk.responses.retrieve(created.id, stream=True)
        events = [event async for event in replay]
    assert created.output_text == retrieved.output_text == "Her mail is [REDACTED_EMAIL], ok?"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Her mail is [REDACTED_EMAIL], ok?"
    assert "bob@example.net" not in repr(events)


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("PUT", "/v1/responses/resp_abc", 405, "GET, DELETE"),
        ("GET", "/v1/responses/resp_abc/cancel", 405, "POST"),
        ("POST", "/v1/responses/compact", 404, None),
        ("GET", "/v1/responses/resp_abc/other", 404, None),
        ("GET", "/v1/responses/resp_a%2F..", 404, None),
        ("GET", "/v1/responses/" + "resp_" + "a" * 300, 404, None),
    ],
)
async def test_other_calls_under_responses_are_refused_in_openais_dialect(
    stack: Stack, method: str, path: str, status: int, allow: str | None
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, stack.proxy.url + path) as answer,
    ):
        assert answer.status == status
        assert (await answer.json())["error"]["type"] == "invalid_request_error"
        assert answer.headers.get("allow") == allow
    assert stored_calls(stack.fake) == []


async def test_the_mock_keeps_its_answers_as_openai_does(stack: Stack) -> None:
    async with client(stack) as sdk:
        created = await sdk.responses.create(model="edgeproxy-mock", input="Hello mock")
        streamed = await sdk.responses.create(model="edgeproxy-mock", input="Again", stream=True)
        streamed_id = [event async for event in streamed][-1].response.id
        assert (await sdk.responses.retrieve(created.id)).output_text == created.output_text
        assert (await sdk.responses.retrieve(streamed_id)).id == streamed_id
        items = await sdk.responses.input_items.list(created.id)
        with pytest.raises(openai.BadRequestError):
            await sdk.responses.cancel(created.id)
        await sdk.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(created.id)
        unstored = await sdk.responses.create(model="edgeproxy-mock", input="x", store=False)
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(unstored.id)
    assert [item.type for item in items.data] == ["message"]


@pytest.mark.parametrize(
    ("ann", "refused"),
    [
        ({"budget": {"daily_usd": 100}}, True),
        ({"limits": {"tpm": 100_000}}, True),
        ({"limits": {"rpm": 100}}, False),  # counts requests: no usage awaited
    ],
)
async def test_a_key_metered_by_usage_cannot_run_a_response_in_the_background(
    make_stack: StackFactory, ann: dict[str, Any], refused: bool
) -> None:
    """Its usage would come only with a later retrieval, which charges nothing: its budget or
    token limit would never see it. A key whose limits count only requests may."""
    keys = {"auth": {"mode": "keys", "keys": [{"id": "ann", "hash": hash_key(ANN_KEY), **ann}]}}
    stack = await make_stack(sections=keys)
    async with client(stack, ANN_KEY) as sdk:
        if refused:
            with pytest.raises(openai.BadRequestError) as refusal:
                await sdk.responses.create(model="gpt-4o", input="Slow", background=True)
            assert refusal.value.param == "background"
        else:
            assert (await sdk.responses.create(model="gpt-4o", input="Slow", background=True)).id
        assert (await sdk.responses.create(model="gpt-4o", input="Now")).status == "completed"
    assert stack.fake.calls["responses"] == (1 if refused else 2)


async def test_the_admin_listener_says_who_holds_an_answer(stack: Stack) -> None:
    """What the pod's other workers ask (edgeproxy/pod_affinity.py)."""
    async with client(stack) as sdk:
        created = await sdk.responses.create(model="gpt-4o", input="Hi")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stack.proxy.admin_url}/admin/affinity/{created.id}") as known:
            assert known.status == 200
            assert await known.json() == {"deployment": "openai-up/gpt-4o-2024-08-06", "key": None}
        async with http.get(f"{stack.proxy.admin_url}/admin/affinity/resp_other") as unknown:
            assert unknown.status == 404
