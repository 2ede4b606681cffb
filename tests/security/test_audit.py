"""The guardrail audit log (JSONL, append-only, never the text) and the decision counter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from edgeproxy.background import Background
from edgeproxy.security.audit import (
    ACTIONS,
    FIELDS,
    MAX_VALUE,
    OTHER_RULE,
    AuditLog,
    DecisionCounter,
)

IDENTITY = {"ts", "request_id", "key_id", "rule", "action"}


@pytest.fixture
async def background() -> AsyncIterator[Background]:
    runner = Background()
    yield runner
    await runner.drain(5)


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_a_line_holds_the_identity_and_exactly_the_fields_given(
    tmp_path: Path, background: Background
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path), clock=lambda: 1738324800.123)
    await log.open(background)
    log.record("req-1", "key-7", "shield", "block", phase="input", score=0.97, fail_open=False)
    log.record("req-2", None, "pii", "redact", category="email", count=2, team=None)
    await log.close()
    first, second = lines_of(path)
    assert first == {
        "ts": "2025-01-31T12:00:00.123Z",
        "request_id": "req-1",
        "key_id": "key-7",
        "rule": "shield",
        "action": "block",
        "phase": "input",
        "score": 0.97,
        "fail_open": False,
    }
    assert set(second) == IDENTITY | {"category", "count", "team"}
    assert second["key_id"] is None
    assert (log.written, log.dropped, log.failed) == (2, 0, 0)


@pytest.mark.parametrize(
    ("action", "fields", "error"),
    [
        ("block", {"text": "the prompt"}, ValueError),
        ("block", {"matched": "4111 1111"}, ValueError),
        ("block", {"reasons": ["a", "b"]}, TypeError),
        ("block", {"count": {"n": 1}}, TypeError),
        ("block", {"model": b"gpt"}, TypeError),
        ("blocked", {}, ValueError),
    ],
    ids=["text", "matched", "list", "dict", "bytes", "unknown-action"],
)
def test_a_record_outside_the_allowed_fields_is_refused(
    action: str, fields: dict[str, Any], error: type[Exception]
) -> None:
    log = AuditLog("-")
    with pytest.raises(error):
        log.record("req-1", "key-7", "shield", action, **fields)
    assert log.pending == 0


def test_no_allowed_field_is_named_for_text() -> None:
    assert not {"text", "prompt", "message", "match", "matched", "content", "output"} & FIELDS


async def test_long_strings_are_cut(tmp_path: Path, background: Background) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    await log.open(background)
    log.record("r" * 500, "k" * 500, "shield", "allow", model="m" * 500)
    await log.close()
    [line] = lines_of(path)
    assert {len(line[name]) for name in ("request_id", "key_id", "model")} == {MAX_VALUE}


async def test_close_writes_what_is_buffered(tmp_path: Path, background: Background) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    await log.open(background)
    for n in range(100):
        log.record(f"req-{n}", None, "shield", "allow")
    assert log.pending == 100, "nothing is written by record itself"
    await log.close()
    assert [line["request_id"] for line in lines_of(path)] == [f"req-{n}" for n in range(100)]


async def test_a_full_buffer_drops_and_counts(tmp_path: Path, background: Background) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path), max_pending=3)
    await log.open(background)
    for n in range(5):
        log.record(f"req-{n}", None, "shield", "allow")
    await log.close()
    assert len(lines_of(path)) == 3
    assert (log.written, log.dropped) == (3, 2)


async def test_records_before_open_are_written_and_after_close_dropped(
    tmp_path: Path, background: Background
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    log.record("early", None, "shield", "allow")
    await log.open(background)
    await log.close()
    log.record("late", None, "shield", "allow")
    assert [line["request_id"] for line in lines_of(path)] == ["early"]
    assert log.dropped == 1


async def test_the_file_is_appended_to_and_created_private(
    tmp_path: Path, background: Background
) -> None:
    existing = tmp_path / "existing.jsonl"
    existing.write_bytes(b'{"before": true}\n')
    fresh = tmp_path / "fresh.jsonl"
    for path in (existing, fresh):
        log = AuditLog(str(path))
        await log.open(background)
        log.record("req-1", None, "shield", "allow")
        await log.close()
    assert lines_of(existing)[0] == {"before": True}
    assert len(lines_of(existing)) == 2
    assert fresh.stat().st_mode & 0o777 == 0o600


async def test_concurrent_writers_never_interleave_lines(
    tmp_path: Path, background: Background
) -> None:
    """Two logs on one file, as two proxy processes would have, each fed by many tasks: every
    line whole, none lost."""
    path = tmp_path / "audit.jsonl"
    logs = [AuditLog(str(path), max_pending=100_000) for _ in range(2)]
    for log in logs:
        await log.open(background)

    async def feed(log: AuditLog, writer: int) -> None:
        for n in range(500):
            log.record(f"{writer}-{n}", "k" * 100, "shield", "flag", model="m" * 100)
            if n % 7 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(*(feed(logs[w % 2], w) for w in range(8)))
    for log in logs:
        await log.close()
    ids = [line["request_id"] for line in lines_of(path)]
    assert sorted(ids) == sorted(f"{w}-{n}" for w in range(8) for n in range(500))


async def test_standard_output_gets_whole_lines(
    capfd: pytest.CaptureFixture[str], background: Background
) -> None:
    log = AuditLog("-")
    await log.open(background)
    for n in range(200):
        log.record(f"req-{n}", "k" * 100, "shield", "allow", model="m" * 100)
    await log.close()
    out = capfd.readouterr().out
    assert [orjson.loads(line)["request_id"] for line in out.splitlines()] == [
        f"req-{n}" for n in range(200)
    ]


async def test_a_refused_write_is_counted_not_raised(
    background: Background, caplog: pytest.LogCaptureFixture
) -> None:
    log = AuditLog("/dev/full")  # every write fails with ENOSPC
    await log.open(background)
    for n in range(3):
        log.record(f"req-{n}", None, "shield", "allow")
    await log.close()
    assert (log.written, log.failed) == (0, 3)
    assert "records lost" in caplog.text


def test_an_empty_target_is_refused() -> None:
    with pytest.raises(ValueError, match="file path"):
        AuditLog("")


# --- the decision counter -----------------------------------------------------------------------


def test_decisions_are_counted_by_rule_and_action() -> None:
    counter = DecisionCounter({"shield", "pii"})
    counter.count("shield", "block")
    counter.count("shield", "block")
    counter.count("pii", "redact")
    counter.count("someone-elses-rule", "flag")
    assert counter.counts[("shield", "block")] == 2
    assert counter.counts[("pii", "redact")] == 1
    assert counter.counts[(OTHER_RULE, "flag")] == 1


def test_every_series_exists_from_the_start_and_labels_stay_bounded() -> None:
    counter = DecisionCounter({"shield"})
    for n in range(100):
        counter.count(f"rule-{n}", "allow")
    samples = list(counter.samples())
    assert {(rule, action) for rule, action, _ in samples} == {
        (rule, action) for rule in ("shield", OTHER_RULE) for action in ACTIONS
    }


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match="action"):
        DecisionCounter({"shield"}).count("shield", "blocked")
