"""What some tests need from the machine: Redis, redis-server, the `semantic` extra.

On a laptop without it such a test skips, saying what is missing; under CI=true it fails,
since CI installs and starts everything (a run must never pass by skipping).
"""

from __future__ import annotations

import importlib.util
import os
from typing import NoReturn

import pytest

from edgeproxy.cache.embed import PACKAGES


def unavailable(message: str, *, module: bool = False) -> NoReturn:
    """Skip the test (or with `module`, the module being imported) with `message`, or fail
    it under CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: a missing part fails the run)", pytrace=False)
    pytest.skip(message, allow_module_level=module)


def require_semantic() -> None:
    """The `semantic` extra (the local embedding model and its runtime)."""
    missing = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        unavailable(f"the semantic extra is not installed (missing: {', '.join(missing)})")
