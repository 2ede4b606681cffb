"""`edgeproxy inject --dry-run`: the injection applied to manifests in a file, for GitOps
repositories and for review before a namespace is labelled.

Each YAML document is patched where it holds pods: a Pod itself, the pod template of a
Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or ReplicationController, a CronJob's job
template, and the items of a List. Other documents pass through unchanged. Every pod is treated
as in a labelled namespace: injected unless annotated `edgeproxy.io/inject: "false"`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from edgeproxy.injector.apply import apply
from edgeproxy.injector.patch import plan
from edgeproxy.injector.settings import InjectorSettings

TEMPLATED = frozenset(
    ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController")
)


@dataclass(frozen=True, slots=True)
class Injected:
    documents: list[Any]
    notes: list[str]  # one line per pod: where, what was done, and any warning


def _child(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _pods(document: Any, where: str) -> Iterator[tuple[dict[str, Any], str]]:
    """The pods (or pod templates) inside `document`, each with a name to report it by."""
    if not isinstance(document, dict):
        return
    kind = document.get("kind")
    name = f"{where}{kind}/{_child(document, 'metadata').get('name', '?')}"
    spec = _child(document, "spec")
    if kind == "Pod":
        yield document, name
    elif kind in TEMPLATED and "template" in spec:
        yield _child(spec, "template"), name
    elif kind == "CronJob":
        template = _child(_child(_child(spec, "jobTemplate"), "spec"), "template")
        if template:
            yield template, name
    elif kind == "List" and isinstance(document.get("items"), list):
        for item in document["items"]:
            yield from _pods(item, f"{where}List/")


def inject_text(text: str, settings: InjectorSettings) -> Injected:
    """Every document of the YAML `text`, its pods injected. Raises yaml.YAMLError."""
    documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    notes = []
    for document in documents:
        for pod, name in _pods(document, ""):
            result = plan(pod, True, settings)
            apply(pod, result.patch)
            notes.append(f"{name}: {result.reason}")
            notes += [f"{name}: {warning}" for warning in result.warnings]
    return Injected(documents, notes)


def dump(documents: list[Any]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, explicit_start=len(documents) > 1)
