"""What every upstream adapter offers the pipeline, and the header rules they share."""

from __future__ import annotations

import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol
from urllib.parse import quote

from multidict import CIMultiDict

from edgeproxy import errors
from edgeproxy.dialects import anthropic_messages, openai_chat
from edgeproxy.dialects.neutral import ChatRequest, EmbeddingRequest
from edgeproxy.dialects.params import UnsupportedParams
from edgeproxy.dialects.translation import (
    BuildChat,
    ChatTranslator,
    ClientChat,
    EmbeddingTranslator,
    Translator,
    UpstreamChat,
)
from edgeproxy.operations import Operation
from edgeproxy.providers.settings import KindRules, ProviderConfig

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
# Headers with which reverse proxies and web frameworks rewrite a request's host, path or
# method: a client must not steer where its request lands behind the configured URL.
REWRITING = frozenset(
    {
        "forwarded",
        "x-forwarded-host",
        "x-forwarded-prefix",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-server",
        "x-original-host",
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    }
)
# Client headers never sent upstream: credentials (the provider's own key is injected),
# framing we recompute, rewriting headers, and our own control headers.
NOT_FORWARDED = (
    HOP_BY_HOP
    | REWRITING
    | {
        "host",
        "content-length",
        "content-type",
        "content-encoding",  # the body goes upstream decoded (inbound.decoded_body)
        "accept-encoding",  # only codings the proxy can decode go on (see forwarded_headers)
        "authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "x-request-id",
        "expect",  # the listener answered 100-continue itself: the whole body goes at once
    }
)
# Upstream response headers not relayed: framing the listener recomputes, and identity of the
# upstream server. The upstream's own x-request-id is kept under another name.
NOT_RELAYED = HOP_BY_HOP | {
    "content-length",
    "date",
    "server",
    "set-cookie",
    "x-request-id",
}
UPSTREAM_REQUEST_ID = "x-edgeproxy-upstream-request-id"
# The W3C trace context. With tracing off the proxy is transparent: a client's goes upstream as
# it is (on a same-dialect route, like its other headers). With tracing on, each attempt sends
# its own span's instead, and a client's is never sent unchanged.
TRACE_CONTEXT = ("traceparent", "tracestate")
_NONE: frozenset[str] = frozenset()
_DOT_SEGMENTS = frozenset({"", ".", ".."})
# The client dialects' chat endpoints, and the module that parses and renders each.
CLIENT_CHAT: dict[Operation, ClientChat] = {
    Operation.CHAT: openai_chat,
    Operation.MESSAGES: anthropic_messages,
}


def path_segment(name: str) -> str:
    """An upstream model or deployment name as exactly one URL path segment: percent-encoded
    (no `/`, `?`, `#`, `@` or `%` survives to add a segment, a query or a fragment), and never a
    dot segment, which a server resolves against its parent (`/deployments/..` climbs out).
    A client's model name reaches a URL this way when a pattern group forwards it as given."""
    if unicodedata.normalize("NFKC", name) in _DOT_SEGMENTS:
        raise errors.bad_request(
            f"The model name {name[:40]!r} cannot be sent upstream.", param="model"
        )
    return quote(name, safe="")


def forwarded_headers(client: Mapping[str, str], fixed: Mapping[str, str]) -> dict[str, str]:
    """Client headers (names in lower case, as the listener gives them) that may travel
    upstream, with the provider's `fixed` ones on top."""
    connection = client.get("connection")
    named = {h.strip().lower() for h in connection.split(",")} if connection else _NONE
    headers = {
        name: value
        for name, value in client.items()
        if name not in NOT_FORWARDED and name not in named and not name.startswith("x-edgeproxy-")
    }
    accepted = client.get("accept-encoding")
    if accepted and _accepts_gzip(accepted):  # the answer may then come compressed
        headers["accept-encoding"] = "gzip"
    headers.update(fixed)
    return headers


def with_trace_context(headers: dict[str, str], context: Mapping[str, str] | None) -> None:
    """Put an attempt's own trace `context` in `headers` in place of the client's (None:
    tracing is off, the headers stay as they are)."""
    if context is not None:
        for name in TRACE_CONTEXT:
            headers.pop(name, None)
        headers.update(context)


def _accepts_gzip(accepted: str) -> bool:
    """Whether an Accept-Encoding value lets gzip through (not `gzip;q=0`)."""
    if "gzip" not in accepted:
        return False
    for item in accepted.split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() == "gzip":
            weight = params.strip().lower().removeprefix("q=")
            return weight.strip() not in ("0", "0.0", "0.00", "0.000")
    return False


def relayed_headers(upstream: CIMultiDict[str]) -> CIMultiDict[str]:
    """Upstream response headers the client should see (rate limits, retry hints, ids),
    case-insensitive as HTTP has them."""
    headers = upstream.copy()
    for name in NOT_RELAYED:
        if name in headers:
            del headers[name]
    if upstream_id := upstream.get("x-request-id"):
        headers[UPSTREAM_REQUEST_ID] = upstream_id
    return headers


@dataclass(slots=True, frozen=True, eq=False)
class OutboundRequest:
    """One attempt as its provider sees it: what to send, and by when. The provider makes the
    URL and headers from it; the rest of the request's state never reaches a provider."""

    request_id: str
    operation: Operation
    model: str  # the upstream model name
    body: bytes  # shaped for this provider: translated, or the client's with the model mapped
    stream: bool
    # The client's headers on a same-dialect route; None on a translated one, where they mean
    # nothing to the provider.
    client_headers: Mapping[str, str] | None
    payload: dict[str, Any]  # the client's parsed body (the mock provider answers from it)
    neutral: ChatRequest | EmbeddingRequest | None  # the translated request, if translated
    deadline: float | None  # loop time by which the whole exchange must be over
    # The attempt's span as W3C trace context headers, when tracing is on (see TRACE_CONTEXT).
    trace_context: Mapping[str, str] | None = None


@dataclass(slots=True, frozen=True, eq=False)
class ForwardRequest:
    """A call forwarded as the client made it, not read: the Responses API's calls on a
    stored answer (stored_responses.py) and the paths passed through (passthrough.py)."""

    request_id: str
    method: str
    path: str  # the client's, under /v1/, still percent-encoded, checked as safe to send
    query: str  # the client's, still percent-encoded
    client_headers: Mapping[str, str]
    body: bytes  # as the client sent it (its content coding too)
    deadline: float | None  # loop time by which the whole call must be over


class Upstream(Protocol):
    """An upstream answer whose headers have arrived; the body is read or streamed after."""

    @property
    def headers(self) -> MutableMapping[str, str]:
        """The response headers to relay (case-insensitive), ours added by the edge."""

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
    """An upstream of one kind, configured once; `open` and `close` bracket its pool.
    `rules`: what its kind asks of its configuration, checked at load."""

    operations: frozenset[Operation] = frozenset()
    rules: ClassVar[KindRules]

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name

    def routes(self, mode: UnsupportedParams) -> dict[Operation, Translator | None]:
        """What this provider serves: its own operations as they are (None), and the other
        client dialects' chat endpoints through a translator when it has a chat codec."""
        routes: dict[Operation, Translator | None] = dict.fromkeys(self.operations)
        codec = self.chat_codec
        if codec is not None:
            for operation, client in CLIENT_CHAT.items():
                if operation not in routes:
                    routes[operation] = ChatTranslator(
                        client, codec, self.name, mode, self.build_chat
                    )
        if Operation.EMBEDDINGS not in routes:
            embeddings = self.embedding_translator(mode)
            if embeddings is not None:
                routes[Operation.EMBEDDINGS] = embeddings
        return routes

    def embedding_translator(self, mode: UnsupportedParams) -> EmbeddingTranslator | None:
        """How OpenAI embeddings requests reach this provider's own embeddings API, if any."""
        return None

    @property
    def chat_codec(self) -> UpstreamChat | None:
        """The dialect module that encodes chat requests for this provider (None: native only)."""
        return None

    @property
    def build_chat(self) -> BuildChat | None:
        """`chat_codec.build_chat` with this provider's options bound (None: the plain one)."""
        return None

    async def open(self) -> None:  # noqa: B027 - a hook: most kinds have nothing to open
        """Open long-lived resources (connection pools). Called once at startup."""

    async def close(self) -> None:  # noqa: B027 - a hook: most kinds have nothing to close
        """Release what `open` acquired. Called once at shutdown."""

    @abstractmethod
    async def send(self, request: OutboundRequest) -> Upstream:
        """Send `request` upstream; returns once headers arrive, raises ProxyError if not."""

    async def forward(self, request: ForwardRequest, *, raw: bool) -> Upstream:
        """Forward `request` to this provider's API as it is; returns once headers arrive.
        `raw`: the answer's bytes are relayed untouched, never decoded or read whole. Kinds
        with no such API (the request is routed to them only by path) have none of it."""
        raise errors.route_not_found(request.path)
