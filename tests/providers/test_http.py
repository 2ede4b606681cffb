"""Forwarding over HTTP: egress through a proxy, content codings, and what a provider is sent."""

from __future__ import annotations

import gzip

import pytest
from multidict import CIMultiDict

from edgeproxy.config import parse
from edgeproxy.config_reader import ConfigError
from edgeproxy.errors import ProxyError
from edgeproxy.providers.base import forwarded_headers
from edgeproxy.providers.http import decoded_answer
from tests.conftest import StackFactory
from tests.support.connect_proxy import ConnectProxy
from tests.test_handlers import CHAT, post


async def test_a_provider_with_a_proxy_reaches_its_upstream_through_it(
    make_stack: StackFactory,
) -> None:
    proxy = await ConnectProxy().start()
    try:
        stack = await make_stack(
            provider_settings={"openai-up": {"proxy": proxy.url("user:s3cret-proxy-pass")}}
        )
        status, _, _ = await post(stack, "/v1/chat/completions", CHAT)
    finally:
        await proxy.stop()
    assert status == 200
    (line, headers), *_ = proxy.asked
    assert line.startswith(f"POST {stack.fake.url}/v1/chat/completions ")
    assert headers["proxy-authorization"].startswith("Basic ")
    assert "s3cret-proxy-pass" in stack.proxy.config.secrets()


def provider(settings: dict[str, object], env: dict[str, str]) -> object:
    raw = {
        "providers": {"up": {"kind": "openai", "base_url": "https://llm.example", **settings}},
        "models": {"m": {"deployments": [{"provider": "up"}]}},
    }
    return parse(raw, env).providers["up"].proxy


@pytest.mark.parametrize(
    ("settings", "env", "expected"),
    [
        ({}, {}, None),
        ({}, {"HTTPS_PROXY": "http://egress:3128"}, "http://egress:3128"),
        ({}, {"HTTPS_PROXY": "http://egress:3128", "NO_PROXY": ".example"}, None),
        ({"proxy": "http://mine:8080"}, {"HTTPS_PROXY": "http://egress:3128"}, "http://mine:8080"),
        ({"proxy": "none"}, {"HTTPS_PROXY": "http://egress:3128"}, None),
    ],
)
def test_the_egress_proxy_comes_from_the_config_else_the_environment(
    settings: dict[str, object], env: dict[str, str], expected: str | None
) -> None:
    assert provider(settings, env) == expected


def test_an_unusable_proxy_is_refused_at_load_naming_the_field() -> None:
    with pytest.raises(ConfigError) as raised:
        provider({"proxy": "socks5://egress:1080"}, {})
    assert any(p.startswith("providers.up.proxy:") for p in raised.value.problems)


def test_a_missing_ca_file_is_refused_at_load() -> None:
    with pytest.raises(ConfigError) as raised:
        provider({"ca_file": "/nonexistent/ca.pem"}, {})
    assert any(p.startswith("providers.up.ca_file:") for p in raised.value.problems)


@pytest.mark.parametrize(
    ("accepted", "sent"),
    [
        ("gzip, deflate, br", "gzip"),
        ("br;q=1.0, gzip;q=0.5", "gzip"),
        ("gzip;q=0", None),
        ("br", None),
        ("identity", None),
        (None, None),
    ],
)
def test_only_gzip_is_asked_of_a_provider_and_only_when_the_client_takes_it(
    accepted: str | None, sent: str | None
) -> None:
    client = {} if accepted is None else {"accept-encoding": accepted}
    assert forwarded_headers(client, {}).get("accept-encoding") == sent


def test_a_whole_answer_is_decoded_for_reading_and_a_broken_one_is_a_502() -> None:
    body = b'{"ok": true}'
    assert (
        decoded_answer(gzip.compress(body), CIMultiDict({"content-encoding": "gzip"}), "p") == body
    )
    assert decoded_answer(body, CIMultiDict(), "p") == body
    with pytest.raises(ProxyError) as raised:
        decoded_answer(b"not gzip", CIMultiDict({"content-encoding": "gzip"}), "p")
    assert raised.value.status == 502
