"""Configuration is typed, validated at load, and every problem names its field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from edgeproxy.config import default_config_text, load, parse
from edgeproxy.config_reader import ConfigError, Secret
from edgeproxy.providers.settings import Timeouts
from tests.support.configs import minimal

REPO = Path(__file__).resolve().parents[1]


def problems(raw: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(raw, env or {})
    return caught.value.problems


def test_reference_config_is_the_embedded_default() -> None:
    assert (REPO / "configs" / "edgeproxy.yaml").read_text() == default_config_text()


def test_every_value_the_reference_config_states_is_the_declared_default() -> None:
    """The reference file's settings are the declaration's defaults: leaving a section out
    gives the same configuration as copying it from the file (its providers and models are
    examples, not defaults)."""
    reference = yaml.safe_load(default_config_text())
    examples = {name: reference[name] for name in ("providers", "models")}
    assert parse(reference, {}) == parse(examples, {})


def test_embedded_defaults_serve_only_the_mock_without_keys() -> None:
    config = load(None, {})
    assert sorted(config.providers) == ["mock"]
    assert [m.name for m in config.models] == ["edgeproxy-mock"]
    assert config.disabled_providers == ("anthropic", "openai")
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)
    assert (config.admin.host, config.admin.port) == ("0.0.0.0", 9090)


def test_embedded_defaults_switch_providers_on_when_their_keys_are_set() -> None:
    config = load(None, {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a"})
    assert sorted(config.providers) == ["anthropic", "mock", "openai"]
    assert [m.name for m in config.models] == ["edgeproxy-mock", "claude-*", "*"]
    assert config.providers["openai"].api_key == Secret("sk-o")
    assert config.providers["anthropic"].base_url == "https://api.anthropic.com"


def test_weight_error_names_the_field_path_and_the_bad_value() -> None:
    raw = minimal(
        models={
            "gpt-4o": {
                "deployments": [{"provider": "mock"}, {"provider": "mock", "weight": "high"}]
            }
        }
    )
    assert problems(raw) == [
        'models.gpt-4o.deployments[1].weight: expected a number > 0, got "high"'
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (minimal(server={"port": 70000}), "server.port: expected a port number 0-65535, got 70000"),
        (minimal(server={"prot": 1}), "server.prot: unknown field (allowed: "),
        (minimal(server={"max_body": "lots"}), "server.max_body: expected a size > 0 such as"),
        (
            minimal(server={"header_timeout": 0}),
            "server.header_timeout: expected a duration > 0 such as",
        ),
        (minimal(server={"max_header_size": "big"}), "server.max_header_size: expected a size"),
        (minimal(server={"max_headers": 0}), "server.max_headers: expected"),
        (
            minimal(server={"access_log": "yes"}),
            'server.access_log: expected true or false, got "yes"',
        ),
        (
            minimal(logging={"level": "loud"}),
            'logging.level: expected one of debug, info, warning, error, got "loud"',
        ),
        (
            minimal(providers={"mock": {"kind": "mock", "timeouts": {"idle": "soon"}}}),
            'providers.mock.timeouts.idle: expected a duration > 0 such as 30, "250ms" or "5s", '
            'got "soon"',
        ),
        (
            minimal(providers={"x": {"kind": "grpc"}}),
            "providers.x.kind: expected one of openai, azure, anthropic, gemini, bedrock, mock, "
            'got "grpc"',
        ),
        (
            minimal(providers={"o": {"kind": "openai"}}, models={}),
            "providers.o.api_key: required for this kind (give api_key or api_key_file)",
        ),
        (
            minimal(
                providers={"o": {"kind": "openai", "api_key": "k", "base_url": "api.openai.com"}}
            ),
            'providers.o.base_url: expected an http:// or https:// URL, got "api.openai.com"',
        ),
        (
            minimal(models={"m": {"deployments": [{"provider": "nope"}]}}),
            'models.m.deployments[0].provider: unknown provider "nope" (configured: mock)',
        ),
        (
            minimal(models={"m": {"deployments": []}}),
            "models.m.deployments: expected a non-empty list, got a list",
        ),
        (minimal(models={"m": {}}), "models.m.deployments: expected a non-empty list, got null"),
        (
            minimal(models={"m": {"deployments": [{"provider": "mock", "modle": "x"}]}}),
            "models.m.deployments[0].modle: unknown field",
        ),
        ("just text", ': expected a mapping, got "just text"'),
    ],
)
def test_bad_values_are_rejected_with_their_field_path(raw: Any, expected: str) -> None:
    found = problems(raw)
    assert any(p.startswith(expected) or expected in p for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    raw = minimal(server={"port": "x", "host": 5}, logging={"format": "xml"})
    assert len(problems(raw)) == 3


def test_environment_substitution_with_and_without_default() -> None:
    raw = minimal(
        providers={
            "o": {"kind": "openai", "api_key": "${KEY}", "base_url": "${BASE:-http://h:1/v1}"},
            "mock": {"kind": "mock"},
        }
    )
    config = parse(raw, {"KEY": "sk-env"})
    assert config.providers["o"].api_key == Secret("sk-env")
    assert config.providers["o"].base_url == "http://h:1/v1"


def test_unset_variable_without_default_names_the_field() -> None:
    raw = minimal(
        providers={"o": {"kind": "openai", "api_key": "${MISSING_KEY}"}, "mock": {"kind": "mock"}}
    )
    assert "providers.o.api_key: environment variable MISSING_KEY is not set" in problems(raw)


def test_substituted_numbers_parse_but_literal_strings_do_not() -> None:
    config = parse(minimal(server={"port": "${PORT}"}), {"PORT": "8181"})
    assert config.server.port == 8181
    assert problems(minimal(server={"port": "8181"})) == [
        'server.port: expected a port number 0-65535, got "8181"'
    ]


def test_secret_from_a_mounted_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    raw = minimal(
        providers={"o": {"kind": "openai", "api_key_file": str(key_file)}, "mock": {"kind": "mock"}}
    )
    assert parse(raw, {}).providers["o"].api_key == Secret("sk-from-file")


def test_unreadable_secret_file_and_double_secret_are_errors(tmp_path: Path) -> None:
    raw = minimal(
        providers={
            "o": {"kind": "openai", "api_key_file": str(tmp_path / "none")},
            "mock": {"kind": "mock"},
        }
    )
    assert problems(raw)[0].startswith("providers.o.api_key_file: cannot read")
    both = minimal(
        providers={
            "o": {"kind": "openai", "api_key": "a", "api_key_file": "/x"},
            "mock": {"kind": "mock"},
        }
    )
    assert "providers.o.api_key: give either api_key or api_key_file, not both" in problems(both)


def test_auto_provider_without_key_is_dropped_with_its_routes() -> None:
    raw = minimal(
        providers={
            "o": {"kind": "openai", "enabled": "auto", "api_key": "${K:-}"},
            "mock": {"kind": "mock"},
        },
        models={
            "only-o": {"deployments": [{"provider": "o"}]},
            "both": {"deployments": [{"provider": "o"}, {"provider": "mock"}]},
        },
    )
    config = parse(raw, {})
    assert config.disabled_providers == ("o",)
    assert [(m.name, len(m.deployments)) for m in config.models] == [("both", 1)]


def test_durations_and_sizes_accept_units() -> None:
    raw = minimal(
        server={
            "max_body": "2MiB",
            "keepalive_timeout": "1m",
            "header_timeout": "500ms",
            "max_header_size": "8KiB",
        },
        providers={
            "mock": {
                "kind": "mock",
                "timeouts": {"connect": "250ms", "first_byte": 3, "total": None},
            }
        },
    )
    config = parse(raw, {})
    assert config.server.max_body_bytes == 2 * 1024 * 1024
    assert config.server.keepalive_timeout == 60.0
    assert (config.server.header_timeout, config.server.max_header_bytes) == (0.5, 8192)
    assert config.providers["mock"].timeouts == Timeouts(
        connect=0.25, first_byte=3.0, idle=60.0, total=None
    )


def test_pod_overrides_from_the_environment_win() -> None:
    env = {"EDGEPROXY_HOST": "0.0.0.0", "EDGEPROXY_PORT": "9999", "EDGEPROXY_LOG_LEVEL": "DEBUG"}
    config = parse(minimal(), env)
    assert (config.server.host, config.server.port, config.logging.level) == (
        "0.0.0.0",
        9999,
        "debug",
    )
    assert problems(minimal(), {"EDGEPROXY_PORT": "eighty"}) == [
        'EDGEPROXY_PORT: expected a port number 0-65535, got "eighty"'
    ]


def test_secrets_never_show_in_reprs_or_errors() -> None:
    config = parse(
        minimal(
            providers={
                "o": {"kind": "openai", "api_key": "sk-very-secret"},
                "mock": {"kind": "mock"},
            }
        ),
        {},
    )
    assert "sk-very-secret" not in repr(config)
    assert "sk-very-secret" not in str(config.providers["o"].api_key)
    bad = minimal(
        providers={"o": {"kind": "openai", "api_key": "sk-very-secret", "max_connections": 0}}
    )
    assert not any("sk-very-secret" in p for p in problems(bad))


def test_every_credential_is_listed_for_the_log_formatter_to_mask() -> None:
    config = parse(
        minimal(
            admin={"token": "admin-token-1"},
            providers={
                "o": {
                    "kind": "openai",
                    "api_key": "sk-openai-1",
                    "headers": {"OpenAI-Organization": "org-1", "X-Proxy-Auth": "hdr-secret-1"},
                },
                "b": {
                    "kind": "bedrock",
                    "aws": {
                        "region": "us-east-1",
                        "access_key_id": "AKIA1",
                        "secret_access_key": "aws-secret-1",
                        "session_token": "aws-session-1",
                    },
                },
                "mock": {"kind": "mock"},
            },
            cache={"redis": {"url": "redis://:redis-pass-1@redis:6379/0", "password": "pw-2"}},
        ),
        {},
    )
    secrets = set(config.secrets())
    assert {
        "admin-token-1",
        "sk-openai-1",
        "hdr-secret-1",
        "aws-secret-1",
        "aws-session-1",
        "redis-pass-1",
        "pw-2",
    } <= secrets
    assert "org-1" not in secrets and "AKIA1" not in secrets


def test_invalid_yaml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("server:\n  port: [1,\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load(broken, {})
    with pytest.raises(ConfigError, match="cannot read the file"):
        load(tmp_path / "absent.yaml", {})


def test_patterns_are_recognised() -> None:
    config = parse(
        yaml.safe_load("""
providers: {mock: {kind: mock}}
models:
  "claude-*": {deployments: [{provider: mock}]}
  exact: {deployments: [{provider: mock}]}
"""),
        {},
    )
    assert [m.is_pattern for m in config.models] == [True, False]


def test_a_kubernetes_service_link_named_edgeproxy_does_not_override_the_port() -> None:
    env = {"EDGEPROXY_PORT": "tcp://10.0.0.7:9090"}
    assert parse(minimal(), env).server.port == 8080


# --- routing ------------------------------------------------------------------------------


def two_providers(**models: Any) -> dict[str, Any]:
    return {"providers": {"a": {"kind": "mock"}, "b": {"kind": "mock"}}, "models": models}


def test_routing_defaults_follow_the_mission() -> None:
    routing = parse(minimal(), {}).routing
    assert routing.strategy == "weighted"
    assert (routing.breaker.failure_threshold, routing.breaker.reset_timeout) == (5, 60.0)
    assert routing.breaker.half_open_requests == 3
    hybrid = routing.hybrid
    assert (hybrid.cost, hybrid.latency, hybrid.reliability, hybrid.quality) == (0.4, 0.4, 0.2, 0)
    assert routing.retry.on_status == frozenset({401, 403, 408, 429, 500, 502, 503, 504, 529})


def test_feedback_quality_alone_may_weigh_the_hybrid_strategy() -> None:
    weights = {"cost": 0, "latency": 0, "reliability": 0, "quality": 1}
    assert parse({**minimal(), "routing": {"hybrid": weights}}, {}).routing.hybrid.quality == 1


def test_a_model_group_reads_every_routing_field() -> None:
    raw = two_providers(
        big={"deployments": [{"provider": "b", "model": "big", "context_window": 1_000_000}]},
        main={
            "aliases": ["main-latest", "m"],
            "strategy": "hybrid",
            "fallbacks": "big",
            "context_fallbacks": ["big"],
            "hedge_after": "750ms",
            "retry": {"max_attempts": 2, "on_status": [500, 503]},
            "deployments": [
                {
                    "provider": "a",
                    "model": "x",
                    "weight": 3,
                    "price": {"input": 2.5, "output": 10},
                    "context_window": 128000,
                    "capabilities": ["vision", "tools"],
                    "rpm": 500,
                    "tpm": 90000,
                    "max_in_flight": 8,
                },
                {"provider": "b", "model": "x", "name": "b-x"},
            ],
        },
    )
    config = parse({**raw, "routing": {"retry": {"backoff_base": "50ms"}}}, {})
    main = config.models[1]
    assert (main.aliases, main.strategy) == (("main-latest", "m"), "hybrid")
    assert main.fallbacks == ("big",)
    assert main.context_fallbacks == ("big",) and main.hedge_after == 0.75
    assert (main.retry.max_attempts, main.retry.on_status) == (2, frozenset({500, 503}))
    assert main.retry.backoff_base == 0.05, "unset retry fields come from routing.retry"
    first, second = main.deployments
    assert (first.name, second.name) == ("a/x", "b-x")
    assert first.price is not None and first.price.estimate(1_000_000, 0) == 2.5
    assert first.capabilities == frozenset({"vision", "tools"})
    assert (first.context_window, first.rpm, first.tpm, first.max_in_flight) == (
        128000,
        500,
        90000,
        8,
    )
    assert second.capabilities is None, "a deployment that lists none is assumed to do all"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {**minimal(), "routing": {"strategy": "fastest"}},
            'routing.strategy: expected one of weighted, latency, cost, hybrid, got "fastest"',
        ),
        (
            {**minimal(), "routing": {"breaker": {"error_rate": 2}}},
            "routing.breaker.error_rate: expected a number from 0 to 1, got 2",
        ),
        (
            {**minimal(), "routing": {"retry": {"on_status": [200]}}},
            "routing.retry.on_status: expected a list of HTTP error statuses (400-599)",
        ),
        (
            {**minimal(), "routing": {"retry": {"backoff_base": "2s", "backoff_max": "1s"}}},
            "routing.retry.backoff_max: must not be shorter than backoff_base",
        ),
        (
            {**minimal(), "routing": {"hybrid": {"cost": 0, "latency": 0, "reliability": 0}}},
            "routing.hybrid: at least one weight must be > 0",
        ),
        (
            {**minimal(), "routing": {"hybrid": {"quality": -1}}},
            "routing.hybrid.quality: expected a number >= 0, got -1",
        ),
        (
            two_providers(m={"deployments": [{"provider": "a", "capabilities": ["telepathy"]}]}),
            "models.m.deployments[0].capabilities: unknown capability 'telepathy'",
        ),
        (
            two_providers(m={"deployments": [{"provider": "a", "price": {"input": 1}}]}),
            "models.m.deployments[0].price.output: required",
        ),
        (
            two_providers(m={"deployments": [{"provider": "a", "max_in_flight": 0}]}),
            "models.m.deployments[0].max_in_flight: expected an integer >= 1, got 0",
        ),
        (
            two_providers(m={"fallbacks": ["nope"], "deployments": [{"provider": "a"}]}),
            'models.m.fallbacks: unknown model "nope"',
        ),
        (
            two_providers(m={"fallbacks": ["m"], "deployments": [{"provider": "a"}]}),
            "models.m.fallbacks: a model cannot fall back to itself",
        ),
        (
            two_providers(
                m={"deployments": [{"provider": "a"}]},
                n={"aliases": ["m"], "deployments": [{"provider": "b"}]},
            ),
            "models.n.aliases: \"m\" is already 'm'",
        ),
        (
            two_providers(
                m={"deployments": [{"provider": "a", "model": "x", "rpm": 10}]},
                n={"deployments": [{"provider": "a", "model": "x", "rpm": 20}]},
            ),
            'models.n.deployments[0]: deployment "a/x" is declared elsewhere with other settings',
        ),
        (
            two_providers(m={"hedge_after": 0, "deployments": [{"provider": "a"}]}),
            "models.m.hedge_after: expected a duration > 0",
        ),
        (
            {**minimal(), "cache": {"semantic": {"embedder": "text-embedding-3-small"}}},
            "cache.semantic.dims: required with an embeddings model group as embedder",
        ),
        (
            {**minimal(), "cache": {"semantic": {"dims": 384}}},
            "cache.semantic.dims: required with an embeddings model group as embedder",
        ),
        (
            {**minimal(), "cache": {"semantic": {"threshold": 0.5}}},
            "cache.semantic.threshold: below 0.8 unrelated questions match",
        ),
        (
            {**minimal(), "cache": {"redis": {"url": "http://x"}}},
            "cache.redis.url: expected a redis://, rediss:// or unix:// URL",
        ),
        (
            {**minimal(), "cache": {"ttl": "48h"}},
            "cache.ttl: longer than cache.max_ttl (86400s)",
        ),
        (
            two_providers(m={"cache": {"ttl": "2h"}, "deployments": [{"provider": "a"}]})
            | {"cache": {"max_ttl": "1h"}},
            "models.m.cache.ttl: longer than cache.max_ttl (3600s)",
        ),
        (
            {**minimal(), "cache": {"key": {"headers": ["x-ok", "bad header"]}}},
            "cache.key.headers: 'bad header' is not an HTTP header name",
        ),
    ],
)
def test_bad_routing_values_name_their_field(raw: Any, expected: str) -> None:
    found = problems(raw)
    assert any(p.startswith(expected) for p in found), found


def test_headers_that_change_answers_default_to_anthropic_beta_and_are_kept_lower_case() -> None:
    assert parse(minimal(), {}).cache.key.headers == ("anthropic-beta",)
    raw = minimal(cache={"key": {"headers": ["X-Adapter", "anthropic-beta", "x-adapter"]}})
    assert parse(raw, {}).cache.key.headers == ("anthropic-beta", "x-adapter")
    assert parse(minimal(cache={"key": {"headers": []}}), {}).cache.key.headers == ()


def test_a_deployment_shared_by_two_groups_may_differ_only_in_weight() -> None:
    config = parse(
        two_providers(
            m={"deployments": [{"provider": "a", "model": "x", "weight": 1, "rpm": 10}]},
            n={"deployments": [{"provider": "a", "model": "x", "weight": 5, "rpm": 10}]},
        ),
        {},
    )
    assert [m.deployments[0].weight for m in config.models] == [1, 5]


def test_a_fallback_whose_provider_is_switched_off_is_dropped_not_an_error() -> None:
    raw = {
        "providers": {
            "mock": {"kind": "mock"},
            "openai": {"kind": "openai", "enabled": "auto", "api_key": "${OPENAI_API_KEY:-}"},
        },
        "models": {
            "m": {"fallbacks": ["gpt"], "deployments": [{"provider": "mock"}]},
            "gpt": {"deployments": [{"provider": "openai"}]},
        },
    }
    config = parse(raw, {})
    assert [(m.name, m.fallbacks) for m in config.models] == [("m", ())]
    assert parse(raw, {"OPENAI_API_KEY": "sk"}).models[0].fallbacks == ("gpt",)


def test_the_commented_models_example_in_the_reference_config_is_valid() -> None:
    lines = default_config_text().splitlines()
    start = lines.index("#   models:")
    example = []
    for line in lines[start:]:
        if not line.startswith("#   "):
            break
        example.append(line[4:])
    models = yaml.safe_load("\n".join(example))["models"]
    providers = {p["provider"]: {"kind": "mock"} for m in models.values() for p in m["deployments"]}
    config = parse({"providers": providers, "models": models}, {})
    assert [m.name for m in config.models] == ["gpt-4o", "claude-sonnet", "gemini-long"]
    assert config.models[0].context_fallbacks == ("gemini-long",)
