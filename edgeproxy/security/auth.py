"""Who is calling: the virtual key a request presents, found among the configured ones.

Keys are never stored, only their SHA-256 (`edgeproxy hash-key` prints it). A presented key is
hashed once; the first 16 hex digits of its digest pick a bucket, and the full digests in it
are compared with `hmac.compare_digest`, so the time taken says nothing about how much of a
digest matched. The answer to a missing or unknown key comes before any other work: no cache
lookup, no limit counted, no upstream call; and it never quotes the key.

The SDKs send their key where their own API expects it: OpenAI's as `Authorization: Bearer`,
Anthropic's as `x-api-key` (newer versions as a bearer token too), Azure's as `api-key`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from typing import Protocol

from edgeproxy import errors
from edgeproxy.errors import ProxyError
from edgeproxy.exchange import Exchange, Reply
from edgeproxy.security.settings import KeySettings

_BUCKET = 16  # hex digits of the digest that index the keyring
_KEY_HEADERS = ("x-api-key", "api-key")


def hash_key(key: str) -> str:
    """The digest a key is configured and looked up by: 64 lower-case hex digits."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh virtual key: 256 random bits, with a prefix that says what it is."""
    return "sk-ep-" + secrets.token_urlsafe(32)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries (header names in lower case), or None."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    for name in _KEY_HEADERS:
        value = headers.get(name)
        if value and value.strip():
            return value.strip()
    return None


class KeyStore(Protocol):
    """Keys kept outside the configuration (in Redis, managed through the admin API)."""

    async def find(self, digest: str) -> KeySettings | None:
        """The live key with this digest, or None (unknown or revoked); raises ProxyError
        when the store cannot tell."""


class Keyring:
    """The configured keys, indexed by a prefix of their digest."""

    __slots__ = ("_buckets",)

    def __init__(self, keys: Iterable[KeySettings]) -> None:
        buckets: dict[str, list[KeySettings]] = {}
        for key in keys:
            buckets.setdefault(key.digest[:_BUCKET], []).append(key)
        self._buckets = {prefix: tuple(found) for prefix, found in buckets.items()}

    def find(self, digest: str) -> KeySettings | None:
        found = None
        for key in self._buckets.get(digest[:_BUCKET], ()):
            if hmac.compare_digest(key.digest, digest):
                found = key
        return found


class Authenticate:
    """The first stage when `auth.mode` is `keys`: the caller, or a 401 in its dialect."""

    __slots__ = ("_keyring", "_store")

    def __init__(self, keyring: Keyring, store: KeyStore | None = None) -> None:
        self._keyring = keyring
        self._store = store

    async def __call__(self, exchange: Exchange) -> Reply | None:
        caller = await self.caller(exchange.headers)
        if isinstance(caller, ProxyError):
            return caller
        exchange.caller = caller
        return None

    async def caller(self, headers: Mapping[str, str]) -> KeySettings | ProxyError:
        """The key `headers` present, or the refusal to answer with (also for requests that
        are not API calls: feedback)."""
        presented = presented_key(headers)
        if presented is None:
            return errors.missing_key()
        digest = hash_key(presented)
        caller = self._keyring.find(digest)
        if caller is None and self._store is not None:
            try:
                caller = await self._store.find(digest)
            except ProxyError as err:
                return err
        return errors.invalid_key() if caller is None else caller
