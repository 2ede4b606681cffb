"""Assembling and running the proxy: providers, pipeline, listeners and their lifecycle.

The data listener is edgeproxy's own HTTP/1.1 server on asyncio protocols (edgeproxy.wire);
the admin listener, off the request path, is aiohttp. Long-lived resources open once: each
provider's connection pool opens before the data listener starts, and closes after in-flight
requests have finished (or the grace period ran out) and background work has drained.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgeproxy.config import Config, ServerConfig
from edgeproxy.handlers import ProxyHandlers
from edgeproxy.relay import Relay
from edgeproxy.state import Clocks, ProxyState, build_state
from edgeproxy.telemetry.access import AccessLog
from edgeproxy.telemetry.feedback import FeedbackEndpoint
from edgeproxy.telemetry.recorder import Consumer, Recorder, request_events
from edgeproxy.wire.limits import Limits
from edgeproxy.wire.server import HttpServer

# Imported when used: aiohttp serves only the admin listener, redis only L2, OpenTelemetry only
# tracing.
if TYPE_CHECKING:
    from aiohttp import web
    from opentelemetry.sdk.trace.export import SpanExporter

    from edgeproxy.cache.redis import RedisCache
    from edgeproxy.telemetry.recommend import Recommender
    from edgeproxy.worker import WorkerRole

log = logging.getLogger("edgeproxy")


def _redis(state: ProxyState) -> RedisCache | None:
    """The L2 store when one is configured (redis-py is imported only then)."""
    remote = state.cache.cache.remote if state.cache is not None else None
    if remote is None:
        return None
    from edgeproxy.cache.redis import RedisCache

    assert isinstance(remote, RedisCache), "L2 is Redis"
    return remote


async def open_resources(state: ProxyState) -> None:
    """Provider pools, the semantic model and the Redis clients, before the first request."""
    await asyncio.gather(*(p.open() for p in state.providers.values()))
    if state.cache is not None and state.cache.semantic is not None:
        await state.cache.semantic.open()
    remote = _redis(state)
    if state.cache is not None and remote is not None:
        await remote.open()
        remote.subscribe(state.cache.cache.invalidate, state.background)
    await state.guards.open(state.background)
    if state.events is not None:
        state.events.start(state.background)
    if state.incidents is not None:
        state.incidents.start()
    if state.shared_metrics is not None:
        state.shared_metrics.start(state.background)
    state.pools_open = True


async def close_resources(state: ProxyState) -> None:
    """After in-flight requests: background work (cache writes) drains, then pools close."""
    state.pools_open = False
    remote = _redis(state)
    if remote is not None:
        await remote.stop_listening()  # so draining waits only for cache writes
    await state.guards.stop_listening()
    grace = state.config.server.shutdown_grace
    if state.events is not None:  # the requests' events are queued: send them, within the grace
        await state.events.close(grace)
    if state.incidents is not None:
        await state.incidents.close(grace)
    if state.shared_metrics is not None:
        await state.shared_metrics.stop()
    await state.background.drain(state.config.server.shutdown_grace)
    await asyncio.gather(*(p.close() for p in state.providers.values()))
    await state.guards.close()
    if remote is not None:
        await remote.close()
    if state.tracer is not None:
        await state.tracer.close()  # the last spans, those of the requests just drained


def build_handlers(state: ProxyState) -> ProxyHandlers:
    """The data listener's handler, answering through a relay built for `state`."""
    config = state.config
    costing = state.costing
    consumers: tuple[Consumer, ...] = (AccessLog(),) if config.server.access_log else ()
    if state.events is not None:
        consumers += (request_events(state.events),)
    endpoint = None
    if state.incidents is not None:
        consumers += (state.incidents.observe,)
    if state.feedback is not None:
        consumers += (state.feedback.ledger.served,)
        authenticate = state.guards.authenticate
        identify = authenticate.caller if authenticate is not None else None
        endpoint = FeedbackEndpoint(state.feedback, identify)
    recorder = Recorder(costing, state.requests, consumers)
    relay = Relay(state.pipeline.clock, state.redactor, costing, state.requests.chunk_gaps)
    max_body = config.server.max_body_bytes
    return ProxyHandlers(
        state.pipeline,
        state.table,
        relay,
        recorder,
        max_body,
        feedback=endpoint,
        tracer=state.tracer,
    )


def listener_limits(server: ServerConfig) -> Limits:
    """What one client connection may cost, from the server section."""
    return Limits(
        max_header_bytes=server.max_header_bytes,
        max_header_count=server.max_headers,
        max_body=server.max_body_bytes,
        header_timeout=server.header_timeout,
        body_timeout=server.body_timeout,
        keepalive_timeout=server.keepalive_timeout,
        send_timeout=server.send_timeout,
    )


class ProxyServer:
    """The data listener (edgeproxy.wire) and the admin listener (aiohttp), started and
    stopped together with the resources the data path uses."""

    def __init__(
        self,
        config: Config,
        clocks: Clocks | None = None,
        span_exporter: SpanExporter | None = None,
        worker: WorkerRole | None = None,
    ) -> None:
        self.config = config
        self.state = build_state(config, clocks, span_exporter)
        server = config.server
        handlers = build_handlers(self.state)
        self._data = HttpServer(handlers, listener_limits(server), handlers.reject)
        self._admin = self._admin_runner() if config.admin.enabled else None
        self._worker = worker
        self._snapshots = worker.snapshots(self._own_metrics) if worker and self._admin else None
        self.data_address: tuple[str, int] = (server.host, server.port)
        self.admin_address: tuple[str, int] | None = None

    def _admin_runner(self) -> web.AppRunner:
        """The admin listener on aiohttp (imported only when the admin listener is on)."""
        from aiohttp import web

        from edgeproxy.admin import build_admin_app
        from edgeproxy.telemetry.metrics import exposition
        from edgeproxy.telemetry.stats import LiveStats

        state, config = self.state, self.config
        return web.AppRunner(
            build_admin_app(
                lambda: state.ready,
                state.routing_status,
                config.admin.token,
                redact=state.redactor,
                cache=state.cache.cache if state.cache is not None else None,
                metrics=lambda: exposition(state),
                cache_namespace=config.cache.namespace,
                keys=state.guards.keys,
                recommender=self._recommender(),
                stats=LiveStats(
                    state.requests, state.table, state.pipeline.clock, self._open_incidents()
                ),
                incidents=state.incidents.listing if state.incidents is not None else None,
            ),
            access_log=None,
            keepalive_timeout=10.0,  # reachable from the pod network: keep slow clients short
            shutdown_timeout=1.0,
        )

    def _own_metrics(self) -> bytes:
        """This process's metrics alone, masked like every admin answer (for the pod's merge)."""
        from edgeproxy.telemetry.metrics import exposition

        return self.state.redactor.bytes(exposition(self.state, own=True))

    def _open_incidents(self) -> Callable[[], list[dict[str, Any]]] | None:
        watch = self.state.incidents
        if watch is None:
            return None
        manager = watch.manager
        return lambda: [incident.view() for incident in manager.open_incidents]

    def _recommender(self) -> Recommender | None:
        feedback = self.state.feedback
        if feedback is None:
            return None
        from edgeproxy.telemetry.recommend import Bounds, Recommender

        pricing = self.config.security.pricing.table
        return Recommender(self.state.table, feedback, pricing, Bounds.of(feedback.settings))

    @property
    def url(self) -> str:
        host, port = self.data_address
        return f"http://{host}:{port}"

    @property
    def admin_url(self) -> str:
        assert self.admin_address is not None, "the admin listener is disabled"
        host, port = self.admin_address
        return f"http://{host}:{port}"

    @property
    def client_connections(self) -> int:
        """Open connections on the data listener (for leak checks)."""
        return self._data.connections

    @property
    def buffered_bytes(self) -> int:
        """Response bytes the data listener holds for clients that have not read them yet
        (bounded by backpressure, however slow the client)."""
        return self._data.buffered_bytes

    async def start(self) -> None:
        server, admin = self.config.server, self.config.admin
        await open_resources(self.state)
        worker = self._worker
        self.data_address = await self._data.start(server.host, server.port, worker is not None)
        if self._admin is not None:
            from aiohttp import web

            await self._admin.setup()
            if worker is not None:  # the pod's admin port is the supervisor's
                await web.UnixSite(self._admin, worker.admin_socket).start()
            else:
                await web.TCPSite(self._admin, admin.host, admin.port).start()
                self.admin_address = self._admin.addresses[0][:2]
        if self._snapshots is not None:
            self._snapshots.start(self.state.background)

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish within the grace period, close pools."""
        self.state.draining = True
        await self._data.shutdown(self.config.server.shutdown_grace)
        await close_resources(self.state)
        if self._snapshots is not None:
            await self._snapshots.stop()
        if self._admin is not None:
            await self._admin.cleanup()


def _freeze_startup_objects() -> None:
    """Keep what start-up built (modules, configuration, pools, the semantic model) out of the
    garbage collector's full collections: they live as long as the process, and traversing
    them made every full collection a pause of 40-85 ms for all requests in flight (13-31 ms
    without them, measured with a full L1 under load)."""
    gc.collect()
    gc.freeze()


async def serve(config: Config, worker: WorkerRole | None = None) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully (as one of a pod's processes
    when `worker` says which)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    proxy = ProxyServer(config, worker=worker)
    await proxy.start()
    _freeze_startup_objects()
    log.info(
        "edgeproxy listening",
        extra={
            "url": proxy.url,
            "admin": proxy.admin_url if proxy.admin_address else None,
            "providers": sorted(config.providers),
            "disabled_providers": list(config.disabled_providers),
            "models": [m.name for m in config.models],
        },
    )
    await stop.wait()
    log.info("shutting down", extra={"grace_s": config.server.shutdown_grace})
    await proxy.stop()
