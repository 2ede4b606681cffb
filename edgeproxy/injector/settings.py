"""What the injector adds to a pod, read once from its settings file and checked whole, then
adjusted per pod by the pod's `edgeproxy.io/*` annotations.

    image: registry.example.com/edgeproxy:0.1.0
    image_pull_policy: IfNotPresent
    config_map: edgeproxy-config     # the ConfigMap holding edgeproxy.yaml, in the pod's namespace
    secret: edgeproxy-keys           # its keys become the sidecar's env (optional; "" for none)
    port: 8080                       # the data port the apps' base URLs point at
    admin_port: 9090                 # config.admin.port: the probes use it
    native_sidecar: true             # restartPolicy: Always init container (Kubernetes >= 1.29)
    pre_stop_seconds: 0              # classic container only: a preStop sleep before its SIGTERM
    resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {cpu: "1", memory: 256Mi}}
    probes:                          # GET /healthz (startup, liveness), /readyz (readiness)
      startup: {period_seconds: 1, timeout_seconds: 2, failure_threshold: 30}
    env: {EDGEPROXY_LOG_LEVEL: info} # more environment for the sidecar

A per-pod annotation the injector cannot honour is a problem of that pod alone: the pod is left
as it is and the problem comes back as an admission warning, since a pod the API server rejects
for a bad quantity would be worse than a pod without its sidecar.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from edgeproxy import __version__
from edgeproxy.config_reader import ConfigError, Reader, show

PREFIX = "edgeproxy.io/"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_QUANTITY = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[mkMGTPE]|[eE][+-]?\d+)?$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def quantity(text: str) -> Decimal | None:
    """A Kubernetes resource quantity ("250m", "64Mi", "1e3") as a number, None if malformed."""
    match = _QUANTITY.match(text)
    if match is None:
        return None
    number, suffix = match.groups()
    try:
        value = Decimal(number)
    except InvalidOperation:
        return None
    if suffix in _BINARY:
        return value * Decimal(1024) ** _BINARY[suffix]
    if suffix in _DECIMAL:
        return value.scaleb(_DECIMAL[suffix])
    return value.scaleb(int(suffix[1:])) if suffix else value


@dataclass(frozen=True, slots=True)
class Resources:
    """Requests and limits of the sidecar; None leaves one out."""

    cpu_request: str | None = "50m"
    memory_request: str | None = "64Mi"
    cpu_limit: str | None = "1"
    memory_limit: str | None = "256Mi"

    def problems(self) -> list[str]:
        """A request above its limit, which the API server would refuse the whole pod for."""
        found = []
        for kind, request, limit in (
            ("cpu", self.cpu_request, self.cpu_limit),
            ("memory", self.memory_request, self.memory_limit),
        ):
            low = quantity(request) if request else None
            high = quantity(limit) if limit else None
            if low is not None and high is not None and low > high:
                found.append(f"{kind} request {request} is above its limit {limit}")
        return found

    def manifest(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for group, kind, value in (
            ("requests", "cpu", self.cpu_request),
            ("requests", "memory", self.memory_request),
            ("limits", "cpu", self.cpu_limit),
            ("limits", "memory", self.memory_limit),
        ):
            if value:
                out.setdefault(group, {})[kind] = value
        return out


@dataclass(frozen=True, slots=True)
class Probe:
    period_seconds: int
    timeout_seconds: int
    failure_threshold: int

    def manifest(self, path: str, port: str) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": port},
            "periodSeconds": self.period_seconds,
            "timeoutSeconds": self.timeout_seconds,
            "failureThreshold": self.failure_threshold,
        }


@dataclass(frozen=True, slots=True)
class Probes:
    """The chart's timings (helm/edgeproxy/values.yaml proxy.*Probe)."""

    startup: Probe = Probe(1, 2, 30)
    liveness: Probe = Probe(10, 2, 3)
    readiness: Probe = Probe(5, 2, 2)


@dataclass(frozen=True, slots=True)
class InjectorSettings:
    image: str = f"edgeproxy:{__version__}"
    image_pull_policy: str = "IfNotPresent"
    config_map: str = "edgeproxy-config"
    secret: str = "edgeproxy-keys"
    port: int = 8080
    admin_port: int = 9090
    native_sidecar: bool = True
    pre_stop_seconds: int = 0  # server.drain_delay already serves on after SIGTERM
    resources: Resources = field(default_factory=Resources)
    probes: Probes = field(default_factory=Probes)
    env: tuple[tuple[str, str], ...] = ()


# --- the settings file ---------------------------------------------------------------------------

_FIELDS = (
    "image",
    "image_pull_policy",
    "config_map",
    "secret",
    "port",
    "admin_port",
    "native_sidecar",
    "pre_stop_seconds",
    "resources",
    "probes",
    "env",
)


def _name(r: Reader, path: str, value: Any) -> str:
    text = r.text(path, value)
    if isinstance(value, str) and not _DNS_SUBDOMAIN.match(text):
        r.fail(path, f"expected a Kubernetes object name (RFC 1123 subdomain), got {show(value)}")
    return text


def _quantity(r: Reader, path: str, value: Any) -> str | None:
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if isinstance(text, str) and quantity(text) is not None:
        return text
    r.fail(path, f'expected a Kubernetes quantity such as "250m", "1" or "64Mi", got {show(value)}')
    return None


def _resources(r: Reader, raw: Any, path: str) -> Resources:
    s = r.section(raw, path, ("requests", "limits"))
    values: dict[str, str | None] = {}
    for group, suffix in (("requests", "request"), ("limits", "limit")):
        where = f"{path}.{group}"
        section = r.section(s.get(group), where, ("cpu", "memory"))
        for kind in ("cpu", "memory"):
            if section.get(kind) is not None:
                values[f"{kind}_{suffix}"] = _quantity(r, f"{where}.{kind}", section[kind])
            elif group in s:
                values[f"{kind}_{suffix}"] = None
    resources = replace(Resources(), **values)
    for problem in resources.problems():
        r.fail(path, problem)
    return resources


_PROBE_FIELDS = ("period_seconds", "timeout_seconds", "failure_threshold")


def _probes(r: Reader, raw: Any, path: str) -> Probes:
    s = r.section(raw, path, ("startup", "liveness", "readiness"))
    chosen = {}
    for kind in ("startup", "liveness", "readiness"):
        default: Probe = getattr(Probes(), kind)
        where = f"{path}.{kind}"
        p = r.section(
            s.get(kind), where, ("period_seconds", "timeout_seconds", "failure_threshold")
        )
        chosen[kind] = Probe(
            r.get(p, where, "period_seconds", r.count, default.period_seconds),
            r.get(p, where, "timeout_seconds", r.count, default.timeout_seconds),
            r.get(p, where, "failure_threshold", r.count, default.failure_threshold),
        )
    return Probes(**chosen)


def _env(r: Reader, path: str, value: Any) -> tuple[tuple[str, str], ...]:
    pairs = tuple(r.string_map(path, value).items())
    for name, _ in pairs:
        if not _ENV_NAME.match(name):
            r.fail(f"{path}.{name}", "not a valid environment variable name")
    return pairs


def parse_settings(raw: Any) -> InjectorSettings:
    """Validate the settings' YAML; raises ConfigError naming every bad field."""
    r = Reader({})
    s = r.section(raw, "", _FIELDS)
    d = InjectorSettings()
    settings = InjectorSettings(
        image=r.get(s, "", "image", r.nonempty_text, d.image),
        image_pull_policy=r.get(s, "", "image_pull_policy", _pull_policy(r), d.image_pull_policy),
        config_map=r.get(s, "", "config_map", lambda p, v: _name(r, p, v), d.config_map),
        secret=r.get(s, "", "secret", lambda p, v: _name(r, p, v) if v != "" else "", d.secret),
        port=r.get(s, "", "port", _listen_port(r), d.port),
        admin_port=r.get(s, "", "admin_port", _listen_port(r), d.admin_port),
        native_sidecar=r.get(s, "", "native_sidecar", r.boolean, d.native_sidecar),
        pre_stop_seconds=r.get(s, "", "pre_stop_seconds", r.whole, d.pre_stop_seconds),
        resources=_resources(r, s.get("resources"), "resources"),
        probes=_probes(r, s.get("probes"), "probes"),
        env=r.get(s, "", "env", lambda p, v: _env(r, p, v), ()),
    )
    if settings.port == settings.admin_port:
        r.fail("admin_port", f"must differ from port ({settings.port})")
    if r.problems:
        raise ConfigError(r.problems)
    return settings


def _pull_policy(r: Reader) -> Any:
    def parse(path: str, value: Any) -> str:
        if value in PULL_POLICIES:
            return str(value)
        r.fail(path, f"expected one of {', '.join(PULL_POLICIES)}, got {show(value)}")
        return PULL_POLICIES[1]

    return parse


def _listen_port(r: Reader) -> Any:
    def parse(path: str, value: Any) -> int:
        port = r.count(path, value)
        if port > 65535:
            r.fail(path, f"expected a port number 1-65535, got {show(value)}")
        return port

    return parse


def load_settings(path: str | Path | None) -> InjectorSettings:
    """The settings file at `path`, or the defaults when None."""
    if path is None:
        return InjectorSettings()
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the file: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    return parse_settings(raw)


# --- per-pod annotations -------------------------------------------------------------------------

INJECT = PREFIX + "inject"
INJECTED = PREFIX + "injected"
CONFIG_MAP = PREFIX + "config-map"
SECRET = PREFIX + "secret"
PORT = PREFIX + "port"
ADMIN_PORT = PREFIX + "admin-port"
NATIVE_SIDECAR = PREFIX + "native-sidecar"
APP_ENV = PREFIX + "app-env"
CPU_REQUEST = PREFIX + "cpu-request"
CPU_LIMIT = PREFIX + "cpu-limit"
MEMORY_REQUEST = PREFIX + "memory-request"
MEMORY_LIMIT = PREFIX + "memory-limit"
_RESOURCE_ANNOTATIONS = {
    CPU_REQUEST: "cpu_request",
    CPU_LIMIT: "cpu_limit",
    MEMORY_REQUEST: "memory_request",
    MEMORY_LIMIT: "memory_limit",
}


@dataclass(frozen=True, slots=True)
class PodChoices:
    """The settings for one pod once its annotations are applied, or what was wrong with them."""

    settings: InjectorSettings
    app_env: bool  # set OPENAI_BASE_URL / ANTHROPIC_BASE_URL on the app containers
    problems: tuple[str, ...]


def flag(value: str) -> bool | None:
    """An annotation's true or false (any case), None for anything else."""
    lowered = value.strip().lower()
    return True if lowered == "true" else False if lowered == "false" else None


def _names(annotations: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    for key, attr in ((CONFIG_MAP, "config_map"), (SECRET, "secret")):
        value = annotations.get(key)
        if value is None:
            continue
        if _DNS_SUBDOMAIN.match(value):
            chosen[attr] = value
        else:
            problems.append(f"{key}: {value!r} is not a Kubernetes object name")
    return chosen


def _ports(annotations: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    for key, attr in ((PORT, "port"), (ADMIN_PORT, "admin_port")):
        value = annotations.get(key)
        if value is None:
            continue
        if value.isdigit() and 1 <= int(value) <= 65535:
            chosen[attr] = int(value)
        else:
            problems.append(f"{key}: {value!r} is not a port number 1-65535")
    return chosen


def _flag(annotations: Mapping[str, str], key: str, problems: list[str]) -> bool | None:
    value = annotations.get(key)
    if value is None:
        return None
    if flag(value) is None:
        problems.append(f"{key}: expected true or false, got {value!r}")
    return flag(value)


def _pod_resources(
    resources: Resources, annotations: Mapping[str, str], problems: list[str]
) -> Resources:
    for key, attr in _RESOURCE_ANNOTATIONS.items():
        value = annotations.get(key)
        if value is None:
            continue
        if quantity(value) is None:
            problems.append(f"{key}: {value!r} is not a Kubernetes quantity")
        else:
            resources = replace(resources, **{attr: value})
    problems += [f"resources: {problem}" for problem in resources.problems()]
    return resources


def for_pod(settings: InjectorSettings, annotations: Mapping[str, Any]) -> PodChoices:
    texts = {k: v for k, v in annotations.items() if k.startswith(PREFIX) and isinstance(v, str)}
    problems: list[str] = []
    chosen = _names(texts, problems) | _ports(texts, problems)
    native = _flag(texts, NATIVE_SIDECAR, problems)
    if native is not None:
        chosen["native_sidecar"] = native
    resources = _pod_resources(settings.resources, texts, problems)
    pod_settings = replace(settings, resources=resources, **chosen)
    if pod_settings.port == pod_settings.admin_port:
        problems.append(f"{PORT}: the data port and the admin port are both {pod_settings.port}")
    app_env = _flag(texts, APP_ENV, problems)
    return PodChoices(pod_settings, app_env is not False, tuple(problems))
