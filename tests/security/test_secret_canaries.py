"""No configured secret leaves the process, and neither does the client's own key.

Every secret-bearing field of the config holds a canary: each provider kind's key, Azure's
Entra token, AWS's secret key and session token, the admin token, the Redis URLs' passwords,
credential headers of a self-hosted provider, an egress proxy's password, the Shield's token;
the client's key is configured by its hash (auth mode keys). Logging is at debug
level with the access log on, through the production log setup (telemetry.logging), in both
formats. Then the proxy is driven through what makes software talk: successful requests,
upstream errors that quote back every header they were sent (the provider's key among them)
in their body and headers, streams that fail with the provider's own error event quoting them,
timeouts, a refused connection, invalid JSON, an unknown client key, admin endpoints with a
wrong token, `/metrics`.
No canary may appear in any log line, any answer to a client (status line, headers, body) or
the metrics exposition; the client's key appears in no log line and never goes upstream
(LiteLLM #24902 and its 2026-03-18 incident: keys in logs).
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest

from edgeproxy.app import ProxyServer
from edgeproxy.config import Config, parse
from edgeproxy.redact import MASK
from edgeproxy.security.auth import hash_key
from edgeproxy.telemetry.logging import configure
from tests.conftest import _settled
from tests.security.support import Echo, SecurityUpstream
from tests.support.connect_proxy import ConnectProxy
from tests.support.fake_aws import AwsKeys
from tests.support.fake_upstream import Reply
from tests.support.redis_servers import free_port
from tests.support.stack import ProxyFront

CANARIES = {
    "openai api_key": "canary-openai-key-3b1f0c",
    "azure api_key": "canary-azure-key-8d2e41",
    "azure bearer_token": "canary-azure-entra-5c7a90",
    "anthropic api_key": "canary-anthropic-key-19fe2d",
    "gemini api_key": "canary-gemini-key-6a0b3e",
    "aws secret_access_key": "canary/aws+secret/Key4e8d2c1b",
    "aws session_token": "canary-aws-session-token-2f9e7d",
    "admin token": "canary-admin-token-0c4b8a",
    "redis url password": "canary-redis-pass-7e1d5f",
    "x-api-key header": "canary-vllm-x-api-key-4a2c",
    "authorization header": "canary-vllm-bearer-9b3d",
    "egress proxy password": "canary-proxy-pass-1e6f0a",
    "shield token": "canary-shield-token-8f2a6b",
    "shared redis url password": "canary-shared-redis-3c9d1e",
}
# The client's own key (configured by its hash only), and a key the proxy does not know.
CLIENT_KEY = "sk-client-canary-own-key-5d8e2f"
UNKNOWN_KEY = "sk-client-canary-unknown-7a4c0e"
SHIELD_URL = "http://127.0.0.1:1/check"  # configured only: no stage calls the Shield yet
PROXY_USER = "edgeproxy"
AWS = AwsKeys(
    "AKIDCANARYACCESSKEY",
    CANARIES["aws secret_access_key"],
    session_token=CANARIES["aws session_token"],
)
ECHOES: tuple[Echo, ...] = ("401", "500", "stream")
MESSAGES = [{"role": "user", "content": "Say hello"}]
CHAT = "/v1/chat/completions"
# The model groups that reach the fake upstream, and the path each speaks natively.
NATIVE = {
    "gpt": CHAT,
    "azure-key": CHAT,
    "azure-entra": CHAT,
    "vllm": CHAT,
    "proxied": CHAT,
    "claude": "/v1/messages",
    "gemini": CHAT,
    "bedrock": CHAT,
}


def config(upstream: str, egress: ConnectProxy) -> dict[str, Any]:
    secret = CANARIES
    providers: dict[str, dict[str, Any]] = {
        "gpt": {
            "kind": "openai",
            "base_url": upstream + "/v1",
            "api_key": secret["openai api_key"],
        },
        "azure-key": {"kind": "azure", "base_url": upstream, "api_key": secret["azure api_key"]},
        "azure-entra": {
            "kind": "azure",
            "base_url": upstream,
            "bearer_token": secret["azure bearer_token"],
        },
        "claude": {
            "kind": "anthropic",
            "base_url": upstream,
            "api_key": secret["anthropic api_key"],
        },
        "gemini": {
            "kind": "gemini",
            "base_url": upstream + "/v1beta",
            "api_key": secret["gemini api_key"],
        },
        "bedrock": {
            "kind": "bedrock",
            "base_url": upstream,
            "aws": {
                "region": AWS.region,
                "access_key_id": AWS.access_key,
                "secret_access_key": AWS.secret_key,
                "session_token": AWS.session_token,
            },
        },
        "vllm": {  # self-hosted: its credentials are headers of the operator's choosing
            "kind": "openai",
            "base_url": upstream + "/v1",
            "headers": {
                "x-api-key": secret["x-api-key header"],
                "authorization": "Bearer " + secret["authorization header"],
            },
        },
        "proxied": {
            "kind": "openai",
            "base_url": upstream + "/v1",
            "api_key": secret["openai api_key"],
            "proxy": egress.url(f"{PROXY_USER}:{secret['egress proxy password']}"),
        },
        "dead": {
            "kind": "openai",
            "base_url": f"http://127.0.0.1:{free_port()}/v1",
            "api_key": secret["openai api_key"],
        },
        "slow": {
            "kind": "openai",
            "base_url": upstream + "/v1",
            "api_key": secret["openai api_key"],
            "timeouts": {"first_byte": "200ms"},
        },
    }
    upstream_models = {"gemini": "gemini-2.5-flash", "bedrock": "anthropic.claude-3-7-sonnet"}
    return {
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace": "5s", "access_log": True},
        "admin": {"host": "127.0.0.1", "port": 0, "token": secret["admin token"]},
        "logging": {"level": "debug"},
        # One attempt each, and breakers that never open: every request reaches the upstream.
        "routing": {
            "retry": {"max_attempts": 1},
            "breaker": {"failure_threshold": 1000, "min_requests": 1000},
        },
        "cache": {
            "redis": {"url": f"redis://:{secret['redis url password']}@127.0.0.1:{free_port()}/0"}
        },
        "redis": {"url": f"redis://:{secret['shared redis url password']}@127.0.0.1:1/0"},
        "auth": {"mode": "keys", "keys": [{"id": "client", "hash": hash_key(CLIENT_KEY)}]},
        "guardrails": {
            "policies": {
                "guarded": {
                    "shield": {  # a guard nobody runs: failing open, every request is asked
                        "url": SHIELD_URL,
                        "token": secret["shield token"],
                        "fail_open": True,
                    }
                }
            },
            "default_policy": "guarded",
        },
        "providers": providers,
        "models": {
            name: {
                "cache": False,  # every request reaches the upstream
                "deployments": [{"provider": name, "model": upstream_models.get(name, name)}],
            }
            for name in providers
        },
    }


LogCapture = Callable[[Config, str], io.StringIO]


@pytest.fixture
def capture_logs() -> Iterator[LogCapture]:
    """The production log setup at debug level, writing into a buffer; restored after."""
    root, access = logging.getLogger(), logging.getLogger("aiohttp.access")
    handlers, level, disabled = root.handlers[:], root.level, access.disabled

    def capture(config: Config, fmt: str) -> io.StringIO:
        buffer = io.StringIO()
        configure(config.logging.level, fmt, config.secrets(), stream=buffer)
        return buffer

    yield capture
    root.handlers[:] = handlers
    root.setLevel(level)
    access.disabled = disabled


class Client:
    """A client sending its own key with every request, keeping every byte it is answered."""

    def __init__(self, proxy: ProxyServer) -> None:
        self.proxy = proxy
        self.seen: list[bytes] = []
        self.session = aiohttp.ClientSession(
            headers={"authorization": f"Bearer {CLIENT_KEY}", "x-api-key": CLIENT_KEY}
        )

    async def send(self, method: str, url: str, **options: Any) -> int:
        async with self.session.request(method, url, **options) as response:
            head = [f"{response.status} {response.reason}"]
            head += [f"{name}: {value}" for name, value in response.headers.items()]
            self.seen.append("\n".join(head).encode("latin-1") + b"\n\n" + await response.read())
            return response.status

    async def post(self, model: str, path: str = CHAT, **fields: Any) -> int:
        body = {"model": model, "messages": MESSAGES, "max_tokens": 16, **fields}
        return await self.send("POST", self.proxy.url + path, json=body)

    async def every_model(self, stream: bool) -> list[int]:
        statuses = [await self.post(model, path, stream=stream) for model, path in NATIVE.items()]
        statuses.append(await self.post("claude", CHAT, stream=stream))  # translated
        statuses.append(await self.post("gpt", "/v1/messages", stream=stream))  # translated
        statuses.append(
            await self.send(
                "POST",
                self.proxy.url + "/v1/embeddings",
                json={"model": "gpt", "input": "Say hello"},
            )
        )
        return statuses

    async def admin(self, method: str, path: str, token: str | None) -> int:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return await self.send(method, self.proxy.admin_url + path, headers=headers)


def forms(name: str, secret: str) -> list[str]:
    """A secret as it could be written: as it is, escaped in JSON, percent-encoded, and for the
    egress proxy's password, inside the Proxy-Authorization value made of it."""
    written = [secret, orjson.dumps(secret).decode()[1:-1], quote(secret, safe="")]
    if name == "egress proxy password":
        written.append(base64.b64encode(f"{PROXY_USER}:{secret}".encode()).decode())
    return list(dict.fromkeys(written))


@pytest.mark.parametrize("fmt", ["json", "text"])
async def test_no_secret_reaches_a_log_line_a_client_or_the_metrics(
    capture_logs: LogCapture, fmt: str
) -> None:
    fake = SecurityUpstream()
    fake.gemini.api_key = CANARIES["gemini api_key"]
    fake.bedrock.credentials = AWS
    await fake.start()
    egress = await ConnectProxy().start()
    loaded = parse(config(fake.url, egress), {})
    logs = capture_logs(loaded, fmt)
    proxy = ProxyServer(loaded)
    await proxy.start()
    client = Client(proxy)
    try:
        statuses = await drive(client, fake)
    finally:
        await client.session.close()
        await _settled(ProxyFront(proxy))
        await proxy.stop()
        await fake.close()
        await egress.stop()
    assert_drove_everything(statuses)
    answered = b"\n".join(client.seen).decode("latin-1")
    lines = logs.getvalue()
    assert MASK in answered, "an echoed credential was masked on its way to the client"
    assert '"level":"debug"' in lines or "\ndebug " in lines, "debug lines were written"
    assert "overhead_ms" in lines, "access lines were written"
    assert leaked(lines) == [], "secrets in the log"
    assert leaked(answered) == [], "secrets in answers to clients"
    assert CLIENT_KEY not in lines and UNKNOWN_KEY not in lines, "a client's key in the log"
    sent_upstream = repr([r.headers for r in fake.requests]) + repr(egress.asked)
    assert CLIENT_KEY not in sent_upstream, "the client's key went upstream"


def leaked(text: str) -> list[str]:
    """The canaries found in `text`, in any form they could be written."""
    return [
        name for name, secret in CANARIES.items() if any(f in text for f in forms(name, secret))
    ]


async def drive(client: Client, fake: SecurityUpstream) -> dict[str, list[int]]:
    """Everything that makes a proxy talk, step by step; the statuses the client got."""
    steps = {
        "success": await client.every_model(stream=False),
        "success, streamed": await client.every_model(stream=True),
    }
    for echo in ECHOES:
        fake.echo = echo
        steps[f"echo {echo}"] = await client.every_model(stream=echo == "stream")
    fake.echo = None
    fake.script("chat", Reply(stall_after=0))
    steps["first-byte timeout"] = [await client.post("slow")]
    steps["connection refused"] = [await client.post("dead")]
    steps["invalid JSON"] = [await client.send("POST", client.proxy.url + CHAT, data=b'{"m": 1,')]
    steps["unknown model"] = [await client.post("no-such-model")]
    steps["unknown client key"] = [
        await client.send(
            "POST",
            client.proxy.url + CHAT,
            json={"model": "gpt", "messages": MESSAGES},
            headers={"authorization": f"Bearer {UNKNOWN_KEY}", "x-api-key": UNKNOWN_KEY},
        )
    ]
    steps["admin, no or a wrong token"] = [
        await client.admin("GET", "/admin/routing", None),
        await client.admin("GET", "/admin/routing", "wrong-token"),
        await client.admin("GET", "/admin/cache", "wrong-token"),
        await client.admin("DELETE", "/admin/cache/tags/faq", "wrong-token"),
    ]
    token = CANARIES["admin token"]
    steps["admin, the token"] = [
        await client.admin("GET", "/admin/routing", token),
        await client.admin("GET", "/admin/cache", token),
    ]
    steps["purge, Redis down"] = [await client.admin("DELETE", "/admin/cache/tags/faq", token)]
    steps["metrics"] = [await client.admin("GET", "/metrics", None)]
    return steps


def assert_drove_everything(steps: dict[str, list[int]]) -> None:
    """Each step came to what it was meant to (the echoes reached the upstream and failed)."""
    assert set(steps["success"]) == set(steps["success, streamed"]) == {200}
    assert all(status >= 400 for status in steps["echo 401"] + steps["echo 500"]), steps
    assert 200 in steps["echo stream"], "streams failed after they started"
    assert {step: statuses for step, statuses in steps.items() if len(statuses) == 1} == {
        "first-byte timeout": [504],
        "connection refused": [502],
        "invalid JSON": [400],
        "unknown model": [404],
        "unknown client key": [401],
        "purge, Redis down": [503],
        "metrics": [200],
    }
    assert steps["admin, no or a wrong token"] == [401, 401, 401, 401]
    assert steps["admin, the token"] == [200, 200]
