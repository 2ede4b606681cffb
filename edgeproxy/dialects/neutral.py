"""The dialect-neutral shapes that codecs translate to and from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Finish = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(slots=True)
class Usage:
    """Token counts as every provider reports them, in neutral names."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True, frozen=True)
class TextReply:
    """A complete text answer: what the mock produces and what codecs render."""

    id: str
    model: str
    text: str
    finish: Finish
    usage: Usage
    created: int


def split_text(text: str, pieces: int) -> list[str]:
    """Cut `text` into `pieces` non-empty parts of near-equal length (fewer if text is short)."""
    pieces = max(1, min(pieces, len(text)))
    size, extra = divmod(len(text), pieces)
    parts, start = [], 0
    for i in range(pieces):
        end = start + size + (1 if i < extra else 0)
        parts.append(text[start:end])
        start = end
    return parts
