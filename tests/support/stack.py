"""A fake upstream and a proxy in front of it, configured the way the tests need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeproxy.app import ProxyServer
from edgeproxy.config import Config, parse
from tests.support.fake_aws import AwsKeys
from tests.support.fake_upstream import FakeUpstream
from tests.support.poll import eventually

OPENAI_KEY = "sk-upstream-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-upstream-0123456789abcdef"
GEMINI_KEY = "AIza-upstream-gemini-0123456789abcdef"
AWS_KEYS = AwsKeys("AKIDUPSTREAMBEDROCK", "aws-secret-upstream-0123456789abcdef")
CLIENT_KEY = "sk-client-key-must-not-travel"
BEDROCK_CLAUDE = "anthropic.claude-3-7-sonnet-20250219-v1:0"


def proxy_config(
    upstream_url: str,
    *,
    timeouts: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    mock: dict[str, Any] | None = None,
    catch_all: bool = True,
    unsupported_params: str = "drop",
    routing: dict[str, Any] | None = None,
    cache: dict[str, Any] | None = None,
    admin: dict[str, Any] | None = None,
    model_settings: dict[str, dict[str, Any]] | None = None,
    provider_settings: dict[str, dict[str, Any]] | None = None,
    more_providers: dict[str, dict[str, Any]] | None = None,
    sections: dict[str, Any] | None = None,
) -> Config:
    """Providers pointing at the fake upstream; public names mapped to upstream names.

    `catch_all` adds the pass-through patterns `claude-*` and `*`; without them an unknown
    model name is a 404. Retries are off unless `routing` says otherwise, so a scripted
    upstream error reaches the client as it is; the cache is off unless `cache` says
    otherwise, so every request reaches the fake upstream. `more_providers`: providers beside
    those on the fake (another fake's), as they are. `sections`: more top-level sections
    (auth, limits, guardrails, ...) as they are.
    """
    provider_timeouts = {"connect": "2s", "first_byte": "10s", "idle": "10s", "total": "30s"}
    provider_timeouts.update(timeouts or {})
    raw = {
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace": "5s", **(server or {})},
        "admin": {"host": "127.0.0.1", "port": 0, **(admin or {})},
        "routing": routing if routing is not None else {"retry": {"max_attempts": 1}},
        "cache": cache if cache is not None else {"enabled": False},
        "providers": {
            "openai-up": {
                "kind": "openai",
                "base_url": upstream_url + "/v1",
                "api_key": OPENAI_KEY,
                "timeouts": provider_timeouts,
            },
            "anthropic-up": {
                "kind": "anthropic",
                "base_url": upstream_url,
                "api_key": ANTHROPIC_KEY,
                "timeouts": provider_timeouts,
            },
            "gemini-up": {
                "kind": "gemini",
                "base_url": upstream_url + "/v1beta",
                "api_key": GEMINI_KEY,
                "timeouts": provider_timeouts,
            },
            "bedrock-up": {
                "kind": "bedrock",
                "base_url": upstream_url,
                "aws": {
                    "region": AWS_KEYS.region,
                    "access_key_id": AWS_KEYS.access_key,
                    "secret_access_key": AWS_KEYS.secret_key,
                },
                "timeouts": provider_timeouts,
            },
            "mock": {"kind": "mock", "mock": mock or {}},
        },
        "models": {
            "gpt-4o": {"deployments": [{"provider": "openai-up", "model": "gpt-4o-2024-08-06"}]},
            "claude-sonnet": {
                "unsupported_params": unsupported_params,
                "deployments": [{"provider": "anthropic-up", "model": "claude-sonnet-4-5"}],
            },
            "edgeproxy-mock": {"deployments": [{"provider": "mock"}]},
            "gemini-flash": {
                "deployments": [{"provider": "gemini-up", "model": "gemini-2.5-flash"}]
            },
            "bedrock-claude": {
                "deployments": [{"provider": "bedrock-up", "model": BEDROCK_CLAUDE}]
            },
            "gemini-embed": {
                "deployments": [{"provider": "gemini-up", "model": "gemini-embedding-001"}]
            },
            "titan-embed": {
                "deployments": [{"provider": "bedrock-up", "model": "amazon.titan-embed-text-v2:0"}]
            },
        },
    }
    for name, settings in (model_settings or {}).items():
        raw["models"][name].update(settings)
    for name, settings in (provider_settings or {}).items():
        raw["providers"][name].update(settings)
    raw["providers"].update(more_providers or {})
    raw.update(sections or {})
    if catch_all:
        raw["models"]["claude-*"] = {"deployments": [{"provider": "anthropic-up"}]}
        raw["models"]["*"] = {"deployments": [{"provider": "openai-up"}]}
    return parse(raw, {})


@dataclass
class ProxyFront:
    """A running proxy as its clients see it (the base URLs the SDKs take), and how many
    upstream connections it has lent out (for leak checks)."""

    proxy: ProxyServer

    @property
    def openai_url(self) -> str:
        return self.proxy.url + "/v1"

    @property
    def anthropic_url(self) -> str:
        return self.proxy.url

    def connections_in_use(self) -> int:
        return sum(
            getattr(provider, "in_use", 0) for provider in self.proxy.state.providers.values()
        )


@dataclass
class Stack(ProxyFront):
    fake: FakeUpstream


async def start_stack(**config: Any) -> Stack:
    fake = FakeUpstream(seed=0)
    fake.gemini.api_key = GEMINI_KEY
    fake.bedrock.credentials = AWS_KEYS
    await fake.start()
    try:  # a config the proxy refuses must not leave the fake listening (an unclosed server)
        proxy = ProxyServer(proxy_config(fake.url, **config))
        await proxy.start()
    except BaseException:
        await fake.close()
        raise
    return Stack(proxy, fake)


async def stop_stack(stack: Stack) -> None:
    await stack.proxy.stop()
    await stack.fake.close()


async def background_done(stack: ProxyFront) -> None:
    """Until the proxy's background work (cache writes) has finished."""
    await eventually(lambda: stack.proxy.state.background.pending == 0, "background work")
