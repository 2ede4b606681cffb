"""The PII report: how found values are scored against labels, and the detector's floor on the
labelled corpus (the report prints the figures; these tests keep them from sliding)."""

from __future__ import annotations

import pytest

from bench.pii_report import Sample, detector_finder, load, score, table
from edgeproxy.security.pii import KINDS, Detector

# Precision and recall the detector has on the corpus, less a margin: a change that loses more
# is a regression to look at (docs/guardrails.md has the figures).
PRECISION_FLOOR = 0.98
RECALL_FLOOR = 0.95


def sample(text: str, *spans: tuple[str, int, int]) -> Sample:
    return Sample(text, spans, holdout=False)


def test_a_found_value_counts_when_it_overlaps_a_label_of_its_kind() -> None:
    samples = [sample("abcdefghij", ("email", 0, 5), ("phone", 6, 9))]
    result = score(samples, lambda text: [("email", 1, 5), ("ip", 6, 9)], ["email", "phone", "ip"])
    assert (result.kinds["email"].found, result.kinds["email"].exact) == (1, 0)
    assert result.kinds["phone"].missed == 1
    assert result.kinds["ip"].extra == 1
    assert result.total.precision == 0.5
    assert result.total.recall == 0.5
    assert result.misses == ["extra ip 'ghi'", "missed phone 'ghi'"]


def test_each_label_matches_one_found_value() -> None:
    result = score(
        [sample("aaaa", ("email", 0, 4))], lambda text: [("email", 0, 2), ("email", 2, 4)]
    )
    assert (result.total.found, result.total.extra) == (1, 1)


def test_kinds_outside_the_comparison_are_left_out() -> None:
    samples = [sample("key and mail", ("secret", 0, 3), ("email", 8, 12))]
    result = score(samples, lambda text: [("secret", 0, 3), ("email", 8, 12)], ["email"])
    assert set(result.kinds) == {"email"}
    assert (result.total.found, result.total.extra, result.total.missed) == (1, 0, 0)


def test_an_empty_tally_is_perfect_rather_than_undefined() -> None:
    result = score([sample("nothing")], lambda text: [], ["email"])
    assert (result.total.precision, result.total.recall) == (1.0, 1.0)


def test_the_corpus_labels_are_located_in_their_texts() -> None:
    samples = load()
    assert len(samples) >= 200
    assert sum(1 for s in samples if s.holdout) >= 40
    assert sum(1 for s in samples if not s.expected) >= 80  # look-alikes
    labelled = {kind for s in samples for kind, _, _ in s.expected}
    assert labelled == set(KINDS)
    for s in samples:
        assert all(0 <= start < end <= len(s.text) for _, start, end in s.expected)


def test_the_detector_keeps_its_precision_and_recall_on_the_corpus(
    record_property: pytest.RecordProperty,
) -> None:
    result = score(load(), detector_finder(Detector(KINDS)))
    total = result.total
    record_property("precision", round(total.precision, 4))
    record_property("recall", round(total.recall, 4))
    print(table("edgeproxy", result, {}))
    assert total.precision >= PRECISION_FLOOR, result.misses
    assert total.recall >= RECALL_FLOOR, result.misses
