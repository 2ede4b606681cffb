"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq, Together, Mistral, ...)."""

from __future__ import annotations

from functools import partial

from edgeproxy.dialects import openai_chat
from edgeproxy.dialects.translation import BuildChat, UpstreamChat
from edgeproxy.operations import Operation
from edgeproxy.providers.http import HttpProvider
from edgeproxy.providers.settings import OPENAI_URL, Given, KindRules, fixed_url


def _authenticated(given: Given) -> bool:
    """A self-hosted OpenAI-compatible server (another base URL) may need no key."""
    return given.has_key or not str(given.raw.get("base_url", OPENAI_URL)).startswith(OPENAI_URL)


class OpenAIProvider(HttpProvider):
    rules = KindRules(
        fixed_url(OPENAI_URL + "/v1"), frozenset({"max_tokens_field"}), _authenticated
    )
    operations = frozenset(
        {Operation.CHAT, Operation.COMPLETIONS, Operation.EMBEDDINGS, Operation.RESPONSES}
    )
    native_chat = Operation.CHAT

    def auth_headers(self) -> dict[str, str]:
        key = self.config.api_key
        return {"authorization": f"Bearer {key.reveal()}"} if key else {}

    @property
    def chat_codec(self) -> UpstreamChat:
        return openai_chat

    @property
    def build_chat(self) -> BuildChat:
        return partial(openai_chat.build_chat, max_tokens_field=self.config.max_tokens_field)
