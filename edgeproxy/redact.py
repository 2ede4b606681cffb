"""Masking every configured credential wherever one could leave the process.

Some providers and OpenAI-compatible servers quote the credential they were sent in an error
("invalid api key sk-..."). The proxy sent its own key, so relaying that error as it is would
hand the provider key to the client; the same text could reach a log line inside an exception.
One `Redactor`, built from `Config.secrets()` at load, masks them in both places.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

MASK = "********"
_MASK_BYTES = MASK.encode()
# Shorter values would mask ordinary words; no real credential is this short.
MIN_SECRET_LENGTH = 4


class Redactor:
    """Replaces each known secret, longest first (so a key's prefix never leaves a tail)."""

    __slots__ = ("_as_bytes", "_as_text")

    def __init__(self, secrets: Iterable[str]) -> None:
        found = {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}
        # A secret quoted inside JSON appears escaped: mask that form too.
        found |= {orjson.dumps(s).decode()[1:-1] for s in found}
        self._as_text = sorted(found, key=len, reverse=True)
        self._as_bytes = [s.encode() for s in self._as_text]

    def text(self, value: str) -> str:
        for secret in self._as_text:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def bytes(self, value: bytes) -> bytes:
        for secret in self._as_bytes:
            if secret in value:
                value = value.replace(secret, _MASK_BYTES)
        return value
