"""The Shield hook: an external guard service asked, before the provider (and optionally after
it), whether a request or an answer may pass. The contract is docs/shield.md.

The call goes over the proxy's own keep-alive pool (edgeproxy.wire.client), since in blocking
mode it is on every request's path, under one hard deadline (`timeout`) that covers waiting for
a connection, connecting, sending and reading the answer, which may be at most
`max_response_bytes`. It is never retried.

Modes:
- blocking: the caller awaits the verdict and refuses on `block`. Without a verdict (timeout,
  error, malformed answer) `fail_open` decides: let the request pass, or refuse it with a 503.
- monitoring: the caller gets `PASSED` at once; the call runs in the background, and its
  verdict is counted, logged when it would have blocked or redacted, and audited.
- audit: as monitoring, but the verdict goes to the audit log only.

Each verdict is recorded under the rule `shield` as what the proxy did: allow, block, redact,
`flag` (a guard's block or redaction that was not enforced) or `error` (no verdict).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal

from edgeproxy import errors
from edgeproxy.background import Background
from edgeproxy.security.audit import AuditLog, DecisionCounter
from edgeproxy.security.shield_contract import (
    PASSED,
    Action,
    MalformedVerdict,
    Phase,
    ShieldVerdict,
    parse_verdict,
    shield_request,
    shield_url,
    texts_sent,
)
from edgeproxy.wire.client import ConnectFailed, UpstreamError, UpstreamPool, UpstreamResponse

log = logging.getLogger(__name__)

Mode = Literal["blocking", "monitoring", "audit"]
MODES: tuple[Mode, ...] = ("blocking", "monitoring", "audit")
RULE = "shield"
DEFAULT_TIMEOUT = 0.1
DEFAULT_MAX_RESPONSE = 1024 * 1024


class ShieldFailure(Exception):
    """No verdict came; `str()` is the failure's short name, recorded in the audit log."""


def refusal(verdict: ShieldVerdict) -> errors.ProxyError | None:
    """The error a blocking caller answers with, or None when the request may go on."""
    if verdict.action != "block":
        return None
    if verdict.failed:
        return errors.guard_unavailable("the Shield hook gave no verdict and fail_open is off")
    return errors.guardrail_blocked(RULE, verdict.message)


class ShieldClient:
    """The hook for one configured guard service; open it before use, close it after the
    background work that may still call it has drained."""

    __slots__ = (
        "_audit",
        "_background",
        "_ca_file",
        "_clock",
        "_counter",
        "_fail_open",
        "_failing",
        "_headers",
        "_max_connections",
        "_max_response",
        "_pool",
        "_timeout",
        "_url",
        "mode",
    )

    def __init__(
        self,
        url: str,
        *,
        background: Background,
        counter: DecisionCounter,
        audit: AuditLog | None = None,
        mode: Mode = "blocking",
        timeout: float = DEFAULT_TIMEOUT,
        fail_open: bool = False,
        token: str | None = None,
        max_connections: int = 64,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE,
        ca_file: str | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"the Shield mode must be one of {', '.join(MODES)}")
        if not timeout > 0:
            raise ValueError("the Shield timeout must be more than 0 seconds")
        self._url = shield_url(url)
        headers = [("Content-Type", "application/json"), ("Accept", "application/json")]
        if token is not None:
            if not token or not all("!" <= char <= "~" for char in token):
                raise ValueError("the Shield token must be printable ASCII without spaces")
            headers.append(("Authorization", f"Bearer {token}"))
        self._headers = headers
        self.mode = mode
        self._timeout = timeout
        self._fail_open = fail_open
        self._background = background
        self._counter = counter
        self._audit = audit
        self._max_connections = max_connections
        self._max_response = max_response_bytes
        self._ca_file = ca_file
        self._clock = clock
        self._pool: UpstreamPool | None = None
        self._failing: str | None = None  # the last failure, until a verdict comes again

    async def open(self) -> None:
        self._pool = UpstreamPool(
            self._url.origin,
            max_connections=self._max_connections,
            connect_timeout=self._timeout,
            ca_file=self._ca_file,
        )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def in_use(self) -> int:
        """Connections lent out of the pool (for leak checks)."""
        return 0 if self._pool is None else self._pool.in_use

    async def check(
        self,
        phase: Phase,
        *,
        request_id: str,
        key_id: str | None,
        team: str | None,
        model: str,
        operation: str,
        texts: Sequence[tuple[str, str]],
    ) -> ShieldVerdict:
        """Ask the guard about `texts` ((role, text) pairs; see shield_request). In blocking
        mode the verdict, after `fail_open`; otherwise PASSED at once, the call going on in
        the background."""
        body = shield_request(
            phase,
            request_id=request_id,
            key_id=key_id,
            team=team,
            model=model,
            operation=operation,
            texts=texts,
        )
        sent = texts_sent(phase, texts)
        if self.mode == "blocking":
            return await self._decide(body, sent, phase, request_id, key_id)
        self._background.spawn(
            f"shield-{self.mode}", self._decide(body, sent, phase, request_id, key_id)
        )
        return PASSED

    async def _decide(
        self, body: bytes, sent: int, phase: Phase, request_id: str, key_id: str | None
    ) -> ShieldVerdict:
        started = self._clock()
        failure: str | None = None
        try:
            verdict = await self._verdict(body, sent)
        except ShieldFailure as exc:
            failure = str(exc)
            passes = self._fail_open or self.mode != "blocking"
            latency = self._clock() - started
            action: Action = "allow" if passes else "block"
            verdict = ShieldVerdict(action, (), None, failed=True, latency=latency)
        else:
            verdict = replace(verdict, latency=self._clock() - started)
        self._note_health(failure)
        self._record(verdict, failure, phase, request_id, key_id)
        return verdict

    async def _verdict(self, body: bytes, sent: int) -> ShieldVerdict:
        answer = await self._ask(body)
        try:
            return parse_verdict(answer, sent)
        except MalformedVerdict as exc:
            log.debug("a malformed Shield verdict: %s", exc)
            raise ShieldFailure("malformed") from None

    async def _ask(self, body: bytes) -> bytes:
        """The body of the guard's 200 answer, all of it by the deadline; ShieldFailure
        otherwise."""
        pool = self._pool
        if pool is None:
            raise ShieldFailure("closed")
        deadline = asyncio.get_running_loop().time() + self._timeout
        response: UpstreamResponse | None = None
        try:
            response = await pool.request(
                "POST", self._url.target, self._headers, body, deadline=deadline
            )
            return await self._answer(response, deadline)
        except TimeoutError:  # waiting for a connection, connecting, or the answer
            raise ShieldFailure("timeout") from None
        except ConnectFailed as exc:
            raise ShieldFailure("timeout" if exc.timed_out else "unreachable") from None
        except UpstreamError:
            raise ShieldFailure("broken") from None
        finally:
            if response is not None:
                response.release()  # closes the connection unless the answer was read whole

    async def _answer(self, response: UpstreamResponse, deadline: float) -> bytes:
        if response.status != 200:
            raise ShieldFailure("status")
        headers = response.headers
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            raise ShieldFailure("content_type")
        if headers.get("content-encoding", "identity").lower() != "identity":
            raise ShieldFailure("content_type")
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_response:
            raise ShieldFailure("too_large")
        parts = []
        size = 0
        while chunk := await response.next_chunk(deadline):
            size += len(chunk)
            if size > self._max_response:
                raise ShieldFailure("too_large")
            parts.append(chunk)
        return b"".join(parts)

    def _note_health(self, failure: str | None) -> None:
        """Log when the guard starts failing and when it answers again, not every call."""
        if failure is not None and self._failing is None:
            log.warning(
                "Shield hook at %s gives no verdict (%s); %s until it answers",
                self._url.origin,
                failure,
                "requests pass" if self._fail_open or self.mode != "blocking" else "refusing",
            )
        elif failure is None and self._failing is not None:
            log.warning("Shield hook at %s answers again", self._url.origin)
        self._failing = failure

    def _record(
        self,
        verdict: ShieldVerdict,
        failure: str | None,
        phase: Phase,
        request_id: str,
        key_id: str | None,
    ) -> None:
        enforced = self.mode == "blocking"
        if failure is not None:
            action = "error"
        elif enforced or verdict.action == "allow":
            action = verdict.action
        else:
            action = "flag"
            if self.mode == "monitoring":
                log.warning(
                    "Shield would %s request %s (%s)",
                    verdict.action,
                    request_id,
                    ",".join(verdict.reasons) or "no reason given",
                )
        if self.mode != "audit":
            self._counter.count(RULE, action)
        if self._audit is None:
            return
        fields: dict[str, str | int | float | bool | None] = {
            "phase": phase,
            "mode": self.mode,
            "latency_ms": round(verdict.latency * 1000, 3),
        }
        if failure is not None:
            fields.update(failure=failure, fail_open=verdict.action == "allow")
        else:
            fields.update(
                verdict=verdict.action,
                reasons=",".join(verdict.reasons) or None,
                score=verdict.score,
            )
        self._audit.record(request_id, key_id, RULE, action, **fields)
