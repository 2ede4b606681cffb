"""A virtual key kept in Redis: its settings with when it was created, rotated and revoked, as
JSON in Redis and as the admin API shows it; and the admin's request for a new key, checked
the way the configuration checks its keys.

Only the SHA-256 of a key is ever stored. The admin API never shows even that in full: a
record shows the first 8 hex digits of its hash, enough to match `edgeproxy hash-key`'s output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from edgeproxy.config_reader import Reader
from edgeproxy.security.settings import (
    BudgetSettings,
    KeySettings,
    LimitSettings,
    Policy,
    parse_key,
)

HASH_SHOWN = 8  # hex digits of a key's hash the admin API shows


class InvalidKeyRequest(Exception):
    """What is wrong with a request for a new key, one problem per field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key in Redis; times are Unix seconds."""

    settings: KeySettings
    created_at: float
    rotated_at: float | None = None
    revoked_at: float | None = None

    @property
    def id(self) -> str:
        return self.settings.id

    @property
    def digest(self) -> str:
        return self.settings.digest

    def encode(self) -> bytes:
        key = self.settings
        return orjson.dumps(
            {
                "id": key.id,
                "digest": key.digest,
                "team": key.team,
                "models": sorted(key.models) if key.models is not None else None,
                "limits": {
                    "rpm": key.limits.rpm,
                    "tpm": key.limits.tpm,
                    "parallel": key.limits.parallel,
                },
                "budget": {
                    "daily_usd": key.budget.daily_usd,
                    "monthly_usd": key.budget.monthly_usd,
                },
                "cache_namespace": key.cache_namespace,
                "policy": key.policy,
                "metadata": dict(key.metadata),
                "created_at": self.created_at,
                "rotated_at": self.rotated_at,
                "revoked_at": self.revoked_at,
            }
        )

    @classmethod
    def decode(cls, data: bytes | str) -> KeyRecord:
        """Raises ValueError for anything but a record `encode` wrote."""
        raw = orjson.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("a key record is a JSON object")
        limits, budget = _mapping(raw, "limits"), _mapping(raw, "budget")
        models = raw.get("models")
        if models is not None and not (
            isinstance(models, list) and all(isinstance(m, str) for m in models)
        ):
            raise ValueError("models: expected a list of names or null")
        metadata = _mapping(raw, "metadata")
        if not all(isinstance(v, str) for v in metadata.values()):
            raise ValueError("metadata: expected strings")
        settings = KeySettings(
            id=_text(raw, "id"),
            digest=_text(raw, "digest"),
            team=_optional_text(raw, "team"),
            models=frozenset(models) if models is not None else None,
            limits=LimitSettings(
                rpm=_count(limits, "rpm"),
                tpm=_count(limits, "tpm"),
                parallel=_count(limits, "parallel"),
            ),
            budget=BudgetSettings(
                daily_usd=_number(budget, "daily_usd"), monthly_usd=_number(budget, "monthly_usd")
            ),
            cache_namespace=_optional_text(raw, "cache_namespace"),
            policy=_optional_text(raw, "policy"),
            metadata=metadata,
        )
        created_at = _number(raw, "created_at")
        if created_at is None:
            raise ValueError("created_at: missing")
        return cls(settings, created_at, _number(raw, "rotated_at"), _number(raw, "revoked_at"))

    def view(self) -> dict[str, Any]:
        """The record as the admin API shows it: never the key, never its whole hash."""
        key = self.settings
        return {
            "id": key.id,
            "status": "revoked" if self.revoked_at is not None else "active",
            "hash_prefix": key.digest[:HASH_SHOWN],
            "team": key.team,
            "models": sorted(key.models) if key.models is not None else None,
            "limits": _present(
                rpm=key.limits.rpm, tpm=key.limits.tpm, parallel=key.limits.parallel
            ),
            "budget": _present(daily_usd=key.budget.daily_usd, monthly_usd=key.budget.monthly_usd),
            "cache_namespace": key.cache_namespace,
            "policy": key.policy,
            "metadata": dict(key.metadata),
            "created_at": _iso(self.created_at),
            "rotated_at": _iso(self.rotated_at),
            "revoked_at": _iso(self.revoked_at),
        }


class _Literal(Reader):
    """A reader of what an admin sent: values are taken as they are, `${...}` included (the
    configuration's environment substitution has no place in an API request)."""

    def substitute(self, path: str, value: Any) -> Any:
        return value


@dataclass(frozen=True, slots=True)
class KeyRules:
    """What a new key may name: the configured model groups and guardrail policies; and the
    ids of the configured keys, which a key in Redis may not take (an id names one caller in
    logs, limits and spend)."""

    groups: frozenset[str]
    policies: Mapping[str, Policy]
    configured_ids: frozenset[str] = frozenset()

    def template(self, fields: Any, digest: str) -> KeySettings:
        """The settings an admin asked for, with `digest`; raises InvalidKeyRequest naming
        each field that is wrong (as `key.<field>`), with the configuration's own checks."""
        if not isinstance(fields, dict):
            raise InvalidKeyRequest(["key: expected a JSON object with at least an id"])
        if "hash" in fields:
            raise InvalidKeyRequest(
                ["key.hash: not accepted: the proxy makes the key and keeps only its hash"]
            )
        reader = _Literal({})
        settings = parse_key(reader, {**fields, "hash": digest}, "key", self.groups, self.policies)
        if settings is not None and settings.id in self.configured_ids:
            reader.fail("key.id", f"{settings.id!r} is the id of a key in the configuration")
        if reader.problems or settings is None:
            raise InvalidKeyRequest(reader.problems)
        return settings


def with_digest(record: KeyRecord, digest: str, now: float) -> KeyRecord:
    """The record of a rotated key: the same settings under a new key's hash."""
    return replace(record, settings=replace(record.settings, digest=digest), rotated_at=now)


def _mapping(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        raise ValueError(f"{name}: expected an object")
    return value


def _text(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    if isinstance(value, str) and value:
        return value
    raise ValueError(f"{name}: expected a string")


def _optional_text(raw: dict[str, Any], name: str) -> str | None:
    return None if raw.get(name) is None else _text(raw, name)


def _count(raw: dict[str, Any], name: str) -> int | None:
    value = raw.get(name)
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise ValueError(f"{name}: expected a positive integer or null")


def _number(raw: dict[str, Any], name: str) -> float | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{name}: expected a number or null")


def _present(**values: float | None) -> dict[str, float]:
    return {name: value for name, value in values.items() if value is not None}


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
