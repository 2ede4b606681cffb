"""The semantic layer on the request path: a near-identical question answered from the cache.

After an exact miss, for a group that opted in, the last user turn is embedded (within a time
budget; past it, the layer is skipped) and searched in its partition (everything else of the
request, exactly). A match must pass the cosine threshold and the lexical guard, and its exact
entry must still be in the cache. In `serve` mode it answers (`x-edgeproxy-cache:
hit-semantic`); in `shadow` mode the provider answers as usual and the would-be hit is logged
and counted, with whether the fresh answer agreed with the stored one, so operators can
measure precision before serving. Questions of stored answers are embedded and indexed in the
background. The index is in this process; with Redis, every sidecar shares its vectors there
(one hash per partition, living as long as the entries) and loads a partition's shared vectors
at most every few seconds, when a question of that partition is asked.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from edgeproxy.cache.embed import EmbeddingsCache, LocalMiniLM
from edgeproxy.cache.guard import Guard
from edgeproxy.cache.vectors import (
    Question,
    Vector,
    VectorIndex,
    decode_vector,
    encode_vector,
    question,
)
from edgeproxy.config import CacheKeySettings, SemanticSettings
from edgeproxy.dialects.neutral import assemble
from edgeproxy.errors import ProxyError
from edgeproxy.operations import Operation
from edgeproxy.telemetry.latency import SEMANTIC_LOOKUP_SECONDS

if TYPE_CHECKING:
    from edgeproxy.cache.answer import StoredAnswer
    from edgeproxy.cache.redis import RedisCache

log = logging.getLogger(__name__)
_CANDIDATES = 3  # matches tried through the guard, best first
_REFRESH = 5.0  # seconds between reads of a partition's shared vectors
_MAX_PARTITIONS = 10_000


class SemanticCache:
    """Embedder, index and guard, built once when some group opted in."""

    __slots__ = (
        "_embedder",
        "_embedder_down",
        "_guard",
        "_index",
        "_loaded",
        "_model",
        "_remote",
        "_settings",
        "counts",
    )

    def __init__(self, settings: SemanticSettings, remote: RedisCache | None = None) -> None:
        self._settings = settings
        self._remote = remote
        self._loaded: dict[str, float] = {}  # partition -> when its shared vectors were read
        self._embedder_down = False  # logged once per outage, not once per request
        model: LocalMiniLM | DeploymentEmbedder
        if settings.embedder == "local":
            model = LocalMiniLM()
        else:
            assert settings.dims is not None, "checked at load"
            model = DeploymentEmbedder(settings.embedder, settings.dims)
        self._model = model
        self._embedder = EmbeddingsCache(model)
        self._index = VectorIndex(model.dims)
        self._guard = Guard()
        self.counts = dict.fromkeys(
            (
                "hits",
                "shadow_hits",
                "refused",
                "over_budget",
                "embed_failed",
                "agreed",
                "disagreed",
            ),
            0,
        )

    def connect(self, embed: EmbedCall) -> None:
        """Give an embeddings-group embedder the way to ask its group (the pipeline)."""
        if isinstance(self._model, DeploymentEmbedder):
            self._model.call = embed

    @property
    def shadow(self) -> bool:
        return self._settings.mode == "shadow"

    async def open(self) -> None:
        """Load the model at startup, not on the first request."""
        await self._model.load()

    def question(
        self,
        operation: Operation,
        payload: dict[str, Any],
        scope: str,
        namespace: str,
        key: CacheKeySettings,
    ) -> Question | None:
        return question(
            operation, payload, scope, namespace, key, max_chars=self._settings.max_chars
        )

    async def find(self, asked: Question, namespace: str) -> str | None:
        """The entry key of a stored answer to a near-identical question, or None."""
        began = time.perf_counter()
        try:
            return await self._find(asked, namespace)
        finally:
            SEMANTIC_LOOKUP_SECONDS.observe(time.perf_counter() - began)

    async def _find(self, asked: Question, namespace: str) -> str | None:
        try:
            async with asyncio.timeout(self._settings.budget):
                vector = await self._embed(asked.text, "lookup")
                await self._load_shared(asked.partition, namespace)
        except TimeoutError:
            self.counts["over_budget"] += 1
            return None
        if vector is None:
            return None
        matches = self._index.matches(
            asked.partition, vector, self._settings.threshold, _CANDIDATES
        )
        for match in matches:
            refusal = self._guard.refusal(asked.text, match.text)
            if refusal is None:
                return match.entry_key
            self.counts["refused"] += 1
            log.debug("semantic match refused: %s (score %.3f)", refusal, match.score)
        return None

    async def _embed(self, text: str, what: str) -> Vector | None:
        """The text's vector, or None (counted) when the embedder failed: the semantic layer
        is skipped. An outage is logged when it starts and ends, not on every request."""
        try:
            (vector,) = await self._embedder.embed([text])
        except (ProxyError, ValueError, KeyError, TypeError) as exc:
            self.counts["embed_failed"] += 1
            if not self._embedder_down:
                self._embedder_down = True
                log.warning("semantic %s skipped: the embedder failed: %r", what, exc)
            else:
                log.debug("semantic %s skipped: the embedder failed: %r", what, exc)
            return None
        if self._embedder_down:
            self._embedder_down = False
            log.info("the semantic layer's embedder answers again")
        return vector

    def forget(self, entry_key: str) -> None:
        self._index.remove(entry_key)

    async def remember(self, asked: Question, entry_key: str, namespace: str, ttl: float) -> None:
        """Index the question of a stored answer, and share it (from the background)."""
        vector = await self._embed(asked.text, "indexing")
        if vector is None:
            return
        self._index.add(asked.partition, entry_key, vector, asked.text)
        if self._remote is not None:
            record = orjson.dumps(
                {
                    "model": self._model.name,
                    "vector": base64.b64encode(encode_vector(vector)).decode(),
                    "text": asked.text,
                }
            )
            await self._remote.add_vector(namespace, asked.partition, entry_key, record, ttl)

    async def _load_shared(self, partition: str, namespace: str) -> None:
        """Index what other sidecars shared for this partition (at most every few seconds)."""
        remote = self._remote
        now = time.monotonic()
        if remote is None or now - self._loaded.get(partition, -_REFRESH) < _REFRESH:
            return
        if len(self._loaded) > _MAX_PARTITIONS:  # forget when partitions were read, not them
            self._loaded.clear()
        self._loaded[partition] = now
        records = await remote.vectors(namespace, partition) or {}
        for entry_key, data in records.items():
            if entry_key in self._index:
                continue
            try:
                record = orjson.loads(data)
                if record["model"] != self._model.name:
                    continue  # another model's space: not comparable
                vector = decode_vector(base64.b64decode(record["vector"]), self._model.dims)
                text = str(record["text"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            if vector is not None:
                self._index.add(partition, entry_key, vector, text)

    def judge(self, would: StoredAnswer, fresh: StoredAnswer | None) -> None:
        """Shadow mode: did the fresh answer agree with the one the cache would have given?"""
        if fresh is None:
            return
        same = _text(would) == _text(fresh)
        self.counts["agreed" if same else "disagreed"] += 1

    def snapshot(self) -> dict[str, object]:
        return {
            "mode": self._settings.mode,
            "indexed": len(self._index),
            "partitions": self._index.partitions,
            **self.counts,
        }


EmbedCall = Callable[[str, list[str]], Awaitable[list[list[float]]]]


class DeploymentEmbedder:
    """An embeddings model group of this proxy (any provider it routes to) as the embedder:
    its vectors come back through the proxy's own routing, normalised here."""

    def __init__(self, model: str, dims: int) -> None:
        self.model = model
        self.dims = dims
        self.name = f"group:{model}:{dims}"
        self.call: EmbedCall | None = None

    async def load(self) -> None:
        """Nothing to load: the group is asked per question."""

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        import numpy as np

        assert self.call is not None, "connected to the pipeline at startup"
        vectors = []
        for values in await self.call(self.model, list(texts)):
            vector = np.asarray(values, dtype=np.float32)
            if vector.shape != (self.dims,):
                raise ValueError(f"{self.model} gave {vector.shape[0]} dimensions, not {self.dims}")
            norm = float(np.linalg.norm(vector))
            vectors.append(vector / norm if norm else vector)
        return vectors


def _text(stored: StoredAnswer) -> str:
    events = stored.events
    return assemble(list(events)).text if events else stored.body.decode()
