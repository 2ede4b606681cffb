"""AWS Bedrock Runtime: Converse and ConverseStream for chat, InvokeModel for embeddings.

Every call is translated (no client speaks Bedrock's dialect) and signed with SigV4 over the
exact bytes that go on the wire: model ids such as `anthropic.claude-3-5-sonnet-20240620-v1:0`
travel percent-encoded (`%3A`), and the pool sends the URL exactly as it was signed.
Credentials come from the config, the environment, or botocore's standard chain
(IRSA web identity, profiles, instance roles) when the `bedrock` extra is installed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from edgeproxy import errors
from edgeproxy.config_reader import Reader
from edgeproxy.dialects import bedrock
from edgeproxy.dialects.neutral import EmbeddingRequest, EmbeddingResponse
from edgeproxy.dialects.params import ParamPolicy, UnsupportedParams
from edgeproxy.dialects.translation import EmbeddingTranslator, UpstreamChat
from edgeproxy.operations import Operation
from edgeproxy.providers.aws_auth import (
    AwsCredentials,
    BotocoreCredentials,
    CredentialsError,
    CredentialSource,
    StaticCredentials,
    botocore_available,
    from_environment,
    sign_request,
)
from edgeproxy.providers.base import OutboundRequest, path_segment
from edgeproxy.providers.http import BufferedUpstream, HttpProvider, HttpUpstream
from edgeproxy.providers.settings import Given, KindRules, ProviderConfig
from edgeproxy.wire.urls import url_problem

EMBEDDING_CALLS_IN_FLIGHT = 8  # per client request, so one large batch cannot take the pool


def _embedding_bodies(request: EmbeddingRequest, model: str, policy: ParamPolicy) -> bytes:
    """Every InvokeModel body, as one JSON array the provider splits again."""
    return b"[" + b",".join(bedrock.build_embed(request, model, policy)) + b"]"


def _embedding_answers(body: bytes, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
    return bedrock.parse_embed([orjson.dumps(item) for item in orjson.loads(body)], model)


def credential_source(config: ProviderConfig) -> CredentialSource:
    """The config's keys, else the environment's, else botocore's chain."""
    aws = config.aws
    if aws.access_key_id and aws.secret_access_key:
        return StaticCredentials(
            AwsCredentials(aws.access_key_id, aws.secret_access_key, aws.session_token)
        )
    from_env = from_environment(os.environ)
    if from_env is not None:
        return from_env
    if botocore_available():
        return BotocoreCredentials()
    raise CredentialsError("no AWS credentials in the config or the environment")


def _endpoint(values: Mapping[str, Any]) -> str:
    return f"https://bedrock-runtime.{values['aws'].region}.amazonaws.com"


def _authenticated(given: Given) -> bool:
    """Keys in the config or the environment, else botocore's standard chain (IRSA web
    identity, profiles, instance roles) when the extra is installed."""
    aws = given.raw.get("aws")
    if isinstance(aws, dict) and aws.get("access_key_id"):
        return True
    if given.env.get("AWS_ACCESS_KEY_ID") and given.env.get("AWS_SECRET_ACCESS_KEY"):
        return True
    return botocore_available()


def _check_region(r: Reader, values: Mapping[str, Any], path: str) -> None:
    region = values["aws"].region
    if region and url_problem(_endpoint(values), dns_name=True):
        r.fail(f"{path}.aws.region", f"expected an AWS region such as us-east-1, got {region!r}")


class BedrockProvider(HttpProvider):
    rules = KindRules(
        _endpoint,
        frozenset({"aws"}),
        _authenticated,
        (
            "aws",
            "no AWS credentials: give aws.access_key_id and aws.secret_access_key, set "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or install edgeproxy[bedrock] for the "
            "standard AWS chain (IRSA, profiles, instance roles)",
        ),
        check=_check_region,
    )
    operations = frozenset()  # no client speaks Bedrock's dialect: everything is translated

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._credentials: CredentialSource | None = None

    def auth_headers(self) -> dict[str, str]:
        return {}  # each request is signed in `send`

    @property
    def chat_codec(self) -> UpstreamChat:
        return bedrock

    async def open(self) -> None:
        await super().open()
        self._credentials = credential_source(self.config)

    def url_for(self, request: OutboundRequest) -> str:
        model = path_segment(request.model)
        if request.operation is Operation.EMBEDDINGS:
            action = "invoke"
        else:
            action = "converse-stream" if request.stream else "converse"
        return f"{self.config.base_url}/model/{model}/{action}"

    def embedding_translator(self, mode: UnsupportedParams) -> EmbeddingTranslator:
        return EmbeddingTranslator(
            _embedding_bodies, _embedding_answers, bedrock.parse_error, self.name, mode
        )

    async def send(self, request: OutboundRequest) -> HttpUpstream | BufferedUpstream:
        if request.operation is Operation.EMBEDDINGS:
            return await self._embed(request)
        return await self._signed_post(request, self.url_for(request), request.body)

    async def _signed_post(self, request: OutboundRequest, url: str, body: bytes) -> HttpUpstream:
        headers = self.request_headers(request)
        headers.update(await self._signature(url, headers, body))
        return await self.post(request, url, headers, body)

    async def _embed(self, request: OutboundRequest) -> HttpUpstream | BufferedUpstream:
        """One InvokeModel call per body (Titan embeds one text per call), a few at a time;
        the first failure is the answer, else the bodies come back as one JSON array."""
        url = self.url_for(request)
        calls = asyncio.Semaphore(EMBEDDING_CALLS_IN_FLIGHT)

        async def call(body: bytes) -> HttpUpstream:
            async with calls:
                return await self._signed_post(request, url, body)

        bodies = [orjson.dumps(item) for item in orjson.loads(request.body)]
        replies = await asyncio.gather(*(call(body) for body in bodies), return_exceptions=True)
        failure = next((r for r in replies if isinstance(r, BaseException)), None)
        failed = next((r for r in replies if isinstance(r, HttpUpstream) and r.status >= 300), None)
        for reply in replies:
            if isinstance(reply, HttpUpstream) and reply is not failed:
                reply.close()
        if failure is not None:
            raise failure
        if failed is not None:
            return failed
        answers = [await r.read() for r in replies if isinstance(r, HttpUpstream)]
        first = replies[0]
        headers = first.headers if isinstance(first, HttpUpstream) else {}
        return BufferedUpstream(200, headers, b"[" + b",".join(answers) + b"]")

    async def _signature(self, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        if self._credentials is None:
            raise errors.upstream_unreachable(self.name, "provider pool is not open")
        try:
            credentials = await self._credentials.get()
        except Exception as exc:  # botocore's chain raises its own types; none may escape
            raise errors.upstream_unreachable(self.name, f"AWS credentials: {exc!r}") from None
        return sign_request(
            "POST",
            url,
            headers,
            body,
            credentials=credentials,
            region=self.config.aws.region,
            service="bedrock",
            now=datetime.now(UTC),
        )
