"""Widgets in the static book work offline: a tiny book with image sliders, built with the repo's widget
settings, served on 127.0.0.1 and driven in headless chromium."""

from __future__ import annotations

import shutil
import sys
import subprocess
from pathlib import Path

import pytest

from browser_util import (REPO, book_sphinx_config, browser_missing, check_slider_page, open_page, step_sliders,
                          visible_image, wait_for_new_image, widget_sphinx_config)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.book]

SETUP = """\
import io
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
from probe_utils.widgets import image_slider

red = np.zeros((16, 16, 3)); red[..., 0] = 1.0
fig, ax = plt.subplots(figsize=(2, 2))
ax.text(0.5, 0.5, "B", fontsize=48, ha="center", va="center"); ax.set_axis_off()
buf = io.BytesIO(); mpimg.imsave(buf, np.full((24, 24, 3), 40, np.uint8), format="png")
frames = [("red", red), ("letter B", fig), ("dark", buf.getvalue())]
image_slider(frames, description="frame")  # closes fig: no extra inline figure
"""
PLAYING = "image_slider([(f'{k}', np.full((8, 8, 3), k / 4)) for k in range(5)], description='gray', play=True)"


def _tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def _build_tiny_book(root: Path) -> Path:
    """Execute one notebook with two image sliders (state saved in its metadata) and build it as a book."""
    import nbformat
    import yaml
    from nbclient import NotebookClient

    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Slider check"), nbformat.v4.new_code_cell(SETUP),
                nbformat.v4.new_code_cell(PLAYING)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    assert nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    nbformat.write(nb, root / "sliders.ipynb")
    # the book's own Sphinx settings (widget JavaScript, theme mode, its extension), so the page loads as the book's
    config = {"title": "widget check", "only_build_toc_files": True, "execute": {"execute_notebooks": "off"},
              "bibtex_bibfiles": [str(REPO / "book" / "references.bib")], "sphinx": book_sphinx_config()}
    (root / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))  # script order matters
    (root / "_toc.yml").write_text("format: jb-book\nroot: sliders\n")
    subprocess.run([_tool("jupyter-book"), "build", str(root), "-W", "--quiet"], check=True,
                   capture_output=True, text=True)
    return root / "_build" / "html"


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory) -> Path:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    for module in ("nbclient", "nbformat", "yaml", "jupyter_book"):
        pytest.importorskip(module, reason=f"{module} missing: install the [book] extra")
    return _build_tiny_book(tmp_path_factory.mktemp("widgets") / "book")


def test_widget_javascript_is_served_by_the_book(tiny_book):
    page = (tiny_book / "sliders.html").read_text()
    scripts = list(widget_sphinx_config()["nb_ipywidgets_js"])
    positions = [page.find(f'src="_static/{s}') for s in scripts]
    assert all(p > 0 for p in positions) and positions == sorted(positions), (scripts, positions)
    assert "cdn.jsdelivr" not in page and "cdnjs" not in page
    assert 'src="_images/' not in page, "a figure given to image_slider also showed as a plain output"
    for s in scripts:
        assert (tiny_book / "_static" / s).is_file()


def test_slider_steps_offline_in_chromium(tiny_book):
    check_slider_page(tiny_book, "sliders.html")


def test_play_button_advances_and_keeps_the_slider_working(tiny_book):
    with open_page(tiny_book, "sliders.html") as (pg, log):
        assert step_sliders(pg, min_sliders=2) == 2
        box = pg.locator(".probe-image-slider").nth(1)
        icon = box.locator(".widget-play button i").first  # Font Awesome nests its svg inside, keeps the <i>
        before = visible_image(box)
        box.locator(".widget-play button").first.click()
        first = wait_for_new_image(box, before)
        second = wait_for_new_image(box, first)
        assert len({before, first, second}) == 3 and icon.count() == 1
        # exactly one icon drawn on the play/pause button: the widget's own glyph, the nested svg hidden
        drawn = icon.evaluate("""i => [...i.querySelectorAll('svg')].filter(s => getComputedStyle(s).display !== 'none')
                                      .length + (getComputedStyle(i, '::before').content === 'none' ? 0 : 1)""")
        assert drawn == 1 and "fa-pause" in icon.get_attribute("class")
    log.assert_clean()
