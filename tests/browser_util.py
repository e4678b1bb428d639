"""Headless-browser checks of built book pages (Debian's chromium driven by playwright, never its downloads).

:class:`Browser` serves a built site on 127.0.0.1 and opens pages in one chromium at a 1280 px window;
:meth:`Browser.visit` records, per page, every request with its size, failed requests, console errors and uncaught
JavaScript errors (:class:`PageLog`). :func:`step_sliders` checks that every :func:`probe_utils.widgets.image_slider`
on a page steps to another picture when its slider handle gets ArrowRight. Tests import this module after skipping
on :func:`browser_missing`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: the window the book is checked at (figure text sizes are promised at this width)
VIEWPORT = {"width": 1280, "height": 900}
SLIDER_BOX = ".probe-image-slider"
#: requests a browser makes by itself, not the page (no site has to serve them)
BROWSER_OWN = ("/favicon.ico",)
#: the widget JavaScript myst-nb loads on pages with widget state (and must load nowhere else)
WIDGET_JS = ("ipywidgets/require.js", "ipywidgets/embed-amd.js")
#: everything the widgets load: their scripts and fonts, and the blob: URLs they make for the slider pictures
WIDGET_ASSETS = ("/_static/ipywidgets/",)


def browser_missing() -> str | None:
    """Why the browser checks cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright; no browser download)"
    return None


def widget_sphinx_config(repo: Path = REPO) -> dict[str, Any]:
    """The repo's widget settings from ``_config.yml`` (``html_extra_path`` made absolute, ``nb_ipywidgets_js``)."""
    import yaml

    conf = yaml.safe_load((repo / "_config.yml").read_text())["sphinx"]["config"]
    return {"html_extra_path": [str((repo / p).resolve()) for p in conf["html_extra_path"]],
            "nb_ipywidgets_js": conf["nb_ipywidgets_js"]}


def book_sphinx_config(repo: Path = REPO) -> dict[str, Any]:
    """The ``sphinx`` section of the book's ``_config.yml`` with its folders made absolute, for a small test book
    built elsewhere that should load its pages as the book does (widgets, theme settings, the book's extension)."""
    import yaml

    sphinx = yaml.safe_load((repo / "_config.yml").read_text())["sphinx"]
    conf = sphinx["config"]
    for key in ("html_extra_path", "html_static_path", "templates_path"):
        if key in conf:
            conf[key] = [str((repo / p).resolve()) for p in conf[key]]
    sphinx["local_extensions"] = {k: str((repo / v).resolve()) for k, v in sphinx.get("local_extensions", {}).items()}
    return sphinx


@contextmanager
def serve(html_dir: Path) -> Iterator[str]:
    """Serve ``html_dir`` with ``python -m http.server`` on 127.0.0.1 (a free port); yields the base URL."""
    proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                             "--directory", str(html_dir)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        line = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        if "port" not in line:
            raise RuntimeError(f"http.server did not start: {line!r}")
        port = int(line.split(" port ")[1].split()[0])
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


@dataclass
class PageLog:
    """What a page did over the network (URL -> bytes received) and which errors it reported."""

    requests: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def offsite(self) -> list[str]:
        """Requests over the network to anywhere but 127.0.0.1 (data: and blob: URLs are local)."""
        return [u for u in self.requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
                and urlparse(u).hostname != "127.0.0.1"]

    def weight(self, exclude: tuple[str, ...] = (), blobs: bool = True) -> int:
        """Bytes received, leaving out requests whose path contains one of ``exclude`` (and blob: URLs, which are
        made by the page itself, unless ``blobs``)."""
        return sum(n for u, n in self.requests.items() if not any(x in urlparse(u).path for x in exclude)
                   and (blobs or urlparse(u).scheme != "blob"))

    def loaded(self, part: str) -> bool:
        """Whether a request's path contains ``part``."""
        return any(part in urlparse(u).path for u in self.requests)

    def assert_clean(self) -> None:
        """No request left 127.0.0.1, none failed, no console error and no uncaught error."""
        assert not self.offsite(), f"requests left 127.0.0.1: {self.offsite()}"
        assert not self.failed, f"failed requests: {self.failed}"
        assert not self.errors, f"uncaught JavaScript errors: {self.errors}"
        assert not self.console_errors, f"console errors: {self.console_errors}"


class Browser:
    """One chromium and one local server for a built site; :meth:`visit` opens a page in a fresh tab."""

    def __init__(self, html_dir: Path) -> None:
        self.html_dir = Path(html_dir)

    def __enter__(self) -> "Browser":
        from playwright.sync_api import sync_playwright

        self._serve = serve(self.html_dir)
        self.base = self._serve.__enter__()
        self._pwm = sync_playwright()
        self._pw = self._pwm.__enter__()
        self._browser = self._pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._browser.close()
        finally:
            self._pwm.__exit__(*exc)
            self._serve.__exit__(*exc)

    @contextmanager
    def visit(self, page: str, timeout_s: float = 60, widgets: bool | None = None) -> Iterator[tuple[Any, PageLog]]:
        """Open ``page`` (relative to the site) and wait until the network is idle (and, when it has widget state
        or ``widgets`` is True, until its sliders are drawn). Yields the playwright page and its :class:`PageLog`
        (recorded from before the first request, until the tab closes)."""
        log = PageLog()
        pg = self._browser.new_page(viewport=VIEWPORT)

        def response(r: Any) -> None:
            if urlparse(r.url).path in BROWSER_OWN:
                return
            if r.status >= 400:
                log.failed.append(f"{r.url} (HTTP {r.status})")
            try:
                log.requests[r.url] = len(r.body()) if r.status < 300 else 0
            except Exception:  # a redirect or a body the browser dropped: count it, without size
                log.requests.setdefault(r.url, 0)

        pg.on("request", lambda r: log.requests.setdefault(r.url, 0))
        pg.on("requestfailed", lambda r: log.failed.append(f"{r.url} ({r.failure})"))
        pg.on("response", response)
        pg.on("pageerror", lambda e: log.errors.append(str(e)))
        pg.on("console", lambda m: log.console_errors.append(f"{m.text} ({m.location.get('url', '')})")
              if m.type == "error" and urlparse(m.location.get("url", "")).path not in BROWSER_OWN else None)
        try:
            pg.goto(f"{self.base}/{page}", wait_until="networkidle", timeout=timeout_s * 1000)
            if widgets or (widgets is None and has_widget_state(pg)):
                pg.wait_for_selector(f"{SLIDER_BOX} .widget-slider .noUi-handle", timeout=timeout_s * 1000)
            yield pg, log
        finally:
            pg.close()


def has_widget_state(pg: Any) -> bool:
    """Whether the page embeds saved widget state (so myst-nb loads the widget JavaScript)."""
    return pg.locator('script[type="application/vnd.jupyter.widget-state+json"]').count() > 0


@contextmanager
def open_page(html_dir: Path, page: str, timeout_s: float = 60) -> Iterator[tuple[Any, PageLog]]:
    """Open ``page`` of a built site in a fresh chromium, waiting until its widgets are drawn."""
    with Browser(html_dir) as browser, browser.visit(page, timeout_s, widgets=True) as opened:
        yield opened


_VISIBLE_IMAGE = """box => {
  const shown = [...box.querySelectorAll('img')].filter(i => i.offsetParent !== null);
  return shown.length === 1 ? {src: shown[0].src, width: shown[0].naturalWidth} : {src: null, count: shown.length};
}"""


def visible_image(box: Any, timeout_s: float = 10) -> str:
    """The ``src`` of the one visible (and decoded) image in a slider box."""
    end = time.monotonic() + timeout_s
    while True:
        shown = box.evaluate(_VISIBLE_IMAGE)
        if shown["src"] and shown["width"] > 0:
            return shown["src"]
        if time.monotonic() > end:
            raise AssertionError(f"slider box does not show exactly one decoded image: {shown}")
        time.sleep(0.1)


def wait_for_new_image(box: Any, before: str, timeout_s: float = 10) -> str:
    """Wait until the box shows an image other than ``before``; return its ``src``."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        now = visible_image(box)
        if now != before:
            return now
        time.sleep(0.1)
    raise AssertionError(f"the visible image stayed {before[:80]!r} for {timeout_s} s")


def step_sliders(pg: Any, min_sliders: int = 1) -> int:
    """Press ArrowRight on each image slider's handle and check that its picture changes; returns how many."""
    boxes = pg.locator(SLIDER_BOX)
    n = boxes.count()
    assert n >= min_sliders, f"found {n} image sliders, expected at least {min_sliders}"
    for i in range(n):
        box = boxes.nth(i)
        box.scroll_into_view_if_needed()
        before = visible_image(box)
        shot = box.locator("img:visible").screenshot()
        box.locator(".widget-slider .noUi-handle").first.focus()
        pg.keyboard.press("ArrowRight")
        wait_for_new_image(box, before)
        assert box.locator("img:visible").screenshot() != shot, f"slider {i}: the new picture looks the same"
    return n


def check_slider_page(html_dir: Path, page: str) -> None:
    """Every image slider on a built page steps to a new picture offline; no request leaves 127.0.0.1."""
    with open_page(Path(html_dir), page) as (pg, log):
        step_sliders(pg)
        pg.wait_for_load_state("networkidle")
    log.assert_clean()


#: The figures of a page: images in chapter outputs and figures, outside widgets, with their natural and shown
#: widths (CSS pixels).
FIGURE_SIZES = """() => [...document.querySelectorAll('article .cell_output img, article figure img')]
  .filter(i => !i.closest('.jupyter-widgets') && i.naturalWidth > 0)
  .map(i => ({src: i.currentSrc.slice(-60), natural: i.naturalWidth, shown: i.getBoundingClientRect().width}))"""


def figure_scales(pg: Any) -> list[dict]:
    """Each figure of a page with ``scale``: its shown width over its natural width."""
    pg.evaluate("() => Promise.all([...document.images].map(i => i.decode().catch(() => null)))")
    return [{**f, "scale": f["shown"] / f["natural"]} for f in pg.evaluate(FIGURE_SIZES)]
