"""Hot reload of the configuration file: when, whether, and what it tells.

Three triggers read the file again: its contents changing (edgeproxy.config_watch, polled
every `reload.interval` while `reload.enabled`), SIGHUP, and `POST /admin/reload`. Each reload
is validated whole by the normal loader, with the process environment, and then:

- invalid: the running configuration stays; the problems (each naming its field) are logged,
  answered by the admin endpoint, and shown by `/readyz` (still ready: the old configuration
  serves) and the metrics until a later reload succeeds;
- equal to the running one: `unchanged`, nothing is rebuilt;
- valid: `apply` swaps in a state built for it (ProxyServer.apply, keeping what did not
  change, edgeproxy.carry). Settings only a restart can change (the listeners' addresses,
  the workers, the admin listener) keep their running values and are reported as needing one.

Reloads run one at a time. Once a stopping proxy has drained its listener they fail (what
they would open, nothing would close). Without a file (the embedded defaults) there is nothing
to watch; SIGHUP and the admin endpoint read the defaults again, which are always unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edgeproxy.config import Config, load
from edgeproxy.config_reader import ConfigError
from edgeproxy.config_watch import ConfigWatch

if TYPE_CHECKING:
    from edgeproxy.background import Background

log = logging.getLogger("edgeproxy.reload")

Outcome = Literal["applied", "unchanged", "invalid", "failed"]
# The metric's `result` label of each outcome.
METRIC_RESULT: dict[Outcome, str] = {
    "applied": "success",
    "unchanged": "unchanged",
    "invalid": "failure",
    "failed": "failure",
}
# Server settings a running listener cannot take: the socket's address and the processes.
_RESTART_SERVER = ("host", "port", "workers")


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What one reload did (the admin endpoint's answer)."""

    result: Outcome
    trigger: str  # file, signal, admin
    problems: tuple[str, ...] = ()  # invalid or failed: why, each naming its field
    needs_restart: tuple[str, ...] = ()  # changed settings kept at their running values
    kept: tuple[str, ...] = ()  # what the new state took over (edgeproxy.carry)

    def view(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "trigger": self.trigger,
            "problems": list(self.problems),
            "needs_restart": list(self.needs_restart),
            "kept": list(self.kept),
        }


class ReloadStatus:
    """The reloads so far, for the metrics and `/readyz`."""

    __slots__ = ("counts", "last_failure", "last_success")

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self.counts = dict.fromkeys(("success", "failure", "unchanged"), 0)
        self.last_success = wall_clock()  # the configuration loaded at start counts
        self.last_failure: ReloadResult | None = None  # until a later reload succeeds

    def record(self, result: ReloadResult, now: float) -> None:
        self.counts[METRIC_RESULT[result.result]] += 1
        if result.result in ("invalid", "failed"):
            self.last_failure = result
        else:
            self.last_success = now
            self.last_failure = None

    def readiness(self) -> dict[str, Any]:
        """What `/readyz` adds: the refused reload, while the old configuration serves. The
        probe answers anyone, so it names the fields only: a message may quote a value of the
        refused file (a password in a mistyped URL) that no scrubber knows yet; the log and
        `POST /admin/reload` (token required) have the whole messages."""
        failure = self.last_failure
        if failure is None:
            return {}
        fields = [problem.partition(": ")[0] for problem in failure.problems]
        return {"reload": {"result": failure.result, "fields": fields}}


def restart_only(running: Config, loaded: Config) -> tuple[Config, tuple[str, ...]]:
    """`loaded` with the settings a reload cannot change put back to their running values,
    and the names of those that differed."""
    changed = [
        f"server.{name}"
        for name in _RESTART_SERVER
        if getattr(running.server, name) != getattr(loaded.server, name)
    ]
    changed += [
        f"admin.{item}"
        for item in ("enabled", "host", "port", "token")
        if getattr(running.admin, item) != getattr(loaded.admin, item)
    ]
    held = {name: getattr(running.server, name) for name in _RESTART_SERVER}
    config = replace(loaded, server=replace(loaded.server, **held), admin=running.admin)
    return config, tuple(changed)


Apply = Callable[[Config], Awaitable[tuple[str, ...]]]


class Reloader:
    """Reads the configuration again on request or when the file changes, and applies it.

    `current` gives the running configuration, `apply` swaps in a new one and returns what it
    kept; `on_applied` is told of each applied configuration (logging follows it). `seen`: the
    digest of the file as read at start (edgeproxy.config_watch), else it is read now."""

    def __init__(
        self,
        path: Path | None,
        env: Mapping[str, str],
        current: Callable[[], Config],
        apply: Apply,
        *,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        seen: str | None = None,
    ) -> None:
        self.path = path
        self._env = env
        self._current = current
        self._apply = apply
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._closed = False
        self._signal_waiting = False  # a reload for SIGHUP is queued and has not read yet
        self.status = ReloadStatus(wall_clock)
        self.on_applied: list[Callable[[Config], None]] = []
        self._watch = ConfigWatch(path, seen) if path is not None else None

    async def reload(self, trigger: str) -> ReloadResult:
        """Read, validate and apply the configuration now."""
        async with self._lock:
            if trigger == "signal":
                self._signal_waiting = False  # a SIGHUP from now on asks for another read
            result = await self._reload(trigger)
        self.status.record(result, self._wall_clock())
        _log(result)
        return result

    def on_signal(self, background: Background) -> None:
        """SIGHUP: a reload, unless one for an earlier SIGHUP has not read the file yet (it
        will read what this one asks for): a burst of signals is one reload, not a queue of
        them holding the background's places."""
        if not self._signal_waiting:
            self._signal_waiting = background.spawn("reload on SIGHUP", self.reload("signal"))

    async def close(self) -> None:
        """Refuse every later reload, once the one running (if any) is done: the proxy is
        closing its state, and a state swapped in now would never be closed."""
        async with self._lock:
            self._closed = True

    async def _reload(self, trigger: str) -> ReloadResult:
        if self._closed:
            return ReloadResult("failed", trigger, ("the proxy is stopping",))
        if self._watch is not None:
            self._watch.changed()  # these contents are now seen: the poll does not reload them
        try:  # parsing (the pricing table's YAML above all) takes tens of ms: off the loop
            loaded = await asyncio.to_thread(load, self.path, self._env)
        except ConfigError as err:
            return ReloadResult("invalid", trigger, tuple(err.problems))
        running = self._current()
        config, needs_restart = restart_only(running, loaded)
        if config == running:
            return ReloadResult("unchanged", trigger, needs_restart=needs_restart)
        try:
            kept = await self._apply(config)
        except Exception as exc:  # a resource of the new configuration would not open
            log.exception("the new configuration could not start")
            problem = f"the new configuration could not start: {exc!r}"
            return ReloadResult("failed", trigger, (problem,), needs_restart)
        for listener in self.on_applied:
            listener(config)
        return ReloadResult("applied", trigger, needs_restart=needs_restart, kept=kept)

    async def watch(self) -> None:
        """Poll the file every `reload.interval` (as configured now) and reload when its
        contents change, while `reload.enabled`. Runs until cancelled."""
        watch = self._watch
        if watch is None:
            return
        while True:
            settings = self._current().reload
            await self._sleep(settings.interval)
            if settings.enabled and watch.changed():
                try:
                    await self.reload("file")
                except Exception:  # a bug must not end the watch: the next change is tried
                    log.exception("configuration reload failed unexpectedly")


def _log(result: ReloadResult) -> None:
    details = result.view()
    if result.result == "applied":
        log.info("configuration reloaded", extra=details)
    elif result.result == "unchanged":
        log.info("configuration unchanged", extra=details)
    else:
        log.error("configuration reload refused; the running configuration stays", extra=details)
    if result.needs_restart:
        log.warning(
            "configuration changes that need a restart were not applied",
            extra={"needs_restart": list(result.needs_restart)},
        )
