"""Content codings (RFC 9110 §8.4) the proxy can take off a body: gzip and deflate.

Clients may compress request bodies and providers their answers; where the proxy must read a
body it decodes it here, never inflating it past a limit (a small body can expand a
thousandfold).
"""

from __future__ import annotations

import zlib

# zlib window bits per coding: gzip's header; for deflate the zlib wrapper HTTP specifies or,
# as some implementations send it, raw deflate.
_WINDOW_BITS = {
    "gzip": (16 + zlib.MAX_WBITS,),
    "x-gzip": (16 + zlib.MAX_WBITS,),
    "deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS),
}
IDENTITY = frozenset({"", "identity"})


class UnknownCoding(ValueError):
    """A content coding this module cannot decode (its name is the message)."""


class Undecodable(ValueError):
    """The data is not valid in its coding, or is cut short."""


class TooLarge(ValueError):
    """Decoded, the body would be larger than allowed."""


def decode(body: bytes, encoding: str, limit: int) -> bytes:
    """`body` with the codings of a Content-Encoding value (`gzip`, `gzip, deflate`, ...)
    taken off, last applied first."""
    for coding in reversed([c.strip().lower() for c in encoding.split(",")]):
        if coding not in IDENTITY:
            body = _inflate(body, coding, limit)
    return body


def decoder(coding: str) -> zlib._Decompress:
    """An incremental decoder for a stream in `coding`."""
    windows = _WINDOW_BITS.get(coding.strip().lower())
    if windows is None:
        raise UnknownCoding(coding)
    return zlib.decompressobj(windows[0])


def _inflate(data: bytes, coding: str, limit: int) -> bytes:
    windows = _WINDOW_BITS.get(coding)
    if windows is None:
        raise UnknownCoding(coding)
    for wbits in windows:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(data, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit:
            raise TooLarge(coding)
        if inflater.eof and not inflater.unused_data:
            return out
        break
    raise Undecodable(coding)
