"""Measuring the Pie features on any image, training or generated (paper App. B.2).

Units are those of :mod:`probe_utils.render.pie` (lengths in half image widths), so
``measure(images)`` compares directly with the renderer's labels
(``size`` <-> ``labels["radius"]``; see ``LABEL_OF``).

* foreground: pixels whose largest channel deficit from white, ``1 - min(R, G, B)``, exceeds
  ``threshold`` (0.5: a rendered edge pixel counts when the disc covers more than half of it);
* ``size``: radius of the disc with the foreground's area, ``sqrt(area / pi) / (W / 2)``;
* ``x``, ``y``: foreground centroid, offset from the image centre (``y`` positive downwards);
* ``red``: share of foreground pixels whose R exceeds both G and B.

An image with no foreground gets NaN for every feature.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from probe_utils.features._common import as_images
from probe_utils.params import ParameterError, check_float, check_int, check_seed
from probe_utils.render import pie as pie_render

DEFAULT_THRESHOLD = 0.5
#: measured feature -> renderer label with the same meaning and units
LABEL_OF = {"size": "radius", "x": "x", "y": "y", "red": "red"}


def foreground(x: torch.Tensor | np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor:
    """Boolean mask (n,H,W) of non-background pixels, on the input's device."""
    threshold = _check_threshold(threshold)
    img = as_images(x)
    return (1.0 - img.amin(dim=1)) > threshold


def _check_threshold(threshold: float) -> float:
    t = check_float("threshold", threshold)
    if not 0.0 < t < 1.0:
        raise ParameterError(f"parameter 'threshold' must be a number in (0, 1); got {threshold!r}")
    return t


def measure(x: torch.Tensor | np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> dict[str, np.ndarray]:
    """Per-image ``size``, ``x``, ``y``, ``red`` (float64 numpy arrays) of a batch of square images."""
    threshold = _check_threshold(threshold)
    img = as_images(x)
    n, _, h, w = img.shape
    if h != w:
        raise ParameterError(f"parameter 'x' must hold square images; got {h}x{w}")
    fg = ((1.0 - img.amin(dim=1)) > threshold).float()  # (n,H,W)
    area = fg.sum(dim=(1, 2))
    half = w / 2.0
    coord = (torch.arange(w, device=img.device, dtype=torch.float32) + 0.5 - half) / half
    safe = area.clamp(min=1.0)
    cx = (fg.sum(dim=1) * coord).sum(dim=1) / safe  # column profile . column centres
    cy = (fg.sum(dim=2) * coord).sum(dim=1) / safe  # row profile . row centres
    r, g, b = img[:, 0], img[:, 1], img[:, 2]
    red = (((r > g) & (r > b)).float() * fg).sum(dim=(1, 2)) / safe
    out = {
        "size": (area.double().div(math.pi).sqrt() / half),
        "x": cx.double(), "y": cy.double(), "red": red.double(),
    }
    empty = (area == 0).cpu().numpy()
    res = {}
    for k, v in out.items():
        a = v.cpu().numpy()
        a[empty] = np.nan
        res[k] = a
    return res


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
