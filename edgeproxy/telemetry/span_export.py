"""Ended spans, sent over OTLP/HTTP in batches from a thread of their own (never the loop).

As OpenTelemetry's BatchSpanProcessor does: an ended span's record joins a bounded buffer
(2048; when it is full, spans are dropped, counted, and the drop logged), and a daemon thread
sends them in batches of up to 512, every second or as soon as 512 wait. There a batch's
records become spans (names and attributes worked out, secrets masked:
telemetry/span_attributes.py), and the batch is one POST, encoded by
telemetry/otlp_protobuf.py or telemetry/otlp_json.py as `protocol` says, over one kept-alive
connection; one the receiver answers 429 or 502-504, or that fails to connect, is retried twice
(after 0.5 s, then 1 s), then dropped and logged. At shutdown, what is held is sent, for at
most `flush_timeout` seconds.

The event loop's share is one append per span; the rest is the thread's, a batch at a time.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Final, Protocol
from urllib.parse import urlsplit

from edgeproxy import __version__
from edgeproxy.telemetry.otlp_json import JsonEncoder
from edgeproxy.telemetry.otlp_protobuf import ProtobufEncoder
from edgeproxy.telemetry.spans import Attributes, Span, SpanRecord
from edgeproxy.telemetry.tracing_settings import TracingSettings

log = logging.getLogger("edgeproxy.tracing")
SCOPE: Final = "edgeproxy"  # the instrumentation scope of every span
MAX_QUEUE: Final = 2048  # as the SDK's BatchSpanProcessor defaults
MAX_BATCH: Final = 512
INTERVAL: Final = 1.0
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_ATTEMPTS = 3


def exporter_for(settings: TracingSettings) -> SpanExporter:
    """The exporter `settings` configure: their endpoint, encoding and headers."""
    resource: Attributes = {
        **dict(settings.resource_attributes),
        "service.name": settings.service_name,
        "telemetry.sdk.name": SCOPE,
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": __version__,
    }
    encode: Encoder = (
        JsonEncoder(resource, SCOPE)
        if settings.protocol == "http/json"
        else ProtobufEncoder(resource, SCOPE)
    )
    headers = {name: secret.reveal() for name, secret in settings.headers}
    return SpanExporter(encode, settings.endpoint, headers)


class Encoder(Protocol):
    content_type: str

    def __call__(self, spans: Sequence[Span]) -> bytes:
        """An OTLP ExportTraceServiceRequest carrying `spans`."""


class OtlpSender:
    """POSTs bodies to `endpoint` over one kept-alive connection, retrying what the receiver
    asks to be retried (its waits cut short by `stop`)."""

    def __init__(
        self,
        endpoint: str,
        headers: Mapping[str, str],
        content_type: str,
        stop: threading.Event,
        timeout: float = 10.0,
    ) -> None:
        url = urlsplit(endpoint)
        self._https = url.scheme == "https"
        self._host = url.hostname or "localhost"
        self._port = url.port or (443 if self._https else 80)
        self._path = (url.path or "/v1/traces") + (f"?{url.query}" if url.query else "")
        self._headers = {**headers, "content-type": content_type}
        self._timeout = timeout
        self._stop = stop
        self._connection: http.client.HTTPConnection | None = None

    def send(self, body: bytes, spans: int) -> bool:
        """Whether the receiver took `body` (carrying `spans` spans); a batch it did not is
        logged as dropped."""
        status: int | None = None
        for attempt in range(_ATTEMPTS):
            if attempt and self._stop.wait(0.5 * 2 ** (attempt - 1)):
                break
            status = self._post(body)
            if status is not None and 200 <= status < 300:
                return True
            if status is not None and status not in _RETRY_STATUSES:
                break
        log.warning(
            "dropped %d spans: the trace receiver answered %s",
            spans,
            status if status is not None else "nothing (connection failed)",
        )
        return False

    def _post(self, body: bytes) -> int | None:
        """The receiver's status, or None when the connection failed (it is then dropped)."""
        connection = self._connect()
        try:
            connection.request("POST", self._path, body, self._headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            return None
        if response.will_close:
            self.close()
        return response.status

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._https:
                self._connection = http.client.HTTPSConnection(
                    self._host,
                    self._port,
                    timeout=self._timeout,
                    context=ssl.create_default_context(),
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class SpanExporter:
    """The buffer of ended spans' records (`add`, on the loop) and the thread that turns them
    into spans and sends them."""

    __slots__ = (
        "_encode",
        "_interval",
        "_queue",
        "_queue_limit",
        "_sender",
        "_stop",
        "_thread",
        "_wake",
        "dropped",
    )

    def __init__(
        self,
        encode: Encoder,
        endpoint: str,
        headers: Mapping[str, str],
        *,
        max_queue: int = MAX_QUEUE,
        interval: float = INTERVAL,
        timeout: float = 10.0,
    ) -> None:
        self._encode = encode
        self._interval = interval
        self._stop = threading.Event()  # set at shutdown: send what is held, then end
        self._sender = OtlpSender(endpoint, headers, encode.content_type, self._stop, timeout)
        self._queue: deque[SpanRecord] = deque()
        self._queue_limit = max_queue
        self._wake = threading.Event()  # a batch is full, or shutdown began
        self.dropped = 0  # spans the full buffer turned away, since the start
        self._thread = threading.Thread(target=self._run, name="edgeproxy-spans", daemon=True)
        self._thread.start()

    def add(self, record: SpanRecord) -> None:
        queue = self._queue
        if len(queue) >= self._queue_limit:
            self.dropped += 1
            return
        queue.append(record)
        if len(queue) == MAX_BATCH:
            self._wake.set()

    def _run(self) -> None:
        reported = 0
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            reported = self._report_drops(reported)
            self._send_all()
        self._send_all()
        self._report_drops(reported)
        self._sender.close()

    def _send_all(self) -> None:
        queue = self._queue
        while queue:
            records = [queue.popleft() for _ in range(min(MAX_BATCH, len(queue)))]
            try:
                body = self._encode([record.span() for record in records])
            except Exception:  # a bug, but not one to stop the thread: later batches still go
                log.exception("dropped %d spans: they could not be encoded", len(records))
                continue
            self._sender.send(body, len(records))

    def _report_drops(self, reported: int) -> int:
        dropped = self.dropped
        if dropped > reported:
            log.warning(
                "dropped %d spans: the buffer of %d was full (the trace receiver is slow or down)",
                dropped - reported,
                self._queue_limit,
            )
        return dropped

    def close(self, flush_timeout: float = 10.0) -> None:
        """Send what is held (for at most `flush_timeout` seconds), then stop the thread."""
        self._stop.set()
        self._wake.set()
        self._thread.join(flush_timeout)
