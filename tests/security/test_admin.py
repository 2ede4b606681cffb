"""Who may do what on the admin listener: each endpoint, without a configured token and with
one (sent not at all, wrong, right). Probes, /metrics and the status page answer anyone; with
a token set, everything else needs it; without one, nothing that changes state is done."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edgeproxy import admin
from edgeproxy.admin import build_admin_app
from edgeproxy.config import Secret
from edgeproxy.redact import MASK, Redactor
from tests.conftest import StackFactory
from tests.support.serving import serving

TOKEN = "admin-token-0123456789"
OPEN, READ, CHANGE, UNKNOWN = "open", "read", "change", "unknown"
ENDPOINTS = [
    ("GET", "/healthz", OPEN),
    ("GET", "/readyz", OPEN),
    ("GET", "/metrics", OPEN),
    ("GET", "/ui", OPEN),  # the status page holds no data: its figures come from /admin/stats
    ("GET", "/admin/stats", READ),
    ("GET", "/admin/routing", READ),
    ("GET", "/admin/cache", READ),
    ("DELETE", "/admin/cache/entries/some-key", CHANGE),
    ("DELETE", "/admin/cache/tags/faq", CHANGE),
    ("DELETE", "/admin/cache/namespaces/team-a", CHANGE),
    ("POST", "/admin/routing", CHANGE),  # no such action: refused before it is looked up
    ("GET", "/admin/no-such-page", UNKNOWN),
]
# What each kind of endpoint answers: no token configured; token set and not sent, sent wrong
# (also as another scheme), sent right.
EXPECTED = {
    OPEN: (200, 200, 200, 200),
    READ: (200, 401, 401, 200),
    CHANGE: (403, 401, 401, None),  # None: what the action itself answers
    UNKNOWN: (404, 401, 401, 404),
}
ANSWERS_WITH_THE_TOKEN = {"DELETE": 200, "POST": 405}
SENT = {
    "none": {},
    "wrong": {"authorization": "Bearer not-the-token"},
    "wrong scheme": {"authorization": f"Basic {TOKEN}"},
    "right": {"authorization": f"Bearer {TOKEN}"},
}


async def answer(url: str, method: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, headers=headers) as response:
            await response.read()
            return response.status


@pytest.mark.parametrize(("method", "path", "kind"), ENDPOINTS)
async def test_each_admin_endpoint_is_guarded_by_the_token(
    make_stack: StackFactory, method: str, path: str, kind: str
) -> None:
    open_admin = await make_stack(cache={"enabled": True})
    guarded = await make_stack(cache={"enabled": True}, admin={"token": TOKEN})
    without, missing, wrong, right = EXPECTED[kind]
    right = right or ANSWERS_WITH_THE_TOKEN[method]
    got = [
        await answer(open_admin.proxy.admin_url + path, method, SENT["right"]),
        await answer(guarded.proxy.admin_url + path, method, SENT["none"]),
        await answer(guarded.proxy.admin_url + path, method, SENT["wrong"]),
        await answer(guarded.proxy.admin_url + path, method, SENT["wrong scheme"]),
        await answer(guarded.proxy.admin_url + path, method, SENT["right"]),
    ]
    assert got == [without, missing, wrong, wrong, right]


def admin_app(token: str | None, routing: dict[str, Any], metrics: bytes) -> web.Application:
    return build_admin_app(
        lambda: True,
        lambda: routing,
        Secret(token) if token else None,
        redact=Redactor([TOKEN, "sk-provider-key-0123"]),
        metrics=lambda: metrics,
    )


async def test_every_admin_answer_goes_through_the_scrubber() -> None:
    leaky = {"deployments": [{"name": "sk-provider-key-0123"}]}
    app = admin_app(None, leaky, b'edgeproxy_x{deployment="sk-provider-key-0123"} 1\n')
    async with serving(app) as url, aiohttp.ClientSession() as session:
        async with session.get(url + "/admin/routing") as response:
            assert (await response.json())["deployments"][0]["name"] == MASK
        async with session.get(url + "/metrics") as response:
            assert await response.text() == f'edgeproxy_x{{deployment="{MASK}"}} 1\n'


async def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real: Callable[[bytes, bytes], bool] = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(admin.hmac, "compare_digest", spy)
    async with serving(admin_app(TOKEN, {}, b"")) as url:
        assert await answer(url + "/admin/routing", "GET", SENT["right"]) == 200
        assert await answer(url + "/admin/routing", "GET", {"authorization": "Bearer x"}) == 401
    assert len(compared) == 2
    assert all(len(a) == len(b) == 32 for a, b in compared), "digests: equal lengths"
