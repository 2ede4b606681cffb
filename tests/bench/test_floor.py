"""The floor (bench/floor.py) relays a stream as it arrives, whichever way the upstream writes
it, and the upstream's ways of writing a stream change how it is written, never what."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from bench import floor
from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.serving import serving

ASK = {"model": "bench-model", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
MAPPED = {**ASK, "model": "bench-upstream-model"}  # what the floor sends upstream


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream(seed=7)
    await upstream.start()
    yield upstream
    await upstream.close()


@pytest.fixture
async def floor_url(fake: FakeUpstream) -> AsyncIterator[str]:
    # A client that leaves cancels the floor's relay, which leaves the fake's stalled stream.
    app = floor.build(fake.url)
    async with serving(app, handler_cancellation=True, shutdown_timeout=5) as base:
        yield base + "/v1/chat/completions"


async def _post(url: str, body: object) -> bytes:
    async with (
        aiohttp.ClientSession() as client,
        client.post(url, data=orjson.dumps(body)) as response,
    ):
        assert response.status == 200
        return await response.read()


async def test_a_stream_reaches_the_client_while_the_upstream_is_still_sending(
    fake: FakeUpstream, floor_url: str
) -> None:
    """The upstream sends three events, then nothing: a floor that waited for the whole
    answer would deliver none of them."""
    fake.script("chat", Reply(chunks=6, stall_after=3, split="frames"))
    received = b""
    async with (
        aiohttp.ClientSession() as client,
        client.post(floor_url, data=orjson.dumps(ASK)) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        async with asyncio.timeout(10):
            while received.count(b"\n\n") < 3:
                received += await response.content.readany()
    assert received.startswith(b"data: ") and b"[DONE]" not in received


@pytest.mark.parametrize("split", ["whole", "events"])
async def test_each_way_of_writing_a_stream_sends_the_same_bytes(
    fake: FakeUpstream, floor_url: str, split: str
) -> None:
    streams = []
    for how in ("frames", split):
        fake.script("chat", Reply(chunks=20, split=how))
        streams.append(await _post(fake.url + "/v1/chat/completions", MAPPED))
    frames, other = streams
    assert _without_ids(frames) == _without_ids(other)
    assert frames.count(b"\n\n") == 23 and frames.endswith(b"data: [DONE]\n\n")
    fake.script("chat", Reply(chunks=20, split=split))
    assert _without_ids(await _post(floor_url, ASK)) == _without_ids(frames)


async def test_a_json_answer_is_relayed_whole(floor_url: str) -> None:
    answer = orjson.loads(await _post(floor_url, {**ASK, "stream": False}))
    assert answer["object"] == "chat.completion"
    assert answer["model"] == "bench-upstream-model"


def _without_ids(stream: bytes) -> list[object]:
    """The stream's events with the per-answer id left out (the fake numbers each answer)."""
    events = []
    for event in stream.split(b"\n\n")[:-1]:
        data = event.removeprefix(b"data: ")
        payload = orjson.loads(data) if data != b"[DONE]" else data
        if isinstance(payload, dict):
            payload.pop("id", None)
        events.append(payload)
    return events
