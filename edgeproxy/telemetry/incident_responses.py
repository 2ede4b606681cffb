"""What the proxy does by itself about an incident, each response off unless enabled:

- `shift_weight`: a deployment with an error-rate or slowness incident is weighed at a fraction
  of its configured weight in every group naming it (the weighted strategy reads weights);
  restored once no incident of that deployment still asks for it;
- `open_breaker`: a deployment with an error-rate incident has its breaker opened for a pause,
  after which the breaker probes it as usual (nothing to undo);
- `extend_cache_ttl`: a group with any incident keeps the answers it stores longer (up to
  `cache.max_ttl`), restored once no incident of that group still asks for it.

Several incidents may hold the same response (a deployment both failing and slow): it is
applied by the first and undone by the last to resolve.
"""

from __future__ import annotations

from edgeproxy.cache.lookup import LookupCache
from edgeproxy.routing.router import ModelTable
from edgeproxy.telemetry.incident_settings import ResponseSettings
from edgeproxy.telemetry.incidents import Incident

SHIFTED_BY = frozenset({"error_rate", "ttfb"})


class Responses:
    """Applies the enabled responses when incidents open and undoes them when they resolve;
    what was done is written on the incident (`responses`)."""

    __slots__ = ("_cache", "_extended", "_settings", "_shifted", "_table")

    def __init__(
        self, settings: ResponseSettings, table: ModelTable, cache: LookupCache | None
    ) -> None:
        self._settings = settings
        self._table = table
        self._cache = cache
        self._shifted: dict[str, set[str]] = {}  # deployment: the incidents shifting it
        self._extended: dict[str, set[str]] = {}  # group: the incidents extending its TTL

    def opened(self, incident: Incident, now: float) -> None:
        settings, name = self._settings, incident.name
        if incident.scope == "deployment":
            if settings.shift_weight and incident.kind in SHIFTED_BY:
                factor = settings.shift_weight_factor
                if _hold(self._shifted, name, incident.id):
                    self._table.scale_weight(name, factor)
                incident.responses.append(f"shift_weight x{factor:g}")
            if settings.open_breaker and incident.kind == "error_rate":
                pause = settings.open_breaker_pause
                self._table.health[name].breaker.trip(now, pause)
                incident.responses.append(f"open_breaker {pause:g}s")
        elif settings.extend_cache_ttl and self._cache is not None:
            factor = settings.cache_ttl_factor
            if _hold(self._extended, name, incident.id):
                self._cache.extend_ttl(name, factor)
            incident.responses.append(f"extend_cache_ttl x{factor:g}")

    def resolved(self, incident: Incident) -> None:
        name = incident.name
        if incident.scope == "deployment":
            if _release(self._shifted, name, incident.id):
                self._table.scale_weight(name, 1.0)
        elif _release(self._extended, name, incident.id) and self._cache is not None:
            self._cache.restore_ttl(name)


def _hold(holders: dict[str, set[str]], name: str, incident: str) -> bool:
    """Record that `incident` asks for the response on `name`; True when it is the first."""
    asking = holders.setdefault(name, set())
    asking.add(incident)
    return len(asking) == 1


def _release(holders: dict[str, set[str]], name: str, incident: str) -> bool:
    """`incident` no longer asks; True when it was the last one that did."""
    asking = holders.get(name)
    if asking is None or incident not in asking:
        return False
    asking.discard(incident)
    if asking:
        return False
    del holders[name]
    return True
