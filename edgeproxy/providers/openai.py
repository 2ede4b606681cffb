"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq, Together, Mistral, ...)."""

from __future__ import annotations

from edgeproxy.operations import Operation
from edgeproxy.providers.http import HttpProvider


class OpenAIProvider(HttpProvider):
    operations = frozenset({Operation.CHAT, Operation.COMPLETIONS, Operation.EMBEDDINGS})

    def auth_headers(self) -> dict[str, str]:
        key = self.config.api_key
        return {"authorization": f"Bearer {key.reveal()}"} if key else {}
