"""What can go wrong talking to an upstream, told apart by what the caller may do next.

`ConnectFailed` means no byte of the request reached the server, so another attempt (on this
origin or another) is safe. `ConnectionBroken` means the request may have been received: it
must not be sent again blindly. Messages name the origin and the failure, never a header value
or a body, so they can be logged as they are.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """Base of every failure the upstream client reports."""


class ConnectFailed(UpstreamError):
    """DNS, TCP, the proxy's CONNECT or the TLS handshake failed: nothing was sent."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class ConnectionBroken(UpstreamError):
    """The connection was lost, or the response was malformed, after the request was (partly)
    written."""


class PoolTimeout(UpstreamError, TimeoutError):
    """No connection came free before the deadline; a TimeoutError like every passed deadline."""
