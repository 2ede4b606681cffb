"""The Helm chart in helm/edgeproxy, rendered offline.

Helm v4's engine comes from the `helm-python-sdk` package (no helm binary, no cluster) and the
rendered objects are checked against the Kubernetes OpenAPI schemas shipped in
`kubernetes-validate`, strictly (unknown fields are errors). The ConfigMap's configuration is fed
to edgeproxy's own parser with the environment the pod would get.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgeproxy.config import Config, parse
from edgeproxy.config_reader import ConfigError
from edgeproxy.drain import OVERRUN
from edgeproxy.injector.patch import plan
from edgeproxy.injector.settings import InjectorSettings, Resources, parse_settings
from tests.support.requires import unavailable

try:
    import helm_python as helm
    from kubernetes_validate import utils as kube_schema
except ImportError as exc:  # pragma: no cover - depends on the dev extras
    unavailable(
        f"the Helm chart tests need helm-python-sdk and kubernetes-validate ({exc}): "
        "pip install -e '.[dev]'",
        module=True,
    )

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
# The sidecar injector: beside the example Deployment with cert-manager, and alone with a TLS
# Secret and CA of the operator's own.
INJECTOR: dict[str, Any] = {"injector": {"enabled": True}}
CA_BUNDLE = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n").decode()
OWN_TLS: dict[str, Any] = {
    "deployment": {"enabled": False},
    "injector": {
        "enabled": True,
        "failurePolicy": "Fail",
        "tls": {
            "certManager": {"enabled": False},
            "secretName": "injector-tls",
            "caBundle": CA_BUNDLE,
        },
    },
}
INJECTOR_SETS: dict[str, dict[str, Any]] = {"injector": INJECTOR, "injector-own-tls": OWN_TLS}
ALL_SETS = VALUE_SETS | INJECTOR_SETS
# Custom resources kubernetes-validate has no schema for.
CRD_GROUPS = ("monitoring.coreos.com/", "cert-manager.io/")


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


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The example Deployment's pod (the injector's has a Deployment of its own)."""
    deployment = named(objects, "Deployment", f"{RELEASE}-edgeproxy")
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
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


@pytest.mark.parametrize("values", ALL_SETS.values(), ids=ALL_SETS.keys())
def test_chart_lints_clean_in_strict_mode(values: dict[str, Any] | None) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [], report
    assert problems == [], report


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", ALL_SETS.values(), ids=ALL_SETS.keys())
def test_every_rendered_object_passes_strict_kubernetes_schema(
    chart: helm.Chart, values: dict[str, Any] | None, kube_version: str
) -> None:
    objects = render(chart, values)
    assert {o["kind"] for o in objects} >= {"ConfigMap", "Deployment", "Service"}
    for obj in objects:
        if obj["apiVersion"].startswith(CRD_GROUPS):
            continue
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
def test_grace_period_covers_prestop_and_the_whole_drain(
    chart: helm.Chart, values: dict[str, Any] | None
) -> None:
    objects = render(chart, values)
    c = proxy(objects)
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    raw = yaml.safe_load(only(objects, "ConfigMap")["data"]["edgeproxy.yaml"])
    server = parse({"server": raw["server"]}, {}).server
    assert (server.drain_delay, server.shutdown_grace) == (5.0, 20.0)
    grace = pod_spec(objects)["terminationGracePeriodSeconds"]
    # Serving through drain_delay, requests in flight through shutdown_grace, then the flush.
    assert grace >= pre_stop + server.drain_delay + server.shutdown_grace + OVERRUN


def pod_annotations(chart: helm.Chart, values: dict[str, Any] | None) -> dict[str, str]:
    template = only(render(chart, values), "Deployment")["spec"]["template"]
    annotations: dict[str, str] = template["metadata"].get("annotations") or {}
    return annotations


NO_RELOAD: dict[str, Any] = {"config": {"reload": {"enabled": False}}}
DEBUG_NO_RELOAD: dict[str, Any] = {
    "config": {"reload": {"enabled": False}, "logging": {"level": "debug"}}
}


def test_with_reload_on_a_config_change_leaves_the_pods_running(chart: helm.Chart) -> None:
    debug = {"config": {"logging": {"level": "debug"}}}
    assert "checksum/config" not in pod_annotations(chart, None)
    assert pod_annotations(chart, None) == pod_annotations(chart, debug)
    objects = render(chart)
    assert edgeproxy_config(objects, pod_env(proxy(objects), {})).reload.enabled


def test_with_reload_off_a_config_change_rolls_the_pods(chart: helm.Chart) -> None:
    def checksum(values: dict[str, Any]) -> str:
        return pod_annotations(chart, values)["checksum/config"]

    assert checksum(NO_RELOAD) == checksum(NO_RELOAD)
    assert checksum(NO_RELOAD) != checksum(DEBUG_NO_RELOAD)


@pytest.mark.parametrize("values", [CHART_SECRET, {**CHART_SECRET, **NO_RELOAD}])
def test_a_chart_made_secret_change_rolls_the_pods_whatever_reload_says(
    chart: helm.Chart, values: dict[str, Any]
) -> None:
    changed = {**values, "providerSecrets": {**SECRET_DATA, "OPENAI_API_KEY": "sk-other"}}
    before = pod_annotations(chart, values)["checksum/secret"]
    assert before != pod_annotations(chart, changed)["checksum/secret"]


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
    for values in ALL_SETS.values():
        notes = next(
            text
            for path, text in chart.render(values, name=RELEASE, namespace=NAMESPACE).items()
            if path.endswith("NOTES.txt")
        )
        assert ("/readyz" in notes) == (values is not OWN_TLS)
        assert ("edgeproxy.io/inject=enabled" in notes) == (values in INJECTOR_SETS.values())


# --- the sidecar injector ------------------------------------------------------------------------

INJECTOR_NAME = f"{RELEASE}-edgeproxy-injector"


def injector_settings(objects: list[dict[str, Any]]) -> InjectorSettings:
    """The injector's settings file, read by edgeproxy's own parser."""
    text = named(objects, "ConfigMap", INJECTOR_NAME)["data"]["settings.yaml"]
    try:
        return parse_settings(yaml.safe_load(text))
    except ConfigError as err:
        pytest.fail(f"the chart's injector settings are rejected: {err.problems}\n{text}")


def test_injector_is_off_by_default(chart: helm.Chart) -> None:
    objects = render(chart)
    assert not [o for o in objects if "injector" in o["metadata"]["name"]]
    assert "MutatingWebhookConfiguration" not in {o["kind"] for o in objects}


def test_injector_settings_are_the_sidecar_the_chart_deploys(chart: helm.Chart) -> None:
    objects = render(chart, INJECTOR)
    assert injector_settings(objects) == InjectorSettings(
        image="edgeproxy:0.1.0", native_sidecar=True
    )
    chart_sidecar = proxy(objects)
    injected = plan(
        {"metadata": {}, "spec": {"containers": [{"name": "app", "image": "app"}]}},
        True,
        injector_settings(objects),
    ).patch[-1]["value"][0]
    for field in ("image", "resources", "securityContext"):
        assert injected[field] == chart_sidecar[field], field
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert injected[probe]["httpGet"]["path"] == chart_sidecar[probe]["httpGet"]["path"]


def test_injector_settings_follow_the_config_ports_and_the_injector_values(
    chart: helm.Chart,
) -> None:
    values = {
        "config": {"server": {"port": 18080}, "admin": {"port": 19090}},
        "injector": {
            "enabled": True,
            "nativeSidecar": False,
            "sidecar": {
                "configMap": "llm-config",
                "secret": "",
                "resources": {"requests": {"cpu": "20m"}, "limits": {"memory": "1Gi"}},
                "env": {"EDGEPROXY_LOG_LEVEL": "debug", "ON": "1"},  # ON: no YAML boolean
            },
        },
    }
    settings = injector_settings(render(chart, values))
    assert (settings.port, settings.admin_port) == (18080, 19090)
    assert (settings.native_sidecar, settings.config_map, settings.secret) == (
        False,
        "llm-config",
        "",
    )
    assert settings.resources == Resources("20m", None, None, "1Gi")
    assert settings.env == (("EDGEPROXY_LOG_LEVEL", "debug"), ("ON", "1"))


def test_a_settings_change_rolls_the_injector(chart: helm.Chart) -> None:
    def checksum(values: dict[str, Any]) -> str:
        deployment = named(render(chart, values), "Deployment", INJECTOR_NAME)
        return str(
            deployment["spec"]["template"]["metadata"]["annotations"]["checksum/injector-settings"]
        )

    changed = {"injector": {"enabled": True, "sidecar": {"configMap": "other"}}}
    assert checksum(INJECTOR) == checksum(INJECTOR) != checksum(changed)


@pytest.mark.parametrize("values", INJECTOR_SETS.values(), ids=INJECTOR_SETS.keys())
def test_webhooks_pick_their_path_by_namespace_label_and_skip_system_namespaces(
    chart: helm.Chart, values: dict[str, Any]
) -> None:
    objects = render(chart, values)
    configuration = only(objects, "MutatingWebhookConfiguration")
    assert configuration["metadata"]["name"] == f"{INJECTOR_NAME}-{NAMESPACE}"
    service = named(objects, "Service", INJECTOR_NAME)
    (service_port,) = service["spec"]["ports"]
    paths = {}
    for webhook in configuration["webhooks"]:
        assert webhook["sideEffects"] == "None"
        assert webhook["admissionReviewVersions"] == ["v1"]
        assert webhook["timeoutSeconds"] <= 10
        assert webhook["failurePolicy"] == values["injector"].get("failurePolicy", "Ignore")
        assert webhook["reinvocationPolicy"] == "Never"
        (rule,) = webhook["rules"]
        assert (rule["operations"], rule["resources"]) == (["CREATE"], ["pods"])
        target = webhook["clientConfig"]["service"]
        assert (target["name"], target["namespace"]) == (INJECTOR_NAME, NAMESPACE)
        assert target["port"] == service_port["port"]
        label, names = webhook["namespaceSelector"]["matchExpressions"]
        assert names == {
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": ["kube-system", "kube-public", "kube-node-lease", NAMESPACE],
        }
        paths[target["path"]] = (label["key"], label["operator"], label["values"])
    assert paths == {
        "/inject/namespace": ("edgeproxy.io/inject", "In", ["enabled"]),
        "/inject": ("edgeproxy.io/inject", "NotIn", ["enabled", "disabled"]),
    }


@pytest.mark.parametrize("values", INJECTOR_SETS.values(), ids=INJECTOR_SETS.keys())
def test_injector_serves_https_from_its_secret_behind_its_own_service(
    chart: helm.Chart, values: dict[str, Any]
) -> None:
    objects = render(chart, values)
    deployment = named(objects, "Deployment", INJECTOR_NAME)
    spec = deployment["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    args = dict(arg.removeprefix("--").split("=", 1) for arg in c["args"][1:])
    assert c["args"][0] == "inject"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert args["settings"] == mounts["settings"] + "/settings.yaml"
    assert volumes["settings"]["configMap"]["name"] == INJECTOR_NAME
    assert (args["cert"], args["key"]) == (mounts["tls"] + "/tls.crt", mounts["tls"] + "/tls.key")
    # 10250: the one port besides 443 that GKE private clusters (and cert-manager's webhook)
    # let the control plane reach on nodes; on 8443 every review would time out there.
    assert int(args["port"]) == port_number(c, "https") == 10250
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["automountServiceAccountToken"] is False
    service = named(objects, "Service", INJECTOR_NAME)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    admin = [o for o in objects if o["kind"] == "Service" and o is not service]
    for other in admin:  # the sidecar's admin Service never reaches the injector
        assert not other["spec"]["selector"].items() <= labels.items()
    own = values["injector"]["tls"].get("secretName") if "tls" in values["injector"] else None
    assert volumes["tls"]["secret"]["secretName"] == (own or f"{INJECTOR_NAME}-tls")


def test_a_stopping_injector_answers_until_its_endpoint_is_gone(chart: helm.Chart) -> None:
    """The API server learns of a removed endpoint after the pod got SIGTERM: an injector that
    stopped at once would meanwhile leave new pods without their sidecar (failurePolicy
    Ignore) or refuse them (Fail), at every roll of the injector."""
    deployment = named(render(chart, INJECTOR), "Deployment", INJECTOR_NAME)
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and int(command[1]) >= 5


def test_cert_manager_issues_the_certificate_and_injects_its_ca(chart: helm.Chart) -> None:
    objects = render(chart, INJECTOR)
    configuration = only(objects, "MutatingWebhookConfiguration")
    annotation = configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert annotation == f"{NAMESPACE}/{INJECTOR_NAME}"
    assert all("caBundle" not in w["clientConfig"] for w in configuration["webhooks"])
    serving = named(objects, "Certificate", INJECTOR_NAME)
    tls_volume = named(objects, "Deployment", INJECTOR_NAME)["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": serving["spec"]["secretName"]}} in tls_volume
    assert f"{INJECTOR_NAME}.{NAMESPACE}.svc" in serving["spec"]["dnsNames"]
    # serving certificate <- CA issuer <- CA certificate <- self-signed issuer
    ca_issuer = named(objects, "Issuer", serving["spec"]["issuerRef"]["name"])
    ca = next(
        o
        for o in objects
        if o["kind"] == "Certificate"
        and o["spec"].get("secretName") == ca_issuer["spec"]["ca"]["secretName"]
    )
    assert ca["spec"]["isCA"] is True
    assert "selfSigned" in named(objects, "Issuer", ca["spec"]["issuerRef"]["name"])["spec"]


def test_an_issuer_of_your_own_replaces_the_self_signed_ca(chart: helm.Chart) -> None:
    issuer = {"name": "corp-ca", "kind": "ClusterIssuer"}
    values = {"injector": {"enabled": True, "tls": {"certManager": {"issuerRef": issuer}}}}
    objects = render(chart, values)
    assert [o for o in objects if o["kind"] == "Issuer"] == []
    certificate = only(objects, "Certificate")
    assert certificate["spec"]["issuerRef"] == {**issuer, "group": "cert-manager.io"}


def test_own_tls_secret_brings_its_ca_bundle_and_no_cert_manager(chart: helm.Chart) -> None:
    objects = render(chart, OWN_TLS)
    assert not [o for o in objects if o["apiVersion"].startswith("cert-manager.io/")]
    configuration = only(objects, "MutatingWebhookConfiguration")
    assert "annotations" not in configuration["metadata"]
    assert {w["clientConfig"]["caBundle"] for w in configuration["webhooks"]} == {CA_BUNDLE}
    # deployment.enabled false: the injector alone.
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"] == [INJECTOR_NAME]


def test_pod_disruption_budget_keeps_an_injector_up(chart: helm.Chart) -> None:
    objects = render(chart, INJECTOR)
    budget = only(objects, "PodDisruptionBudget")
    labels = named(objects, "Deployment", INJECTOR_NAME)["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert (
        named(objects, "Deployment", INJECTOR_NAME)["spec"]["replicas"]
        > budget["spec"]["maxUnavailable"]
    )
    off = {"injector": {"enabled": True, "podDisruptionBudget": {"enabled": False}}}
    assert [o for o in render(chart, off) if o["kind"] == "PodDisruptionBudget"] == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"injector": {"enabled": True, "tls": {"certManager": {"enabled": False}}}},
            r"without certManager\.enabled, give both secretName and caBundle",
        ),
        (
            {"injector": {"enabled": True, "nativeSidecar": "sometimes"}},
            r"injector\.nativeSidecar must be auto, true or false",
        ),
        (
            {"injector": {"enabled": True, "failurePolicy": "fail"}},
            r"injector\.failurePolicy must be Ignore or Fail",
        ),
        (
            {"injector": {"enabled": True, "reinvocationPolicy": "ifNeeded"}},
            r"injector\.reinvocationPolicy must be Never or IfNeeded",
        ),
        (
            {"injector": {"enabled": True, "timeoutSeconds": 60}},
            r"injector\.timeoutSeconds must be 1 to 30",
        ),
        (
            {"injector": {"enabled": True, "timeoutSeconds": 0}},
            r"injector\.timeoutSeconds must be 1 to 30",
        ),
    ],
)
def test_unusable_injector_values_are_refused(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(chart, values)
