"""Incident detection running in the proxy: every finished request observed, the windows judged
every `interval` seconds by a background service, each incident that opens or resolves sent
to the webhook (when one is configured) and answered by the enabled responses.

    watch = build_incidents(settings, table, cache, background, clock)   # None when disabled
    watch.observe(record)           # each request's record, after its answer
    watch.start()                   # once the event loop runs (with the other resources)
    watch.listing()                 # GET /admin/incidents
    await watch.close(grace)        # at shutdown: the last notifications, within `grace`
    watch.stand_down()              # replaced by a reload: stopped, its responses undone
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from edgeproxy.background import Background
from edgeproxy.cache.lookup import LookupCache
from edgeproxy.routing.router import ModelTable
from edgeproxy.telemetry.incident_payloads import RENDERERS, Render
from edgeproxy.telemetry.incident_responses import Responses
from edgeproxy.telemetry.incident_settings import IncidentSettings
from edgeproxy.telemetry.incidents import Change, IncidentManager
from edgeproxy.telemetry.record import RequestRecord

if TYPE_CHECKING:  # aiohttp is imported only when a webhook is configured
    from edgeproxy.telemetry.webhook import WebhookSender


class IncidentWatch:
    __slots__ = (
        "_background",
        "_clock",
        "_interval",
        "_render",
        "_sender",
        "_sleep",
        "_task",
        "manager",
        "responses",
    )

    def __init__(
        self,
        manager: IncidentManager,
        responses: Responses,
        background: Background,
        clock: Callable[[], float],
        *,
        interval: float,
        sender: WebhookSender | None = None,
        render: Render = RENDERERS["observatory"],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.manager = manager
        self.responses = responses
        self._background = background
        self._clock = clock
        self._interval = interval
        self._sender = sender
        self._render = render
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    def observe(self, record: RequestRecord) -> None:
        self.manager.observe(record)

    def listing(self) -> dict[str, Any]:
        return self.manager.listing()

    def tick(self, now: float) -> list[Change]:
        """One evaluation: incidents opened and resolved, responded to and notified."""
        changes = self.manager.evaluate(now)
        for change in changes:
            if change.event == "opened":
                self.responses.opened(change.incident, now)
            else:
                self.responses.resolved(change.incident)
            if self._sender is not None:
                self._sender.send(self._render(change))
        return changes

    def start(self) -> None:
        if self._sender is not None:
            self._sender.start(self._background)
        self._task = self._background.service("incident-evaluation", self._evaluate())

    async def close(self, grace: float) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._sender is not None:
            await self._sender.close(grace)

    def stand_down(self) -> None:
        """Replaced by a configuration reload's watch: stop judging now, and undo the
        responses to incidents still open (the new watch judges afresh). `close` later sends
        the notifications already queued."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()  # it waits for its next tick: it never judges again
        for incident in self.manager.open_incidents:
            self.responses.resolved(incident)

    async def _evaluate(self) -> None:
        while True:
            await self._sleep(self._interval)
            self.tick(self._clock())


def build_incidents(
    settings: IncidentSettings,
    table: ModelTable,
    cache: LookupCache | None,
    background: Background,
    clock: Callable[[], float],
    *,
    wall_clock: Callable[[], float] = time.time,
) -> IncidentWatch | None:
    """Incident detection as `settings` configure it; None when it is disabled. `clock` is the
    routing clock (monotonic seconds), `wall_clock` dates the incidents."""
    if not settings.enabled:
        return None
    webhook = settings.webhook
    sender = None
    if webhook.url is not None:
        from edgeproxy.telemetry.json_post import JsonPoster
        from edgeproxy.telemetry.webhook import WebhookSender

        token = webhook.token
        headers = {"Authorization": f"Bearer {token.reveal()}"} if token is not None else None
        poster = JsonPoster(
            webhook.url.reveal(), headers, timeout=webhook.timeout, max_retries=webhook.retries
        )
        sender = WebhookSender(poster)
    return IncidentWatch(
        IncidentManager(settings, table, clock, wall_clock),
        Responses(settings.responses, table, cache),
        background,
        clock,
        interval=settings.interval,
        sender=sender,
        render=RENDERERS[webhook.format],
    )
