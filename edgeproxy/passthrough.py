"""The API paths the proxy does not serve itself, forwarded to one provider as they are.

An application that points its SDK at the proxy sends it every call, not only the LLM calls
the proxy routes: moderations, images, audio, files and batches (OpenAI), message batches
and files (Anthropic). With `passthrough.openai` or `passthrough.anthropic` naming a provider,
such a request (any method, any path under `/v1/` the proxy has no endpoint for, in the
dialect its headers say) goes to that provider with the provider's credential in place of the
client's: path, query, body and its content type and coding as sent. The answer comes back
byte for byte as it arrives (`Relay.forward`), an error answer masked.

Nothing here reads the body: these calls are not routed, cached, screened, metered or charged
(each is counted and logged as a forwarded call), and all callers share the provider's
account (its files, batches). So with virtual keys only the keys `passthrough.keys` lists may
use them (403 for the others). A path is sent only when it cannot climb out of the API root:
no dot segment, no encoded slash, backslash or second escape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import unquote

from edgeproxy import errors, inbound
from edgeproxy.dialects import Dialect
from edgeproxy.dialects.codec import Codec, codec_for
from edgeproxy.errors import ProxyError
from edgeproxy.forwarding import forward_request, forwarded
from edgeproxy.passthrough_settings import PassthroughSettings
from edgeproxy.providers.base import Provider
from edgeproxy.relay import ClientRequest, ClientResponse, Relay
from edgeproxy.security.auth import Authenticate
from edgeproxy.security.settings import KeySettings
from edgeproxy.telemetry.record import Forwarded

API_ROOT: Final = "/v1/"
# A path of plain segments: RFC 3986 path characters, each segment nonempty.
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@%]+)+").fullmatch
_CLIMBING = frozenset({".", ".."})


def sendable(path: str) -> bool:
    """Whether `path` stays under the API root wherever a server decodes it: plain segments,
    none of them a dot segment or hiding a slash or backslash behind percent-encoding."""
    if not path.startswith(API_ROOT) or _PLAIN_PATH(path) is None:
        return False
    for segment in path.split("/")[2:]:
        decoded = unquote(segment)
        if decoded in _CLIMBING or "/" in decoded or "\\" in decoded or "%" in decoded:
            return False
    return True


class Passthrough:
    """Forwards a dialect's other paths to its configured provider; with the access log on,
    each call has its line (who, which path, which provider, how it ended)."""

    __slots__ = ("_authenticate", "_keys", "_providers", "_record", "_relay")

    def __init__(
        self,
        settings: PassthroughSettings,
        providers: Mapping[str, Provider],
        relay: Relay,
        authenticate: Authenticate | None,
        record: Callable[[Forwarded], None],
    ) -> None:
        self._providers: dict[Dialect, Provider] = {}
        for dialect in (Dialect.OPENAI, Dialect.ANTHROPIC):
            name = settings.provider(dialect.value)
            if name is not None:
                self._providers[dialect] = providers[name]
        self._keys = frozenset(settings.keys)
        self._relay = relay
        self._authenticate = authenticate  # None: no virtual keys
        self._record = record  # told of each call once it ended (metrics, access log)

    def takes(self, path: str, dialect: Dialect) -> bool:
        """Whether a request for `path` (one the proxy has no endpoint for) is passed on."""
        return dialect in self._providers and path.startswith(API_ROOT)

    async def __call__(
        self, request: ClientRequest, dialect: Dialect, response: ClientResponse
    ) -> None:
        request_id = inbound.request_id(request.headers)
        codec = codec_for(dialect)
        caller, refusal = await self._caller(request)
        provider: Provider | None = None
        status = 499  # unless the answer ends otherwise: the client left, or the proxy stopped
        try:
            if refusal is not None:
                status = self._relay.fail(response, refusal, codec, request_id)
            else:
                provider = self._providers[dialect]
                status = await self._forward(request, request_id, provider, codec, response)
        finally:
            name = provider.name if provider is not None else None
            call = forwarded(
                request, request_id, caller, "passthrough", provider=name, status=status
            )
            self._record(call)

    async def _forward(
        self,
        request: ClientRequest,
        request_id: str,
        provider: Provider,
        codec: Codec,
        response: ClientResponse,
    ) -> int:
        call = forward_request(request, request_id, provider, request.body)
        try:
            upstream = await provider.forward(call, raw=True)
        except ProxyError as err:
            return self._relay.fail(response, err, codec, request_id)
        return await self._relay.forward(response, upstream, provider.name, codec, request_id)

    async def _caller(self, request: ClientRequest) -> tuple[KeySettings | None, ProxyError | None]:
        """The caller's key (None without virtual keys), and why the request is not sent: an
        unsendable path (404), no key or an unknown one (401), a key not allowed here (403)."""
        if not sendable(request.path):
            return None, errors.route_not_found(request.path[:200])
        if self._authenticate is None:
            return None, None
        caller = await self._authenticate.caller(request.headers)
        if isinstance(caller, ProxyError):
            return None, caller
        if caller.id not in self._keys:
            return caller, errors.passthrough_not_allowed(caller.id)
        return caller, None
