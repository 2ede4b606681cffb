"""The smallest configuration that loads, for tests that change one section of it."""

from __future__ import annotations

from typing import Any


def minimal(**sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "providers": {"mock": {"kind": "mock"}},
        "models": {"m": {"deployments": [{"provider": "mock"}]}},
    }
    base.update(sections)
    return base
