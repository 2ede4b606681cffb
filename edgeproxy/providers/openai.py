"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq, Together, Mistral, ...)."""

from __future__ import annotations

from functools import partial

from edgeproxy.dialects import openai_chat
from edgeproxy.dialects.translation import BuildChat, UpstreamChat
from edgeproxy.operations import Operation
from edgeproxy.providers.http import HttpProvider


class OpenAIProvider(HttpProvider):
    operations = frozenset({Operation.CHAT, Operation.COMPLETIONS, Operation.EMBEDDINGS})
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
