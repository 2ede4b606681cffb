"""Reading what an upstream answered, where providers follow the same rules: a body that must
be a JSON object, a `retry-after` in seconds, the neutral code an HTTP status stands for and a
token count that may be missing.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def retry_after(headers: Mapping[str, str]) -> float | None:
    """`retry-after` in seconds; None when absent or not a number (such as an HTTP date)."""
    try:
        return max(0.0, float(headers.get("retry-after") or ""))
    except ValueError:
        return None


def code_for_status(status: int) -> str:
    """The neutral code for an error's HTTP `status` when nothing else in the answer says
    more; every provider uses statuses this way (529: Anthropic's overload)."""
    return _STATUS_CODES.get(status, "upstream_error" if status >= 500 else "invalid_request")


def token_count(usage: dict[str, Any], name: str) -> int:
    """`usage[name]`, 0 when it is missing or not a whole number."""
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
