"""image_slider builds kernel-free widgets (front-end links only) from each kind of picture, rejects bad input
by name, and the book's widget settings point at vendored files that exist."""

from __future__ import annotations

import io
import re
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest

w = pytest.importorskip("ipywidgets")
from ipywidgets.widgets.widget_link import Link  # noqa: E402

from probe_utils.params import ParameterError  # noqa: E402
from probe_utils.widgets import PNG_MAGIC, ImageSlider, image_slider  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    mpimg.imsave(buf, arr, format="png")
    return buf.getvalue()


def _decode(png: bytes) -> np.ndarray:
    return mpimg.imread(io.BytesIO(png), format="png")


def _frames() -> list:
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    return [("float", np.linspace(0, 1, 16 * 16 * 3).reshape(16, 16, 3)), ("figure", fig),
            ("bytes", _png(np.full((20, 30, 3), 200, np.uint8))), ("uint8", np.zeros((300, 200, 3), np.uint8))]


def test_builds_from_every_picture_kind():
    frames = _frames()
    fig = frames[1][1]
    box = image_slider(frames, description="kind")
    assert isinstance(box, ImageSlider) and isinstance(box, w.VBox)
    assert box.children == (box.slider, box.stack) and box.play is None
    assert len(box.stack.children) == len(frames)
    assert all(isinstance(im, w.Image) and im.format == "png" and bytes(im.value).startswith(PNG_MAGIC)
               for im in box.stack.children)
    assert [label for label, _ in box.slider.options] == [label for label, _ in frames]
    assert box.slider.index == 0 and box.stack.selected_index == 0 and box.slider.description == "kind"
    assert not plt.fignum_exists(fig.number), "the figure should be closed once rendered"
    assert bytes(box.stack.children[2].value) == frames[2][1], "PNG bytes are embedded as given"
    shapes = [_decode(bytes(im.value)).shape[:2] for im in box.stack.children]
    assert shapes[0] == (192, 192), "a 16x16 array is enlarged 12x"
    assert shapes[1] == (150, 200), "a 2x1.5 inch figure at 100 dpi"
    assert shapes[3] == (300, 200), "a large array keeps its size"
    small = _decode(bytes(box.stack.children[0].value))[..., :3]
    assert np.allclose(small[::12, ::12], frames[0][1], atol=1 / 255 + 1e-6)


def _is_link(link, source, target) -> bool:
    return isinstance(link, Link) and link.source == source and link.target == target


def test_slider_and_play_are_linked_in_the_front_end():
    frames = [(f"f{k}", np.full((4, 4, 3), k / 3)) for k in range(4)]
    box = image_slider(frames, play=True, interval_ms=300)
    assert isinstance(box.play, w.Play) and box.play.max == 3 and box.play.interval == 300
    assert box.children[0].children == (box.play, box.slider)
    assert any(_is_link(lk, (box.slider, "index"), (box.stack, "selected_index")) for lk in box.links)
    assert any(_is_link(lk, (box.play, "value"), (box.slider, "index")) for lk in box.links)
    # no Python-side observer: moving the slider in Python does not move the stack (only the browser does)
    box.slider.index = 2
    assert box.stack.selected_index == 0
    # the links are part of the state a static page embeds
    from ipywidgets.embed import embed_data

    state = embed_data(views=[box])["manager_state"]["state"]
    link_ids = {lk.model_id for lk in box.links}
    assert {k for k, v in state.items() if v["model_name"] == "LinkModel"} >= link_ids


@pytest.mark.parametrize("kwargs,name", [
    (dict(frames=[]), "'frames'"),
    (dict(frames="abc"), "'frames'"),
    (dict(frames=np.zeros((2, 4, 4, 3))), "'frames'"),
    (dict(frames=[np.zeros((4, 4, 3))]), "'frames[0]'"),
    (dict(frames=[(3, np.zeros((4, 4, 3)))]), "'frames[0][0]'"),
    (dict(frames=[("a", np.zeros((4, 4, 3))), ("b", "b.png")]), "'frames[1][1]'"),
    (dict(frames=[("a", np.zeros((4, 4)))]), "'frames[0][1]'"),
    (dict(frames=[("a", np.zeros((3, 4, 4)))]), "'frames[0][1]'"),
    (dict(frames=[("a", np.full((4, 4, 3), 2.0))]), "'frames[0][1]'"),
    (dict(frames=[("a", np.full((4, 4, 3), np.nan))]), "'frames[0][1]'"),
    (dict(frames=[("a", np.zeros((4, 4, 3), np.int64))]), "'frames[0][1]'"),
    (dict(frames=[("a", b"GIF89a....")]), "'frames[0][1]'"),
    (dict(frames=[("a", np.zeros((4, 4, 3)))], play="yes"), "'play'"),
    (dict(frames=[("a", np.zeros((4, 4, 3)))], description=3), "'description'"),
    (dict(frames=[("a", np.zeros((4, 4, 3)))], dpi=0), "'dpi'"),
])
def test_bad_input_names_the_parameter(kwargs, name):
    with pytest.raises(ParameterError, match=re.escape(f"parameter {name} must be")):
        image_slider(**kwargs)


def test_warns_when_the_page_would_get_heavy():
    noise = np.random.default_rng(0).integers(0, 256, (600, 600, 3), dtype=np.uint8)  # ~1 MB as PNG
    with pytest.warns(UserWarning, match="MB of PNG"):
        image_slider([(str(k), noise) for k in range(5)])


def test_bad_picture_is_reported_before_any_figure_is_rendered():
    fig = plt.figure()
    with pytest.raises(ParameterError, match=r"frames\[1\]\[1\]"):
        image_slider([("fig", fig), ("bad", [[0.0]])])
    assert plt.fignum_exists(fig.number)
    plt.close(fig)


def test_book_config_loads_the_vendored_widget_javascript_in_order():
    yaml = pytest.importorskip("yaml")
    conf = yaml.safe_load((REPO / "_config.yml").read_text())["sphinx"]["config"]
    extra = [REPO / p for p in conf["html_extra_path"]]
    scripts = list(conf["nb_ipywidgets_js"])
    assert scripts[0].endswith("require.js") and scripts[-1].endswith("embed-amd.js")
    assert all("://" not in s for s in scripts), "no CDN: the book serves its own widget JavaScript"
    for s in scripts:
        assert any((e / "_static" / s).is_file() for e in extra), f"{s} is not in {extra}"
    folder = next(e for e in extra if (e / "_static" / scripts[-1]).is_file()) / "_static" / Path(scripts[-1]).parent
    fonts = set(re.findall(r"[0-9a-f]{20}\.woff2", (folder / "embed-amd.js").read_text()))
    assert fonts and all((folder / f).is_file() for f in fonts)
