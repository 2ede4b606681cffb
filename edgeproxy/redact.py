"""Masking every configured credential wherever one could leave the process.

Some providers and OpenAI-compatible servers quote the credential they were sent in an error
("invalid api key sk-..."). The proxy sent its own key, so relaying that error as it is would
hand the provider key to the client; the same text could reach a log line inside an exception.
One `Redactor`, built from `Config.secrets()` at load, masks them wherever text leaves: every
log line (telemetry.logging), every error the proxy renders and every error a provider answered
with, body and headers, its error events in a stream included (relay), and every answer of the
admin listener, the metrics exposition among them (admin). A secret is found as it was configured,
without its scheme (`Bearer <token>`), escaped inside JSON, and percent-encoded or decoded (as
URLs carry it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

import orjson

MASK = "********"
_MASK_BYTES = MASK.encode()
# Shorter values would mask ordinary words; no real credential is this short.
MIN_SECRET_LENGTH = 4
# An Authorization-style value: an auth scheme, then the credential itself.
_SCHEME_AND_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_-]* +(\S{4,})").fullmatch


class Redactor:
    """Replaces each known secret, longest first (so a key's prefix never leaves a tail).

    Read from more than one thread (the span exporter's masks spans' names and attributes):
    `learn` replaces its lists whole and never changes one in place, so a reader masks with
    the secrets known before it or after it, never with a list half-built."""

    __slots__ = ("_as_bytes", "_as_text")

    def __init__(self, secrets: Iterable[str]) -> None:
        self._as_text: list[str] = []
        self._as_bytes: list[bytes] = []
        self.learn(secrets)

    def learn(self, secrets: Iterable[str]) -> None:
        """Mask `secrets` too, besides those known already: a reloaded configuration's, for a
        scrubber that outlives the configuration it was built from (the admin listener's)."""
        given = {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}
        # A credential header's value (`Bearer <token>`) is quoted back without its scheme.
        given |= {m[1] for s in given if (m := _SCHEME_AND_TOKEN(s))}
        # A secret quoted inside JSON appears escaped, inside a URL percent-encoded (and a
        # configured URL's password is percent-encoded, sent decoded): mask those forms too.
        found = {
            form
            for s in given
            for form in (s, orjson.dumps(s).decode()[1:-1], quote(s, safe=""), unquote(s))
            if len(form) >= MIN_SECRET_LENGTH
        }
        self._as_text = sorted(found.union(self._as_text), key=len, reverse=True)
        self._as_bytes = [s.encode() for s in self._as_text]

    def text(self, value: str) -> str:
        for secret in self._as_text:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def fields(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Header fields with every secret in their values masked (one search over all of
        them first: usually there is nothing to mask)."""
        fields = list(headers)
        values = "\n".join(value for _, value in fields)
        if not any(secret in values for secret in self._as_text):
            return fields
        return [(name, self.text(value)) for name, value in fields]

    def bytes(self, value: bytes) -> bytes:
        for secret in self._as_bytes:
            if secret in value:
                value = value.replace(secret, _MASK_BYTES)
        return value
