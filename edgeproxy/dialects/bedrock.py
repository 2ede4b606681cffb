"""AWS Bedrock Runtime as an upstream dialect: Converse, ConverseStream, and InvokeModel for
embeddings. The module implements `translation.UpstreamChat`; the adapter puts the model id in
the URL (`/model/{modelId}/converse` or `/converse-stream`), so the bodies never name it.

Converse is one request shape for every Bedrock model, but models differ in what they accept,
and Bedrock answers a field a model cannot take with a 400. What depends on the model is
decided from the model id (which names its family: `anthropic.claude-…`, `us.amazon.nova-…`,
or an ARN ending in one): Claude takes `top_k` and extended thinking in
`additionalModelRequestFields`, Nova takes `topK` there; only Claude can be forced to call
some tool (`any`), only Claude and Nova a named one, only they take a tool result's `status`;
native structured output is used for Claude 4.5 and later and OpenAI's open-weight models. Any
other family, or an id that names none (an application inference profile ARN), gets none of
these, and the fields that asked for them go through the policy.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import orjson

from edgeproxy import errors
from edgeproxy.dialects.anthropic_messages import budget_thinking
from edgeproxy.dialects.bedrock_stream import (
    ConverseStreamDecoder,
    finish_of,
    new_id,
    stop_sequence_of,
    usage_of,
)
from edgeproxy.dialects.neutral import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Image,
    Message,
    OutputPart,
    Part,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolResult,
    Usage,
)
from edgeproxy.dialects.params import ParamPolicy
from edgeproxy.dialects.turns import alternating, call_arguments
from edgeproxy.dialects.upstream import code_for_status, json_object, retry_after
from edgeproxy.errors import ProxyError

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
# Bedrock refuses a conversation that opens with the assistant (or has no turn at all), and a
# blank text block; these stand in, saying as little as possible.
_OPENING = {"text": "(conversation start)"}
_NO_OUTPUT = {"text": "(no output)"}
# Bedrock wants tools declared whenever the conversation holds tool calls, even when the
# client allows none: this tool, which asks not to be called, is declared instead of them.
_NO_TOOLS = {
    "toolSpec": {
        "name": "no_tool_available",
        "description": "No tool can be called now. Do not call this; answer in text.",
        "inputSchema": {"json": {"type": "object", "properties": {}}},
    }
}
# Claude models older than 3.7 cannot think; older than 4.5, they have no structured output.
_NO_THINKING = (
    "claude-instant",
    "claude-v2",
    "claude-3-haiku",
    "claude-3-sonnet",
    "claude-3-opus",
    "claude-3-5-",
)
_NO_STRUCTURED_OUTPUT = (
    *_NO_THINKING,
    "claude-3-7",
    "claude-sonnet-4-2",
    "claude-opus-4-2",
    "claude-opus-4-1",
)
_STRUCTURED_OUTPUT_FAMILIES = ("anthropic.claude", "openai.")
# A reasoning effort as a thinking budget, the inverse of openai_chat's reading of budgets.
_EFFORT_BUDGETS = {"minimal": 1024, "low": 4096, "medium": 16384, "high": 32768}
# requestMetadata: at most 16 pairs of these characters (keys 1-256, values up to 256).
_METADATA_TEXT = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,\-.]{0,256}")


def _claude(model: str) -> bool:
    return "anthropic.claude" in model


def _nova(model: str) -> bool:
    return "amazon.nova" in model


def _thinks(model: str) -> bool:
    return _claude(model) and not any(old in model for old in _NO_THINKING)


def _structured_output(model: str) -> bool:
    return any(family in model for family in _STRUCTURED_OUTPUT_FAMILIES) and not (
        _claude(model) and any(old in model for old in _NO_STRUCTURED_OUTPUT)
    )


# --- messages ---------------------------------------------------------------------------------


def _image(image: Image) -> dict[str, Any]:
    if image.data is None:
        raise errors.bad_request(
            "Bedrock cannot fetch image URLs; send base64 data", param="messages"
        )
    image_format = _IMAGE_FORMATS.get((image.media_type or "").lower())
    if image_format is None:
        raise errors.bad_request(
            f"messages: image type {image.media_type!r} cannot be sent to Bedrock "
            "(png, jpeg, gif or webp only)",
            param="messages",
        )
    return {"image": {"format": image_format, "source": {"bytes": image.data}}}


def _tool_result(result: ToolResult, with_status: bool) -> dict[str, Any]:
    content = [
        _image(part) if isinstance(part, Image) else {"text": part.text}
        for part in result.content
        if isinstance(part, Image) or part.text.strip()
    ]
    block: dict[str, Any] = {"toolUseId": result.call_id, "content": content or [_NO_OUTPUT]}
    if with_status:
        block["status"] = "error" if result.is_error else "success"
    return {"toolResult": block}


def _thinking(part: Thinking) -> dict[str, Any] | None:
    """Reasoning goes back to a thinking Claude only as it gave it: signed, or redacted;
    other reasoning (another provider's, or unsigned) cannot be verified, so it is left out,
    as it is for every other model."""
    if part.redacted:
        return {"reasoningContent": {"redactedContent": part.redacted}}
    if part.signature:
        return {
            "reasoningContent": {"reasoningText": {"text": part.text, "signature": part.signature}}
        }
    return None


def _block(part: Part, role: str, model: str) -> dict[str, Any] | None:
    """One content block; None for what Converse must not see (blank text, reasoning it
    cannot verify, parts in a turn of the wrong role)."""
    if isinstance(part, Text):
        return {"text": part.text} if part.text.strip() else None
    if role == "user":
        if isinstance(part, Image):
            return _image(part)
        if isinstance(part, ToolResult):
            return _tool_result(part, _claude(model) or _nova(model))
        return None
    if isinstance(part, ToolCall):
        return {"toolUse": {"toolUseId": part.id, "name": part.name, "input": call_arguments(part)}}
    return _thinking(part) if isinstance(part, Thinking) and _thinks(model) else None


def _content(message: Message, model: str) -> list[dict[str, Any]]:
    return [b for p in message.parts if (b := _block(p, message.role, model)) is not None]


def _messages(request: ChatRequest, model: str) -> list[dict[str, Any]]:
    """Turns that alternate strictly, tool results leading their user turn, and open with the
    user, as Converse requires: a placeholder opens the conversation when the client's starts
    with the assistant (a greeting) or has no turn at all."""
    turns = alternating(
        ((message.role, _content(message, model)) for message in request.messages),
        lambda block: "toolResult" in block,
    )
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [_OPENING]})
    return turns


def _has_tool_blocks(turns: list[dict[str, Any]]) -> bool:
    return any("toolUse" in b or "toolResult" in b for turn in turns for b in turn["content"])


# --- tools ------------------------------------------------------------------------------------


def _tool_spec(tool: Tool) -> dict[str, Any]:
    """A toolSpec; a blank description is left out, since Bedrock refuses an empty one."""
    spec: dict[str, Any] = {"name": tool.name}
    if tool.description and tool.description.strip():
        spec["description"] = tool.description
    spec["inputSchema"] = {"json": tool.parameters}
    return {"toolSpec": spec}


def _tool_choice(
    request: ChatRequest, model: str, thinking: bool, policy: ParamPolicy
) -> dict[str, Any] | None:
    """`auto` is Converse's default and goes unsaid (not every model takes a toolChoice)."""
    choice = request.tool_choice
    if choice is None or choice.mode == "auto":
        return None
    if thinking:
        policy.unsupported("tool_choice", "Claude cannot be made to call a tool while thinking")
    elif choice.mode == "required" and _claude(model):
        return {"any": {}}
    elif choice.mode == "tool" and (_claude(model) or _nova(model)):
        return {"tool": {"name": choice.name}}
    else:
        policy.unsupported("tool_choice", f"Bedrock cannot force tool use on {model}")
    return None


def _tool_config(
    request: ChatRequest,
    model: str,
    history: bool,
    thinking: bool,
    policy: ParamPolicy,
) -> dict[str, Any] | None:
    """Tools and the choice among them. Converse has no "none": the tools are withheld, and
    when earlier turns hold tool calls (which Bedrock accepts only with tools declared) a
    tool that asks not to be called is declared in their place."""
    allowed = request.tools and not (request.tool_choice and request.tool_choice.mode == "none")
    if not allowed:
        return {"tools": [_NO_TOOLS]} if history else None
    config: dict[str, Any] = {"tools": [_tool_spec(tool) for tool in request.tools]}
    choice = _tool_choice(request, model, thinking, policy)
    if choice is not None:
        config["toolChoice"] = choice
    if request.parallel_tool_calls is False:
        policy.unsupported("parallel_tool_calls", "Bedrock cannot limit a turn to one tool call")
    return config


# --- parameters -------------------------------------------------------------------------------


def _reasoning_fields(
    request: ChatRequest, model: str, policy: ParamPolicy, fields: dict[str, Any]
) -> bool:
    """Extended thinking for Claude; True when it is on."""
    if request.reasoning is None:
        return False
    if not _thinks(model):
        policy.unsupported("reasoning", f"{model} takes no thinking settings on Bedrock")
        return False
    budget = budget_thinking(request.reasoning, request.max_tokens, _EFFORT_BUDGETS, policy, fields)
    return budget is not None


def _top_k(
    request: ChatRequest, model: str, thinking: bool, policy: ParamPolicy, fields: dict[str, Any]
) -> None:
    if request.top_k is None:
        return
    if thinking:
        policy.unsupported("top_k", "Claude takes no top_k while thinking")
    elif _claude(model):
        fields["top_k"] = request.top_k
    elif _nova(model):
        fields["inferenceConfig"] = {"topK": request.top_k}
    else:
        policy.unsupported("top_k", f"{model} takes no top_k on Bedrock")


def _inference_config(request: ChatRequest, thinking: bool, policy: ParamPolicy) -> dict[str, Any]:
    """maxTokens, temperature, topP and stopSequences. Bedrock takes temperatures from 0 to
    1 only; a thinking Claude takes no temperature and a top_p of 0.95 or more only."""
    config: dict[str, Any] = {}
    if request.max_tokens is not None:
        config["maxTokens"] = request.max_tokens
    temperature = request.temperature
    if temperature is not None:
        if temperature > 1:
            policy.unsupported("temperature", "Bedrock takes temperatures from 0 to 1")
        elif thinking and temperature != 1:
            policy.unsupported("temperature", "Claude takes no temperature while thinking")
        else:
            config["temperature"] = temperature
    if request.top_p is not None:
        if thinking and request.top_p < 0.95:
            policy.unsupported("top_p", "Claude takes top_p from 0.95 to 1 while thinking")
        else:
            config["topP"] = request.top_p
    if stops := [stop for stop in request.stop if stop]:
        config["stopSequences"] = stops
    return config


def _output_config(request: ChatRequest, model: str, policy: ParamPolicy) -> dict[str, Any] | None:
    """Native structured output (`outputConfig.textFormat`), which takes a JSON schema only."""
    spec = request.response_format
    if spec is None:
        return None
    if spec.kind != "json_schema" or spec.schema is None:
        policy.unsupported("response_format", "Bedrock takes a JSON schema, not a bare JSON mode")
        return None
    if not _structured_output(model):
        policy.unsupported("response_format", f"{model} has no structured output on Bedrock")
        return None
    schema: dict[str, Any] = {"schema": orjson.dumps(spec.schema).decode()}
    if spec.name:
        schema["name"] = spec.name
    structure = {"jsonSchema": schema}
    return {"textFormat": {"type": "json_schema", "structure": structure}}


def _request_metadata(metadata: dict[str, str], policy: ParamPolicy) -> dict[str, str] | None:
    """OpenAI's metadata as Bedrock's requestMetadata (which tags the invocation log), when
    it fits the narrower rules Bedrock has for it."""
    fits = len(metadata) <= 16 and all(
        key and _METADATA_TEXT.fullmatch(key) and _METADATA_TEXT.fullmatch(value)
        for key, value in metadata.items()
    )
    if fits:
        return metadata
    policy.unsupported("metadata", "Bedrock takes up to 16 short plain-text pairs")
    return None


def _unsupported(request: ChatRequest, policy: ParamPolicy) -> None:
    """The fields Converse has no place for."""
    for name in ("seed", "frequency_penalty", "presence_penalty", "user"):
        if getattr(request, name) is not None:
            policy.unsupported(name)
    if request.n is not None and request.n > 1:
        policy.unsupported("n", "Bedrock gives one answer per request")
    for name in request.extra:
        policy.unsupported(name)


def build_chat(request: ChatRequest, model: str, policy: ParamPolicy) -> bytes:
    """The Converse (or ConverseStream: the same body) request for `model`."""
    messages = _messages(request, model)
    fields: dict[str, Any] = {}
    thinking = _reasoning_fields(request, model, policy, fields)
    body: dict[str, Any] = {"messages": messages}
    if system := [{"text": t.text} for t in request.system if t.text.strip()]:
        body["system"] = system
    if config := _inference_config(request, thinking, policy):
        body["inferenceConfig"] = config
    tools = _tool_config(request, model, _has_tool_blocks(messages), thinking, policy)
    if tools is not None:
        body["toolConfig"] = tools
    _top_k(request, model, thinking, policy, fields)
    if fields:
        body["additionalModelRequestFields"] = fields
    if request.stop:  # Bedrock ignores the path for models whose answers have no such field
        body["additionalModelResponseFieldPaths"] = ["/stop_sequence"]
    if (output := _output_config(request, model, policy)) is not None:
        body["outputConfig"] = output
    if request.metadata and (metadata := _request_metadata(request.metadata, policy)):
        body["requestMetadata"] = metadata
    _unsupported(request, policy)
    return orjson.dumps(body)


# --- answers ----------------------------------------------------------------------------------


def _reasoning_part(reasoning: dict[str, Any]) -> Thinking | None:
    if isinstance(redacted := reasoning.get("redactedContent"), str):
        return Thinking("", redacted=redacted)
    shown = reasoning.get("reasoningText")
    if not isinstance(shown, dict) or not isinstance(shown.get("text"), str):
        return None
    signature = shown.get("signature")
    return Thinking(shown["text"], signature if isinstance(signature, str) else None)


def _output_part(block: object) -> OutputPart | None:
    """Text, a tool call or reasoning; None for citations, images and blocks Bedrock adds."""
    if not isinstance(block, dict):
        return None
    if isinstance(text := block.get("text"), str):
        return Text(text)
    if isinstance(call := block.get("toolUse"), dict):
        arguments = orjson.dumps(call.get("input") or {}).decode()
        return ToolCall(str(call.get("toolUseId") or ""), str(call.get("name") or ""), arguments)
    reasoning = block.get("reasoningContent")
    return _reasoning_part(reasoning) if isinstance(reasoning, dict) else None


def parse_chat(
    body: bytes,
    provider: str,
    *,
    model: str = "",
    make_id: Callable[[], str] = new_id,
    clock: Callable[[], float] = time.time,
) -> ChatResponse:
    """A Converse answer. It has no id or model: the id is made up, the model is the one
    asked for (pass it when known)."""
    answer = json_object(body, provider, "answer")
    output = answer.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        raise errors.upstream_broken(provider, f"answer has no output message: {body[:200]!r}")
    parts = [part for block in content if (part := _output_part(block)) is not None]
    return ChatResponse(
        id=make_id(),
        model=model,
        parts=parts,
        finish=finish_of(answer.get("stopReason"), any(isinstance(p, ToolCall) for p in parts)),
        usage=usage_of(answer.get("usage")) or Usage(),
        created=int(clock()),
        stop_sequence=stop_sequence_of(answer.get("additionalModelResponseFields")),
    )


def chat_stream_decoder(
    provider: str, *, model: str = "", make_id: Callable[[], str] = new_id
) -> ConverseStreamDecoder:
    def read_error(kind: str, message: str) -> ProxyError:
        return _error(_capitalised(kind), message, 0, provider)

    return ConverseStreamDecoder(provider, read_error, model=model, make_id=make_id)


# --- errors -----------------------------------------------------------------------------------

# Bedrock's error types, as the status and neutral code the client gets. Bedrock refusing the
# proxy's own AWS credentials is an authentication failure (401), whatever status AWS used.
_ERRORS: dict[str, tuple[int, str]] = {
    "ValidationException": (400, "invalid_request"),
    "AccessDeniedException": (403, "permission_denied"),
    "UnrecognizedClientException": (401, "authentication_error"),
    "InvalidSignatureException": (401, "authentication_error"),
    "IncompleteSignatureException": (401, "authentication_error"),
    "MissingAuthenticationTokenException": (401, "authentication_error"),
    "ExpiredTokenException": (401, "authentication_error"),
    "ResourceNotFoundException": (404, "not_found"),
    "ThrottlingException": (429, "rate_limited"),
    "ServiceQuotaExceededException": (429, "rate_limited"),
    "ModelNotReadyException": (503, "overloaded"),
    "ServiceUnavailableException": (503, "overloaded"),
    "ModelTimeoutException": (504, "upstream_timeout"),
    "InternalServerException": (500, "upstream_error"),
    "ModelErrorException": (502, "upstream_error"),
    "ModelStreamErrorException": (502, "upstream_error"),
}
_CONTEXT_OVERFLOW = (
    "input is too long",
    "prompt is too long",
    "too many input tokens",
    "context window",
    "context length",
    "context limit",
    "maximum context",
)


def _capitalised(kind: str) -> str:
    """A stream's exception type (`throttlingException`) as HTTP names it."""
    return kind[:1].upper() + kind[1:]


def _status_code(status: int) -> tuple[int, str]:
    """For a type no table knows: what its HTTP status stands for (0: a stream's error)."""
    if not status:
        return 502, "upstream_error"
    return status, code_for_status(status)


def _error(
    kind: str, message: str, status: int, provider: str, retry_after: float | None = None
) -> ProxyError:
    """The error of Bedrock type `kind`, which came with HTTP `status` (0 in a stream)."""
    client_status, code = _ERRORS.get(kind) or _status_code(status)
    text = message or f"Provider '{provider}' answered with {kind or f'HTTP status {status}'}."
    if code == "invalid_request" and any(sign in text.lower() for sign in _CONTEXT_OVERFLOW):
        code = "context_length_exceeded"
    return errors.from_upstream(
        client_status,
        code,
        text,
        retry_after=retry_after,
        detail=f"{provider} HTTP {status or 'stream'}: {kind or 'unknown type'}",
    )


def _error_type(headers: Mapping[str, str], payload: dict[str, Any]) -> str:
    """`x-amzn-ErrorType` is "ThrottlingException:http://internal.amazon.com/coral/…"; some
    AWS front ends put the type in the body's `__type` ("…#ThrottlingException") instead."""
    kind = headers.get("x-amzn-ErrorType") or payload.get("__type") or ""
    return str(kind).partition(":")[0].rpartition("#")[2]


def parse_error(status: int, headers: Mapping[str, str], body: bytes, provider: str) -> ProxyError:
    """Bedrock's error answer in neutral terms: the type from `x-amzn-ErrorType`, the text
    from the body's `message` (`Message` from some services). `headers` must look names up
    case-insensitively, as aiohttp's do."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        payload = {}
    message = payload.get("message") or payload.get("Message")
    err = _error(
        _error_type(headers, payload),
        message if isinstance(message, str) else "",
        status,
        provider,
        retry_after(headers),
    )
    if not payload:
        err.detail += f" body={body[:300]!r}"
    return err


# --- embeddings (InvokeModel) -----------------------------------------------------------------

EmbedKind = Literal["titan", "cohere"]
_TITAN_V2_DIMENSIONS = (256, 512, 1024)
_COHERE_V4_DIMENSIONS = (256, 512, 1024, 1536)
_COHERE_BATCH = 96
_COHERE_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")


def embed_kind(model: str) -> EmbedKind | None:
    """Which InvokeModel body an embedding model takes: Titan Text Embeddings (one text per
    call) or Cohere Embed (up to 96 per call); None for a model this proxy cannot call."""
    if "titan-embed-text" in model or "titan-embed-g1-text" in model:
        return "titan"
    if "cohere.embed" in model:
        return "cohere"
    return None


def _dimensions(request: EmbeddingRequest, allowed: tuple[int, ...]) -> int | None:
    size = request.dimensions
    if size is not None and size not in allowed:
        choices = ", ".join(map(str, allowed))
        raise errors.bad_request(
            f"dimensions: this model makes embeddings of {choices} dimensions only",
            param="dimensions",
        )
    return size


def _titan_bodies(
    texts: list[str], request: EmbeddingRequest, model: str, policy: ParamPolicy
) -> list[bytes]:
    """One body per text. V2 normalises (OpenAI's embeddings are unit vectors) and may be
    asked for fewer dimensions; V1 has neither setting."""
    base: dict[str, Any] = {}
    if "titan-embed-text-v2" in model:
        base["normalize"] = True
        if (size := _dimensions(request, _TITAN_V2_DIMENSIONS)) is not None:
            base["dimensions"] = size
    elif request.dimensions is not None:
        policy.unsupported("dimensions", f"{model} makes embeddings of one size")
    return [orjson.dumps({"inputText": text, **base}) for text in texts]


def _input_type(request: EmbeddingRequest) -> str:
    """Cohere's input_type: `search_document` unless the client sent its own (an extension
    field OpenAI's SDK passes through `extra_body`)."""
    kind = request.extra.get("input_type", "search_document")
    if kind not in _COHERE_INPUT_TYPES:
        raise errors.bad_request(
            f"input_type: expected one of {', '.join(_COHERE_INPUT_TYPES)}", param="input_type"
        )
    return str(kind)


def _cohere_bodies(
    texts: list[str], request: EmbeddingRequest, model: str, policy: ParamPolicy
) -> list[bytes]:
    base: dict[str, Any] = {"input_type": _input_type(request)}
    if "embed-v4" in model:
        if (size := _dimensions(request, _COHERE_V4_DIMENSIONS)) is not None:
            base["output_dimension"] = size
    elif request.dimensions is not None:
        policy.unsupported("dimensions", f"{model} makes embeddings of one size")
    return [
        orjson.dumps({"texts": texts[start : start + _COHERE_BATCH], **base})
        for start in range(0, len(texts), _COHERE_BATCH)
    ]


def build_embed(request: EmbeddingRequest, model: str, policy: ParamPolicy) -> list[bytes]:
    """The InvokeModel bodies that embed every input, in order."""
    kind = embed_kind(model)
    if kind is None:
        raise errors.bad_request(
            f"model: '{model}' is not a Titan Text or Cohere Embed model", param="model"
        )
    texts = [text for text in request.inputs if isinstance(text, str)]
    if len(texts) != len(request.inputs):
        raise errors.bad_request("input: Bedrock embeds text, not token arrays", param="input")
    if request.user is not None:
        policy.unsupported("user")
    for name in request.extra:
        if not (kind == "cohere" and name == "input_type"):
            policy.unsupported(name)
    if kind == "titan":
        return _titan_bodies(texts, request, model, policy)
    return _cohere_bodies(texts, request, model, policy)


def _vectors(answer: dict[str, Any], kind: EmbedKind) -> object:
    """Titan's one `embedding`; Cohere's `embeddings`, a list of vectors or, when embedding
    types were asked for, an object with the float ones under "float"."""
    if kind == "titan":
        return [answer.get("embedding")]
    vectors = answer.get("embeddings")
    return vectors.get("float") if isinstance(vectors, dict) else vectors


def parse_embed(bodies: list[bytes], model: str, *, provider: str = "bedrock") -> EmbeddingResponse:
    """The answers to `build_embed`'s bodies, in the same order, as one response; Titan's
    token counts are summed (Cohere's answers carry none)."""
    kind = embed_kind(model) or "titan"
    vectors: list[list[float]] = []
    tokens = 0
    for body in bodies:
        answer = json_object(body, provider, "embedding answer")
        found = _vectors(answer, kind)
        if not isinstance(found, list) or not all(isinstance(v, list) for v in found):
            raise errors.upstream_broken(provider, f"answer has no embeddings: {body[:200]!r}")
        vectors.extend(found)
        count = answer.get("inputTextTokenCount")
        tokens += count if isinstance(count, int) else 0
    return EmbeddingResponse(model, vectors, Usage(input_tokens=tokens))
