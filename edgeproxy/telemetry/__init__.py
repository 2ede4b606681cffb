"""Logs now; metrics, cost and traces as they arrive."""
