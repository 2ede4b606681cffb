"""The API operations the proxy serves: which dialect each speaks and what its body must hold."""

from __future__ import annotations

from enum import Enum

from edgeproxy.dialects import Dialect


class Operation(Enum):
    """One endpoint of one dialect. `path` is relative to the provider's API root."""

    CHAT = ("chat", Dialect.OPENAI, "/chat/completions")
    COMPLETIONS = ("completions", Dialect.OPENAI, "/completions")
    EMBEDDINGS = ("embeddings", Dialect.OPENAI, "/embeddings")
    RESPONSES = ("responses", Dialect.OPENAI, "/responses")
    MESSAGES = ("messages", Dialect.ANTHROPIC, "/v1/messages")
    COUNT_TOKENS = ("count_tokens", Dialect.ANTHROPIC, "/v1/messages/count_tokens")

    # Members are singletons compared by identity: hashed by identity too, in C, instead of
    # Enum's hash of the name in Python (operations key several lookups of every request).
    __hash__ = object.__hash__

    def __init__(self, label: str, dialect: Dialect, path: str) -> None:
        self.label = label
        self.dialect = dialect
        self.path = path

    @property
    def streams(self) -> bool:
        """Whether `"stream": true` is meaningful for this operation."""
        return self in _STREAMING


_STREAMING = frozenset(
    {Operation.CHAT, Operation.COMPLETIONS, Operation.MESSAGES, Operation.RESPONSES}
)
CLIENT_PATHS = {
    "/v1/chat/completions": Operation.CHAT,
    "/v1/completions": Operation.COMPLETIONS,
    "/v1/embeddings": Operation.EMBEDDINGS,
    "/v1/responses": Operation.RESPONSES,
    "/v1/messages": Operation.MESSAGES,
    "/v1/messages/count_tokens": Operation.COUNT_TOKENS,
}
