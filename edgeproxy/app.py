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
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeproxy.carry import kept_from
from edgeproxy.config import Config, ServerConfig
from edgeproxy.drain import FLUSH_FLOOR, Drain, StopSignals, never
from edgeproxy.handlers import ProxyHandlers
from edgeproxy.passthrough import Passthrough
from edgeproxy.pod_affinity import PodAffinity
from edgeproxy.redact import Redactor
from edgeproxy.relay import Relay
from edgeproxy.reload import Reloader
from edgeproxy.state import Clocks, ProxyState, build_state
from edgeproxy.stored_responses import StoredResponses
from edgeproxy.telemetry.access import AccessLog
from edgeproxy.telemetry.feedback import FeedbackEndpoint
from edgeproxy.telemetry.logging import line_handler
from edgeproxy.telemetry.record import Forwarded
from edgeproxy.telemetry.recorder import Consumer, Recorder, request_events
from edgeproxy.wire.limits import Limits
from edgeproxy.wire.server import HttpServer

# Imported when used: aiohttp serves only the admin listener, redis only L2, spans only
# tracing.
if TYPE_CHECKING:
    from aiohttp import web

    from edgeproxy.admin_views import AdminViews
    from edgeproxy.cache.lookup import LookupCache
    from edgeproxy.cache.redis import RedisCache
    from edgeproxy.providers.base import Provider
    from edgeproxy.security.build import Guards
    from edgeproxy.security.keystore import RedisKeyStore
    from edgeproxy.telemetry.recommend import Recommender
    from edgeproxy.telemetry.spans import SpanSink
    from edgeproxy.worker import WorkerRole

log = logging.getLogger("edgeproxy")
# How often a reload looks whether the replaced configuration's requests are done.
_RETIRE_POLL = 0.05


def _redis(state: ProxyState) -> RedisCache | None:
    """The L2 store when one is configured (redis-py is imported only then)."""
    remote = state.cache.cache.remote if state.cache is not None else None
    if remote is None:
        return None
    from edgeproxy.cache.redis import RedisCache

    assert isinstance(remote, RedisCache), "L2 is Redis"
    return remote


def _unshared(state: ProxyState, other: ProxyState | None, part: str) -> Any:
    """`state`'s `part` when it has one that `other` (on a reload, the state before or after
    it) does not share; else None."""
    mine = getattr(state, part)
    return mine if other is None or mine is not getattr(other, part) else None


def _unshared_providers(state: ProxyState, other: ProxyState | None) -> list[Provider]:
    theirs = set(map(id, other.providers.values())) if other is not None else set()
    return [p for p in state.providers.values() if id(p) not in theirs]


async def open_resources(state: ProxyState, running: ProxyState | None = None) -> None:
    """Provider pools, the semantic model and the Redis clients, before the first request.
    `running`: on a reload, the state serving now; what the two share is open already."""
    await asyncio.gather(*(p.open() for p in _unshared_providers(state, running)))
    cache: LookupCache | None = _unshared(state, running, "cache")
    if cache is not None and cache.semantic is not None:
        await cache.semantic.open()
    remote = _redis(state) if cache is not None else None
    if cache is not None and remote is not None:
        await remote.open()
        remote.subscribe(cache.cache.invalidate, state.background)
    if _unshared(state, running, "guards") is not None:
        await state.guards.open(state.background)
    if (events := _unshared(state, running, "events")) is not None:
        events.start(state.background)
    if state.incidents is not None:
        state.incidents.start()
    if (metrics := _unshared(state, running, "shared_metrics")) is not None:
        metrics.start(state.background)
    state.pools_open = True


async def close_resources(
    state: ProxyState, successor: ProxyState | None = None, within: float | None = None
) -> None:
    """After in-flight requests: background work (events, cache writes) drains, within
    `within` seconds together (the shutdown grace unless told), then pools close.
    `successor`: on a reload, the state that replaced this one; what the two share stays
    open, and the background runner (shared too) is not drained."""
    state.pools_open = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (state.config.server.shutdown_grace if within is None else within)

    def left() -> float:
        return max(0.0, deadline - loop.time())

    remote = _redis(state) if _unshared(state, successor, "cache") is not None else None
    if remote is not None:
        await remote.stop_listening()  # so draining waits only for cache writes
    guards: Guards | None = _unshared(state, successor, "guards")
    if guards is not None:
        await guards.stop_listening()
    # The requests' events are queued: send them, within what is left.
    if (events := _unshared(state, successor, "events")) is not None:
        await events.close(left())
    if (incidents := _unshared(state, successor, "incidents")) is not None:
        await incidents.close(left())
    if (metrics := _unshared(state, successor, "shared_metrics")) is not None:
        await metrics.stop()
    if successor is None:
        await state.background.drain(left())
    await asyncio.gather(*(p.close() for p in _unshared_providers(state, successor)))
    if guards is not None:
        await guards.close()
    if remote is not None:
        await remote.close()
    if (tracer := _unshared(state, successor, "tracer")) is not None:
        await tracer.close()  # the last spans, those of the requests just drained
    if successor is None and (log_lines := line_handler()) is not None:
        log_lines.flush()  # the access lines of the last requests


def build_handlers(state: ProxyState, recorded: Callable[[], None] | None = None) -> ProxyHandlers:
    """The data listener's handler, answering through a relay built for `state`. `recorded`:
    what hands every record still waiting in a batch to its consumers, this handler's and
    those of the handlers a reload replaced (by default this handler's own)."""
    config = state.config
    costing = state.costing
    access = AccessLog() if config.server.access_log else None
    consumers: tuple[Consumer, ...] = (access,) if access is not None else ()
    if state.events is not None:
        consumers += (request_events(state.events),)
    if state.incidents is not None:
        consumers += (state.incidents.observe,)
    if state.feedback is not None:
        consumers += (state.feedback.ledger.served,)
    recorder = Recorder(costing, state.requests, consumers)
    endpoint = None
    if state.feedback is not None:
        authenticate = state.guards.authenticate
        identify = authenticate.caller if authenticate is not None else None
        endpoint = FeedbackEndpoint(state.feedback, identify, recorded or recorder.flush)
    relay = Relay(state.pipeline.clock, state.redactor, costing, state.requests.chunk_gaps)
    guards = state.guards
    affinity = state.pipeline.dispatch.affinity
    metrics = state.requests

    def forwarded_call(call: Forwarded) -> None:
        """A call forwarded unread ended: counted, and logged with the access log on."""
        metrics.count_forwarded(call)
        if access is not None:
            access.forwarded(call)

    stored = StoredResponses(
        state.table,
        affinity,
        relay,
        guards.authenticate,
        screen=guards.screen,
        record=forwarded_call,
    )
    passthrough = None
    if config.passthrough.openai or config.passthrough.anthropic:
        passthrough = Passthrough(
            config.passthrough, state.providers, relay, guards.authenticate, forwarded_call
        )
    max_body = config.server.max_body_bytes
    return ProxyHandlers(
        state.pipeline,
        state.table,
        relay,
        recorder,
        max_body,
        stored=stored,
        passthrough=passthrough,
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


def _longest_request(config: Config) -> float | None:
    """How long a request of `config` may run: its providers' longest total deadline (None:
    one of them sets none, and only the upstream's idle deadline ends its streams)."""
    totals = [provider.timeouts.total for provider in config.providers.values()]
    if not totals or None in totals:
        return None
    return max(total for total in totals if total is not None)


class ProxyServer:
    """The data listener (edgeproxy.wire) and the admin listener (aiohttp), started and
    stopped together with the resources the data path uses.

    A configuration reload (edgeproxy.reload) swaps the state, handler and listener limits
    in one step: a request keeps the handler it started with, so in-flight requests finish on
    the old state while new ones take the new; what only the old state used closes once its
    requests are done (`_retire`). The admin routes ask for the current state per request.
    """

    def __init__(
        self,
        config: Config,
        clocks: Clocks | None = None,
        span_sink: SpanSink | None = None,
        *,
        config_path: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        worker: WorkerRole | None = None,
        seen: str | None = None,
    ) -> None:
        self._clocks = clocks
        self._span_sink = span_sink
        self._state = build_state(config, clocks, span_sink)
        server = config.server
        self._handlers = handlers = build_handlers(self._state, self._recorded)
        self._data = HttpServer(handlers, listener_limits(server), handlers.reject)
        self._retiring: list[ProxyHandlers] = []
        self._retirements: set[asyncio.Task[None]] = set()
        path = Path(config_path) if config_path is not None else None
        environ = os.environ if env is None else env
        self.reloader = Reloader(path, environ, lambda: self._state.config, self.apply, seen=seen)
        self._redactor = Redactor(config.secrets())  # the admin listener's: it learns reloads'
        self._views: AdminViews | None = None
        self._admin = self._admin_runner() if config.admin.enabled else None
        self._worker = worker
        self._snapshots = worker.snapshots(self._own_metrics) if worker and self._admin else None
        if worker is not None and self._admin is not None:  # the other workers know answers too
            socket = Path(worker.admin_socket)
            pod = PodAffinity(worker.directory, socket, config.admin.token)  # as the apps check
            self._state.pipeline.dispatch.affinity.ask_pod = pod
        self.data_address: tuple[str, int] = (server.host, server.port)
        self.admin_address: tuple[str, int] | None = None
        self._watching: asyncio.Task[None] | None = None

    @property
    def state(self) -> ProxyState:
        """The state new requests are served with."""
        return self._state

    @property
    def config(self) -> Config:
        """The configuration in force (the last one a reload applied)."""
        return self._state.config

    def _admin_runner(self) -> web.AppRunner:
        """The admin listener on aiohttp (imported only when the admin listener is on). Each
        route asks for the current state, so it follows a configuration reload."""
        from aiohttp import web

        from edgeproxy.admin import CacheView, build_admin_app
        from edgeproxy.admin_views import AdminViews
        from edgeproxy.telemetry.metrics import exposition

        views = self._views = AdminViews(self._state)

        def cache() -> CacheView | None:
            stage = self._state.cache
            return None if stage is None else CacheView(stage.cache, self.config.cache.namespace)

        def incidents() -> dict[str, Any] | None:
            watch = self._state.incidents
            return watch.listing() if watch is not None else None

        def routing() -> dict[str, Any]:
            return self._state.routing_status()

        def keys() -> RedisKeyStore | None:
            return self._state.guards.keys

        def recommender() -> Recommender | None:
            return views.recommender

        async def reload() -> dict[str, Any]:
            return (await self.reloader.reload("admin")).view()

        return web.AppRunner(
            build_admin_app(
                lambda: self._state.ready,
                routing,
                self.config.admin.token,  # the admin section needs a restart
                redact=self._redactor,
                cache=cache,
                metrics=lambda: exposition(self._state, self.reloader.status),
                # The key and feedback routes exist when the start-up configuration has them.
                keys=keys if self._state.guards.keys is not None else None,
                recommender=recommender if views.recommender is not None else None,
                stats=lambda: views.stats,
                incidents=incidents,
                reload=reload,
                readiness=self.reloader.status.readiness,
                affinity=lambda: self._state.pipeline.dispatch.affinity,
            ),
            access_log=None,
            keepalive_timeout=10.0,  # reachable from the pod network: keep slow clients short
            shutdown_timeout=1.0,
        )

    async def apply(self, config: Config) -> tuple[str, ...]:
        """Serve new requests with a state built for `config`, keeping what did not change
        (edgeproxy.carry); returns what was kept. If a new resource fails to open, the
        running state stays and the error is raised."""
        running, handlers = self._state, self._handlers
        kept = kept_from(running, config)
        state = build_state(config, self._clocks, self._span_sink, kept)
        try:
            await open_resources(state, running)
        except BaseException:
            await close_resources(state, running)
            raise
        if running.incidents is not None:  # it watched the old table: its responses end
            running.incidents.stand_down()
        state.draining = running.draining  # a reload during shutdown keeps readiness off
        self._state = state
        self._handlers = self._data.handler = build_handlers(state, self._recorded)
        self._data.reject = self._handlers.reject
        self._data.limits = listener_limits(config.server)  # for connections accepted now on
        if self._views is not None:
            self._views.follow(state)
        self._redactor.learn(config.secrets())
        self._retiring.append(handlers)
        retire = self._retire(running, handlers, state)
        task = state.background.service("retire configuration", retire)
        self._retirements.add(task)
        task.add_done_callback(self._retirements.discard)
        providers = sorted(n for n, p in state.providers.items() if kept.providers.get(n) is p)
        return (*kept.names(), *(f"provider {name}" for name in providers))

    def _recorded(self) -> None:
        """Hand every waiting record to its consumers: the current handler's, and those of
        the handlers a reload replaced (the feedback ledger outlives a reload)."""
        for handlers in (*self._retiring, self._handlers):
            handlers.recorder.flush()

    def _own_metrics(self) -> bytes:
        """This process's metrics alone, masked like every admin answer (for the pod's merge)."""
        from edgeproxy.telemetry.metrics import exposition

        return self._redactor.bytes(exposition(self._state, self.reloader.status, own=True))

    async def _retire(
        self, state: ProxyState, handlers: ProxyHandlers, successor: ProxyState
    ) -> None:
        """Once the requests `handlers` (and older replaced ones) took are done, then the work
        they left in the background (within the old configuration's shutdown grace), close
        what `state` did not hand on to its `successor` (what the successor hands on in turn
        is closed when it is retired). The requests are waited for as long as they may run:
        the grace bounds a stop, not a reload, and a long stream must not be cut by one."""
        loop = asyncio.get_running_loop()
        longest = _longest_request(state.config)
        until = None if longest is None else loop.time() + longest
        older = self._retiring[: self._retiring.index(handlers) + 1]
        # Polled: a wake-up when a count reaches zero would cost every request a check.
        while any(h.active for h in older) and (until is None or loop.time() < until):  # noqa: ASYNC110
            await asyncio.sleep(_RETIRE_POLL)
        handlers.recorder.flush()  # its last records, to consumers the close below ends
        grace = state.config.server.shutdown_grace
        await state.background.settle(grace)  # their work after answers
        self._retiring.remove(handlers)
        await close_resources(state, successor)
        if gc.get_freeze_count():  # serving (see serve): what start-up froze is now garbage
            gc.unfreeze()
            _freeze_startup_objects()

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
        self._watching = self.state.background.service("config watch", self.reloader.watch())

    async def stop(self, drain: Drain | None = None) -> None:
        """Readiness off, then the drain (edgeproxy.drain; by default no delay and the
        shutdown grace); background work flushes and pools close."""
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.gather(self._watching, return_exceptions=True)
        self.state.draining = True
        drain = drain or Drain(0.0, self.config.server.shutdown_grace, never())
        within = await drain.listener(self._data)
        self._recorded()  # the drained requests' records
        await self.reloader.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        if self._retirements:  # replaced configurations: their requests are over by now
            _, late = await asyncio.wait(self._retirements, timeout=within)
            for task in late:  # still settling background work: the flush below drains it
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await close_resources(self.state, within=max(FLUSH_FLOOR, deadline - loop.time()))
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


async def serve(
    config: Config,
    config_path: str | None = None,
    worker: WorkerRole | None = None,
    seen: str | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then drain (edgeproxy.drain); reload `config_path` (the
    file `config` came from, whose digest was `seen` before it was read) when it changes and
    on SIGHUP (as one of a pod's processes when `worker` says which)."""
    from edgeproxy.telemetry.logging import configure

    loop = asyncio.get_running_loop()
    signals = StopSignals(loop)
    proxy = ProxyServer(config, config_path=config_path, worker=worker, seen=seen)
    secrets = set(config.secrets())

    def relog(applied: Config) -> None:  # the old configuration's secrets stay masked too
        secrets.update(applied.secrets())
        configure(applied.logging.level, applied.logging.format, secrets)

    proxy.reloader.on_applied.append(relog)
    loop.add_signal_handler(signal.SIGHUP, lambda: proxy.reloader.on_signal(proxy.state.background))
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
    signum = await signals.first()
    server = proxy.config.server  # a reload may have changed the delay and the grace
    drain = Drain.after(signum, server.drain_delay, server.shutdown_grace, signals.hurry)
    log.info(
        "shutting down",
        extra={"signal": signum.name, "drain_delay_s": drain.delay, "grace_s": drain.grace},
    )
    await proxy.stop(drain)
