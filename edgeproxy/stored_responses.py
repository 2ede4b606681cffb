"""The Responses API's calls on a stored answer, sent where the answer is kept.

`GET /v1/responses/{id}` (whole, or replayed as a stream with `?stream=true`),
`DELETE /v1/responses/{id}`, `POST /v1/responses/{id}/cancel` and
`GET /v1/responses/{id}/input_items` name no model, so they cannot be routed as API calls are.
Each goes to the provider of the deployment that gave the answer, as the proxy remembers it
(routing/affinity.py); the client's query and forwardable headers go with it.

Who may call:
- With virtual keys, only the key the answer was given to, through this pod (a worker asks the
  others what it does not know itself): the provider would hand any answer to anyone holding
  the proxy's own credential, so the proxy vouches for ownership, and an answer it cannot
  vouch for (another key's, or given through another pod) does not exist for the caller (404).
- Without keys, an answer the proxy does not know is asked of each provider that serves the
  Responses API in turn, in configuration order, until one does not answer 404.

The answer is relayed as any reply is (`Relay.answer`): errors masked and rendered in OpenAI's
dialect, a stream passed through event by event, a client that leaves stopping the call. The
output rules of the caller's guardrail policy screen a retrieved or cancelled answer as they
screened it when it was given. These calls cost no tokens: they are no API calls for the
request metrics or budgets, and their cost header says 0; each is counted and logged as a
forwarded call (`record`: edgeproxy_forwarded_requests_total, the access log's `forwarded`
line).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from edgeproxy import errors, inbound
from edgeproxy.dialects import openai_responses
from edgeproxy.dialects.openai_responses import STORED_CALLS
from edgeproxy.errors import ProxyError
from edgeproxy.exchange import Exchange
from edgeproxy.forwarding import forward_request, forwarded
from edgeproxy.operations import Operation
from edgeproxy.providers.base import Provider, Upstream
from edgeproxy.relay import ClientRequest, ClientResponse, Relay
from edgeproxy.routing.affinity import ResponseAffinity
from edgeproxy.routing.router import Deployment, ModelTable
from edgeproxy.security.auth import Authenticate
from edgeproxy.security.screen import Screen
from edgeproxy.security.settings import KeySettings
from edgeproxy.telemetry.record import Forwarded

# A retrieved answer is a Response, its replay the Responses API's stream (its error event).
_CODEC = openai_responses
# The calls whose answer is a Response the output rules screen.
_ANSWERS = frozenset({"retrieve", "cancel"})


class StoredResponses:
    """The calls on stored answers, bound once to a configuration's deployments."""

    __slots__ = (
        "_affinity",
        "_authenticate",
        "_deployments",
        "_providers",
        "_record",
        "_relay",
        "_screen",
    )

    def __init__(
        self,
        table: ModelTable,
        affinity: ResponseAffinity,
        relay: Relay,
        authenticate: Authenticate | None,
        *,
        screen: Screen | None,
        record: Callable[[Forwarded], None],
    ) -> None:
        self._record = record  # told of each call once it ended (metrics, access log)
        self._affinity = affinity
        self._relay = relay
        self._authenticate = authenticate  # None: no virtual keys
        self._screen = screen  # None: no guardrail policy
        self._deployments: dict[str, Deployment] = {
            d.name: d for group in table.groups for d in group.deployments
        }
        # Asked in turn for an answer nobody here remembers: each provider once, in order.
        providers = (d.provider for d in self._deployments.values())
        self._providers = [
            p for p in dict.fromkeys(providers) if Operation.RESPONSES in p.operations
        ]

    async def __call__(
        self,
        request: ClientRequest,
        answer_id: str,
        suffix: str,
        response: ClientResponse,
    ) -> None:
        request_id = inbound.request_id(request.headers)
        caller: KeySettings | None = None
        status, provider = 499, None  # unless the call ends otherwise: the client left
        name = STORED_CALLS.get((request.method, suffix))
        try:
            if name is None:
                err = errors.method_not_allowed(request.method, request.path)
                allow = ", ".join(method for method, s in STORED_CALLS if s == suffix)
                status = self._relay.fail(response, err, _CODEC, request_id, allow=allow)
                return
            if self._authenticate is not None:
                identified = await self._authenticate.caller(request.headers)
                if isinstance(identified, ProxyError):
                    status = self._relay.fail(response, identified, _CODEC, request_id)
                    return
                caller = identified
            status, provider = await self._call(
                request, request_id, answer_id, name, caller=caller, response=response
            )
        finally:
            endpoint = "responses" if name is None else "responses." + name
            call = forwarded(
                request, request_id, caller, endpoint, provider=provider, status=status
            )
            self._record(call)

    async def _call(
        self,
        request: ClientRequest,
        request_id: str,
        answer_id: str,
        name: str,
        *,
        caller: KeySettings | None,
        response: ClientResponse,
    ) -> tuple[int, str | None]:
        """The call (`name`d in STORED_CALLS) sent where the answer is and its answer relayed:
        the status it ended with and the provider that gave it."""
        exchange = Exchange(
            request_id=request_id,
            operation=Operation.RESPONSES,
            headers=request.headers,
            body=b"",
            payload={},
            model="",
            stream=False,
            started=request.received,
        )
        exchange.caller = caller
        provider = None
        try:
            providers = await self._providers_for(answer_id, caller)
            reply, provider = await self._ask(providers, request, request_id, answer_id)
            if not isinstance(reply, ProxyError):
                exchange.stream = reply.is_event_stream
                if self._screen is not None and name in _ANSWERS:
                    self._screen.screen_stored(exchange)
            await self._relay.answer(response, exchange, reply, _CODEC)
        except asyncio.CancelledError:
            self._relay.interrupted(response, exchange, _CODEC)
            raise
        if name == "delete" and exchange.status == 200:
            self._affinity.forget(answer_id)
        return exchange.status, provider

    async def _providers_for(self, answer_id: str, caller: KeySettings | None) -> list[Provider]:
        """Where the answer may be: its deployment's provider when the proxy (this worker or
        another of its pod) remembers it for this caller; with no keys, else every provider
        serving the Responses API."""
        holder = await self._affinity.find(answer_id)
        if holder is not None:
            if holder.key is not None and (caller is None or caller.id != holder.key):
                return []
            deployment = self._deployments.get(holder.deployment)
            if deployment is not None:
                return [deployment.provider]
        return [] if caller is not None else self._providers

    async def _ask(
        self, providers: list[Provider], request: ClientRequest, request_id: str, answer_id: str
    ) -> tuple[Upstream | ProxyError, str | None]:
        """The first answer that is not a 404, else the last answer or failure; and the
        provider that gave it."""
        last: Upstream | ProxyError = errors.stored_response_not_found(answer_id)
        asked = None
        for provider in providers:
            if not isinstance(last, ProxyError):
                last.close()
            asked = provider.name
            try:
                call = forward_request(request, request_id, provider, b"")
                last = await provider.forward(call, raw=False)
            except ProxyError as err:
                last = err
                continue
            last.headers["x-edgeproxy-provider"] = provider.name
            if last.status != 404:
                return last, asked
        return last, asked
