"""The tenancy and guardrail sections of the configuration: every mistake named by its field."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.config import parse
from edgeproxy.config_reader import ConfigError


def config_with(**sections: Any) -> dict[str, Any]:
    return {
        "providers": {"mock": {"kind": "mock"}},
        "models": {"m": {"deployments": [{"provider": "mock"}]}},
        **sections,
    }


@pytest.mark.parametrize(
    ("sections", "problem"),
    [
        ({"limits": {"groups": {"nope": {"rpm": 1}}}}, "limits.groups.nope: no model group"),
        ({"limits": {"groups": ["m"]}}, "limits.groups: expected a mapping of model group"),
        ({"limits": {"on_redis_error": "maybe"}}, "limits.on_redis_error: expected one of"),
        ({"limits": {"local_share": 0}}, "limits.local_share: must be > 0"),
        ({"limits": {"local_share": 2}}, "limits.local_share: expected a number from 0 to 1"),
        ({"limits": {"tokenizer": "bpe"}}, "limits.tokenizer: expected one of heuristic, tiktoken"),
        ({"budgets": {"on_redis_error": "local"}}, "budgets.on_redis_error: expected one of"),
        ({"redis": {"url": "http://cache:6379"}}, "redis.url: expected a redis://"),
        ({"redis": {"prefix": "a{b}"}}, "redis.prefix: expected letters"),
        (
            {"redis": {"url": "unix:///run/redis.sock", "cluster": True}},
            "redis.url: a Redis Cluster is reached over TCP",
        ),
        (
            {"guardrails": {"policies": {"p": {"pii": {"kinds": ["dna"]}}}}},
            'guardrails.policies.p.pii.kinds: unknown kind "dna"',
        ),
        (
            {"guardrails": {"policies": {"p": {"output": {"mode": "block"}}}}},
            "guardrails.policies.p.output.mode: expected one of redact, monitor",
        ),
        (
            {"guardrails": {"policies": {"p": {"injection": {"mode": "redact"}}}}},
            "guardrails.policies.p.injection.mode: expected one of block, monitor",
        ),
        (
            {"guardrails": {"policies": {"p": {"injection": {"threshold": 3}}}}},
            "guardrails.policies.p.injection.threshold: expected a number from 0 to 1",
        ),
        (
            {"guardrails": {"policies": {"p": {"blocklist": {"mode": "block"}}}}},
            "guardrails.policies.p.blocklist: give terms, patterns or both",
        ),
        (
            {"guardrails": {"policies": {"p": {"blocklist": {"patterns": ["(unclosed"]}}}}},
            "guardrails.policies.p.blocklist.patterns[0]: not a valid regular expression",
        ),
        (
            {"guardrails": {"policies": {"p": {"shield": {"url": "ftp://guard"}}}}},
            "guardrails.policies.p.shield.url",
        ),
        (
            {"guardrails": {"policies": {"p": {"shield": {"url": "http://u:pw@guard/v1"}}}}},
            "guardrails.policies.p.shield.url",
        ),
        (
            {"guardrails": {"policies": {"p": {"max_messages": 0}}}},
            "guardrails.policies.p.max_messages: expected an integer >= 1",
        ),
        ({"guardrails": {"default_policy": "p"}}, 'guardrails.default_policy: no policy named "p"'),
        (
            {"guardrails": {"policies": {"p": {}}, "routes": {"chat": "q"}}},
            'guardrails.routes.chat: no policy named "q"',
        ),
        (
            {"guardrails": {"policies": {"p": {}}, "routes": {"images": "p"}}},
            "guardrails.routes.images: unknown route",
        ),
        (
            {"guardrails": {"policies": {"p": {"pii": {}, "tone": {}}}}},
            "guardrails.policies.p.tone",
        ),
        ({"pricing": {"file": "/nonexistent/prices.yaml"}}, "pricing.file: no readable file"),
        ({"pricing": {"overrides": ["gpt-4o"]}}, "pricing.overrides: expected a mapping"),
    ],
)
def test_a_mistake_is_named_by_its_field(sections: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(config_with(**sections), {})
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_a_full_policy_parses_with_its_defaults() -> None:
    config = parse(
        config_with(
            guardrails={
                "policies": {
                    "strict": {
                        "pii": {"mode": "redact"},
                        "injection": {"mode": "block"},
                        "blocklist": {"terms": ["falcon"]},
                        "output": {"kinds": ["secret"]},
                        "shield": {"url": "http://guard.local/v1/check"},
                    }
                },
                "default_policy": "strict",
                "routes": {"messages": "strict"},
            }
        ),
        {},
    )
    policy = config.security.guardrails.policies["strict"]
    assert policy.pii is not None and len(policy.pii.kinds) == 7
    assert policy.injection is not None and policy.injection.threshold == 0.5
    assert policy.blocklist is not None and policy.blocklist.mode == "block"
    assert policy.output is not None and policy.output.mode == "redact"
    assert policy.shield is not None
    assert (policy.shield.timeout, policy.shield.mode, policy.shield.fail_open) == (
        0.1,
        "blocking",
        False,
    )


def test_the_shared_redis_password_is_a_secret_to_mask() -> None:
    config = parse(config_with(redis={"url": "redis://:hunter2-canary@cache:6379/0"}), {})
    assert "hunter2-canary" in config.secrets()
