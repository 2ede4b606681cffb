"""`edgeproxy inject --dry-run`: the injection applied to manifests in a file, for GitOps
repositories and for review before a namespace is labelled.

Each YAML document is patched where it holds pods: a Pod itself, the pod template of a
Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or ReplicationController, a CronJob's job
template, and the items of a List. Other documents pass through unchanged. Every pod is treated
as in a labelled namespace: injected unless annotated `edgeproxy.io/inject: "false"`.
"""

from __future__ import annotations

import copy
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


Slot = tuple[Any, str | int]  # a dict and its key, or a list and its index


def _pods(holder: Any, key: str | int, where: str) -> Iterator[tuple[Slot, str]]:
    """Where the pods (or pod templates) inside `holder[key]` are, each with a name to report
    it by."""
    document = holder[key]
    if not isinstance(document, dict):
        return
    kind = document.get("kind")
    name = f"{where}{kind}/{_child(document, 'metadata').get('name', '?')}"
    spec = _child(document, "spec")
    if kind == "Pod":
        yield (holder, key), name
    elif kind in TEMPLATED and isinstance(spec.get("template"), dict):
        yield (spec, "template"), name
    elif kind == "CronJob":
        job_spec = _child(_child(spec, "jobTemplate"), "spec")
        if isinstance(job_spec.get("template"), dict):
            yield (job_spec, "template"), name
    elif kind == "List" and isinstance(document.get("items"), list):
        for index in range(len(document["items"])):
            yield from _pods(document["items"], index, f"{where}List/")


def inject_text(text: str, settings: InjectorSettings) -> Injected:
    """Every document of the YAML `text`, its pods injected. Raises yaml.YAMLError."""
    documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    notes = []
    for index in range(len(documents)):
        for (holder, key), name in _pods(documents, index, ""):
            pod = copy.copy(holder[key])
            result = plan(pod, True, settings)
            holder[key] = apply(pod, result.patch)
            notes.append(f"{name}: {result.reason}")
            notes += [f"{name}: {warning}" for warning in result.warnings]
    return Injected(documents, notes)


def dump(documents: list[Any]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, explicit_start=len(documents) > 1)
