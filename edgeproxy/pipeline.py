"""The request pipeline: the map of the program.

A request passes these stages in order; each either continues (returns None) or answers
(returns a reply). Only the stages the configuration enables are built, once, at load.

    1. route    resolve the public model to a group and pick a deployment (weighted);
                answer 404 for an unconfigured model, 400 if the deployment's provider
                cannot serve this endpoint; same dialect: map the model name into the
                upstream body; other dialect: parse the body into neutral form and encode
                it for the provider (its translator), answering 400 for what cannot go
    2. forward  send upstream through the deployment's provider; the reply is the upstream
                answer (headers arrived, body still to read or stream) or a ProxyError

The per-request `Exchange` carries what the stages learn:

    field           set by              read by
    request_id      handlers            providers (sent upstream), handlers (response header)
    operation       handlers            route, providers, handlers
    headers         handlers            providers (forwarded headers)
    body, payload   handlers            route (model mapping), mock provider
    model, stream   handlers            route, providers, handlers (relay mode)
    started         handlers            providers (total deadline), access log
    deployment      route               forward, handlers (x-edgeproxy-provider), access log
    translator      route               providers (headers, URL), handlers (decode, render)
    neutral         route               handlers (stream encoder options), gemini provider
    dropped         route               handlers (x-edgeproxy-dropped-params)
    upstream_body   route               providers (HTTP body sent upstream)
    usage           handlers (relay)    access log
    status          handlers            access log
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from edgeproxy import errors
from edgeproxy.dialects.neutral import ChatRequest, EmbeddingRequest, Usage
from edgeproxy.dialects.translation import Translator
from edgeproxy.errors import ProxyError
from edgeproxy.operations import Operation
from edgeproxy.providers.base import Upstream
from edgeproxy.routing.router import Deployment, ModelTable

Reply = ProxyError | Upstream
Stage = Callable[["Exchange"], Awaitable[Reply | None]]


@dataclass(slots=True, eq=False)
class Exchange:
    """What the stages learn about one request (see the module docstring for who sets what)."""

    request_id: str
    operation: Operation
    headers: Mapping[str, str]
    body: bytes
    payload: dict[str, Any]
    model: str
    stream: bool
    started: float
    deployment: Deployment | None = None
    translator: Translator | None = None
    neutral: ChatRequest | EmbeddingRequest | None = None
    dropped: list[str] = field(default_factory=list)
    upstream_body: bytes = b""
    usage: Usage | None = None
    status: int = 0

    @property
    def upstream_model(self) -> str:
        """The model name the provider sees."""
        if self.deployment is not None and self.deployment.model is not None:
            return self.deployment.model
        return self.model


class Route:
    """Stage 1: pick a deployment for the requested model and map the name upstream."""

    __slots__ = ("_random", "_table")

    def __init__(self, table: ModelTable, rng: Callable[[], float] = random.random) -> None:
        self._table = table
        self._random = rng

    async def __call__(self, exchange: Exchange) -> Reply | None:
        group = self._table.resolve(exchange.model)
        if group is None:
            return errors.model_not_found(exchange.model)
        deployment = group.pick(self._random())
        routes = deployment.routes
        if exchange.operation not in routes:
            return errors.unsupported_route(
                exchange.model, deployment.provider.name, exchange.operation.path
            )
        exchange.deployment = deployment
        translator = routes[exchange.operation]
        if translator is not None:
            exchange.translator = translator
            try:
                exchange.neutral, exchange.upstream_body, exchange.dropped = translator.request(
                    exchange.payload, exchange.upstream_model
                )
            except ProxyError as err:
                return err
            return None
        upstream_model = deployment.model
        if upstream_model is None or upstream_model == exchange.model:
            exchange.upstream_body = exchange.body
        else:
            exchange.upstream_body = orjson.dumps({**exchange.payload, "model": upstream_model})
        return None


async def forward(exchange: Exchange) -> Reply:
    """Stage 2 (terminal): the upstream answer, or the error that prevented one."""
    assert exchange.deployment is not None, "route runs before forward"
    try:
        return await exchange.deployment.provider.send(exchange)
    except ProxyError as err:
        return err


class Pipeline:
    """The enabled stages, in order, ending in `forward`."""

    __slots__ = ("stages",)

    def __init__(self, stages: tuple[Stage, ...]) -> None:
        self.stages = stages

    async def run(self, exchange: Exchange) -> Reply:
        for stage in self.stages:
            reply = await stage(exchange)
            if reply is not None:
                return reply
        return await forward(exchange)


def build_pipeline(table: ModelTable) -> Pipeline:
    return Pipeline((Route(table),))
