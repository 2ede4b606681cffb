"""docs/configuration.md, generated from the configuration's declaration: every key with its
type, default, help and an example (`make config-reference` rewrites it; a test holds the
committed file equal to what this module makes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from edgeproxy.config import Config
from edgeproxy.config_reader import MISSING
from edgeproxy.config_spec import (
    NO_EXAMPLE,
    SECRET,
    Declared,
    Kind,
    ListOf,
    MapOf,
    Section,
    Value,
    declared,
)
from edgeproxy.providers import KIND_FIELDS
from edgeproxy.providers.settings import ProviderConfig

# Marks a YAML block of the docs that is a configuration (tests validate each with the schema).
CONFIG_EXAMPLE = "<!-- edgeproxy:config-example -->"

_INTRO = """\
# Configuration reference

<!-- Generated from the declaration in edgeproxy/ by `make config-reference`: do not edit. -->

Every key edgeproxy reads, section by section, with its type, default and an example.
`edgeproxy check-config PATH` validates a file and names each bad field; the JSON Schema
`configs/edgeproxy.schema.json` (also printed by `edgeproxy schema`) lets an editor or
`helm lint` check a file before it is applied. `configs/edgeproxy.yaml` is the commented
reference the proxy runs with by default.

Values:

- `${VAR}` is replaced by the environment variable VAR (an error if it is unset or empty);
  `${VAR:-fallback}` uses `fallback` instead. Any key's scalar value may be given this way,
  and so may a list of names as one string (`capabilities: ${CAPS}` is one name); the items
  of a list are taken as written.
- durations: a number of seconds, or a string such as `"250ms"`, `"5s"`, `"2m"`, `"1h"`.
- sizes: a number of bytes, or a string such as `"512KiB"`, `"32MiB"`, `"1GB"`.
- secrets (type `secret`): the value inline (usually `${ENV}`) or `<key>_file: /path` to read
  it from a mounted file, never both.
- null, or leaving a key out, means its default.

Per-pod environment overrides win over the file: `EDGEPROXY_CONFIG` (which file to load),
`EDGEPROXY_HOST`, `EDGEPROXY_PORT`, `EDGEPROXY_LOG_LEVEL`.
"""


def configuration_reference() -> str:
    return "\n".join([_INTRO, *(_section(d) for d in _top_level())])


def _top_level() -> Iterator[Declared]:
    for d in declared(Config):
        if d.spec.inline:
            assert isinstance(d.spec.value, Section)
            yield from declared(d.spec.value.cls)
        else:
            yield d


def _section(top: Declared) -> str:
    rows = list(_rows(top, top.key))
    table = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    table += [f"| `{path}` | {kind} | {default} | {help} |" for path, kind, default, help in rows]
    example = yaml.safe_dump(
        {top.key: _example(top)}, sort_keys=False, allow_unicode=True, width=96
    )
    return "\n".join(
        [
            f"## `{top.key}`",
            "",
            top.spec.help,
            "",
            *table,
            "",
            "Example:",
            "",
            CONFIG_EXAMPLE,
            "```yaml",
            example.rstrip("\n"),
            "```",
            "",
        ]
    )


def _rows(d: Declared, path: str, top: bool = True) -> Iterator[tuple[str, str, str, str]]:
    """One row per key under `d` at `path`, nested sections flattened into dotted paths."""
    inner = _inner(d.spec.value)
    if inner is None:
        yield path, _cell(_type(d)), _default(d), _cell(d.spec.help)
        if d.spec.secret:
            yield f"{path}_file", "file path", "", f"A file holding `{d.leaf}`, instead of it."
        return
    if not top:
        yield path, _cell(d.spec.value.name), "", _cell(d.spec.help)
    cls, suffix = inner
    for child in declared(cls):
        yield from _rows(child, f"{path}{suffix}.{child.key}", top=False)


def _inner(value: Value) -> tuple[type, str] | None:
    """The dataclass under a section, a list of sections or a map of them, and the path suffix
    its keys take (`[]`, `.<name>`)."""
    if isinstance(value, Section):
        return value.cls, ""
    if isinstance(value, ListOf) and isinstance(value.item, Section):
        return value.item.cls, "[]"
    if isinstance(value, MapOf) and isinstance(value.value, Section):
        return value.value.cls, ".<name>"
    return None


def _type(d: Declared) -> str:
    return "secret" if d.spec.secret else d.spec.value.name


def _default(d: Declared) -> str:
    if d.spec.shown:
        return d.spec.shown
    if d.fixed is MISSING and d.factory is None:
        return "required"
    if d.spec.secret or d.fixed is MISSING:
        return ""
    value = d.spec.value
    literal = value.literal(d.fixed) if isinstance(value, Kind) and d.fixed is not None else None
    return f"`{_inline(literal)}`"


def _inline(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip().replace("|", "\\|")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _example(d: Declared) -> Any:
    """An example value for `d`: its declared example, else its default, else its kind's."""
    value = d.spec.value
    inner = _inner(value)
    if inner is not None:
        cls = inner[0]
        body = _section_example(cls)
        if isinstance(value, ListOf):
            return [body]
        if isinstance(value, MapOf):
            return {value.example_key: body}
        return body
    if d.spec.example is not NO_EXAMPLE:
        return d.spec.example
    if d.spec.secret:
        return SECRET.example
    assert isinstance(value, Kind)
    literal = value.literal(d.fixed) if d.fixed not in (MISSING, None) else None
    return value.example if literal is None else literal


def _section_example(cls: type) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for d in declared(cls):
        if d.spec.inline:
            continue
        target = found
        if "." in d.key:
            target = found.setdefault(d.head, {})
        target[d.leaf] = _example(d)
    if cls is ProviderConfig:  # only the fields its example's kind accepts: it must load
        kind = found.get("kind")
        for field, kinds in KIND_FIELDS.items():
            if kind not in kinds:
                found.pop(field, None)
    return found
