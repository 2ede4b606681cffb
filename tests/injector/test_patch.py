"""The JSONPatch for pods of every shape, applied and held to the Kubernetes schemas."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from edgeproxy import __version__
from edgeproxy.injector.apply import apply
from edgeproxy.injector.patch import SECURITY_CONTEXT, plan, pointer
from edgeproxy.injector.settings import InjectorSettings
from tests.support.admission import patched, validate

SETTINGS = InjectorSettings(image="registry.example.com/edgeproxy:0.1.0")
MARKER = {"edgeproxy.io/injected": __version__}
VOLUMES = [
    {"name": "edgeproxy-config", "configMap": {"name": "edgeproxy-config"}},
    {"name": "edgeproxy-tmp", "emptyDir": {"sizeLimit": "16Mi"}},
]
BASE_URLS = [
    {"name": "OPENAI_BASE_URL", "value": "http://localhost:8080/v1"},
    {"name": "ANTHROPIC_BASE_URL", "value": "http://localhost:8080"},
]


def probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "edgeproxy-admin"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


# The whole sidecar, written out once: what every other test's "SIDECAR" stands for.
NATIVE_SIDECAR: dict[str, Any] = {
    "name": "edgeproxy",
    "image": "registry.example.com/edgeproxy:0.1.0",
    "imagePullPolicy": "IfNotPresent",
    "restartPolicy": "Always",
    "args": ["serve"],
    "env": [
        {"name": "EDGEPROXY_CONFIG", "value": "/etc/edgeproxy/edgeproxy.yaml"},
        {"name": "EDGEPROXY_PORT", "value": "8080"},
    ],
    "envFrom": [{"secretRef": {"name": "edgeproxy-keys", "optional": True}}],
    "ports": [{"name": "edgeproxy-admin", "containerPort": 9090, "protocol": "TCP"}],
    "startupProbe": probe("/healthz", 1, 30),
    "livenessProbe": probe("/healthz", 10, 3),
    "readinessProbe": probe("/readyz", 5, 2),
    "resources": {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    },
    "securityContext": SECURITY_CONTEXT,
    "volumeMounts": [
        {"name": "edgeproxy-config", "mountPath": "/etc/edgeproxy", "readOnly": True},
        {"name": "edgeproxy-tmp", "mountPath": "/tmp"},
    ],
}
CLASSIC_SIDECAR = {k: v for k, v in NATIVE_SIDECAR.items() if k != "restartPolicy"}


def app(name: str = "app", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": f"example/{name}:1", **extra}


def pod(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"generateName": "shop-7d9f-", "namespace": "shop"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def add(path: str, value: Any) -> dict[str, Any]:
    return {"op": "add", "path": path, "value": value}


ASKED = {"edgeproxy.io/inject": "true"}
SHAPES: dict[str, tuple[dict[str, Any], bool, list[dict[str, Any]]]] = {
    "bare pod in a labelled namespace (no annotations, volumes, env, init containers)": (
        pod({"containers": [app()]}),
        True,
        [
            add("/metadata/annotations", MARKER),
            add("/spec/volumes", VOLUMES),
            add("/spec/containers/0/env", BASE_URLS),
            add("/spec/initContainers", [NATIVE_SIDECAR]),
        ],
    ),
    "annotated pod with init containers, volumes and some env": (
        pod(
            {
                "initContainers": [app("migrate")],
                "containers": [
                    app(env=[{"name": "OPENAI_BASE_URL", "value": "http://gateway/v1"}]),
                    app("worker", env=[{"name": "QUEUE", "value": "jobs"}]),
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
            },
            {**ASKED, "team": "shop"},
        ),
        False,
        [
            add("/metadata/annotations/edgeproxy.io~1injected", __version__),
            add("/spec/volumes/-", VOLUMES[0]),
            add("/spec/volumes/-", VOLUMES[1]),
            add("/spec/containers/0/env/-", BASE_URLS[1]),
            add("/spec/containers/1/env/-", BASE_URLS[0]),
            add("/spec/containers/1/env/-", BASE_URLS[1]),
            add("/spec/initContainers/0", NATIVE_SIDECAR),
        ],
    ),
    "env already set: the app's own base URLs stay": (
        pod({"containers": [app(env=[*BASE_URLS[::-1]])]}, ASKED),
        False,
        [
            add("/metadata/annotations/edgeproxy.io~1injected", __version__),
            add("/spec/volumes", VOLUMES),
            add("/spec/initContainers", [NATIVE_SIDECAR]),
        ],
    ),
    "classic sidecar asked for by annotation": (
        pod({"containers": [app()]}, {**ASKED, "edgeproxy.io/native-sidecar": "false"}),
        False,
        [
            add("/metadata/annotations/edgeproxy.io~1injected", __version__),
            add("/spec/volumes", VOLUMES),
            add("/spec/containers/0/env", BASE_URLS),
            add("/spec/containers/-", CLASSIC_SIDECAR),
        ],
    ),
    "volume names taken: numbered past them": (
        pod({"containers": [app()], "volumes": [{"name": "edgeproxy-config", "emptyDir": {}}]}),
        True,
        [
            add("/metadata/annotations", MARKER),
            add("/spec/volumes/-", {**VOLUMES[0], "name": "edgeproxy-config-2"}),
            add("/spec/volumes/-", VOLUMES[1]),
            add("/spec/containers/0/env", BASE_URLS),
            add(
                "/spec/initContainers",
                [
                    {
                        **NATIVE_SIDECAR,
                        "volumeMounts": [
                            {**NATIVE_SIDECAR["volumeMounts"][0], "name": "edgeproxy-config-2"},
                            NATIVE_SIDECAR["volumeMounts"][1],
                        ],
                    }
                ],
            ),
        ],
    ),
    "app env turned off": (
        pod({"containers": [app()]}, {**ASKED, "edgeproxy.io/app-env": "false"}),
        False,
        [
            add("/metadata/annotations/edgeproxy.io~1injected", __version__),
            add("/spec/volumes", VOLUMES),
            add("/spec/initContainers", [NATIVE_SIDECAR]),
        ],
    ),
}


@pytest.mark.parametrize(("shape", "opted_in", "expected"), SHAPES.values(), ids=SHAPES.keys())
def test_each_pod_shape_gets_exactly_this_patch(
    shape: dict[str, Any], opted_in: bool, expected: list[dict[str, Any]]
) -> None:
    assert plan(shape, opted_in, SETTINGS).patch == expected


@pytest.mark.parametrize(("shape", "opted_in", "expected"), SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("kube_version", ["1.28", "1.31"])
def test_patched_pods_are_valid_kubernetes_pods(
    shape: dict[str, Any], opted_in: bool, expected: list[dict[str, Any]], kube_version: str
) -> None:
    """Native sidecars need 1.29: on 1.28 the chart sets native_sidecar false."""
    result = plan(shape, opted_in, InjectorSettings(native_sidecar=kube_version != "1.28"))
    assert result.patch
    injected = patched(shape, result.patch)
    validate(injected, kube_version)
    names = [c["name"] for c in injected["spec"]["containers"]]
    init_names = [c["name"] for c in injected["spec"].get("initContainers", [])]
    assert ("edgeproxy" in init_names) != ("edgeproxy" in names)


@pytest.mark.parametrize(("shape", "opted_in", "expected"), SHAPES.values(), ids=SHAPES.keys())
def test_injecting_twice_changes_the_pod_once(
    shape: dict[str, Any], opted_in: bool, expected: list[dict[str, Any]]
) -> None:
    once = patched(shape, plan(shape, opted_in, SETTINGS).patch)
    again = plan(once, opted_in, SETTINGS)
    assert (again.patch, again.reason) == ([], "already injected")


@pytest.mark.parametrize(("shape", "opted_in", "expected"), SHAPES.values(), ids=SHAPES.keys())
def test_own_applier_agrees_with_an_independent_rfc6902_implementation(
    shape: dict[str, Any], opted_in: bool, expected: list[dict[str, Any]]
) -> None:
    assert apply(copy.deepcopy(shape), expected) == patched(shape, expected)


LEFT_ALONE = {
    "not annotated, namespace not labelled": (pod({"containers": [app()]}), False, "not asked"),
    "opted out in a labelled namespace": (
        pod({"containers": [app()]}, {"edgeproxy.io/inject": "false"}),
        True,
        "opted out",
    ),
    "opted out in capitals": (
        pod({"containers": [app()]}, {"edgeproxy.io/inject": "FALSE"}),
        True,
        "opted out",
    ),
    "already carries the marker": (
        pod({"containers": [app()]}, {**ASKED, **MARKER}),
        False,
        "already injected",
    ),
    "already has a container named edgeproxy": (
        pod({"containers": [app(), app("edgeproxy")]}, ASKED),
        False,
        "already injected",
    ),
    "already has a native sidecar named edgeproxy": (
        pod({"containers": [app()], "initContainers": [app("edgeproxy")]}),
        True,
        "already injected",
    ),
}


@pytest.mark.parametrize(
    ("shape", "opted_in", "reason"), LEFT_ALONE.values(), ids=LEFT_ALONE.keys()
)
def test_pods_not_to_inject_get_an_empty_patch(
    shape: dict[str, Any], opted_in: bool, reason: str
) -> None:
    result = plan(shape, opted_in, SETTINGS)
    assert (result.patch, result.reason, result.warnings) == ([], reason, ())


REFUSED = {
    "unreadable inject annotation": (
        {"edgeproxy.io/inject": "yes"},
        {},
        "edgeproxy.io/inject: expected true or false, got 'yes'",
    ),
    "bad port": ({**ASKED, "edgeproxy.io/port": "80a"}, {}, "'80a' is not a port number"),
    "port of the app": (
        ASKED,
        {"ports": [{"containerPort": 8080}]},
        "container app already uses port 8080 (choose another with the edgeproxy.io/port",
    ),
    "admin port of the app": (
        ASKED,
        {"ports": [{"containerPort": 9090}]},
        "already uses port 9090 (choose another with the edgeproxy.io/admin-port",
    ),
    "data port equals admin port": (
        {**ASKED, "edgeproxy.io/port": "9090"},
        {},
        "the data port and the admin port are both 9090",
    ),
    "bad quantity": (
        {**ASKED, "edgeproxy.io/memory-limit": "lots"},
        {},
        "edgeproxy.io/memory-limit: 'lots' is not a Kubernetes quantity",
    ),
    "request above the limit": (
        {**ASKED, "edgeproxy.io/memory-request": "1Gi"},
        {},
        "memory request 1Gi is above its limit 256Mi",
    ),
    "bad config map name": (
        {**ASKED, "edgeproxy.io/config-map": "My_Config"},
        {},
        "'My_Config' is not a Kubernetes object name",
    ),
}


@pytest.mark.parametrize(("annotations", "extra", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_a_pod_whose_injection_would_break_it_is_left_alone_with_a_warning(
    annotations: dict[str, str], extra: dict[str, Any], message: str
) -> None:
    result = plan(pod({"containers": [app(**extra)]}, annotations), False, SETTINGS)
    assert result.patch == []
    assert len(result.warnings) == 1
    assert message in result.warnings[0]


@pytest.mark.parametrize("restart_policy", ["Never", "OnFailure"])
def test_run_to_completion_pods_get_no_classic_sidecar_that_would_keep_them_running(
    restart_policy: str,
) -> None:
    shape = pod({"containers": [app()], "restartPolicy": restart_policy}, ASKED)
    classic = plan(shape, False, InjectorSettings(native_sidecar=False))
    assert classic.patch == []
    assert "would never complete; it needs a native sidecar" in classic.warnings[0]
    native = plan(shape, False, SETTINGS)
    validate(patched(shape, native.patch), "1.31")


def test_host_network_pods_are_left_alone() -> None:
    result = plan(pod({"containers": [app()], "hostNetwork": True}, ASKED), False, SETTINGS)
    assert result.patch == []
    assert "host network" in result.warnings[0]


def test_windows_pods_are_left_alone() -> None:
    """The sidecar's image is Linux, and the API server refuses a Windows pod whose container
    sets seccompProfile, capabilities, runAsUser or readOnlyRootFilesystem: injecting would
    block the pod's creation."""
    shape = {"containers": [app()], "os": {"name": "windows"}}
    result = plan(pod(shape, ASKED), True, SETTINGS)
    assert result.patch == []
    assert "Windows" in result.warnings[0]


def test_annotations_choose_config_map_secret_ports_and_resources() -> None:
    annotations = {
        **ASKED,
        "edgeproxy.io/config-map": "shop-llm",
        "edgeproxy.io/secret": "shop-keys",
        "edgeproxy.io/port": "18080",
        "edgeproxy.io/admin-port": "19090",
        "edgeproxy.io/cpu-request": "100m",
        "edgeproxy.io/cpu-limit": "2",
        "edgeproxy.io/memory-request": "128Mi",
        "edgeproxy.io/memory-limit": "512Mi",
    }
    shape = pod({"containers": [app()]}, annotations)
    injected = patched(shape, plan(shape, False, SETTINGS).patch)
    validate(injected, "1.31")
    (sidecar,) = injected["spec"]["initContainers"]
    assert sidecar["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "2", "memory": "512Mi"},
    }
    assert {"name": "EDGEPROXY_PORT", "value": "18080"} in sidecar["env"]
    assert sidecar["envFrom"] == [{"secretRef": {"name": "shop-keys", "optional": True}}]
    assert sidecar["ports"][0]["containerPort"] == 19090
    assert injected["spec"]["volumes"][0]["configMap"] == {"name": "shop-llm"}
    assert injected["spec"]["containers"][0]["env"] == [
        {"name": "OPENAI_BASE_URL", "value": "http://localhost:18080/v1"},
        {"name": "ANTHROPIC_BASE_URL", "value": "http://localhost:18080"},
    ]


def test_settings_give_extra_env_no_secret_and_a_pre_stop_sleep() -> None:
    settings = InjectorSettings(
        native_sidecar=False,
        secret="",
        pre_stop_seconds=5,
        env=(("EDGEPROXY_LOG_LEVEL", "debug"),),
    )
    (*_, sidecar_op) = plan(pod({"containers": [app()]}, ASKED), False, settings).patch
    sidecar = sidecar_op["value"]
    assert "envFrom" not in sidecar
    assert sidecar["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    assert sidecar["env"][-1] == {"name": "EDGEPROXY_LOG_LEVEL", "value": "debug"}


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (
            ("metadata", "annotations", "edgeproxy.io/injected"),
            "/metadata/annotations/edgeproxy.io~1injected",
        ),
        (("metadata", "annotations", "a~b/c"), "/metadata/annotations/a~0b~1c"),
        (("spec", "containers", 0, "env", "-"), "/spec/containers/0/env/-"),
    ],
)
def test_pointers_escape_tilde_and_slash(parts: tuple[str | int, ...], expected: str) -> None:
    assert pointer(*parts) == expected
