"""Measuring the Pie features on any image, training or generated (paper App. B.2), refusing what is not a pie.

Units are those of :mod:`probe_utils.render.pie` (lengths in half image widths), so ``measure(images)`` compares
directly with the renderer's labels (``size`` <-> ``labels["radius"]``; see ``LABEL_OF``).

* **darkness** of a pixel: ``1 - min(R, G, B)`` (every pie colour has a zero channel, so a covered pixel is 1);
  the image's **ink level** ``c`` is the 99th percentile of darkness (1 for a render; lower for faint ink);
* **foreground**: pixels darker than ``RELATIVE * c`` (half the ink level: a rendered edge pixel counts when the
  disc covers more than half of it, and a blurred or faint disc keeps about its area);
* ``size``: radius of the disc with the foreground's area, ``sqrt(area / pi) / (W / 2)``. The half-ink contour of
  a blurred disc lies inside its edge, so blur reads a disc smaller (at 32 px by 0.007 under a 1 px blur).
  ``measure(..., size_rule="ink")`` reads the radius from the disc's ink mass instead, which blur only moves around:
  the linear darkness ``1 - mean(R, G, B)`` summed over the disc and its blurred rim (less the background's), divided
  by the disc's mean darkness inside (``INTERIOR_PX`` pixels in from the contour), is its area (the pie's slices are
  wedges, so the inside holds each colour in the disc's proportions); at 32 px its bias under a 1 px blur is
  -0.0001 (area rule: -0.007), under 1.5 px -0.002 (area rule: -0.013);
* ``x``, ``y``: foreground centroid, offset from the image centre (``y`` positive downwards);
* ``red``: the red share of the disc's area from the red channel's ink, which blur only moves around: with the red
  colour ``(rho, 0, 0)`` and the others ``(0, g, b)``, the sum of ``1 - R`` over the disc and its blurred rim is
  ``c * (other area + (1 - rho) * red area)``, so ``red = (c * A - sum(1 - R)) / (c * rho * A)`` with ``A`` the
  foreground area. ``rho * c`` is read from the reddest pixels (``R - max(G, B)``, 99th percentile) and ``rho`` kept
  in the renderer's range (0.8-1). On renders this equals the paper's rule (the share of foreground pixels whose R
  exceeds G and B); on blurred images the paper's rule leans to red (it reads 0.59 for 0.5 under a 1 px blur), this
  one does not. ``measure(..., red_rule="majority")`` gives the paper's rule, for comparison.

**Refusals** (every feature NaN; ``refusal`` says why, see :data:`REASONS`): non-finite pixels; no ink (blank or
ink level below ``MIN_INK``); a grey background (the image border's median darkness above ``BACKGROUND_MAX``);
not one disc (the largest connected foreground blob holds less than ``MIN_MAIN_BLOB`` of the foreground: noise,
several objects; or its shape is far from a disc: area more than ``DISC_TOLERANCE`` away from that of a disc with
the same second moments); a red estimate outside [-0.1, 1.1] (colours no pie has).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

from probe_utils.features._common import as_images, finite_images
from probe_utils.params import ParameterError, check_choice, check_float, check_int, check_seed
from probe_utils.render import pie as pie_render

RELATIVE = 0.5
MIN_INK = 0.15
BACKGROUND_MAX = 0.1
MIN_MAIN_BLOB = 0.9
DISC_TOLERANCE = 0.35
RIM_PX = 2
#: how far inside the half-ink contour the ink-mass size rule reads the disc's darkness (pixels)
INTERIOR_PX = 2
DEFAULT_THRESHOLD = RELATIVE
#: measured feature -> renderer label with the same meaning and units
LABEL_OF = {"size": "radius", "x": "x", "y": "y", "red": "red"}
#: why an image is refused (``measure(..., details=True)["refusal"]``); 0 = measured
REASONS = {0: "", 1: "not a number (NaN or infinite pixels)", 2: "no ink (blank or too faint)",
           3: "grey background", 4: "not one disc (noise, several blobs or a shapeless smear)",
           5: "colours no pie has"}


def _check_threshold(threshold: float) -> float:
    t = check_float("threshold", threshold)
    if not 0.0 < t < 1.0:
        raise ParameterError(f"parameter 'threshold' must be a number in (0, 1); got {threshold!r}")
    return t


def foreground(x: torch.Tensor | np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor:
    """Boolean mask (n,H,W) of the pie's pixels (darker than ``threshold`` times the ink level), on the input's
    device."""
    threshold = _check_threshold(threshold)
    img = as_images(x).nan_to_num(1.0)
    dark = 1.0 - img.amin(dim=1)
    ink = torch.quantile(dark.flatten(1), 0.99, dim=1) if dark.numel() else dark.new_zeros(0)
    return dark > threshold * ink.clamp(min=MIN_INK)[:, None, None]


def measure(x: torch.Tensor | np.ndarray, threshold: float = DEFAULT_THRESHOLD, red_rule: str = "ink",
            details: bool = False, size_rule: str = "area") -> dict[str, np.ndarray]:
    """Per-image ``size``, ``x``, ``y``, ``red`` (float64 numpy arrays; NaN = refused) of a batch of square images.

    ``red_rule``: ``"ink"`` (default, holds under blur) or ``"majority"`` (the paper's share of foreground pixels
    whose R exceeds G and B). ``size_rule``: ``"area"`` (default: the foreground's area, which blur shrinks) or
    ``"ink"`` (the disc's ink mass, which blur does not). With ``details``: also ``refusal`` (reason codes,
    :data:`REASONS`) and ``ink``.
    """
    threshold = _check_threshold(threshold)
    red_rule = check_choice("red_rule", red_rule, ("ink", "majority"))
    size_rule = check_choice("size_rule", size_rule, ("area", "ink"))
    img = as_images(x)
    n, _, h, w = img.shape
    if h != w:
        raise ParameterError(f"parameter 'x' must hold square images; got {h}x{w}")
    finite = finite_images(img)
    arr = np.nan_to_num(img.cpu().numpy().astype(np.float64), nan=1.0)
    r, g, b = arr[:, 0], arr[:, 1], arr[:, 2]
    dark = 1.0 - arr.min(axis=1)                                          # (n,H,W)
    flat = dark.reshape(n, -1)
    ink = np.quantile(flat, 0.99, axis=1) if n else np.zeros(0)
    border = np.concatenate([dark[:, 0], dark[:, -1], dark[:, 1:-1, 0], dark[:, 1:-1, -1]], axis=1)
    background = np.median(border, axis=1) if n else np.zeros(0)
    fg = dark > threshold * np.maximum(ink, MIN_INK)[:, None, None]

    # the largest connected blob must hold (almost) all of the foreground, and be disc-shaped
    within_image = np.zeros((3, 3, 3), dtype=bool)
    within_image[1] = ndimage.generate_binary_structure(2, 1)
    lab, nlab = ndimage.label(fg, structure=within_image)
    sizes = np.bincount(lab.ravel(), minlength=nlab + 1)
    sizes[0] = 0
    pix = np.flatnonzero(lab)
    owner = np.zeros(nlab + 1, dtype=np.int64)
    owner[lab.ravel()[pix]] = pix // (h * w)
    biggest = np.zeros(n)
    np.maximum.at(biggest, owner[1:], sizes[1:])
    area = fg.sum(axis=(1, 2)).astype(np.float64)
    half = w / 2.0
    coord = (np.arange(w) + 0.5 - half) / half
    safe = np.maximum(area, 1.0)
    cx = (fg.sum(axis=1) * coord).sum(axis=1) / safe
    cy = (fg.sum(axis=2) * coord).sum(axis=1) / safe
    # second moments of the foreground: a disc of area A has mean squared distance A / (2 pi) from its centre
    d2 = (coord[None, None, :] - cx[:, None, None]) ** 2 + (coord[None, :, None] - cy[:, None, None]) ** 2
    msd = (fg * d2).sum(axis=(1, 2)) / safe * half ** 2
    discness = area / np.maximum(2 * np.pi * msd, 1e-9)

    rim = ndimage.binary_dilation(fg, structure=np.ones((1, 3, 3), bool), iterations=RIM_PX)
    # background ink (noise, a tint) measured on the border pixels away from the disc, taken off the rim's sums
    edge = np.zeros((h, w), dtype=bool)
    edge[[0, -1], :] = True
    edge[:, [0, -1]] = True
    far = edge[None] & ~rim
    n_far = np.maximum(far.sum(axis=(1, 2)), 1)
    if red_rule == "majority":
        red = ((r > g) & (r > b) & fg).sum(axis=(1, 2)) / safe
    else:
        bg_r = ((1.0 - r) * far).sum(axis=(1, 2)) / n_far
        s_r = ((1.0 - r - bg_r[:, None, None]) * rim).sum(axis=(1, 2))
        redness = np.where(fg, r - np.maximum(g, b), -1.0).reshape(n, -1)
        rho_c = np.quantile(redness, 0.99, axis=1) if n else np.zeros(0)
        c = np.maximum(ink, MIN_INK)
        rho = np.clip(rho_c / c, *pie_render.RED_LEVEL)
        red = (c * area - s_r) / (c * rho * safe)

    refusal = np.zeros(n, dtype=np.int64)
    refusal[(red < -0.1) | (red > 1.1)] = 5
    refusal[(biggest < MIN_MAIN_BLOB * area) | (np.abs(discness - 1.0) > DISC_TOLERANCE)] = 4
    refusal[background > BACKGROUND_MAX] = 3
    refusal[(ink < MIN_INK) | (area == 0)] = 2
    refusal[~finite] = 1
    bad = refusal > 0
    if size_rule == "ink":
        area = _ink_area(arr, fg, rim, far, n_far)
    out = {"size": np.sqrt(np.maximum(area, 0.0) / math.pi) / half, "x": cx, "y": cy, "red": np.clip(red, 0.0, 1.0)}
    for v in out.values():
        v[bad] = np.nan
    if details:
        out["refusal"] = refusal
        out["ink"] = ink
    return out


def _ink_area(arr: np.ndarray, fg: np.ndarray, rim: np.ndarray, far: np.ndarray, n_far: np.ndarray) -> np.ndarray:
    """Each disc's area in pixels from its ink mass (the ``size_rule="ink"`` of :func:`measure`): the linear darkness
    summed over the foreground and its rim, less the background's, over the mean darkness ``INTERIOR_PX`` pixels
    inside the contour (the whole foreground where the disc is too small to have such an inside)."""
    dark = 1.0 - arr.mean(axis=1)
    bg = (dark * far).sum(axis=(1, 2)) / n_far
    inner = ndimage.binary_erosion(fg, structure=np.ones((1, 3, 3), bool), iterations=INTERIOR_PX)
    inner = np.where(inner.any(axis=(1, 2))[:, None, None], inner, fg)
    level = (dark * inner).sum(axis=(1, 2)) / np.maximum(inner.sum(axis=(1, 2)), 1)
    mass = ((dark - bg[:, None, None]) * rim).sum(axis=(1, 2))
    return mass / np.maximum(level - bg, 1e-6)


def accuracy_report(n: int = 1000, seed: int = 12345) -> dict[str, float]:
    """Measure ``n`` fresh uniform renders (64 px) against their labels.

    Returns, per feature ``f`` in size/x/y/red: ``f_mean_abs_err``, ``f_p99_abs_err``,
    ``f_max_abs_err`` and ``f_spacing`` (the finest gap an experiment must resolve,
    ``render.pie.SPACING``), all in feature units; plus ``n`` and ``empty`` (count of images
    with no foreground).
    """
    n = check_int("n", n, 1)
    seed = check_seed("seed", seed)
    images, labels = pie_render.render(n=n, seed=seed)
    got = measure(images)
    rep: dict[str, float] = {"n": float(n), "empty": float(np.isnan(got["size"]).sum())}
    for feat, lab in LABEL_OF.items():
        err = np.abs(got[feat] - labels[lab])
        rep[f"{feat}_mean_abs_err"] = float(np.nanmean(err))
        rep[f"{feat}_p99_abs_err"] = float(np.nanpercentile(err, 99))
        rep[f"{feat}_max_abs_err"] = float(np.nanmax(err))
        rep[f"{feat}_spacing"] = float(pie_render.SPACING[feat])
    return rep


def robustness_report(n: int = 300, seed: int = 12345, size: int = 32, red_rule: str = "ink") -> list[dict]:
    """Accuracy of :func:`measure` on generated-like versions of ``n`` fresh uniform renders, one row per condition
    of :data:`probe_utils.features.degrade.CONDITIONS`, plus grey mush and noise images (which must be refused).

    Each row: ``condition``, ``description``, ``images``, ``refused`` (share), and per feature ``f``
    ``f_mean_abs_err`` and ``f_p90_abs_err`` over the measured images (feature units), and ``f_bias``, the mean
    signed error (which way the condition moves a reading: blur makes ``size`` read smaller, since the half-ink
    contour of a blurred disc lies inside its edge); ``size_ink_bias`` and ``size_ink_mean_abs_err``: the same for
    the ink-mass size rule (``size_rule="ink"``), which blur does not move.
    """
    from probe_utils.features import degrade

    n = check_int("n", n, 1, 100_000)
    seed = check_seed("seed", seed)
    size = check_int("size", size, 16, 512)
    images, labels = pie_render.render(n=n, seed=seed, size=size)
    rows = []
    for cond, desc in degrade.CONDITIONS.items():
        degraded = degrade.apply(cond, images, seed=seed)
        got = measure(degraded, red_rule=red_rule)
        got["size_ink"] = measure(degraded, size_rule="ink")["size"]
        ok = np.isfinite(got["size"])
        row = {"condition": cond, "description": desc, "images": n, "refused": float(1 - ok.mean())}
        for feat, lab in {**LABEL_OF, "size_ink": "radius"}.items():
            signed = (got[feat] - labels[lab])[ok]
            err = np.abs(signed)
            row[f"{feat}_bias"] = float(signed.mean()) if ok.any() else float("nan")
            row[f"{feat}_mean_abs_err"] = float(err.mean()) if ok.any() else float("nan")
            row[f"{feat}_p90_abs_err"] = float(np.percentile(err, 90)) if ok.any() else float("nan")
        rows.append(row)
    m = max(50, n // 4)
    for cond, desc, imgs in (("grey_mush", "grey mush (not a pie: must be refused)", degrade.grey_mush(m, size, seed)),
                             ("noise_images", "uniform noise (not a pie: must be refused)",
                              degrade.noise_images(m, size, seed))):
        got = measure(imgs, red_rule=red_rule)
        rows.append({"condition": cond, "description": desc, "images": m,
                     "refused": float(np.isnan(got["size"]).mean())})
    return rows
