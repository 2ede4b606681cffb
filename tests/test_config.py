"""Configuration is typed, validated at load, and every problem names its field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from edgeproxy.config import (
    ConfigError,
    Secret,
    Timeouts,
    default_config_text,
    load,
    parse,
)

REPO = Path(__file__).resolve().parents[1]


def minimal(**sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "providers": {"mock": {"kind": "mock"}},
        "models": {"m": {"deployments": [{"provider": "mock"}]}},
    }
    base.update(sections)
    return base


def problems(raw: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(raw, env or {})
    return caught.value.problems


def test_reference_config_is_the_embedded_default() -> None:
    assert (REPO / "configs" / "edgeproxy.yaml").read_text() == default_config_text()


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
        server={"max_body": "2MiB", "keepalive_timeout": "1m"},
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
