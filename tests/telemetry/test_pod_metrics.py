"""The pod's metrics: each worker's exposition written to a file, the files merged."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from edgeproxy.background import Background
from edgeproxy.telemetry.pod_metrics import (
    MetricsSnapshots,
    exposition,
    merge,
    retire,
    snapshot_path,
    snapshots,
)


def worker_text(requests: int, in_flight: int, breaker: int) -> str:
    return f"""# HELP edgeproxy_requests_total Requests.
# TYPE edgeproxy_requests_total counter
edgeproxy_requests_total{{route="chat",status="200"}} {requests}
# HELP edgeproxy_l2_seconds L2 lookups.
# TYPE edgeproxy_l2_seconds histogram
edgeproxy_l2_seconds_bucket{{le="0.1"}} {requests}
edgeproxy_l2_seconds_bucket{{le="+Inf"}} {requests}
edgeproxy_l2_seconds_count {requests}
edgeproxy_l2_seconds_sum 0.5
edgeproxy_l2_seconds_created 1.7e9
# HELP edgeproxy_in_flight Requests in flight.
# TYPE edgeproxy_in_flight gauge
edgeproxy_in_flight {in_flight}
# HELP edgeproxy_breaker_state 0 closed, 1 half-open, 2 open.
# TYPE edgeproxy_breaker_state gauge
edgeproxy_breaker_state{{deployment="d"}} {breaker}
"""


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_counters_and_histograms_are_summed_over_every_worker_even_one_that_exited() -> None:
    files = [
        (0, 100, worker_text(3, 1, 0)),
        (0, 99, worker_text(5, 7, 2)),
        (1, 101, worker_text(4, 2, 2)),
    ]
    pod = samples(exposition(merge(files, live={0: 100, 1: 101})))
    assert pod[("edgeproxy_requests_total", (("route", "chat"), ("status", "200")))] == 12
    assert pod[("edgeproxy_l2_seconds_bucket", (("le", "+Inf"),))] == 12
    assert pod[("edgeproxy_l2_seconds_sum", ())] == 1.5
    assert not any(name.endswith("_created") for name, _ in pod)


def test_gauges_come_from_live_workers_summed_or_labelled_per_worker() -> None:
    files = [
        (0, 100, worker_text(3, 1, 0)),
        (0, 99, worker_text(5, 7, 2)),
        (1, 101, worker_text(4, 2, 2)),
    ]
    pod = samples(exposition(merge(files, live={0: 100, 1: 101})))
    assert pod[("edgeproxy_in_flight", ())] == 3  # the exited worker's 7 are gone with it
    breakers = {labels: v for (name, labels), v in pod.items() if name == "edgeproxy_breaker_state"}
    assert breakers == {
        (("deployment", "d"), ("worker", "0")): 0,
        (("deployment", "d"), ("worker", "1")): 2,
    }


async def test_a_worker_s_snapshot_is_written_at_start_and_again_when_it_stops(
    tmp_path: Path,
) -> None:
    count = [1]
    path = snapshot_path(tmp_path, 3, 1234)
    writer = MetricsSnapshots(path, lambda: worker_text(count[0], 0, 0).encode(), interval=3600)
    writer.start(Background())
    assert list(snapshots(tmp_path)) == [(3, 1234, worker_text(1, 0, 0))]
    count[0] = 2
    await writer.stop()
    assert list(snapshots(tmp_path)) == [(3, 1234, worker_text(2, 0, 0))]


def reload_text(failed: int, loaded_at: float) -> str:
    return f"""# HELP edgeproxy_config_reload_failed 1 while the last reload was refused.
# TYPE edgeproxy_config_reload_failed gauge
edgeproxy_config_reload_failed {failed}
# HELP edgeproxy_config_last_reload_success_timestamp_seconds When the configuration loaded.
# TYPE edgeproxy_config_last_reload_success_timestamp_seconds gauge
edgeproxy_config_last_reload_success_timestamp_seconds {loaded_at}
"""


def test_each_worker_s_reload_state_is_its_own_not_a_sum() -> None:
    # Summed, two refusing workers read 2, and the alert `max(...) == 1` never fires.
    files = [(0, 100, reload_text(1, 1.7e9)), (1, 101, reload_text(1, 1.8e9))]
    pod = samples(exposition(merge(files, live={0: 100, 1: 101})))
    assert pod == {
        ("edgeproxy_config_reload_failed", (("worker", "0"),)): 1,
        ("edgeproxy_config_reload_failed", (("worker", "1"),)): 1,
        ("edgeproxy_config_last_reload_success_timestamp_seconds", (("worker", "0"),)): 1.7e9,
        ("edgeproxy_config_last_reload_success_timestamp_seconds", (("worker", "1"),)): 1.8e9,
    }


def test_a_slot_s_exited_processes_leave_one_file_with_all_their_counts(tmp_path: Path) -> None:
    for pid, requests in ((97, 3), (98, 5), (100, 4)):
        snapshot_path(tmp_path, 0, pid).write_text(worker_text(requests, 1, 0))
    before = samples(exposition(merge(snapshots(tmp_path), live={0: 100})))
    retire(tmp_path, 0, 97)
    retire(tmp_path, 0, 98)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "metrics-0-0.prom",
        "metrics-0-100.prom",
    ]
    assert samples(exposition(merge(snapshots(tmp_path), live={0: 100}))) == before
