"""Upstream addresses through the event loop's resolver, kept for a TTL.

The loop's getaddrinfo runs in a thread: asking it once per new connection would add a thread
hop to every connect, and a burst of connects would queue behind each other in the executor.
The answer is kept per host and port for `ttl` seconds (the system resolver hides the record's
own TTL), and dropped early when none of its addresses could be reached, so a moved upstream
is found again at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

from edgeproxy.wire.upstream_errors import ConnectFailed

# (address family, socket address): what socket() and connect() need for one address.
Address = tuple[int, tuple[Any, ...]]


class Resolver:
    """Addresses of host:port in the resolver's order; IP literals are answered without a
    lookup. One resolver may be shared by several pools."""

    __slots__ = ("_answers", "_ttl")

    def __init__(self, ttl: float = 60.0) -> None:
        self._ttl = ttl
        self._answers: dict[tuple[str, int], tuple[float, list[Address]]] = {}

    async def resolve(self, host: str, port: int) -> list[Address]:
        literal = _literal(host, port)
        if literal is not None:
            return [literal]
        loop = asyncio.get_running_loop()
        key = (host, port)
        kept = self._answers.get(key)
        if kept is not None and kept[0] > loop.time():
            return kept[1]
        try:
            infos = await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except OSError as exc:
            raise ConnectFailed(f"DNS lookup of {host} failed: {exc.strerror or exc}") from None
        addresses: list[Address] = []
        for family, _, _, _, sockaddr in infos:
            address = (int(family), tuple(sockaddr))
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise ConnectFailed(f"DNS lookup of {host} returned no address")
        self._answers[key] = (loop.time() + self._ttl, addresses)
        return addresses

    def forget(self, host: str, port: int) -> None:
        """Drop the kept answer: none of its addresses could be reached."""
        self._answers.pop((host, port), None)


def _literal(host: str, port: int) -> Address | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6:
        return (socket.AF_INET6, (host, port, 0, 0))
    return (socket.AF_INET, (host, port))
