"""What one client connection may cost the server: bytes, requests and time, decided at load."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on a client connection; past any of them the client gets an error and a close."""

    max_header_bytes: int = 16 * 1024  # request line + all header lines (414 or 431 past it)
    max_header_count: int = 100  # header lines, trailers included (431 past it)
    max_body: int = 32 * 1024 * 1024  # de-chunked body bytes (413 past it)
    header_timeout: float = 10.0  # first byte of a request -> headers complete (408 after)
    body_timeout: float = 60.0  # headers complete -> body complete (408 after)
    keepalive_timeout: float = 75.0  # an idle keep-alive connection is closed after this
    send_timeout: float = 60.0  # a client that takes no response bytes this long is dropped
    max_pipelined: int = 16  # parsed requests queued behind the running one
    write_buffer_high: int = 256 * 1024  # transport write buffer high mark (backpressure)
