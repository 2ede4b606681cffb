"""edgeproxy: a lean LLM API sidecar proxy."""

__version__ = "0.1.0"
