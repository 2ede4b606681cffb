"""Choosing where a request goes: model tables, balancing (and later breakers and retries)."""
