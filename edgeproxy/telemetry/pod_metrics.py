"""The pod's metrics from its workers' own (edgeproxy.workers).

Each worker writes its whole exposition (every family of edgeproxy.telemetry.metrics, for
this process alone) to `<dir>/metrics-<index>-<pid>.prom` every `interval` seconds and when
it stops: a temporary file renamed over the old one, so a reader never sees half of it. The
supervisor answers a scrape by merging the files:
- counters and histograms are summed over every file, those of workers that have exited too,
  so a restarted worker never makes a pod total go down (Prometheus would read it as a reset);
- gauges come from live workers only, summed where the sum is the pod's figure (requests and
  deployments in flight, L1 entries and bytes, background tasks pending) and labelled with
  `worker` where each worker has its own value and a sum means nothing (a breaker's state,
  the moving average of time to first byte, whether its last reload was refused and when it
  last loaded its configuration: `PER_WORKER_GAUGES`);
- `_created` samples are left out (a sum of timestamps is no timestamp).
When a worker exits, the supervisor folds its counts into one file per worker slot (`retire`).
A file is at most `interval` old, so a scrape lags each worker by that much, and a worker
that is killed loses at most its last `interval` of counts. Writing costs one exposition per
interval per worker, off the request path; nothing is added per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from edgeproxy.background import Background

PER_WORKER_GAUGES = frozenset(
    {
        "edgeproxy_breaker_state",
        "edgeproxy_deployment_ttfb_seconds",
        "edgeproxy_config_reload_failed",
        "edgeproxy_config_last_reload_success_timestamp_seconds",
    }
)
_PREFIX = "metrics-"
_SUFFIX = ".prom"
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def snapshot_path(directory: Path, index: int, pid: int) -> Path:
    return directory / f"{_PREFIX}{index}-{pid}{_SUFFIX}"


class MetricsSnapshots:
    """Writes one worker's exposition (`render`) to its file, every `interval` and at stop."""

    __slots__ = ("_interval", "_path", "_render", "_task")

    def __init__(self, path: Path, render: Callable[[], bytes], interval: float = 1.0) -> None:
        self._path = path
        self._render = render
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self, background: Background) -> None:
        self.write()  # the pod's scrape sees this worker from its first second
        self._task = background.service("pod metrics", self.run())

    async def stop(self) -> None:
        """The last snapshot written, so the pod's counts keep this worker's."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        with contextlib.suppress(OSError):
            self.write()

    def write(self) -> None:
        partial = self._path.with_suffix(".tmp")
        partial.write_bytes(self._render())
        partial.replace(self._path)

    async def run(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        while True:
            await sleep(self._interval)
            self.write()


def retire(directory: Path, index: int, pid: int) -> None:
    """Fold the counters and histograms of worker `index`'s exited process `pid` into the
    slot's file of exited processes (pid 0: never live), so that a worker restarted again and
    again leaves one file for every scrape to read, not one per process. Left as it is if the
    files cannot be rewritten: the counts stay right, only more files are read."""
    exited = snapshot_path(directory, index, pid)
    folded = snapshot_path(directory, index, 0)
    with contextlib.suppress(OSError):
        earlier = folded.read_text(encoding="utf-8") if folded.exists() else ""
        texts = [(index, 0, earlier), (index, pid, exited.read_text(encoding="utf-8"))]
        partial = folded.with_suffix(".tmp")
        partial.write_bytes(exposition(merge(texts, live={})))
        partial.replace(folded)
        exited.unlink()


def snapshots(directory: Path) -> Iterator[tuple[int, int, str]]:
    """(worker index, pid, exposition) of every snapshot in `directory`, oldest workers too."""
    for path in sorted(directory.glob(f"{_PREFIX}*{_SUFFIX}")):
        index, _, pid = path.stem.removeprefix(_PREFIX).partition("-")
        if not (index.isdigit() and pid.isdigit()):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:  # removed since the listing
            continue
        yield int(index), int(pid), text


class _Family:
    __slots__ = ("documentation", "kind", "values")

    def __init__(self, documentation: str, kind: str) -> None:
        self.documentation = documentation
        self.kind = kind
        self.values: dict[SampleKey, float] = {}


def merge(expositions: Iterable[tuple[int, int, str]], live: Mapping[int, int]) -> list[Metric]:
    """The pod's families from (index, pid, exposition) triples; `live` maps each running
    worker's index to its pid (see the module docstring for what is summed)."""
    families: dict[str, _Family] = {}
    for index, pid, text in expositions:
        alive = live.get(index) == pid
        for parsed in text_string_to_metric_families(text):
            if parsed.type == "gauge" and not alive:
                continue
            family = families.setdefault(parsed.name, _Family(parsed.documentation, parsed.type))
            per_worker = parsed.name in PER_WORKER_GAUGES
            for sample in parsed.samples:
                if sample.name.endswith("_created"):
                    continue
                labels = {**sample.labels, "worker": str(index)} if per_worker else sample.labels
                key = (sample.name, tuple(labels.items()))
                family.values[key] = family.values.get(key, 0.0) + sample.value
    merged = []
    for name, family in families.items():
        if not family.values:
            continue
        metric = Metric(name, family.documentation, family.kind)
        for (sample_name, label_pairs), value in family.values.items():
            metric.add_sample(sample_name, dict(label_pairs), value)
        merged.append(metric)
    return merged


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def exposition(families: Iterable[Metric]) -> bytes:
    """The text of a Prometheus scrape holding `families`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)
