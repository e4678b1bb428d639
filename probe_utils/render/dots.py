"""Dots: k non-overlapping coloured discs on a white background (paper Sec. 4.1.1, App. B.1).

Each image has ``count`` discs of radius ``RADIUS_FRAC * size`` pixels, colours uniform in
``[0, COLOR_MAX]^3`` and centres uniform over the positions where the whole disc lies inside
the image. Edges are anti-aliased: a pixel's coverage is ``clamp(radius + 0.5 - d, 0, 1)`` for
the distance ``d`` from its centre to the disc's centre.

No two discs overlap: centres are at least ``2 * radius + GAP_PX`` apart. ``GAP_PX = 2``
(two anti-aliased half-pixel fringes plus one pixel step) means no two discs ever colour the
same pixel or two 4-adjacent pixels, so the counter in :mod:`probe_utils.features.dots` sees
them as separate blobs at any threshold. A 1 px gap is not enough: at 12 dots, 30-50 % of
images then had a pair joined by its fringes.

Placement is random sequential: for dot ``j`` every image that still needs one proposes
``_CANDIDATES`` uniform centres at once, and the first candidate clear of the dots already
placed is kept (so each dot is uniform over the free area); an image whose free area runs out
is restarted. Images that fail ``_RSA_ATTEMPTS`` times (only dense ones: 13-16 dots at 32 px)
fall back to dropping all dots at once, pushing overlapping pairs apart until every pair is
clear, then ``_SHAKE_SWEEPS`` sweeps of hard-disc Metropolis moves (one dot moves, the move is
kept if it stays clear), under which the uniform distribution over valid placements, the
paper's "reject if any two dots overlap", is stationary.

All random numbers come from a CPU generator seeded with ``seed`` (colours first, then
centres), so the images do not depend on ``device``; only rasterization runs on ``device``.
Coordinates in the labels are pixels, ``(x, y)`` = (column, row), with pixel ``(i, j)``
centred at ``(j + 0.5, i + 0.5)``.
"""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np
import torch

from probe_utils.params import ParameterError, check_batch, check_choice, check_int, check_seed

COUNT_RANGE = (1, 16)
MAX_COUNT = COUNT_RANGE[1]
RADIUS_FRAC = 0.08
SIZES = (32, 64, 128)
GAP_PX = 2.0
COLOR_MAX = 0.9
DEFAULT_N = 256

_CANDIDATES = 32  # candidate centres proposed per image and round
_ROUNDS = 24  # rounds per dot before an image is restarted
_RSA_ATTEMPTS = 2  # sequential placements per image before the dense fallback
_RELAX_STEPS = 400  # push-apart steps of the dense fallback
_RELAX_ATTEMPTS = 10  # fallback tries before giving up (never reached in practice)
_SHAKE_SWEEPS = 20  # Metropolis sweeps that randomize a relaxed placement


def radius_px(size: int) -> float:
    """Disc radius in pixels for images of width ``size``."""
    return RADIUS_FRAC * size


def _check_counts(count: int | Sequence[int] | np.ndarray, n: int | None) -> np.ndarray:
    """Validate ``count`` and ``n``; return the per-image counts as an int64 array."""
    lo, hi = COUNT_RANGE
    if isinstance(count, (numbers.Number, np.generic)) and not isinstance(count, (np.ndarray,)):
        c = check_int("count", count, lo, hi)
        n = DEFAULT_N if n is None else check_batch("n", n, max(SIZES))
        return np.full(n, c, dtype=np.int64)
    if isinstance(count, torch.Tensor):
        count = count.detach().cpu().numpy()
    if isinstance(count, np.ndarray) and count.ndim == 0:
        return _check_counts(count.item(), n)
    if isinstance(count, (str, bytes)) or not isinstance(count, (Sequence, np.ndarray)):
        raise ParameterError(f"parameter 'count' must be an integer in {lo}..{hi} or a sequence of them; "
                             f"got {count!r}")
    arr = np.asarray(count)
    if arr.ndim != 1 or arr.size == 0:
        raise ParameterError(f"parameter 'count' must be an integer or a 1-d sequence of at least one integer; "
                             f"got shape {arr.shape}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ParameterError(f"parameter 'count' must hold integers in {lo}..{hi}; got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        bad = arr[~(np.isfinite(arr) & (arr == np.round(arr)))][0]
        raise ParameterError(f"parameter 'count' must hold integers in {lo}..{hi}; got {bad!r}")
    arr = arr.astype(np.int64)
    if arr.min() < lo or arr.max() > hi:
        bad = arr[(arr < lo) | (arr > hi)][0]
        raise ParameterError(f"parameter 'count' must hold integers in {lo}..{hi}; got {int(bad)}")
    if n is not None:
        n = check_batch("n", n, max(SIZES))
        if n != arr.size:
            raise ParameterError(f"parameter 'n' must equal len(count) = {arr.size} when count is a sequence; got {n}")
    return arr


def _check_device(device) -> torch.device:
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
        torch.empty(0, device=dev)
    except (RuntimeError, TypeError, AssertionError) as err:
        raise ParameterError(f"parameter 'device' must be an available torch device or its name; "
                             f"got {device!r}") from err
    return dev


def _place_once(counts: torch.Tensor, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One try at placing every image's dots. Returns centres (m, MAX_COUNT, 2) and a success mask (m,)."""
    m = counts.numel()
    r = radius_px(size)
    lo, span = r, size - 2 * r
    dmin2 = (2 * r + GAP_PX) ** 2
    centers = torch.full((m, MAX_COUNT, 2), float("nan"), dtype=torch.float64)
    ok = torch.ones(m, dtype=torch.bool)
    for j in range(int(counts.max())):
        pend = torch.nonzero(ok & (counts > j)).flatten()
        for _ in range(_ROUNDS):
            if pend.numel() == 0:
                break
            cand = lo + span * torch.rand((pend.numel(), _CANDIDATES, 2), generator=gen, dtype=torch.float64)
            if j == 0:
                valid = torch.ones(cand.shape[:2], dtype=torch.bool)
            else:
                placed = centers[pend, None, :j, :]  # (p, 1, j, 2)
                d2 = ((cand[:, :, None, :] - placed) ** 2).sum(-1)  # (p, K, j)
                valid = (d2 >= dmin2).all(-1)
            has = valid.any(1)
            first = valid.to(torch.uint8).argmax(1)
            hit = pend[has]
            centers[hit, j] = cand[has, first[has]]
            pend = pend[~has]
        ok[pend] = False
    return centers, ok


def _relax(counts: torch.Tensor, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Fallback for dense images: drop all dots uniformly, then push overlapping pairs apart
    (each by half the overlap, kept inside the image) until no pair is too close.
    Returns centres (m, MAX_COUNT, 2), NaN beyond the count, and a success mask (m,)."""
    m = counts.numel()
    r = radius_px(size)
    lo, hi = r, size - r
    dmin = 2 * r + GAP_PX
    pos = lo + (hi - lo) * torch.rand((m, MAX_COUNT, 2), generator=gen, dtype=torch.float64)
    active = torch.arange(MAX_COUNT)[None, :] < counts[:, None]
    pair = active[:, :, None] & active[:, None, :] & ~torch.eye(MAX_COUNT, dtype=torch.bool)
    ok = torch.zeros(m, dtype=torch.bool)
    todo = torch.arange(m)
    for _ in range(_RELAX_STEPS):
        p = pos[todo]
        diff = p[:, :, None, :] - p[:, None, :, :]  # (t, K, K, 2)
        dist = diff.norm(dim=-1)
        clear = ((dist >= dmin) | ~pair[todo]).all(-1).all(-1)
        ok[todo[clear]] = True
        todo, p, diff, dist = todo[~clear], p[~clear], diff[~clear], dist[~clear]
        if todo.numel() == 0:
            break
        over = (1.02 * dmin - dist).clamp_min(0.0) * pair[todo]  # aim a little past dmin to settle quickly
        push = 0.5 * (over[..., None] * diff / dist.clamp_min(1e-9)[..., None]).sum(2)
        pos[todo] = (p + push).clamp(lo, hi)
    pos[~active] = float("nan")
    return pos, ok


def _shake(pos: torch.Tensor, counts: torch.Tensor, size: int, gen: torch.Generator, sweeps: int) -> None:
    """Hard-disc Metropolis sweeps in place: move one dot at a time by a uniform step and keep
    the move if the dot stays inside and clear of the others. The uniform distribution over
    valid placements (the paper's) is stationary under these moves."""
    m = pos.shape[0]
    r = radius_px(size)
    lo, hi = r, size - r
    dmin2 = (2 * r + GAP_PX) ** 2
    active = torch.arange(MAX_COUNT)[None, :] < counts[:, None]
    for _ in range(sweeps):
        for j in range(int(counts.max())):
            prop = pos[:, j] + r * (2 * torch.rand((m, 2), generator=gen, dtype=torch.float64) - 1)
            d2 = ((prop[:, None, :] - pos) ** 2).sum(-1)  # (m, K)
            d2[:, j] = float("inf")
            d2[~active] = float("inf")
            good = active[:, j] & ((prop >= lo) & (prop <= hi)).all(-1) & (d2 >= dmin2).all(-1)
            pos[good, j] = prop[good]


def _place(counts: np.ndarray, size: int, gen: torch.Generator) -> torch.Tensor:
    """Centres (n, MAX_COUNT, 2) in pixels, NaN beyond each image's count.

    Random sequential placement, restarted up to ``_RSA_ATTEMPTS`` times per image; images
    still not placed (only dense ones, e.g. 14-16 dots at 32 px) fall back to ``_relax``
    followed by ``_SHAKE_SWEEPS`` sweeps of ``_shake``.
    """
    counts_t = torch.from_numpy(counts)
    centers = torch.full((counts.size, MAX_COUNT, 2), float("nan"), dtype=torch.float64)
    todo = torch.arange(counts.size)
    for _ in range(_RSA_ATTEMPTS):
        got, ok = _place_once(counts_t[todo], size, gen)
        centers[todo[ok]] = got[ok]
        todo = todo[~ok]
        if todo.numel() == 0:
            return centers
    for _ in range(_RELAX_ATTEMPTS):
        got, ok = _relax(counts_t[todo], size, gen)
        _shake(got, counts_t[todo], size, gen, _SHAKE_SWEEPS)
        centers[todo[ok]] = got[ok]
        todo = todo[~ok]
        if todo.numel() == 0:
            return centers
    raise RuntimeError(f"could not place the dots of {todo.numel()} image(s)")


def _rasterize(centers: torch.Tensor, colors: torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
    """Anti-aliased discs: coverage = clamp(radius + 0.5 - distance, 0, 1) at each pixel centre.

    Each disc only touches a small square window around its centre, so the coverage is computed
    on that window and scattered into the image (discs never share a pixel, see ``GAP_PX``).
    """
    n = centers.shape[0]
    r = radius_px(size)
    win = min(size, int(np.ceil(2 * r + 1.0)) + 2)  # window side, covers every pixel with coverage > 0
    dark = torch.zeros((n, 3, size * size), dtype=torch.float32, device=device)
    if n == 0:
        return dark.view(n, 3, size, size)
    present = ~torch.isnan(centers[..., 0])
    kmax = int(present.sum(1).max())
    cen = torch.nan_to_num(centers, nan=-1e4).to(device=device, dtype=torch.float32)
    ink = (1.0 - torch.nan_to_num(colors, nan=1.0)).to(device=device, dtype=torch.float32)  # (n, 16, 3)
    offs = torch.arange(win, device=device)
    for j in range(kmax):
        origin = torch.floor(cen[:, j] - r - 0.5).long().clamp_(0, size - win)  # (n, 2) as (x0, y0)
        cols = origin[:, 0, None] + offs  # (n, win)
        rows = origin[:, 1, None] + offs
        dx = cols.float() + 0.5 - cen[:, j, 0, None]
        dy = rows.float() + 0.5 - cen[:, j, 1, None]
        cov = (r + 0.5 - torch.sqrt(dy[:, :, None] ** 2 + dx[:, None, :] ** 2)).clamp_(0.0, 1.0)  # (n, win, win)
        idx = (rows[:, :, None] * size + cols[:, None, :]).reshape(n, 1, -1).expand(n, 3, -1)
        val = cov.reshape(n, 1, -1) * ink[:, j, :, None]  # (n, 3, win*win)
        dark.scatter_add_(2, idx, val)
    return dark.neg_().add_(1.0).clamp_(0.0, 1.0).view(n, 3, size, size)


def render(count: int | Sequence[int] | np.ndarray, n: int | None = None, seed: int = 0, device=None,
           size: int = 64) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """Render ``n`` images of coloured dots.

    ``count``: one integer in ``COUNT_RANGE`` (every image gets that many dots) or a 1-d
    sequence of per-image counts (then ``n`` defaults to its length and must match it).
    ``n`` defaults to ``DEFAULT_N`` (256) for a single count. ``size`` is one of ``SIZES``.

    Returns images float32 ``(n, 3, size, size)`` in [0, 1] on ``device`` and labels:
    ``count`` (n,) int64; ``centers`` (n, 16, 2) float32 pixels (x, y), NaN beyond the count;
    ``colors`` (n, 16, 3) float32 RGB, NaN beyond the count; ``radius`` (n,) float32 pixels.
    """
    counts = _check_counts(count, n)
    seed = check_seed("seed", seed)
    size = check_choice("size", check_int("size", size), SIZES)
    dev = _check_device(device)

    gen = torch.Generator().manual_seed(seed)
    nn = counts.size
    colors = COLOR_MAX * torch.rand((nn, MAX_COUNT, 3), generator=gen, dtype=torch.float64)
    centers = _place(counts, size, gen)
    colors[torch.isnan(centers[..., :1]).expand_as(colors)] = float("nan")
    x = _rasterize(centers, colors, size, dev)
    labels = {
        "count": counts.copy(),
        "centers": centers.numpy().astype(np.float32),
        "colors": colors.numpy().astype(np.float32),
        "radius": np.full(nn, radius_px(size), dtype=np.float32),
    }
    return x, labels
