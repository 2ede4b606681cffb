"""Semantic questions, the in-process vector index and the vector bytes, with synthetic vectors."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from edgeproxy.cache.keys import cache_key
from edgeproxy.cache.vectors import (
    Match,
    Question,
    Vector,
    VectorIndex,
    decode_vector,
    encode_vector,
    question,
)
from edgeproxy.config import CacheKeySettings
from edgeproxy.operations import Operation

DIMS = 8
CHAT, MESSAGES = Operation.CHAT, Operation.MESSAGES
DEFAULT = CacheKeySettings()


def unit(*values: float) -> Vector:
    vector = np.zeros(DIMS, dtype=np.float32)
    vector[: len(values)] = values
    normalised: Vector = vector / np.float32(np.linalg.norm(vector))
    return normalised


def axis(i: int) -> Vector:
    return unit(*([0.0] * i), 1.0)


def tilted(i: int, toward: int, cosine: float) -> Vector:
    """A unit vector at `cosine` from axis i, leaning toward axis `toward`."""
    vector = np.zeros(DIMS, dtype=np.float32)
    vector[i], vector[toward] = cosine, np.sqrt(1 - cosine**2)
    return vector


# --- questions ---------------------------------------------------------------------------------


def chat(*turns: Any, **fields: Any) -> dict[str, Any]:
    roles = ("user", "assistant")
    messages = [{"role": roles[i % 2], "content": turn} for i, turn in enumerate(turns)]
    return {"model": "gpt-4o", "messages": messages, **fields}


def ask(payload: dict[str, Any], **overrides: Any) -> Question | None:
    args: dict[str, Any] = {
        "operation": CHAT,
        "group": "smart",
        "namespace": "team-a",
        "settings": DEFAULT,
    }
    args.update(overrides)
    return question(args["operation"], payload, args["group"], args["namespace"], args["settings"])


def test_the_question_is_the_last_user_turn_and_the_rest_is_its_partition() -> None:
    one = ask(chat("Hi", "Hello!", "How do I reset my password?", temperature=0))
    two = ask(chat("Hi", "Hello!", "How can I reset my password?", temperature=0))
    assert one is not None and two is not None
    assert one.text == "How do I reset my password?"
    assert one.partition == two.partition
    assert len(one.partition) == 64


@pytest.mark.parametrize(
    ("payload", "overrides"),
    [
        (chat("Hey", "Hello!", "Reset my password?", temperature=0), {}),  # earlier turns
        (chat("Hi", "Hello!", "Reset my password?", temperature=1), {}),  # sampling
        (chat("Hi", "Hello!", "Reset my password?", temperature=0, tools=[{"x": 1}]), {}),
        (chat("Hi", "Hello!", "Reset my password?", temperature=0), {"group": "fast"}),
        (chat("Hi", "Hello!", "Reset my password?", temperature=0), {"namespace": "team-b"}),
        (
            chat("Hi", "Hello!", "Reset my password?", temperature=0),
            {"settings": CacheKeySettings(case_insensitive=True)},
        ),
    ],
    ids=["earlier-turns", "temperature", "tools", "group", "tenant", "key-settings"],
)
def test_anything_but_the_last_user_text_changes_the_partition(
    payload: dict[str, Any], overrides: dict[str, Any]
) -> None:
    base = ask(chat("Hi", "Hello!", "Reset my password?", temperature=0))
    other = ask(payload, **overrides)
    assert base is not None and other is not None
    assert base.partition != other.partition


def test_a_system_prompt_is_part_of_the_partition() -> None:
    system = {"role": "system", "content": "Answer in French."}
    plain = chat("What is the capital of Peru?")
    with_system = {**plain, "messages": [system, *plain["messages"]]}
    one, two = ask(plain), ask(with_system)
    assert one is not None and two is not None and one.partition != two.partition


def test_one_text_part_is_the_same_question_as_a_string() -> None:
    text = ask(chat("What is the capital of Peru?"))
    parts = ask(chat([{"type": "text", "text": "What is the capital of Peru?"}]))
    assert text == parts


def test_anthropic_messages_have_questions_too() -> None:
    payload = {
        "model": "claude",
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Capital of Peru?"}]}],
    }
    found = ask(payload, operation=MESSAGES)
    assert found is not None and found.text == "Capital of Peru?"
    other = ask({**payload, "system": "Be thorough."}, operation=MESSAGES)
    assert other is not None and other.partition != found.partition


@pytest.mark.parametrize(
    ("operation", "payload"),
    [
        (Operation.EMBEDDINGS, {"model": "e", "input": "What is the capital of Peru?"}),
        (Operation.COMPLETIONS, {"model": "c", "prompt": "What is the capital of Peru?"}),
        (CHAT, chat("What is the capital of Peru?", "Lima.")),  # last turn is the assistant's
        (CHAT, {"model": "m", "messages": []}),
        (CHAT, {"model": "m", "messages": [{"role": "tool", "content": "42"}]}),
        (CHAT, chat([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])),
        (CHAT, chat([{"type": "image_url", "image_url": {"url": "https://x/y.png"}}])),
        (CHAT, chat("   ")),
        (CHAT, chat("x" * 1001)),
        (CHAT, {"model": "m", "messages": "not a list"}),
    ],
    ids=[
        "embeddings",
        "completions",
        "assistant-last",
        "no-turns",
        "tool-last",
        "two-parts",
        "image",
        "blank",
        "too-long",
        "malformed",
    ],
)
def test_requests_without_a_plain_last_user_text_have_no_question(
    operation: Operation, payload: dict[str, Any]
) -> None:
    assert ask(payload, operation=operation) is None


def test_the_length_limit_is_a_parameter() -> None:
    payload = chat("x" * 1001)
    found = question(CHAT, payload, "smart", "team-a", DEFAULT, max_chars=2000)
    assert found is not None and found.text == "x" * 1001


def test_a_partition_is_never_an_exact_cache_key() -> None:
    payload = chat("What is the capital of Peru?")
    found = ask(payload)
    assert found is not None
    assert found.partition != cache_key(CHAT, payload, "smart", "team-a", DEFAULT)


# --- the index ---------------------------------------------------------------------------------


def test_search_finds_the_most_similar_entry_at_or_above_the_threshold() -> None:
    index = VectorIndex(DIMS)
    index.add("p", "close", tilted(0, 1, 0.97), "close text")
    index.add("p", "closer", tilted(0, 2, 0.99), "closer text")
    index.add("p", "far", tilted(0, 3, 0.5), "far text")
    found = index.search("p", axis(0), 0.95)
    assert found is not None
    assert (found.entry_key, found.text) == ("closer", "closer text")
    assert found.score == pytest.approx(0.99, abs=1e-6)
    assert index.search("p", axis(0), 0.995) is None


def test_matches_are_ranked_and_limited() -> None:
    index = VectorIndex(DIMS)
    for n, cosine in enumerate([0.96, 0.99, 0.97, 0.98, 0.5]):
        index.add("p", f"k{n}", tilted(0, 1 + n % (DIMS - 1), cosine), f"t{n}")
    assert [m.entry_key for m in index.matches("p", axis(0), 0.95, 3)] == ["k1", "k3", "k2"]
    assert [m.entry_key for m in index.matches("p", axis(0), 0.95, 10)] == [
        "k1",
        "k3",
        "k2",
        "k0",
    ]
    assert index.matches("p", axis(0), 0.95, 0) == []


def test_partitions_never_see_each_other() -> None:
    index = VectorIndex(DIMS)
    index.add("p", "k", axis(0), "t")
    assert index.search("q", axis(0), 0.5) is None
    assert index.search("p", axis(0), 0.5) == Match("k", pytest.approx(1.0), "t")


def test_vectors_are_normalised_on_the_way_in() -> None:
    index = VectorIndex(DIMS)
    index.add("p", "k", axis(0) * 7, "t")
    found = index.search("p", axis(0) * 0.1, 0.999)
    assert found is not None and found.score == pytest.approx(1.0)


def test_adding_a_key_again_replaces_it() -> None:
    index = VectorIndex(DIMS)
    index.add("p", "k", axis(0), "old")
    index.add("q", "k", axis(1), "new")
    assert len(index) == 1 and index.partitions == 1
    assert index.search("p", axis(0), 0.5) is None
    assert index.search("q", axis(1), 0.5) == Match("k", pytest.approx(1.0), "new")


def test_remove_forgets_an_entry_and_empty_partitions() -> None:
    index = VectorIndex(DIMS)
    index.add("p", "a", axis(0), "a")
    index.add("p", "b", axis(1), "b")
    index.add("p", "c", axis(2), "c")
    assert index.remove("a") and not index.remove("a")
    assert "a" not in index and "c" in index
    assert index.search("p", axis(0), 0.5) is None
    assert index.search("p", axis(2), 0.5) == Match("c", pytest.approx(1.0), "c")  # moved row
    index.remove("b")
    index.remove("c")
    assert len(index) == 0 and index.partitions == 0


def test_a_full_partition_drops_its_oldest_entry() -> None:
    index = VectorIndex(DIMS, max_per_partition=3)
    for n in range(3):
        index.add("p", f"k{n}", axis(n), f"t{n}")
    index.add("q", "other", axis(0), "other")
    index.remove("k1")
    index.add("p", "k3", axis(3), "t3")
    index.add("p", "k4", axis(4), "t4")  # full again: k0, the oldest, goes
    assert "k0" not in index
    assert all(key in index for key in ("k2", "k3", "k4", "other"))
    assert index.search("p", axis(0), 0.5) is None


def test_the_total_bound_drops_the_oldest_entry_of_any_partition() -> None:
    index = VectorIndex(DIMS, max_total=3)
    index.add("p", "a", axis(0), "a")
    index.add("q", "b", axis(1), "b")
    index.add("r", "c", axis(2), "c")
    index.add("p", "d", axis(3), "d")
    assert len(index) == 3 and "a" not in index
    index.add("s", "e", axis(4), "e")
    assert "b" not in index and index.partitions == 3  # q emptied and gone


def test_an_index_stays_consistent_with_a_plain_model() -> None:
    """Random adds, re-adds and removals across partitions, against brute force (with the
    per-partition bound: the oldest of a full partition goes)."""
    rng = random.Random(7)
    index = VectorIndex(DIMS, max_per_partition=30, max_total=10_000)
    model: dict[str, tuple[str, Vector, int]] = {}
    for step in range(3000):
        key = f"k{rng.randrange(120)}"
        if rng.random() < 0.3:
            assert index.remove(key) == (key in model)
            model.pop(key, None)
            continue
        partition = rng.choice("pq")
        vector = np.array([rng.gauss(0, 1) for _ in range(DIMS)], dtype=np.float32)
        vector /= np.linalg.norm(vector)
        index.add(partition, key, vector, f"{key}@{step}")
        model.pop(key, None)
        inside = [k for k, (p, _, _) in model.items() if p == partition]
        if len(inside) == 30:
            del model[min(inside, key=lambda k: model[k][2])]
        model[key] = (partition, vector, step)
        assert len(index) == len(model)
    assert all(key in index for key in model)
    query = np.ones(DIMS, dtype=np.float32) / np.sqrt(DIMS)
    for partition in "pq":
        inside_vectors = {k: v for k, (p, v, _) in model.items() if p == partition}
        best = max(inside_vectors, key=lambda k: float(inside_vectors[k] @ query))
        found = index.search(partition, query, -1.0)
        assert found is not None and found.entry_key == best
        assert found.text.startswith(f"{best}@")
        assert found.score == pytest.approx(float(inside_vectors[best] @ query), abs=1e-5)


@pytest.mark.parametrize(
    "vector",
    [np.zeros(DIMS), np.ones(DIMS + 1), np.full(DIMS, np.nan)],
    ids=["zero", "wrong-dims", "nan"],
)
def test_unusable_vectors_are_refused_on_add_and_match_nothing(vector: Any) -> None:
    index = VectorIndex(DIMS)
    with pytest.raises(ValueError, match="usable vector"):
        index.add("p", "k", vector, "t")
    index.add("p", "k", axis(0), "t")
    assert index.search("p", vector, -1.0) is None


# --- bytes -------------------------------------------------------------------------------------


def test_single_precision_bytes_round_trip_exactly() -> None:
    vector = tilted(0, 1, 0.8)
    data = encode_vector(vector, half=False)
    assert len(data) == 1 + 4 * DIMS
    decoded = decode_vector(data, DIMS)
    assert decoded is not None
    np.testing.assert_allclose(decoded, vector, atol=1e-7)


def test_half_precision_bytes_keep_cosines_to_a_thousandth() -> None:
    rng = np.random.default_rng(3)
    dims = 384
    for _ in range(50):
        a, b = rng.normal(size=dims), rng.normal(size=dims)
        b = a + 0.3 * b  # near each other, like a paraphrase
        a, b = (v.astype(np.float32) / np.linalg.norm(v) for v in (a, b))
        data = encode_vector(a)
        assert len(data) == 1 + 2 * dims
        decoded = decode_vector(data, dims)
        assert decoded is not None
        assert abs(float(decoded @ b) - float(a @ b)) < 1e-3
        assert not decoded.flags.writeable


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"x" + bytes(2 * DIMS),  # unknown tag
        b"h" + bytes(2 * DIMS - 1),  # short
        b"f" + bytes(2 * DIMS),  # float32 tag, float16 length
        b"h" + bytes(2 * DIMS),  # all zeros
        b"h" + b"\x00\x7e" * DIMS,  # NaN
    ],
    ids=["empty", "tag", "short", "length", "zeros", "nan"],
)
def test_bytes_that_are_not_a_vector_decode_as_none(data: bytes) -> None:
    assert decode_vector(data, DIMS) is None
