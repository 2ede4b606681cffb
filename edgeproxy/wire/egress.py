"""Egress through an HTTP proxy: which origins use one, and the CONNECT tunnel to reach them.

Many corporate clusters reach the internet only through a proxy named by the environment.
`proxy_for` reads the conventions curl and Python's urllib share (the lowercase variable wins
over the uppercase one; NO_PROXY lists names, domain suffixes, IP addresses and CIDR ranges,
each optionally with a port, or `*`). Credentials in a proxy URL leave only as a
Proxy-Authorization header: no message or repr shows them.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from edgeproxy.wire.upstream_errors import ConnectFailed

DEFAULT_PORTS = {"http": 80, "https": 443}
# A proxy's answer to CONNECT is a status line and a few headers; more is a broken proxy.
MAX_TUNNEL_ANSWER = 16 * 1024


class Proxy:
    """An HTTP proxy (`http://[user:password@]host[:port]`; the scheme may be left out)."""

    __slots__ = ("authorization", "host", "port")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http":
            raise ValueError(f"proxy scheme {parts.scheme!r} is not supported (only http)")
        if not parts.hostname:
            raise ValueError("proxy URL has no host")
        self.host = parts.hostname
        self.port = parts.port or DEFAULT_PORTS["http"]
        self.authorization: str | None = None
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            token = base64.b64encode(credentials.encode()).decode("ascii")
            self.authorization = f"Basic {token}"

    def __repr__(self) -> str:
        return f"Proxy({authority(self.host, self.port)})"


def authority(host: str, port: int) -> str:
    """host:port as a request line or Host header writes it."""
    return f"{bracketed(host)}:{port}"


def bracketed(host: str) -> str:
    """An IPv6 address in brackets, as URLs and Host headers write it; other hosts as they are."""
    return f"[{host}]" if ":" in host else host


def proxy_for(origin: str, env: Mapping[str, str]) -> str | None:
    """The proxy URL that requests to `origin` go through according to `env`, or None."""
    parts = urlsplit(origin)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in DEFAULT_PORTS or not host:
        return None
    names = ("https_proxy", "HTTPS_PROXY") if scheme == "https" else ("http_proxy", "HTTP_PROXY")
    proxy = _first_set(env, names)
    if proxy is None:
        return None
    no_proxy = _first_set(env, ("no_proxy", "NO_PROXY")) or ""
    if _bypassed(host, parts.port or DEFAULT_PORTS[scheme], no_proxy):
        return None
    return proxy


def _first_set(env: Mapping[str, str], names: tuple[str, str]) -> str | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def _bypassed(host: str, port: int, no_proxy: str) -> bool:
    host = host.lower().rstrip(".")
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if entry == "*":
            return True
        name, entry_port = _split_port(entry)
        if not name or (entry_port is not None and entry_port != port):
            continue
        if ip is not None:
            if _ip_matches(ip, name):
                return True
            continue
        suffix = name.removeprefix("*").removeprefix(".").rstrip(".")
        if suffix and (host == suffix or host.endswith(f".{suffix}")):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    """`[v6]:port`, `host:port`, or an entry without a port (a bare IPv6 address has colons)."""
    if entry.startswith("["):
        address, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return (address, int(port)) if port.isdigit() else (address, None)
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return (name, int(port)) if port.isdigit() else ("", None)
    return entry, None


def _ip_matches(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, entry: str) -> bool:
    try:
        if "/" in entry:
            return ip in ipaddress.ip_network(entry, strict=False)
        return ip == ipaddress.ip_address(entry)
    except ValueError:
        return False


class TunnelAnswer(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT: the status line and headers, nothing after them."""

    def __init__(self) -> None:
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.status = 0
        self.failure = ""
        self._received = bytearray()

    def data_received(self, data: bytes) -> None:
        if self.ready.done():
            return
        self._received += data
        end = self._received.find(b"\r\n\r\n")
        if end < 0:
            if len(self._received) > MAX_TUNNEL_ANSWER:
                self._finish("answered CONNECT with an oversized head")
            return
        if end + 4 != len(self._received):
            self._finish("sent bytes after its answer to CONNECT")
            return
        status_line = self._received[: self._received.find(b"\r\n")]
        version, _, rest = bytes(status_line).partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or not code.isdigit() or rest[3:4] not in (b"", b" "):
            self._finish("answered CONNECT with a malformed status line")
            return
        self.status = int(code)
        self._finish("")

    def eof_received(self) -> None:
        self._finish("closed the connection before answering CONNECT")

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish("closed the connection before answering CONNECT")

    def _finish(self, failure: str) -> None:
        if not self.ready.done():
            self.failure = failure
            self.ready.set_result(None)


async def request_tunnel(
    transport: asyncio.Transport, answer: TunnelAnswer, proxy: Proxy, host: str, port: int
) -> None:
    """Ask the proxy at the other end of `transport` for a tunnel to host:port; ConnectFailed
    unless it agrees (TLS then goes over the same transport)."""
    target = authority(host, port)
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if proxy.authorization is not None:
        head += f"Proxy-Authorization: {proxy.authorization}\r\n"
    transport.write(f"{head}\r\n".encode("latin-1"))
    await answer.ready
    where = f"proxy {authority(proxy.host, proxy.port)}"
    if answer.failure:
        raise ConnectFailed(f"{where} {answer.failure}")
    if not 200 <= answer.status < 300:
        raise ConnectFailed(f"{where} refused the tunnel to {target} with status {answer.status}")
