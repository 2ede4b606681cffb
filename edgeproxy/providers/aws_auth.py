"""AWS Signature Version 4 for Bedrock, and where the credentials come from.

`sign_request` is pure: the clock and the credentials come in, the headers to add go out. The
canonical request follows AWS's rules for every service but S3: the path is normalised (dot
segments and empty segments removed) and each segment is URI-encoded *again* on top of the
encoding it travels with, so Bedrock's `/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/...`
is signed as `.../anthropic.claude-3-5-sonnet-20240620-v1%253A0/...`. Hence `url` must be the
URL exactly as it goes on the wire, percent-encoding included.

Credential sources are async because the standard chain (web identity for IRSA, STS, instance
metadata) does blocking I/O; `BotocoreCredentials` runs it in a worker thread and only near
expiry. botocore is optional and imported only there.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import importlib
import importlib.util
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote, unquote_to_bytes, urlsplit

from edgeproxy.config_reader import Secret

ALGORITHM = "AWS4-HMAC-SHA256"
# Headers a hop may add, drop or rewrite, so they must stay out of the signature.
UNSIGNED = frozenset(
    {
        "authorization",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
# Set by the signer itself; a caller's copy is replaced rather than signed twice.
_SIGNER_SET = frozenset({"x-amz-date", "x-amz-content-sha256", "x-amz-security-token"})
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """One set of keys; the secret and the session token never show in a repr or a log line."""

    access_key_id: str
    secret_access_key: Secret
    session_token: Secret | None = None
    expiry: datetime | None = None  # timezone-aware; None for keys that do not expire


# ── signing ──────────────────────────────────────────────────────────────────────────────────


def derive_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The key for one day, region and service: four chained HMACs from the secret."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


class SigningKeyCache:
    """Derived keys by (secret, date, region, service), so a request costs one HMAC, not five.

    A new day or a rotated secret is a new entry; the table is cleared when it fills, which
    in practice means once a day per deployment.
    """

    __slots__ = ("_derive", "_keys", "max_entries")

    def __init__(
        self,
        derive: Callable[[str, str, str, str], bytes] = derive_signing_key,
        max_entries: int = 32,
    ) -> None:
        self._derive = derive
        self._keys: dict[tuple[str, str, str, str], bytes] = {}
        self.max_entries = max_entries

    def get(self, secret: str, date: str, region: str, service: str) -> bytes:
        scope = (secret, date, region, service)
        key = self._keys.get(scope)
        if key is None:
            if len(self._keys) >= self.max_entries:
                self._keys.clear()
            key = self._keys[scope] = self._derive(*scope)
        return key


SIGNING_KEYS = SigningKeyCache()


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    *,
    credentials: AwsCredentials,
    region: str,
    service: str,
    now: datetime,
    sign_content_sha256: bool = True,
    keys: SigningKeyCache = SIGNING_KEYS,
) -> dict[str, str]:
    """The headers to add to a request so AWS accepts it: `authorization`, `x-amz-date`,
    `x-amz-content-sha256` (unless turned off) and `x-amz-security-token` for session keys.

    `headers` are the ones that will be sent (a multidict's repeated names are kept); all are
    signed but `UNSIGNED`. `host` is taken from the URL when it is not among them.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    amz_date = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    payload_hash = hashlib.sha256(body).hexdigest()
    added = {"x-amz-date": amz_date}
    if sign_content_sha256:
        added["x-amz-content-sha256"] = payload_hash
    if credentials.session_token is not None:
        added["x-amz-security-token"] = credentials.session_token.reveal()
    given = headers.items() if isinstance(headers, Mapping) else headers
    pairs = [(name, value) for name, value in given if name.lower() not in _SIGNER_SET]
    canonical, signed = canonical_request(method, url, [*pairs, *added.items()], payload_hash)
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"
    key = keys.get(credentials.secret_access_key.reveal(), amz_date[:8], region, service)
    signature = hmac.digest(key, to_sign.encode(), "sha256").hex()
    added["authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return added


def canonical_request(
    method: str, url: str, headers: Iterable[tuple[str, str]], payload_hash: str
) -> tuple[str, str]:
    """AWS's canonical form of a request, and its signed-headers list."""
    parts = urlsplit(url)
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name.lower(), []).append(" ".join(value.split()))
    for name in UNSIGNED & grouped.keys():
        del grouped[name]
    if "host" not in grouped:
        grouped["host"] = [_host(parts.scheme, parts.netloc)]
    names = sorted(grouped)
    lines = "".join(f"{name}:{','.join(grouped[name])}\n" for name in names)
    signed = ";".join(names)
    uri, query = canonical_uri(parts.path), canonical_query(parts.query)
    return f"{method.upper()}\n{uri}\n{query}\n{lines}\n{signed}\n{payload_hash}", signed


def canonical_uri(path: str) -> str:
    """The path normalised and each segment encoded once more (the rule for all but S3)."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(quote(segment, safe=""))
    uri = "/" + "/".join(segments)
    return uri + "/" if segments and path.endswith("/") else uri


def canonical_query(query: str) -> str:
    """Parameters decoded, re-encoded the RFC 3986 way and sorted by name, then value."""
    pairs = []
    for item in query.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((_rfc3986(name), _rfc3986(value)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _rfc3986(component: str) -> str:
    # Through bytes, so an encoded byte that is not UTF-8 keeps its exact value.
    return quote(unquote_to_bytes(component), safe="-_.~")


def _host(scheme: str, netloc: str) -> str:
    """The Host header an HTTP client sends for this URL: no user info, no default port."""
    host = netloc.rpartition("@")[2].lower()
    default = _DEFAULT_PORTS.get(scheme)
    return host[: -len(default)] if default and host.endswith(default) else host


# ── credential sources ───────────────────────────────────────────────────────────────────────


class CredentialSource(Protocol):
    async def get(self) -> AwsCredentials:
        """Credentials valid for at least the next request; may refresh them first."""
        ...


class CredentialsError(Exception):
    """No usable AWS credentials: the message says where they were looked for."""


class StaticCredentials:
    """Keys given in the configuration or the environment: they never change."""

    __slots__ = ("_credentials",)

    def __init__(self, credentials: AwsCredentials) -> None:
        self._credentials = credentials

    async def get(self) -> AwsCredentials:
        return self._credentials

    def __repr__(self) -> str:
        return f"StaticCredentials({self._credentials!r})"


def from_environment(env: Mapping[str, str]) -> StaticCredentials | None:
    """AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; None when unset."""
    key_id = env.get("AWS_ACCESS_KEY_ID", "")
    secret = env.get("AWS_SECRET_ACCESS_KEY", "")
    if not key_id and not secret:
        return None
    if not key_id or not secret:
        missing = "AWS_ACCESS_KEY_ID" if not key_id else "AWS_SECRET_ACCESS_KEY"
        raise CredentialsError(f"{missing} is not set, but its partner is")
    token = env.get("AWS_SESSION_TOKEN", "")
    return StaticCredentials(
        AwsCredentials(key_id, Secret(secret), Secret(token) if token else None)
    )


def botocore_available() -> bool:
    """Whether the optional botocore package can be imported for `BotocoreCredentials`."""
    return importlib.util.find_spec("botocore") is not None


class _FrozenCredentials(Protocol):
    access_key: str
    secret_key: str
    token: str | None


class _BotocoreCredentials(Protocol):
    def get_frozen_credentials(self) -> _FrozenCredentials: ...


class BotocoreSession(Protocol):
    """The part of `botocore.session.Session` this module uses."""

    def get_credentials(self) -> _BotocoreCredentials | None: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BotocoreCredentials:
    """The standard AWS chain through botocore: environment, shared files, web identity (IRSA:
    AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN), container and instance metadata.

    Resolving and refreshing may read files and call STS, so it runs in a worker thread, and
    only when there is nothing cached or the cached keys expire within `refresh_margin`. A lock
    makes concurrent requests share one refresh. The margin must stay below botocore's own
    mandatory refresh window (10 minutes), or botocore would hand back the same keys.
    """

    __slots__ = ("_cached", "_clock", "_lock", "_session", "refresh_margin")

    def __init__(
        self,
        session: BotocoreSession | None = None,
        *,
        refresh_margin: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._session = session
        self.refresh_margin = refresh_margin
        self._clock = clock
        self._cached: AwsCredentials | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> AwsCredentials:
        cached = self._cached
        if cached is not None and not self._stale(cached):
            return cached
        async with self._lock:
            cached = self._cached  # another request may have refreshed while this one waited
            if cached is None or self._stale(cached):
                cached = self._cached = await asyncio.to_thread(self._resolve)
            return cached

    def _stale(self, credentials: AwsCredentials) -> bool:
        expiry = credentials.expiry
        return expiry is not None and self._clock() >= expiry - self.refresh_margin

    def _resolve(self) -> AwsCredentials:
        """Blocking: runs in a worker thread, one at a time (the caller holds the lock)."""
        if self._session is None:
            self._session = _default_session()
        found = self._session.get_credentials()
        if found is None:
            raise CredentialsError(
                "no AWS credentials found: set aws keys in the provider config, or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, web identity (IRSA) "
                "or an instance role"
            )
        frozen = found.get_frozen_credentials()
        # botocore keeps the expiry of refreshable keys only in this attribute.
        expiry = getattr(found, "_expiry_time", None)
        if isinstance(expiry, datetime) and expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        return AwsCredentials(
            frozen.access_key,
            Secret(frozen.secret_key),
            Secret(frozen.token) if frozen.token else None,
            expiry if isinstance(expiry, datetime) else None,
        )


def _default_session() -> BotocoreSession:
    module: Any = importlib.import_module("botocore.session")
    session: BotocoreSession = module.get_session()
    return session
