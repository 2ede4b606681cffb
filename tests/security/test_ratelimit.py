"""The rate-limit rules and the one-process limiter, on a manual clock: exact counts under
concurrency, refills, parallel slots, all-or-nothing checks, token reconciliation, and the
headers of a 429 in OpenAI's and Anthropic's words."""

from __future__ import annotations

import asyncio
import sys
import types

import pytest

from edgeproxy.security.ratelimit import (
    Admission,
    Check,
    Limits,
    LocalLimiter,
    Quota,
    go_duration,
    rate_limit_headers,
    rfc3339,
    tiktoken_counter,
    token_estimate,
)
from tests.support.clock import ManualClock

KEY = "key:k1"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def limiter(clock: ManualClock) -> LocalLimiter:
    return LocalLimiter(clock)


async def passes(limiter: LocalLimiter, checks: list[Check], tokens: int, count: int) -> int:
    """How many of `count` simultaneous requests are admitted."""
    results = await asyncio.gather(*(limiter.admit(checks, tokens) for _ in range(count)))
    return sum(result.allowed for result in results)


# (limits, tokens per request, how many of 100 simultaneous requests pass)
EXACT = [
    pytest.param(Limits(rpm=10), 0, 10, id="rpm"),
    pytest.param(Limits(tpm=1000), 100, 10, id="tpm"),
    pytest.param(Limits(tpm=1000), 7, 142, id="tpm-uneven"),
    pytest.param(Limits(parallel=7), 0, 7, id="parallel"),
    pytest.param(Limits(rpm=10, tpm=550, parallel=50), 100, 5, id="tightest-wins"),
    pytest.param(Limits(rpm=7), 0, 7, id="rpm-not-dividing-60"),
]


@pytest.mark.parametrize(("limits", "tokens", "expected"), EXACT)
async def test_exactly_the_limit_passes_out_of_simultaneous_requests(
    limiter: LocalLimiter, limits: Limits, tokens: int, expected: int
) -> None:
    count = max(100, expected + 10)
    assert await passes(limiter, [(KEY, limits)], tokens, count) == expected


async def test_a_refused_rpm_request_fits_exactly_after_its_retry_after(
    limiter: LocalLimiter, clock: ManualClock
) -> None:
    checks = [(KEY, Limits(rpm=10))]
    assert await passes(limiter, checks, 0, 10) == 10
    refused = await limiter.admit(checks)
    assert (refused.allowed, refused.reason, refused.scope, refused.limit) == (
        False,
        "rate_limited",
        KEY,
        "rpm",
    )
    assert refused.retry_after == pytest.approx(6.0)
    clock.advance(5.99)
    assert not (await limiter.admit(checks)).allowed
    clock.advance(0.01)
    assert await passes(limiter, checks, 0, 5) == 1


async def test_a_full_minute_refills_the_whole_bucket_and_no_more(
    limiter: LocalLimiter, clock: ManualClock
) -> None:
    checks = [(KEY, Limits(rpm=10))]
    assert await passes(limiter, checks, 0, 10) == 10
    clock.advance(3600)
    assert await passes(limiter, checks, 0, 100) == 10


async def test_a_steady_client_gets_its_whole_tpm(
    limiter: LocalLimiter, clock: ManualClock
) -> None:
    """TPM 6000 refills 100 tokens a second: a client asking every half second gets the full
    bucket at once, then every refill, so over ten minutes exactly 6000 + 10 * 6000 tokens."""
    checks = [(KEY, Limits(tpm=6000))]
    admitted = 50 * await passes(limiter, checks, 50, 200)
    for _ in range(1200):
        clock.advance(0.5)
        admitted += 50 * await passes(limiter, checks, 50, 3)
    assert admitted == 6000 + 10 * 6000


async def test_a_parallel_slot_is_freed_by_release_once(limiter: LocalLimiter) -> None:
    checks = [(KEY, Limits(parallel=2))]
    first, second = [await limiter.admit(checks) for _ in range(2)]
    refused = await limiter.admit(checks)
    assert (refused.allowed, refused.limit, refused.retry_after) == (False, "parallel", 1.0)
    await first.grant.release()
    await first.grant.release()  # idempotent: frees one slot, not two
    assert await passes(limiter, checks, 0, 5) == 1
    await second.grant.release()
    assert await passes(limiter, checks, 0, 5) == 1


async def test_a_refused_check_consumes_nothing_in_any_scope(limiter: LocalLimiter) -> None:
    roomy, full = ("key:k1", Limits(rpm=10, tpm=1000)), ("team:t", Limits(rpm=3))
    assert await passes(limiter, [full], 0, 3) == 3
    refused = await limiter.admit([roomy, full], 100)
    assert (refused.allowed, refused.scope) == (False, "team:t")
    assert await passes(limiter, [roomy], 100, 20) == 10


async def test_the_refusal_names_the_limit_with_the_longest_wait(
    limiter: LocalLimiter,
) -> None:
    key, team = ("key:k1", Limits(rpm=10)), ("team:t", Limits(tpm=600))
    assert await passes(limiter, [key, team], 60, 10) == 10
    refused = await limiter.admit([key, team], 300)
    # key: 1 request over, 6 s; team: 300 tokens over at 10 a second, 30 s
    assert (refused.scope, refused.limit, refused.retry_after) == ("team:t", "tpm", 30.0)


async def test_the_headers_describe_the_most_constraining_scope(
    limiter: LocalLimiter,
) -> None:
    checks = [("key:k1", Limits(rpm=100, tpm=500)), ("team:t", Limits(rpm=10, tpm=10_000))]
    admitted = await limiter.admit(checks, 100)
    assert admitted.requests == Quota(limit=10, remaining=9, reset=6.0)
    assert admitted.tokens == Quota(limit=500, remaining=400, reset=12.0)


async def test_reconcile_refunds_an_overestimate(limiter: LocalLimiter) -> None:
    checks = [(KEY, Limits(tpm=1000))]
    admitted = await limiter.admit(checks, 800)
    assert not (await limiter.admit(checks, 800)).allowed
    await admitted.grant.reconcile(150)
    await admitted.grant.reconcile(150)  # the total is 150, however often it is said
    assert (await limiter.admit(checks, 850)).allowed
    assert not (await limiter.admit(checks, 1)).allowed


async def test_reconcile_charges_an_underestimate_as_debt(
    limiter: LocalLimiter, clock: ManualClock
) -> None:
    checks = [(KEY, Limits(tpm=1000))]
    admitted = await limiter.admit(checks, 100)
    await admitted.grant.reconcile(1600)
    refused = await limiter.admit(checks, 0)
    assert (refused.allowed, refused.limit, refused.tokens) == (
        False,
        "tpm",
        Quota(limit=1000, remaining=0, reset=96.0),
    )
    assert refused.retry_after == pytest.approx(36.0)  # 600 tokens over, 1000 a minute
    clock.advance(36.0)
    assert (await limiter.admit(checks, 0)).allowed


async def test_a_refund_never_fills_a_bucket_beyond_its_capacity(
    limiter: LocalLimiter, clock: ManualClock
) -> None:
    checks = [(KEY, Limits(tpm=1000))]
    admitted = await limiter.admit(checks, 1000)
    clock.advance(60)
    await admitted.grant.reconcile(0)
    assert await passes(limiter, checks, 100, 20) == 10


async def test_a_request_larger_than_the_tpm_never_fits(limiter: LocalLimiter) -> None:
    refused = await limiter.admit([(KEY, Limits(tpm=1000))], 1001)
    assert (refused.allowed, refused.reason, refused.retry_after) == (False, "too_large", 0.0)
    assert all(name != "retry-after" for name, _ in rate_limit_headers("openai", refused))


async def test_unlimited_scopes_and_empty_checks_always_pass(limiter: LocalLimiter) -> None:
    assert await passes(limiter, [(KEY, Limits())], 10**9, 100) == 100
    admitted = await limiter.admit([])
    assert (admitted.allowed, admitted.requests, admitted.tokens) == (True, None, None)


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="rpm must be at least 1"):
        Limits(rpm=0)


def test_a_negative_estimate_is_refused(limiter: LocalLimiter) -> None:
    with pytest.raises(ValueError, match="negative"):
        limiter.admit_now([(KEY, Limits(tpm=10))], -1)


async def test_idle_scopes_are_forgotten(limiter: LocalLimiter, clock: ManualClock) -> None:
    await limiter.admit([("key:gone", Limits(rpm=10))])
    held = await limiter.admit([("key:held", Limits(parallel=1))])
    clock.advance(60)
    for _ in range(1024):
        await limiter.admit([("key:busy", Limits(rpm=10**6))])
    assert limiter.scopes == 2  # key:held keeps its slot, key:busy is not refilled yet
    await held.grant.release()


# --- headers -----------------------------------------------------------------------------------

REFUSED = Admission(
    allowed=False,
    reason="rate_limited",
    retry_after=5.2,
    scope=KEY,
    limit="rpm",
    requests=Quota(limit=10, remaining=0, reset=60.0),
    tokens=Quota(limit=40_000, remaining=39_000, reset=1.5),
)


def test_openai_headers_use_openai_names_and_go_durations() -> None:
    assert rate_limit_headers("openai", REFUSED) == [
        ("x-ratelimit-limit-requests", "10"),
        ("x-ratelimit-limit-tokens", "40000"),
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-remaining-tokens", "39000"),
        ("x-ratelimit-reset-requests", "1m0s"),
        ("x-ratelimit-reset-tokens", "1.5s"),
        ("retry-after", "6"),
        ("retry-after-ms", "5200"),
    ]


def test_anthropic_headers_use_anthropic_names_and_rfc3339_instants() -> None:
    now = 1_761_393_600.0  # 2025-10-25T12:00:00Z
    assert rate_limit_headers("anthropic", REFUSED, now=now) == [
        ("anthropic-ratelimit-requests-limit", "10"),
        ("anthropic-ratelimit-requests-remaining", "0"),
        ("anthropic-ratelimit-requests-reset", "2025-10-25T12:01:00Z"),
        ("anthropic-ratelimit-tokens-limit", "40000"),
        ("anthropic-ratelimit-tokens-remaining", "39000"),
        ("anthropic-ratelimit-tokens-reset", "2025-10-25T12:00:02Z"),
        ("retry-after", "6"),
        ("retry-after-ms", "5200"),
    ]


def test_other_dialects_and_admitted_requests_get_only_what_applies() -> None:
    assert rate_limit_headers("gemini", REFUSED) == [
        ("retry-after", "6"),
        ("retry-after-ms", "5200"),
    ]
    admitted = Admission(True, "ok", requests=Quota(10, 9, 6.0))
    assert rate_limit_headers("openai", admitted) == [
        ("x-ratelimit-limit-requests", "10"),
        ("x-ratelimit-remaining-requests", "9"),
        ("x-ratelimit-reset-requests", "6s"),
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.0004, "1ms"),
        (0.12, "120ms"),
        (0.999, "999ms"),
        (1.0, "1s"),
        (8.64, "8.64s"),
        (33.023, "33.023s"),
        (60.0, "1m0s"),
        (172.8, "2m52.8s"),
        (360.0, "6m0s"),
        (3723.25, "1h2m3.25s"),
        (3600.0, "1h0m0s"),
    ],
)
def test_go_duration_writes_resets_as_openai_does(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_rfc3339_rounds_up_to_the_second() -> None:
    assert rfc3339(1_761_393_600.2) == "2025-10-25T12:00:01Z"
    assert rfc3339(1_761_393_600.0) == "2025-10-25T12:00:00Z"


# --- token estimates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chars", "max_tokens", "messages", "prompt_tokens", "expected"),
    [
        (0, None, 0, None, 0),
        (1, None, 0, None, 1),
        (400, None, 0, None, 100),
        (401, 256, 0, None, 101 + 256),
        (400, 256, 3, None, 100 + 12 + 256),
        (400, 256, 3, 90, 90 + 12 + 256),
    ],
)
def test_token_estimate(
    chars: int, max_tokens: int | None, messages: int, prompt_tokens: int | None, expected: int
) -> None:
    estimate = token_estimate(chars, max_tokens, messages=messages, prompt_tokens=prompt_tokens)
    assert estimate == expected


def test_tiktoken_counts_prompts_when_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    class Encoding:
        def encode_ordinary(self, text: str) -> list[int]:
            return list(range(len(text.split())))

    fake = types.ModuleType("tiktoken")
    fake.get_encoding = lambda name: Encoding()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    counter = tiktoken_counter()
    assert counter is not None
    assert counter("three little words") == 3


def test_without_tiktoken_there_is_no_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # import fails
    assert tiktoken_counter() is None


def test_an_encoding_that_does_not_load_gives_no_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(name: str) -> object:
        raise OSError("no network")

    fake = types.ModuleType("tiktoken")
    fake.get_encoding = unavailable  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    assert tiktoken_counter() is None
