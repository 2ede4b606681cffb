"""What one request may do with the cache: look up, store, for how long, under which tags.

The request's own say, in standard `Cache-Control` (RFC 9111 §5.2.1) and our headers:
- `no-cache`: do not answer from the cache, ask the provider, and store the fresh answer;
- `no-store`: do not store this answer (an existing entry may still answer);
- `max-age=N` / `s-maxage=N`: accept no entry older than N seconds, and keep this answer N s;
- `x-edgeproxy-cache-ttl: N`: keep this answer N seconds (wins over max-age for storing);
  what a request asks to keep is capped at the operator's `cache.max_ttl`;
- `x-edgeproxy-cache-tags: a, b`: tags an admin can later delete by.
The operator's say: the group's `cache` switch and TTL, `cache.ttl`, and the opt-in
`skip_temperature_above` rule (answers sampled hotter than that are not reused).
Pure: no I/O, so every rule is a table in the tests.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TTL_HEADER = "x-edgeproxy-cache-ttl"
TAGS_HEADER = "x-edgeproxy-cache-tags"
_DIRECTIVE = re.compile(r"\s*([A-Za-z-]+)\s*(?:=\s*\"?(\d+)\"?)?\s*")
_TAG = re.compile(r"[A-Za-z0-9._:/\-]{1,128}")
MAX_TAGS = 16


@dataclass(frozen=True, slots=True)
class Decision:
    """`lookup`/`store`: allowed or not; `ttl` for storing; `max_age`: oldest entry accepted."""

    lookup: bool
    store: bool
    ttl: float
    max_age: float | None = None
    tags: tuple[str, ...] = ()


BYPASS = Decision(lookup=False, store=False, ttl=0.0)


def _cache_control(value: str) -> tuple[bool, bool, float | None]:
    no_cache = no_store = False
    max_age: float | None = None
    for item in value.split(","):
        match = _DIRECTIVE.fullmatch(item)
        if match is None:
            continue
        name, number = match.group(1).lower(), match.group(2)
        if name == "no-cache":
            no_cache = True
        elif name == "no-store":
            no_store = True
        elif name in ("max-age", "s-maxage") and number is not None:
            seconds = float(number)
            max_age = seconds if max_age is None else min(max_age, seconds)
    return no_cache, no_store, max_age


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _tags(value: str | None) -> tuple[str, ...]:
    """The request's tags: well-formed ones only (they become Redis key names), at most 16."""
    if not value:
        return ()
    tags = [t.strip() for t in value.split(",")]
    return tuple(dict.fromkeys(t for t in tags if _TAG.fullmatch(t)))[:MAX_TAGS]


def _too_hot(payload: Mapping[str, Any], limit: float | None) -> bool:
    if limit is None:
        return False
    temperature = payload.get("temperature")
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        return False  # the provider's default temperature: the operator's rule cannot tell
    return temperature > limit


def decide(
    headers: Mapping[str, str],
    payload: Mapping[str, Any],
    ttl: float,
    skip_temperature_above: float | None,
    max_ttl: float,
) -> Decision:
    """The request's decision, given the group's TTL, the temperature rule and the longest
    TTL a request may ask for."""
    if _too_hot(payload, skip_temperature_above):
        return BYPASS
    control, asked, tags = (
        headers.get("cache-control"),
        headers.get(TTL_HEADER),
        headers.get(TAGS_HEADER),
    )
    if not (control or asked or tags):
        return _plain(ttl)  # the usual request: nothing asked of the cache
    no_cache, no_store, max_age = _cache_control(control or "")
    asked_ttl = _seconds(asked)
    keep = asked_ttl if asked_ttl is not None else max_age if max_age is not None else ttl
    keep = min(keep, max_ttl)
    return Decision(
        lookup=not no_cache,
        store=not no_store and keep > 0,
        ttl=keep,
        max_age=max_age,
        tags=_tags(tags),
    )


@functools.lru_cache(maxsize=64)
def _plain(ttl: float) -> Decision:
    return Decision(lookup=True, store=ttl > 0, ttl=ttl)
