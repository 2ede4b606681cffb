"""Google Gemini (the Google AI `generativelanguage` API): every call is translated.

The model goes in the URL (`/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
`:embedContent`, `:batchEmbedContents`) and the key in the `x-goog-api-key` header, never in
the URL, so no logged or echoed URL can carry it.
"""

from __future__ import annotations

from edgeproxy.dialects import gemini
from edgeproxy.dialects.neutral import EmbeddingRequest, EmbeddingResponse
from edgeproxy.dialects.params import ParamPolicy, UnsupportedParams
from edgeproxy.dialects.translation import EmbeddingTranslator, UpstreamChat
from edgeproxy.operations import Operation
from edgeproxy.providers.base import OutboundRequest, path_segment
from edgeproxy.providers.http import HttpProvider
from edgeproxy.providers.settings import KindRules, fixed_url


def _batch(request: EmbeddingRequest) -> bool:
    """Several inputs go to `:batchEmbedContents`, one to `:embedContent` (as `build_embed`)."""
    return len(request.inputs) > 1


def _embedding_body(request: EmbeddingRequest, model: str, policy: ParamPolicy) -> bytes:
    return gemini.build_embed(request, model.removeprefix("models/"), policy)[1]


def _embedding_answer(body: bytes, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
    return gemini.parse_embed(body, _batch(request), model)


class GeminiProvider(HttpProvider):
    rules = KindRules(fixed_url("https://generativelanguage.googleapis.com/v1beta"))
    operations = frozenset()  # no client speaks Gemini's dialect: everything is translated

    def auth_headers(self) -> dict[str, str]:
        key = self.config.api_key
        return {"x-goog-api-key": key.reveal()} if key else {}

    @property
    def chat_codec(self) -> UpstreamChat:
        return gemini

    def embedding_translator(self, mode: UnsupportedParams) -> EmbeddingTranslator:
        return EmbeddingTranslator(
            _embedding_body, _embedding_answer, gemini.parse_error, self.name, mode
        )

    def url_for(self, request: OutboundRequest) -> str:
        model = path_segment(request.model.removeprefix("models/"))
        if request.operation is Operation.EMBEDDINGS:
            batch = isinstance(request.neutral, EmbeddingRequest) and _batch(request.neutral)
            method = ":batchEmbedContents" if batch else ":embedContent"
        elif request.stream:
            method = ":streamGenerateContent?alt=sse"
        else:
            method = ":generateContent"
        return f"{self.config.base_url}/models/{model}{method}"
