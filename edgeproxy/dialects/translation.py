"""The contracts of cross-dialect translation: what each dialect module provides.

A client dialect (OpenAI, Anthropic) parses requests into neutral form and renders neutral
answers; an upstream dialect (OpenAI, Anthropic, Gemini, Bedrock) encodes neutral requests for
its provider and decodes the provider's answers, errors and streams back. The modules are pure:
no aiohttp, no I/O, so every rule is tested with recorded bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from edgeproxy.dialects import openai_chat
from edgeproxy.dialects.neutral import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Start,
    StreamEvent,
    Usage,
    UsageReport,
    events_of,
)
from edgeproxy.dialects.params import ParamPolicy, UnsupportedParams
from edgeproxy.errors import ProxyError


class StreamEncoder(Protocol):
    """Neutral events to the client's stream bytes (whole SSE events, ready to write)."""

    def encode(self, event: StreamEvent) -> bytes:
        """The bytes for one event; b"" when it only updates state (e.g. usage kept for later)."""

    def finish(self) -> bytes:
        """The trailer of a stream that ended well (e.g. message_stop, or usage then [DONE])."""

    def error(self, err: ProxyError) -> bytes:
        """The final event of a stream that failed after it started, in the client's dialect."""


class StreamDecoder(Protocol):
    """The provider's stream body, fed as it arrives in chunks cut anywhere, to neutral events."""

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        """Events completed by this chunk; raises ProxyError on a provider error event."""

    def close(self) -> list[StreamEvent]:
        """Events left at the end of the body; raises ProxyError if the stream was cut short."""


class ClientChat(Protocol):
    """A client dialect's chat endpoint (implemented by a module)."""

    def parse_chat_request(self, payload: dict[str, Any]) -> ChatRequest:
        """The neutral request; raises ProxyError (400) naming the offending field."""

    def render_chat(self, response: ChatResponse) -> bytes: ...

    def chat_stream_encoder(self, request: ChatRequest) -> StreamEncoder: ...


class UpstreamChat(Protocol):
    """A provider dialect's chat endpoint (implemented by a module)."""

    def build_chat(self, request: ChatRequest, model: str, policy: ParamPolicy) -> bytes:
        """The JSON body to send for `model`; fields it cannot carry go through `policy`."""

    def parse_chat(self, body: bytes, provider: str) -> ChatResponse:
        """The neutral answer; raises ProxyError (502) if the body is not a valid answer."""

    def chat_stream_decoder(self, provider: str) -> StreamDecoder: ...

    def parse_error(
        self, status: int, headers: Mapping[str, str], body: bytes, provider: str
    ) -> ProxyError:
        """The provider's error answer in neutral terms (`errors.from_upstream`)."""


BuildChat = Callable[[ChatRequest, str, ParamPolicy], bytes]
BuildEmbed = Callable[[EmbeddingRequest, str, ParamPolicy], bytes]
ParseEmbed = Callable[[bytes, EmbeddingRequest, str], EmbeddingResponse]
ParseError = Callable[[int, Mapping[str, str], bytes, str], ProxyError]


class ChatTranslator:
    """One cross-dialect chat route (client dialect → provider dialect), built once at load."""

    __slots__ = ("_build", "_client", "_mode", "_provider", "_upstream")

    def __init__(
        self,
        client: ClientChat,
        upstream: UpstreamChat,
        provider: str,
        mode: UnsupportedParams,
        build: BuildChat | None = None,
    ) -> None:
        self._client = client
        self._upstream = upstream
        self._provider = provider
        self._mode = mode
        self._build = build or upstream.build_chat

    def request(self, payload: dict[str, Any], model: str) -> tuple[ChatRequest, bytes, list[str]]:
        """The neutral request, the provider's body for `model`, and the fields dropped."""
        neutral = self._client.parse_chat_request(payload)
        policy = ParamPolicy(self._provider, self._mode)
        return neutral, self._build(neutral, model, policy), policy.dropped

    def response(self, body: bytes, request: ChatRequest, model: str) -> tuple[bytes, Usage]:
        """The provider's complete answer, rendered for the client, and its usage."""
        answer = self._answer(body, model)
        return self._client.render_chat(answer), answer.usage

    def response_as_stream(
        self, body: bytes, request: ChatRequest, model: str
    ) -> tuple[bytes, Usage]:
        """A complete answer, for a client that asked for a stream: the whole event sequence."""
        answer = self._answer(body, model)
        encoder = self._client.chat_stream_encoder(request)
        events = b"".join(encoder.encode(event) for event in events_of(answer))
        return events + encoder.finish(), answer.usage

    def _answer(self, body: bytes, model: str) -> ChatResponse:
        answer = self._upstream.parse_chat(body, self._provider)
        if not answer.model:  # Bedrock does not name the model in its answers
            answer.model = model
        return answer

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProxyError:
        return self._upstream.parse_error(status, headers, body, self._provider)

    def stream(self, request: ChatRequest, model: str) -> StreamRelay:
        decoder = self._upstream.chat_stream_decoder(self._provider)
        return StreamRelay(decoder, self._client.chat_stream_encoder(request), model)


class StreamRelay:
    """A provider's stream in, the client's stream out, with the usage seen on the way."""

    __slots__ = ("_decoder", "_encoder", "_model", "usage")

    # A provider's error event raises ProxyError in `feed`: nothing is ever relayed as it was.
    failed = False
    answer_id = None  # a translated answer is never a Responses API one

    def __init__(self, decoder: StreamDecoder, encoder: StreamEncoder, model: str) -> None:
        self._decoder = decoder
        self._encoder = encoder
        self._model = model
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> bytes:
        """Client bytes for a provider chunk (b"" while an event is incomplete); raises
        ProxyError when the provider reports a failure."""
        return self.events(self._decoder.feed(chunk))

    def events(self, events: list[StreamEvent]) -> bytes:
        encode = self._encoder.encode
        out = []
        for event in events:
            if isinstance(event, UsageReport):
                self.usage = event.usage
            elif isinstance(event, Start) and not event.model:
                out.append(encode(Start(event.id, self._model, event.usage)))
                continue
            out.append(encode(event))
        return b"".join(out)

    def finish(self) -> bytes:
        """The client's trailer once the provider's body ended; raises if it ended early."""
        return self.events(self._decoder.close()) + self._encoder.finish()

    def error(self, err: ProxyError) -> bytes:
        return self._encoder.error(err)


class EmbeddingTranslator:
    """OpenAI's embeddings endpoint served by a provider with an embeddings API of its own."""

    __slots__ = ("_build", "_error", "_mode", "_parse", "_provider")

    def __init__(
        self,
        build: BuildEmbed,
        parse: ParseEmbed,
        error: ParseError,
        provider: str,
        mode: UnsupportedParams,
    ) -> None:
        self._build = build
        self._parse = parse
        self._error = error
        self._provider = provider
        self._mode = mode

    def request(
        self, payload: dict[str, Any], model: str
    ) -> tuple[EmbeddingRequest, bytes, list[str]]:
        neutral = openai_chat.parse_embedding_request(payload)
        policy = ParamPolicy(self._provider, self._mode)
        return neutral, self._build(neutral, model, policy), policy.dropped

    def response(self, body: bytes, request: EmbeddingRequest, model: str) -> tuple[bytes, Usage]:
        answer = self._parse(body, request, model)
        if not answer.model:
            answer.model = model
        return openai_chat.render_embeddings(answer, request.encoding_format), answer.usage

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProxyError:
        return self._error(status, headers, body, self._provider)


Translator = ChatTranslator | EmbeddingTranslator
