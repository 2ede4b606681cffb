"""The semantic layer on the request path: a near-identical question answered from the cache.

After an exact miss, for a group that opted in, the last user turn is embedded (within a time
budget; past it, the layer is skipped) and searched in its partition (everything else of the
request, exactly). A match must pass the cosine threshold and the lexical guard, and its exact
entry must still be in the cache. In `serve` mode it answers (`x-edgeproxy-cache:
hit-semantic`); in `shadow` mode the provider answers as usual and the would-be hit is logged
and counted, with whether the fresh answer agreed with the stored one, so operators can
measure precision before serving. Questions of stored answers are embedded and indexed in the
background. The index is in this process.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from edgeproxy.cache.embed import EmbeddingsCache, LocalMiniLM
from edgeproxy.cache.guard import Guard
from edgeproxy.cache.vectors import Question, VectorIndex, question
from edgeproxy.config import CacheKeySettings, SemanticSettings
from edgeproxy.operations import Operation

if TYPE_CHECKING:
    from edgeproxy.cache.answer import StoredAnswer

log = logging.getLogger(__name__)
_CANDIDATES = 3  # matches tried through the guard, best first


class SemanticCache:
    """Embedder, index and guard, built once when some group opted in."""

    __slots__ = ("_embedder", "_guard", "_index", "_model", "_settings", "counts")

    def __init__(self, settings: SemanticSettings) -> None:
        self._settings = settings
        model = self._model = LocalMiniLM()
        self._embedder = EmbeddingsCache(model)
        self._index = VectorIndex(model.dims)
        self._guard = Guard()
        self.counts = dict.fromkeys(
            ("hits", "shadow_hits", "refused", "over_budget", "agreed", "disagreed"), 0
        )

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

    async def find(self, asked: Question) -> str | None:
        """The entry key of a stored answer to a near-identical question, or None."""
        try:
            async with asyncio.timeout(self._settings.budget):
                (vector,) = await self._embedder.embed([asked.text])
        except TimeoutError:
            self.counts["over_budget"] += 1
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

    def forget(self, entry_key: str) -> None:
        self._index.remove(entry_key)

    async def remember(self, asked: Question, entry_key: str) -> None:
        """Index the question of a stored answer (from the background)."""
        (vector,) = await self._embedder.embed([asked.text])
        self._index.add(asked.partition, entry_key, vector, asked.text)

    def judge(self, would: StoredAnswer, fresh: StoredAnswer | None) -> None:
        """Shadow mode: did the fresh answer agree with the one the cache would have given?"""
        if fresh is None:
            return
        same = _text(would) == _text(fresh)
        self.counts["agreed" if same else "disagreed"] += 1

    def snapshot(self) -> dict[str, object]:
        return {"mode": self._settings.mode, "indexed": len(self._index), **self.counts}


def _text(stored: StoredAnswer) -> str:
    from edgeproxy.dialects.neutral import assemble

    return assemble(list(stored.events)).text if stored.events else stored.body.decode()
