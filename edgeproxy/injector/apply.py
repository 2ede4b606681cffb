"""Applying the injector's own patches to a manifest, for `edgeproxy inject --dry-run`.

Only what `edgeproxy.injector.patch` emits: `add` operations (RFC 6902) to an object member, to
a list index or to a list's end (`-`). The tests check the same patches against an independent
RFC 6902 implementation.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any


class PatchError(ValueError):
    """An operation this applier does not support, or a path that does not exist."""


def _tokens(path: str) -> list[str]:
    if not path.startswith("/"):
        raise PatchError(f"not a JSON Pointer: {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _step(parent: Any, token: str) -> Any:
    """`parent`'s child at `token`, replaced by a shallow copy of itself, so that objects the
    YAML shared between places (anchors and aliases) change only where the patch says."""
    key: str | int = int(token) if isinstance(parent, list) else token
    child = parent[key]
    if isinstance(child, dict | list):
        child = copy.copy(child)
        parent[key] = child
    return child


def apply(document: Any, patch: Iterable[dict[str, Any]]) -> Any:
    """`document` with `patch` applied: changed in place at its top level, copied below where
    the patch reaches; the added values are copies."""
    for op in patch:
        if op.get("op") != "add":
            raise PatchError(f"unsupported operation {op.get('op')!r}")
        *parents, last = _tokens(op["path"])
        target = document
        try:
            for token in parents:
                target = _step(target, token)
        except (KeyError, IndexError, ValueError, TypeError):
            raise PatchError(f"{op['path']}: the parent does not exist") from None
        value = copy.deepcopy(op["value"])
        if isinstance(target, dict):
            target[last] = value
        elif isinstance(target, list):
            target.insert(len(target) if last == "-" else int(last), value)
        else:
            raise PatchError(f"{op['path']}: the parent is neither an object nor an array")
    return document
