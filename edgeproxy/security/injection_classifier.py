"""An optional second opinion on prompt injection: a logistic regression over local sentence
embeddings, for what the scored rules (`injection.InjectionRules`) have no pattern for.

`InjectionClassifier().score(text)` embeds the text with all-MiniLM-L6-v2 (the `semantic`
extra's local model, `cache.embed.LocalMiniLM`, in a worker thread like every inference) and
returns the probability that it is an attack, in [0, 1]. The 384 weights and the bias live in
`data/injection_classifier.json`, fit by `bench/train_injection_classifier.py` on the dev
split of tests/data/injection/ only; the file names the embedding space it was fit in, and a
classifier refuses an embedder of another. Only numpy runs at scoring time. The model reads
the first 256 tokens of a text: an instruction at the end of a long document is not seen.

Without the `semantic` extra, constructing one raises `cache.embed.MissingExtra`.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Final

from edgeproxy.cache.embed import Embedder, LocalMiniLM

if TYPE_CHECKING:
    from edgeproxy.cache.vectors import Vector

_FILE: Final = "injection_classifier.json"
WEIGHTS: Final = Path(__file__).with_name("data") / _FILE  # where the trainer writes them
DEFAULT_THRESHOLD: Final = 0.5


class InjectionClassifier:
    """Weights loaded once; `score` embeds one text, `score_vector` scores an embedding."""

    __slots__ = ("_bias", "_embedder", "_weights", "threshold")

    def __init__(
        self, embedder: Embedder | None = None, threshold: float = DEFAULT_THRESHOLD
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        self._embedder = embedder or LocalMiniLM()
        import numpy as np

        text = resources.files("edgeproxy.security.data").joinpath(_FILE).read_text("utf-8")
        fitted = json.loads(text)
        if fitted["model"] != self._embedder.name:
            raise ValueError(
                f"the classifier was fit on {fitted['model']} embeddings, not {self._embedder.name}"
            )
        self._weights: Vector = np.asarray(fitted["weights"], dtype=np.float32)
        if self._weights.shape != (self._embedder.dims,):
            raise ValueError(f"{_FILE}: {self._weights.shape} weights for {self._embedder.dims}")
        self._bias = float(fitted["bias"])
        self.threshold = threshold

    async def load(self) -> None:
        """Load the embedding model before the first request needs it."""
        if isinstance(self._embedder, LocalMiniLM):
            await self._embedder.load()

    async def score(self, text: str) -> float:
        """The probability that `text` is an attack (the embedding runs in a worker thread)."""
        [vector] = await self._embedder.embed([text])
        return self.score_vector(vector)

    def score_vector(self, vector: Vector) -> float:
        logit = float(vector @ self._weights) + self._bias
        return 1 / (1 + math.exp(-max(-60.0, min(60.0, logit))))

    async def flags(self, text: str) -> bool:
        return await self.score(text) >= self.threshold
