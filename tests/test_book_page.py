"""The built chapters' sliders move in a headless browser (run after `python -m probe_utils book`): trained
numerosity, bimodal red proportions, model family (independence), number of training combinations, CLEVR counts."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = ["notebooks/01_numerosity.html", "notebooks/03_convolution_prototype.html", "notebooks/04_independence.html",
         "notebooks/05_combinations.html", "notebooks/06_clevr.html"]

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.mark.parametrize("page", PAGES)
def test_chapter_sliders_move(page):
    html = REPO / "_build" / "html"
    if not (html / page).exists():
        pytest.skip("the book is not built; run `python -m probe_utils book` first")
    from browser_util import browser_missing, check_slider_page

    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    check_slider_page(html, page)
