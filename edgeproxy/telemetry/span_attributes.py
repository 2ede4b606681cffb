"""What a request's spans say: their names and attributes, worked out from the raw values the
request recorded (telemetry/request_spans.py), in the exporter's thread, a batch at a time.

A request records only what it must then (ids, times, the values its attributes come from);
the rest waits for the batch: code run once per request on the event loop costs two to three
times what the same code costs run back to back over a batch. Names and attributes follow the
GenAI semantic conventions (docs/observability.md lists them); every name and string attribute
passes through the configuration's `Redactor`, so a client's model name or request id cannot
carry a credential into a trace. Most of them repeat from request to request (an operation, a
model, a deployment): each is worked out, masked, once and remembered, up to `remembered` of
them; only the request id is masked every time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from edgeproxy.dialects.neutral import Usage
from edgeproxy.operations import CLIENT_PATHS, Operation
from edgeproxy.redact import Redactor
from edgeproxy.routing.router import Deployment
from edgeproxy.telemetry.request_metrics import GENAI_OPERATIONS, GENAI_PROVIDERS
from edgeproxy.telemetry.spans import Attributes

if TYPE_CHECKING:
    from edgeproxy.telemetry.request_spans import AttemptSpan, RequestSpans

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ROUTES = {operation: path for path, operation in CLIENT_PATHS.items()}
# A stream the provider accepted, then failed with its own error event before any content.
STREAM_ERROR_EVENT = "stream_error_event"

Named = tuple[str, Attributes]  # a span's name and attributes


class SpanAttributes:
    """Names and attributes of one tracer's spans, secrets masked by `redactor` (its
    configuration's: it learns no secret later, so what it masked once stays masked)."""

    __slots__ = ("_attempts", "_deployments", "_masked", "_remembered", "_requests", "_text")

    def __init__(self, redactor: Redactor, remembered: int = 4096) -> None:
        self._text: Callable[[str], str] = redactor.text
        self._remembered = remembered
        self._masked: dict[str, str] = {}
        self._requests: dict[tuple[Operation, str], Named] = {}
        self._attempts: dict[tuple[Operation, Deployment, str], Named] = {}
        # Bounded: the configured deployments.
        self._deployments: dict[Deployment, tuple[Attributes, Attributes]] = {}

    def masked(self, value: str) -> str:
        """`value` with every secret masked (remembered: most values repeat)."""
        found = self._masked.get(value)
        if found is None:
            if len(self._masked) >= self._remembered:  # the few that vary add up
                self._masked.clear()
            found = self._masked[value] = self._text(value)
        return found

    def request(self, span: RequestSpans) -> Named:
        """The SERVER span's name and attributes, the request over."""
        name, shared = self._request_named(span.operation, span.model)
        attributes = {
            **shared,
            "edgeproxy.request_id": self._text(span.request_id),
            "edgeproxy.stream": span.stream,
            "http.response.status_code": span.status,
            "edgeproxy.attempts": span.attempts,
        }
        if span.group is not None:
            attributes["edgeproxy.model_group"] = self.masked(span.group.name)
        if span.cache_status is not None:
            attributes["edgeproxy.cache.status"] = self.masked(span.cache_status)
        if span.deployment is not None:
            attributes.update(self.deployment(span.deployment)[0])
        if span.usage is not None:
            _add_usage(attributes, span.usage)
        if span.status >= 500:  # a client's mistake (4xx) is no failure of the proxy's
            attributes["error.type"] = str(span.status)
        return name, attributes

    def attempt(self, span: AttemptSpan) -> Named:
        """A CLIENT span's name and attributes, the attempt over."""
        name, shared = self._attempt_named(span.request.operation, span.deployment, span.model)
        attributes = dict(shared)
        if span.status:
            attributes["http.response.status_code"] = span.status
        error = _attempt_error(span)
        if error is not None:
            attributes["error.type"] = error
        if span.usage is not None:
            _add_usage(attributes, span.usage)
        return name, attributes

    def cache_lookup(self, status: str | None) -> Named:
        """The cache lookup span's name and attributes (`status`: its outcome, if any)."""
        name = self.masked("cache lookup")
        return name, {} if status is None else {"edgeproxy.cache.status": self.masked(status)}

    def deployment(self, deployment: Deployment) -> tuple[Attributes, Attributes]:
        """Which provider and deployment `deployment` is, and where its attempts go (its host
        and port), secrets masked: worked out once each."""
        found = self._deployments.get(deployment)
        if found is None:
            text = self._text
            config = deployment.provider.config
            who: Attributes = {
                "gen_ai.provider.name": text(GENAI_PROVIDERS.get(config.kind, config.kind)),
                "edgeproxy.provider": text(config.name),
                "edgeproxy.deployment": text(deployment.name),
            }
            url = urlsplit(config.base_url)
            where: Attributes = {}
            if url.hostname:
                where["server.address"] = text(url.hostname)
                where["server.port"] = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
            found = self._deployments[deployment] = (who, where)
        return found

    def _request_named(self, operation: Operation, model: str) -> Named:
        known = (operation, model)
        found = self._requests.get(known)
        if found is None:
            if len(self._requests) >= self._remembered:
                self._requests.clear()
            name = GENAI_OPERATIONS[operation.label]
            found = self._requests[known] = (
                self._text(f"{name} {model}"),
                {
                    "gen_ai.operation.name": self._text(name),
                    "gen_ai.request.model": self._text(model),
                    "http.request.method": "POST",
                    "http.route": self._text(_ROUTES[operation]),
                },
            )
        return found

    def _attempt_named(self, operation: Operation, deployment: Deployment, model: str) -> Named:
        known = (operation, deployment, model)
        found = self._attempts.get(known)
        if found is None:
            if len(self._attempts) >= self._remembered:
                self._attempts.clear()
            name = GENAI_OPERATIONS[operation.label]
            who, where = self.deployment(deployment)
            found = self._attempts[known] = (
                self._text(f"{name} {model}"),
                {
                    "gen_ai.operation.name": self._text(name),
                    "gen_ai.request.model": self._text(model),
                    "http.request.method": "POST",
                    **who,
                    **where,
                },
            )
        return found


def _attempt_error(span: AttemptSpan) -> str | None:
    """What went wrong with an attempt (its `error.type`), None when nothing did."""
    if span.error is not None:  # no HTTP answer (the proxy's error code), or an exception
        return span.error
    if span.status >= 400:
        return str(span.status)
    if span.status and not span.success:
        return STREAM_ERROR_EVENT
    return None


def _add_usage(attributes: Attributes, usage: Usage) -> None:
    attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
    attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
