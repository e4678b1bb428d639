"""The Pie data set: one coloured disc ("pie") on a white background (paper Sec. 4.1.2-5, App. B.1).

Features and units
------------------
All lengths are in units of **half the image width** (``size / 2`` pixels), the unit of the
paper's original code, so the paper's values read directly:

``radius``  disc radius, in ``[RADIUS_MIN, RADIUS_MAX] = [0.4, 0.8]`` (0.8 is 40% of the width).
``x``       horizontal offset of the disc centre from the image centre, positive to the right,
            in ``[LOC_MIN, LOC_MAX] = [-0.2, 0.2]``.
``y``       vertical offset of the disc centre, positive **downwards** (image rows, as ``imshow``
            shows them), same range.
``red``     proportion of the disc's angle (hence area) that is red, in ``[0, 1]``.

``RADIUS_MAX + LOC_MAX = 1``: every allowed disc lies inside the image, touching the border at
most. The paper's independence values (size 0.5 / 0.55 / 0.8, location -0.05 / 0 / 0.2,
red 0.3 / 0.4 / 0.9) and grids (below) are all plain values in these units.

Colours (App. B.1): the red colour is ``(R, 0, 0)`` with ``R ~ U(0.8, 1)``; three other colours are
``(0, G, B)`` with ``G, B ~ U(0, 0.9)``. The pie starts as four fixed slices (red first, from angle
0, then the others with random shares of the remaining angle); then ``SWAPS = 4`` times a slice
of random angle at a random position in the first half turn is exchanged with a slice of the
same angle at a random position in the second half turn. Swaps permute angles, so the red
proportion is preserved exactly. The disc edge is anti-aliased (linear coverage over one pixel);
slice boundaries are hard (each pixel takes the colour at its centre's angle).

How each feature is chosen (one image at a time, all independent)
-----------------------------------------------------------------
* ``None``: uniform on its whole allowed range (continuous).
* a number: fixed for every image.
* a 1-D sequence/array of numbers: each image draws one of them, uniformly (a discrete set).
* ``values={"red": arr, ...}``: exact per-image values, each ``arr`` of shape ``(n,)``.
* ``combos``: array ``(m, 4)`` of rows ``(radius, x, y, red)`` (``COMBO_COLUMNS``); each image draws
  one row uniformly, so the features are chosen jointly. A NaN entry leaves that feature of that
  row uniform on its range.

A feature may be set in one place only (keyword, ``values`` or a combos column with any
non-NaN entry); anything else raises :class:`~probe_utils.params.ParameterError`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping

import numpy as np
import torch

from probe_utils.params import ParameterError, check_batch, check_float, check_int, check_seed

RADIUS_MIN, RADIUS_MAX = 0.4, 0.8
LOC_MIN, LOC_MAX = -0.2, 0.2
RED_MIN, RED_MAX = 0.0, 1.0
#: allowed range of each feature, in the units above
RANGES: dict[str, tuple[float, float]] = {
    "radius": (RADIUS_MIN, RADIUS_MAX), "x": (LOC_MIN, LOC_MAX),
    "y": (LOC_MIN, LOC_MAX), "red": (RED_MIN, RED_MAX),
}
FEATURES = ("radius", "x", "y", "red")
#: column order of ``combos`` rows
COMBO_COLUMNS = FEATURES

#: red impulse grid of Sec. 4.1.2 / 4.2: 10%, 20%, ..., 90% (the paper uses 10/30/50/70/90 and 30+40, 30+90)
RED_GRID = np.round(np.linspace(0.1, 0.9, 9), 10)
#: size grid of the combinations experiment (Sec. 5): 5 radii 0.4 .. 0.8
SIZE_GRID = np.round(np.linspace(RADIUS_MIN, RADIUS_MAX, 5), 10)
#: location grids of the combinations experiment: 9 offsets -0.2 .. 0.2 (step 0.05)
X_GRID = np.round(np.linspace(LOC_MIN, LOC_MAX, 9), 10)
Y_GRID = X_GRID.copy()
#: red levels of the combinations experiment: 10%, 30%, 50%, 70%, 90%
COMBO_RED_GRID = np.round(np.linspace(0.1, 0.9, 5), 10)
#: the paper's independence experiment (Sec. 4.3): three values per feature
INDEPENDENCE_VALUES: dict[str, tuple[float, ...]] = {
    "red": (0.3, 0.4, 0.9), "radius": (0.5, 0.55, 0.8), "location": (-0.05, 0.0, 0.2),
}
#: smallest gap between two values that some experiment must tell apart, per measured feature
#: (size: 0.5 vs 0.55; location: grid step 0.05; red: 0.3 vs 0.4)
SPACING: dict[str, float] = {"size": 0.05, "x": 0.05, "y": 0.05, "red": 0.1}

SWAPS = 4
SWAP_WIDTH = (0.02, 0.3)  # angle of a swapped slice, in turns
RED_LEVEL = (0.8, 1.0)  # R of the red colour
OTHER_LEVEL = (0.0, 0.9)  # G and B of the three other colours
N_OTHER = 3
_EPS = 1e-9
_CHUNK_PIXELS = 1 << 22  # rasterize at most this many pixels at once


def combination_grid() -> np.ndarray:
    """All 5 x 9 x 9 x 5 = 2025 combinations of Sec. 5 as rows ``(radius, x, y, red)``."""
    g = np.meshgrid(SIZE_GRID, X_GRID, Y_GRID, COMBO_RED_GRID, indexing="ij")
    return np.stack([a.ravel() for a in g], axis=1)


def _fail(name: str, allowed: str, value: Any) -> None:
    raise ParameterError(f"parameter {name!r} must be {allowed}; got {value!r}")


def _in_range(name: str, value: Any, feature: str) -> float:
    """One feature value, checked against its range (with a tiny tolerance) and clipped."""
    lo, hi = RANGES[feature]
    v = check_float(name, value)
    if v < lo - _EPS or v > hi + _EPS:
        extra = " (the disc must stay inside the image)" if feature != "red" else ""
        _fail(name, f"a number in [{lo}, {hi}]{extra}", value)
    return min(max(v, lo), hi)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, numbers.Number) or (isinstance(value, np.ndarray) and value.ndim == 0)


def _spec(name: str, value: Any) -> tuple[str, np.ndarray | None]:
    """Classify a feature keyword: ("uniform", None), ("fixed", [v]) or ("set", values)."""
    if value is None:
        return "uniform", None
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if _is_scalar(value):
        v = value.item() if isinstance(value, np.ndarray) else value
        return "fixed", np.array([_in_range(name, v, name)])
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__"):
        _fail(name, "None, a number or a 1-D sequence of numbers", value)
    arr = np.asarray(value, dtype=object)
    if arr.ndim != 1:
        _fail(name, "None, a number or a 1-D sequence of numbers", value)
    if arr.size == 0:
        _fail(name, "a non-empty set of values", value)
    return "set", np.array([_in_range(f"{name}[{i}]", v, name) for i, v in enumerate(arr)])


def _check_combos(combos: Any) -> np.ndarray | None:
    if combos is None:
        return None
    try:
        arr = np.asarray(combos, dtype=np.float64)
    except (TypeError, ValueError):
        _fail("combos", "a numeric array of shape (m, 4) with rows (radius, x, y, red)", combos)
    if arr.ndim != 2 or arr.shape[1] != 4:
        _fail("combos", "an array of shape (m, 4) with rows (radius, x, y, red)", f"shape {arr.shape}")
    if arr.shape[0] == 0:
        _fail("combos", "a non-empty array of rows (radius, x, y, red)", "0 rows")
    for j, feat in enumerate(COMBO_COLUMNS):
        col = arr[:, j]
        ok = np.isnan(col)
        lo, hi = RANGES[feat]
        bad = ~ok & ((col < lo - _EPS) | (col > hi + _EPS))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            _fail(f"combos[{i}, {j}] ({feat})", f"a number in [{lo}, {hi}] or NaN", float(col[i]))
        arr[:, j] = np.where(ok, col, np.clip(col, lo, hi))
    return arr


def _check_values(values: Any, n: int) -> dict[str, np.ndarray]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        _fail("values", "a dict mapping feature names to arrays of shape (n,)", values)
    out = {}
    for key, val in values.items():
        if key not in FEATURES:
            _fail("values", "a dict with keys among " + ", ".join(FEATURES), key)
        name = f"values[{key}]"
        try:
            arr = np.asarray(val, dtype=np.float64)
        except (TypeError, ValueError):
            _fail(name, f"a numeric array of shape ({n},)", val)
        if arr.shape != (n,):
            _fail(name, f"an array of shape ({n},)", f"shape {arr.shape}")
        lo, hi = RANGES[key]
        bad = np.isnan(arr) | (arr < lo - _EPS) | (arr > hi + _EPS)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            _fail(f"{name}[{i}]", f"a number in [{lo}, {hi}]", float(arr[i]))
        out[key] = np.clip(arr, lo, hi)
    return out


def _check_device(device: Any) -> torch.device:
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        _fail("device", "a torch device such as 'cpu' or 'cuda'", device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        _fail("device", "an available torch device (CUDA is not available here)", device)
    return dev


def _draw_features(n: int, rng: np.random.Generator, specs: dict, combos: np.ndarray | None,
                   values: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Feature values per image; the random stream used does not depend on how features are set."""
    u = rng.random((n, len(FEATURES)))
    u_combo = rng.random(n)
    row = np.full(n, -1, dtype=np.int64)
    if combos is not None:
        row = np.minimum((u_combo * len(combos)).astype(np.int64), len(combos) - 1)
    out = {}
    for j, feat in enumerate(FEATURES):
        lo, hi = RANGES[feat]
        kind, vals = specs[feat]
        uniform = lo + u[:, j] * (hi - lo)
        if feat in values:
            out[feat] = values[feat]
        elif kind != "uniform":
            k = np.minimum((u[:, j] * len(vals)).astype(np.int64), len(vals) - 1)
            out[feat] = vals[k]
        elif combos is not None:
            col = combos[row, COMBO_COLUMNS.index(feat)]
            out[feat] = np.where(np.isnan(col), uniform, col)
        else:
            out[feat] = uniform
    return out, row


def _draw_pie(n: int, rng: np.random.Generator, red: np.ndarray) -> dict[str, np.ndarray]:
    """Colours, slice boundaries and swaps for each image."""
    red_level = rng.uniform(*RED_LEVEL, size=n)
    others = rng.uniform(*OTHER_LEVEL, size=(n, N_OTHER, 2))
    palette = np.zeros((n, N_OTHER + 1, 3))
    palette[:, 0, 0] = red_level
    palette[:, 1:, 1:] = others
    w = rng.uniform(0.01, 1.0, size=(n, N_OTHER))
    shares = np.concatenate([red[:, None], (1.0 - red[:, None]) * w / w.sum(1, keepdims=True)], 1)
    bounds = np.cumsum(shares, axis=1)[:, :-1]  # (n, 3) angles (turns) where a new colour starts
    width = rng.uniform(*SWAP_WIDTH, size=(n, SWAPS))
    src = rng.random((n, SWAPS)) * (0.5 - width)
    dst = 0.5 + rng.random((n, SWAPS)) * (0.5 - width)
    return {"palette": palette, "bounds": bounds, "width": width, "src": src, "dst": dst}


def _rasterize(size: int, cx: torch.Tensor, cy: torch.Tensor, r: torch.Tensor,
               pie: dict[str, torch.Tensor]) -> torch.Tensor:
    """Images (b,3,size,size) for discs with pixel centre/radius and pie layout (all tensors on one device)."""
    dev = cx.device
    coord = torch.arange(size, device=dev, dtype=torch.float32) + 0.5
    dx = coord[None, None, :] - cx[:, None, None]  # (b,1,W)
    dy = coord[None, :, None] - cy[:, None, None]  # (b,H,1)
    dist = torch.sqrt(dx * dx + dy * dy)
    cover = (r[:, None, None] - dist + 0.5).clamp_(0.0, 1.0)
    t = torch.remainder(torch.atan2(dy, dx) / (2 * math.pi), 1.0)  # angle in turns, [0, 1)
    src, dst, width = pie["src"], pie["dst"], pie["width"]
    for k in range(SWAPS - 1, -1, -1):  # colour now at t = initial colour at tau_1(...tau_K(t))
        s, d, w = src[:, k, None, None], dst[:, k, None, None], width[:, k, None, None]
        in_s = (t >= s) & (t < s + w)
        in_d = (t >= d) & (t < d + w)
        t = torch.where(in_s, t - s + d, torch.where(in_d, t - d + s, t))
    bounds, pal = pie["bounds"], pie["palette"]
    after = [t >= bounds[:, j, None, None] for j in range(bounds.shape[1])]  # past each slice start
    img = torch.empty((len(cx), 3, size, size), dtype=torch.float32, device=dev)
    for c in range(3):
        colour = pal[:, 0, c, None, None].expand_as(t)
        for j, past in enumerate(after):
            colour = torch.where(past, pal[:, j + 1, c, None, None], colour)
        img[:, c] = 1.0 - cover * (1.0 - colour)
    return img


def render(n: int = 256, seed: int = 0, device: Any = None, size: int = 64, *, red: Any = None,
           radius: Any = None, x: Any = None, y: Any = None, combos: Any = None,
           values: Mapping[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """Render ``n`` pie images; see the module docstring for units and how features are chosen.

    Returns float32 images ``(n, 3, size, size)`` in [0, 1] on ``device`` and labels: ``red``,
    ``radius``, ``x``, ``y`` (exact values, module units), ``radius_px``, ``cx_px``, ``cy_px``
    (pixels; pixel ``i`` spans ``[i, i+1)``) and ``combo`` (row of ``combos`` used, -1 if none).
    """
    n = check_int("n", n, 1)
    seed = check_seed("seed", seed)
    size = check_int("size", size, 16, 2048)
    n = check_batch("n", n, size)
    dev = _check_device(device)
    specs = {f: _spec(f, v) for f, v in (("radius", radius), ("x", x), ("y", y), ("red", red))}
    combos_arr = _check_combos(combos)
    vals = _check_values(values, n)
    for feat in FEATURES:
        places = [specs[feat][0] != "uniform", feat in vals,
                  combos_arr is not None and not np.isnan(combos_arr[:, FEATURES.index(feat)]).all()]
        if sum(places) > 1:
            _fail(feat, "set in one place only (keyword, values or combos)", "set in several")

    rng = np.random.default_rng(seed)
    feats, row = _draw_features(n, rng, specs, combos_arr, vals)
    pie = _draw_pie(n, rng, feats["red"])
    half = size / 2.0
    labels = {k: feats[k].astype(np.float64) for k in ("red", "radius", "x", "y")}
    labels.update(radius_px=feats["radius"] * half, cx_px=half + feats["x"] * half,
                  cy_px=half + feats["y"] * half, combo=row)

    out = torch.empty((n, 3, size, size), dtype=torch.float32, device=dev)
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    for a in range(0, n, chunk):
        sl = slice(a, min(n, a + chunk))
        part = {k: torch.as_tensor(v[sl], dtype=torch.float32).to(dev) for k, v in pie.items()}
        px = [torch.as_tensor(labels[k][sl], dtype=torch.float32).to(dev) for k in ("cx_px", "cy_px", "radius_px")]
        out[sl] = _rasterize(size, *px, part)
    return out, labels
