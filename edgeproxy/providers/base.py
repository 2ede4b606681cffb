"""What every upstream adapter offers the pipeline, and the header rules they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from edgeproxy.config import ProviderConfig
from edgeproxy.operations import Operation

if TYPE_CHECKING:
    from edgeproxy.pipeline import Exchange

# RFC 9110 §7.6.1 hop-by-hop headers, plus what a proxy must never pass on.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Client headers never sent upstream: credentials (the provider's own key is injected),
# framing we recompute, and our own control headers.
NOT_FORWARDED = HOP_BY_HOP | {
    "host",
    "content-length",
    "content-type",
    "accept-encoding",
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
    "x-request-id",
}
# Upstream response headers not relayed: framing aiohttp recomputes, and identity of the
# upstream server. The upstream's own x-request-id is kept under another name.
NOT_RELAYED = HOP_BY_HOP | {
    "content-length",
    "content-encoding",
    "date",
    "server",
    "set-cookie",
    "x-request-id",
}
UPSTREAM_REQUEST_ID = "x-edgeproxy-upstream-request-id"


def forwarded_headers(client: Mapping[str, str], fixed: Mapping[str, str]) -> dict[str, str]:
    """Client headers that may travel upstream, with the provider's `fixed` ones on top."""
    connection = client.get("connection", "")
    named = {h.strip().lower() for h in connection.split(",")} if connection else ()
    headers = {
        name: value
        for name, value in client.items()
        if (low := name.lower()) not in NOT_FORWARDED
        and not low.startswith("x-edgeproxy-")
        and low not in named
    }
    headers.update(fixed)
    return headers


def relayed_headers(upstream: Mapping[str, str]) -> dict[str, str]:
    """Upstream response headers the client should see (rate limits, retry hints, ids)."""
    headers = {name: value for name, value in upstream.items() if name.lower() not in NOT_RELAYED}
    if upstream_id := upstream.get("x-request-id"):
        headers[UPSTREAM_REQUEST_ID] = upstream_id
    return headers


class Upstream(Protocol):
    """An upstream answer whose headers have arrived; the body is read or streamed after."""

    headers: dict[str, str]

    @property
    def status(self) -> int: ...

    @property
    def is_event_stream(self) -> bool: ...

    async def read(self) -> bytes:
        """The whole body (non-streaming answers and errors)."""

    async def next_chunk(self) -> bytes:
        """The next piece of a streamed body as it arrives; b"" at the end."""

    def close(self) -> None:
        """Release the connection: back to the pool if finished, else closed (cancels upstream)."""


class Provider(ABC):
    """An upstream of one kind, configured once; `open` and `close` bracket its pool."""

    operations: frozenset[Operation] = frozenset()

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name

    def supports(self, operation: Operation) -> bool:
        return operation in self.operations

    async def open(self) -> None:  # noqa: B027 - a hook: most kinds have nothing to open
        """Open long-lived resources (connection pools). Called once at startup."""

    async def close(self) -> None:  # noqa: B027 - a hook: most kinds have nothing to close
        """Release what `open` acquired. Called once at shutdown."""

    @abstractmethod
    async def send(self, exchange: Exchange) -> Upstream:
        """Send the exchange upstream; returns once headers arrive, raises ProxyError if not."""
