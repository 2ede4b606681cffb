"""The configuration declared once: each dataclass field carries a `Spec` (its YAML key, how the
value is read, its help text and an example) in its `metadata`; its default is the field's own.

`read` walks a dataclass's declared fields with the configuration's one `Reader`, so the loader,
the JSON Schema (`config_schema`) and the reference (`config_docs`) all come from the same
declaration. What relates one field to another stays an explicit check after `read_values`.

    @dataclass(frozen=True, slots=True)
    class ReloadConfig:
        enabled: bool = setting(True, BOOLEAN, "watch the file's directory")
        interval: float = setting(2.0, POSITIVE_DURATION, "how often it is checked")

A `Spec`'s key may be dotted (`cache.ttl`): several fields then share one YAML sub-mapping,
which `shorthand` lets stand as a bare boolean (`cache: false`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from edgeproxy.config_reader import MISSING, Reader, Secret, show

T = TypeVar("T")
SPEC = "edgeproxy.spec"
NO_EXAMPLE = object()


class Value(Protocol):
    """How one YAML value is read, and its name in the reference (`config_schema` gives each
    kind of value its JSON Schema)."""

    @property
    def name(self) -> str: ...

    def read(self, r: Reader, path: str, raw: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Kind:
    """A value read by one parser (a scalar, or a list or mapping of scalars): `json` is the
    JSON Schema of its literal form, `example` what the reference shows, and `literal` turns a
    parsed default back into what a person writes (seconds into "30s")."""

    parse: Callable[[Reader, str, Any], Any]
    json: Mapping[str, Any]
    name: str
    example: Any = None
    literal: Callable[[Any], Any] = lambda value: value

    def read(self, r: Reader, path: str, raw: Any) -> Any:
        return self.parse(r, path, raw)


@dataclass(frozen=True, slots=True)
class Section:
    """A nested mapping read into dataclass `cls` (by `parse` when it has rules of its own);
    `optional`: absent means None rather than the defaults."""

    cls: type
    parse: Callable[[Reader, Any, str], Any] | None = None
    optional: bool = False

    @property
    def name(self) -> str:
        return "mapping"

    def read(self, r: Reader, path: str, raw: Any) -> Any:
        if raw is None and self.optional:
            return None
        return (self.parse or _read_default(self.cls))(r, raw, path)


def _read_default(cls: type) -> Callable[[Reader, Any, str], Any]:
    return lambda r, raw, path: read(r, cls, raw, path)


@dataclass(frozen=True, slots=True)
class ListOf:
    """A list of values, each read at `path[i]`."""

    item: Value
    nonempty: bool = False

    @property
    def name(self) -> str:
        return f"list of {self.item.name}"

    def read(self, r: Reader, path: str, raw: Any) -> tuple[Any, ...]:
        if not isinstance(raw, list) or (self.nonempty and not raw):
            r.fail(path, f"expected a {'non-empty ' if self.nonempty else ''}list, got {show(raw)}")
            return ()
        return tuple(self.item.read(r, f"{path}[{i}]", item) for i, item in enumerate(raw))


@dataclass(frozen=True, slots=True)
class MapOf:
    """A mapping of names of the operator's choice (`key` checks them) to values; with
    `name_into`, each value is a section whose dataclass keeps its name in that field."""

    value: Value
    key: Kind | None = None
    what: str = "name to settings"
    name_into: str = ""
    example_key: str = "name"

    @property
    def name(self) -> str:
        return f"mapping of {self.what}"

    def read(self, r: Reader, path: str, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            r.fail(path, f"expected a mapping of {self.what}, got {show(raw)}")
            return {}
        if self.key is not None:
            for name in raw:
                self.key.parse(r, f"{path}.{name}", name)
        if self.name_into and isinstance(self.value, Section):
            cls, named = self.value.cls, self.name_into
            return {
                str(k): read(r, cls, v, f"{path}.{k}", **{named: str(k)}) for k, v in raw.items()
            }
        return {str(k): self.value.read(r, f"{path}.{k}", v) for k, v in raw.items()}


@dataclass(frozen=True, slots=True)
class Spec:
    """One field's declaration. `key`: its YAML name (dotted inside a shared sub-mapping);
    `secret`: also accepted as `<key>_file`, read from that file; `nullable`: an explicit null
    is the value None (elsewhere null means the default); `shorthand`: the sub-mapping of a
    dotted key may be given as this boolean alone; `inline`: a section whose keys sit in its
    parent's mapping."""

    value: Value
    help: str
    key: str
    example: Any = NO_EXAMPLE
    secret: bool = False
    nullable: bool = False
    shorthand: bool = False
    inline: bool = False
    shown: str = ""  # the default in words, where it depends on other fields


def setting(
    default: Any,
    value: Value,
    help: str,
    *,
    key: str = "",
    example: Any = NO_EXAMPLE,
    nullable: bool = False,
    shorthand: bool = False,
    shown: str = "",
) -> Any:
    """A field read from YAML, with its default (`required` for one without); `shown`: the
    default in words where the loader works it out from other fields."""
    spec = Spec(value, help, key, example, nullable=nullable, shorthand=shorthand, shown=shown)
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={SPEC: spec})
    return field(default=default, metadata={SPEC: spec})


def required(value: Value, help: str, *, key: str = "", example: Any = NO_EXAMPLE) -> Any:
    return field(metadata={SPEC: Spec(value, help, key, example)})


def secret(help: str, *, key: str = "", example: Any = NO_EXAMPLE) -> Any:
    """A credential given inline (usually `${ENV}`) or as `<key>_file` (a secret mount)."""
    return field(default=None, metadata={SPEC: Spec(SECRET, help, key, example, secret=True)})


def section(
    cls: type,
    help: str,
    *,
    key: str = "",
    parse: Callable[[Reader, Any, str], Any] | None = None,
    inline: bool = False,
) -> Any:
    spec = Spec(Section(cls, parse), help, key, inline=inline)
    return field(default_factory=cls, metadata={SPEC: spec})


def optional_section(
    cls: type, help: str, *, key: str = "", parse: Callable[[Reader, Any, str], Any] | None = None
) -> Any:
    """A nested section that is None unless given."""
    return field(default=None, metadata={SPEC: Spec(Section(cls, parse, optional=True), help, key)})


@dataclass(frozen=True, slots=True)
class Declared:
    """A declared field: its attribute, its YAML key, its spec and its default (MISSING for a
    required one; `factory` makes it, called only when a default is needed)."""

    attribute: str
    key: str
    spec: Spec
    fixed: Any = MISSING
    factory: Callable[[], Any] | None = None

    @property
    def default(self) -> Any:
        return self.factory() if self.factory is not None else self.fixed

    @property
    def head(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def leaf(self) -> str:
        return self.key.rsplit(".", 1)[-1]


_DECLARED: dict[type, tuple[Declared, ...]] = {}


def declared(cls: type) -> tuple[Declared, ...]:
    """The declared fields of dataclass `cls`, in declaration order."""
    found = _DECLARED.get(cls)
    if found is None:
        found = tuple(_declared(cls))
        _DECLARED[cls] = found
    return found


def yaml_only(key: str, default: Any, value: Value, help: str) -> Declared:
    """A key read from YAML that its dataclass does not keep (listed in its `YAML_ONLY`)."""
    return Declared(key, key, Spec(value, help, key), default)


def _declared(cls: type) -> Iterator[Declared]:
    yield from getattr(cls, "YAML_ONLY", ())
    for item in dataclasses.fields(cls):
        spec = item.metadata.get(SPEC)
        if spec is None:
            continue
        fixed = MISSING if item.default is dataclasses.MISSING else item.default
        factory = None if item.default_factory is dataclasses.MISSING else item.default_factory
        yield Declared(item.name, spec.key or item.name, spec, fixed, factory)


def allowed_keys(cls: type) -> tuple[str, ...]:
    """The keys a mapping read into `cls` may hold, in declaration order."""
    keys: dict[str, None] = {}
    for d in declared(cls):
        if d.spec.inline:
            keys.update(dict.fromkeys(allowed_keys(_section_cls(d))))
            continue
        keys[d.head] = None
        if d.spec.secret:
            keys[f"{d.head}_file"] = None
    return tuple(keys)


def _section_cls(d: Declared) -> type:
    value = d.spec.value
    assert isinstance(value, Section)
    return value.cls


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_keys(r: Reader, cls: type, raw: Any, path: str) -> dict[str, Any]:
    """`raw` as a mapping for `cls` at `path`, its unknown keys reported."""
    return r.section(raw, path, allowed_keys(cls))


def read_values(
    r: Reader,
    cls: type,
    raw: Any,
    path: str,
    *,
    base: object | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The declared fields of `cls` read from `raw` at `path`, by attribute name (unknown keys
    reported). A field's default is `defaults[attribute]`, else `base`'s value, else its
    declared one."""
    return read_checked(r, cls, check_keys(r, cls, raw, path), path, base=base, defaults=defaults)


def read_checked(
    r: Reader,
    cls: type,
    s: dict[str, Any],
    path: str,
    *,
    base: object | None = None,
    defaults: Mapping[str, Any] | None = None,
    only: tuple[str, ...] | None = None,
    skip: tuple[str, ...] = (),
) -> dict[str, Any]:
    """As `read_values`, from a mapping `check_keys` returned; `only` or `skip` leave the
    other attributes to the caller."""
    groups: dict[str, dict[str, Any]] = {}
    values: dict[str, Any] = {}
    defaults_of = defaults or {}
    for d in declared(cls):
        if d.attribute in skip or (only is not None and d.attribute not in only):
            continue
        value = d.spec.value
        if d.spec.inline:
            values[d.attribute] = value.read(r, path, s)
            continue
        if d.attribute in defaults_of:
            default = defaults_of[d.attribute]
        elif base is not None:
            default = getattr(base, d.attribute)
        elif isinstance(value, Section) and not value.optional:
            where = _join(path, d.key)  # absent: read from nothing, so its own rules still run
            values[d.attribute] = value.read(r, where, r.substitute(where, s.get(d.key)))
            continue
        else:
            default = d.default
        where, mapping = path, s
        if "." in d.key:
            where = _join(path, d.head)
            if d.head not in groups:
                groups[d.head] = _group(r, cls, d.head, s.get(d.head), where)
            mapping = groups[d.head]
        values[d.attribute] = _value(r, d, mapping, where, default)
    return values


def _group(r: Reader, cls: type, head: str, raw: Any, path: str) -> dict[str, Any]:
    members = [d for d in declared(cls) if d.head == head]
    shorthand = next((d.leaf for d in members if d.spec.shorthand), None)
    if shorthand is not None and isinstance(raw, bool):
        return {shorthand: raw}
    return r.section(raw, path, tuple(d.leaf for d in members))


def _value(r: Reader, d: Declared, s: dict[str, Any], path: str, default: Any) -> Any:
    key = d.leaf
    if d.spec.secret:
        return r.secret(s, path, key)
    if d.spec.nullable and key in s and s[key] is None:
        return None
    return r.get(s, path, key, partial(d.spec.value.read, r), default)


def read(r: Reader, cls: type[T], raw: Any, path: str, **given: Any) -> T:
    """`cls` read from `raw` at `path`; `given`: fields not read from YAML."""
    return cls(**read_values(r, cls, raw, path), **given)


# --- the kinds of values ----------------------------------------------------------------------

_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_BYTES = {"GiB": 1024**3, "MiB": 1024**2, "KiB": 1024}


def duration_literal(seconds: Any) -> Any:
    """`seconds` as the YAML a person would write: 90 -> "90s", 3600 -> "1h", 0.05 -> "50ms"."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return seconds
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in _SECONDS.items():
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def size_literal(count: Any) -> Any:
    if not isinstance(count, int) or isinstance(count, bool):
        return count
    for unit, size in _BYTES.items():
        if count >= size and count % size == 0:
            return f"{count // size}{unit}"
    return count


def _number(minimum: float | None = None, exclusive: float | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"type": "number"}
    if minimum is not None:
        found["minimum"] = minimum
    if exclusive is not None:
        found["exclusiveMinimum"] = exclusive
    return found


_DURATION_TEXT = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"
# Without look-ahead: Helm checks values.schema.json with Go's RE2.
_POSITIVE_DURATION_TEXT = r"^\s*(\d*[1-9]\d*(\.\d+)?|\d+\.\d*[1-9]\d*)\s*(ms|s|m|h)?\s*$"
_SIZE_TEXT = r"^\s*0*[1-9]\d*\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$"

TEXT = Kind(Reader.text, {"type": "string"}, "string", "text")
NONEMPTY_TEXT = Kind(Reader.nonempty_text, {"type": "string", "pattern": r"\S"}, "string", "x")
BOOLEAN = Kind(Reader.boolean, {"type": "boolean"}, "boolean", True)
POSITIVE_NUMBER = Kind(Reader.positive_number, _number(exclusive=0), "number > 0", 1)
NONNEGATIVE_NUMBER = Kind(Reader.nonnegative_number, _number(minimum=0), "number >= 0", 0.5)
FRACTION = Kind(
    Reader.fraction, {"type": "number", "minimum": 0, "maximum": 1}, "number from 0 to 1", 0.5
)
COUNT = Kind(Reader.count, {"type": "integer", "minimum": 1}, "integer >= 1", 10)
WHOLE = Kind(Reader.whole, {"type": "integer", "minimum": 0}, "integer >= 0", 0)
PORT = Kind(Reader.port, {"type": "integer", "minimum": 0, "maximum": 65535}, "port", 8080)
DURATION = Kind(
    Reader.duration,
    {"anyOf": [_number(minimum=0), {"type": "string", "pattern": _DURATION_TEXT}]},
    "duration",
    "30s",
    duration_literal,
)
POSITIVE_DURATION = Kind(
    Reader.positive_duration,
    {"anyOf": [_number(exclusive=0), {"type": "string", "pattern": _POSITIVE_DURATION_TEXT}]},
    "duration > 0",
    "30s",
    duration_literal,
)
SIZE = Kind(
    Reader.size,
    {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": _SIZE_TEXT}]},
    "size",
    "4MiB",
    size_literal,
)
NAMES = Kind(
    Reader.names,
    {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "items": {"type": "string", "minLength": 1}},
        ]
    },
    "list of names",
    ["a", "b"],
    list,
)
STATUSES = Kind(
    Reader.statuses,
    {"type": "array", "items": {"type": "integer", "minimum": 400, "maximum": 599}},
    "list of HTTP statuses",
    [429, 503],
    sorted,
)
STRING_MAP = Kind(
    Reader.string_map,
    {"type": "object", "additionalProperties": {"type": "string"}},
    "mapping of strings",
    {"x-team": "storefront"},
    dict,
)
READABLE_FILE = Kind(Reader.readable_file, {"type": "string"}, "file path", "/etc/edgeproxy/file")
SECRET = Kind(
    lambda r, path, value: Secret(r.text(path, value)),
    {"type": "string"},
    "secret",
    "${SOME_SECRET}",
    lambda value: None,
)


def _literal(char: str) -> str:
    """`char` matched as itself, escaped only where both regex dialects need it."""
    return "\\" + char if char in ".^$*+?()[]{}|\\" else char


def any_case(options: tuple[str, ...]) -> dict[str, Any]:
    """The schema of `Reader.choice`, which reads an option in any case: the enum for editors
    to offer, and a pattern (no inline flags: Helm's RE2 and editors' ECMA regexes differ on
    them) for the other spellings."""
    spelt = (
        "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else _literal(c) for c in option)
        for option in options
    )
    pattern = {"type": "string", "pattern": f"^({'|'.join(spelt)})$"}
    return {"anyOf": [{"enum": list(options)}, pattern]}


def choice(options: tuple[str, ...]) -> Kind:
    return Kind(
        lambda r, path, value: r.choice(options)(path, value),
        any_case(options),
        " | ".join(options),
        options[0],
    )


def url(*, base: bool = False, dns_name: bool = False) -> Kind:
    return Kind(
        lambda r, path, value: r.url(path, value, base=base, dns_name=dns_name),
        {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
        "URL",
        "https://example.com",
    )
