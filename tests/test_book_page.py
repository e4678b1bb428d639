"""The built book as a reader meets it (run after `python -m probe_utils book`; CI runs it after the build).

From the HTML: every table rendered (no raw pipe table), one parameters cell per chapter, a Colab button per
chapter that opens a notebook of this checkout, numbered and captioned figures, a bibliography, and each chapter's
data (records as JSON, tables as CSV) present in the site. In headless chromium at a 1280 px window: no console
error, no failed or off-site request, page weights (styles, scripts and fonts at most 950 kB; a page's own HTML,
less its widget state, at most 250 kB; widget JavaScript only where there are widgets), figure text at least 10 px,
click-to-enlarge, and every slider moves."""

from __future__ import annotations

import csv
import html as htmllib
import json
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

REPO = Path(__file__).resolve().parent.parent
HTML = REPO / "_build" / "html"
CHAPTERS = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.py"))
#: the chapters that re-run a section of the paper (00-89): their figures are numbered, captioned and referenced
PAPER_CHAPTERS = [c for c in CHAPTERS if int(c[:2]) < 90]
#: every prose page of the book (intro, methods, differences, references)
TEXT_PAGES = sorted(f"book/{p.stem}" for p in (REPO / "book").glob("*.md"))
#: what every page loads besides its own HTML, images and widget JavaScript (the theme's styles, scripts and fonts,
#: and ours): the same for all pages, so it has one budget that a chapter's growing tables never press on
THEME_BYTES = 950_000
#: a page's own HTML, less the widget state that holds its sliders' pictures (text, tables, figure markup)
PAGE_HTML_BYTES = 250_000
#: the scorecard's own HTML grows with the records it reports (every claim, family, gate note)
SCORECARD_HTML_BYTES = 400_000
RAW_PIPE_TABLE = re.compile(r"\|\s*:?-{3,}:?\s*\|")

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _page(name: str) -> Path:
    return HTML / f"{name}.html"


def _built(name: str) -> str:
    path = _page(name)
    if not path.exists():
        pytest.skip("the book is not built; run `python -m probe_utils book` first")
    return path.read_text()


def _visible_text(page: str) -> str:
    """The text of a page's article, less scripts and styles (what a reader reads)."""
    body = page.split('<article class="bd-article"', 1)[-1].split("</article>", 1)[0]
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", body))


# ---------------------------------------------------------------------------------------------------------------
# From the HTML
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [f"notebooks/{c}" for c in CHAPTERS] + TEXT_PAGES)
def test_every_table_is_rendered(name):
    page = _built(name)
    raw = RAW_PIPE_TABLE.findall(_visible_text(page))
    assert not raw, f"{name}: {len(raw)} raw pipe tables (Markdown tables shown as text)"
    if name.startswith("notebooks/") and name != "notebooks/00_datasets":
        assert "<table" in page, f"{name} shows no table"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_one_parameters_cell_per_chapter(chapter):
    page = _built(f"notebooks/{chapter}")
    assert len(re.findall(r'class="[^"]*\btag_parameters\b', page)) == 1
    assert "tag_injected-parameters" not in page, "papermill's injected cell is shown beside the defaults"
    assert "google.colab" not in _visible_text(page), "the Colab install cell is shown"


def _colab_links(page: str) -> list[str]:
    return sorted(set(re.findall(r'href="(https://colab\.research\.google\.com/github/[^"]+)"', page)))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_colab_button_opens_a_notebook_of_this_checkout(chapter):
    links = _colab_links(_built(f"notebooks/{chapter}"))
    assert len(links) == 1, f"expected one Colab link, found {links}"
    m = re.fullmatch(r"https://colab\.research\.google\.com/github/([\w.-]+)/([\w.-]+)/blob/([\w./-]+?)/"
                     r"(notebooks/[\w.-]+\.ipynb)", links[0])
    assert m, links[0]
    notebook = REPO / m[4]
    assert notebook.name == f"{chapter}.ipynb" and notebook.exists()
    json.loads(notebook.read_text())  # a notebook Colab can open
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "--error-unmatch", m[4]], capture_output=True)
    if (REPO / ".git").exists():
        assert tracked.returncode == 0, f"{m[4]} is not committed: Colab opens the repository's copy"


@pytest.mark.parametrize("chapter", PAPER_CHAPTERS)
def test_figures_are_numbered_and_captioned(chapter):
    page = _built(f"notebooks/{chapter}")
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page, flags=re.S)
    assert captions, f"{chapter}: no captioned figure"
    for cap in captions:
        text = htmllib.unescape(re.sub(r"<[^>]+>", "", cap))
        assert re.match(r"\s*Fig\. \d+", text), f"{chapter}: a figure caption without a number: {text[:80]!r}"
    refs = re.findall(r'<a class="reference internal" href="[^"]*#fig-[^"]+"[^>]*><span class="std std-numref">'
                      r"Fig\. \d+</span>", page)
    assert refs, f"{chapter}: the text refers to none of its figures"


def test_bibliography_and_citations():
    refs = _visible_text(_built("book/references")).lower()
    assert "bias and generalization in deep generative models: an empirical study" in refs
    assert "improved training of wasserstein gans" in refs
    intro = _built("book/intro")
    assert re.search(r'href="references\.html#id\d+"', intro), "the intro cites nothing"


def _data_links(page: str) -> list[str]:
    """The links of a page's "Data for this page" section, less its own anchor."""
    section = page.split('id="data-for-this-page"', 1)
    if len(section) < 2:
        return []
    return [h for h in re.findall(r'href="([^"#][^"]*)"', section[1].split("</section>", 1)[0])]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_data_is_in_the_site(chapter):
    page = _built(f"notebooks/{chapter}")
    links = _data_links(page)
    assert links, f"{chapter}: no 'Data for this page' section"
    files = [(_page(f"notebooks/{chapter}").parent / unquote(urlparse(h).path)).resolve() for h in links]
    missing = [str(f) for f in files if not f.is_file()]
    assert not missing, f"{chapter}: data links to missing files {missing}"
    csvs = [f for f in files if f.suffix == ".csv"]
    assert csvs, f"{chapter}: no table as CSV"
    for f in csvs:
        rows = list(csv.reader(f.open(encoding="utf-8")))
        assert rows and rows[0] and all(len(r) == len(rows[0]) for r in rows), f"{f.name}: not one table"
    records = [f for f in files if f.name == "records.json"]
    if records:
        recs = json.loads(records[0].read_text())
        assert recs and all({"experiment", "model", "preset", "seed", "result", "provenance"} <= set(r) for r in recs)
        assert len([f for f in files if f.suffix == ".json"]) == len(recs) + 1  # the list and each record


# ---------------------------------------------------------------------------------------------------------------
# In the browser
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if not (HTML / "index.html").exists():
        pytest.skip("the book is not built; run `python -m probe_utils book` first")
    from browser_util import Browser, browser_missing

    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    with Browser(HTML) as b:
        yield b


@pytest.mark.parametrize("name", TEXT_PAGES + ["notebooks/90_scorecard"])
def test_text_page_is_clean_and_light(browser, name):
    from browser_util import WIDGET_JS

    _built(name)
    with browser.visit(f"{name}.html") as (pg, log):
        pg.wait_for_timeout(300)  # late console messages (theme, toggles)
        # a wide prose table (the differences page) shows every column in a 1280 px window, the page no wider
        hidden = pg.evaluate("""() => [...document.querySelectorAll('.probe-wide .pst-scrollable-table-container')]
                                .map(s => s.scrollWidth - s.clientWidth).filter(d => d > 1)""")
        page_width = pg.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    log.assert_clean()
    assert not hidden, f"{name}: wide tables scroll sideways by {hidden} px at 1280 px"
    assert page_width <= 0, f"{name}: the page is {page_width} px wider than the window"
    if name == "book/differences":  # each of its tables sits in a wide container
        page = _built(name)
        assert page.count("<table") == len(re.findall(r'<div class="[^"]*probe-wide', page)) > 0
    assert not any(log.loaded(js) for js in WIDGET_JS), f"{name} loads widget JavaScript but has no widgets"
    assert not log.loaded("fontawesome.js"), f"{name} loads the theme's 1.5 MB Font Awesome script"
    assert not log.loaded("fa-brands"), f"{name} loads Font Awesome's brands font"
    _assert_weights(name, log, state=0)


def _assert_weights(name: str, log, state: int) -> None:
    """The page's own HTML (less ``state`` bytes of widget state) and what all pages share, each within its budget."""
    from browser_util import WIDGET_ASSETS

    page = name.rsplit("/", 1)[-1] + ".html"
    own = log.weight() - log.weight(exclude=(page,)) - state
    budget = SCORECARD_HTML_BYTES if page == "90_scorecard.html" else PAGE_HTML_BYTES
    assert 0 < own <= budget, f"{name}: its own HTML weighs {own / 1e3:.0f} kB (at most {budget / 1e3:.0f} kB)"
    shared = log.weight(exclude=("/_images/", *WIDGET_ASSETS, page), blobs=False)
    assert shared <= THEME_BYTES, (f"{name} loads {shared / 1e3:.0f} kB of styles, scripts and fonts "
                                   f"(at most {THEME_BYTES / 1e3:.0f} kB)")


@pytest.mark.parametrize("chapter", [c for c in CHAPTERS if c != "90_scorecard"])
def test_chapter_page_is_clean_readable_and_its_sliders_move(browser, chapter):
    from browser_util import WIDGET_JS, figure_scales, has_widget_state, step_sliders

    from probe_utils.plots import DPI, MIN_FONT_PT, MIN_TEXT_PX

    _built(f"notebooks/{chapter}")
    with browser.visit(f"notebooks/{chapter}.html") as (pg, log):
        widgets = has_widget_state(pg)
        state = pg.evaluate("""() => [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-state+json"]')]
                               .reduce((n, s) => n + new Blob([s.textContent]).size, 0)""")  # the sliders' pictures
        # figure text: the smallest font of any figure, as shown in the text column of a 1280 px window
        figures = figure_scales(pg)
        assert figures, f"{chapter}: no figure"
        small = [f for f in figures if MIN_FONT_PT * DPI / 72 * min(f["scale"], 1.0) < MIN_TEXT_PX]
        assert not small, (f"{chapter}: figures shown so small that {MIN_FONT_PT} pt text is under {MIN_TEXT_PX} px: "
                           f"{small}")
        # click to enlarge, Escape to close
        first = pg.locator("article figure img, article .cell_output img:not(.jupyter-widgets img)").first
        first.scroll_into_view_if_needed()
        first.click()
        box = pg.locator(".probe-lightbox img")
        box.wait_for(state="visible", timeout=5000)
        assert box.get_attribute("src") == first.evaluate("i => i.currentSrc || i.src")
        assert box.bounding_box()["width"] > first.bounding_box()["width"]
        pg.keyboard.press("Escape")
        box.wait_for(state="hidden", timeout=5000)
        if widgets:
            step_sliders(pg)
            pg.wait_for_load_state("networkidle")
    log.assert_clean()
    assert widgets == all(log.loaded(js) for js in WIDGET_JS), f"{chapter}: widget JavaScript without widgets"
    assert not log.loaded("fontawesome.js")
    _assert_weights(f"notebooks/{chapter}", log, state)
