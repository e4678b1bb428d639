"""Headless-browser checks of built book pages (Debian's chromium driven by playwright, never its downloads).

``check_slider_page(html_dir, page)`` serves a built site on 127.0.0.1, opens ``page`` and checks that every
:func:`probe_utils.widgets.image_slider` on it steps to another picture when its slider handle gets ArrowRight,
with no request leaving 127.0.0.1, none failing and no uncaught JavaScript error. Tests import it after
skipping on :func:`browser_missing`.
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
#: uncaught page errors that are known and harmless (sphinx-thebe's script is included twice by the theme)
HARMLESS_ERRORS = ("THEBE_JS_URL",)
SLIDER_BOX = ".probe-image-slider"


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
    """What a page did over the network and which uncaught errors it threw."""

    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def offsite(self) -> list[str]:
        """Requests over the network to anywhere but 127.0.0.1 (data: and blob: URLs are local)."""
        return [u for u in self.requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
                and urlparse(u).hostname != "127.0.0.1"]

    def assert_clean(self) -> None:
        """No request left 127.0.0.1, none failed, no unexpected uncaught error."""
        assert not self.offsite(), f"requests left 127.0.0.1: {self.offsite()}"
        assert not self.failed, f"failed requests: {self.failed}"
        errors = [e for e in self.errors if not any(h in e for h in HARMLESS_ERRORS)]
        assert not errors, f"uncaught JavaScript errors: {errors}"


@contextmanager
def open_page(html_dir: Path, page: str, timeout_s: float = 60) -> Iterator[tuple[Any, PageLog]]:
    """Open ``page`` (relative to ``html_dir``) in headless chromium, waiting until its widgets are drawn.

    Yields the playwright page and its :class:`PageLog` (recorded from before the first request)."""
    from playwright.sync_api import sync_playwright

    log = PageLog()
    with serve(html_dir) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            pg = browser.new_page()
            pg.on("request", lambda r: log.requests.append(r.url))
            pg.on("requestfailed", lambda r: log.failed.append(f"{r.url} ({r.failure})"))
            pg.on("response", lambda r: log.failed.append(f"{r.url} (HTTP {r.status})") if r.status >= 400
                  else None)
            pg.on("pageerror", lambda e: log.errors.append(str(e)))
            pg.goto(f"{base}/{page}", wait_until="networkidle", timeout=timeout_s * 1000)
            pg.wait_for_selector(f"{SLIDER_BOX} .widget-slider .noUi-handle", timeout=timeout_s * 1000)
            yield pg, log
        finally:
            browser.close()


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
