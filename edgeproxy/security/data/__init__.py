"""Data files of the guardrails: the prompt-injection classifier's weights."""
