"""Shaping conversation turns, the same way for every dialect that needs it.

A client's turns become neutral messages with turns of one role in a row merged (OpenAI's
`tool` messages and the user text after them are one user turn, as in Anthropic's API).
Anthropic, Bedrock and Gemini want turns that alternate strictly, with the tool results that
answer a turn's calls first in the next user turn, and a call's arguments as a JSON object
where the neutral form keeps JSON text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from edgeproxy import errors
from edgeproxy.dialects.neutral import Message, Part, Role, ToolCall

Block = dict[str, Any]


def add_message(messages: list[Message], role: Role, parts: list[Part]) -> None:
    """Appends a turn, or extends the last one when it is of the same role."""
    if messages and messages[-1].role == role:
        messages[-1].parts.extend(parts)
    else:
        messages.append(Message(role, parts))


def alternating(
    turns: Iterable[tuple[str, list[Block]]],
    is_result: Callable[[Block], bool],
    key: str = "content",
) -> list[Block]:
    """`{"role", key}` turns from (role, blocks): empty ones dropped, turns of one role in a row
    merged, and each user turn's tool results (`is_result`) moved to its start, the rest kept
    in order."""
    merged: list[Block] = []
    for role, blocks in turns:
        if not blocks:
            continue
        if merged and merged[-1]["role"] == role:
            merged[-1][key].extend(blocks)
        else:
            merged.append({"role": role, key: blocks})
    for turn in merged:
        if turn["role"] == "user":
            turn[key].sort(key=lambda block: not is_result(block))
    return merged


def call_arguments(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as the object Anthropic, Bedrock and Gemini want; blank text is no
    arguments, and text that is not a JSON object cannot be sent (a 400 naming the call)."""
    if not call.arguments.strip():
        return {}
    try:
        arguments = orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise errors.bad_request(
            f"messages: the arguments of tool call '{call.id}' are not a JSON object",
            param="messages",
        )
    return arguments
