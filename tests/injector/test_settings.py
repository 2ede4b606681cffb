"""The injector's settings file: defaults, every field, and errors that name the field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgeproxy.config_reader import ConfigError
from edgeproxy.injector.patch import SECURITY_CONTEXT
from edgeproxy.injector.settings import (
    InjectorSettings,
    Probe,
    Resources,
    load_settings,
    parse_settings,
    quantity,
)

CHART_VALUES = Path(__file__).resolve().parents[2] / "helm" / "edgeproxy" / "values.yaml"


def test_no_file_means_the_defaults() -> None:
    assert load_settings(None) == InjectorSettings()
    assert parse_settings(None) == InjectorSettings()


def test_every_field_is_read() -> None:
    settings = parse_settings(
        {
            "image": "registry.example.com/edgeproxy:0.2.0",
            "image_pull_policy": "Always",
            "config_map": "llm-config",
            "secret": "",
            "port": 18080,
            "admin_port": 19090,
            "native_sidecar": False,
            "pre_stop_seconds": 0,
            "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"memory": "1Gi"},
            },
            "probes": {"readiness": {"period_seconds": 3}},
            "env": {"EDGEPROXY_LOG_LEVEL": "debug"},
        }
    )
    assert settings == InjectorSettings(
        image="registry.example.com/edgeproxy:0.2.0",
        image_pull_policy="Always",
        config_map="llm-config",
        secret="",
        port=18080,
        admin_port=19090,
        native_sidecar=False,
        pre_stop_seconds=0,
        resources=Resources("100m", "128Mi", None, "1Gi"),
        probes=settings.probes,
        env=(("EDGEPROXY_LOG_LEVEL", "debug"),),
    )
    assert settings.probes.readiness == Probe(3, 2, 2)
    assert settings.probes.startup == InjectorSettings().probes.startup


def test_defaults_are_the_charts_proxy_values() -> None:
    """The sidecar the webhook adds is the one the chart deploys."""
    proxy = yaml.safe_load(CHART_VALUES.read_text())["proxy"]
    defaults = InjectorSettings()
    assert defaults.resources.manifest() == proxy["resources"]
    assert defaults.pre_stop_seconds == proxy["preStopSleepSeconds"]
    assert proxy["securityContext"] == SECURITY_CONTEXT
    for kind in ("startup", "liveness", "readiness"):
        probe: Probe = getattr(defaults.probes, kind)
        timings = (probe.period_seconds, probe.timeout_seconds, probe.failure_threshold)
        chart = proxy[f"{kind}Probe"]
        assert timings == (
            chart["periodSeconds"],
            chart["timeoutSeconds"],
            chart["failureThreshold"],
        )


BAD: dict[str, tuple[Any, str]] = {
    "unknown field": ({"imag": "x"}, "imag: unknown field"),
    "pull policy": ({"image_pull_policy": "sometimes"}, "image_pull_policy: expected one of"),
    "config map name": (
        {"config_map": "Not_A_Name"},
        "config_map: expected a Kubernetes object name",
    ),
    "port range": ({"port": 70000}, "port: expected a port number 1-65535, got 70000"),
    "port zero": ({"admin_port": 0}, "admin_port: expected an integer >= 1, got 0"),
    "same ports": ({"port": 9090}, "admin_port: must differ from port (9090)"),
    "quantity": (
        {"resources": {"limits": {"memory": "lots"}}},
        "resources.limits.memory: expected a Kubernetes quantity",
    ),
    "request above limit": (
        {"resources": {"requests": {"cpu": "2"}}},
        "resources: cpu request 2 is above its limit 1",
    ),
    "probe field": ({"probes": {"startup": {"period": 1}}}, "probes.startup.period: unknown field"),
    "env name": ({"env": {"1BAD": "x"}}, "env.1BAD: not a valid environment variable name"),
    "native sidecar": ({"native_sidecar": "auto"}, "native_sidecar: expected true or false"),
}


@pytest.mark.parametrize(("raw", "problem"), BAD.values(), ids=BAD.keys())
def test_bad_settings_name_their_field(raw: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(
            {"port": "x", "config_map": "A", "probes": {"liveness": {"period_seconds": 0}}}
        )
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "config_map",
        "port",
        "probes.liveness.period_seconds",
    ]


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_settings(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("image: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(tmp_path / "bad.yaml")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", Decimal("0.25")),
        ("1", Decimal(1)),
        ("1.5", Decimal("1.5")),
        ("64Mi", Decimal(64 * 1024**2)),
        ("1G", Decimal(10**9)),
        ("1e3", Decimal(1000)),
        ("lots", None),
        ("-1", None),
        ("1 Gi", None),
        ("", None),
    ],
)
def test_quantities_read_as_kubernetes_does(text: str, value: Decimal | None) -> None:
    assert quantity(text) == value
