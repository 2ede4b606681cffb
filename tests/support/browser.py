"""Headless Chromium (Debian's `chromium` package) for the tests of pages: load a URL, let its
scripts run and its fetches finish, then keep the rendered DOM and a screenshot of it.

No WebDriver: the browser's own command line does it (`--dump-dom`, `--screenshot`).
`--virtual-time-budget` runs the page's timers in virtual time, which does not advance while a
fetch is pending, so the DOM is taken after the page's fetches have answered and rendered,
however slow the machine, with no sleep.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from tests.support.requires import unavailable

NAMES = ("chromium", "chromium-browser")
# Elements without an end tag.
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"})
WINDOW = "1280,1100"
DEADLINE = 45.0  # seconds for the browser to start, load and exit


def require_chromium() -> str:
    """The browser's path; without one the test skips (fails under CI, which installs it)."""
    for name in NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    unavailable("headless Chromium is not installed (apt-get install -y chromium; .ci/run does)")


@dataclass
class Rendered:
    """A page as the browser left it: the text of each element with an id, the rows of each
    table body with an id (cells' texts), and how many of each tag there are."""

    texts: dict[str, str] = field(default_factory=dict)
    rows: dict[str, list[list[str]]] = field(default_factory=dict)
    tags: dict[str, int] = field(default_factory=dict)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Rendered()
        self._open: list[tuple[str, str | None]] = []  # (tag, id)
        self._body: str | None = None  # the id of the table body being read

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        page, found = self.page, dict(attrs)
        page.tags[tag] = page.tags.get(tag, 0) + 1
        if tag in VOID:
            return
        ident = found.get("id")
        if ident is not None:
            page.texts[ident] = ""
            if tag == "tbody":
                self._body = ident
                page.rows[ident] = []
        if self._body is not None and tag == "tr":
            page.rows[self._body].append([])
        if self._body is not None and tag in ("td", "th"):
            page.rows[self._body][-1].append("")
        self._open.append((tag, ident))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            closed, ident = self._open.pop()
            if ident is not None and ident == self._body:
                self._body = None
            if closed == tag:
                return

    def handle_data(self, data: str) -> None:
        for _, ident in self._open:
            if ident is not None:
                self.page.texts[ident] += data
        if self._body is not None and self.page.rows[self._body]:
            row = self.page.rows[self._body][-1]
            if row:
                row[-1] += data


def read_dom(html: str) -> Rendered:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    page = reader.page
    page.texts = {ident: " ".join(text.split()) for ident, text in page.texts.items()}
    page.rows = {
        ident: [[" ".join(cell.split()) for cell in row] for row in rows]
        for ident, rows in page.rows.items()
    }
    return page


async def render(
    browser: str, url: str, screenshot: Path, profile: Path, budget_ms: int = 1500
) -> Rendered:
    """Load `url`, let `budget_ms` of virtual time pass, save a screenshot, read the DOM.
    `profile`: a fresh directory for the browser's profile (runs never share one)."""
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        browser,
        "--headless",
        "--no-sandbox",  # containers and root; the page loaded is the test's own
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW}",
        f"--virtual-time-budget={budget_ms}",
        f"--screenshot={screenshot}",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        dom, errors = await asyncio.wait_for(process.communicate(), DEADLINE)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, f"chromium failed ({process.returncode}): {errors[-2000:]!r}"
    return read_dom(dom.decode())
