"""Nothing a client sends changes where a request goes.

A canary listener counts every connection it is offered; the proxy has a provider of each kind
(OpenAI, Azure, Anthropic, Gemini, Bedrock), all pointing at one fake upstream that notes every
request target it is sent. Through every client route, requests try to steer the proxy
elsewhere: the body fields other gateways honoured (LiteLLM's client-set `api_base`,
CVE-2024-6587 and its reopening), headers (Portkey's `x-portkey-custom-host`, CVE-2025-66405),
unknown paths such as Portkey's `/v1/proxy/*`, absolute-form request targets and Host headers,
model names that would add a segment, a query, a fragment or a host to an upstream URL (a
pattern group forwards the name it was asked for), and image URLs. Afterwards the canary has
seen no connection, and the fake upstream only requests to the paths its providers use.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest

from edgeproxy.app import ProxyServer
from edgeproxy.config import parse
from edgeproxy.providers.base import REWRITING
from tests.conftest import _settled
from tests.security.support import SecurityUpstream
from tests.support.fake_upstream import Fail
from tests.support.poll import eventually
from tests.support.stack import (
    ANTHROPIC_KEY,
    AWS_KEYS,
    BEDROCK_CLAUDE,
    CLIENT_KEY,
    GEMINI_KEY,
    OPENAI_KEY,
    ProxyFront,
)
from tests.wire.server.raw_client import read_response

KINDS = ("openai", "azure", "anthropic", "gemini", "bedrock")
# Each kind's exact model group (its upstream model fixed by the config).
EXACT_MODELS = ("gpt-4o", "azure-gpt", "claude", "gemini", "bedrock")
MESSAGES = [{"role": "user", "content": "Say hello"}]
# Every client route, with a body it accepts (`model` filled in per request).
ROUTES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"messages": MESSAGES},
    "/v1/completions": {"prompt": "Say hello"},
    "/v1/embeddings": {"input": "Say hello"},
    "/v1/messages": {"messages": MESSAGES, "max_tokens": 16},
    "/v1/messages/count_tokens": {"messages": MESSAGES},
}
STREAMING = ("/v1/chat/completions", "/v1/completions", "/v1/messages")
# The request targets the configured providers use, and nothing else: a model or deployment
# name as exactly one path segment, the only query the one Azure and Gemini streams carry.
CONFIGURED_TARGETS = re.compile(
    r"/v1/(chat/completions|completions|embeddings|messages|messages/count_tokens)"
    r"|/openai/deployments/[^/?#]+/(chat/completions|completions|embeddings)"
    r"\?api-version=2024-10-21"
    r"|/v1beta/models/[^/?#]+:(generateContent|streamGenerateContent\?alt=sse|embedContent"
    r"|batchEmbedContents)"
    r"|/model/[^/?#]+/(converse|converse-stream|invoke)"
)


class Canary:
    """A listener nobody should reach: it counts the connections it accepts and closes them."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None
        self.address = ""

    async def start(self) -> Canary:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        return self

    async def _accept(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def fill(self, value: Any) -> Any:
        """`value` with every `{canary}` replaced by this listener's host:port, at any depth."""
        text = orjson.dumps(value).decode().replace("{canary}", self.address)
        return orjson.loads(text)


def strays(fake: SecurityUpstream) -> list[str]:
    """Targets no configured provider uses: another path, a dot segment, another method."""
    return [
        f"{method} {target}"
        for method, target in fake.targets
        if method != "POST"
        or not CONFIGURED_TARGETS.fullmatch(target)
        or any(segment in (".", "..") for segment in re.split(r"[/:?]", target))
    ]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Target:
    """A proxy with a provider of each kind in front of the recording upstream."""

    proxy: ProxyServer
    fake: SecurityUpstream
    canary: Canary

    async def post(
        self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Answer:
        sent = {"authorization": f"Bearer {CLIENT_KEY}", **(headers or {})}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                self.proxy.url + path, json=body, headers=sent, allow_redirects=False
            ) as response,
        ):
            return Answer(response.status, dict(response.headers), await response.read())

    async def get(self, path: str, headers: dict[str, str]) -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.proxy.url + path, headers=headers) as response,
        ):
            await response.read()
            return response.status

    async def raw(self, head: str, body: bytes = b"") -> bytes:
        """The status line answering `head` (its fields, without the blank line) and `body`,
        written as they are."""
        reader, writer = await asyncio.open_connection(*self.proxy.data_address)
        try:
            length = f"content-length: {len(body)}\r\n" if body else ""
            writer.write(f"{head}{length}connection: close\r\n\r\n".encode("latin-1") + body)
            return await reader.readline()
        finally:
            writer.close()

    async def every_route(
        self, models: tuple[str, ...], extra: dict[str, Any], headers: dict[str, str]
    ) -> list[int]:
        """Every route (streaming ones both ways) for each of `models`; the statuses."""
        statuses = []
        for model in models:
            for path, fields in ROUTES.items():
                body = {**fields, **extra, "model": model}
                statuses.append((await self.post(path, body, headers)).status)
                if path in STREAMING:
                    streamed = await self.post(path, {**body, "stream": True}, headers)
                    statuses.append(streamed.status)
        return statuses

    def went_nowhere_else(self) -> None:
        assert self.canary.connections == 0, "the canary was reached"
        assert strays(self.fake) == [], "the upstream was sent a target no provider uses"


def proxy_config(upstream: str, catch_all: str) -> dict[str, Any]:
    """One provider of each kind at `upstream`, an exact group for each, and `*` forwarding any
    other name as it was asked for to the provider of kind `catch_all`."""
    timeouts = {"connect": "2s", "first_byte": "10s", "idle": "10s", "total": "30s"}
    aws = {
        "region": AWS_KEYS.region,
        "access_key_id": AWS_KEYS.access_key,
        "secret_access_key": AWS_KEYS.secret_key,
    }
    providers = {
        "openai": {"kind": "openai", "base_url": upstream + "/v1", "api_key": OPENAI_KEY},
        "azure": {"kind": "azure", "base_url": upstream, "api_key": OPENAI_KEY},
        "anthropic": {"kind": "anthropic", "base_url": upstream, "api_key": ANTHROPIC_KEY},
        "gemini": {"kind": "gemini", "base_url": upstream + "/v1beta", "api_key": GEMINI_KEY},
        "bedrock": {"kind": "bedrock", "base_url": upstream, "aws": aws},
    }
    upstream_models = ("gpt-4o-2024-08-06", "gpt-4o-prod", "claude-sonnet-4-5")
    upstream_models += ("gemini-2.5-flash", BEDROCK_CLAUDE)
    models = {
        name: {"deployments": [{"provider": kind, "model": model}]}
        for name, kind, model in zip(EXACT_MODELS, KINDS, upstream_models, strict=True)
    }
    models["*"] = {"deployments": [{"provider": catch_all}]}
    return {
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace": "5s"},
        "admin": {"enabled": False},
        "routing": {"retry": {"max_attempts": 1}},
        "cache": {"enabled": False},
        "providers": {
            name: {**settings, "timeouts": timeouts} for name, settings in providers.items()
        },
        "models": models,
    }


TargetFactory = Callable[[str], Awaitable[Target]]


@pytest.fixture
async def make_target() -> AsyncIterator[TargetFactory]:
    """`await make_target(catch_all_kind)`; stopped after the test, once nothing is in use."""
    started: list[Target] = []

    async def factory(catch_all: str) -> Target:
        canary = await Canary().start()
        fake = SecurityUpstream()
        fake.gemini.api_key = GEMINI_KEY
        fake.bedrock.credentials = AWS_KEYS
        await fake.start()
        proxy = ProxyServer(parse(proxy_config(fake.url, catch_all), {}))
        await proxy.start()
        started.append(Target(proxy, fake, canary))
        return started[-1]

    yield factory
    for target in started:
        await _settled(ProxyFront(target.proxy))
        await target.proxy.stop()
        await target.fake.close()
        await target.canary.stop()
        assert target.canary.connections == 0, "the canary was reached"


# Model names that would steer an upstream URL if they reached it unescaped: a host, a
# userinfo or fragment trick, a query, dot segments (plain, percent-encoded, as Tomcat reads
# `..;`, as NFKC folds full-width dots), backslashes, a header injection.
STEERING_MODELS = [
    "http://{canary}/x",
    "https://{canary}",
    "//{canary}/x",
    "@{canary}",
    "openai/http://{canary}/v1",
    "gpt-4o#@{canary}",
    "gpt-4o?x=1",
    "gpt-4o?api-version=1#",
    "../../x",
    "..",
    ".",
    "models/..",
    "gpt-4o/../../../v1/chat/completions",
    "%2e%2e/",
    "%2e%2e",
    "..%2f..%2fx",
    "..;",
    "\uff0e\uff0e",
    "gpt-4o\\..\\x",
    "x\r\nHost: {canary}",
]


@pytest.mark.parametrize("model", STEERING_MODELS)
@pytest.mark.parametrize("kind", KINDS)
async def test_a_model_name_forwarded_as_asked_stays_one_path_segment(
    make_target: TargetFactory, kind: str, model: str
) -> None:
    target = await make_target(kind)
    statuses = await target.every_route((target.canary.fill(model),), {}, {})
    assert all(status < 500 for status in statuses), statuses
    target.went_nowhere_else()


# Body fields that gateways have read as the upstream to call.
STEERING_FIELDS = [
    {"api_base": "http://{canary}/v1"},
    {"base_url": "http://{canary}/v1"},
    {"api_base_url": "http://{canary}/v1"},
    {"azure_endpoint": "http://{canary}"},
    {"custom_llm_provider": "openai", "api_base": "http://{canary}/v1"},
    {"url": "http://{canary}/v1/chat/completions"},
    {"endpoint": "http://{canary}/v1"},
    {"extra_headers": {"host": "{canary}", "x-portkey-custom-host": "http://{canary}"}},
    {"extra_body": {"api_base": "http://{canary}/v1", "base_url": "http://{canary}"}},
    {"deployment_id": "../../{canary}", "api_version": "1#@{canary}"},
    {"metadata": {"api_base": "http://{canary}/v1"}},
    {"api_key": "sk-other", "organization": "http://{canary}"},
]


@pytest.mark.parametrize("fields", STEERING_FIELDS, ids="+".join)
async def test_no_body_field_names_the_upstream(
    make_target: TargetFactory, fields: dict[str, Any]
) -> None:
    target = await make_target("openai")
    models = (*EXACT_MODELS, "any-other-model")
    statuses = await target.every_route(models, target.canary.fill(fields), {})
    assert all(status < 500 for status in statuses), statuses
    target.went_nowhere_else()


# Headers that gateways, reverse proxies and frameworks read as where a request goes.
STEERING_HEADERS = [
    ("x-portkey-custom-host", "http://{canary}"),
    ("x-portkey-provider", "openai"),
    ("x-edgeproxy-base-url", "http://{canary}/v1"),
    ("x-forwarded-host", "{canary}"),
    ("x-forwarded-proto", "http"),
    ("x-forwarded-prefix", "/x/../.."),
    ("forwarded", "host={canary};proto=http"),
    ("x-original-url", "http://{canary}/v1/chat/completions"),
    ("x-rewrite-url", "/x/../../admin"),
    ("x-http-method-override", "GET"),
    ("host", "{canary}"),
    ("api-base", "http://{canary}/v1"),
    ("x-api-base", "http://{canary}/v1"),
    ("azure-endpoint", "http://{canary}"),
    ("x-edgeproxy-strategy", "http://{canary}"),
]


@pytest.mark.parametrize(("name", "value"), STEERING_HEADERS, ids=[h for h, _ in STEERING_HEADERS])
async def test_no_header_names_the_upstream(
    make_target: TargetFactory, name: str, value: str
) -> None:
    target = await make_target("openai")
    headers = {name: target.canary.fill(value)}
    models = (*EXACT_MODELS, "any-other-model")
    statuses = await target.every_route(models, {}, headers)
    statuses.append(await target.get("/v1/models", headers))
    assert all(status < 500 for status in statuses), statuses
    target.went_nowhere_else()


async def test_headers_that_rewrite_a_request_behind_the_upstream_are_not_forwarded(
    make_target: TargetFactory,
) -> None:
    target = await make_target("openai")
    headers = {name: target.canary.fill("http://{canary}/x") for name in REWRITING}
    headers["x-kept"] = "yes"  # client headers go upstream on same-dialect routes
    await target.post(
        "/v1/chat/completions", {**ROUTES["/v1/chat/completions"], "model": "gpt-4o"}, headers
    )
    await target.post("/v1/messages", {**ROUTES["/v1/messages"], "model": "claude"}, headers)
    assert len(target.fake.requests) == 2
    for request in target.fake.requests:
        assert request.headers["x-kept"] == "yes"
        assert not REWRITING & {name.lower() for name in request.headers}


# Request heads as a client could write them: absolute-form targets, CONNECT, a Host naming
# the canary, and paths that other gateways proxy anywhere (Portkey's /v1/proxy/*).
RAW_HEADS = [
    "POST http://{canary}/v1/chat/completions HTTP/1.1\r\nhost: {canary}\r\n",
    "POST http://{canary}/v1/messages HTTP/1.1\r\nhost: {canary}\r\n",
    "POST https://{canary}/v1/chat/completions HTTP/1.1\r\nhost: {canary}\r\n",
    "GET http://{canary}/ HTTP/1.1\r\nhost: {canary}\r\n",
    "CONNECT {canary} HTTP/1.1\r\nhost: {canary}\r\n",
    "POST /v1/chat/completions HTTP/1.1\r\nhost: {canary}\r\n",
    "POST //{canary}/v1/chat/completions HTTP/1.1\r\nhost: localhost\r\n",
    "POST /v1/proxy/http://{canary}/v1/chat/completions HTTP/1.1\r\nhost: localhost\r\n",
    "POST /v1/proxy/{canary}/v1/chat/completions HTTP/1.1\r\nhost: localhost\r\n",
    "GET /v1/proxy/http://{canary}/ HTTP/1.1\r\nhost: localhost\r\n",
    "POST /proxy/http%3A%2F%2F{canary}%2Fv1 HTTP/1.1\r\nhost: localhost\r\n",
    "POST /v1/chat/completions/../../../http://{canary}/ HTTP/1.1\r\nhost: localhost\r\n",
    "POST /v1/chat/completions?api_base=http://{canary}/v1 HTTP/1.1\r\nhost: localhost\r\n",
    "GET /v1/models HTTP/1.1\r\nhost: {canary}\r\n",
]


@pytest.mark.parametrize("head", RAW_HEADS, ids=lambda h: h.partition("\r")[0])
async def test_no_request_target_or_host_reaches_another_server(
    make_target: TargetFactory, head: str
) -> None:
    target = await make_target("openai")
    body = b""
    if head.startswith("POST"):
        body = orjson.dumps({"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 16})
        head += "content-type: application/json\r\n"
    status_line = await target.raw(target.canary.fill(head), body)
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    assert not status_line.startswith(b"HTTP/1.1 5") or b" 501 " in status_line, status_line
    target.went_nowhere_else()


async def test_absolute_form_targets_are_answered_as_their_path_by_the_configured_upstream(
    make_target: TargetFactory,
) -> None:
    target = await make_target("openai")
    body = orjson.dumps({"model": "gpt-4o", "messages": MESSAGES})
    head = target.canary.fill(
        "POST http://{canary}/v1/chat/completions HTTP/1.1\r\nhost: {canary}\r\n"
    )
    reader, writer = await asyncio.open_connection(*target.proxy.data_address)
    try:
        writer.write(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)
        response = await read_response(reader)
    finally:
        writer.close()
    assert response.status == 200
    assert target.fake.targets == [("POST", "/v1/chat/completions")]
    target.went_nowhere_else()


# Image parts that point at the canary: relayed as URLs for the provider to fetch, or refused
# where the provider cannot fetch one; never fetched by the proxy.
IMAGE_PARTS = {
    "/v1/chat/completions": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "http://{canary}/cat.png"}},
        {"type": "image_url", "image_url": {"url": "https://{canary}/cat.png"}},
    ],
    "/v1/messages": [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "url", "url": "http://{canary}/cat.png"}},
        {"type": "image", "source": {"type": "url", "url": "https://{canary}/cat.png"}},
    ],
}


@pytest.mark.parametrize("path", IMAGE_PARTS)
@pytest.mark.parametrize("model", EXACT_MODELS)
async def test_image_urls_are_never_fetched_by_the_proxy(
    make_target: TargetFactory, path: str, model: str
) -> None:
    target = await make_target("openai")
    content = target.canary.fill(IMAGE_PARTS[path])
    body = {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": content}]}
    for stream in (False, True):
        answer = await target.post(path, {**body, "stream": stream})
        assert answer.status < 500, answer
    target.went_nowhere_else()


async def test_the_canary_notices_a_connection(make_target: TargetFactory) -> None:
    """The harness itself: a connection to the canary is counted (and the test would fail)."""
    target = await make_target("openai")
    _, writer = await asyncio.open_connection(*target.canary.address.split(":"))
    writer.close()
    await eventually(lambda: target.canary.connections == 1, "the canary to count it")
    target.canary.connections = 0


# A provider answering with a redirect, on each kind of route (same dialect, translated,
# streamed, every provider kind): the client gets a 502 in its own dialect, never the
# Location, and the proxy never follows it.
REDIRECTED = [
    ("/v1/chat/completions", "gpt-4o", "chat", False),
    ("/v1/chat/completions", "gpt-4o", "chat", True),
    ("/v1/chat/completions", "azure-gpt", "chat", False),
    ("/v1/messages", "claude", "messages", False),
    ("/v1/messages", "claude", "messages", True),
    ("/v1/chat/completions", "claude", "messages", False),
    ("/v1/messages", "gpt-4o", "chat", False),
    ("/v1/chat/completions", "gemini", "gemini_generate", False),
    ("/v1/chat/completions", "bedrock", "bedrock_converse", False),
    ("/v1/embeddings", "gpt-4o", "embeddings", False),
]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("case", REDIRECTED, ids=lambda c: f"{c[0]}-{c[1]}-stream={c[3]}")
async def test_an_upstream_redirect_is_neither_followed_nor_relayed(
    make_target: TargetFactory, case: tuple[str, str, str, bool], status: int
) -> None:
    path, model, route, stream = case
    target = await make_target("openai")
    location = target.canary.fill("http://{canary}/v1/chat/completions")
    target.fake.script(route, Fail(status, headers={"location": location}))
    body = {**ROUTES[path], "model": model, "stream": stream}
    answer = await target.post(path, body)
    assert answer.status == 502
    assert "location" not in {name.lower() for name in answer.headers}
    assert target.canary.address.encode() not in answer.body
    error = orjson.loads(answer.body)
    if path == "/v1/messages":
        assert error["type"] == "error" and error["error"]["type"] == "api_error"
        assert "redirect" in error["error"]["message"]
    else:
        assert error["error"]["code"] == "upstream_redirect"
        assert "redirect" in error["error"]["message"]
    assert target.fake.calls[route] == 1
    target.went_nowhere_else()
