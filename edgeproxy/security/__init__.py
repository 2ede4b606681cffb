"""Tenancy and guardrails: who is calling (auth), how much they may ask (limits, budgets), and
what may leave the pod or come back into it (PII, prompt screening, blocklists, the Shield hook).

Each module is pure logic or one I/O concern; the pipeline stages that use them are built once
from the configuration, only for what it enables.
"""
