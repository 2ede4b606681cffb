"""Presenting results: a markdown table for people, JSON lines with every field for tools."""

from __future__ import annotations

import datetime
import math
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import cached, guarded, observed, targets
from bench.procs import CLOCK_TICKS, Pinning
from bench.runner import (
    L2_VARIANTS,
    MISS_VARIANTS,
    SCENARIOS,
    SEMANTIC_DISTINCT,
    SEMANTIC_PAIRS,
    Reference,
    Settings,
)
from bench.soak import PER_10K
from bench.targets import CpuRatio

# Measured elsewhere with the same method, so a run can be read against them at a glance.
REFERENCES = (
    "LiteLLM 1.106.2: ≈ 10.5 ms CPU per non-streaming request (≈ 93 RPS/core), +10.3 ms p50 at "
    "c=1; ≈ 31 ms CPU per 20-chunk stream.",
    "Bare 60-line aiohttp pass-through: ≈ 0.23 ms CPU per request (≈ 4,300 RPS/core), +0.3 ms "
    "p50 at c=1 when the issue was written; it runs beside the proxy (bench/floor.py) in this "
    "run's conditions: see the table against the floor and nginx.",
)
TARGET_CPU_MS = 0.45  # per non-streaming request
TARGET_ADDED_P50_MS = 0.5  # at c=1
TARGET_TRANSLATION_MS_PER_CHUNK = 0.1  # CPU added per streamed chunk by translating it
TARGET_L1_HIT_CPU_MS = 0.15  # per request answered from L1 (the caching issue)
QUIET_OTHER_CORES = 0.1  # CPU taken by everything else during the runs, above which we warn

_COLUMNS = (
    ("scenario", "scenario", None),
    ("c", "concurrency", None),
    ("RPS direct", "rps_direct", 0),
    ("RPS proxy", "rps_proxy", 0),
    ("proxy/direct", "rps_ratio", 2),
    ("p50 direct ms", "p50_direct_ms", 2),
    ("p50 proxy ms", "p50_proxy_ms", 2),
    ("+p50 ms", "p50_added_ms", 2),
    ("p99 direct ms", "p99_direct_ms", 2),
    ("p99 proxy ms", "p99_proxy_ms", 2),
    ("+p99 ms", "p99_added_ms", 2),
    ("proxy CPU ms/req", "proxy_cpu_ms_per_request", 3),
    ("proxy CPU ms/chunk", "proxy_cpu_ms_per_chunk", 4),
    ("proxy core busy", "proxy_core_busy", 2),
    ("proxy RSS MiB", "proxy_rss_mib", 1),
)


def _side_by_side(proxy: str, reference: Reference) -> tuple[tuple[str, str, int | None], ...]:
    """The columns setting a proxy (`proxy`: what the table calls it) against the same proxy
    with something off (`reference`), measured in the same runs."""
    return (
        ("scenario", "scenario", None),
        ("c", "concurrency", None),
        (f"{proxy} CPU ms/req", "proxy_cpu_ms_per_request", 3),
        (f"{reference} CPU ms/req", f"{reference}_cpu_ms_per_request", 3),
        (f"{proxy} - {reference} ms", f"proxy_cpu_added_over_{reference}_ms", 3),
        (f"{proxy}/{reference}", f"proxy_cpu_ratio_to_{reference}", 2),
        (f"RPS {proxy}", "rps_proxy", 0),
        (f"RPS {reference}", f"rps_{reference}", 0),
        (f"+p50 {proxy} ms", "p50_added_ms", 2),
        (f"+p50 {reference} ms", f"p50_{reference}_added_ms", 2),
        (f"+p99 {proxy} ms", "p99_added_ms", 2),
        (f"+p99 {reference} ms", f"p99_{reference}_added_ms", 2),
    )


# The references issue 11's targets are ratios to (plain and off have tables of their own).
_DATA_PLANE_REFERENCES = frozenset({"floor", "nginx"})

_REFERENCE_COLUMNS = (
    ("scenario", "scenario", None),
    ("c", "concurrency", None),
    ("proxy CPU ms/req", "proxy_cpu_ms_per_request", 3),
    ("floor CPU ms/req", "floor_cpu_ms_per_request", 3),
    ("nginx CPU ms/req", "nginx_cpu_ms_per_request", 3),
    ("proxy/floor", "proxy_cpu_ratio_to_floor", 2),
    ("proxy/nginx", "proxy_cpu_ratio_to_nginx", 2),
    ("+p50 proxy ms", "p50_added_ms", 2),
    ("+p50 floor ms", "p50_floor_added_ms", 2),
    ("+p50 nginx ms", "p50_nginx_added_ms", 2),
)


def _cell(value: Any, digits: int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if digits is None:
        return str(value)
    return f"{value:,.{digits}f}"


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _git_commit(root: Path) -> str | None:
    """HEAD, marked `-dirty` when tracked files differ from it (numbers then describe the tree)."""
    head = _git(root, "rev-parse", "HEAD")
    if head is None:
        return None
    return head + ("-dirty" if _git(root, "status", "--porcelain", "--untracked-files=no") else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def metadata(root: Path, settings: Settings, pinning: Pinning, quick: bool) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(root),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "repetitions": settings.repeat,
        "run_max_requests": settings.run.requests,
        "run_max_seconds": settings.run.seconds,
        "warmup_max_requests": settings.warmup.requests,
        "warmup_max_seconds": settings.warmup.seconds,
        "quick": quick,
        "pinning": pinning.as_dict(),
        "clock_ticks_per_second": CLOCK_TICKS,
        "argv": sys.argv[1:],
    }


def _tidy(value: Any) -> Any:
    """Floats to 4 decimals: nanosecond digits of a noisy measurement are not information."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {key: _tidy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tidy(item) for item in value]
    return value


def write_jsonl(path: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """One self-contained line per scenario: its fields plus the run's metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [orjson.dumps(_tidy({**row, **meta})) for row in rows]
    path.write_bytes(b"\n".join(lines) + b"\n")


def _verdicts(rows: list[dict[str, Any]]) -> list[str]:
    by_name = {row["scenario"]: row for row in rows}
    lines = []
    for name in ("nonstream-c16", "nonstream-c1", "passthrough-c16"):
        cpu = by_name.get(name, {}).get("proxy_cpu_ms_per_request")
        if cpu:
            met = "met" if cpu <= TARGET_CPU_MS else "MISSED"
            lines.append(
                f"- Target CPU ≤ {TARGET_CPU_MS} ms per non-streaming request: {name} "
                f"{cpu:.3f} ms (≈ {1000 / cpu:,.0f} RPS/core) — {met}."
            )
    added = by_name.get("nonstream-c1", {}).get("p50_added_ms")
    if added is not None:
        met = "met" if added <= TARGET_ADDED_P50_MS else "MISSED"
        lines.append(
            f"- Target ≤ +{TARGET_ADDED_P50_MS} ms p50 at c=1: "
            f"nonstream-c1 +{added:.2f} ms — {met}."
        )
    stream = by_name.get("stream-c16", {})
    if stream.get("proxy_cpu_ms_per_request"):
        lines.append(
            f"- Streaming: {stream['proxy_cpu_ms_per_request']:.3f} ms CPU per stream of "
            f"{stream['events_per_stream']:.0f} SSE events (LiteLLM ≈ 31 ms)."
        )
    lines += _cache_verdicts(by_name)
    translated = by_name.get("stream-xdialect-c16", {})
    if translated.get("proxy_cpu_ms_per_request") and stream.get("proxy_cpu_ms_per_request"):
        extra = translated["proxy_cpu_ms_per_request"] - stream["proxy_cpu_ms_per_request"]
        per_chunk = extra / translated["events_per_stream"]
        met = "met" if per_chunk < TARGET_TRANSLATION_MS_PER_CHUNK else "MISSED"
        lines.append(
            f"- Translation (Anthropic upstream to an OpenAI client): "
            f"{translated['proxy_cpu_ms_per_request']:.3f} ms CPU per stream against "
            f"{stream['proxy_cpu_ms_per_request']:.3f} ms passed through, {per_chunk:.4f} ms "
            f"more per chunk (target < {TARGET_TRANSLATION_MS_PER_CHUNK}) — {met}."
        )
    return lines


def _share(row: dict[str, Any]) -> str:
    """`99.98 % hit-l1`: the share of the measured proxy answers that were the expected hit."""
    return f"{_pct(row['cache_hit_share'], 2)} {row['cache_expected']}"


def _measured(
    by_name: dict[str, dict[str, Any]], names: Iterable[str]
) -> Iterator[tuple[str, dict[str, Any], float, str]]:
    """The named cache scenarios that were measured: name, row, proxy CPU ms per request and,
    when their answers were not (nearly) all of the expected kind, why the numbers are void."""
    for name in names:
        row = by_name.get(name, {})
        if cpu := row.get("proxy_cpu_ms_per_request"):
            void = "" if row["cache_hits_ok"] else "NOT VALID: too few (see PROBLEMS)"
            yield name, row, cpu, void


def _cache_verdicts(by_name: dict[str, dict[str, Any]]) -> list[str]:
    """L1 hits against their CPU target; a miss, L2 and semantic hits (no target) for the
    record. A scenario whose answers were not (nearly) all of its kind gets no verdict: it
    measured something else."""
    lines = []
    for name, row, cpu, void in _measured(by_name, ("l1-hit-c16", "l1-hit-c1")):
        met = void or ("met" if cpu <= TARGET_L1_HIT_CPU_MS else "MISSED")
        lines.append(
            f"- Target CPU ≤ {TARGET_L1_HIT_CPU_MS} ms per L1 hit: {name} {cpu:.3f} ms "
            f"(≈ {1000 / cpu:,.0f} RPS/core), +p50 {_cell(row['p50_added_ms'], 2)} ms over "
            f"a direct call to the fake upstream, {_share(row)} — {met}."
        )
    off = by_name.get("nonstream-c16", {}).get("proxy_cpu_ms_per_request")
    for name, row, cpu, void in _measured(by_name, ("l1-miss-c16",)):
        cost = ""
        if off:
            cost = f" against nonstream-c16 {off:.3f} ms with the cache off ({cpu - off:+.3f} ms)"
        lines.append(
            f"- Cache on, every request a new question (no target): {name} {cpu:.3f} ms "
            f"proxy CPU per request{cost}: the key, the capture and the store of each answer, "
            f"{_share(row)}{_suffix(void)}."
        )
    for name, row, cpu, void in _measured(by_name, ("l2-hit-c16", "l2-hit-c1")):
        lines.append(
            f"- L2 hit (Redis; no target): {name} {cpu:.3f} ms proxy CPU per request, "
            f"+p50 {_cell(row['p50_added_ms'], 2)} ms, {_share(row)}{_suffix(void)}."
        )
    semantic = ("semantic-hit-c16", "semantic-hit-c1", "semantic-repeat-c16", "semantic-repeat-c1")
    for name, row, cpu, void in _measured(by_name, semantic):
        how = "each text embedded" if "-hit-" in name else "embeddings-cache hits"
        lines.append(
            f"- Semantic hit ({how}; no target): {name} {cpu:.3f} ms proxy CPU per request "
            f"(≈ {1000 / cpu:,.0f} RPS/core), {_cell(row['rps_proxy'], 0)} RPS, +p50 "
            f"{_cell(row['p50_added_ms'], 2)} ms, +p99 {_cell(row['p99_added_ms'], 2)} ms, "
            f"{_share(row)}{_suffix(void)}."
        )
    return lines


def _suffix(void: str) -> str:
    return f" — {void}" if void else ""


def _machine_noise(rows: list[dict[str, Any]]) -> list[str]:
    """What everything besides the measured processes took during the runs: on a shared
    machine the proxy's CPU per request and latencies come out inflated, and the reader must
    know. Redis counts here too (the l2-hit scenarios), as does the kernel's loopback work
    when it is not charged to a process."""
    busy = [(row["scenario"], row["other_cores_busy"]) for row in rows if "other_cores_busy" in row]
    if not busy:
        return []
    shown = ", ".join(f"{name} {_cell(value, 2)}" for name, value in busy)
    line = (
        "CPU outside the proxy, the fake upstream and the load generator during the runs "
        f"(median cores busy): {shown}."
    )
    noisy = [name for name, value in busy if value is not None and value > QUIET_OTHER_CORES]
    if noisy:
        line += (
            f" WARNING, the machine was not quiet (over {QUIET_OTHER_CORES} core) during "
            f"{', '.join(noisy)}: their numbers may be inflated."
        )
    return [line]


def _is_cache_row(row: dict[str, Any]) -> bool:
    scenario = SCENARIOS.get(row["scenario"])
    return scenario is not None and scenario.cache is not None


def _cache_notes(rows: list[dict[str, Any]]) -> list[str]:
    """How the cache scenarios were set up and what the proxy said it did, when any ran."""
    cache_rows = [row for row in rows if _is_cache_row(row)]
    if not cache_rows:
        return []
    lines = [
        "",
        "Cache scenarios (bench/cached.py): proxies of their own with the cache on for their "
        "model group (the other scenarios' proxy keeps it off). l1-hit: the default L1, no "
        "Redis, one question asked over and over. l1-miss: the same proxy, every request a "
        f"question of its own ({MISS_VARIANTS:,} in turn, never one twice), so each is a miss "
        "answered upstream and stored (L1 fills and then evicts). l2-hit: an L1 of one entry "
        "over the "
        "machine's Redis (127.0.0.1:6379, a prefix of this run's own, deleted afterwards; "
        f"Redis itself not pinned and its CPU not counted), {L2_VARIANTS} questions in turn, "
        "so every lookup misses L1 and is one Redis GET. Each is prefilled before its warm-up. "
        "Direct is still the fake upstream answering the same requests: what a hit saves over "
        "the cheapest possible upstream call (a real provider takes hundreds of ms); at c=16 "
        "that side is bound by the core the fake shares with the load generator, so hits can "
        "be faster than it (a negative +p50). "
        "semantic-hit / semantic-repeat: the default L1, no Redis, and the semantic layer "
        "serving for the group (threshold 0.95, budget 1 s); prefilled with "
        f"{len(SEMANTIC_PAIRS)} questions, then asked only their paraphrases (from "
        "tests/data/semantic_pairs.jsonl), which are not stored under their own keys, so each "
        f"stays a semantic hit. semantic-hit cycles over {SEMANTIC_DISTINCT:,} distinct texts "
        "(the paraphrases with trailing whitespace of their own: the same tokens), more than "
        "the proxy's embeddings cache holds, so every request runs the model (in a worker "
        "thread on the proxy's core, counted in its CPU); semantic-repeat asks the "
        f"{len(SEMANTIC_PAIRS)} paraphrases as written, so the model never runs after the "
        "first round: what a repeated paraphrase costs.",
    ]
    for row in cache_rows:
        if "skipped" in row:
            lines.append(f"- {row['scenario']}: SKIPPED — {row['skipped']}.")
        elif "failed" in row:
            lines.append(f"- {row['scenario']}: FAILED (see PROBLEMS).")
        else:
            lines.append(
                f"- {row['scenario']}: {_share(row)} of {row['cache_answers']:,} measured "
                f"proxy answers (x-edgeproxy-cache seen: {row['cache_statuses']})."
            )
    return lines


def _against_references(rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    """Issue 11's table: the proxy's CPU per request and added p50 next to the floor's and
    nginx's from the same runs, the ratios, and each target's verdict."""
    shown = [
        row
        for row in rows
        if _DATA_PLANE_REFERENCES & set(row.get("references", ()))
        or row["scenario"] in targets.DATA_PLANE
    ]
    if not shown:
        return []
    described = meta.get("references", {})
    if not any(_DATA_PLANE_REFERENCES & set(row.get("references", ())) for row in shown):
        why = "; ".join(
            f"{name}: {what}" for name, what in described.items() if name in _DATA_PLANE_REFERENCES
        )
        return [f"- Issue 11's targets (ratios to the floor and nginx): not judged ({why})."]
    lines = []
    for row in shown:
        verdict = targets.judge(row)
        cells = [_cell(row.get(key), digits) for _, key, digits in _REFERENCE_COLUMNS]
        cells += [verdict.target, verdict.outcome] if verdict else ["-", "-"]
        lines.append(cells)
    titles = [title for title, _, _ in _REFERENCE_COLUMNS] + ["target", "verdict"]
    return [
        "",
        "**Against the floor and nginx (issue 11's targets, measured in the same runs)**",
        "",
        *_table(titles, lines, first_left=True),
        "",
        f"- floor: {described.get('floor', '-')}. The bare aiohttp pass-through "
        "(bench/floor.py): maps the model name, relays streams chunk by chunk; for l1-hit, "
        "the same answering repeated bodies from a dict (filled by its warm-up).",
        f"- nginx: {described.get('nginx', '-')}. A plain reverse proxy to the fake upstream, "
        "one worker on the proxy's core, upstream keep-alive, proxy_buffering off (config in "
        "bench/results/). It maps no model name (nginx cannot read JSON) and forwards the body "
        "as sent: a lower bound for any proxy that must read the request, not a like-for-like "
        "rival. Its CPU is its master's and its worker's.",
        "- proxy/floor and proxy/nginx are medians of per-repetition ratios of CPU per "
        "request; +p50 is over a direct call to the fake upstream, as in the table above.",
    ]


def _against_same_proxy(
    rows: list[dict[str, Any]],
    *,
    proxy: str,
    reference: Reference,
    title: str,
    about: str,
    target: CpuRatio | None = None,
) -> list[str]:
    """Each row measured beside `reference` (the same proxy with something off), its CPU per
    request next to the reference's from the same runs, and the difference: what the
    something costs; with `target`, each row's verdict."""
    shown = [row for row in rows if reference in row.get("references", ())]
    if not shown:
        return []
    columns = _side_by_side(proxy, reference)
    lines = [[_cell(row.get(key), digits) for _, key, digits in columns] for row in shown]
    titles = [name for name, _, _ in columns]
    if target is not None:
        titles += ["target", "verdict"]
        for row, cells in zip(shown, lines, strict=True):
            verdict = target.judge(row)
            cells += [verdict.target, verdict.outcome]
    return [
        "",
        f"**{title}**",
        "",
        *_table(titles, lines, first_left=True),
        "",
        f"- {about}",
        "- +p50/+p99 are over a direct call to the fake upstream, as in the first table.",
    ]


def markdown(
    rows: list[dict[str, Any]], meta: dict[str, Any], settings: Settings, pinning: Pinning
) -> str:
    """The scenarios' table with how it was measured, the targets, and any problems; scenarios
    that were skipped or failed are not in the table but in the notes."""
    measured = [row for row in rows if "skipped" not in row and "failed" not in row]
    header = "| " + " | ".join(title for title, _, _ in _COLUMNS) + " |"
    rule = "|" + "|".join("---" if digits is None else "---:" for _, _, digits in _COLUMNS) + "|"
    body = [
        "| " + " | ".join(_cell(row.get(key), digits) for _, key, digits in _COLUMNS) + " |"
        for row in measured
    ]
    run, warm = settings.run, settings.warmup
    notes = [
        "",
        f"Measured in the proxy's place: {meta['measured']}.",
        f"edgeproxy {meta['git_commit'] or '(no git)'} on {meta['cpu_model']}, "
        f"{meta['cpus']} CPUs, {meta['date']}.",
        f"Medians of {settings.repeat} repetitions per side, direct and proxy interleaved "
        f"(ABBA order); each run stops at {run.requests:,} requests or {run.seconds:g} s, after "
        f"a discarded warm-up ({warm.requests:,} requests or {warm.seconds:g} s). +p50/+p99 are "
        "medians of the per-repetition differences.",
        pinning.describe(),
        f"Proxy CPU is utime+stime from /proc/<pid>/stat ({CLOCK_TICKS} ticks/s) over each proxy "
        "run, divided by the requests completed; a chunk is one relayed SSE event. Core busy = "
        "proxy CPU seconds per wall second (1.00 = its core saturated). RSS after the scenario.",
        *_machine_noise(measured),
        *_cache_notes(rows),
        "",
        "Reference points:",
        *(f"- {ref}" for ref in REFERENCES),
        "",
        "Against the targets:",
        *_verdicts(measured),
        *_against_references(measured, meta),
        *_against_same_proxy(
            measured,
            proxy="guarded",
            reference="plain",
            title="Tenancy and guardrails on the hot path (issue 12, measured in the same runs)",
            about=guarded.describe(),
        ),
        *_against_same_proxy(
            measured,
            proxy="on",
            reference="off",
            title="Observability on the hot path (issue 13, measured in the same runs)",
            about=observed.describe(),
            target=observed.TARGET,
        ),
    ]
    problems = [problem for row in measured if (problem := _failures(row))]
    problems += [f"- {problem}" for row in rows if (problem := cached.hit_problem(row))]
    if problems:
        notes += ["", "PROBLEMS:", *problems]
    return "\n".join([header, rule, *body, *notes])


def _failures(row: dict[str, Any]) -> str | None:
    """Failed and stalled requests of every side of a scenario, when there were any."""
    sides = ["direct", "proxy", *row.get("references", [])]
    errors = {side: row[f"errors_{side}"] for side in sides}
    stalled = {side: row[f"stalled_{side}"] for side in sides}
    if not any(errors.values()) and not any(stalled.values()):
        return None
    return (
        f"- {row['scenario']}: errors {', '.join(f'{k} {v}' for k, v in errors.items())}; "
        f"stalled {', '.join(f'{k} {v}' for k, v in stalled.items())}; "
        f"samples: {row['error_samples']}"
    )


def soak_markdown(row: dict[str, Any], meta: dict[str, Any]) -> str:
    """The memory check's own section: RSS as the requests went by, its trend, the target."""
    verdict = targets.judge_rss(row)
    readings = ", ".join(f"{requests:,}: {mib:.1f}" for requests, mib in row["rss_samples"])
    lines = [
        "",
        "**Memory: the proxy's RSS under sustained load**",
        "",
        f"{row['description']} (bench/soak.py); {row['requests']:,} sent in "
        f"{row['seconds']:.1f} s (cap {row['planned_requests']:,} requests or "
        f"{row['planned_seconds']:g} s). Measured in the proxy's place: {meta['measured']}.",
        "",
        f"- RSS MiB by requests sent: {readings}.",
        f"- RSS {row['rss_mib_start']:.1f} MiB at start, {row['rss_mib_final']:.1f} MiB at the "
        f"end; growth over the second half {_cell(row['rss_growth_kib_per_10k'], 1)} KiB per "
        f"{PER_10K:,} requests (least-squares slope).",
        f"- Target {verdict.target} — {verdict.outcome}.",
    ]
    if row["errors"] or row["stalled"]:
        lines += [
            "",
            "SOAK PROBLEMS:",
            f"- {row['errors']:,} requests failed and {row['stalled']:,} stalled; samples: "
            f"{row['error_samples']}",
        ]
    return "\n".join(lines)


def _pct(share: float | None, digits: int = 1) -> str:
    return "-" if share is None else f"{share * 100:.{digits}f} %"


_CHAOS_COLUMNS = (
    ("requests", "issued", 0),
    ("succeeded", "completed", 0),
    ("failed", "errors", 0),
    ("stalled", "stalled", 0),
    ("RPS", "rps", 0),
    ("extra attempts/req", "extra_attempts_per_request", 4),
    ("p50 ms", "p50_ms", 2),
    ("p99 ms", "p99_ms", 2),
    ("p99.9 ms", "p999_ms", 2),
    ("max ms", "max_ms", 2),
    ("flapping breaker opened", "flapping_breaker_opened", 0),
)
_CHAOS_DEPLOYMENT_COLUMNS = (
    ("proxy attempts", "proxy_attempts"),
    ("proxy-seen failures", "proxy_failures"),
    ("breaker opened", "breaker_opened"),
    ("upstream saw", "upstream_calls"),
    ("failed by the flap", "upstream_failed_by_flap"),
    ("served (client got 200)", "served"),
)


def _table(titles: list[str], lines: list[list[str]], first_left: bool = False) -> list[str]:
    rule = ["---" if first_left and i == 0 else "---:" for i in range(len(titles))]
    return [f"| {' | '.join(row)} |" for row in (titles, rule, *lines)]


def _failed_answer(sample: dict[str, Any]) -> str:
    return (
        f"HTTP {sample['status']} after {sample['attempts'] or '?'} attempt(s), last at "
        f"{sample['deployment']}, x-request-id {sample['request_id']}: {sample['body']}"
    )


def _chaos_problems(row: dict[str, Any]) -> list[str]:
    problems = []
    if row["errors"] or row["stalled"]:
        denied = row["retry_budget_denied"]
        why = (
            f" The proxy's retry budget denied {denied} retries in the same run." if denied else ""
        )
        problems.append(
            f"- {row['errors']:,} client requests failed and {row['stalled']:,} stalled.{why}"
        )
        problems += [f"  - {_failed_answer(sample)}" for sample in row["failure_samples"]]
        transport = [e for e in row["error_samples"] if not e.startswith("HTTP ")]
        problems += [f"  - transport: {e}" for e in transport]
    if row["failure_times"]:
        times = ", ".join(
            f"{f['phase']}+{f['into_phase_s']:.3f}" for f in row["failure_times"][:30]
        )
        problems.append(
            f"- Failed answers by the flapping upstream's phase: {row['failures_by_phase']}; "
            f"seconds into that phase (first 30): {times}."
        )
    if row["answers_without_attempts"]:
        problems.append(
            f"- {row['answers_without_attempts']} answers carried no x-edgeproxy-attempts."
        )
    counted = {
        "x-edgeproxy-attempts": row["attempts_total"],
        "/admin/routing": row["proxy_attempts_total"],
        "the upstreams": row["upstream_calls_total"],
    }
    if len({v for v in counted.values() if v is not None}) > 1:
        problems.append(
            "- Upstream attempts disagree: "
            + ", ".join(f"{who} {n}" for who, n in counted.items())
            + " (a failed client request has no header to count)."
        )
    if row["issued"] >= row["request_cap"]:
        problems.append(
            f"- The request cap ({row['request_cap']:,}) ended the run before its time limit."
        )
    return problems


def chaos_markdown(row: dict[str, Any], meta: dict[str, Any]) -> str:
    """The chaos run's own section: client outcome, what it cost upstream, and each deployment."""
    summary = [_cell(row.get(key), digits) for _, key, digits in _CHAOS_COLUMNS]
    deployments = [
        [name, *(_cell(d.get(key), 0) for _, key in _CHAOS_DEPLOYMENT_COLUMNS)]
        for name, d in row["deployments"].items()
    ]
    success = row["success_rate"]
    met = "met" if success == 1.0 else "MISSED"
    by_attempts = ", ".join(f"{k} → {v:,}" for k, v in row["requests_by_attempts"].items())
    lines = [
        "",
        "**Chaos: one of three deployments flapping**",
        "",
        f"{row['description']}; {row['seconds']:.1f} s of load (cap {row['planned_seconds']:g} s "
        f"or {row['request_cap']:,} requests), breaker reset_timeout "
        f"{row['breaker_reset_timeout_s']:g} s, other routing settings default. edgeproxy "
        f"{meta['git_commit'] or '(no git)'}, {meta['date']}.",
        "",
        *_table([title for title, _, _ in _CHAOS_COLUMNS], [summary]),
        "",
        *_table(
            ["deployment", *(title for title, _ in _CHAOS_DEPLOYMENT_COLUMNS)],
            deployments,
            first_left=True,
        ),
        "",
        f"- Target 100 % client success: {_pct(success, 3)} ({row['completed']:,} of "
        f"{row['issued']:,}) — {met}.",
        f"- Without the proxy: the flapping upstream was down {_pct(row['flapping_down_share'])} "
        "of the window, so a client calling it alone would have failed that share of its "
        "requests, and one spreading its calls evenly over the three about "
        f"{_pct(row['direct_failure_share_one_in_three'])}.",
        f"- Upstream attempts per request (x-edgeproxy-attempts): {by_attempts}; "
        f"{row['attempts_total']:,} in all for {row['answers']:,} answers. Counted by "
        f"/admin/routing: {_cell(row['proxy_attempts_total'], 0)}; by the upstreams: "
        f"{_cell(row['upstream_calls_total'], 0)}.",
        "- The flapping deployment was kept out (breaker open or probing) in "
        f"{_pct(row['flapping_out_share_while_down'])} of the looks at /admin/routing while it "
        f"was down and {_pct(row['flapping_out_share_while_up'])} while it was up "
        f"({row['breaker_samples']} looks, every {row['breaker_poll_s']:g} s). Retry budget "
        f"denials: {_cell(row['retry_budget_denied'], 0)}.",
        "- p50/p99 are over succeeded requests; extra attempts/req = (sum of "
        "x-edgeproxy-attempts - answers) / answers.",
    ]
    problems = _chaos_problems(row)
    if problems:
        lines += ["", "CHAOS PROBLEMS:", *problems]
    return "\n".join(lines)
