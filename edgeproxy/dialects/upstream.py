"""Reading what an upstream answered, where providers follow the same rules: a body that must
be a JSON object, a retry hint, the neutral code an HTTP status stands for and a
token count that may be missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from edgeproxy import errors

# An HTTP status as the neutral code of an error whose provider type says nothing more (the
# statuses one provider never sends, such as 529 from Gemini, cost nothing to share).
_STATUS_CODES = {
    400: "invalid_request",
    401: "authentication_error",
    402: "permission_denied",
    403: "permission_denied",
    404: "not_found",
    408: "upstream_timeout",
    413: "request_too_large",
    429: "rate_limited",
    503: "overloaded",
    504: "upstream_timeout",
    529: "overloaded",
}


def json_object(body: bytes, provider: str, what: str) -> dict[str, Any]:
    """`body` as the JSON object it must be; anything else is a broken upstream's answer."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise errors.upstream_broken(provider, f"{what} is not a JSON object: {body[:200]!r}")
    return value


def retry_after(headers: Mapping[str, str], clock: Callable[[], float] = time.time) -> float | None:
    """Seconds the provider asks us to wait: `retry-after-ms` (OpenAI's), else `retry-after` in
    seconds or as an HTTP date (read against the answer's own `date` header when it has one,
    else `clock`, wall time); None when absent or unreadable."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value).timestamp()
        date = headers.get("date")
        now = parsedate_to_datetime(date).timestamp() if date else clock()
    except (TypeError, ValueError):
        return None
    return max(0.0, moment - now)


def code_for_status(status: int) -> str:
    """The neutral code for an error's HTTP `status` when nothing else in the answer says
    more; every provider uses statuses this way (529: Anthropic's overload)."""
    return _STATUS_CODES.get(status, "upstream_error" if status >= 500 else "invalid_request")


def token_count(usage: dict[str, Any], name: str) -> int:
    """`usage[name]`, 0 when it is missing or not a whole number."""
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
