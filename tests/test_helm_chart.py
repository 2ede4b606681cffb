"""The Helm chart in helm/edgeproxy, rendered offline.

Helm v4's engine comes from the `helm-python-sdk` package (no helm binary, no cluster) and the
rendered objects are checked against the Kubernetes OpenAPI schemas shipped in
`kubernetes-validate`, strictly (unknown fields are errors). The ConfigMap's configuration is fed
to edgeproxy's own parser with the environment the pod would get.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgeproxy.config import Config, parse
from edgeproxy.config_reader import ConfigError

try:
    import helm_python as helm
    from kubernetes_validate import utils as kube_schema
except ImportError as exc:  # pragma: no cover - depends on the dev extras
    reason = (
        f"the Helm chart tests need helm-python-sdk and kubernetes-validate ({exc}); "
        "install them with pip install -e '.[dev]'"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)

CHART = Path(__file__).resolve().parent.parent / "helm" / "edgeproxy"
RELEASE = "demo"
NAMESPACE = "llm"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest with schemas.
KUBE_VERSIONS = ("1.30", kube_schema.latest_version())
# What the provider-key Secret holds in these tests.
SECRET_DATA = {"OPENAI_API_KEY": "sk-test-openai", "ANTHROPIC_API_KEY": "sk-ant-test"}
SECRET_DIR = "/var/run/secrets/edgeproxy"

# The override the README and values.yaml describe: no example application, provider keys from
# an existing Secret mounted as files.
FILES_MODE: dict[str, Any] = {
    "app": {"enabled": False},
    "secrets": {"existingSecret": "llm-keys", "mode": "files"},
    "config": {
        "providers": {
            "openai": {"api_key": None, "api_key_file": f"{SECRET_DIR}/OPENAI_API_KEY"},
            "anthropic": {"api_key": None, "api_key_file": f"{SECRET_DIR}/ANTHROPIC_API_KEY"},
        }
    },
}
ENV_MODE: dict[str, Any] = {"secrets": {"existingSecret": "llm-keys"}}
CHART_SECRET: dict[str, Any] = {"providerSecrets": SECRET_DATA}
NATIVE_SIDECAR: dict[str, Any] = {
    "proxy": {"nativeSidecar": True},
    "metrics": {"podMonitor": {"enabled": True}},
}
VALUE_SETS: dict[str, dict[str, Any] | None] = {
    "defaults": None,
    "env-mode": ENV_MODE,
    "files-mode": FILES_MODE,
    "chart-secret": CHART_SECRET,
    "native-sidecar": NATIVE_SIDECAR,
}


# --- rendering -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm.Chart, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the chart renders, NOTES.txt aside."""
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [
        doc
        for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = only(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    spec = pod_spec(objects)
    pod_containers: list[dict[str, Any]] = spec["containers"] + spec.get("initContainers", [])
    found = [c for c in pod_containers if c["name"] == name]
    assert len(found) == 1, f"expected one container named {name}, got {len(found)}"
    return found[0]


def proxy(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return container(objects, "edgeproxy")


def port_number(c: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(int(p["containerPort"]) for p in c["ports"] if p["name"] == port)


def pod_env(c: dict[str, Any], secret: dict[str, str]) -> dict[str, str]:
    """The environment the kubelet would give container `c`, with `secret` as every Secret."""
    env = {}
    for var in c.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        if ref["key"] in secret:
            env[var["name"]] = secret[ref["key"]]
        else:
            assert ref.get("optional"), f"{var['name']}: a missing Secret key stops the pod"
    return env


def edgeproxy_config(objects: list[dict[str, Any]], env: dict[str, str]) -> Config:
    """The ConfigMap's edgeproxy.yaml, read by edgeproxy's own parser; ConfigError fails."""
    c = proxy(objects)
    assert env.get("EDGEPROXY_CONFIG") == "/etc/edgeproxy/edgeproxy.yaml"
    config_map = only(objects, "ConfigMap")
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/edgeproxy")
    volume = next(v for v in pod_spec(objects)["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    text = config_map["data"]["edgeproxy.yaml"]
    try:
        return parse(yaml.safe_load(text), env)
    except ConfigError as err:
        pytest.fail(f"the chart's config is rejected: {err.problems}\n{text}")


# --- lint and schema -----------------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_chart_lints_clean_in_strict_mode(values: dict[str, Any] | None) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [], report
    assert problems == [], report


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_rendered_object_passes_strict_kubernetes_schema(
    chart: helm.Chart, values: dict[str, Any] | None, kube_version: str
) -> None:
    objects = render(chart, values)
    assert {o["kind"] for o in objects} >= {"ConfigMap", "Deployment", "Service"}
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a Prometheus Operator CRD: no schema in kubernetes-validate
        try:
            kube_schema.validate(obj, kube_version, strict=True)
        except kube_schema.ValidationError as err:
            where = ".".join(str(p) for p in err.path)
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {where}: {err.message}")


# --- the sidecar ---------------------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_probes_hit_healthz_and_readyz_on_admin_port_9090(
    chart: helm.Chart, values: dict[str, Any] | None
) -> None:
    c = proxy(render(chart, values))
    probes = {
        kind: c[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert {kind: get["path"] for kind, get in probes.items()} == {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    assert {port_number(c, get["port"]) for get in probes.values()} == {9090}


def test_probe_port_follows_the_configured_admin_port(chart: helm.Chart) -> None:
    objects = render(chart, {"config": {"admin": {"port": 9191}}})
    c = proxy(objects)
    assert port_number(c, c["readinessProbe"]["httpGet"]["port"]) == 9191
    assert edgeproxy_config(objects, pod_env(c, {})).admin.port == 9191


def test_app_container_points_its_sdks_at_the_sidecar(chart: helm.Chart) -> None:
    objects = render(chart)
    env = pod_env(container(objects, "app"), {})
    assert env["OPENAI_BASE_URL"] == "http://localhost:8080/v1"
    assert env["ANTHROPIC_BASE_URL"] == "http://localhost:8080"
    config = edgeproxy_config(objects, pod_env(proxy(objects), {}))
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)


def test_app_base_urls_follow_the_configured_data_port(chart: helm.Chart) -> None:
    env = pod_env(container(render(chart, {"config": {"server": {"port": 18080}}}), "app"), {})
    assert env["OPENAI_BASE_URL"] == "http://localhost:18080/v1"
    assert env["ANTHROPIC_BASE_URL"] == "http://localhost:18080"


def test_app_disabled_leaves_only_the_proxy(chart: helm.Chart) -> None:
    spec = pod_spec(render(chart, FILES_MODE))
    assert [c["name"] for c in spec["containers"]] == ["edgeproxy"]
    assert "initContainers" not in spec


def test_native_sidecar_runs_as_restartable_init_container(chart: helm.Chart) -> None:
    spec = pod_spec(render(chart, NATIVE_SIDECAR))
    assert [c["name"] for c in spec["containers"]] == ["app"]
    (sidecar,) = spec["initContainers"]
    assert (sidecar["name"], sidecar["restartPolicy"]) == ("edgeproxy", "Always")
    assert "lifecycle" not in sidecar  # stopped after the app anyway: no preStop delay


def test_native_sidecar_without_app_is_refused(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmError, match=r"nativeSidecar needs app\.enabled"):
        render(chart, {"app": {"enabled": False}, "proxy": {"nativeSidecar": True}})


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_proxy_runs_locked_down(chart: helm.Chart, values: dict[str, Any] | None) -> None:
    objects = render(chart, values)
    security = proxy(objects)["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 10001  # the image's USER
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    spec = pod_spec(objects)
    assert spec["automountServiceAccountToken"] is False
    # A Service named edgeproxy would inject EDGEPROXY_PORT=tcp://..., which edgeproxy reads.
    assert spec["enableServiceLinks"] is False


def test_proxy_has_small_requests_and_limits(chart: helm.Chart) -> None:
    resources = proxy(render(chart))["resources"]
    assert resources["requests"] == {"cpu": "50m", "memory": "64Mi"}
    assert set(resources["limits"]) >= {"memory"}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_grace_period_outlasts_prestop_and_shutdown_grace(
    chart: helm.Chart, values: dict[str, Any] | None
) -> None:
    objects = render(chart, values)
    c = proxy(objects)
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    raw = yaml.safe_load(only(objects, "ConfigMap")["data"]["edgeproxy.yaml"])
    shutdown_grace = parse({"server": raw["server"]}, {}).server.shutdown_grace
    assert shutdown_grace == 20.0
    grace = pod_spec(objects)["terminationGracePeriodSeconds"]
    # In-flight requests get shutdown_grace, then background work (usage, logs) as long again.
    assert grace > pre_stop + 2 * shutdown_grace


def test_config_change_rolls_the_pods(chart: helm.Chart) -> None:
    def checksum(values: dict[str, Any] | None) -> str:
        annotations = only(render(chart, values), "Deployment")["spec"]["template"]["metadata"]
        return str(annotations["annotations"]["checksum/config"])

    assert checksum(None) == checksum(None)
    assert checksum(None) != checksum({"config": {"logging": {"level": "debug"}}})


# --- configuration and keys ----------------------------------------------------------------------


@pytest.mark.parametrize("keys", [{}, SECRET_DATA], ids=["no-keys", "keys"])
def test_default_config_is_the_embedded_defaults(chart: helm.Chart, keys: dict[str, str]) -> None:
    objects = render(chart)
    env = {**pod_env(proxy(objects), {}), **keys}
    embedded = yaml.safe_load((CHART.parents[1] / "configs" / "edgeproxy.yaml").read_text())
    assert edgeproxy_config(objects, env) == parse(embedded, env)


def test_default_config_without_keys_serves_only_the_mock(chart: helm.Chart) -> None:
    objects = render(chart)
    config = edgeproxy_config(objects, pod_env(proxy(objects), {}))
    assert config.disabled_providers == ("anthropic", "openai")
    assert [m.name for m in config.models] == ["edgeproxy-mock"]


def test_model_patterns_are_written_most_specific_first(chart: helm.Chart) -> None:
    models = {"gpt-*": {"deployments": [{"provider": "openai"}]}}
    models["gpt-4o*"] = {"deployments": [{"provider": "anthropic"}]}
    objects = render(chart, {**CHART_SECRET, "config": {"models": models}})
    config = edgeproxy_config(objects, pod_env(proxy(objects), SECRET_DATA))
    assert [m.name for m in config.models] == [
        "edgeproxy-mock",
        "claude-*",
        "gpt-4o*",
        "gpt-*",
        "*",
    ]


@pytest.mark.parametrize(
    "values", [ENV_MODE, CHART_SECRET], ids=["existing-secret", "chart-secret"]
)
def test_env_mode_passes_keys_that_switch_providers_on(
    chart: helm.Chart, values: dict[str, Any]
) -> None:
    objects = render(chart, values)
    env = pod_env(proxy(objects), SECRET_DATA)
    config = edgeproxy_config(objects, env)
    assert sorted(config.providers) == ["anthropic", "mock", "openai"]
    assert config.providers["openai"].api_key is not None
    assert config.providers["openai"].api_key.reveal() == "sk-test-openai"
    assert config.providers["anthropic"].api_key is not None
    assert config.providers["anthropic"].api_key.reveal() == "sk-ant-test"


def test_a_redis_url_in_the_secret_gives_every_pod_the_shared_l2_cache(chart: helm.Chart) -> None:
    objects = render(chart, ENV_MODE)
    without = edgeproxy_config(objects, pod_env(proxy(objects), SECRET_DATA))
    assert without.cache.enabled and not without.cache.redis.enabled
    url = "redis://:hunter2@redis.cache.svc:6379/0"
    secret = {**SECRET_DATA, "EDGEPROXY_REDIS_URL": url}
    shared = edgeproxy_config(objects, pod_env(proxy(objects), secret))
    assert shared.cache.redis.enabled and shared.cache.redis.url == url


def test_env_mode_tolerates_a_secret_with_one_key(chart: helm.Chart) -> None:
    objects = render(chart, ENV_MODE)
    env = pod_env(proxy(objects), {"ANTHROPIC_API_KEY": "sk-ant-test"})
    config = edgeproxy_config(objects, env)
    assert sorted(config.providers) == ["anthropic", "mock"]


def test_files_mode_mounts_the_secret_where_the_config_reads_it(
    chart: helm.Chart, tmp_path: Path
) -> None:
    objects = render(chart, FILES_MODE)
    c = proxy(objects)
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == SECRET_DIR)
    volume = next(v for v in pod_spec(objects)["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "llm-keys"
    assert mount["readOnly"] is True
    env = pod_env(c, {})
    assert not set(env) & set(SECRET_DATA)  # keys only as files
    # Stand the mount in with files in tmp_path and point the config there.
    for key, value in SECRET_DATA.items():
        (tmp_path / key).write_text(value + "\n")
    config_map = only(objects, "ConfigMap")
    text = config_map["data"]["edgeproxy.yaml"]
    assert f"{SECRET_DIR}/OPENAI_API_KEY" in text
    config_map["data"]["edgeproxy.yaml"] = text.replace(SECRET_DIR, str(tmp_path))
    config = edgeproxy_config(objects, env)
    assert config.providers["openai"].api_key is not None
    assert config.providers["openai"].api_key.reveal() == "sk-test-openai"
    assert config.providers["anthropic"].api_key is not None
    assert config.providers["anthropic"].api_key.reveal() == "sk-ant-test"


def test_secret_is_created_only_from_provider_secrets(chart: helm.Chart) -> None:
    assert [o for o in render(chart) if o["kind"] == "Secret"] == []
    assert [o for o in render(chart, ENV_MODE) if o["kind"] == "Secret"] == []
    objects = render(chart, CHART_SECRET)
    secret = only(objects, "Secret")
    assert secret["stringData"] == SECRET_DATA
    refs = {
        var["valueFrom"]["secretKeyRef"]["name"]
        for var in proxy(objects)["env"]
        if "valueFrom" in var
    }
    assert refs == {secret["metadata"]["name"]}
    annotations = only(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/secret" in annotations


def test_no_secret_means_mock_only(chart: helm.Chart) -> None:
    objects = render(chart)
    assert not any("valueFrom" in var for var in proxy(objects)["env"])
    assert not any("secret" in v for v in pod_spec(objects)["volumes"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"secrets": {"mode": "vault"}}, r"secrets\.mode must be env or files"),
        ({"config": {"admin": {"enabled": False}}}, r"config\.admin\.enabled must stay true"),
        # values.schema.json holds `config` to the configuration's JSON Schema
        ({"config": {"server": {"port": "eighty"}}}, r"/config/server/port"),
        ({"config": {"srever": {}}}, r"additional properties 'srever' not allowed"),
    ],
)
def test_unusable_values_are_refused(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(chart, values)


def test_values_beside_config_stay_open_to_other_features(chart: helm.Chart) -> None:
    assert render(chart, {"a_future_feature": {"enabled": False}})


# --- service and monitoring ----------------------------------------------------------------------


def test_service_exposes_only_the_admin_port(chart: helm.Chart) -> None:
    objects = render(chart)
    service = only(objects, "Service")
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("admin", 9090, "admin")
    ]
    assert service["spec"]["type"] == "ClusterIP"
    labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_service_name_cannot_shadow_edgeproxy_port_variable(chart: helm.Chart) -> None:
    objects = chart.render(None, name="edgeproxy", namespace=NAMESPACE)
    (service,) = [
        doc
        for path, text in objects.items()
        if path.endswith("service.yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    env_prefix = service["metadata"]["name"].upper().replace("-", "_")
    assert f"{env_prefix}_PORT" != "EDGEPROXY_PORT"


def test_pod_monitor_is_off_by_default_and_scrapes_the_admin_port(chart: helm.Chart) -> None:
    assert [o for o in render(chart) if o["kind"] == "PodMonitor"] == []
    objects = render(chart, {"metrics": {"podMonitor": {"enabled": True}}})
    monitor = only(objects, "PodMonitor")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("admin", "/metrics")
    labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_notes_render_for_every_value_set(chart: helm.Chart) -> None:
    for values in VALUE_SETS.values():
        notes = next(
            text
            for path, text in chart.render(values, name=RELEASE, namespace=NAMESPACE).items()
            if path.endswith("NOTES.txt")
        )
        assert "/readyz" in notes
