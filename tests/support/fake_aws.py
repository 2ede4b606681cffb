"""AWS plumbing for the fake Bedrock: event-stream framing, SigV4 checking, AWS error replies.

Written apart from edgeproxy on purpose: a fake that shared the proxy's encoder or signer would
agree with the proxy's mistakes. The signature is recomputed by botocore, AWS's own Python
signer, imported only when a check runs so the fake still imports without it.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import struct
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from aiohttp import web

CORAL = "http://internal.amazon.com/coral/com.amazon.coral.service/"  # the auth layer's errors
BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
BAD_TOKEN = "The security token included in the request is invalid."
SKEW = timedelta(minutes=5)
AUTHORIZATION = re.compile(r"AWS4-HMAC-SHA256 (.+)")
STRING = 7  # the event-stream header value type for UTF-8 strings


@dataclass
class AwsKeys:
    """The credentials and scope the fake expects requests to be signed with."""

    access_key: str
    secret_key: str
    session_token: str | None = None
    region: str = "us-east-1"
    service: str = "bedrock"


@dataclass
class Refusal:
    """Why AWS would turn a request away: the error type (x-amzn-ErrorType) and message."""

    kind: str
    message: str
    status: int = 403


def event_message(headers: list[tuple[str, str]], payload: bytes) -> bytes:
    """One `application/vnd.amazon.eventstream` message: prelude, CRCs, string headers."""
    head = b""
    for name, value in headers:
        key, text = name.encode(), value.encode()
        head += bytes((len(key),)) + key + bytes((STRING,)) + struct.pack(">H", len(text)) + text
    prelude = struct.pack(">II", 12 + len(head) + len(payload) + 4, len(head))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return message + struct.pack(">I", zlib.crc32(message))


def request_id(rng: random.Random) -> str:
    """A UUID like AWS request ids, drawn from the fake's seeded generator."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def aws_error(
    status: int, kind: str, message: str, namespace: str, headers: dict[str, str]
) -> web.Response:
    """An AWS REST-JSON error: `{"message"}` with the type in `x-amzn-ErrorType`."""
    return web.Response(
        status=status,
        body=orjson.dumps({"message": message}),
        content_type="application/json",
        headers={"x-amzn-ErrorType": f"{kind}:{namespace}", **headers},
    )


def check_sigv4(request: web.Request, body: bytes, keys: AwsKeys, now: datetime) -> Refusal | None:
    """Verify a SigV4-signed request the way AWS does; None when it would be accepted."""
    fields = _authorization(request)
    if isinstance(fields, Refusal):
        return fields
    amz_date = request.headers["x-amz-date"]
    access_key, _, scope = fields["Credential"].partition("/")
    token = request.headers.get("x-amz-security-token")
    if access_key != keys.access_key or token != keys.session_token:
        return Refusal("UnrecognizedClientException", BAD_TOKEN)
    signed = fields["SignedHeaders"].split(";")
    refusal = (
        _check_time(amz_date, now)
        or _check_scope(scope, amz_date, keys)
        or _check_payload(request, body, signed)
    )
    if refusal is not None:
        return refusal
    canonical, to_sign, signature = _resign(request, body, keys, signed, amz_date)
    if hmac.compare_digest(signature, fields["Signature"]):
        return None
    return Refusal(
        "InvalidSignatureException",
        f"{BAD_SIGNATURE}\n\nThe Canonical String for this request should have been\n"
        f"'{canonical}'\n\nThe String-to-Sign should have been\n'{to_sign}'\n",
    )


def _authorization(request: web.Request) -> dict[str, str] | Refusal:
    """The Credential, SignedHeaders and Signature fields of the Authorization header."""
    auth = request.headers.get("authorization")
    if auth is None:
        return Refusal("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = AUTHORIZATION.fullmatch(auth.strip())
    parts = match[1].split(",") if match else []
    fields = dict(part.strip().partition("=")[::2] for part in parts)
    if {"Credential", "SignedHeaders", "Signature"} <= fields.keys() and (
        "x-amz-date" in request.headers
    ):
        return fields
    return Refusal(
        "IncompleteSignatureException",
        "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
        "parameters and an X-Amz-Date header.",
        400,
    )


def _check_payload(request: web.Request, body: bytes, signed: list[str]) -> Refusal | None:
    """A signed body hash must be the body's: botocore would trust the header as given."""
    claimed = request.headers.get("x-amz-content-sha256")
    if "x-amz-content-sha256" in signed and claimed != hashlib.sha256(body).hexdigest():
        return Refusal("InvalidSignatureException", BAD_SIGNATURE)
    return None


def _check_time(amz_date: str, now: datetime) -> Refusal | None:
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return Refusal("IncompleteSignatureException", f"Invalid X-Amz-Date: {amz_date}", 400)
    stamp = "%Y%m%dT%H%M%SZ"
    if signed_at < now - SKEW:
        return Refusal(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than "
            f"{(now - SKEW).strftime(stamp)} ({now.strftime(stamp)} - 5 min.)",
        )
    if signed_at > now + SKEW:
        return Refusal(
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than "
            f"{(now + SKEW).strftime(stamp)} ({now.strftime(stamp)} + 5 min.)",
        )
    return None


def _check_scope(scope: str, amz_date: str, keys: AwsKeys) -> Refusal | None:
    date, region, service, terminator = ([*scope.split("/"), "", "", "", ""])[:4]
    if region != keys.region:
        return Refusal(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{region}'. ",
        )
    if service != keys.service:
        return Refusal(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{keys.service}'. ",
        )
    if date != amz_date[:8] or terminator != "aws4_request":
        return Refusal("InvalidSignatureException", BAD_SIGNATURE)
    return None


def _resign(
    request: web.Request, body: bytes, keys: AwsKeys, signed: list[str], amz_date: str
) -> tuple[str, str, str]:
    """Botocore's canonical request, string to sign and signature for what was received."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {
        name: ",".join(request.headers.getall(name)) for name in signed if name in request.headers
    }
    # The path exactly as sent: botocore encodes it once more, as AWS does for the signature.
    url = f"http://{request.host}{request.raw_path}"
    resigned = AWSRequest(method=request.method, url=url, headers=headers, data=body)
    resigned.context["timestamp"] = amz_date
    signer = SigV4Auth(
        Credentials(keys.access_key, keys.secret_key, keys.session_token),
        keys.service,
        keys.region,
    )
    canonical = signer.canonical_request(resigned)
    to_sign = signer.string_to_sign(resigned, canonical)
    return canonical, to_sign, signer.signature(to_sign, resigned)
