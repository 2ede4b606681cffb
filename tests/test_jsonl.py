"""Append-only JSON lines: RFC 3339 stamps, whole batches appended, standard output in writes a
pipe keeps whole."""

from __future__ import annotations

import os
import select
from pathlib import Path

import pytest

from edgeproxy import jsonl
from edgeproxy.jsonl import STDOUT, AppendFile, Timestamps


@pytest.mark.parametrize(
    ("seconds", "stamp"),
    [
        (1738324800.123, "2025-01-31T12:00:00.123Z"),
        (1738324800.9996, "2025-01-31T12:00:00.999Z"),
        (1738324801.0, "2025-01-31T12:00:01.000Z"),
        (0.0, "1970-01-01T00:00:00.000Z"),
    ],
)
def test_a_stamp_is_rfc3339_utc_to_the_millisecond(seconds: float, stamp: str) -> None:
    assert Timestamps()(seconds) == stamp


def test_one_stamper_follows_the_clock_across_seconds() -> None:
    stamp = Timestamps()
    assert [stamp(s) for s in (59.5, 60.25, 60.5)] == [
        "1970-01-01T00:00:59.500Z",
        "1970-01-01T00:01:00.250Z",
        "1970-01-01T00:01:00.500Z",
    ]


async def test_a_file_gets_every_batch_appended_after_what_it_held(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b'{"before":1}\n')
    file = AppendFile(str(path))
    await file.open()
    await file.append([b'{"a":1}\n', b'{"b":2}\n'])
    await file.append([b'{"c":3}\n'])
    await file.close()
    assert path.read_bytes() == b'{"before":1}\n{"a":1}\n{"b":2}\n{"c":3}\n'
    assert not file.is_open


async def test_standard_output_gets_whole_lines_in_writes_a_pipe_keeps_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes: list[bytes] = []
    write = os.write

    def record(fd: int, data: memoryview) -> int:
        if fd != 1:
            return write(fd, data)
        writes.append(bytes(data))
        return len(data)

    monkeypatch.setattr(jsonl.os, "write", record)
    lines = [b'{"n":%d,"pad":"%s"}\n' % (n, b"x" * (n % 300)) for n in range(200)]
    file = AppendFile(STDOUT)
    await file.open()
    await file.append(lines)
    await file.close()
    assert b"".join(writes) == b"".join(lines)
    assert len(writes) > 1
    assert all(len(w) <= select.PIPE_BUF and w.endswith(b"\n") for w in writes)


async def test_appending_to_a_file_never_opened_is_a_mistake(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not open"):
        await AppendFile(str(tmp_path / "x")).append([b"{}\n"])
