"""SigV4 signs exactly as AWS's official test suite says, encodes Bedrock model ids twice in
the canonical path, keeps secrets out of reprs, and refreshes botocore credentials off the
event loop, once, and only near expiry."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from multidict import CIMultiDict

from edgeproxy.config_reader import Secret
from edgeproxy.providers.aws_auth import (
    AwsCredentials,
    BotocoreCredentials,
    CredentialsError,
    SigningKeyCache,
    StaticCredentials,
    botocore_available,
    canonical_query,
    canonical_request,
    canonical_uri,
    derive_signing_key,
    from_environment,
    sign_request,
)

SUITE = Path(__file__).parent.parent / "data" / "sigv4"
SUITE_CASES = sorted(path.stem for path in SUITE.glob("*.req"))
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
EXAMPLE = AwsCredentials("AKIDEXAMPLE", Secret(SECRET))
SUITE_TIME = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)


@dataclass
class SuiteRequest:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    session_token: str | None


def suite_request(case: str) -> SuiteRequest:
    """A `.req` file: request line, headers (indented lines continue a value), blank, body."""
    head, _, body = (SUITE / f"{case}.req").read_text(encoding="utf-8").partition("\n\n")
    request_line, *lines = head.rstrip("\n").split("\n")
    method, _, rest = request_line.partition(" ")
    target = rest.rpartition(" ")[0]
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1].isspace():
            name, value = headers[-1]
            headers[-1] = (name, f"{value}\n{line}")
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    # The token is part of the credentials: the suite shows it in the canonical request.
    token = next(
        (
            line.partition(":")[2]
            for line in expected(case, "creq").split("\n")
            if line.startswith("x-amz-security-token:")
        ),
        None,
    )
    url = f"https://example.amazonaws.com{target}"
    return SuiteRequest(method, url, headers, body.encode(), token)


def expected(case: str, kind: str) -> str:
    return (SUITE / f"{case}.{kind}").read_text(encoding="utf-8")


def suite_credentials(request: SuiteRequest) -> AwsCredentials:
    token = Secret(request.session_token) if request.session_token else None
    return AwsCredentials("AKIDEXAMPLE", Secret(SECRET), token)


def signed_headers(authorization: str) -> list[str]:
    return authorization.split("SignedHeaders=")[1].split(",", maxsplit=1)[0].split(";")


# ── the official test suite ──────────────────────────────────────────────────────────────────


def test_the_suite_is_all_there() -> None:
    assert len(SUITE_CASES) == 33
    assert {"get-vanilla", "post-x-www-form-urlencoded", "get-utf8"} <= set(SUITE_CASES)


@pytest.mark.parametrize("case", SUITE_CASES)
def test_canonical_request_matches_the_suite(case: str) -> None:
    request = suite_request(case)
    headers = list(request.headers)
    if request.session_token and not any(n.lower() == "x-amz-security-token" for n, _ in headers):
        headers.append(("X-Amz-Security-Token", request.session_token))
    body_hash = hashlib.sha256(request.body).hexdigest()
    canonical, _ = canonical_request(request.method, request.url, headers, body_hash)
    assert canonical == expected(case, "creq")


@pytest.mark.parametrize("case", SUITE_CASES)
def test_authorization_matches_the_suite(case: str) -> None:
    request = suite_request(case)
    added = sign_request(
        request.method,
        request.url,
        request.headers,
        request.body,
        credentials=suite_credentials(request),
        region="us-east-1",
        service="service",
        now=SUITE_TIME,
        sign_content_sha256=False,  # the suite predates the header; Bedrock accepts either
        keys=SigningKeyCache(),
    )
    assert added["authorization"] == expected(case, "authz")
    assert added["x-amz-date"] == "20150830T123600Z"


def test_a_multidict_keeps_its_repeated_headers() -> None:
    request = suite_request("get-header-value-order")
    added = sign_request(
        request.method,
        request.url,
        CIMultiDict(request.headers),
        request.body,
        credentials=EXAMPLE,
        region="us-east-1",
        service="service",
        now=SUITE_TIME,
        sign_content_sha256=False,
    )
    assert added["authorization"] == expected("get-header-value-order", "authz")


def test_the_documented_iam_example_signs_to_its_published_signature() -> None:
    # docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
    added = sign_request(
        "GET",
        "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        b"",
        credentials=EXAMPLE,
        region="us-east-1",
        service="iam",
        now=SUITE_TIME,
        sign_content_sha256=False,
    )
    assert added["authorization"].endswith(
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    )


def test_the_derived_signing_key_matches_the_documented_one() -> None:
    key = derive_signing_key(SECRET, "20150830", "us-east-1", "iam")
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"


# ── Bedrock ──────────────────────────────────────────────────────────────────────────────────

CONVERSE_URL = (
    "https://bedrock-runtime.us-east-1.amazonaws.com"
    "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
)
CONVERSE_BODY = b'{"messages":[{"role":"user","content":[{"text":"Hello"}]}]}'
CONVERSE_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
BEDROCK_TIME = datetime(2024, 6, 20, 9, 30, tzinfo=UTC)
# Both recorded from botocore 1.44.5's SigV4Auth (canonical_request, string_to_sign, signature)
# for the same request, with X-Amz-Content-SHA256 and the token set as headers in the second.
BOTOCORE_PLAIN = "59cceeceefdb56e1d9e753acf9f1eb766301324a8fd9fba352c770c584e02ac5"
BOTOCORE_WITH_TOKEN = "e186a046635712057b9a38c94b9f3802e86196eb7451a5a718fdeb35145cb450"


def sign_converse(credentials: AwsCredentials, *, content_sha256: bool) -> dict[str, str]:
    return sign_request(
        "POST",
        CONVERSE_URL,
        CONVERSE_HEADERS,
        CONVERSE_BODY,
        credentials=credentials,
        region="us-east-1",
        service="bedrock",
        now=BEDROCK_TIME,
        sign_content_sha256=content_sha256,
    )


def sign_converse_with(headers: dict[str, str]) -> dict[str, str]:
    return sign_request(
        "POST",
        CONVERSE_URL,
        headers,
        CONVERSE_BODY,
        credentials=EXAMPLE,
        region="us-east-1",
        service="bedrock",
        now=BEDROCK_TIME,
    )


def test_a_bedrock_model_id_is_encoded_a_second_time_in_the_canonical_path() -> None:
    canonical, _ = canonical_request("POST", CONVERSE_URL, [("host", "h")], "0" * 64)
    assert canonical.split("\n")[1] == (
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse"
    )


def test_a_bedrock_request_signs_as_botocore_signs_it() -> None:
    added = sign_converse(EXAMPLE, content_sha256=False)
    assert added == {
        "x-amz-date": "20240620T093000Z",
        "authorization": (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240620/us-east-1/bedrock/aws4_request, "
            f"SignedHeaders=accept;content-type;host;x-amz-date, Signature={BOTOCORE_PLAIN}"
        ),
    }


def test_session_keys_add_a_signed_token_and_the_signed_body_hash() -> None:
    credentials = AwsCredentials(
        "AKIDEXAMPLE", Secret(SECRET), Secret("IQoJb3JpZ2luX2VjEXAMPLETOKEN")
    )
    added = sign_converse(credentials, content_sha256=True)
    assert added["x-amz-security-token"] == "IQoJb3JpZ2luX2VjEXAMPLETOKEN"
    assert added["x-amz-content-sha256"] == hashlib.sha256(CONVERSE_BODY).hexdigest()
    assert signed_headers(added["authorization"]) == [
        "accept",
        "content-type",
        "host",
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-security-token",
    ]
    assert added["authorization"].endswith(f"Signature={BOTOCORE_WITH_TOKEN}")


def test_long_term_keys_send_no_token() -> None:
    added = sign_converse(EXAMPLE, content_sha256=True)
    assert "x-amz-security-token" not in added
    assert "x-amz-security-token" not in signed_headers(added["authorization"])
    assert "x-amz-content-sha256" in signed_headers(added["authorization"])


# ── canonical pieces ─────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("", "/"),
        ("/", "/"),
        (
            "/model/amazon.titan-embed-text-v2:0/invoke",
            "/model/amazon.titan-embed-text-v2%3A0/invoke",
        ),
        ("/model/m%3A0/converse-stream", "/model/m%253A0/converse-stream"),
        ("/a%20b/", "/a%2520b/"),
        ("/a b", "/a%20b"),
        ("/a%2Fb", "/a%252Fb"),
        ("/-._~AZaz09", "/-._~AZaz09"),
        ("/a/./b/../c/", "/a/c/"),
        ("/../a", "/a"),
        ("//a//b", "/a/b"),
        ("/\u00e9", "/%C3%A9"),
    ],
)
def test_canonical_uri_normalises_and_encodes_each_segment_again(path: str, canonical: str) -> None:
    assert canonical_uri(path) == canonical


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("", ""),
        ("b=2&a=1", "a=1&b=2"),
        ("a=2&a=10&a=1", "a=1&a=10&a=2"),
        ("key", "key="),
        ("a=b c", "a=b%20c"),
        ("a+b=1", "a%2Bb=1"),
        ("a=%7e%2f", "a=~%2F"),
        ("a=%ff", "a=%FF"),
        ("x=1&&y=2", "x=1&y=2"),
        ("sig=a=b", "sig=a%3Db"),
    ],
)
def test_canonical_query_is_sorted_and_rfc3986_encoded(query: str, canonical: str) -> None:
    assert canonical_query(query) == canonical


@pytest.mark.parametrize(
    ("url", "host"),
    [
        (
            "https://bedrock-runtime.us-east-1.amazonaws.com/x",
            "bedrock-runtime.us-east-1.amazonaws.com",
        ),
        ("https://Example.COM:443/x", "example.com"),
        ("http://example.com:80/x", "example.com"),
        ("http://127.0.0.1:8080/x", "127.0.0.1:8080"),
        ("https://user:pw@example.com:8443/x", "example.com:8443"),
    ],
)
def test_host_comes_from_the_url_as_an_http_client_sends_it(url: str, host: str) -> None:
    canonical, _ = canonical_request("GET", url, [], "0" * 64)
    assert f"\nhost:{host}\n" in canonical


def test_header_values_are_trimmed_and_repeated_names_joined_in_order() -> None:
    headers = [("X-B", "  two   words "), ("x-a", "1"), ("X-A", "2"), ("Host", "h")]
    canonical, signed = canonical_request("GET", "https://h/", headers, "0" * 64)
    assert "host:h\nx-a:1,2\nx-b:two words\n" in canonical
    assert signed == "host;x-a;x-b"


def test_headers_a_hop_may_rewrite_are_not_signed() -> None:
    plain = sign_converse_with({"Content-Type": "application/json"})
    hops = {"Content-Type": "application/json", "User-Agent": "x", "Connection": "close"}
    assert sign_converse_with(hops) == plain


def test_the_callers_own_auth_headers_are_replaced_not_signed_twice() -> None:
    plain = sign_converse_with({"Content-Type": "application/json"})
    stale = {
        "Content-Type": "application/json",
        "X-Amz-Date": "19990101T000000Z",
        "Authorization": "AWS4-HMAC-SHA256 old",
        "X-Amz-Security-Token": "old",
    }
    assert sign_converse_with(stale) == plain


def test_the_signing_time_is_taken_in_utc() -> None:
    paris = timezone(timedelta(hours=2))
    local = sign_request(
        "GET",
        "https://h/",
        {},
        b"",
        credentials=EXAMPLE,
        region="us-east-1",
        service="s",
        now=BEDROCK_TIME.astimezone(paris),
    )
    assert local["x-amz-date"] == "20240620T093000Z"


def test_a_naive_signing_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sign_request(
            "GET",
            "https://h/",
            {},
            b"",
            credentials=EXAMPLE,
            region="us-east-1",
            service="s",
            now=datetime(2024, 1, 1),
        )


# ── the signing-key cache ────────────────────────────────────────────────────────────────────


class CountingDerive:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, str]] = []

    def __call__(self, secret: str, date: str, region: str, service: str) -> bytes:
        self.calls.append((secret, date, region, service))
        return derive_signing_key(secret, date, region, service)


def test_signing_the_same_scope_again_reuses_the_derived_key() -> None:
    derive = CountingDerive()
    keys = SigningKeyCache(derive)
    first = [keys.get(SECRET, "20240620", "us-east-1", "bedrock") for _ in range(3)]
    assert first == [derive_signing_key(SECRET, "20240620", "us-east-1", "bedrock")] * 3
    assert len(derive.calls) == 1


@pytest.mark.parametrize(
    "other",
    [
        ("another-secret", "20240620", "us-east-1", "bedrock"),
        (SECRET, "20240621", "us-east-1", "bedrock"),
        (SECRET, "20240620", "eu-west-1", "bedrock"),
        (SECRET, "20240620", "us-east-1", "sts"),
    ],
)
def test_a_new_secret_date_region_or_service_derives_a_new_key(
    other: tuple[str, str, str, str],
) -> None:
    derive = CountingDerive()
    keys = SigningKeyCache(derive)
    assert keys.get(SECRET, "20240620", "us-east-1", "bedrock") != keys.get(*other)
    assert len(derive.calls) == 2


def test_requests_signed_through_one_cache_derive_the_key_once() -> None:
    derive = CountingDerive()
    keys = SigningKeyCache(derive)
    for body in (b"a", b"b", b"c"):
        sign_request(
            "POST",
            CONVERSE_URL,
            CONVERSE_HEADERS,
            body,
            credentials=EXAMPLE,
            region="us-east-1",
            service="bedrock",
            now=BEDROCK_TIME,
            keys=keys,
        )
    assert derive.calls == [(SECRET, "20240620", "us-east-1", "bedrock")]


def test_the_cache_is_bounded() -> None:
    derive = CountingDerive()
    keys = SigningKeyCache(derive, max_entries=2)
    for date in ("20240101", "20240102", "20240103", "20240101"):
        keys.get(SECRET, date, "us-east-1", "bedrock")
    assert len(derive.calls) == 4  # the third entry cleared the table, so the first is redone


# ── credentials and sources ──────────────────────────────────────────────────────────────────


def test_credentials_never_show_the_secret_or_the_token() -> None:
    credentials = AwsCredentials("AKIDEXAMPLE", Secret(SECRET), Secret("TOKEN-VALUE"))
    for text in (repr(credentials), str(credentials), repr(StaticCredentials(credentials))):
        assert "AKIDEXAMPLE" in text
        assert SECRET not in text and "TOKEN-VALUE" not in text


async def test_static_credentials_always_give_the_same_keys() -> None:
    source = StaticCredentials(EXAMPLE)
    assert await source.get() is EXAMPLE
    assert await source.get() is EXAMPLE


@pytest.mark.parametrize(
    ("env", "credentials"),
    [
        ({}, None),
        ({"AWS_SESSION_TOKEN": "t"}, None),
        ({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, None),
        (
            {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s"},
            AwsCredentials("AKID", Secret("s")),
        ),
        (
            {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": ""},
            AwsCredentials("AKID", Secret("s")),
        ),
        (
            {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"},
            AwsCredentials("AKID", Secret("s"), Secret("t")),
        ),
    ],
)
async def test_environment_keys_become_static_credentials(
    env: dict[str, str], credentials: AwsCredentials | None
) -> None:
    source = from_environment(env)
    if credentials is None:
        assert source is None
    else:
        assert source is not None
        assert await source.get() == credentials


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"AWS_ACCESS_KEY_ID": "AKID"}, "AWS_SECRET_ACCESS_KEY"),
        ({"AWS_SECRET_ACCESS_KEY": "s"}, "AWS_ACCESS_KEY_ID"),
    ],
)
def test_half_a_key_pair_in_the_environment_is_an_error(env: dict[str, str], missing: str) -> None:
    with pytest.raises(CredentialsError, match=f"{missing} is not set"):
        from_environment(env)


def test_the_module_imports_without_botocore() -> None:
    code = (
        "import sys; sys.modules['botocore'] = None\n"
        "from edgeproxy.providers import aws_auth\n"
        "assert not aws_auth.botocore_available()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_botocore_is_found_when_installed() -> None:
    pytest.importorskip("botocore")
    assert botocore_available()


# ── BotocoreCredentials, with a stub in place of botocore's session ──────────────────────────

T0 = datetime(2024, 6, 20, 9, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class StubBotocoreCredentials:
    """Like botocore's refreshable credentials: each freeze hands out the next keys."""

    lifetime: timedelta | None = timedelta(hours=1)
    clock: Clock = field(default_factory=Clock)
    threads: list[int] = field(default_factory=list)
    _expiry_time: datetime | None = None

    def get_frozen_credentials(self) -> SimpleNamespace:
        self.threads.append(threading.get_ident())
        number = len(self.threads)
        if self.lifetime is not None:
            self._expiry_time = self.clock.now + self.lifetime
        return SimpleNamespace(
            access_key=f"ASIA{number}", secret_key=f"secret-{number}", token=f"token-{number}"
        )


@dataclass
class StubSession:
    credentials: StubBotocoreCredentials | None
    lookups: int = 0

    def get_credentials(self) -> StubBotocoreCredentials | None:
        self.lookups += 1
        return self.credentials


def botocore_source(
    lifetime: timedelta | None = timedelta(hours=1),
) -> tuple[BotocoreCredentials, StubBotocoreCredentials, Clock]:
    clock = Clock()
    stub = StubBotocoreCredentials(lifetime, clock)
    return BotocoreCredentials(StubSession(stub), clock=clock), stub, clock


async def test_botocore_resolution_runs_off_the_event_loop_thread() -> None:
    source, stub, _ = botocore_source()
    credentials = await source.get()
    assert credentials == AwsCredentials(
        "ASIA1", Secret("secret-1"), Secret("token-1"), T0 + timedelta(hours=1)
    )
    assert stub.threads and threading.get_ident() not in stub.threads


@pytest.mark.parametrize(
    ("later", "refreshed"),
    [
        (timedelta(0), False),
        (timedelta(minutes=54, seconds=59), False),
        (timedelta(minutes=55), True),  # 5 minutes before expiry
        (timedelta(hours=2), True),
    ],
)
async def test_botocore_keys_are_refreshed_only_near_expiry(
    later: timedelta, refreshed: bool
) -> None:
    source, stub, clock = botocore_source()
    first = await source.get()
    clock.now = T0 + later
    second = await source.get()
    assert (second != first) is refreshed
    assert len(stub.threads) == (2 if refreshed else 1)


async def test_keys_without_an_expiry_are_never_refreshed() -> None:
    source, stub, clock = botocore_source(lifetime=None)
    first = await source.get()
    clock.now = T0 + timedelta(days=365)
    assert await source.get() is first
    assert first.expiry is None and len(stub.threads) == 1


async def test_concurrent_requests_share_one_refresh() -> None:
    source, stub, clock = botocore_source()
    results = await asyncio.gather(*(source.get() for _ in range(20)))
    assert len(stub.threads) == 1 and len(set(map(id, results))) == 1
    clock.now = T0 + timedelta(minutes=58)
    results = await asyncio.gather(*(source.get() for _ in range(20)))
    assert len(stub.threads) == 2
    assert {credentials.access_key_id for credentials in results} == {"ASIA2"}


async def test_a_naive_botocore_expiry_is_taken_as_utc() -> None:
    source, stub, _ = botocore_source(lifetime=None)
    stub._expiry_time = datetime(2024, 6, 20, 10, 0)
    credentials = await source.get()
    assert credentials.expiry == datetime(2024, 6, 20, 10, 0, tzinfo=UTC)


async def test_no_credentials_anywhere_is_a_clear_error() -> None:
    source = BotocoreCredentials(StubSession(None))
    with pytest.raises(CredentialsError, match="no AWS credentials found"):
        await source.get()


async def test_botocore_is_imported_only_when_keys_are_first_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = StubSession(StubBotocoreCredentials())
    fake_botocore_session = SimpleNamespace(get_session=lambda: session)
    monkeypatch.setitem(sys.modules, "botocore.session", fake_botocore_session)
    source = BotocoreCredentials()
    assert session.lookups == 0
    assert (await source.get()).access_key_id == "ASIA1"
    assert session.lookups == 1
