"""Several fake upstreams, each one provider, behind one proxy whose routing runs on a manual
clock, a seeded (or scripted) random source and a recording sleep.

OpenAI-kind providers are named `up0`, `up1`, ...; Anthropic-kind ones `an0`, `an1`, ...; each
has a `FakeUpstream` of its own, so a test counts the calls every deployment received. The
test gives the `models` section (and, if it likes, `routing` and `admin.token`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgeproxy.app import ProxyServer
from edgeproxy.config import parse
from edgeproxy.state import Clocks
from tests.support.clock import ManualClock, RecordingSleep
from tests.support.fake_upstream import FakeUpstream
from tests.support.stack import ANTHROPIC_KEY, OPENAI_KEY, ProxyFront

TIMEOUTS = {"connect": "2s", "first_byte": "10s", "idle": "10s", "total": "30s"}


@dataclass
class RoutingStack(ProxyFront):
    fakes: dict[str, FakeUpstream]  # provider name → the fake serving it
    clock: ManualClock
    sleep: RecordingSleep

    @property
    def admin_url(self) -> str:
        return self.proxy.admin_url

    def calls(self, route: str = "chat") -> dict[str, int]:
        """How many `route` calls each provider's fake received."""
        return {name: fake.calls[route] for name, fake in self.fakes.items()}


def _providers(
    openai: int, anthropic: int, urls: Mapping[str, str], timeouts: Mapping[str, str]
) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    for i in range(openai):
        name = f"up{i}"
        providers[name] = {
            "kind": "openai",
            "base_url": urls[name] + "/v1",
            "api_key": OPENAI_KEY,
            "timeouts": timeouts,
        }
    for i in range(anthropic):
        name = f"an{i}"
        providers[name] = {
            "kind": "anthropic",
            "base_url": urls[name],
            "api_key": ANTHROPIC_KEY,
            "timeouts": timeouts,
        }
    return providers


async def start_routing_stack(
    models: dict[str, Any],
    *,
    openai: int = 3,
    anthropic: int = 0,
    routing: dict[str, Any] | None = None,
    admin_token: str | None = None,
    rng: Callable[[], float] | None = None,
    timeouts: Mapping[str, str] | None = None,
) -> RoutingStack:
    """Start the fakes and a proxy routing `models` over them; stop with `stop_routing_stack`.
    `timeouts` overrides the providers' upstream deadlines (`TIMEOUTS`)."""
    names = [f"up{i}" for i in range(openai)] + [f"an{i}" for i in range(anthropic)]
    fakes: dict[str, FakeUpstream] = {}
    try:
        for seed, name in enumerate(names):
            fake = fakes[name] = FakeUpstream(seed=seed)
            await fake.start()
        admin: dict[str, Any] = {"host": "127.0.0.1", "port": 0}
        if admin_token is not None:
            admin["token"] = admin_token
        raw = {
            "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace": "5s"},
            "admin": admin,
            "routing": routing or {},
            "cache": {"enabled": False},  # every request reaches the fakes
            "providers": _providers(
                openai,
                anthropic,
                {n: f.url for n, f in fakes.items()},
                {**TIMEOUTS, **(timeouts or {})},
            ),
            "models": models,
        }
        clock = ManualClock()
        sleep = RecordingSleep(clock)
        clocks = Clocks(clock, rng or random.Random(0).random, sleep)
        proxy = ProxyServer(parse(raw, {}), clocks=clocks)
        await proxy.start()
    except BaseException:
        for fake in fakes.values():
            await fake.close()
        raise
    return RoutingStack(proxy, fakes, clock, sleep)


async def stop_routing_stack(stack: RoutingStack) -> None:
    await stack.proxy.stop()
    for fake in stack.fakes.values():
        await fake.close()
