"""Issue 11's targets for the data plane, and how a run's rows are judged against them.

The CPU targets are ratios to a reference measured in the same interleaved runs (the aiohttp
floor, bench/floor.py; for L1 hits the floor answering from a dict), so the machine's speed
and whatever else it runs cancel out of them. The latency target sets the proxy's added p50 at
c=1 against nginx's; the memory target is judged on the soak (bench/soak.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.runner import Reference

MET = "met"
MISSED = "MISSED"
RSS_MIB = 40.0  # the "40 MB", read as MiB like every RSS the bench reports
RSS_REQUESTS = 100_000
# "No growth trend": at most this slope over the soak's second half, about 10 bytes a request.
RSS_GROWTH_KIB_PER_10K = 100.0


@dataclass(frozen=True)
class Verdict:
    """What a target asks (`target`), and `met`, `MISSED` or `not judged: <why>`."""

    target: str
    outcome: str


@dataclass(frozen=True)
class CpuRatio:
    """The proxy's CPU per request at most `most` times the `reference`'s."""

    reference: Reference
    most: float

    @property
    def text(self) -> str:
        return f"≤ {self.most:.2f}x {self.reference}"

    def judge(self, row: dict[str, Any]) -> Verdict:
        ratio = row.get(f"proxy_cpu_ratio_to_{self.reference}")
        if ratio is None:
            return Verdict(self.text, f"not judged: no {self.reference} in this run")
        return Verdict(self.text, MET if ratio <= self.most else MISSED)


@dataclass(frozen=True)
class AddedLatency:
    """The proxy's added p50 over a direct call at most `slack_ms` above the `reference`'s."""

    reference: Reference
    slack_ms: float

    @property
    def text(self) -> str:
        return f"+p50 ≤ {self.reference}'s + {self.slack_ms:g} ms"

    def judge(self, row: dict[str, Any]) -> Verdict:
        ours, theirs = row.get("p50_added_ms"), row.get(f"p50_{self.reference}_added_ms")
        if ours is None or theirs is None:
            return Verdict(self.text, f"not judged: no {self.reference} in this run")
        return Verdict(self.text, MET if ours - theirs <= self.slack_ms else MISSED)


DATA_PLANE: dict[str, CpuRatio | AddedLatency] = {
    "nonstream-c1": AddedLatency("nginx", 0.1),
    "nonstream-c16": CpuRatio("floor", 0.4),
    "stream-c16": CpuRatio("floor", 0.5),
    "stream-events-c16": CpuRatio("floor", 0.6),
    "l1-hit-c16": CpuRatio("floor", 0.3),
}


def judge(row: dict[str, Any]) -> Verdict | None:
    """The row's verdict against its scenario's target; None when the scenario has none. A
    cache scenario whose answers were not (nearly) all hits measured something else."""
    target = DATA_PLANE.get(row["scenario"])
    if target is None:
        return None
    if row.get("cache_hits_ok") is False:
        return Verdict(target.text, "not judged: too few hits (see PROBLEMS)")
    return target.judge(row)


def rss_target() -> str:
    return (
        f"RSS ≤ {RSS_MIB:g} MiB after {RSS_REQUESTS:,} requests, growing ≤ "
        f"{RSS_GROWTH_KIB_PER_10K:g} KiB per 10,000 over the second half"
    )


def judge_rss(row: dict[str, Any]) -> Verdict:
    """The soak's verdict: judged only on a full soak whose every request succeeded."""
    growth = row["rss_growth_kib_per_10k"]
    if row["requests"] < RSS_REQUESTS:
        why = f"{row['requests']:,} requests, not {RSS_REQUESTS:,}"
    elif row["errors"] or row["stalled"]:
        why = f"{row['errors'] + row['stalled']:,} requests failed or stalled"
    elif growth is None:
        why = "too few RSS readings for a trend"
    else:
        met = row["rss_mib_final"] <= RSS_MIB and growth <= RSS_GROWTH_KIB_PER_10K
        return Verdict(rss_target(), MET if met else MISSED)
    return Verdict(rss_target(), f"not judged: {why}")
