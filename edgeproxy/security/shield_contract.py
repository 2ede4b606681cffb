"""The Shield hook's wire contract (docs/shield.md) as pure functions: the request body the
proxy sends, the verdict it accepts, and the operator's URL checked once at load.

Parsing is strict on everything the proxy acts on (an unknown action, a malformed rule id, a
redaction of a text that was never sent are all a malformed verdict, which the caller treats as
a failed call) and lenient only on members it does not know, so a guard may add its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson

VERSION = 1
Phase = Literal["input", "output"]
Action = Literal["allow", "block", "redact"]
Scalar = str | int | float | bool | None
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
ACTIONS: frozenset[str] = frozenset({"allow", "block", "redact"})
MAX_REASONS = 32
MAX_MESSAGE = 500
# Rule ids reach logs, the audit log and dashboards: short tokens, nothing a text could hide in.
RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
# Characters a client-facing message may not hold: C0 and C1 controls (line breaks included).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Several answers (choices) are screened as one output text, joined by this.
OUTPUT_JOIN = "\n\n"


class MalformedVerdict(ValueError):
    """The guard answered, but not with a verdict this contract allows."""


@dataclass(frozen=True, slots=True)
class ShieldVerdict:
    """What the guard decided about one phase of one request.

    `reasons` are the guard's rule ids, `message` its client-safe explanation of a block.
    `failed`: the guard gave no usable verdict (timeout, refused connection, non-200 status,
    malformed or oversized answer); `action` is then what `fail_open` made of that. `latency`
    is seconds from the start of the call to the verdict. `redactions` pairs the index of a
    sent text with the text to use in its place (action `redact` only); `score` is the highest
    score among the reasons, when the guard gave one.
    """

    action: Action
    reasons: tuple[str, ...]
    message: str | None
    failed: bool
    latency: float
    redactions: tuple[tuple[int, str], ...] = ()
    score: float | None = None


# What a caller is given when the hook does not decide on the hot path (monitoring, audit).
PASSED = ShieldVerdict("allow", (), None, failed=False, latency=0.0)


def shield_request(
    phase: Phase,
    *,
    request_id: str,
    key_id: str | None,
    team: str | None,
    model: str,
    operation: str,
    texts: Sequence[tuple[str, str]],
    metadata: Mapping[str, Scalar] | None = None,
) -> bytes:
    """The JSON body of one check. `texts` are (role, text) pairs: the conversation's turns on
    input, the answer's texts on output (sent as one text, joined by a blank line)."""
    body: dict[str, Any] = {
        "version": VERSION,
        "phase": phase,
        "request_id": request_id,
        "key_id": key_id,
        "team": team,
        "model": model,
        "operation": operation,
    }
    if phase == "input":
        for role, _ in texts:
            if role not in ROLES:
                raise ValueError(f"role {role!r} is not one of {sorted(ROLES)}")
        body["messages"] = [{"role": role, "text": text} for role, text in texts]
    elif phase == "output":
        body["output"] = {"text": OUTPUT_JOIN.join(text for _, text in texts)}
    else:
        raise ValueError(f"phase {phase!r} is neither 'input' nor 'output'")
    body["metadata"] = dict(metadata or {})
    return orjson.dumps(body)


def texts_sent(phase: Phase, texts: Sequence[tuple[str, str]]) -> int:
    """How many texts a redaction may refer to: every turn on input, the one output text."""
    return len(texts) if phase == "input" else 1


def parse_verdict(body: bytes, sent: int) -> ShieldVerdict:
    """The verdict in a guard's 200 answer (`sent`: how many texts the request held), with
    `latency` left at 0 for the caller to fill in; MalformedVerdict for anything else."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedVerdict("not JSON") from None
    if not isinstance(answer, dict):
        raise MalformedVerdict("not a JSON object")
    version = answer.get("version", VERSION)
    if isinstance(version, bool) or version != VERSION:
        raise MalformedVerdict("version is not 1")
    action = answer.get("action")
    if action not in ACTIONS:
        raise MalformedVerdict("action is not allow, block or redact")
    reasons, score = _reasons(answer.get("reasons", []))
    redactions = _redactions(answer.get("redactions"), action == "redact", sent)
    return ShieldVerdict(
        action,
        reasons,
        _message(answer.get("message")),
        failed=False,
        latency=0.0,
        redactions=redactions,
        score=score,
    )


def _reasons(value: object) -> tuple[tuple[str, ...], float | None]:
    if not isinstance(value, list) or len(value) > MAX_REASONS:
        raise MalformedVerdict(f"reasons is not a list of at most {MAX_REASONS}")
    rules = []
    top: float | None = None
    for reason in value:
        if not isinstance(reason, dict):
            raise MalformedVerdict("a reason is not an object")
        rule = reason.get("rule")
        if not isinstance(rule, str) or not RULE_ID.fullmatch(rule):
            raise MalformedVerdict("a reason's rule is not a rule id")
        rules.append(rule)
        if "score" in reason:
            score = reason["score"]
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise MalformedVerdict("a reason's score is not a number")
            if not 0 <= score <= 1:
                raise MalformedVerdict("a reason's score is outside [0, 1]")
            top = float(score) if top is None else max(top, float(score))
    return tuple(rules), top


def _redactions(value: object, redact: bool, sent: int) -> tuple[tuple[int, str], ...]:
    if not redact:
        if value is not None:
            raise MalformedVerdict("redactions without action redact")
        return ()
    if not isinstance(value, list) or not value:
        raise MalformedVerdict("action redact without a list of redactions")
    redactions = []
    for item in value:
        if not isinstance(item, dict):
            raise MalformedVerdict("a redaction is not an object")
        index, text = item.get("index"), item.get("text")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < sent:
            raise MalformedVerdict("a redaction's index names no text that was sent")
        if not isinstance(text, str):
            raise MalformedVerdict("a redaction's text is not a string")
        redactions.append((index, text))
    if len({index for index, _ in redactions}) != len(redactions):
        raise MalformedVerdict("two redactions of the same text")
    return tuple(redactions)


def _message(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_MESSAGE:
        raise MalformedVerdict(f"message is not a string of 1 to {MAX_MESSAGE} characters")
    if _CONTROL.search(value):
        raise MalformedVerdict("message holds control characters")
    return value


@dataclass(frozen=True, slots=True)
class ShieldURL:
    """The operator's URL split for the pool: `origin` (scheme://host[:port]) and `target`
    (path and query, sent as they are)."""

    origin: str
    target: str


def shield_url(url: str) -> ShieldURL:
    """Check the configured URL once: percent-encoded (printable ASCII without spaces),
    http(s), a host, no credentials, no fragment. ValueError says what is wrong."""
    if not all("!" <= char <= "~" for char in url):
        raise ValueError("the Shield url must be percent-encoded ASCII without spaces")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsing the port is the check)
    except ValueError:
        raise ValueError("the Shield url has an invalid host or port") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("the Shield url must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("the Shield url has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the Shield url must not hold credentials; configure a token instead")
    if "#" in url:
        raise ValueError("the Shield url must not have a fragment")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return ShieldURL(f"{parts.scheme}://{parts.netloc}", target)
