"""What an upstream URL from the configuration may look like, checked once at load.

Upstream URLs come only from the operator's config (a provider's `base_url`, an egress
`proxy`, a guard service's `url`), never from a request. Each is held to a form every parser
reads the same way, so the host the config names is the host requests go to: http or https
with a host; no user:password@ (which turns `https://api.example@evil` into a request to
`evil`), no fragment (`#` cuts the rest off: an Azure resource name with a `#` once sent
requests elsewhere), no whitespace, control or non-ASCII characters, no backslash (some parsers
read it as `/`), no percent-encoding in the host, no numeric host shorthand (`127.1`,
`0x7f.0.0.1`), no dot segments in the path; and no query in a base URL, which paths are
appended to.

Each check returns the problem as a phrase for the config error (which names the field), or
None when the URL is fine.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from urllib.parse import SplitResult, unquote, urlsplit

_HTTP_URL = re.compile(r"https?://", re.IGNORECASE).match
_UNSAFE = re.compile(r"[^\x21-\x7e]").search  # anything but visible ASCII
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)").fullmatch
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)").fullmatch
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)", re.IGNORECASE).fullmatch
_MAX_NAME = 253
_NOT_DNS_NAME = "the host must be a DNS name (letters, digits, hyphens and dots)"


def url_problem(url: str, *, base: bool = False, dns_name: bool = False) -> str | None:
    """Why `url` cannot be an upstream URL (None: it can). `base`: a provider's base URL, which
    paths are appended to (no query either); `dns_name`: the host must be a DNS name (letters,
    digits, hyphens, dots), as an Azure resource's is."""
    return next(_url_problems(url, base, dns_name), None)


def proxy_url_problem(url: str) -> str | None:
    """Why `url` cannot be an egress proxy (`http://[user:password@]host[:port]`, the scheme
    optional); None when it can. Credentials are allowed here: they become the
    Proxy-Authorization header."""
    return next(_proxy_url_problems(url), None)


def _url_problems(url: str, base: bool, dns_name: bool) -> Iterator[str]:
    """Every problem in the order they are looked for (the first one is reported)."""
    yield from _text_problems(url)
    if not _HTTP_URL(url):
        shown = f', got "{url}"' if "@" not in url else ""
        yield f"expected an http:// or https:// URL{shown}"
    if base and "?" in url:
        yield "has a query string (?...), but paths are appended to a base URL"
    parts = _split(url)
    if "@" in parts.netloc:
        yield "has credentials in it (user:password@...); give them as a key or headers"
    yield from _host_problems(parts, dns_name)
    if any(segment in (".", "..") for segment in unquote(parts.path).split("/")):
        yield "has a dot segment (. or ..) in its path"


def _proxy_url_problems(url: str) -> Iterator[str]:
    yield from _text_problems(url)
    parts = _split(url if "://" in url else f"http://{url}")
    if parts.scheme.lower() != "http":
        yield f"proxy scheme {parts.scheme!r} is not supported (only http)"
    if "?" in url or parts.path not in ("", "/"):
        yield "expected http://[user:password@]host[:port] and nothing after it"
    yield from _host_problems(parts, dns_name=False)


def _text_problems(url: str) -> Iterator[str]:
    if not url:
        yield "expected a URL, got an empty string"
    if _UNSAFE(url):
        yield (
            "has whitespace, a control character or a non-ASCII character in it "
            "(write an international domain name in its xn-- form)"
        )
    if "\\" in url:
        yield "has a backslash in it, which some URL parsers read as /"
    if "#" in url:
        yield "has a fragment (#...), which cuts the URL short"


def _split(url: str) -> SplitResult:
    """`url` in parts; an unparsable one (an unbalanced or invalid [IPv6] host) as a URL
    whose host is invalid."""
    try:
        return urlsplit(url)
    except ValueError:
        return SplitResult("http", "[invalid]", "", "", "")


def _host_problems(parts: SplitResult, dns_name: bool) -> Iterator[str]:
    host = parts.netloc.rpartition("@")[2]
    name = parts.hostname or ""
    if "%" in host:
        yield "has percent-encoding in its host"
    if not name:
        yield "has no host"
    if host.startswith("["):
        yield from _ip_literal_problems(name, dns_name)
    else:
        yield from _name_problems(name, dns_name)
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        yield "has an invalid port"


def _ip_literal_problems(name: str, dns_name: bool) -> Iterator[str]:
    if dns_name:
        yield _NOT_DNS_NAME
    if not _is_address(name, ipaddress.IPv6Address):
        yield "has an invalid IPv6 address in its host"


def _name_problems(name: str, dns_name: bool) -> Iterator[str]:
    labels = name.removesuffix(".").split(".")
    if _NUMERIC_LABEL(labels[-1]):  # read as an IPv4 address, shorthand forms included
        if not _is_address(name, ipaddress.IPv4Address):
            yield "has a numeric host that is not an IPv4 address in dotted-quad form"
        return
    valid = _DNS_LABEL if dns_name else _LABEL
    if len(name) > _MAX_NAME or not all(valid(label) for label in labels):
        yield _NOT_DNS_NAME if dns_name else "has an invalid host name"


def _is_address(text: str, kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True
