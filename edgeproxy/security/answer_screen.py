"""The answer side of a guardrail policy: placeholders restored, personal data screened.

One `AnswerScreen` per request that needs it (its prompt was redacted, or its policy screens
output), applied by the relay to what the client is sent, in the client's dialect: a whole
JSON answer at once, a stream event by event. The cache is fed what the relay had before this
screen, so a stored answer holds placeholders and never one caller's values for another.

Each text is screened first, then its placeholders are restored: a placeholder is not personal
data, while the values it stands for came from the client itself. A stream keeps one screen
and one restorer per text channel (a choice's content, a content block, a tool call's
arguments), each holding back a bounded tail (a placeholder or a value cut between events).
What a channel holds when the event that closes it arrives is sent in an event of its own,
just before; so is whatever is held when the stream ends. The Responses API also repeats each
text whole once its deltas are over (a text done, a part or an item done, the final response):
those are screened and restored whole, as an answer's are.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from edgeproxy.security.pii import Detector
from edgeproxy.security.pii_redaction import Redaction, StreamRestorer
from edgeproxy.security.pii_screen import Screen, ScreenMode, StreamScreen
from edgeproxy.security.prompt_text import (
    Channel,
    TextSlot,
    answer_texts,
    closes_every_channel,
    finished_indexes,
    stream_texts,
    stream_whole_texts,
)
from edgeproxy.sse import SSEDecoder, SSEEvent, encode_event

Report = Callable[[Counter[str]], None]
# A placeholder's start in an event's JSON: `[` and a capital, or `[` ending a text (the rest of
# the placeholder in the next event). OpenAI's `"choices":[{` is neither.
_MAYBE_PLACEHOLDER = re.compile(rb'\[(?:[A-Z]|")').search
MAX_TRANSCRIPT = 64 * 1024  # characters of an answer an output guard is sent
# Events after which nothing more of any channel can come.
_STREAM_ENDS = frozenset({b"[DONE]"})


class Transcript:
    """The answer's text as screened, placeholders not restored (what an output guard may
    read), kept up to MAX_TRANSCRIPT characters."""

    __slots__ = ("_parts", "_room")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._room = MAX_TRANSCRIPT

    def add(self, text: str) -> None:
        if text and self._room > 0:
            self._parts.append(text[: self._room])
            self._room -= len(text)

    def text(self) -> str:
        return "".join(self._parts)


class _Channel:
    """One text channel's screen and restorer."""

    __slots__ = ("restorer", "screen", "transcript")

    def __init__(
        self,
        screen: StreamScreen | None,
        restorer: StreamRestorer | None,
        transcript: Transcript | None,
    ) -> None:
        self.screen = screen
        self.restorer = restorer
        self.transcript = transcript

    def feed(self, text: str) -> str:
        if self.screen is not None:
            text = self.screen.feed(text)
        if self.transcript is not None:
            self.transcript.add(text)
        if self.restorer is not None:
            text = self.restorer.feed(text)
        return text

    def flush(self) -> str:
        text = self.screen.flush() if self.screen is not None else ""
        if self.transcript is not None:
            self.transcript.add(text)
        if self.restorer is None:
            return text
        return self.restorer.feed(text) + self.restorer.flush()


class AnswerScreen:
    """Restores `redaction`'s placeholders and screens with `output` (mode redact or monitor)
    what the client of operation `label` is sent. `report` gets what the screen found, once,
    when the answer is over."""

    __slots__ = (
        "_channels",
        "_counted",
        "_decoder",
        "_items",
        "_label",
        "_mode",
        "_observe",
        "_output",
        "_redaction",
        "_report",
        "_reported",
        "_restores_only",
        "_template",
        "_transcript",
    )

    def __init__(
        self,
        label: str,
        redaction: Redaction | None,
        output: Detector | None,
        mode: str,
        report: Report,
        *,
        observe: Callable[[str], None] | None = None,
    ) -> None:
        self._label = label
        self._redaction = redaction
        self._output = output
        self._mode: ScreenMode = "monitor" if mode == "monitor" else "redact"
        self._report = report
        self._observe = observe  # the output guard, given the transcript when it is over
        self._transcript = Transcript() if observe is not None else None
        self._reported = False
        self._channels: dict[Channel, _Channel] = {}
        self._counted: Counter[str] = Counter()  # what channels already flushed found
        self._decoder = SSEDecoder()
        # The fields an OpenAI chunk repeats, for the events a flush adds (None: none seen).
        self._template: dict[str, Any] | None = None
        # A Responses stream's channels: the item and the event number a flush's delta takes.
        self._items: dict[Channel, tuple[Any, Any]] = {}
        # Only placeholders to restore (no output rule, no guard reading the transcript): an
        # event with no trace of one is passed on without being decoded.
        self._restores_only = output is None and observe is None

    # --- whole answers ---------------------------------------------------------------------

    def whole(self, body: bytes) -> bytes:
        """A whole JSON answer, screened and restored (as it was if it is not JSON)."""
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if not isinstance(answer, dict):
            return body
        screen = Screen(self._output, self._mode) if self._output is not None else None
        for slot in answer_texts(self._label, answer):
            self._whole_text(slot, screen, self._transcript)
        self.done(screen.found if screen is not None else Counter())
        return orjson.dumps(answer)

    def _whole_text(
        self, slot: TextSlot, screen: Screen | None, transcript: Transcript | None
    ) -> None:
        text = slot.get()
        if screen is not None:
            text = screen.screen(text)
        if transcript is not None:
            transcript.add(text)
        if self._redaction is not None:
            text = self._redaction.restore(text, slot.json)
        slot.set(text)

    # --- streams ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Whole SSE events of the client's stream in, the same events screened out."""
        out: list[bytes] = []
        for event in self._decoder.feed(data):
            out += self._event(event)
        return b"".join(out)

    def finish(self) -> bytes:
        """The stream ended: what the channels still hold, then the report."""
        out = b"".join(self._flush_all())
        self.done(self._found())
        return out

    def done(self, found: Counter[str]) -> None:
        if not self._reported:
            self._reported = True
            if found:
                self._report(found)
            if self._observe is not None and self._transcript is not None:
                text = self._transcript.text()
                if text:
                    self._observe(text)

    def _found(self) -> Counter[str]:
        found = Counter(self._counted)
        for channel in self._channels.values():
            if channel.screen is not None:
                found += channel.screen.found
        return found

    def _event(self, event: SSEEvent) -> list[bytes]:
        if event.data in _STREAM_ENDS:
            return [*self._flush_all(), _encoded(event.data, event)]
        if (
            self._restores_only
            and self._template is not None
            and _MAYBE_PLACEHOLDER(event.data) is None
            and not self._holding()
        ):
            return [_encoded(event.data, event)]  # nothing to restore: not decoded
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return [_encoded(event.data, event)]
        if not isinstance(data, dict):
            return [_encoded(event.data, event)]
        self._template = {k: data[k] for k in ("id", "object", "created", "model") if k in data}
        for slot in stream_texts(self._label, data):
            slot.set(self._channel(slot.channel, slot.json).feed(slot.get()))
            if self._label == "responses":
                self._items[slot.channel] = (data.get("item_id"), data.get("sequence_number"))
        wholes = stream_whole_texts(self._label, data)
        if wholes:  # counted and read by the output guard in their deltas already: not twice
            screen = Screen(self._output, self._mode) if self._output is not None else None
            for whole in wholes:
                self._whole_text(whole, screen, None)
        before = self._closed_by(data)
        return [*before, _encoded(orjson.dumps(data), event)]

    def _closed_by(self, data: dict[str, Any]) -> list[bytes]:
        """What the channels that `data` closes still hold, as events to send before it."""
        if closes_every_channel(self._label, data):
            return self._flush_all()
        return [
            event
            for index in finished_indexes(self._label, data)
            for event in self._flush_index(index)
        ]

    def _holding(self) -> bool:
        return any(
            channel.restorer is not None and channel.restorer.holding
            for channel in self._channels.values()
        )

    def _channel(self, key: Channel, json: bool) -> _Channel:
        channel = self._channels.get(key)
        if channel is None:
            screen = StreamScreen(self._output, self._mode) if self._output is not None else None
            restorer = (
                StreamRestorer(self._redaction, json) if self._redaction is not None else None
            )
            channel = self._channels[key] = _Channel(screen, restorer, self._transcript)
        return channel

    def _flush_index(self, index: int) -> list[bytes]:
        return [
            event
            for key in [k for k in self._channels if k[1] == index]
            for event in self._flush(key)
        ]

    def _flush_all(self) -> list[bytes]:
        return [event for key in list(self._channels) for event in self._flush(key)]

    def _flush(self, key: Channel) -> list[bytes]:
        """The rest a channel holds, as an event of its own; the channel starts afresh."""
        channel = self._channels.pop(key)
        text = channel.flush()
        if channel.screen is not None:
            self._counted += channel.screen.found
        if not text:
            return []
        return [self._delta_event(key, text)]

    def _delta_event(self, key: Channel, text: str) -> bytes:
        kind, index, sub = key
        if self._label == "messages":
            delta = (
                {"type": "input_json_delta", "partial_json": text}
                if kind == "input_json"
                else {"type": "text_delta", "text": text}
            )
            payload = {"type": "content_block_delta", "index": index, "delta": delta}
            return encode_event(orjson.dumps(payload), "content_block_delta")
        if self._label == "responses":
            item, number = self._items.get(key, (None, None))
            kind_name = (
                "response.function_call_arguments.delta"
                if kind == "arguments"
                else "response.output_text.delta"
            )
            event: dict[str, Any] = {"type": kind_name, "item_id": item, "output_index": index}
            if kind != "arguments":
                event["content_index"] = sub
            event |= {"delta": text, "sequence_number": number}
            return encode_event(orjson.dumps(event), kind_name)
        if self._label == "completions":
            choice: dict[str, Any] = {"index": index, "text": text, "finish_reason": None}
        else:
            choice = {"index": index, "delta": _chat_delta(kind, sub, text), "finish_reason": None}
        return encode_event(orjson.dumps({**(self._template or {}), "choices": [choice]}))


def _chat_delta(kind: str, sub: int, text: str) -> dict[str, Any]:
    if kind == "arguments":
        return {"tool_calls": [{"index": sub, "function": {"arguments": text}}]}
    if kind == "function_call":
        return {"function_call": {"arguments": text}}
    if kind == "reasoning":
        return {"reasoning_content": text}
    return {kind: text}


def _encoded(data: bytes, event: SSEEvent) -> bytes:
    """An event as it came, with `data` (possibly rewritten)."""
    name = event.event if event.event != "message" else None
    return encode_event(data, name)
