"""The JSON Schema (draft 2020-12) of the configuration, derived from its declaration
(`edgeproxy.config_spec`): `edgeproxy schema` prints it, configs/edgeproxy.schema.json ships it,
and the chart's values.schema.json holds its `config` value to it.

It accepts what the loader accepts where a schema can say so: durations and sizes as numbers or
strings with units, a `${VAR}` string wherever a scalar goes (substituted at load), null for a
field left at its default, `<key>_file` beside each secret. What relates fields to each other
(a deployment naming a configured provider, a TTL under `cache.max_ttl`) only the loader checks.
"""

from __future__ import annotations

from typing import Any

from edgeproxy.config import Config
from edgeproxy.config_reader import MISSING
from edgeproxy.config_spec import (
    NO_EXAMPLE,
    Declared,
    Kind,
    ListOf,
    MapOf,
    Section,
    Value,
    declared,
)

ENV_REF = {
    "type": "string",
    "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
    "description": "A string holding ${VAR} or ${VAR:-default}, substituted at load.",
}
_NULL = {"type": "null"}


def config_schema() -> dict[str, Any]:
    """The schema of a whole configuration file."""
    defs: dict[str, Any] = {"env": ENV_REF}
    names: dict[type, str] = {}
    root = _object(Config, defs, names)
    defs["ProviderConfig"]["allOf"] = _kind_only_fields()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "edgeproxy configuration",
        "description": "Validated at load by `edgeproxy check-config`; see docs/configuration.md.",
        **root,
        "$defs": dict(sorted(defs.items())),
    }


def _spelled(kinds: tuple[str, ...]) -> str:
    """A pattern matching any of `kinds` in any case (ECMA-262 has no case flag to give)."""
    words = ("".join(f"[{c.lower()}{c.upper()}]" for c in kind) for kind in kinds)
    return "^(" + "|".join(words) + ")$"


def _kind_only_fields() -> list[dict[str, Any]]:
    """The loader's kind rule as a schema can say it: a field only some provider kinds accept
    (edgeproxy.providers.KIND_FIELDS) is refused beside a literal kind that is none of them
    (a `${VAR}` kind is judged at load)."""
    from edgeproxy.providers import KIND_FIELDS

    return [
        {
            "if": {
                "required": ["kind"],
                "properties": {
                    "kind": {
                        "type": "string",
                        "pattern": "^[A-Za-z]+$",
                        "not": {"pattern": _spelled(kinds)},
                    }
                },
            },
            # `not: {}` rather than `false`: validators name the field for it, not its object.
            "then": {
                "properties": {
                    field: {"not": {}, "description": "only for kind " + " or ".join(kinds)}
                }
            },
        }
        for field, kinds in KIND_FIELDS.items()
    ]


def helm_values_schema() -> dict[str, Any]:
    """The chart's values.schema.json: its `config` value is a configuration; the chart's other
    values stay open (its own templates check them)."""
    schema = config_schema()
    config = {k: v for k, v in schema.items() if k not in ("$schema", "$defs", "title")}
    return {
        "$schema": schema["$schema"],
        "title": "edgeproxy chart values",
        "type": "object",
        "properties": {"config": config},
        "additionalProperties": True,
        "$defs": schema["$defs"],
    }


def _object(cls: type, defs: dict[str, Any], names: dict[type, str]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    groups: dict[str, list[Declared]] = {}
    for d in declared(cls):
        if d.spec.inline:
            inner = _object(_section_cls(d), defs, names)
            properties.update(inner["properties"])
            continue
        if "." in d.key:
            groups.setdefault(d.head, []).append(d)
            continue
        properties[d.key] = _property(d, defs, names)
        if d.spec.secret:
            properties[f"{d.key}_file"] = _nullable(
                {"type": "string", "description": f"A file holding {d.key} (a secret mount)."}
            )
        if d.fixed is MISSING and d.factory is None:
            required.append(d.key)
    for head, members in groups.items():
        properties[head] = _group(members, defs, names)
    found: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        found["required"] = required
    found["additionalProperties"] = False
    return found


def _section_cls(d: Declared) -> type:
    value = d.spec.value
    assert isinstance(value, Section)
    return value.cls


def _group(members: list[Declared], defs: dict[str, Any], names: dict[type, str]) -> Any:
    properties = {d.leaf: _property(d, defs, names) for d in members}
    found: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if any(d.spec.shorthand for d in members):
        return {"anyOf": [{"type": "boolean"}, found, _NULL]}
    return _nullable(found)


def _property(d: Declared, defs: dict[str, Any], names: dict[type, str]) -> Any:
    found = value_schema(d.spec.value, defs, names)
    described: dict[str, Any] = {"description": d.spec.help}
    if d.fixed not in (MISSING, None) and isinstance(d.spec.value, Kind) and not d.spec.secret:
        literal = d.spec.value.literal(d.fixed)
        if literal is not None:
            described["default"] = literal
    if d.spec.example is not NO_EXAMPLE:
        described["examples"] = [d.spec.example]
    required = d.fixed is MISSING and d.factory is None
    return {**described, **(found if required else _nullable(found))}


def _nullable(found: dict[str, Any]) -> dict[str, Any]:
    """Null stands for the default wherever a field may be left out."""
    if "anyOf" in found and len(found) == 1:
        return {"anyOf": [*found["anyOf"], _NULL]}
    return {"anyOf": [found, _NULL]}


def value_schema(value: Value, defs: dict[str, Any], names: dict[type, str]) -> dict[str, Any]:
    if isinstance(value, Kind):
        return _kind(value)
    if isinstance(value, Section):
        return {"$ref": f"#/$defs/{_define(value.cls, defs, names)}"}
    if isinstance(value, ListOf):
        found: dict[str, Any] = {"type": "array", "items": value_schema(value.item, defs, names)}
        if value.nonempty:
            found["minItems"] = 1
        return found
    assert isinstance(value, MapOf)
    found = {"type": "object", "additionalProperties": value_schema(value.value, defs, names)}
    if value.key is not None:
        found["propertyNames"] = dict(value.key.json)
    return found


def _define(cls: type, defs: dict[str, Any], names: dict[type, str]) -> str:
    if cls not in names:
        name = cls.__name__
        if name in names.values():
            name = f"{cls.__module__.rsplit('.', 1)[-1]}.{name}"
        names[cls] = name
        defs[name] = {}
        defs[name] = _object(cls, defs, names)
    return names[cls]


def _kind(kind: Kind) -> dict[str, Any]:
    """A kind's literal form, or a `${VAR}` string where a literal may be a scalar (the loader
    substitutes a whole string value, so a list of names may come from one variable)."""
    json = dict(kind.json)
    if json == {"type": "string"} or not _scalar(json):
        return json
    return {"anyOf": [json, {"$ref": "#/$defs/env"}]}


def _scalar(json: dict[str, Any]) -> bool:
    if "anyOf" in json:
        return any(_scalar(option) for option in json["anyOf"])
    return json.get("type") not in ("array", "object")
