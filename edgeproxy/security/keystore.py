"""Virtual keys kept in Redis, created, listed, rotated and revoked through the admin API, and
found by the `Authenticate` stage after the configured ones.

Layout (P = `redis.prefix`). Every name carries the hash tag `{P:keys}`, so in a Redis Cluster
the whole store lives in one slot and a change is one atomic script; the store is small (a
record per key) and requests read it through a local cache, so one slot carries it easily.

    {P:keys}:ids         a hash: id -> the key's record (JSON, `KeyRecord`), revoked ones too
    {P:keys}:d:<sha256>  the record of the live key with that digest (what a request reads)
    P:keys               the pub/sub channel of changes (a channel, not a key)

Only a key's SHA-256 is stored. A change (create, rotate, revoke) is one script: it compares
the id's entry with what was read (so two admins rotating at once cannot both win), writes the
entry, writes or deletes the digest records, and publishes `{"event", "id", "digests"}` on the
channel, all atomically. Ids are never reused: a revoked key keeps its entry, listed as
revoked. A rotation moves the settings to a new digest and deletes the old one in that same
script, so no moment has both keys or neither.

Finding a key (`find`) is one GET of its digest record, bounded by `redis.timeout`, whose
answer is kept in a local cache, found keys and unknown digests apart (so a flood of made-up
keys cannot push the real ones out), each bounded in size, least recently used first out:
- a found key is trusted for 60 s while the channel is heard, for 1 s while it is not;
- an unknown digest is answered from the cache for 5 s (garbage keys cost one GET each per
  5 s; a new key is never refused by it, since its digest was never asked for before);
- every message on the channel evicts its digests on every sidecar, so a revocation takes
  effect everywhere as soon as it is heard (well within a second); on every (re)subscription
  the whole cache is dropped, since messages sent while disconnected are lost; and an answer
  from Redis that was on its way while a message arrived is used but not kept;
- requests for one digest that is not cached wait for one GET, not one each.

When Redis fails (an error or the timeout), it is left alone for a second, and meanwhile:
- a key found within the last 5 minutes stays valid (a caller is not locked out by an outage;
  a revocation cannot be made while Redis is down anyway);
- any other key is answered 503 `key_store_unavailable` (retryable), not 401: a valid caller
  must not be told its key is invalid, and nothing is let in unchecked.
The admin operations raise `KeyStoreUnavailable` instead, so the admin API says the change did
not happen.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

import orjson
from redis.asyncio import Redis, RedisCluster

from edgeproxy import errors
from edgeproxy.background import Background
from edgeproxy.redis_channel import ChannelListener
from edgeproxy.security.auth import hash_key, new_key
from edgeproxy.security.key_records import KeyRecord, KeyRules, with_digest
from edgeproxy.security.settings import KeySettings, SharedState
from edgeproxy.security.shared_redis import channel_listener

log = logging.getLogger(__name__)

T = TypeVar("T")

TRUST_HEARD = 60.0  # seconds a found key is trusted while the channel is heard
TRUST_UNHEARD = 1.0  # ... while it is not: the bound on how late a revocation takes effect
UNKNOWN_FOR = 5.0  # seconds an unknown digest is answered from the cache
OUTAGE_GRACE = 300.0  # seconds a key found before an outage stays valid during it
QUIET_AFTER_FAILURE = 1.0  # seconds Redis is left alone after a failed lookup
ADMIN_DEADLINE = 2.0  # seconds an admin operation may take
MAX_FOUND = 10_000
MAX_UNKNOWN = 10_000

# KEYS[1]: the id index; KEYS[2..n]: digest records. ARGV[1]: the id; ARGV[2]: its entry as
# read ("" when absent); ARGV[3]: its new entry; ARGV[4]: the channel; ARGV[5]: the message;
# ARGV[6..]: each digest record's new value, "" to delete it.
_CHANGE = """
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
for i = 2, #KEYS do
  local value = ARGV[i + 4]
  if value == '' then redis.call('DEL', KEYS[i]) else redis.call('SET', KEYS[i], value) end
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""


class KeyStoreUnavailable(Exception):
    """Redis did not answer an admin operation; nothing was changed, or it is unknown whether."""


class KeyConflict(Exception):
    """The operation contradicts the key's state (an id taken, a key revoked, a race lost)."""


class _Ask(enum.Enum):
    REDIS = "ask Redis"


_ASK: Final = _Ask.REDIS


@dataclass(slots=True)
class _Seen:
    key: KeySettings | None
    at: float  # monotonic seconds, when Redis said so


class _Recent:
    """A bounded map of digests to what Redis said, least recently used first out."""

    __slots__ = ("_entries", "_limit")

    def __init__(self, limit: int) -> None:
        self._entries: OrderedDict[str, _Seen] = OrderedDict()
        self._limit = limit

    def get(self, digest: str) -> _Seen | None:
        seen = self._entries.get(digest)
        if seen is not None:
            self._entries.move_to_end(digest)
        return seen

    def put(self, digest: str, seen: _Seen) -> None:
        self._entries[digest] = seen
        self._entries.move_to_end(digest)
        if len(self._entries) > self._limit:
            self._entries.popitem(last=False)

    def drop(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class RedisKeyStore:
    """The `KeyStore` in Redis and its admin operations. `listen()` once the loop runs (it
    starts the channel's listener), `close()` at shutdown; the client belongs to the caller."""

    __slots__ = (
        "_change",
        "_channel",
        "_client",
        "_clock",
        "_down",
        "_epoch",
        "_found",
        "_index",
        "_pending",
        "_quiet_until",
        "_rules",
        "_settings",
        "_subscription",
        "_tag",
        "_unknown",
        "_wall",
        "failures",
        "heard",
        "lookups",
        "subscriptions",
    )

    def __init__(
        self,
        client: Redis | RedisCluster,
        settings: SharedState,
        rules: KeyRules,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if "{" in settings.prefix or "}" in settings.prefix:
            raise ValueError("the Redis prefix must not contain braces (they make hash tags)")
        self._client = client
        self._settings = settings
        self._rules = rules
        self._clock = clock
        self._wall = wall
        self._tag = f"{{{settings.prefix}:keys}}"
        self._index = f"{self._tag}:ids"
        self._channel = f"{settings.prefix}:keys"
        self._change = client.register_script(_CHANGE)
        self._found = _Recent(MAX_FOUND)
        self._unknown = _Recent(MAX_UNKNOWN)
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._epoch = 0  # moves on every change heard: answers read before it are not kept
        self._quiet_until = -1.0
        self._down = False
        self._subscription: ChannelListener | None = None
        self.lookups = self.failures = 0  # GETs sent, and those that failed
        self.heard = self.subscriptions = 0  # messages on the channel, (re)subscriptions

    def record_name(self, digest: str) -> str:
        """The Redis key of the live key with `digest`."""
        return f"{self._tag}:d:{digest}"

    @property
    def listening(self) -> bool:
        return self._subscription is not None and self._subscription.listening

    def listen(self, background: Background) -> None:
        """Hear changes made by every sidecar (this one too), from a service of `background`."""
        if self._subscription is not None:
            raise RuntimeError("already listening")
        self._subscription = channel_listener(
            self._settings, self._client, self._channel, self._heard, self._subscribed
        )
        self._subscription.start(background)

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.stop()

    # --- the request path ---------------------------------------------------------------

    async def find(self, digest: str) -> KeySettings | None:
        """The live key with `digest`, or None; raises ProxyError (503) when Redis cannot
        say and the key was not found valid shortly before."""
        while True:
            known = self._recall(digest)
            if known is not _ASK:
                return known
            pending = self._pending.get(digest)
            if pending is None:
                return await self._lead(digest)
            await asyncio.shield(pending)  # then the cache (or the outage rule) answers

    def _recall(self, digest: str) -> KeySettings | _Ask | None:
        now = self._clock()
        seen = self._found.get(digest)
        trusted_for = TRUST_HEARD if self.listening else TRUST_UNHEARD
        if seen is not None and now - seen.at < trusted_for:
            return seen.key
        unknown = self._unknown.get(digest)
        if unknown is not None and now - unknown.at < UNKNOWN_FOR:
            return None
        return _ASK

    async def _lead(self, digest: str) -> KeySettings | None:
        pending = asyncio.get_running_loop().create_future()
        self._pending[digest] = pending
        try:
            return await self._load(digest)
        finally:
            del self._pending[digest]
            pending.set_result(None)

    async def _load(self, digest: str) -> KeySettings | None:
        now = self._clock()
        if now < self._quiet_until:
            return self._during_outage(digest, now)
        epoch = self._epoch
        self.lookups += 1
        try:
            async with asyncio.timeout(self._settings.timeout):
                data = await self._client.get(self.record_name(digest))
        except Exception as exc:
            self._failed(exc, now)
            return self._during_outage(digest, now)
        if self._down:
            self._down = False
            log.info("the key store answers again")
        key = self._live(digest, data)
        if key is None:
            self._found.drop(digest)  # no outage may bring it back
        if epoch == self._epoch:
            (self._found if key is not None else self._unknown).put(digest, _Seen(key, now))
        return key

    def _live(self, digest: str, data: bytes | str | None) -> KeySettings | None:
        if data is None:
            return None
        try:
            record = KeyRecord.decode(data)
        except ValueError as exc:
            log.warning("unreadable record of the key hashed %s...: %s", digest[:8], exc)
            return None
        key = record.settings
        if record.revoked_at is not None or key.digest != digest:
            return None
        if key.policy is not None and key.policy not in self._rules.policies:
            log.warning("key %s names a guardrails policy no longer configured: refused", key.id)
            return None
        return key

    def _during_outage(self, digest: str, now: float) -> KeySettings | None:
        seen = self._found.get(digest)
        if seen is not None and now - seen.at < OUTAGE_GRACE:
            return seen.key
        raise errors.key_store_unavailable()

    def _failed(self, exc: Exception, now: float) -> None:
        self.failures += 1
        self._quiet_until = now + QUIET_AFTER_FAILURE
        if not self._down:
            self._down = True
            log.warning(
                "the key store cannot reach Redis (%r): keys found within %gs stay valid, "
                "others are answered 503 until it answers",
                exc,
                OUTAGE_GRACE,
            )
        else:
            log.debug("the key store still cannot reach Redis: %r", exc)

    # --- changes heard on the channel ---------------------------------------------------

    def _subscribed(self) -> None:
        self.subscriptions += 1
        self._forget_all()  # what was changed while no one listened is unknown

    def _heard(self, message: bytes) -> None:
        self.heard += 1
        try:
            digests = _digests_of(message)
        except ValueError as exc:
            log.warning("a malformed key event (%s): every cached key is asked again", exc)
            self._forget_all()
            return
        self._forget(digests)

    def _forget(self, digests: Sequence[str]) -> None:
        self._epoch += 1
        for digest in digests:
            self._found.drop(digest)
            self._unknown.drop(digest)

    def _forget_all(self) -> None:
        self._epoch += 1
        self._found.clear()
        self._unknown.clear()

    # --- the admin operations -----------------------------------------------------------

    async def create(self, fields: Any) -> tuple[str, KeyRecord]:
        """A new key with the settings in `fields` (the configuration's key fields but
        `hash`), and its record. The key is returned here and never again. Raises
        InvalidKeyRequest, KeyConflict (the id is taken) or KeyStoreUnavailable."""
        key = new_key()
        record = KeyRecord(self._rules.template(fields, hash_key(key)), created_at=self._wall())
        if not await self._commit(record, None, [(record.digest, record)], "created"):
            raise KeyConflict(
                f"a key with id {record.id!r} exists (ids are never reused, revoked ones neither)"
            )
        return key, record

    async def get(self, key_id: str) -> KeyRecord | None:
        entry = await self._admin("HGET", lambda: self._client.hget(self._index, key_id))
        return KeyRecord.decode(entry) if entry is not None else None

    async def records(self) -> list[KeyRecord]:
        """Every key, revoked ones too, by id; unreadable entries are logged and left out."""
        entries = await self._admin("HGETALL", lambda: self._client.hgetall(self._index))
        records = []
        for key_id, entry in entries.items():
            try:
                records.append(KeyRecord.decode(entry))
            except ValueError as exc:
                log.warning("unreadable key entry %r: %s", key_id, exc)
        return sorted(records, key=lambda record: record.id)

    async def revoke(self, key_id: str) -> KeyRecord | None:
        """Revoke the key `key_id` everywhere; its record, or None for an unknown id. Revoking
        a revoked key changes nothing. Raises KeyConflict or KeyStoreUnavailable."""
        entry, record = await self._current(key_id)
        if record is None or record.revoked_at is not None:
            return record
        revoked = replace(record, revoked_at=self._wall())
        if not await self._commit(revoked, entry, [(record.digest, None)], "revoked"):
            raise KeyConflict(f"key {key_id!r} changed while being revoked; try again")
        return revoked

    async def rotate(self, key_id: str) -> tuple[str, KeyRecord] | None:
        """A new key for `key_id`, with the same settings; the old one stops working at the
        same moment. None for an unknown id. Raises KeyConflict (a revoked key) or
        KeyStoreUnavailable."""
        entry, record = await self._current(key_id)
        if record is None:
            return None
        if record.revoked_at is not None:
            raise KeyConflict(f"key {key_id!r} is revoked: create a new key instead")
        key = new_key()
        rotated = with_digest(record, hash_key(key), self._wall())
        changes = [(record.digest, None), (rotated.digest, rotated)]
        if not await self._commit(rotated, entry, changes, "rotated"):
            raise KeyConflict(f"key {key_id!r} changed while being rotated; try again")
        return key, rotated

    async def _current(self, key_id: str) -> tuple[bytes | str | None, KeyRecord | None]:
        entry = await self._admin("HGET", lambda: self._client.hget(self._index, key_id))
        return entry, KeyRecord.decode(entry) if entry is not None else None

    async def _commit(
        self,
        record: KeyRecord,
        expected: bytes | str | None,
        digests: Sequence[tuple[str, KeyRecord | None]],
        event: str,
    ) -> bool:
        """Write `record` as its id's entry if that still is `expected`, with each digest's
        record written (or deleted: None), and announce it; whether it was written."""
        names = [self._index, *(self.record_name(digest) for digest, _ in digests)]
        message = orjson.dumps(
            {"event": event, "id": record.id, "digests": [digest for digest, _ in digests]}
        )
        values = [r.encode() if r is not None else b"" for _, r in digests]
        arguments: list[bytes | str] = [
            record.id,
            expected or b"",
            record.encode(),
            self._channel,
            message,
            *values,
        ]
        done = await self._admin("change", lambda: self._change(keys=names, args=arguments))
        self._forget([digest for digest, _ in digests])  # here at once, whatever the channel
        return bool(done)

    async def _admin(self, what: str, command: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(ADMIN_DEADLINE):
                return await command()
        except Exception as exc:
            raise KeyStoreUnavailable(f"Redis {what} failed: {exc!r}") from exc


def _digests_of(message: bytes) -> list[str]:
    event = orjson.loads(message)
    digests = event.get("digests") if isinstance(event, dict) else None
    if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests):
        raise ValueError("expected an object with a list of digests")
    return digests
