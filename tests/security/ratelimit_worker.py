"""One replica of the multi-process rate-limit test, run as its own OS process:

    python -m tests.security.ratelimit_worker PORT PREFIX RPM REQUESTS

It connects to the Redis on 127.0.0.1:PORT, prints `ready`, waits for a line on stdin (the
start signal every replica gets at once), sends REQUESTS checks against RPM at the same time
and prints how many passed.
"""

from __future__ import annotations

import asyncio
import sys

from redis.asyncio import Redis

from edgeproxy.security.ratelimit import Limits
from edgeproxy.security.ratelimit_redis import RedisLimiter


async def run(port: int, prefix: str, rpm: int, requests: int) -> int:
    client = Redis(host="127.0.0.1", port=port, protocol=2, max_connections=requests)
    try:
        limiter = RedisLimiter(client, prefix, timeout=10.0)
        checks = [("key:shared", Limits(rpm=rpm))]
        await asyncio.gather(*(client.ping() for _ in range(requests)))  # open the connections
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        results = await asyncio.gather(*(limiter.admit(checks) for _ in range(requests)))
        return sum(result.allowed for result in results)
    finally:
        await client.aclose()


if __name__ == "__main__":
    port, prefix, rpm, requests = sys.argv[1:5]
    print(asyncio.run(run(int(port), prefix, int(rpm), int(requests))), flush=True)
