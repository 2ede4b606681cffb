"""What the endpoints that forward a call unread share (stored_responses.py, passthrough.py):
the client's call as a provider is given it, and the record of how it ended."""

from __future__ import annotations

import asyncio
import time

from edgeproxy.providers.base import ForwardRequest, Provider
from edgeproxy.relay import ClientRequest
from edgeproxy.security.settings import KeySettings
from edgeproxy.telemetry.record import Forwarded


def forward_request(
    request: ClientRequest, request_id: str, provider: Provider, body: bytes
) -> ForwardRequest:
    """`request` (its method, path, query, headers, and `body`) as `provider` is sent it,
    under the provider's total deadline."""
    total = provider.config.timeouts.total
    return ForwardRequest(
        request_id=request_id,
        method=request.method,
        path=request.path,
        query=request.query,
        client_headers=request.headers,
        body=body,
        deadline=None if total is None else asyncio.get_running_loop().time() + total,
    )


def forwarded(
    request: ClientRequest,
    request_id: str,
    caller: KeySettings | None,
    endpoint: str,
    *,
    provider: str | None,
    status: int,
) -> Forwarded:
    """The record of a forwarded call that just ended (`status` 499: the client left)."""
    return Forwarded(
        request_id=request_id,
        key_id=caller.id if caller is not None else None,
        team=caller.team if caller is not None else None,
        endpoint=endpoint,
        method=request.method,
        path=request.path,
        provider=provider,
        status=status,
        duration=time.monotonic() - request.received,
    )
