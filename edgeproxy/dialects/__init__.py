"""Client-facing wire formats, as pure codecs (no aiohttp, no I/O).

`Dialect` names the API a client speaks; `codec_for` gives the module-level functions that
render errors, build replies and read usage in that dialect.
"""

from __future__ import annotations

from enum import Enum


class Dialect(Enum):
    """The wire format a client or a provider speaks (clients speak the first two only)."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    BEDROCK = "bedrock"

    __hash__ = object.__hash__  # identity, in C: see Operation
