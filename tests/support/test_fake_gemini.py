"""The fake Gemini upstream speaks the Gemini API as Google documents and sends it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support.fake_upstream import Fail, FakeUpstream, Reply, ToolCall

MODEL = "gemini-2.5-flash"
KEY = "AIza-fake-gemini-key"
ASK = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
CALLS = [
    ToolCall("unused-by-gemini", "get_weather", '{"city": "Paris"}'),
    ToolCall("unused-by-gemini", "get_time", '{"zone": "CET"}'),
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream(seed=3)
    await fake.start()
    yield fake
    await fake.close()


async def post(
    fake: FakeUpstream,
    method: str,
    body: Any = ASK,
    query: str = "",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    url = f"{fake.url}/v1beta/models/{MODEL}:{method}{query}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers or {}) as response,
    ):
        return response.status, dict(response.headers), await response.read()


def sse_frames(raw: bytes) -> list[dict[str, Any]]:
    """Google's framing: every event is one `data: ` line ended by CRLF CRLF, nothing else."""
    assert raw.endswith(b"\r\n\r\n")
    events = raw[: -len(b"\r\n\r\n")].split(b"\r\n\r\n")
    assert all(e.startswith(b"data: ") and b"\n" not in e and b"\r" not in e for e in events)
    return [json.loads(e[len(b"data: ") :]) for e in events]


def parts_of(responses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for r in responses for p in r["candidates"][0].get("content", {}).get("parts", [])]


@pytest.mark.parametrize("split", ["odd", "frames", "bytes:1"])
async def test_stream_is_crlf_framed_sse_whose_text_adds_up_to_the_reply(
    fake: FakeUpstream, split: str
) -> None:
    fake.script("gemini_stream", Reply(text="Streaming é ✓ 🙂 works.", chunks=4, split=split))
    status, headers, raw = await post(fake, "streamGenerateContent", query="?alt=sse")

    responses = sse_frames(raw)
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    assert "".join(p["text"] for p in parts_of(responses)) == "Streaming é ✓ 🙂 works."
    assert len(responses) == 4 and len({r["responseId"] for r in responses}) == 1
    assert [r["candidates"][0].get("finishReason") for r in responses] == [None] * 3 + ["STOP"]
    assert all(r["modelVersion"] == MODEL for r in responses)
    assert b'"text": "Stre' in raw, 'one-line frames use Google\'s `": "` layout'
    assert responses[-1]["usageMetadata"] == {
        "promptTokenCount": 11,
        "candidatesTokenCount": 4,
        "totalTokenCount": 15,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11}],
        "serviceTier": "standard",
    }


async def test_thoughts_are_sent_only_when_asked_for_and_calls_come_whole_and_signed(
    fake: FakeUpstream,
) -> None:
    reply = Reply(text="Let me look.", thinking="The user wants weather.", tool_calls=CALLS)
    fake.default["gemini_stream"] = reply
    ask = {**ASK, "generationConfig": {"thinkingConfig": {"includeThoughts": True}}}

    shown = sse_frames((await post(fake, "streamGenerateContent", ask, "?alt=sse"))[2])
    hidden = sse_frames((await post(fake, "streamGenerateContent", ASK, "?alt=sse"))[2])

    thoughts = [p["text"] for p in parts_of(shown) if p.get("thought")]
    assert "".join(thoughts) == "The user wants weather."
    assert not any(p.get("thought") for p in parts_of(hidden))
    last = shown[-1]["candidates"][0]
    assert last["finishReason"] == "STOP", "Gemini ends a function-calling turn with STOP"
    calls = last["content"]["parts"]
    assert [c["functionCall"] for c in calls] == [
        {"name": "get_weather", "args": {"city": "Paris"}},
        {"name": "get_time", "args": {"zone": "CET"}},
    ]
    assert "thoughtSignature" in calls[0] and "thoughtSignature" not in calls[1]
    usage = hidden[-1]["usageMetadata"]
    assert usage["thoughtsTokenCount"] == len(thoughts)
    assert usage["totalTokenCount"] == 11 + usage["candidatesTokenCount"] + len(thoughts)


async def test_generate_content_answers_one_pretty_printed_response(fake: FakeUpstream) -> None:
    fake.script(
        "gemini_generate", Reply(text="Hello.", finish_reason="MAX_TOKENS", cached_tokens=4)
    )
    status, headers, raw = await post(fake, "generateContent")

    body = json.loads(raw)
    assert status == 200 and headers["Content-Type"] == "application/json; charset=UTF-8"
    assert raw.startswith(b'{\n  "candidates": [\n') and raw.endswith(b"}\n")
    assert body["candidates"] == [
        {
            "content": {"parts": [{"text": "Hello."}], "role": "model"},
            "finishReason": "MAX_TOKENS",
            "index": 0,
        }
    ]
    assert body["usageMetadata"]["cachedContentTokenCount"] == 4
    assert body["modelVersion"] == MODEL and body["responseId"]


async def test_a_failure_mid_stream_is_an_error_object_in_a_data_frame(fake: FakeUpstream) -> None:
    fake.script("gemini_stream", Reply(text="abcdefgh", chunks=4, error_event_after=2))
    status, _, raw = await post(fake, "streamGenerateContent", query="?alt=sse")

    *answers, error = sse_frames(raw)
    assert status == 200 and len(answers) == 2
    assert error == {
        "error": {
            "code": 503,
            "message": fake.gemini.stream_error[2],
            "status": "UNAVAILABLE",
        }
    }


async def test_without_alt_sse_the_stream_is_one_json_array(fake: FakeUpstream) -> None:
    fake.script("gemini_stream", Reply(text="abcdef", chunks=3))
    _, headers, raw = await post(fake, "streamGenerateContent")

    responses = json.loads(raw)
    assert headers["Content-Type"].startswith("application/json")
    assert "".join(p["text"] for p in parts_of(responses)) == "abcdef"


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "INVALID_ARGUMENT"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
    ],
)
async def test_errors_carry_googles_status_name_for_each_http_status(
    fake: FakeUpstream, status: int, name: str
) -> None:
    fake.script("gemini_generate", Fail(status))
    got, headers, raw = await post(fake, "generateContent")

    error = json.loads(raw)["error"]
    assert got == status and headers["Content-Type"] == "application/json; charset=UTF-8"
    assert (error["code"], error["status"]) == (status, name) and error["message"]
    if status == 429:
        retry = [d for d in error["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
        assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "23s"}]
    if status == 404:
        assert error["message"].startswith(f"models/{MODEL} is not found for API version v1beta")


async def test_fail_type_overrides_the_status_name(fake: FakeUpstream) -> None:
    fake.script("gemini_generate", Fail(400, type="FAILED_PRECONDITION", message="No free tier."))
    error = json.loads((await post(fake, "generateContent"))[2])["error"]
    assert error == {"code": 400, "message": "No free tier.", "status": "FAILED_PRECONDITION"}


async def test_api_key_is_checked_like_google_when_one_is_expected(fake: FakeUpstream) -> None:
    fake.gemini.api_key = KEY
    fake.script("gemini_generate", Fail(500))

    missing = await post(fake, "generateContent")
    wrong = await post(fake, "generateContent", headers={"x-goog-api-key": "AIza-wrong"})
    in_url = await post(fake, "generateContent", query=f"?key={KEY}")

    assert missing[0] == 403
    assert json.loads(missing[2])["error"]["status"] == "PERMISSION_DENIED"
    assert wrong[0] == 400
    details = json.loads(wrong[2])["error"]["details"]
    assert details[0]["reason"] == "API_KEY_INVALID"
    assert in_url[0] == 500, "refused requests leave the scripted failure for the next one"
    assert [f"key={KEY}" in r.query for r in fake.requests] == [False, False, True]
    assert fake.calls["gemini_generate"] == 3
    good = await post(fake, "generateContent", headers={"x-goog-api-key": KEY})
    assert good[0] == 200 and fake.requests[-1].headers["x-goog-api-key"] == KEY


async def test_requests_google_would_reject_get_invalid_argument(fake: FakeUpstream) -> None:
    status, _, raw = await post(fake, "generateContent", {"messages": [{"content": "Hi"}]})
    assert status == 400
    assert json.loads(raw)["error"]["message"].startswith("* GenerateContentRequest.contents")


async def test_embeddings_and_token_counts_have_googles_shapes(fake: FakeUpstream) -> None:
    one = {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 4}
    batch = {"requests": [{"model": f"models/{MODEL}", **one}, {"model": f"models/{MODEL}", **one}]}

    embedded = json.loads((await post(fake, "embedContent", one))[2])
    batched = json.loads((await post(fake, "batchEmbedContents", batch))[2])
    counted = json.loads((await post(fake, "countTokens", ASK))[2])
    mismatched = await post(fake, "batchEmbedContents", {"requests": [one]})

    assert len(embedded["embedding"]["values"]) == 4
    assert batched["embeddings"] == [embedded["embedding"]] * 2
    assert counted == {
        "totalTokens": 11,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11}],
    }
    assert mismatched[0] == 400
    assert fake.calls["gemini_embed"] == 1 and fake.calls["gemini_batch_embed"] == 2


async def test_unknown_gemini_paths_answer_in_googles_format(fake: FakeUpstream) -> None:
    status, _, raw = await post(fake, "predictLongRunning")
    assert status == 404 and json.loads(raw)["error"]["status"] == "NOT_FOUND"
