"""The built numerosity chapter's slider moves in a headless browser (run after `python -m probe_utils book`)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGE = "notebooks/01_numerosity.html"

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_numerosity_chapter_slider_moves():
    html = REPO / "_build" / "html"
    if not (html / PAGE).exists():
        pytest.skip("the book is not built; run `python -m probe_utils book` first")
    from browser_util import browser_missing, check_slider_page

    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    check_slider_page(html, PAGE)
