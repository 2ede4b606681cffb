"""The per-stage measurement: that what it times is real work (the values restored, the stream
screened, the usage found) and that its table has every row and each scenario's sum. The
numbers themselves come from `python -m bench.guard_stages`."""

from __future__ import annotations

import orjson

from bench.guard_stages import (
    ANSWER,
    ANSWER_TEXT,
    BODIES,
    EVENTS,
    SCENARIO_ROWS,
    STREAM_PIECES,
    GuardedProxy,
    guarded_state,
    measure_all,
    table,
)
from edgeproxy.dialects import openai
from edgeproxy.security.screen import Screen
from edgeproxy.sse import SSEDecoder


async def test_the_restored_answer_gets_the_callers_values_back() -> None:
    proxy = GuardedProxy(guarded_state("request"))
    for _, with_pii in BODIES.values():
        exchange = proxy.exchange(with_pii)
        assert await proxy.stage(Screen)(exchange) is None
        assert b"[EMAIL_1]" in exchange.body and b"[PHONE_1]" in exchange.body
        assert exchange.answer_screen is not None
        restored = orjson.loads(exchange.answer_screen.whole(ANSWER))
        text = restored["choices"][0]["message"]["content"]
        assert "jane.doe@example.com" in text and "+1 415 555 0134" in text
        assert "[EMAIL_1]" not in text


async def test_the_screened_stream_is_every_event_of_the_answer_unchanged() -> None:
    proxy = GuardedProxy(guarded_state("answers"))
    exchange = proxy.exchange(BODIES["bench chat"][0])
    assert await proxy.stage(Screen)(exchange) is None
    screen = exchange.answer_screen
    assert screen is not None
    out = b"".join(screen.feed(event) for event in EVENTS) + screen.finish()
    decoded = [event.data for event in SSEDecoder().feed(out)]
    assert len(EVENTS) == 1 + STREAM_PIECES + 3  # role, the pieces, stop, usage, [DONE]
    assert len(decoded) >= len(EVENTS)  # what a channel held back comes in an event of its own
    chunks = [orjson.loads(data) for data in decoded[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == ANSWER_TEXT
    assert decoded[-1] == b"[DONE]"


def test_the_answer_carries_the_usage_the_relay_reads() -> None:
    usage = openai.usage_of_body(ANSWER)
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (40, 60)


async def test_the_table_has_every_row_and_each_scenarios_sum() -> None:
    measured = await measure_all(batch=2, repeat=1)
    text = table(measured)
    names = {row.name for row, _ in measured}
    assert {name for parts in SCENARIO_ROWS.values() for name, _ in parts} <= names
    for row, values in measured:
        assert len(values) == len(BODIES) and all(us > 0 for us in values)
        assert f"| {row.label} |" in text
    for scenario in SCENARIO_ROWS:
        assert f"- {scenario}'s guards, summed: " in text
    assert "screen: injection alone, 2 values found" in text
