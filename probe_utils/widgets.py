"""Widgets that keep working in the static HTML book, with no kernel behind them.

Every link between controls is a front-end link (:func:`ipywidgets.jslink`), never a Python observer, so the
page's saved widget state is enough: the slider switches pictures in the browser by itself. All pictures are
embedded in the page as PNG, so keep them few and small. Needs ipywidgets (the ``[book]`` extra).
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Any, Sequence, Union

import ipywidgets as w
import numpy as np
from ipywidgets.widgets.widget_link import Link

from probe_utils.params import ParameterError, check_int

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Picture = Union["Figure", bytes, np.ndarray]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: arrays smaller than this (longer side, pixels) are enlarged by a whole factor, nearest neighbour, so that
#: small renders are not blurred by the browser's own scaling
MIN_ARRAY_SIDE = 192
#: above this many bytes of PNG in one slider, image_slider warns (every frame is embedded in the page)
WARN_BYTES = 4_000_000
PICTURE_KINDS = "a matplotlib Figure, PNG bytes or an (H,W,3) array (float in [0,1] or uint8)"


def _bad(name: str, allowed: str, value: Any) -> ParameterError:
    """A ParameterError in the project's wording, showing a short description of ``value``."""
    if isinstance(value, np.ndarray):
        shown = f"array of shape {value.shape} and dtype {value.dtype}"
    elif isinstance(value, (bytes, bytearray)):
        shown = f"{len(value)} bytes starting {bytes(value[:8])!r}"
    else:
        shown = f"{type(value).__name__} {value!r}"[:120]
    return ParameterError(f"parameter {name!r} must be {allowed}; got {shown}")


def _check_picture(name: str, picture: Any) -> None:
    """Raise ParameterError (naming ``name``) unless ``picture`` is one of the accepted kinds."""
    from matplotlib.figure import Figure

    if isinstance(picture, Figure):
        return
    if isinstance(picture, (bytes, bytearray)):
        if bytes(picture[:8]) != PNG_MAGIC:
            raise _bad(name, "PNG bytes (starting with the PNG signature)", picture)
        return
    if not isinstance(picture, np.ndarray) or picture.ndim != 3 or picture.shape[2] != 3 or 0 in picture.shape:
        raise _bad(name, PICTURE_KINDS, picture)
    if np.issubdtype(picture.dtype, np.floating):
        if not np.all(np.isfinite(picture)) or picture.min() < 0 or picture.max() > 1:
            raise _bad(name, "a float array with values in [0,1]", picture)
    elif picture.dtype != np.uint8:
        raise _bad(name, PICTURE_KINDS, picture)


def _array_png(arr: np.ndarray) -> bytes:
    """Encode a checked (H,W,3) float [0,1] or uint8 array as PNG, enlarged if it is small."""
    import matplotlib.image as mpimg

    pixels = arr if arr.dtype == np.uint8 else (arr * 255).round().astype(np.uint8)
    factor = max(1, MIN_ARRAY_SIDE // max(pixels.shape[:2]))
    if factor > 1:
        pixels = pixels.repeat(factor, axis=0).repeat(factor, axis=1)
    buf = io.BytesIO()
    mpimg.imsave(buf, np.ascontiguousarray(pixels), format="png")
    return buf.getvalue()


def _figure_png(fig: "Figure", dpi: int) -> bytes:
    """Render a matplotlib figure to PNG at its own size (no tight crop, so frames of one figsize line up)
    and close it (so a notebook does not show it a second time)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buf.getvalue()


def picture_png(name: str, picture: Picture, dpi: int = 100) -> bytes:
    """PNG bytes of one picture (a Figure, PNG bytes or an (H,W,3) array); ``name`` is used in errors.

    A Figure is rendered at ``dpi`` and closed."""
    _check_picture(name, picture)
    if isinstance(picture, (bytes, bytearray)):
        return bytes(picture)
    if isinstance(picture, np.ndarray):
        return _array_png(picture)
    return _figure_png(picture, dpi)


def _check_frames(frames: Any) -> list[tuple[str, Any]]:
    """Return ``frames`` as a list of (label, picture) pairs, or raise ParameterError naming the bad item."""
    allowed = "a non-empty sequence of (label, picture) pairs"
    if isinstance(frames, (str, bytes, np.ndarray)) or not isinstance(frames, Sequence) or len(frames) == 0:
        raise _bad("frames", allowed, frames)
    out = []
    for i, item in enumerate(frames):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise _bad(f"frames[{i}]", "a (label, picture) pair", item)
        label, picture = item
        if not isinstance(label, str) or not label:
            raise _bad(f"frames[{i}][0]", "a non-empty string (the frame's label)", label)
        _check_picture(f"frames[{i}][1]", picture)
        out.append((label, picture))
    return out


class ImageSlider(w.VBox):
    """A VBox holding an optional Play button and a slider over frame labels above a Stack of images.

    ``slider.index`` is jslink'd to ``stack.selected_index`` (and ``play.value`` to ``slider.index``), so it
    works in a static page. Build it with :func:`image_slider`.
    """

    def __init__(self, slider: w.SelectionSlider, stack: w.Stack, play: w.Play | None,
                 links: list[Link]) -> None:
        controls = w.HBox([play, slider]) if play is not None else slider
        super().__init__([controls, stack])
        self.add_class("probe-image-slider")
        self.slider = slider
        self.stack = stack
        self.play = play
        self.links = links


def image_slider(frames: Sequence[tuple[str, Picture]], description: str = "", play: bool = False,
                 dpi: int = 100, interval_ms: int = 800) -> ImageSlider:
    """A slider over labelled pictures that works without a kernel (in the static book too).

    ``frames``: (label, picture) pairs, shown in order; a picture is a matplotlib Figure (rendered to PNG at
    ``dpi`` and closed), PNG bytes, or an (H,W,3) float array in [0,1] (or uint8; small arrays are enlarged
    by a whole factor, nearest neighbour). ``description`` labels the slider; ``play`` adds a Play button
    that steps through the frames every ``interval_ms`` milliseconds. Every picture is embedded in the page.
    """
    items = _check_frames(frames)
    if not isinstance(description, str):
        raise _bad("description", "a string", description)
    if not isinstance(play, bool):
        raise _bad("play", "True or False", play)
    dpi = check_int("dpi", dpi, 20, 400)
    interval_ms = check_int("interval_ms", interval_ms, 50, 60_000)
    images = [w.Image(value=picture_png(f"frames[{i}][1]", pic, dpi), format="png",
                      layout=w.Layout(max_width="100%", height="auto"))
              for i, (_, pic) in enumerate(items)]
    total = sum(len(im.value) for im in images)
    if total > WARN_BYTES:
        warnings.warn(f"image_slider embeds {total / 1e6:.1f} MB of PNG in the page; use fewer frames, a lower "
                      f"dpi or smaller pictures", stacklevel=2)

    n = len(items)
    slider = w.SelectionSlider(options=[(label, i) for i, (label, _) in enumerate(items)], value=0,
                               description=description, continuous_update=True,
                               style={"description_width": "initial"},
                               layout=w.Layout(width="100%", max_width="560px"))
    stack = w.Stack(images, selected_index=0)
    links = [w.jslink((slider, "index"), (stack, "selected_index"))]
    player = None
    if play:
        player = w.Play(value=0, min=0, max=n - 1, step=1, interval=interval_ms, repeat=True,
                        layout=w.Layout(width="auto", flex="0 0 auto"))
        links.append(w.jslink((player, "value"), (slider, "index")))
    return ImageSlider(slider, stack, player, links)
