"""The apps' word on answers: `POST /v1/feedback` with a request id, a score in [0, 1] and an
optional label, turned into a quality average per deployment (see docs/feedback.md).

Feedback is taken only for an answer this proxy served within the window (the ServedLedger),
only once per request id, and (with virtual keys) only from the key that made the request;
a request id that is unknown, expired or another key's is the same 404, so an id's existence
is never confirmed to anyone else. The first word stands: the same feedback sent again (a
retry after a lost answer) is answered as the first was, different feedback is refused (409),
so a score can neither be changed nor stuffed. Each deployment's quality is the mean of its
latest `quality_samples` scores, published on its health record for the `hybrid` strategy
once it has `min_count` of them. A score on an answer from the cache is accepted but counts
for no deployment: none made it.
"""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from edgeproxy import errors, inbound
from edgeproxy.errors import ProxyError
from edgeproxy.routing.health import DeploymentHealth
from edgeproxy.security.settings import KeySettings
from edgeproxy.telemetry.feedback_settings import FeedbackSettings
from edgeproxy.telemetry.served import ServedLedger

FEEDBACK_PATH = "/v1/feedback"
MAX_BODY = 4096
MICROS = 1_000_000  # scores are kept in millionths: sums of integers never drift
_LABEL = re.compile(r"[A-Za-z0-9_.:/\-]{1,64}").fullmatch
_FIELDS = ("request_id", "score", "label")

# Who presents the request: its key, or the refusal (401, 503) to answer with.
Identify = Callable[[Mapping[str, str]], Awaitable[KeySettings | ProxyError]]


class Scores:
    """A deployment's latest scores (millionths) and labels, with their running sum."""

    __slots__ = ("_kept", "_sum", "labels")

    def __init__(self, size: int) -> None:
        self._kept: deque[tuple[int, str | None]] = deque(maxlen=size)
        self._sum = 0
        self.labels: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._kept)

    def add(self, score: int, label: str | None) -> None:
        kept = self._kept
        if len(kept) == kept.maxlen:
            old_score, old_label = kept[0]
            self._sum -= old_score
            if old_label is not None:
                self.labels[old_label] -= 1
                if not self.labels[old_label]:
                    del self.labels[old_label]
        kept.append((score, label))
        self._sum += score
        if label is not None:
            self.labels[label] += 1

    @property
    def mean(self) -> float:
        return self._sum / len(self._kept) / MICROS if self._kept else 0.0


@dataclass(frozen=True, slots=True)
class Accepted:
    """Feedback taken; `counted`: it went into a deployment's quality (not a cache answer)."""

    request_id: str
    score: float
    label: str | None
    counted: bool

    def body(self) -> bytes:
        return orjson.dumps(
            {
                "object": "feedback",
                "request_id": self.request_id,
                "score": self.score,
                "label": self.label,
                "counted": self.counted,
            }
        )


def _score(value: object) -> int | ProxyError:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return errors.missing_field("score", "required: a number from 0 to 1")
    if not 0 <= value <= 1:
        return errors.missing_field("score", "must be from 0 to 1")
    return round(value * MICROS)


def _label(value: object) -> str | ProxyError | None:
    if value is None or (isinstance(value, str) and _LABEL(value)):
        return value
    return errors.missing_field(
        "label", "optional: 1 to 64 letters, digits or _ . : / - (no spaces)"
    )


class Feedback:
    """Scores checked against the served answers, averaged per deployment."""

    __slots__ = ("_health", "_scores", "ledger", "settings")

    def __init__(
        self,
        ledger: ServedLedger,
        settings: FeedbackSettings,
        health: Mapping[str, DeploymentHealth],
    ) -> None:
        self.ledger = ledger
        self.settings = settings
        self._health = health  # where quality is published for routing
        self._scores: dict[str, Scores] = {}

    def submit(
        self, request_id: object, score: object, label: object = None, caller: str | None = None
    ) -> Accepted | ProxyError:
        """Check and take one feedback; `caller`: the id of the key presenting it."""
        if not isinstance(request_id, str) or not inbound.valid_request_id(request_id):
            return errors.missing_field(
                "request_id", "required: the x-request-id of an answer from this proxy"
            )
        micros = _score(score)
        if isinstance(micros, ProxyError):
            return micros
        tag = _label(label)
        if isinstance(tag, ProxyError):
            return tag
        served = self.ledger.find(request_id)
        if served is None or served.key_id != caller:
            return errors.unknown_request_id(request_id, self.ledger.window)
        accepted = Accepted(request_id, micros / MICROS, tag, served.deployment is not None)
        if served.score is not None:
            same = (served.score, served.label) == (micros, tag)
            return accepted if same else errors.feedback_exists(request_id)
        served.score, served.label = micros, tag
        if served.deployment is not None:
            self._add(served.deployment, micros, tag)
        return accepted

    def _add(self, deployment: str, score: int, label: str | None) -> None:
        scores = self._scores.get(deployment)
        if scores is None:
            scores = self._scores[deployment] = Scores(self.settings.quality_samples)
        scores.add(score, label)
        health = self._health.get(deployment)
        if health is not None:
            health.quality = self.quality(deployment)

    def scores(self, deployment: str) -> Scores | None:
        return self._scores.get(deployment)

    def quality(self, deployment: str) -> float | None:
        """The deployment's mean score, or None before it has `min_count` scores."""
        scores = self._scores.get(deployment)
        if scores is None or len(scores) < self.settings.min_count:
            return None
        return scores.mean


class FeedbackEndpoint:
    """`POST /v1/feedback` apart from HTTP: the request's headers and body in, the JSON body
    of a 200 or the ProxyError to render in the client's dialect out. `identify` (with
    virtual keys) tells who presents it, before any other work; `recorded` hands the ledger
    the answers whose records still wait in a batch (telemetry.recorder), so an app can rate
    an answer the moment it has it."""

    __slots__ = ("_feedback", "_identify", "_recorded")

    def __init__(
        self,
        feedback: Feedback,
        identify: Identify | None = None,
        recorded: Callable[[], None] | None = None,
    ) -> None:
        self._feedback = feedback
        self._identify = identify
        self._recorded = recorded

    async def __call__(self, headers: Mapping[str, str], body: bytes) -> bytes | ProxyError:
        caller = None
        if self._identify is not None:
            key = await self._identify(headers)
            if isinstance(key, ProxyError):
                return key
            caller = key.id
        payload = _payload(headers, body)
        if isinstance(payload, ProxyError):
            return payload
        if self._recorded is not None:
            self._recorded()
        answer = self._feedback.submit(
            payload.get("request_id"), payload.get("score"), payload.get("label"), caller
        )
        return answer if isinstance(answer, ProxyError) else answer.body()


def _payload(headers: Mapping[str, str], body: bytes) -> dict[str, Any] | ProxyError:
    """The body as a JSON object of known fields, at most MAX_BODY bytes (decoded)."""
    if len(body) > MAX_BODY:
        return errors.payload_too_large(MAX_BODY)
    try:
        if encoding := headers.get("content-encoding"):
            body = inbound.decoded_body(body, encoding, MAX_BODY)
        payload = orjson.loads(body)
    except ProxyError as err:
        return err
    except orjson.JSONDecodeError as exc:
        return errors.invalid_json(str(exc))
    if not isinstance(payload, dict):
        return errors.bad_request("The request body must be a JSON object.")
    for name in payload:
        if name not in _FIELDS:
            return errors.bad_request(
                f"Unknown field {name[:40]!r}; feedback has {', '.join(_FIELDS)}.", param=name[:40]
            )
    return payload
