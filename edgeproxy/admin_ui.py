"""The status page on the admin listener: `GET /ui`, one self-contained HTML document, and
`GET /admin/stats`, the JSON it refreshes from every few seconds (edgeproxy.telemetry.stats).

The page holds no data, so it answers anyone (admin.OPEN_PATHS); its figures are a read like
any other, which needs the admin token when one is set. The page cannot know the token: it
takes it from the URL fragment (`/ui#token=...`, never sent to a server) or a small form,
keeps it in the tab's sessionStorage and sends it as a bearer token.

Everything the page needs is inline. Its Content-Security-Policy names the inline script and
style by hash and allows nothing else (no other script, style, font or image; connections to
this origin only), so a browser refuses anything external the page might ever reference, and
a value that slipped into the markup could not run.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from importlib import resources

import orjson
from aiohttp import web

from edgeproxy.telemetry.stats import LiveStats

PAGE_PATH = "/ui"
STATS_PATH = "/admin/stats"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def _hash_source(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def page_headers(page: str) -> dict[str, str]:
    """The page's headers, its policy naming each inline script and style by hash."""
    sources: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(page):
        sources[kind].append(_hash_source(body))
    policy = "; ".join(
        (
            "default-src 'none'",
            f"script-src {' '.join(sources['script'])}",
            f"style-src {' '.join(sources['style'])}",
            "connect-src 'self'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
    return {
        "content-security-policy": policy,
        "cache-control": "no-cache",
        "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff",
    }


def status_routes(app: web.Application, stats: Callable[[], LiveStats]) -> None:
    """`GET /ui` (the page, read from the package once) and `GET /admin/stats`, whose figures
    come from `stats()`, the running configuration's (asked per request: a reload swaps it)."""
    page = resources.files("edgeproxy").joinpath("ui/status.html").read_text(encoding="utf-8")
    body, headers = page.encode(), page_headers(page)

    async def show(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/html", charset="utf-8", headers=headers)

    async def figures(_: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps(stats().report()),
            content_type="application/json",
            headers={"cache-control": "no-store"},
        )

    app.router.add_get(PAGE_PATH, show)
    app.router.add_get(STATS_PATH, figures)
