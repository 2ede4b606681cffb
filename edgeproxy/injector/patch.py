"""The sidecar injection itself, as a pure function: a pod (or a pod template) and the injector's
settings in, an RFC 6902 JSONPatch out. No aiohttp, no Kubernetes client: the webhook and
`edgeproxy inject --dry-run` both call `plan`.

Which pods: one annotated `edgeproxy.io/inject: "true"`, or any pod of a namespace that opted in
(`namespace_opted_in`, decided by which webhook path the API server called, since an
AdmissionReview carries no namespace labels); `"false"` opts a pod out even there.

The patch only ever uses `add`, in an order where each parent exists before its children: an
absent `metadata.annotations`, `spec.volumes`, `spec.initContainers` or container `env` is added
whole, an existing one is appended to. Annotation keys are escaped in paths (RFC 6901: `~` is
`~0`, `/` is `~1`). A pod already injected (the `edgeproxy.io/injected` annotation, or a container
named `edgeproxy`) gets an empty patch, so the same pod seen twice is changed once.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgeproxy import __version__
from edgeproxy.injector.settings import (
    INJECT,
    INJECTED,
    InjectorSettings,
    flag,
    for_pod,
)

CONTAINER = "edgeproxy"
ADMIN_PORT_NAME = "edgeproxy-admin"
CONFIG_DIR = "/etc/edgeproxy"
CONFIG_FILE = f"{CONFIG_DIR}/edgeproxy.yaml"
BASE_URLS = ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL")
# The chart's proxy container (helm/edgeproxy/values.yaml proxy.securityContext): the image's
# user, nothing to escalate to, a read-only root with /tmp as the one writable place.
SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
TMP_SIZE = "16Mi"

Operation = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with one pod: the patch (empty: leave it), why, and what its owner should know."""

    patch: list[Operation]
    reason: str
    warnings: tuple[str, ...] = ()


def pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON Pointer to `parts`."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def plan(pod: Mapping[str, Any], namespace_opted_in: bool, settings: InjectorSettings) -> Plan:
    metadata = _mapping(pod.get("metadata"))
    annotations = _mapping(metadata.get("annotations"))
    spec = _mapping(pod.get("spec"))
    left_alone = _leave_alone(annotations, spec, namespace_opted_in)
    if left_alone is not None:
        return left_alone
    containers = _list(spec.get("containers"))
    choices = for_pod(settings, annotations)
    problems = list(choices.problems) + _conflicts(spec, choices.settings)
    if problems:
        return Plan([], "not injected", tuple(f"edgeproxy not injected: {p}" for p in problems))
    chosen = choices.settings
    ops: list[Operation] = []
    ops += _annotate(metadata, isinstance(pod.get("metadata"), Mapping))
    config_volume, tmp_volume = _volume_names(spec)
    ops += _append(spec, ("spec",), "volumes", _volumes(chosen, config_volume, tmp_volume))
    if choices.app_env:
        for index, container in enumerate(containers):
            ops += _app_env(_mapping(container), index, chosen.port)
    sidecar = _sidecar(chosen, config_volume, tmp_volume)
    if chosen.native_sidecar:
        if isinstance(spec.get("initContainers"), list):
            ops.append(_add(pointer("spec", "initContainers", 0), sidecar))
        else:
            ops.append(_add(pointer("spec", "initContainers"), [sidecar]))
    else:
        ops += _append(spec, ("spec",), "containers", [sidecar])
    mode = "native sidecar" if chosen.native_sidecar else "container"
    return Plan(ops, f"injected ({mode})")


def _leave_alone(
    annotations: Mapping[str, Any], spec: Mapping[str, Any], namespace_opted_in: bool
) -> Plan | None:
    """Why this pod gets no sidecar, or None when it should get one."""
    asked = annotations.get(INJECT)
    choice = flag(asked) if isinstance(asked, str) else None
    if asked is not None and choice is None:
        warning = f"{INJECT}: expected true or false, got {asked!r}"
        return Plan([], "bad inject annotation", (warning,))
    if choice is False:
        return Plan([], "opted out")
    if not (choice or namespace_opted_in):
        return Plan([], "not asked")
    containers = _list(spec.get("containers"))
    if not containers or not all(isinstance(c, Mapping) for c in containers):
        return Plan([], "no containers")
    if INJECTED in annotations or any(
        _mapping(c).get("name") == CONTAINER
        for c in (*containers, *_list(spec.get("initContainers")))
    ):
        return Plan([], "already injected")
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else []


def _add(path: str, value: Any) -> Operation:
    return {"op": "add", "path": path, "value": value}


def _append(
    parent: Mapping[str, Any], at: tuple[str | int, ...], key: str, items: list[Any]
) -> list[Operation]:
    """Add `items` to the list `parent[key]`, creating the list when the pod has none."""
    if isinstance(parent.get(key), list):
        return [_add(pointer(*at, key, "-"), item) for item in items]
    return [_add(pointer(*at, key), items)]


def _conflicts(spec: Mapping[str, Any], settings: InjectorSettings) -> list[str]:
    """What would make the injected pod fail: a port the pod already declares, the node's
    network (two injected pods on one node would fight over the same loopback port), a
    Windows pod (the API server refuses the sidecar's Linux securityContext there), or a
    pod meant to run to completion that a classic sidecar would keep running."""
    if spec.get("hostNetwork") is True:
        return ["the pod uses the host network"]
    if _mapping(spec.get("os")).get("name") == "windows":
        return ["the pod runs on Windows; the sidecar is a Linux container"]
    if not settings.native_sidecar and spec.get("restartPolicy") in ("Never", "OnFailure"):
        return [
            f"a classic sidecar never exits, so this pod (restartPolicy: "
            f"{spec['restartPolicy']}) would never complete; it needs a native sidecar "
            f'(Kubernetes >= 1.29, edgeproxy.io/native-sidecar: "true")'
        ]
    problems = []
    declared = {
        port.get("containerPort"): _mapping(container).get("name")
        for container in (*_list(spec.get("containers")), *_list(spec.get("initContainers")))
        for port in map(_mapping, _list(_mapping(container).get("ports")))
    }
    for what, port in (("port", settings.port), ("admin-port", settings.admin_port)):
        if port in declared:
            problems.append(
                f"container {declared[port]} already uses port {port} "
                f"(choose another with the edgeproxy.io/{what} annotation)"
            )
    return problems


def _annotate(metadata: Mapping[str, Any], has_metadata: bool) -> list[Operation]:
    marker = {INJECTED: __version__}
    if not has_metadata:
        return [_add(pointer("metadata"), {"annotations": marker})]
    if not isinstance(metadata.get("annotations"), Mapping):
        return [_add(pointer("metadata", "annotations"), marker)]
    return [_add(pointer("metadata", "annotations", INJECTED), __version__)]


def _volume_names(spec: Mapping[str, Any]) -> tuple[str, str]:
    """`edgeproxy-config` and `edgeproxy-tmp`, numbered past any the pod already has."""
    taken = {_mapping(v).get("name") for v in _list(spec.get("volumes"))}

    def free(name: str) -> str:
        candidates = (name, *(f"{name}-{n}" for n in range(2, len(taken) + 3)))
        return next(c for c in candidates if c not in taken)

    return free("edgeproxy-config"), free("edgeproxy-tmp")


def _volumes(settings: InjectorSettings, config: str, tmp: str) -> list[dict[str, Any]]:
    return [
        {"name": config, "configMap": {"name": settings.config_map}},
        {"name": tmp, "emptyDir": {"sizeLimit": TMP_SIZE}},
    ]


def _app_env(container: Mapping[str, Any], index: int, port: int) -> list[Operation]:
    """The base URLs an app container does not set itself. An explicit `env` entry wins over
    `envFrom`, so a base URL that only comes from `envFrom` is overridden: such pods say
    `edgeproxy.io/app-env: "false"`."""
    present = {_mapping(var).get("name") for var in _list(container.get("env"))}
    values = {"OPENAI_BASE_URL": f"http://localhost:{port}/v1"}
    values["ANTHROPIC_BASE_URL"] = f"http://localhost:{port}"
    missing = [{"name": name, "value": values[name]} for name in BASE_URLS if name not in present]
    if not missing:
        return []
    return _append(container, ("spec", "containers", index), "env", missing)


def _sidecar(settings: InjectorSettings, config_volume: str, tmp_volume: str) -> dict[str, Any]:
    env = [
        {"name": "EDGEPROXY_CONFIG", "value": CONFIG_FILE},
        # Explicit, so the data port is the one the apps were given whatever the ConfigMap
        # says, and a Service named "edgeproxy" cannot inject EDGEPROXY_PORT=tcp://...
        {"name": "EDGEPROXY_PORT", "value": str(settings.port)},
        *({"name": name, "value": value} for name, value in settings.env),
    ]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
    }
    if settings.native_sidecar:
        container["restartPolicy"] = "Always"
    container |= {"args": ["serve"], "env": env}
    if settings.secret:
        container["envFrom"] = [{"secretRef": {"name": settings.secret, "optional": True}}]
    probes = settings.probes
    container |= {
        "ports": [
            {"name": ADMIN_PORT_NAME, "containerPort": settings.admin_port, "protocol": "TCP"}
        ],
        "startupProbe": probes.startup.manifest("/healthz", ADMIN_PORT_NAME),
        "livenessProbe": probes.liveness.manifest("/healthz", ADMIN_PORT_NAME),
        "readinessProbe": probes.readiness.manifest("/readyz", ADMIN_PORT_NAME),
    }
    if not settings.native_sidecar and settings.pre_stop_seconds > 0:
        # exec rather than the `sleep` action, which needs Kubernetes 1.30: a classic sidecar
        # is what clusters older than native sidecars get. The image's Debian base has sleep.
        command = ["sleep", str(settings.pre_stop_seconds)]
        container["lifecycle"] = {"preStop": {"exec": {"command": command}}}
    container |= {
        "resources": settings.resources.manifest(),
        "securityContext": copy.deepcopy(SECURITY_CONTEXT),
        "volumeMounts": [
            {"name": config_volume, "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": tmp_volume, "mountPath": "/tmp"},
        ],
    }
    return container
