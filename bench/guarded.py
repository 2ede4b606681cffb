"""The guarded scenarios: what tenancy and guardrails cost a request on the hot path.

Issue 12 asks for auth, limits and guardrails to get a scenario of their own, with CPU per
request against the same run without them. A guarded scenario's proxy is the cache-off one
(`runner.proxy_config`: same upstream, same mapped model) with every guard on:

- `auth.mode: keys` with one key, the one the load generator already sends
  (`Authorization: Bearer sk-bench-client`);
- that key's rpm, tpm and parallel limits, in this process (no Redis), far above what a run
  sends: each request is admitted, its tokens reserved from an estimate and settled on the
  answer's usage;
- a daily budget no run can spend, and a price for the upstream model, so each request is
  checked and each answer charged (in the background);
- a default guardrail policy: personal data redacted, prompt injection blocked, a small
  blocklist, input limits on messages and characters, and for `answers` an output rule that
  screens every answer (each stream event) for secrets.

Beside it, on the same core and in the same interleaved runs, runs the plain proxy of that
configuration without these sections (the `plain` reference): the difference of their CPU per
request is what the guards cost. Nothing is ever refused: a refused request would count as a
failed one and be reported.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from bench import load
from bench.procs import Child, Children, Pinning
from bench.runner import Guarding, proxy_config, start_configured
from edgeproxy.security.auth import hash_key

NAME = "guarded"  # the `--scenario` name of all of them
SCENARIOS = ("guarded-c16", "guarded-pii-c16", "guarded-stream-c16")
KEY = load.HEADERS["authorization"].removeprefix("Bearer ")  # what the load presents
KEY_ID = "bench-client"
# Far above anything a run sends (about 10,000 requests/s at most, 100 tokens each): never a
# refusal, every check made in full.
LIMITS = {"rpm": 1_000_000_000, "tpm": 1_000_000_000_000, "parallel": 100_000}
DAILY_USD = 1_000_000
# Every answer costs something, so every answer is charged (an unpriced model is not).
PRICE = {"input": 2.5, "output": 10.0}
PRICING = f"""\
pricing:
  overrides:
    openai:
      bench-upstream-model:
        {{input: {PRICE["input"]}, output: {PRICE["output"]}, source: "bench: made up",
          as_of: 2026-01-01}}
"""
BLOCKED_TERMS = ("Project Falcon", "internal use only", "do not distribute")
BLOCKED_PATTERN = r"\bACME-\d{4}\b"
MAX_MESSAGES = 64
MAX_PROMPT_CHARS = 100_000


def guard_sections(guards: Guarding) -> str:
    """The auth, limits, budget, pricing and guardrails sections of a guarded proxy (with the
    output rule when `guards` is `answers`)."""
    limits = ", ".join(f"{name}: {value}" for name, value in LIMITS.items())
    terms = ", ".join(f'"{term}"' for term in BLOCKED_TERMS)
    output = "      output: {mode: redact, kinds: [secret]}\n" if guards == "answers" else ""
    return f"""\
auth:
  mode: keys
  keys:
    - id: {KEY_ID}
      hash: sha256:{hash_key(KEY)}
      limits: {{{limits}}}
      budget: {{daily_usd: {DAILY_USD}}}
{PRICING}guardrails:
  default_policy: bench
  policies:
    bench:
      pii: {{mode: redact}}
      injection: {{mode: block}}
      blocklist: {{mode: block, terms: [{terms}], patterns: ['{BLOCKED_PATTERN}']}}
{output}      max_messages: {MAX_MESSAGES}
      max_prompt_chars: {MAX_PROMPT_CHARS}
"""


def guarded_config(port: int, upstream_url: str, guards: Guarding) -> str:
    """The plain proxy's config with the guards' sections: the only difference between the
    two sides of a guarded scenario."""
    return proxy_config(port, upstream_url) + guard_sections(guards)


def start_proxy(
    children: Children,
    pinning: Pinning,
    upstream_url: str,
    guards: Guarding,
    *,
    results: Path,
    label: str,
) -> tuple[str, Child]:
    """The guarded proxy, on the proxy's core, with its base URL; its config is left in
    `results`."""
    config = partial(guarded_config, upstream_url=upstream_url, guards=guards)
    server = start_configured(children, pinning, config, results=results, name=f"{label}proxy")
    return server.url, server.process


def describe() -> str:
    """What the guarded proxies check, for the report."""
    return (
        "Guarded scenarios (bench/guarded.py): the cache-off proxy plus auth.mode keys (one "
        "key, the load's bearer token, hashed with SHA-256), that key's rpm/tpm/parallel "
        "limits (in process, no Redis) and a daily budget, both far above what a run sends, a "
        "price for the upstream model so every answer is charged, and a default guardrail "
        "policy: pii redact (every kind), injection block, a blocklist of "
        f"{len(BLOCKED_TERMS)} terms and 1 pattern, max_messages {MAX_MESSAGES}, "
        f"max_prompt_chars {MAX_PROMPT_CHARS:,}; guarded-stream-c16's proxy also has an output "
        "rule (redact secrets) that screens every event of the answer. plain: the same proxy "
        "without those sections, on the same core, in the same interleaved runs; guarded - "
        "plain and guarded/plain are medians of per-repetition differences and ratios."
    )
