"""Reading a configuration's raw YAML into typed values, collecting every problem with the
path of the field it is about instead of stopping at the first.

`edgeproxy.config` and the sections other packages own (`edgeproxy.security.settings`) parse
their fields with one `Reader`, so every message has the same shape and names its field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from edgeproxy.wire.urls import url_problem

T = TypeVar("T")


class ConfigError(Exception):
    """Every problem found in one configuration, each line starting with its field path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Secret:
    """A credential that never shows itself in a repr, a log line or an error message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+").fullmatch  # an RFC 9110 token
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
_DURATION_UNITS = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0}
MISSING = object()


class FromEnv(str):
    """A string produced by `${...}` substitution: numeric fields may parse it."""

    __slots__ = ()


def show(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value + '"'
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


class Reader:
    """Walks the raw YAML, collecting problems with their field paths instead of stopping."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def substitute(self, path: str, value: Any) -> Any:
        if not isinstance(value, str) or "${" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = self.env.get(name)
            if found:
                return found
            if default is not None:
                return default
            self.fail(path, f"environment variable {name} is not set")
            return ""

        return FromEnv(_ENV_REF.sub(replace, value))

    def section(self, raw: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.fail(path, f"expected a mapping, got {show(raw)}")
            return {}
        for key in raw:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.fail(where, f"unknown field (allowed: {', '.join(allowed)})")
        return raw

    def get(
        self,
        raw: dict[str, Any],
        path: str,
        key: str,
        parse: Callable[[str, Any], T],
        default: T | object = MISSING,
    ) -> T:
        where = f"{path}.{key}" if path else key
        if key not in raw or raw[key] is None:
            if default is MISSING:
                self.fail(where, "required")
                return None  # type: ignore[return-value]
            return default  # type: ignore[return-value]
        return parse(where, self.substitute(where, raw[key]))

    # parsers: each returns a value of its type, or records a problem and returns a neutral one

    def text(self, path: str, value: Any) -> str:
        if isinstance(value, str):
            return str(value)
        self.fail(path, f"expected a string, got {show(value)}")
        return ""

    def nonempty_text(self, path: str, value: Any) -> str:
        text = self.text(path, value)
        if isinstance(value, str) and not text.strip():
            self.fail(path, "expected a non-empty string")
        return text

    def boolean(self, path: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, FromEnv) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.fail(path, f"expected true or false, got {show(value)}")
        return False

    def _number(self, value: Any) -> float | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, FromEnv):
            try:
                return float(value)
            except ValueError:
                return None
        return None

    def positive_number(self, path: str, value: Any) -> float:
        number = self._number(value)
        if number is None or number <= 0:
            self.fail(path, f"expected a number > 0, got {show(value)}")
            return 1.0
        return number

    def count(self, path: str, value: Any, minimum: int = 1) -> int:
        number = self._number(value)
        if number is None or number != int(number) or number < minimum:
            self.fail(path, f"expected an integer >= {minimum}, got {show(value)}")
            return minimum
        return int(number)

    def optional_count(self, path: str, value: Any) -> int | None:
        return self.count(path, value, minimum=0)

    def whole(self, path: str, value: Any) -> int:
        return self.count(path, value, minimum=0)

    def fraction(self, path: str, value: Any) -> float:
        number = self._number(value)
        if number is None or not 0 <= number <= 1:
            self.fail(path, f"expected a number from 0 to 1, got {show(value)}")
            return 0.0
        return number

    def nonnegative_number(self, path: str, value: Any) -> float:
        number = self._number(value)
        if number is None or number < 0:
            self.fail(path, f"expected a number >= 0, got {show(value)}")
            return 0.0
        return number

    def names(self, path: str, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(path, f"expected a list of names, got {show(value)}")
            return ()
        return tuple(dict.fromkeys(value))

    def statuses(self, path: str, value: Any) -> frozenset[int]:
        ok = isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) and 400 <= v <= 599 for v in value
        )
        if not ok:
            self.fail(path, f"expected a list of HTTP error statuses (400-599), got {show(value)}")
            return frozenset()
        return frozenset(value)

    def port(self, path: str, value: Any) -> int:
        number = self._number(value)
        if number is None or number != int(number) or not 0 <= number <= 65535:
            self.fail(path, f"expected a port number 0-65535, got {show(value)}")
            return 0
        return int(number)

    def _seconds(self, value: Any) -> float | None:
        number = self._number(value)
        if number is not None and not isinstance(value, FromEnv):
            return number if number >= 0 else None
        match = _DURATION.match(value) if isinstance(value, str) else None
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)] if match else None

    def duration(self, path: str, value: Any) -> float:
        seconds = self._seconds(value)
        if seconds is None:
            self.fail(
                path,
                f'expected a duration such as 30, "250ms", "5s" or "2m", got {show(value)}',
            )
            return 0.0
        return seconds

    def positive_duration(self, path: str, value: Any) -> float:
        seconds = self._seconds(value)
        if not seconds:
            self.fail(
                path, f'expected a duration > 0 such as 30, "250ms" or "5s", got {show(value)}'
            )
            return 1.0
        return seconds

    def size(self, path: str, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        match = _SIZE.match(value) if isinstance(value, str) else None
        if match is None or int(match.group(1)) == 0:
            self.fail(path, f'expected a size > 0 such as 1048576 or "32MiB", got {show(value)}')
            return 1
        return int(match.group(1)) * _SIZE_UNITS[match.group(2)]

    def choice(self, options: tuple[str, ...]) -> Callable[[str, Any], str]:
        def parse(path: str, value: Any) -> str:
            if isinstance(value, str) and value.lower() in options:
                return value.lower()
            self.fail(path, f"expected one of {', '.join(options)}, got {show(value)}")
            return options[0]

        return parse

    def url(self, path: str, value: Any, *, base: bool = False, dns_name: bool = False) -> str:
        """An upstream URL, held to the form edgeproxy.wire.urls describes (`base`: a base URL
        paths are appended to; `dns_name`: its host must be a DNS name)."""
        text = self.text(path, value)
        problem = (
            url_problem(text, base=base, dns_name=dns_name) if isinstance(value, str) else None
        )
        if problem is not None:
            self.fail(path, problem)
        return text.rstrip("/")

    def readable_file(self, path: str, value: Any) -> str:
        text = self.text(path, value)
        if not Path(text).is_file():
            self.fail(path, f"no readable file at {show(value)}")
        return text

    def string_map(self, path: str, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping of strings, got {show(value)}")
            return {}
        return {
            str(k): self.text(f"{path}.{k}", self.substitute(f"{path}.{k}", v))
            for k, v in value.items()
        }

    def secret(self, raw: dict[str, Any], path: str, key: str) -> Secret | None:
        """A credential given inline (usually `${ENV}`) or as `<key>_file` (a secret mount)."""
        file_key = f"{key}_file"
        inline = self.get(raw, path, key, self.text, None)
        file_path = self.get(raw, path, file_key, self.text, None)
        if inline and file_path:
            self.fail(f"{path}.{key}", f"give either {key} or {file_key}, not both")
            return None
        if file_path:
            try:
                value = Path(file_path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                self.fail(f"{path}.{file_key}", f"cannot read {file_path}: {exc.strerror}")
                return None
            return Secret(value) if value else None
        return Secret(inline) if inline else None
