"""The fake Bedrock upstream speaks Bedrock Runtime as AWS documents it and botocore reads it."""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import EventStreamError
from botocore.session import get_session
from yarl import URL

from tests.support.fake_aws import AwsKeys
from tests.support.fake_upstream import Fail, FakeUpstream, Reply, ToolCall
from tests.support.loop_thread import LoopThread

CLAUDE = "anthropic.claude-sonnet-4-5-20250929-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
KEYS = AwsKeys("AKIDFAKEEXAMPLE", "fake/secret/key", region="us-east-1")
ASK = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
CALLS = [
    ToolCall("tooluse_a", "get_weather", '{"city": "Paris"}'),
    ToolCall("tooluse_b", "get_time", '{"zone": "CET"}'),
]
SERVICE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
CORAL = "http://internal.amazon.com/coral/com.amazon.coral.service/"


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream(seed=5)
    await fake.start()
    yield fake
    await fake.close()


def url_of(fake: FakeUpstream, model: str, action: str) -> str:
    return f"{fake.url}/model/{model.replace(':', '%3A')}/{action}"


def signed(url: str, body: bytes, credentials: Credentials, region: str = "us-east-1") -> Any:
    """Headers botocore's own signer puts on this request."""
    request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials, "bedrock", region).add_auth(request)
    return dict(request.headers)


async def post(
    fake: FakeUpstream,
    model: str,
    action: str,
    body: Any = ASK,
    *,
    credentials: Credentials | None = None,
    sent: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """POST with the model id percent-encoded as AWS SDKs send it, signed when asked."""
    url = url_of(fake, model, action)
    data = json.dumps(body).encode()
    headers = signed(url, data, credentials) if credentials else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(URL(url, encoded=True), data=sent or data, headers=headers) as response,
    ):
        return response.status, dict(response.headers), await response.read()


def decode(raw: bytes) -> list[tuple[dict[str, str], Any]]:
    """A reader of application/vnd.amazon.eventstream written from AWS's description."""
    messages, offset = [], 0
    while offset < len(raw):
        total, head_size = struct.unpack_from(">II", raw, offset)
        message = raw[offset : offset + total]
        assert struct.unpack_from(">I", message, 8)[0] == zlib.crc32(message[:8])
        assert struct.unpack_from(">I", message, total - 4)[0] == zlib.crc32(message[:-4])
        headers, position = {}, 12
        while position < 12 + head_size:
            size = message[position]
            name = message[position + 1 : position + 1 + size].decode()
            assert message[position + 1 + size] == 7, "string header values"
            (length,) = struct.unpack_from(">H", message, position + 2 + size)
            start = position + 4 + size
            headers[name] = message[start : start + length].decode()
            position = start + length
        messages.append((headers, json.loads(message[12 + head_size : -4])))
        offset += total
    return messages


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    decoded = decode(raw)
    for headers, payload in decoded:
        assert list(headers.items()) == [
            (":event-type", headers[":event-type"]),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ]
        padding = payload["p"]
        assert "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".startswith(padding)
    return [(h[":event-type"], {k: v for k, v in p.items() if k != "p"}) for h, p in decoded]


@pytest.mark.parametrize("split", ["odd", "frames", "bytes:3"])
async def test_converse_stream_events_index_text_then_each_tool_use(
    fake: FakeUpstream, split: str
) -> None:
    fake.script("bedrock_converse_stream", Reply(text="abcdef", chunks=2, tool_calls=CALLS))
    status, headers, raw = await post(fake, CLAUDE, "converse-stream")

    assert status == 200 and headers["Content-Type"] == "application/vnd.amazon.eventstream"
    assert headers["x-amzn-RequestId"]
    got = events(raw)
    assert [(kind, body.get("contentBlockIndex")) for kind, body in got] == [
        ("messageStart", None),
        ("contentBlockDelta", 0),
        ("contentBlockDelta", 0),
        ("contentBlockStop", 0),
        ("contentBlockStart", 1),
        *[("contentBlockDelta", 1)] * 3,
        ("contentBlockStop", 1),
        ("contentBlockStart", 2),
        *[("contentBlockDelta", 2)] * 3,
        ("contentBlockStop", 2),
        ("messageStop", None),
        ("metadata", None),
    ]
    assert got[0][1] == {"role": "assistant"}
    assert [b["delta"] for _, b in got[1:3]] == [{"text": "abc"}, {"text": "def"}]
    assert got[4][1]["start"] == {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather"}}
    assert "".join(b["delta"]["toolUse"]["input"] for _, b in got[5:8]) == '{"city": "Paris"}'
    assert got[-2][1] == {"stopReason": "tool_use"}
    assert got[-1][1] == {
        "metrics": {"latencyMs": 212},
        "usage": {"inputTokens": 11, "outputTokens": 4, "totalTokens": 15},
    }


async def test_reasoning_streams_as_its_own_block_ending_with_a_signature(
    fake: FakeUpstream,
) -> None:
    fake.script("bedrock_converse_stream", Reply(text="Hi.", chunks=1, thinking="Greet them."))
    got = events((await post(fake, CLAUDE, "converse-stream"))[2])

    assert [(kind, body.get("contentBlockIndex")) for kind, body in got[1:6]] == [
        ("contentBlockDelta", 0),
        ("contentBlockDelta", 0),
        ("contentBlockStop", 0),
        ("contentBlockDelta", 1),
        ("contentBlockStop", 1),
    ]
    assert got[1][1]["delta"] == {"reasoningContent": {"text": "Greet them."}}
    assert set(got[2][1]["delta"]["reasoningContent"]) == {"signature"}
    assert got[4][1]["delta"] == {"text": "Hi."}


async def test_botocores_own_reader_accepts_the_stream_bytes(fake: FakeUpstream) -> None:
    fake.script("bedrock_converse_stream", Reply(tool_calls=CALLS, split="bytes:7"))
    raw = (await post(fake, CLAUDE, "converse-stream"))[2]

    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    messages = list(buffer)
    assert [m.headers[":event-type"] for m in messages] == [kind for kind, _ in events(raw)]


@pytest.mark.parametrize(
    "kind",
    [
        "internalServerException",
        "modelStreamErrorException",
        "validationException",
        "throttlingException",
        "serviceUnavailableException",
    ],
)
async def test_a_failure_mid_stream_is_an_exception_message(fake: FakeUpstream, kind: str) -> None:
    fake.bedrock.stream_exception = (kind, "Too many tokens, please wait.")
    fake.script("bedrock_converse_stream", Reply(chunks=4, error_event_after=2))
    status, _, raw = await post(fake, CLAUDE, "converse-stream")

    *sent, (headers, payload) = decode(raw)
    assert status == 200 and len(sent) == 2
    assert headers == {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    assert payload == {"message": "Too many tokens, please wait."}


async def test_converse_answers_one_sorted_json_body(fake: FakeUpstream) -> None:
    fake.script("bedrock_converse", Reply(text="Hi.", thinking="Hm.", tool_calls=CALLS[:1]))
    status, _, raw = await post(fake, CLAUDE, "converse")

    body = json.loads(raw)
    assert status == 200 and raw.startswith(b'{"metrics":{"latencyMs":212},"output":')
    content = body["output"]["message"]["content"]
    assert content[0]["reasoningContent"]["reasoningText"]["text"] == "Hm."
    assert content[1:] == [
        {"text": "Hi."},
        {"toolUse": {"input": {"city": "Paris"}, "name": "get_weather", "toolUseId": "tooluse_a"}},
    ]
    assert body["stopReason"] == "tool_use"
    assert body["usage"] == {"inputTokens": 11, "outputTokens": 7, "totalTokens": 18}


@pytest.mark.parametrize(
    ("fail", "kind"),
    [
        (Fail(400), "ValidationException"),
        (Fail(403), "AccessDeniedException"),
        (Fail(404), "ResourceNotFoundException"),
        (Fail(408), "ModelTimeoutException"),
        (Fail(424), "ModelErrorException"),
        (Fail(429), "ThrottlingException"),
        (Fail(429, type="ModelNotReadyException"), "ModelNotReadyException"),
        (Fail(500), "InternalServerException"),
        (Fail(503), "ServiceUnavailableException"),
    ],
)
async def test_errors_carry_the_aws_error_type_header_and_a_message(
    fake: FakeUpstream, fail: Fail, kind: str
) -> None:
    fake.script("bedrock_converse", fail)
    status, headers, raw = await post(fake, CLAUDE, "converse")

    assert status == fail.status and headers["Content-Type"] == "application/json"
    assert headers["x-amzn-ErrorType"] == f"{kind}:{SERVICE}"
    assert set(json.loads(raw)) == {"message"} and headers["x-amzn-RequestId"]


async def test_titan_and_cohere_embeddings_answer_in_their_own_shapes(fake: FakeUpstream) -> None:
    titan = {"inputText": "hello", "dimensions": 256, "normalize": True}
    cohere = {"texts": ["a", "b"], "input_type": "search_document"}

    status, headers, raw = await post(fake, TITAN, "invoke", titan)
    body = json.loads(raw)
    assert status == 200 and headers["X-Amzn-Bedrock-Input-Token-Count"] == "11"
    assert len(body["embedding"]) == 256 and body["inputTextTokenCount"] == 11
    assert math.isclose(sum(x * x for x in body["embedding"]), 1.0)
    assert body["embeddingsByType"] == {"float": body["embedding"]}

    body = json.loads((await post(fake, "cohere.embed-english-v3", "invoke", cohere))[2])
    assert body["response_type"] == "embeddings_floats" and body["texts"] == ["a", "b"]
    assert [len(v) for v in body["embeddings"]] == [8, 8] and body["id"]
    assert fake.calls["bedrock_invoke"] == 2


@pytest.mark.parametrize(
    ("model", "body", "complaint"),
    [
        (TITAN, {"input": "hello"}, "required key [inputText] not found"),
        (TITAN, {"inputText": "x", "model": TITAN}, "extraneous key [model] is not permitted"),
        (TITAN, {"inputText": "x", "dimensions": 300}, "300 is not a valid enum value"),
        ("cohere.embed-english-v3", {"texts": ["a"]}, "required key [input_type] not found"),
    ],
)
async def test_invoke_bodies_of_the_wrong_shape_are_validation_errors(
    fake: FakeUpstream, model: str, body: dict[str, Any], complaint: str
) -> None:
    status, headers, raw = await post(fake, model, "invoke", body)
    assert status == 400 and headers["x-amzn-ErrorType"].startswith("ValidationException:")
    assert complaint in json.loads(raw)["message"]


async def test_the_raw_path_keeps_the_percent_encoded_model_id(fake: FakeUpstream) -> None:
    await post(fake, CLAUDE, "converse")
    (request,) = fake.requests
    assert request.raw_path == "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    assert request.path == f"/model/{CLAUDE}/converse" and request.route == "bedrock_converse"


async def test_a_request_signed_by_botocore_is_accepted(fake: FakeUpstream) -> None:
    fake.bedrock.credentials = KEYS
    credentials = Credentials(KEYS.access_key, KEYS.secret_key)
    status, _, _ = await post(fake, TITAN, "invoke", {"inputText": "x"}, credentials=credentials)
    assert status == 200
    assert (
        fake.requests[0]
        .headers["Authorization"]
        .startswith(f"AWS4-HMAC-SHA256 Credential={KEYS.access_key}/")
    )


async def test_a_tampered_body_fails_the_signature_check_like_aws(fake: FakeUpstream) -> None:
    fake.bedrock.credentials = KEYS
    credentials = Credentials(KEYS.access_key, KEYS.secret_key)
    tampered = json.dumps({"inputText": "y"}).encode()
    status, headers, raw = await post(
        fake, TITAN, "invoke", {"inputText": "x"}, credentials=credentials, sent=tampered
    )

    assert status == 403
    assert headers["x-amzn-ErrorType"] == f"InvalidSignatureException:{CORAL}"
    message = json.loads(raw)["message"]
    assert message.startswith("The request signature we calculated does not match")
    assert "/model/amazon.titan-embed-text-v2%253A0/invoke" in message, "canonical path shown"
    assert fake.calls["bedrock_invoke"] == 1


async def test_a_session_token_must_come_with_the_signature(fake: FakeUpstream) -> None:
    fake.bedrock.credentials = AwsKeys(KEYS.access_key, KEYS.secret_key, session_token="tok")
    with_token = Credentials(KEYS.access_key, KEYS.secret_key, "tok")
    without = Credentials(KEYS.access_key, KEYS.secret_key)

    assert (await post(fake, CLAUDE, "converse", credentials=with_token))[0] == 200
    refused = await post(fake, CLAUDE, "converse", credentials=without)
    assert refused[0] == 403
    assert refused[1]["x-amzn-ErrorType"] == f"UnrecognizedClientException:{CORAL}"


async def test_a_signed_body_hash_must_match_the_body_sent(fake: FakeUpstream) -> None:
    fake.bedrock.credentials = KEYS
    url = url_of(fake, TITAN, "invoke")
    data = json.dumps({"inputText": "x"}).encode()
    request = AWSRequest(
        "POST", url, data=data, headers={"X-Amz-Content-SHA256": hashlib.sha256(data).hexdigest()}
    )
    SigV4Auth(Credentials(KEYS.access_key, KEYS.secret_key), "bedrock", KEYS.region).add_auth(
        request
    )
    async with aiohttp.ClientSession() as session:
        for body, status in ((data, 200), (b'{"inputText": "y"}', 403)):
            async with session.post(
                URL(url, encoded=True), data=body, headers=dict(request.headers)
            ) as response:
                assert response.status == status


@pytest.mark.parametrize(
    ("credentials", "region", "kind"),
    [
        (Credentials(KEYS.access_key, "wrong-secret"), "us-east-1", "InvalidSignatureException"),
        (Credentials("AKIDOTHER", KEYS.secret_key), "us-east-1", "UnrecognizedClientException"),
        (Credentials(KEYS.access_key, KEYS.secret_key, "tok"), "us-east-1", "Unrecognized"),
        (Credentials(KEYS.access_key, KEYS.secret_key), "eu-west-1", "InvalidSignatureException"),
    ],
)
async def test_wrong_credentials_are_refused_with_403(
    fake: FakeUpstream, credentials: Credentials, region: str, kind: str
) -> None:
    fake.bedrock.credentials = KEYS
    url = url_of(fake, CLAUDE, "converse")
    data = json.dumps(ASK).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            URL(url, encoded=True), data=data, headers=signed(url, data, credentials, region)
        ) as response,
    ):
        assert response.status == 403
        assert response.headers["x-amzn-ErrorType"].startswith(kind)


async def test_unsigned_and_stale_requests_are_refused(fake: FakeUpstream) -> None:
    fake.bedrock.credentials = KEYS
    unsigned = await post(fake, CLAUDE, "converse")
    fake.bedrock.now = lambda: datetime.now(UTC) + timedelta(minutes=6)
    credentials = Credentials(KEYS.access_key, KEYS.secret_key)
    stale = await post(fake, CLAUDE, "converse", credentials=credentials)

    assert unsigned[0] == 403
    assert unsigned[1]["x-amzn-ErrorType"] == f"MissingAuthenticationTokenException:{CORAL}"
    assert stale[0] == 403 and json.loads(stale[2])["message"].startswith("Signature expired: ")


@pytest.fixture
def threaded_fake() -> Iterator[FakeUpstream]:
    """The fake on its own loop, for botocore's blocking client."""
    with LoopThread() as loop:
        fake = FakeUpstream(seed=7)
        loop.run(fake.start())
        try:
            yield fake
        finally:
            loop.run(fake.close())


def test_botocore_client_reads_every_answer_and_error(threaded_fake: FakeUpstream) -> None:
    fake = threaded_fake
    fake.bedrock.credentials = KEYS
    client = get_session().create_client(
        "bedrock-runtime",
        region_name=KEYS.region,
        endpoint_url=fake.url,
        aws_access_key_id=KEYS.access_key,
        aws_secret_access_key=KEYS.secret_key,
        config=Config(retries={"total_max_attempts": 1}),
    )
    fake.script("bedrock_converse_stream", Reply(text="Hello.", tool_calls=CALLS))
    fake.script("bedrock_converse", Reply(text="Hi."), Fail(429))
    fake.script("bedrock_converse_stream", Reply(chunks=4, error_event_after=2))

    stream = client.converse_stream(modelId=CLAUDE, messages=ASK["messages"])["stream"]
    kinds = [next(iter(event)) for event in stream]
    answer = client.converse(modelId=CLAUDE, messages=ASK["messages"])
    with pytest.raises(client.exceptions.ThrottlingException):
        client.converse(modelId=CLAUDE, messages=ASK["messages"])
    cut = client.converse_stream(modelId=CLAUDE, messages=ASK["messages"])["stream"]
    with pytest.raises(EventStreamError) as cut_off:
        list(cut)
    cut.close()  # a stream cut off mid-way keeps its socket until closed
    embedded = client.invoke_model(modelId=TITAN, body=json.dumps({"inputText": "x"}))
    client.close()

    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    assert cut_off.value.response["Error"]["Code"] == "internalServerException"
    assert answer["output"]["message"]["content"] == [{"text": "Hi."}]
    assert json.loads(embedded["body"].read())["inputTextTokenCount"] == 11
    assert {r.raw_path for r in fake.requests} >= {
        "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream",
        "/model/amazon.titan-embed-text-v2%3A0/invoke",
    }
