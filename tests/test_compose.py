"""docker-compose.yml, the local stack, checked without a Docker engine: every file it mounts
exists, the proxy's configuration loads with the environment Compose gives it, and the ports,
the Prometheus scrape, the Grafana provisioning and the trace endpoint all point where the
other services really are."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from edgeproxy.config import Config, load
from tests.support.requires import unavailable

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
SERVICES = {"edgeproxy", "redis", "prometheus", "grafana", "jaeger"}
PROMETHEUS_PORT = 9090  # where the prom/prometheus image listens
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, Any] = compose["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    """The service's environment as Compose gives it on a machine with none of the variables
    set: `${VAR:-default}` becomes its default."""
    return {
        name: _INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))
        for name, value in (service.get("environment") or {}).items()
    }


def mounts(service: dict[str, Any]) -> dict[PurePosixPath, Path]:
    """Each bind mount: its path in the container, and the host path it comes from."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        assert source.startswith("./"), f"{volume}: only repository files are mounted"
        found[PurePosixPath(target)] = REPO / source
    return found


def host_file(service: dict[str, Any], container_path: str) -> Path:
    """The repository file that appears at `container_path` inside the service."""
    wanted = PurePosixPath(container_path)
    for target, source in mounts(service).items():
        if wanted == target or target in wanted.parents:
            return source / wanted.relative_to(target)
    raise AssertionError(f"nothing is mounted at {container_path}")


def published(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port, every one on loopback."""
    found = {}
    for spec in service.get("ports", []):
        address, host, container = spec.split(":")
        assert address == "127.0.0.1", f"{spec}: published beyond loopback"
        found[int(container)] = int(host)
    return found


def proxy_config(services: dict[str, Any]) -> Config:
    proxy = services["edgeproxy"]
    env = environment(proxy)
    return load(host_file(proxy, env["EDGEPROXY_CONFIG"]), env)


def test_the_stack_has_its_services_and_only_known_dependencies(
    services: dict[str, Any],
) -> None:
    assert set(services) == SERVICES
    for name, service in services.items():
        assert set(service.get("depends_on") or ()) <= SERVICES - {name}


def test_every_mounted_file_exists(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for target, source in mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"


def test_host_ports_do_not_collide(services: dict[str, Any]) -> None:
    host_ports = [port for s in services.values() for port in published(s).values()]
    assert len(host_ports) == len(set(host_ports))


def test_proxy_is_built_from_the_dockerfile(services: dict[str, Any]) -> None:
    build = services["edgeproxy"]["build"]
    assert (REPO / build["context"] / "Dockerfile").is_file()


def test_proxy_config_loads_and_its_listeners_are_the_published_ports(
    services: dict[str, Any],
) -> None:
    config = proxy_config(services)
    ports = published(services["edgeproxy"])
    assert config.server.host == config.admin.host == "0.0.0.0"
    assert ports == {config.server.port: 8080, config.admin.port: 9090}
    assert [m.name for m in config.models] == ["edgeproxy-mock"]  # no keys: the mock only


def test_proxy_uses_the_stacks_redis_and_jaeger(services: dict[str, Any]) -> None:
    config = proxy_config(services)
    assert config.cache.redis.enabled
    assert config.cache.redis.url.startswith("redis://redis:6379/")
    tracing = config.telemetry.tracing
    assert tracing.enabled
    assert tracing.endpoint == "http://jaeger:4318/v1/traces"
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert 4318 in published(services["jaeger"])


def test_prometheus_scrapes_the_proxys_admin_port_and_loads_the_alert_rules(
    services: dict[str, Any],
) -> None:
    prometheus = services["prometheus"]
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    scrape = yaml.safe_load(host_file(prometheus, config_flag.split("=", 1)[1]).read_text())
    (job,) = scrape["scrape_configs"]
    assert re.fullmatch(".*edgeproxy.*", job["job_name"])  # the alert rules' job matcher
    admin_port = proxy_config(services).admin.port
    assert job["metrics_path"] == "/metrics"
    (targets,) = job["static_configs"]
    assert targets["targets"] == [f"edgeproxy:{admin_port}"]
    assert {"pod", "namespace"} <= set(targets["labels"])  # what the dashboard filters by
    (rules,) = scrape["rule_files"]
    rules_file = host_file(prometheus, rules)
    assert rules_file == REPO / "configs" / "prometheus" / "edgeproxy-alerts.yaml"
    assert yaml.safe_load(rules_file.read_text())["groups"]


def test_grafana_provisions_prometheus_and_the_edgeproxy_dashboard(
    services: dict[str, Any],
) -> None:
    grafana = services["grafana"]
    sources_dir = host_file(grafana, "/etc/grafana/provisioning/datasources")
    (source,) = yaml.safe_load(next(sources_dir.glob("*.yaml")).read_text())["datasources"]
    assert (source["type"], source["isDefault"]) == ("prometheus", True)
    assert source["url"] == f"http://prometheus:{PROMETHEUS_PORT}"
    assert PROMETHEUS_PORT in published(services["prometheus"])
    providers_dir = host_file(grafana, "/etc/grafana/provisioning/dashboards")
    (provider,) = yaml.safe_load(next(providers_dir.glob("*.yaml")).read_text())["providers"]
    dashboards = [
        target
        for target in mounts(grafana)
        if PurePosixPath(provider["options"]["path"]) in target.parents
    ]
    assert [host_file(grafana, str(d)) for d in dashboards] == [
        REPO / "configs" / "grafana" / "edgeproxy-dashboard.json"
    ]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert json.loads(host_file(grafana, home).read_text())["uid"] == "edgeproxy"


def test_promtool_accepts_the_prometheus_config_with_its_rules(
    services: dict[str, Any], tmp_path: Path
) -> None:
    """The config as Prometheus reads it, its rule file where the container has it."""
    if shutil.which("promtool") is None:
        unavailable("promtool not installed (Debian's prometheus package ships it)")
    prometheus = services["prometheus"]
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    scrape = yaml.safe_load(host_file(prometheus, config_flag.split("=", 1)[1]).read_text())
    scrape["rule_files"] = [str(host_file(prometheus, rules)) for rules in scrape["rule_files"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(scrape))
    checked = subprocess.run(
        ["promtool", "check", "config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
