"""Google Gemini (the Google AI `generativelanguage` API, v1beta) as an upstream dialect:
generateContent, streamGenerateContent and the embedding methods. The module implements
`translation.UpstreamChat`; the adapter puts the model in the URL
(`/models/{model}:generateContent`), so the bodies never name it, but what the model accepts
is decided from its name:

- Gemini 1.x, 2.0 and Gemma ("legacy"): no thinking settings, no JSON-schema output, no image
  URLs; the only ones that take presence and frequency penalties.
- Gemini 2.5: thinking by `thinkingBudget`; JSON output cannot be combined with functions.
- Gemini 3 and any name this module does not know (newer models, `gemini-flash-latest`):
  thinking by `thinkingLevel`, and function calls sent back must carry their thought
  signature (see `_sign_steps`).

Gemini answers a field a model cannot take with a 400, so such fields go through the policy.
Reading answers, streams and errors is `gemini_stream`'s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import orjson

from edgeproxy import errors
from edgeproxy.dialects.gemini_stream import (
    GenerateStreamDecoder,
    finish_of,
    first_candidate,
    model_of,
    new_id,
    output_parts,
    read_error,
    scrub,
    usage_of,
)
from edgeproxy.dialects.neutral import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Image,
    Message,
    Part,
    Reasoning,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolResult,
    Usage,
)
from edgeproxy.dialects.openai_chat import effort_for
from edgeproxy.dialects.params import ParamPolicy
from edgeproxy.dialects.turns import alternating, call_arguments
from edgeproxy.dialects.upstream import json_object, retry_after
from edgeproxy.errors import ProxyError

Era = Literal["legacy", "2.5", "current"]
# Google's documented stand-in for a function call whose signature was lost (history from an
# OpenAI client, which has no place to keep it, or from another model): Gemini 3 refuses the
# first call of a step without one.
SKIP_SIGNATURE = "skip_thought_signature_validator"
_TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}
_MAX_STOP_SEQUENCES = 5
# A reasoning effort as a Gemini 2.5 thinking budget: Google's own OpenAI-compatible endpoint
# maps low, medium and high to 1k, 8k and 24k; minimal is the smallest budget every 2.5 model
# takes (Flash-Lite's floor). A budget asked for is kept within that floor and the model's
# ceiling (32k for Pro, 24k for the others). No effort and no budget: dynamic (-1).
_EFFORT_BUDGETS = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
_MIN_BUDGET = 512
# The first Gemini 3 Pro knows only the LOW and HIGH thinking levels.
_TWO_LEVELS = {"minimal": "LOW", "low": "LOW", "medium": "HIGH", "high": "HIGH"}
_IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "gif": "image/gif",
}
_MAX_BATCH_EMBEDDINGS = 100


def era(model: str) -> Era:
    """Which generation of Gemini `model` belongs to (see the module docstring)."""
    name = model.removeprefix("models/").lower()
    if name.startswith(("gemini-1.", "gemini-2.0", "gemma-")):
        return "legacy"
    return "2.5" if name.startswith("gemini-2.5") else "current"


# --- contents ---------------------------------------------------------------------------------


def _media_type(url: str) -> str:
    """An image URL's type from its extension (Gemini wants one); JPEG when it has none."""
    path = url.partition("?")[0].partition("#")[0]
    extension = path.rpartition("/")[2].rpartition(".")[2].lower()
    return _IMAGE_TYPES.get(extension, "image/jpeg")


def _image(image: Image, model: str) -> dict[str, Any]:
    """Inline data, or a public https URL that Gemini fetches itself (`fileData`), which
    Gemini 1.x and 2.0 cannot do."""
    if image.data is not None:
        if not image.media_type:
            raise errors.bad_request(
                "messages: an inline image needs its media type", param="messages"
            )
        return {"inlineData": {"mimeType": image.media_type, "data": image.data}}
    url = image.url or ""
    refusal = "other than https ones" if not url.startswith("https://") else ""
    if not refusal and era(model) == "legacy":
        refusal = f"for {model}"
    if refusal:
        raise errors.bad_request(
            f"messages: Gemini cannot fetch image URLs {refusal}; send the image as base64 data",
            param="messages",
        )
    return {"fileData": {"mimeType": image.media_type or _media_type(url), "fileUri": url}}


def _function_response(result: ToolResult, names: dict[str, str]) -> dict[str, Any]:
    """A tool result as a `functionResponse`, which must name the function: OpenAI's tool
    messages carry only the call id, so the name comes from that call earlier in the history.
    The text goes under `output`, or `error` for a failure, the keys Gemini documents for
    `FunctionResponse.response`."""
    name = names.get(result.call_id)
    if name is None:
        raise errors.bad_request(
            f"messages: the tool result for '{result.call_id}' answers no tool call earlier in "
            "the conversation (tool_call_id), and Gemini needs the called function's name",
            param="messages",
        )
    text = "\n".join(part.text for part in result.content if isinstance(part, Text))
    response = {"error" if result.is_error else "output": text}
    return {"functionResponse": {"id": result.call_id, "name": name, "response": response}}


def _user_parts(parts: list[Part], names: dict[str, str], model: str) -> list[dict[str, Any]]:
    """A user turn: function responses first (the turn answering a model's calls must start
    with them), then text and images; a tool result's images follow the responses, since a
    `functionResponse` holds JSON only."""
    responses: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Text) and part.text:
            others.append({"text": part.text})
        elif isinstance(part, Image):
            others.append(_image(part, model))
        elif isinstance(part, ToolResult):
            responses.append(_function_response(part, names))
            others.extend(_image(p, model) for p in part.content if isinstance(p, Image))
    return responses + others


def _model_parts(parts: list[Part], names: dict[str, str]) -> list[dict[str, Any]]:
    """A model turn. Signed thoughts go back as thought parts; a signature alone goes back on
    the part after it (where Gemini gave it), or is left out if none follows. Unsigned
    reasoning (another provider's) and redacted reasoning cannot be verified by Gemini and are
    left out."""
    out: list[dict[str, Any]] = []
    signature: str | None = None
    for part in parts:
        block: dict[str, Any] | None = None
        if isinstance(part, Thinking):
            if part.signature and not part.text:
                signature = part.signature
            elif part.signature:
                out.append({"text": part.text, "thought": True, "thoughtSignature": part.signature})
            continue
        if isinstance(part, Text) and part.text:
            block = {"text": part.text}
        elif isinstance(part, ToolCall):
            names[part.id] = part.name
            call = {"id": part.id, "name": part.name, "args": call_arguments(part)}
            block = {"functionCall": call}
        if block is not None:
            if signature:
                block["thoughtSignature"] = signature
                signature = None
            out.append(block)
    return out


def _sign_steps(turns: list[dict[str, Any]]) -> None:
    """Give the first function call of every model turn a signature if it lost its own:
    Gemini 3 refuses a step whose first call has none (only the current turn is checked, so
    the stand-in costs nothing elsewhere)."""
    for turn in turns:
        if turn["role"] != "model":
            continue
        call = next((part for part in turn["parts"] if "functionCall" in part), None)
        if call is not None and "thoughtSignature" not in call:
            call["thoughtSignature"] = SKIP_SIGNATURE


def _turn(message: Message, names: dict[str, str], model: str) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "assistant":
        return "model", _model_parts(message.parts, names)
    return "user", _user_parts(message.parts, names, model)


def _contents(request: ChatRequest, model: str) -> list[dict[str, Any]]:
    """The turns, roles `user` and `model`. Turns of one role in a row are merged: Gemini
    takes them apart, but the answer to a model's function calls must be the one user turn
    right after it, opening with as many responses as there were calls, and the neutral form
    may split them (tool results, then the user's text)."""
    names: dict[str, str] = {}  # call id → function name, for the results that follow
    turns = alternating(
        (_turn(message, names, model) for message in request.messages),
        lambda part: "functionResponse" in part,
        "parts",
    )
    if not turns:
        raise errors.bad_request(
            "messages: Gemini needs at least one message with content", param="messages"
        )
    if era(model) == "current":
        _sign_steps(turns)
    return turns


# --- tools ------------------------------------------------------------------------------------


def _json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A client's JSON Schema as Gemini's `*JsonSchema` fields take it: whole (they accept
    JSON Schema, unlike the OpenAPI-subset `parameters`/`responseSchema`), but without the
    root `$schema` dialect marker, which is not among the keywords Gemini lists."""
    return {key: value for key, value in schema.items() if key != "$schema"}


def _declaration(tool: Tool) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name}
    if tool.description:
        declaration["description"] = tool.description
    if tool.parameters:
        declaration["parametersJsonSchema"] = _json_schema(tool.parameters)
    return declaration


def _tool_config(request: ChatRequest, policy: ParamPolicy) -> dict[str, Any] | None:
    """`functionCallingConfig`: ANY forces some call, limited to one function by
    `allowedFunctionNames`; NONE keeps the declarations (the history may hold calls)."""
    if request.parallel_tool_calls is False:
        policy.unsupported("parallel_tool_calls", "Gemini cannot limit a turn to one call")
    choice = request.tool_choice
    if choice is None or not request.tools:
        return None
    config: dict[str, Any] = {"mode": _TOOL_CHOICE_MODES[choice.mode]}
    if choice.mode == "tool" and choice.name:
        config["allowedFunctionNames"] = [choice.name]
    return {"functionCallingConfig": config}


# --- generation config ------------------------------------------------------------------------


def _budget(reasoning: Reasoning, model: str) -> int:
    ceiling = 32768 if "pro" in model else 24576
    if reasoning.budget_tokens is not None:
        return min(max(reasoning.budget_tokens, _MIN_BUDGET), ceiling)
    return _EFFORT_BUDGETS[reasoning.effort] if reasoning.effort else -1


def _level(reasoning: Reasoning, model: str) -> str:
    """The effort asked for (or the one nearest the budget) as a `thinkingLevel`."""
    effort = effort_for(reasoning)
    if "gemini-3-pro" in model:
        return _TWO_LEVELS[effort]
    return effort.upper()


def _thinking(request: ChatRequest, model: str, policy: ParamPolicy) -> dict[str, Any] | None:
    """`thinkingConfig`, with the thoughts shown (`includeThoughts`). Gemini 3 takes a level
    (a budget there is only tolerated, and both at once are refused), 2.5 a budget."""
    reasoning = request.reasoning
    if reasoning is None:
        return None
    generation = era(model)
    if generation == "legacy":
        policy.unsupported("reasoning", f"{model} takes no thinking settings")
        return None
    thinking: dict[str, Any] = {"includeThoughts": True}
    if generation == "2.5":
        thinking["thinkingBudget"] = _budget(reasoning, model)
    elif reasoning.effort or reasoning.budget_tokens:
        thinking["thinkingLevel"] = _level(reasoning, model)
    return thinking


def _response_format(
    request: ChatRequest, model: str, policy: ParamPolicy, config: dict[str, Any]
) -> None:
    """JSON output: `responseMimeType`, and the schema as `responseJsonSchema`. Before Gemini
    3, JSON output and function calling cannot be combined; 1.x and 2.0 take no JSON Schema."""
    spec = request.response_format
    if spec is None:
        return
    generation = era(model)
    if request.tools and generation != "current":
        policy.unsupported("response_format", f"{model} cannot combine JSON output with tools")
        return
    if spec.kind == "json_schema" and spec.schema is not None:
        if generation == "legacy":
            policy.unsupported("response_format", f"{model} takes no JSON Schema")
            return
        config["responseJsonSchema"] = _json_schema(spec.schema)
    config["responseMimeType"] = "application/json"


def _sampling(
    request: ChatRequest, model: str, policy: ParamPolicy, config: dict[str, Any]
) -> None:
    """Sampling settings. Gemini 2.5 and later refuse penalties ("Penalty is not enabled"); a
    penalty of 0 changes nothing and is simply not sent."""
    for name, key in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK")):
        if (value := getattr(request, name)) is not None:
            config[key] = value
    if request.seed is not None:
        config["seed"] = request.seed
    for name, key in (
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if not (value := getattr(request, name)):
            continue
        if era(model) == "legacy":
            config[key] = value
        else:
            policy.unsupported(name, f"{model} takes no penalties")


def _generation_config(request: ChatRequest, model: str, policy: ParamPolicy) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    _sampling(request, model, policy, config)
    if stops := [stop for stop in request.stop if stop]:
        if len(stops) > _MAX_STOP_SEQUENCES:
            policy.unsupported("stop", "Gemini takes at most 5 stop sequences")
        else:
            config["stopSequences"] = stops
    _response_format(request, model, policy, config)
    if (thinking := _thinking(request, model, policy)) is not None:
        config["thinkingConfig"] = thinking
    return config


def _unsupported(request: ChatRequest, policy: ParamPolicy) -> None:
    """The fields generateContent has no place for. One answer per request: the neutral
    answer has a single candidate, and only one can be streamed."""
    if request.n is not None and request.n > 1:
        policy.unsupported("n", "one answer per request")
    if request.user is not None:
        policy.unsupported("user")
    if request.metadata:
        policy.unsupported("metadata")
    for name in request.extra:
        policy.unsupported(name)


def build_chat(request: ChatRequest, model: str, policy: ParamPolicy) -> bytes:
    """The generateContent (or streamGenerateContent: the same body) request for `model`."""
    body: dict[str, Any] = {"contents": _contents(request, model)}
    if system := [{"text": text.text} for text in request.system if text.text]:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t) for t in request.tools]}]
    if (tool_config := _tool_config(request, policy)) is not None:
        body["toolConfig"] = tool_config
    if config := _generation_config(request, model, policy):
        body["generationConfig"] = config
    _unsupported(request, policy)
    return orjson.dumps(body)


# --- answers ----------------------------------------------------------------------------------


def _json(body: bytes, provider: str, what: str) -> dict[str, Any]:
    """The answer's JSON object; one that holds an error object reports a failure."""
    value = json_object(body, provider, what)
    error = value.get("error")
    if isinstance(error, dict):
        raise read_error(0, error, provider)
    return value


def parse_chat(
    body: bytes,
    provider: str,
    *,
    make_id: Callable[[], str] = new_id,
    clock: Callable[[], float] = time.time,
) -> ChatResponse:
    """A generateContent answer: its first candidate, `responseId` and `modelVersion`. A
    blocked prompt (no candidate) and a malformed function call raise."""
    answer = _json(body, provider, "answer")
    candidate = first_candidate(answer, provider)
    if candidate is None:
        raise errors.upstream_broken(provider, f"answer has no candidate: {body[:200]!r}")
    response_id = answer.get("responseId")
    response_id = response_id if isinstance(response_id, str) and response_id else make_id()
    content = candidate.get("content")
    parts = output_parts(content.get("parts") if isinstance(content, dict) else None, response_id)
    called = any(isinstance(part, ToolCall) for part in parts)
    return ChatResponse(
        id=response_id,
        model=model_of(answer),
        parts=parts,
        finish=finish_of(candidate.get("finishReason"), called, provider),
        usage=usage_of(answer.get("usageMetadata")) or Usage(),
        created=int(clock()),
    )


def chat_stream_decoder(
    provider: str, *, make_id: Callable[[], str] = new_id
) -> GenerateStreamDecoder:
    return GenerateStreamDecoder(provider, make_id=make_id)


def parse_error(status: int, headers: Mapping[str, str], body: bytes, provider: str) -> ProxyError:
    """Google's error answer (`{"error": {...}}`, or that object in a one-element array as
    the non-SSE stream sends it) in neutral terms. Only the scrubbed `message` reaches the
    client; a body that is not JSON goes to the log only. `headers` must look names up
    case-insensitively, as aiohttp's do."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, list) and payload:
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, dict) else None
    err = read_error(
        status, error if isinstance(error, dict) else {}, provider, retry_after(headers)
    )
    if not isinstance(error, dict):
        err.detail += f" body={scrub(repr(body[:300]))}"
    return err


# --- embeddings -------------------------------------------------------------------------------


def _embed_request(text: str, request: EmbeddingRequest) -> dict[str, Any]:
    item: dict[str, Any] = {"content": {"parts": [{"text": text}]}}
    if request.dimensions is not None:
        item["outputDimensionality"] = request.dimensions
    return item


def build_embed(request: EmbeddingRequest, model: str, policy: ParamPolicy) -> tuple[str, bytes]:
    """The method (`:embedContent` for one input, `:batchEmbedContents` for several, each
    item naming the model as Gemini requires) and its body."""
    texts = [text for text in request.inputs if isinstance(text, str)]
    if len(texts) != len(request.inputs):
        raise errors.bad_request(
            "input: Gemini embeddings take text, not token arrays", param="input"
        )
    if len(texts) > _MAX_BATCH_EMBEDDINGS:
        raise errors.bad_request(
            f"input: Gemini embeds at most {_MAX_BATCH_EMBEDDINGS} texts per request",
            param="input",
        )
    if request.user is not None:
        policy.unsupported("user")
    for name in request.extra:
        policy.unsupported(name)
    if len(texts) == 1:
        return ":embedContent", orjson.dumps(_embed_request(texts[0], request))
    name = "models/" + model.removeprefix("models/")
    items = [{"model": name, **_embed_request(text, request)} for text in texts]
    return ":batchEmbedContents", orjson.dumps({"requests": items})


def _unit(values: list[float]) -> list[float]:
    """`values` scaled to length 1, as OpenAI's embeddings are (Gemini normalises only its
    full-size vectors, not those cut by `outputDimensionality`)."""
    norm = math.sqrt(math.fsum(v * v for v in values))
    return [v / norm for v in values] if norm else values


def _values(embedding: object) -> list[float] | None:
    values = embedding.get("values") if isinstance(embedding, dict) else None
    return values if isinstance(values, list) else None


def parse_embed(
    body: bytes, batch: bool, model: str, *, provider: str = "gemini"
) -> EmbeddingResponse:
    """An embedContent (`embedding`) or batchEmbedContents (`embeddings`) answer. Gemini
    reports no token counts for embeddings, so the usage is left at zero."""
    answer = _json(body, provider, "embedding answer")
    found = answer.get("embeddings") if batch else [answer.get("embedding")]
    vectors = [_values(item) for item in found] if isinstance(found, list) else [None]
    if not vectors or any(vector is None for vector in vectors):
        raise errors.upstream_broken(provider, f"answer has no embeddings: {body[:200]!r}")
    return EmbeddingResponse(model, [_unit(v) for v in vectors if v is not None], Usage())
