"""OpenAI chat completion streams on cross-dialect routes: chunks to neutral events and back.

`ChunkDecoder` reads the stream of OpenAI or of any OpenAI-compatible server (vLLM, Ollama,
Groq, Together, Mistral, DeepSeek, Azure) for a client of another dialect; `ChunkEncoder`
writes the chunks an OpenAI SDK expects from neutral events. Each SSE event is decoded once;
the encoder precomputes the bytes every chunk shares, so a chunk costs one small JSON dump.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import orjson

from edgeproxy import errors
from edgeproxy.dialects import openai
from edgeproxy.dialects.neutral import (
    Finish,
    Start,
    Stop,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageReport,
)
from edgeproxy.dialects.sse_stream import SSEStreamDecoder
from edgeproxy.errors import ProxyError
from edgeproxy.sse import SSEEvent

# OpenAI's finish_reason to neutral; `function_call` is the legacy name of `tool_calls`, and a
# reason no table knows (a server's own, like "abort") ends the answer normally.
FINISH: dict[str, Finish] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}

ReadError = Callable[[dict[str, Any]], ProxyError]


def finish_of(reason: str, called_tools: bool) -> Finish:
    """The neutral finish; some servers (older Ollama, vLLM parsers) say "stop" after tool
    calls, which would leave an Anthropic client waiting for an answer it already has."""
    finish = FINISH.get(reason, "stop")
    return "tool_calls" if called_tools and finish == "stop" else finish


def reasoning_of(obj: dict[str, Any]) -> str | None:
    """Reasoning text in a message or delta: DeepSeek's `reasoning_content`, or `reasoning` as
    vLLM (since 0.11) and OpenRouter name it."""
    text = obj.get("reasoning_content") or obj.get("reasoning")
    return text if isinstance(text, str) else None


class ChunkDecoder(SSEStreamDecoder):
    """An OpenAI-compatible chat stream, fed in chunks cut anywhere, to neutral events.

    Only choice 0 is read (a cross-dialect request never asks for more). Tool calls are
    numbered in order of appearance: a server's `index` says which call a fragment extends,
    and a new `id` under a known index (servers that number every call 0) opens a new call.
    Failures follow `SSEStreamDecoder`: raised once the events before them are out.
    """

    __slots__ = ("_calls", "_done", "_ids", "_read_error", "_started", "_stopped")

    def __init__(self, provider: str, read_error: ReadError) -> None:
        super().__init__(provider)
        self._read_error = read_error
        self._calls: dict[int | None, int] = {}
        self._ids: list[str] = []
        self._started = False
        self._stopped = False
        self._done = False

    def _missing(self) -> str | None:
        return None if self._done or self._stopped else "a finish_reason"

    def _event(self, event: SSEEvent, events: list[StreamEvent]) -> None:
        data = event.data
        if self._done:
            return
        if data == b"[DONE]":
            self._done = True
            return
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise errors.upstream_broken(
                self._provider, f"chunk is not JSON: {data[:200]!r}"
            ) from None
        if not isinstance(chunk, dict):
            raise errors.upstream_broken(self._provider, f"chunk is not an object: {data[:200]!r}")
        if chunk.get("error") or chunk.get("object") == "error":
            raise self._read_error(chunk)
        choices = chunk.get("choices") or ()
        usage = openai.read_usage(chunk) or _groq_usage(chunk)
        if not self._started:
            if not choices and usage is None:
                return  # Azure's prompt_filter_results chunk, before any answer
            self._started = True
            events.append(Start(str(chunk.get("id") or ""), str(chunk.get("model") or "")))
        for choice in choices:
            if isinstance(choice, dict) and not choice.get("index"):
                self._choice(choice, events)
        if usage is not None:
            events.append(UsageReport(usage))

    def _choice(self, choice: dict[str, Any], events: list[StreamEvent]) -> None:
        if self._stopped:
            return
        delta = choice.get("delta")
        if delta and isinstance(delta, dict):
            self._delta(delta, events)
        reason = choice.get("finish_reason")
        if reason:
            self._stopped = True
            matched = choice.get("stop_reason")  # vLLM: the stop string that ended the answer
            sequence = matched if isinstance(matched, str) else None
            events.append(Stop(finish_of(str(reason), bool(self._ids)), sequence))

    def _delta(self, delta: dict[str, Any], events: list[StreamEvent]) -> None:
        reasoning = reasoning_of(delta)
        if reasoning:
            events.append(ThinkingDelta(reasoning))
        for key in ("content", "refusal"):
            text = delta.get(key)
            if text and isinstance(text, str):
                events.append(TextDelta(text))
        calls = delta.get("tool_calls")
        if calls and isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    self._tool_call(call, events)

    def _tool_call(self, call: dict[str, Any], events: list[StreamEvent]) -> None:
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        call_id = call.get("id")
        index = call.get("index")
        key = index if isinstance(index, int) else None  # Gemini's OpenAI API sends none
        ordinal = self._calls.get(key)
        if ordinal is None or (call_id and call_id != self._ids[ordinal]):
            ordinal = len(self._ids)
            self._calls[key] = ordinal
            self._ids.append(str(call_id or f"call_{ordinal}"))
            events.append(ToolCallStart(ordinal, self._ids[-1], str(function.get("name") or "")))
        arguments = function.get("arguments")
        if arguments:
            if not isinstance(arguments, str):  # a few servers send the object itself
                arguments = orjson.dumps(arguments).decode()
            events.append(ToolCallDelta(ordinal, arguments))


def _groq_usage(chunk: dict[str, Any]) -> Usage | None:
    """Groq reports a stream's usage under `x_groq` on its last chunk."""
    extension = chunk.get("x_groq")
    return openai.read_usage(extension) if isinstance(extension, dict) else None


class ChunkEncoder:
    """Neutral events to `chat.completion.chunk` frames, as OpenAI streams them.

    Every chunk repeats id, created and model; with `include_usage` every chunk carries
    `"usage": null` and `finish` sends the usage chunk (empty `choices`) before `[DONE]`.
    """

    __slots__ = ("_clock", "_head", "_include_usage", "_tail", "_usage")

    def __init__(self, include_usage: bool, clock: Callable[[], float] = time.time) -> None:
        self._include_usage = include_usage
        self._clock = clock
        self._head = b""
        self._tail = b'],"usage":null}\n\n' if include_usage else b"]}\n\n"
        self._usage = Usage()

    def encode(self, event: StreamEvent) -> bytes:
        return self._ENCODE[type(event)](self, event)

    def finish(self) -> bytes:
        if not (self._include_usage and self._head):
            return openai.DONE
        usage = orjson.dumps(openai.usage_object(self._usage))
        return self._head + b'],"usage":' + usage + b"}\n\n" + openai.DONE

    def error(self, err: ProxyError) -> bytes:
        return openai.error_event(err)

    def _start(self, event: Start) -> bytes:
        self._head = (
            b'data: {"id":'
            + orjson.dumps(event.id)
            + b',"object":"chat.completion.chunk","created":'
            + str(int(self._clock())).encode()
            + b',"model":'
            + orjson.dumps(event.model)
            + b',"system_fingerprint":null,"choices":['
        )
        if event.usage is not None:
            self._usage = event.usage
        return self._delta({"role": "assistant", "content": "", "refusal": None})

    def _text(self, event: TextDelta) -> bytes:
        return self._delta({"content": event.text}) if event.text else b""

    def _thinking(self, event: ThinkingDelta) -> bytes:
        """Reasoning as DeepSeek streams it; a signature alone has nowhere to go."""
        return self._delta({"reasoning_content": event.text}) if event.text else b""

    def _call_start(self, event: ToolCallStart) -> bytes:
        function = {"name": event.name, "arguments": ""}
        call = {"index": event.index, "id": event.id, "type": "function", "function": function}
        return self._delta({"tool_calls": [call]})

    def _call_delta(self, event: ToolCallDelta) -> bytes:
        if not event.arguments:
            return b""
        call = {"index": event.index, "function": {"arguments": event.arguments}}
        return self._delta({"tool_calls": [call]})

    def _stop(self, event: Stop) -> bytes:
        return self._delta({}, event.finish)

    def _usage_report(self, event: UsageReport) -> bytes:
        self._usage = event.usage
        return b""

    def _delta(self, delta: dict[str, Any], finish: Finish | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._head + orjson.dumps(choice) + self._tail

    _ENCODE: ClassVar[dict[type, Callable[[ChunkEncoder, Any], bytes]]] = {
        Start: _start,
        TextDelta: _text,
        ThinkingDelta: _thinking,
        ToolCallStart: _call_start,
        ToolCallDelta: _call_delta,
        Stop: _stop,
        UsageReport: _usage_report,
    }
