"""Anthropic's Messages API: `x-api-key` auth and a default `anthropic-version`."""

from __future__ import annotations

from functools import partial

from edgeproxy.dialects import anthropic_messages
from edgeproxy.dialects.translation import BuildChat, UpstreamChat
from edgeproxy.operations import Operation
from edgeproxy.providers.base import ForwardRequest, OutboundRequest
from edgeproxy.providers.http import HttpProvider
from edgeproxy.providers.settings import KindRules, fixed_url


class AnthropicProvider(HttpProvider):
    rules = KindRules(
        fixed_url("https://api.anthropic.com"),
        frozenset({"anthropic_version", "default_max_tokens"}),
    )
    operations = frozenset({Operation.MESSAGES, Operation.COUNT_TOKENS})
    native_chat = Operation.MESSAGES

    @property
    def chat_codec(self) -> UpstreamChat:
        return anthropic_messages

    @property
    def build_chat(self) -> BuildChat:
        return partial(
            anthropic_messages.build_chat, default_max_tokens=self.config.default_max_tokens
        )

    def auth_headers(self) -> dict[str, str]:
        key = self.config.api_key
        return {"x-api-key": key.reveal()} if key else {}

    def request_headers(self, request: OutboundRequest) -> dict[str, str]:
        """The client's `anthropic-version` and `anthropic-beta` pass through unchanged."""
        headers = super().request_headers(request)
        client = request.client_headers
        if client is None or "anthropic-version" not in client:
            headers["anthropic-version"] = self.config.anthropic_version
        return headers

    def forward_headers(self, request: ForwardRequest) -> dict[str, str]:
        headers = super().forward_headers(request)
        headers.setdefault("anthropic-version", self.config.anthropic_version)
        return headers

    def api_url(self, path: str, query: str) -> str:
        """Anthropic's base URL is its host: the client's path goes on whole."""
        url = self.config.base_url + path
        return url + "?" + query if query else url
