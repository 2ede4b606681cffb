"""Redis for the cache tests: the machine's server, private servers and a private Cluster.

Without Redis these fixtures skip with the reason; with CI=true they fail instead. Nothing here
is autouse: tests that do not ask for Redis never need it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.support.redis_servers import (
    SHARED_HOST,
    SHARED_PORT,
    require_redis,
)


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test (or run) uses."""
    return f"edgeproxy-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_url(redis_prefix: str) -> Iterator[str]:
    """The machine's Redis; every key under `redis_prefix` is removed after the test."""
    require_redis(SHARED_HOST, SHARED_PORT)
    yield f"redis://{SHARED_HOST}:{SHARED_PORT}/0"
    with redis.Redis(host=SHARED_HOST, port=SHARED_PORT, socket_timeout=5.0) as client:
        names = list(client.scan_iter(match=f"{redis_prefix}:*", count=1000))
        if names:
            client.unlink(*names)
