"""The webhook sender posts in the background, retries a failing sink, and outlives a sink that
is down: what it cannot deliver is counted, never raised."""

from __future__ import annotations

import asyncio
import socket

from edgeproxy.background import Background
from edgeproxy.telemetry.json_post import JsonPoster
from edgeproxy.telemetry.webhook import WebhookSender
from tests.support.poll import eventually
from tests.support.webhook_sink import webhook_sink


async def no_wait(_: float) -> None:
    await asyncio.sleep(0)


def closed_port_url() -> str:
    """A URL nothing listens at (a port just taken and given back)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


async def test_payloads_are_posted_as_json_with_the_token() -> None:
    background = Background()
    async with webhook_sink() as sink:
        sender = WebhookSender(JsonPoster(sink.url, {"Authorization": "Bearer sink-token"}))
        sender.start(background)
        sender.send({"n": 1})
        sender.send({"n": 2})
        await eventually(lambda: sender.sent == 2, "both payloads posted")
        await sender.close(1.0)
    assert sink.bodies == [{"n": 1}, {"n": 2}]
    headers = sink.posts[0][0]
    assert headers["Authorization"] == "Bearer sink-token"
    assert headers["Content-Type"] == "application/json"


async def test_a_failed_post_is_retried() -> None:
    background = Background()
    async with webhook_sink(503, 500) as sink:
        sender = WebhookSender(JsonPoster(sink.url, max_retries=2, sleep=no_wait))
        sender.start(background)
        sender.send({"n": 1})
        await eventually(lambda: sender.sent == 1, "the payload delivered on its third try")
        await sender.close(1.0)
    assert (len(sink.posts), sender.failed) == (3, 0)


async def test_a_sink_that_is_down_costs_counters_and_nothing_else() -> None:
    background = Background()
    sender = WebhookSender(JsonPoster(closed_port_url(), max_retries=1, sleep=no_wait))
    sender.start(background)
    sender.send({"n": 1})
    sender.send({"n": 2})
    await eventually(lambda: sender.failed == 2, "both payloads given up")
    sender.send({"n": 3})
    await eventually(lambda: sender.failed == 3, "the sender still at work")
    await sender.close(1.0)
    assert (sender.sent, background.failed) == (0, 0)


async def test_a_full_queue_drops_its_oldest_payloads() -> None:
    background = Background()
    async with webhook_sink() as sink:
        sender = WebhookSender(JsonPoster(sink.url), max_pending=2)
        for n in range(3):
            sender.send({"n": n})
        sender.start(background)
        await eventually(lambda: sender.sent == 2, "the queue posted")
        await sender.close(1.0)
    assert sink.bodies == [{"n": 1}, {"n": 2}]
    assert sender.dropped == 1


async def test_closing_posts_what_is_queued_then_refuses_more() -> None:
    background = Background()
    async with webhook_sink() as sink:
        sender = WebhookSender(JsonPoster(sink.url))
        sender.start(background)
        sender.send({"n": 1})
        await sender.close(1.0)
        sender.send({"n": 2})
    assert sink.bodies == [{"n": 1}]
    assert sender.dropped == 1
