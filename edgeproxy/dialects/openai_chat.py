"""OpenAI Chat Completions as a translation dialect, for clients and for upstreams.

As a client dialect it parses an OpenAI SDK's request into neutral form and renders neutral
answers as OpenAI would; as an upstream dialect it builds the body for OpenAI or any
OpenAI-compatible server (vLLM, Ollama, Groq, Together, Mistral, DeepSeek, Azure OpenAI) and
reads that server's answers, streams and errors back. The module is the codec: it implements
`translation.ClientChat` and `translation.UpstreamChat`.

Two extensions of OpenAI's format are used both ways: reasoning travels as the message's
`reasoning_content` (DeepSeek's name, also read as vLLM's `reasoning`), since OpenAI itself
never shows it; and a stream's usage is always requested, so it can be reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

import orjson

from edgeproxy import errors
from edgeproxy.dialects import fields, openai
from edgeproxy.dialects.neutral import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Image,
    Message,
    OutputPart,
    Part,
    Reasoning,
    ResponseFormat,
    Role,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    Usage,
)
from edgeproxy.dialects.openai_stream import ChunkDecoder, ChunkEncoder, finish_of, reasoning_of
from edgeproxy.dialects.params import ParamPolicy
from edgeproxy.dialects.turns import add_message
from edgeproxy.dialects.upstream import code_for_status, retry_after
from edgeproxy.errors import ProxyError

_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}
Effort = Literal["minimal", "low", "medium", "high"]
# reasoning_effort to neutral: "none" asks for no reasoning; "xhigh" and "max" (newest
# OpenAI models) become "high", the most any other provider's effort scale gives.
_EFFORTS: dict[str, Effort] = {**{e: e for e in get_args(Effort)}, "xhigh": "high", "max": "high"}
_TOOL_CHOICES = ("none", "auto", "required")
_CONTENT = "expected a string or an array of content parts"
_REQUEST_FIELDS = frozenset(
    [
        "model",
        "messages",
        "max_completion_tokens",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "seed",
        "user",
        "metadata",
        "n",
        "stream",
        "stream_options",
        "reasoning_effort",
        "frequency_penalty",
        "presence_penalty",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "functions",
        "function_call",
    ]
)
# Documented Chat Completions fields with no neutral form: `extra` passes only these to an
# OpenAI-compatible upstream (another dialect's extras would earn a 400 there).
_OPENAI_EXTRAS = frozenset(
    [
        "audio",
        "logit_bias",
        "logprobs",
        "modalities",
        "moderation",
        "prediction",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "safety_identifier",
        "service_tier",
        "store",
        "top_logprobs",
        "verbosity",
        "web_search_options",
    ]
)
_SAMPLING = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty", "n", "user")
# A thinking budget (Anthropic, Gemini) as the nearest effort: Claude Code's "think" (4k),
# "think hard" (10k) and "ultrathink" (32k) land on low, medium and high.
_EFFORT_BUDGETS = ((8192, "low"), (24576, "medium"))


# --- parsing an OpenAI client's request -------------------------------------------------------


class _Conversation:
    """Neutral turns as they are parsed: one system list, consecutive turns of a role merged
    (so `tool` messages and the user text after them form one user turn), and ids for the
    legacy `function_call`s, which have none."""

    __slots__ = ("function_ids", "messages", "system")

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.system: list[Text] = []
        self.function_ids: list[str] = []

    def add(self, role: Role, parts: list[Part]) -> None:
        if parts:
            add_message(self.messages, role, parts)


def _texts(content: object, path: str) -> list[Text]:
    """System, developer and tool content: a string or an array of text parts."""
    if isinstance(content, str):
        return [Text(content)] if content else []
    texts = []
    for j, raw in enumerate(fields.as_array(content, path, _CONTENT)):
        part = fields.as_object(raw, f"{path}[{j}]")
        if part.get("type") not in ("text", "refusal"):
            raise fields.untranslatable(f"{path}[{j}]", part.get("type"))
        text = fields.required_string(part, part["type"], f"{path}[{j}].{part['type']}")
        if text:
            texts.append(Text(text))
    return texts


def _image(part: dict[str, Any], path: str) -> Image:
    source = part.get("image_url")
    url = source.get("url") if isinstance(source, dict) else source
    if not isinstance(url, str):
        raise fields.invalid(f"{path}.image_url.url", "expected a string")
    if url.startswith(("http://", "https://")):
        return Image(url=url)
    header, comma, data = url.partition(",")
    if url.startswith("data:") and comma and header.endswith(";base64") and len(header) > 12:
        return Image(data=data, media_type=header[5:-7])
    raise fields.invalid(f"{path}.image_url.url", "expected an http(s) URL or a base64 data URL")


def _user_parts(content: object, path: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    parts: list[Part] = []
    for j, raw in enumerate(fields.as_array(content, path, _CONTENT)):
        part = fields.as_object(raw, f"{path}[{j}]")
        kind = part.get("type")
        if kind == "text":
            parts.append(Text(fields.required_string(part, "text", f"{path}[{j}].text")))
        elif kind == "image_url":
            parts.append(_image(part, f"{path}[{j}]"))
        else:
            raise fields.untranslatable(f"{path}[{j}]", kind)
    return parts


def _tool_call(call: object, path: str) -> ToolCall:
    call = fields.as_object(call, path)
    if call.get("type", "function") != "function":
        raise fields.untranslatable(path, call.get("type"))
    function = fields.as_object(call.get("function"), f"{path}.function")
    call_id, name = call.get("id"), function.get("name")
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise fields.invalid(path, "expected an id and a function name")
    arguments = fields.string(function, "arguments", f"{path}.function.arguments")
    return ToolCall(call_id, name, arguments or "{}")


def _assistant(conversation: _Conversation, message: dict[str, Any], path: str) -> list[Part]:
    parts: list[Part] = []
    reasoning = reasoning_of(message)
    if reasoning:
        parts.append(Thinking(reasoning))
    if message.get("content") is not None:
        parts.extend(_texts(message["content"], f"{path}.content"))
    if refusal := fields.string(message, "refusal", f"{path}.refusal"):
        parts.append(Text(refusal))
    calls = message.get("tool_calls") or []
    for k, call in enumerate(fields.as_array(calls, f"{path}.tool_calls")):
        parts.append(_tool_call(call, f"{path}.tool_calls[{k}]"))
    if message.get("function_call") is not None:
        legacy = {
            "id": f"call_{len(conversation.function_ids)}",
            "function": message["function_call"],
        }
        parts.append(_tool_call(legacy, f"{path}.function_call"))
        conversation.function_ids.append(legacy["id"])
    return parts


def _tool_result(conversation: _Conversation, message: dict[str, Any], path: str) -> list[Part]:
    if message["role"] == "function":  # the legacy answer to the last function_call
        call_id = conversation.function_ids[-1] if conversation.function_ids else "call_0"
    else:
        call_id = fields.required_string(message, "tool_call_id", f"{path}.tool_call_id")
    return [ToolResult(call_id, tuple(_texts(message.get("content") or "", f"{path}.content")))]


def _message(conversation: _Conversation, message: object, path: str) -> None:
    message = fields.as_object(message, path)
    role = message.get("role")
    if role in ("system", "developer"):
        conversation.system.extend(_texts(message.get("content"), f"{path}.content"))
    elif role == "user":
        conversation.add("user", _user_parts(message.get("content"), f"{path}.content"))
    elif role == "assistant":
        conversation.add("assistant", _assistant(conversation, message, path))
    elif role in ("tool", "function"):
        conversation.add("user", _tool_result(conversation, message, path))
    else:
        raise fields.invalid(
            f"{path}.role", 'expected "system", "developer", "user", "assistant" or "tool"'
        )


def _function(function: object, path: str) -> Tool:
    function = fields.as_object(function, path)
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise fields.invalid(f"{path}.name", "expected a non-empty string")
    parameters = function.get("parameters")
    if parameters is not None:
        fields.as_object(parameters, f"{path}.parameters")
    description = fields.string(function, "description", f"{path}.description")
    return Tool(name, description, parameters or _NO_PARAMETERS)


def _tools(payload: dict[str, Any]) -> list[Tool]:
    tools = []
    for i, raw in enumerate(fields.as_array(payload.get("tools") or [], "tools")):
        tool = fields.as_object(raw, f"tools[{i}]")
        if tool.get("type") != "function":
            raise fields.untranslatable(f"tools[{i}]", tool.get("type"))
        tools.append(_function(tool.get("function"), f"tools[{i}].function"))
    functions = fields.as_array(payload.get("functions") or [], "functions")
    return tools + [_function(f, f"functions[{i}]") for i, f in enumerate(functions)]


def _tool_choice(payload: dict[str, Any]) -> ToolChoice | None:
    name = "tool_choice" if payload.get("tool_choice") is not None else "function_call"
    choice = payload.get(name)
    if choice is None:
        return None
    if choice in _TOOL_CHOICES:
        return ToolChoice(choice)
    named = choice.get("function", choice) if isinstance(choice, dict) else None
    forced = named.get("name") if isinstance(named, dict) else None
    if isinstance(forced, str) and choice.get("type", "function") == "function":
        return ToolChoice("tool", forced)
    raise fields.invalid(
        name, 'expected "none", "auto", "required" or {"type": "function", "function": {"name"}}'
    )


def _response_format(payload: dict[str, Any]) -> ResponseFormat | None:
    spec = payload.get("response_format")
    if spec is None:
        return None
    kind = fields.as_object(spec, "response_format").get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind != "json_schema":
        raise fields.untranslatable("response_format", kind)
    path = "response_format.json_schema"
    spec = fields.as_object(spec.get("json_schema"), path)
    schema = spec.get("schema")
    return ResponseFormat(
        "json_schema",
        schema=None if schema is None else fields.as_object(schema, f"{path}.schema"),
        name=fields.string(spec, "name", f"{path}.name"),
        strict=fields.flag(spec, "strict"),
    )


def _reasoning(payload: dict[str, Any]) -> Reasoning | None:
    effort = payload.get("reasoning_effort")
    if effort is None or effort == "none":
        return None
    if not isinstance(effort, str) or effort not in _EFFORTS:  # a list is unhashable
        raise fields.invalid(
            "reasoning_effort",
            'expected "none", "minimal", "low", "medium", "high", "xhigh" or "max"',
        )
    return Reasoning(effort=_EFFORTS[effort])


def _stop(payload: dict[str, Any]) -> list[str]:
    stop = payload.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return stop
    raise fields.invalid("stop", "expected a string or an array of strings")


def _metadata(payload: dict[str, Any]) -> dict[str, str] | None:
    metadata = payload.get("metadata")
    if metadata is None:
        return None
    if isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values()):
        return metadata
    raise fields.invalid("metadata", "expected an object of strings")


def parse_chat_request(payload: dict[str, Any]) -> ChatRequest:
    """An OpenAI SDK's request in neutral form; 400s name the field path they are about."""
    conversation = _Conversation()
    for i, message in enumerate(fields.as_array(payload.get("messages"), "messages")):
        _message(conversation, message, f"messages[{i}]")
    options = payload.get("stream_options")
    max_tokens = fields.integer(payload, "max_completion_tokens")
    return ChatRequest(
        model=str(payload.get("model") or ""),
        messages=conversation.messages,
        system=conversation.system,
        max_tokens=max_tokens if max_tokens is not None else fields.integer(payload, "max_tokens"),
        temperature=fields.number(payload, "temperature"),
        top_p=fields.number(payload, "top_p"),
        top_k=fields.integer(payload, "top_k"),  # vLLM's extension, which Anthropic and Gemini take
        stop=_stop(payload),
        seed=fields.integer(payload, "seed"),
        frequency_penalty=fields.number(payload, "frequency_penalty"),
        presence_penalty=fields.number(payload, "presence_penalty"),
        user=fields.string(payload, "user"),
        metadata=_metadata(payload),
        tools=_tools(payload),
        tool_choice=_tool_choice(payload),
        parallel_tool_calls=fields.flag(payload, "parallel_tool_calls"),
        response_format=_response_format(payload),
        reasoning=_reasoning(payload),
        n=fields.integer(payload, "n"),
        stream=fields.flag(payload, "stream") or False,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        extra={k: v for k, v in payload.items() if k not in _REQUEST_FIELDS},
    )


# --- rendering an answer for an OpenAI client -------------------------------------------------


def _call_object(call: ToolCall) -> dict[str, Any]:
    function = {"name": call.name, "arguments": call.arguments}
    return {"id": call.id, "type": "function", "function": function}


def render_chat(response: ChatResponse) -> bytes:
    """A `chat.completion` as OpenAI returns it; reasoning goes in `reasoning_content`."""
    calls = [_call_object(p) for p in response.parts if isinstance(p, ToolCall)]
    text = response.text
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
        "annotations": [],
    }
    if calls:
        message["tool_calls"] = calls
    if reasoning := "".join(p.text for p in response.parts if isinstance(p, Thinking)):
        message["reasoning_content"] = reasoning
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": response.finish}
    return orjson.dumps(
        {
            "id": response.id,
            "object": "chat.completion",
            "created": response.created,
            "model": response.model,
            "choices": [choice],
            "usage": openai.usage_object(response.usage),
            "service_tier": "default",
            "system_fingerprint": None,
        }
    )


def chat_stream_encoder(
    request: ChatRequest, *, clock: Callable[[], float] = time.time
) -> ChunkEncoder:
    return ChunkEncoder(request.include_usage, clock)


# --- building the body for an OpenAI-compatible upstream --------------------------------------


def _data_url(image: Image) -> str:
    return image.url or f"data:{image.media_type};base64,{image.data}"


def _user_content(parts: list[Text | Image]) -> str | list[dict[str, Any]]:
    """Plain text as one string (DeepSeek and older servers take no content arrays)."""
    if all(isinstance(p, Text) for p in parts):
        return "\n\n".join(p.text for p in parts if isinstance(p, Text))
    return [
        {"type": "text", "text": p.text}
        if isinstance(p, Text)
        else {"type": "image_url", "image_url": {"url": _data_url(p)}}
        for p in parts
    ]


def _user_messages(parts: list[Part]) -> list[dict[str, Any]]:
    """A user turn: its tool results as `tool` messages first (OpenAI wants them right after
    the calls), then the rest. Images in a tool result, which a `tool` message cannot hold,
    lead the user message that follows."""
    out: list[dict[str, Any]] = []
    images: list[Text | Image] = []
    rest: list[Text | Image] = []
    for part in parts:
        if isinstance(part, ToolResult):
            text = "\n\n".join(p.text for p in part.content if isinstance(p, Text))
            out.append({"role": "tool", "tool_call_id": part.call_id, "content": text})
            images.extend(p for p in part.content if isinstance(p, Image))
        elif isinstance(part, Text | Image):
            rest.append(part)
    if images or rest:
        out.append({"role": "user", "content": _user_content(images + rest)})
    return out


def _assistant_message(parts: list[Part]) -> list[dict[str, Any]]:
    """An assistant turn; its thinking is left out, as OpenAI cannot take reasoning back."""
    text = "".join(p.text for p in parts if isinstance(p, Text))
    calls = [_call_object(p) for p in parts if isinstance(p, ToolCall)]
    if not (text or calls):
        return []
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": "\n\n".join(t.text for t in request.system)})
    for message in request.messages:
        if message.role == "user":
            messages.extend(_user_messages(message.parts))
        else:
            messages.extend(_assistant_message(message.parts))
    return messages


def _tool_fields(request: ChatRequest, body: dict[str, Any]) -> None:
    """Tools, and the choices OpenAI rejects when no tools are given."""
    if not request.tools:
        return
    body["tools"] = [{"type": "function", "function": _tool_object(tool)} for tool in request.tools]
    choice = request.tool_choice
    if choice is not None:
        forced = {"type": "function", "function": {"name": choice.name}}
        body["tool_choice"] = forced if choice.mode == "tool" else choice.mode
    if request.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = request.parallel_tool_calls


def _tool_object(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.parameters
    return function


def _format_object(spec: ResponseFormat) -> dict[str, Any]:
    if spec.kind == "json_object":
        return {"type": "json_object"}
    schema: dict[str, Any] = {"name": spec.name or "response", "schema": spec.schema or {}}
    if spec.strict is not None:
        schema["strict"] = spec.strict
    return {"type": "json_schema", "json_schema": schema}


def effort_for(reasoning: Reasoning) -> str:
    """The effort to ask for: the one given, else the nearest to the thinking budget."""
    if reasoning.effort:
        return reasoning.effort
    budget = reasoning.budget_tokens or 0
    return next((effort for limit, effort in _EFFORT_BUDGETS if budget < limit), "high")


def _options(request: ChatRequest, policy: ParamPolicy, body: dict[str, Any]) -> None:
    for name in _SAMPLING:
        if (value := getattr(request, name)) is not None:
            body[name] = value
    if request.stop:
        body["stop"] = request.stop
    if request.top_k is not None:
        policy.unsupported("top_k")
    if request.metadata is not None:
        if request.extra.get("store") is True:
            body["metadata"] = request.metadata
        else:
            policy.unsupported("metadata", "OpenAI takes metadata only with store enabled")
    if request.reasoning is not None:
        body["reasoning_effort"] = effort_for(request.reasoning)
    if request.response_format is not None:
        body["response_format"] = _format_object(request.response_format)


def _extras(request: ChatRequest, policy: ParamPolicy, body: dict[str, Any]) -> None:
    for name, value in request.extra.items():
        if name in _OPENAI_EXTRAS:
            body[name] = value
        else:
            policy.unsupported(name)


def build_chat(
    request: ChatRequest,
    model: str,
    policy: ParamPolicy,
    *,
    max_tokens_field: str = "max_completion_tokens",
) -> bytes:
    """The body for an OpenAI-compatible server; `max_tokens_field` is "max_tokens" for the
    servers that do not know OpenAI's newer name. A stream always asks for its usage."""
    body: dict[str, Any] = {"model": model, "messages": _messages(request)}
    if request.max_tokens is not None:
        body[max_tokens_field] = request.max_tokens
    _options(request, policy, body)
    _tool_fields(request, body)
    _extras(request, policy, body)
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


# --- reading an OpenAI-compatible upstream's answers ------------------------------------------


def _message_parts(message: dict[str, Any]) -> list[OutputPart]:
    parts: list[OutputPart] = []
    if reasoning := reasoning_of(message):
        parts.append(Thinking(reasoning))
    content = message.get("content")
    if isinstance(content, list):  # Mistral's content chunks
        content = "".join(
            c.get("text") or "" for c in content if isinstance(c, dict) and c.get("type") == "text"
        )
    texts = (content, message.get("refusal"))
    parts.extend(Text(text) for text in texts if text and isinstance(text, str))
    calls = message.get("tool_calls")
    for k, call in enumerate(calls if isinstance(calls, list) else ()):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.append(_answer_call(call.get("id") or f"call_{k}", function))
    if isinstance(legacy := message.get("function_call"), dict):
        parts.append(_answer_call("call_0", legacy))
    return parts


def _answer_call(call_id: object, function: dict[str, Any]) -> ToolCall:
    arguments = function.get("arguments")
    if not isinstance(arguments, str):  # a few servers send the object itself
        arguments = orjson.dumps(arguments).decode() if arguments else "{}"
    return ToolCall(str(call_id), str(function.get("name") or ""), arguments or "{}")


def parse_chat(body: bytes, provider: str) -> ChatResponse:
    """The first choice of a `chat.completion`; a missing usage counts as zero."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise errors.upstream_broken(provider, f"answer is not JSON: {body[:200]!r}") from None
    if isinstance(answer, dict) and (answer.get("error") or answer.get("object") == "error"):
        raise _reported_error(answer, provider, 502)  # servers that report failures with a 200
    choices = answer.get("choices") if isinstance(answer, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(choice, dict) or not isinstance(message := choice.get("message"), dict):
        raise errors.upstream_broken(provider, f"answer has no choice: {body[:200]!r}")
    parts = _message_parts(message)
    matched = choice.get("stop_reason")  # vLLM: the stop string that ended the answer
    return ChatResponse(
        id=str(answer.get("id") or ""),
        model=str(answer.get("model") or ""),
        parts=parts,
        finish=finish_of(
            str(choice.get("finish_reason") or "stop"), any(isinstance(p, ToolCall) for p in parts)
        ),
        usage=openai.read_usage(answer) or Usage(),
        created=int(answer.get("created") or 0),
        stop_sequence=matched if isinstance(matched, str) else None,
    )


def chat_stream_decoder(provider: str) -> ChunkDecoder:
    return ChunkDecoder(provider, lambda chunk: _reported_error(chunk, provider, 500))


# --- errors -----------------------------------------------------------------------------------

# The status a failure reported inside a stream (or a 200 body) stands for, by OpenAI `type`.
_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "requests": 429,
    "tokens": 429,
    "rate_limit_error": 429,
    "insufficient_quota": 429,
    "overloaded_error": 529,
}
_CODE_STATUS: dict[object, int] = {"rate_limit_exceeded": 429, "context_length_exceeded": 400}
_CONTEXT_OVERFLOW = ("context_length_exceeded", "maximum context length", "context length exceeded")


def _error_fields(payload: object) -> tuple[str | None, object, object, object]:
    """(message, type, code, status) from `{"error": {...}}`, vLLM's flat `{"object": "error"}`,
    a bare `{"error": "text"}` or a web framework's `{"detail": "text"}`."""
    if not isinstance(payload, dict):
        return None, None, None, None
    error = payload.get("error", payload)
    if not isinstance(error, dict):
        return (error if isinstance(error, str) else None), None, None, None
    message = error.get("message", error.get("detail"))
    if message is not None and not isinstance(message, str):  # Mistral's validation details
        message = orjson.dumps(message).decode()[:1000]
    return message, error.get("type"), error.get("code"), error.get("status")


def _neutral_code(status: int, code: object, message: str) -> str:
    if status in (400, 413, 422):
        lowered = f"{code} {message}".lower()
        if any(sign in lowered for sign in _CONTEXT_OVERFLOW):
            return "context_length_exceeded"
    return code_for_status(status)


def _upstream_error(
    status: int,
    fields: tuple[str | None, object, object, object],
    provider: str,
    retry_after: float | None = None,
) -> ProxyError:
    message, kind, code, _ = fields
    text = message or f"Provider '{provider}' answered with HTTP status {status}."
    return errors.from_upstream(
        status,
        _neutral_code(status, code, text),
        text,
        retry_after=retry_after,
        detail=f"{provider} HTTP {status}: type={kind!r} code={code!r}",
    )


def _reported_error(payload: object, provider: str, default: int) -> ProxyError:
    """An error reported with a 200 (a stream's error frame, or a body): its status is the one
    the error names (vLLM puts it in `code`), else the one its OpenAI `type` stands for."""
    fields = _error_fields(payload)
    _, kind, code, named = fields
    status = next(
        (v for v in (code, named) if isinstance(v, int) and 400 <= v <= 599),
        _TYPE_STATUS.get(kind, default) if isinstance(kind, str) else default,
    )
    if code in _CODE_STATUS:
        status = _CODE_STATUS[code]
    return _upstream_error(status, fields, provider)


def parse_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    provider: str,
    *,
    clock: Callable[[], float] = time.time,
) -> ProxyError:
    """An OpenAI-compatible server's error answer in neutral terms. Only the provider's own
    `message` reaches the client; a body that is not JSON goes to the log only. `headers`
    must look names up case-insensitively, as aiohttp's do."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    err = _upstream_error(status, _error_fields(payload), provider, retry_after(headers, clock))
    if payload is None:
        err.detail += f" body={body[:300]!r}"
    return err


# --- embeddings -------------------------------------------------------------------------------

_EMBEDDING_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})


def _inputs(value: object) -> list[str] | list[list[int]]:
    """OpenAI's four input shapes: a text, texts, one token array, token arrays."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return value
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [value]
        if all(isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value):
            return value
    raise fields.invalid("input", "expected a string, an array of strings or token arrays")


def parse_embedding_request(payload: dict[str, Any]) -> EmbeddingRequest:
    if payload.get("encoding_format") not in (None, "float", "base64"):
        raise fields.invalid("encoding_format", 'expected "float" or "base64"')
    encoding: Literal["float", "base64"] = (
        "base64" if payload.get("encoding_format") == "base64" else "float"
    )
    return EmbeddingRequest(
        model=str(payload.get("model") or ""),
        inputs=_inputs(payload.get("input")),
        dimensions=fields.integer(payload, "dimensions"),
        encoding_format=encoding,
        user=fields.string(payload, "user"),
        extra={k: v for k, v in payload.items() if k not in _EMBEDDING_FIELDS},
    )


def render_embeddings(response: EmbeddingResponse, encoding_format: str) -> bytes:
    """OpenAI's list of embeddings; base64 packs little-endian float32, as the SDK reads it."""
    return openai.embeddings(response.model, response.vectors, encoding_format, response.usage)
