"""Reading a client's request fields, for the client dialects' parsers.

Every reader takes the value as the SDKs send it or raises a 400 that names the field's path
(`messages[2].content[0].text: expected a string`), with the top-level field as `param`, so a
client learns which field to fix; a reader given no `path` names the field itself. An absent
field (or a JSON null) reads as None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from edgeproxy import errors
from edgeproxy.errors import ProxyError


def invalid(path: str, expected: str) -> ProxyError:
    return errors.bad_request(f"{path}: {expected}", param=path.partition(".")[0].partition("[")[0])


def untranslatable(path: str, kind: object) -> ProxyError:
    """A block or setting of a `type` the neutral form has no place for."""
    return invalid(
        f"{path}.type",
        f"{orjson.dumps(kind).decode()} cannot be translated for this model's provider",
    )


def number(payload: Mapping[str, Any], name: str) -> float | None:
    value = payload.get(name)
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise invalid(name, "expected a number")


def integer(payload: Mapping[str, Any], name: str, path: str | None = None) -> int | None:
    value = payload.get(name)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise invalid(path or name, "expected an integer")


def flag(payload: Mapping[str, Any], name: str, path: str | None = None) -> bool | None:
    value = payload.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise invalid(path or name, "expected true or false")


def string(payload: Mapping[str, Any], name: str, path: str | None = None) -> str | None:
    value = payload.get(name)
    if value is None or isinstance(value, str):
        return value
    raise invalid(path or name, "expected a string")


def required_string(payload: Mapping[str, Any], name: str, path: str) -> str:
    value = payload.get(name)
    if isinstance(value, str):
        return value
    raise invalid(path, "expected a string")


def as_object(value: object, path: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise invalid(path, "expected an object")


def as_array(value: object, path: str, expected: str = "expected an array") -> list[Any]:
    if isinstance(value, list):
        return value
    raise invalid(path, expected)
