"""Numerosity of dot images: a connected-component counter with stated rules.

Generated images are messy (faint smudges, specks, elongated or merged blobs, dots cut by the
border), so the counter states how it treats each case. For an image of width ``W`` the
reference *disc area* is ``pi * (RADIUS_FRAC * W) ** 2``, the area of the renderer's disc.

1. **Foreground.** A pixel is foreground when its darkness ``(1 - x).max(over channels)``
   exceeds ``threshold``. Fainter blobs are background and are not counted at all. The
   default 0.1 is ``1 - COLOR_MAX``, the darkness of the palest dot the renderer can draw, so
   every training dot is seen whole down to its fully covered core (at 0.15 about one dot in
   6000, with all three channels above 0.85, vanishes; at 0.3 many pale dots do).
2. **Blobs** are the connected components of the foreground, with 4-connectivity by default
   (``connectivity=8`` also joins pixels that touch only at a corner). Rendered dots are
   at least 2 px apart, so they never join under 4-connectivity, whatever the threshold.
3. **Area** of a blob is ink-weighted: each foreground pixel counts its darkness relative to
   the darkest pixel of its 3x3 neighbourhood (an anti-aliased edge pixel counts as the
   fraction of it the disc covers), so a rendered disc of any colour measures 0.75-1.02 disc
   areas even at 32 px. ``blobs`` also reports the plain pixel count.
4. **Specks.** A blob smaller than ``min_area_frac`` disc areas (default 0.25) is ignored; it
   is reported in :func:`blob_stats` as a speck.
5. **Merged blobs.** A blob of at least ``LARGE_FRAC`` (1.5) disc areas is reported as
   *large* (likely merged dots). By default it counts as one dot; with ``split_merged=True``
   it counts as ``round(area / disc area)`` dots (at least one).
6. **Border.** A dot cut by the image border counts as one, like any other blob, if its
   visible area passes the speck rule; blobs reaching the outermost pixels are reported.
   (Rendered dots lie inside the image but their edges often reach the outermost pixels.)

On fresh renders of :mod:`probe_utils.render.dots` the count is exact; :func:`accuracy_report`
measures how often. All inputs may be torch tensors (any device) or numpy arrays (float in
[0, 1] or uint8), shape ``(n, 3, H, W)`` or ``(3, H, W)``; outputs are numpy arrays.
Labelling runs on the CPU with ``scipy.ndimage`` over the whole batch at once.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy import ndimage

from probe_utils.features._common import as_images
from probe_utils.params import check_choice, check_float, check_int, check_list, check_seed
from probe_utils.render import dots as _render
from probe_utils.render.dots import RADIUS_FRAC

LARGE_FRAC = 1.5
DEFAULT_THRESHOLD = 0.1  # = 1 - render.dots.COLOR_MAX, the darkness of the palest possible dot
DEFAULT_MIN_AREA_FRAC = 0.25


def disc_area(width: int) -> float:
    """Area in pixels of one rendered disc in an image of width ``width``."""
    return float(np.pi * (RADIUS_FRAC * width) ** 2)


def _structure(connectivity: int) -> np.ndarray:
    """3-d structuring element that connects pixels within an image, never across the batch."""
    s = np.zeros((3, 3, 3), dtype=bool)
    s[1] = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    return s


def _check(threshold: float, min_area_frac: float, connectivity: int) -> tuple[float, float, int]:
    threshold = check_float("threshold", threshold, 0.0, 1.0)
    min_area_frac = check_float("min_area_frac", min_area_frac, 0.0, LARGE_FRAC)
    connectivity = check_choice("connectivity", connectivity, (4, 8))
    return threshold, min_area_frac, connectivity


def blobs(x: torch.Tensor | np.ndarray, *, threshold: float = DEFAULT_THRESHOLD,
          min_area_frac: float = DEFAULT_MIN_AREA_FRAC, split_merged: bool = False,
          connectivity: int = 4, return_labels: bool = False) -> dict[str, np.ndarray]:
    """Every blob in the batch, one row each, with how the counter treats it.

    Returns a dict of arrays with one entry per blob: ``image`` (index in the batch),
    ``area`` (ink-weighted, pixels), ``pixels`` (plain pixel count), ``cx``, ``cy``
    (ink-weighted centroid in pixels, pixel centres at +0.5), ``border`` (reaches the
    outermost pixels), ``speck`` (ignored as too small), ``large`` (>= 1.5 disc areas) and
    ``weight`` (how many dots it counts as: 0 for a speck, else 1, or round(area / disc
    area) with ``split_merged``). Also ``n_images`` and ``disc_area`` (0-d arrays), and with
    ``return_labels`` the component map ``labels`` (n, H, W): blob ``i`` has value ``i + 1``,
    background 0.
    """
    threshold, min_area_frac, connectivity = _check(threshold, min_area_frac, connectivity)
    img = as_images(x).cpu().numpy()
    n, _, h, w = img.shape
    dark = 1.0 - img.min(axis=1)  # (n, H, W): (1 - x).max over channels
    fg = dark > threshold
    lab, nlab = ndimage.label(fg, structure=_structure(connectivity))
    area_ref = disc_area(w)

    # Ink-weighted area: a foreground pixel counts its darkness relative to the darkest pixel
    # of its 3x3 neighbourhood, i.e. the fraction of it an anti-aliased edge covers.
    local_max = ndimage.maximum_filter(dark, size=(1, 3, 3))
    flat = lab.ravel()
    pix = np.flatnonzero(flat)
    ids = flat[pix]
    image_of_pix = pix // (h * w)
    rem = pix % (h * w)
    rows, cols = rem // w, rem % w
    wts = np.minimum(1.0, dark.ravel()[pix] / local_max.ravel()[pix]).astype(np.float64)
    pixels = np.bincount(ids, minlength=nlab + 1)[1:]
    area = np.bincount(ids, weights=wts, minlength=nlab + 1)[1:]
    image = np.zeros(nlab + 1, dtype=np.int64)
    image[ids] = image_of_pix
    safe = np.maximum(area, 1e-12)
    cy = np.bincount(ids, weights=wts * (rows + 0.5), minlength=nlab + 1)[1:] / safe
    cx = np.bincount(ids, weights=wts * (cols + 0.5), minlength=nlab + 1)[1:] / safe
    on_edge = (rows == 0) | (rows == h - 1) | (cols == 0) | (cols == w - 1)
    border = np.zeros(nlab + 1, dtype=bool)
    border[ids[on_edge]] = True

    speck = area < min_area_frac * area_ref
    large = area >= LARGE_FRAC * area_ref
    weight = np.where(speck, 0, 1).astype(np.int64)
    if split_merged:
        weight = np.where(speck, 0, np.maximum(1, np.rint(area / area_ref))).astype(np.int64)
    out = {
        "image": image[1:], "area": area, "pixels": pixels.astype(np.int64), "cx": cx, "cy": cy,
        "border": border[1:], "speck": speck, "large": large, "weight": weight,
        "n_images": np.asarray(n), "disc_area": np.asarray(area_ref),
    }
    if return_labels:
        out["labels"] = lab
    return out


def blob_stats(x: torch.Tensor | np.ndarray, *, threshold: float = DEFAULT_THRESHOLD,
               min_area_frac: float = DEFAULT_MIN_AREA_FRAC, split_merged: bool = False,
               connectivity: int = 4) -> dict[str, np.ndarray]:
    """Per-image summary of :func:`blobs` (each an int array of length n).

    ``count``: the numerosity (as :func:`count`); ``blobs``: blobs counted (not specks);
    ``specks``: blobs ignored as too small; ``large``: counted blobs of >= 1.5 disc areas
    (likely merged dots); ``border``: counted blobs touching the image border.
    """
    b = blobs(x, threshold=threshold, min_area_frac=min_area_frac, split_merged=split_merged,
              connectivity=connectivity)
    n = int(b["n_images"])
    kept = ~b["speck"]

    def per_image(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        wts = None if weights is None else weights[mask]
        return np.bincount(b["image"][mask], weights=wts, minlength=n).astype(np.int64)

    return {
        "count": per_image(kept, b["weight"]),
        "blobs": per_image(kept),
        "specks": per_image(b["speck"]),
        "large": per_image(kept & b["large"]),
        "border": per_image(kept & b["border"]),
    }


def count(x: torch.Tensor | np.ndarray, *, threshold: float = DEFAULT_THRESHOLD,
          min_area_frac: float = DEFAULT_MIN_AREA_FRAC, split_merged: bool = False,
          connectivity: int = 4) -> np.ndarray:
    """Numerosity per image (int64 array of length n), by the rules in the module docstring."""
    return blob_stats(x, threshold=threshold, min_area_frac=min_area_frac, split_merged=split_merged,
                      connectivity=connectivity)["count"]


def speed_report(n: int = 2000, dots: int = 5, size: int = 64, seed: int = 0, threads: int = 1) -> dict[str, float]:
    """Images per second of the renderer and of :func:`count` on the CPU with ``threads`` torch threads."""
    n = check_int("n", n, 1)
    dots = check_int("dots", dots, *_render.COUNT_RANGE)
    threads = check_int("threads", threads, 1)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _render.render(dots, n=min(n, 64), seed=seed, size=size)  # warm-up
        t0 = time.perf_counter()
        x, _ = _render.render(dots, n=n, seed=seed, size=size)
        t1 = time.perf_counter()
        count(x)
        t2 = time.perf_counter()
    finally:
        torch.set_num_threads(old)
    return {"render_images_per_s": n / (t1 - t0), "count_images_per_s": n / (t2 - t1)}


def accuracy_report(n: int = 500, seed: int = 12345, counts=range(1, 13), size: int = 64) -> dict[str, float]:
    """Exact-count fraction of :func:`count` on ``n`` fresh renders per dot count.

    Keys: ``exact_<k>`` per count k, ``exact_all`` (over all images), ``exact_worst`` (lowest
    per-count fraction), ``mean_abs_error``, ``n_per_count``, ``size`` and
    ``count_images_per_s`` (throughput of the counter over these images, current threads).
    """
    n = check_int("n", n, 1)
    seed = check_seed("seed", seed)
    ks = check_list("counts", counts, lambda name, k: check_int(name, k, *_render.COUNT_RANGE))
    report: dict[str, float] = {}
    errors, exact, elapsed = [], [], 0.0
    for k in ks:
        x, labels = _render.render(k, n=n, seed=seed + k, size=size)
        t0 = time.perf_counter()
        got = count(x)
        elapsed += time.perf_counter() - t0
        hit = got == labels["count"]
        report[f"exact_{k}"] = float(hit.mean())
        exact.append(hit)
        errors.append(np.abs(got - labels["count"]))
    report["exact_all"] = float(np.concatenate(exact).mean())
    report["exact_worst"] = float(min(report[f"exact_{k}"] for k in ks))
    report["mean_abs_error"] = float(np.concatenate(errors).mean())
    report["n_per_count"] = float(n)
    report["size"] = float(size)
    report["count_images_per_s"] = n * len(ks) / max(elapsed, 1e-9)
    return report
