"""What the edge needs from a dialect module, and which module serves which dialect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from edgeproxy.dialects import Dialect, anthropic, openai, openai_responses
from edgeproxy.dialects.neutral import Usage
from edgeproxy.errors import ProxyError
from edgeproxy.operations import Operation
from edgeproxy.sse import SSEEvent


class UsageWatcher(Protocol):
    usage: Usage | None
    failed: bool  # the provider sent an error event in the stream

    @property
    def answer_id(self) -> str | None:
        """The answer's id, where a later request may name it (the Responses API's)."""

    def observe(self, event: SSEEvent) -> None: ...


class Codec(Protocol):
    """Implemented by the modules `edgeproxy.dialects.openai`, `.openai_responses` and
    `.anthropic`."""

    @property
    def StreamUsage(self) -> Callable[[], UsageWatcher]:  # the module's class, read-only
        ...

    @property
    def NAME(self) -> str:
        """The dialect: "openai" or "anthropic"."""

    @property
    def USAGE_MARKERS(self) -> tuple[bytes, ...]:
        """Bytes an event contains when StreamUsage can learn from it; others are not decoded."""

    def render_error(self, err: ProxyError) -> bytes: ...

    def status_for(self, err: ProxyError) -> int:
        """The HTTP status this dialect's clients expect for `err` (e.g. 529 vs 503)."""

    def error_event(self, err: ProxyError) -> bytes: ...

    def usage_of_body(self, body: bytes) -> Usage | None: ...

    def answer_id_of_body(self, body: bytes) -> str | None:
        """A whole answer's id, where a later request may name it (routing/affinity.py)."""


_CODECS: dict[Dialect, Codec] = {Dialect.OPENAI: openai, Dialect.ANTHROPIC: anthropic}
_RESPONSES: Codec = openai_responses


def codec_for(dialect: Dialect) -> Codec:
    return _CODECS[dialect]


def operation_codec(operation: Operation) -> Codec:
    """The codec of one endpoint: its dialect's, but the Responses API's own usage."""
    return _RESPONSES if operation is Operation.RESPONSES else _CODECS[operation.dialect]
