"""Analyses on measured features (pure numpy/scipy): impulse responses with confidence intervals, summary statistics,
response shapes, convolution predictions, the prototype-enhancement index, independence tests and support
precision/recall of feature combinations.

Inputs are store records (see :mod:`probe_utils.store`), whose ``result["distribution"]`` holds the distribution of
a measured feature over fixed bins 0..bins-1 for one (model, trained value, seed), or plain numpy arrays: measured
values (:func:`histogram_1d`), distributions over bins (1-D arrays of non-negative shares), and integer combination
ids (Sec. 5: one id per image, ``-1`` where the combination could not be measured).

Sections: single-feature shapes and intervals (paper Sec. 4.1), convolution and prototype enhancement (Sec. 4.2),
independence (Sec. 4.3), combinations (Sec. 5 and App. B.2), bootstrap.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
from scipy import ndimage, stats

from probe_utils.params import ParameterError, check_choice, check_float, check_int


@dataclass
class Response:
    """Distribution of the measured feature for one model and trained value, averaged over seeds."""

    model: str
    value: int
    dist: np.ndarray        # mean share per bin
    lo: np.ndarray          # 95% interval per bin
    hi: np.ndarray
    seeds: list[int]
    n_samples: int          # generated images measured per seed

    @property
    def seed_variation(self) -> bool:
        """Whether the interval covers seed-to-seed variation (two or more seeds); with one seed it is only the
        binomial sampling interval, which is narrower than the differences between seeds."""
        return len(self.seeds) >= 2


def by_setting(records: Iterable[dict]) -> list[tuple[tuple[str, Any], list[dict]]]:
    """Records grouped by (model, trained value), sorted by model then value (numbers before text); each group keeps
    the records' order (one record per seed)."""
    groups: dict[tuple[str, Any], list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["model"], r["value"])].append(r)

    def order(item: tuple[tuple[str, Any], list[dict]]) -> tuple:
        model, value = item[0]
        number = isinstance(value, (int, float))
        return model, not number, value if number else str(value)

    return sorted(groups.items(), key=order)


def mixture_modes(value: str) -> list[float]:
    """The proportions of a canonical mixture value such as ``"0.3+0.4"`` (Sec. 4.2)."""
    return [float(t) for t in str(value).split("+")]


def dist_stats(dist: np.ndarray) -> dict[str, Any]:
    """Mean, standard deviation, mode and skewness of a distribution over bins 0..K-1; NaN (mode None) when it
    holds no mass (nothing was measured)."""
    p = np.asarray(dist, float)
    if not p.sum() > 0:
        return {"mean": float("nan"), "sd": float("nan"), "mode": None, "skew": float("nan")}
    p = p / p.sum()
    k = np.arange(len(p))
    mean = float((k * p).sum())
    var = float(((k - mean) ** 2 * p).sum())
    sd = var ** 0.5
    skew = float(((k - mean) ** 3 * p).sum() / sd ** 3) if sd > 0 else float("nan")  # undefined without spread
    return {"mean": mean, "sd": sd, "mode": int(np.argmax(p)), "skew": skew}


def impulse_responses(records: list[dict]) -> list[Response]:
    """Group records by (model, value) and average their distributions over seeds, with 95% intervals.

    With two or more seeds the interval is the t interval of the mean over seeds (t = 4.30 for 3 seeds); with one
    seed it is only the binomial sampling interval of each bin's share (``Response.seed_variation`` is False).
    A seed whose samples were all refused has no distribution and is left out (``seeds`` names those averaged);
    where every seed is such, the response holds no mass.
    """
    out = []
    for (model, value), recs in by_setting(records):
        recs = [r for r in recs if np.sum(r["result"]["distribution"]) > 0] or recs
        d = np.array([r["result"]["distribution"] for r in recs], float)
        n = int(min(r["result"]["n_samples"] for r in recs))
        mean, lo, hi = response_ci(d, n_samples=n, method="t")
        out.append(Response(model, value, mean, lo, hi, sorted(r["seed"] for r in recs), n))
    return out


def summary_rows(records: list[dict]) -> list[dict]:
    """One row per (model, trained value): statistics of the generated distribution over the seeds that measured
    any sample (a seed whose samples were all refused has no distribution to average; with none, every statistic is
    NaN and the mode None, not 0); ``mean_ci`` is the half-width of the 95% t interval of the mean over seeds (NaN
    with one seed: no seed-to-seed variation to show)."""
    rows = []
    nan = float("nan")
    for (model, value), recs in by_setting(records):
        dists = np.array([r["result"]["distribution"] for r in recs], float)
        dists = dists[dists.sum(axis=1) > 0]
        dists = dists / dists.sum(axis=1, keepdims=True) if len(dists) else dists
        stats = [dist_stats(d) for d in dists]
        means = np.array([s["mean"] for s in stats])

        def share(d: np.ndarray) -> float:
            return float(d.mean()) if len(dists) else nan

        rows.append({
            "model": model, "value": value, "seeds": len(recs),
            "mean": share(means), "mean_ci": float(half_width(means)),
            "sd": share(np.array([s["sd"] for s in stats])),
            "mode": int(np.argmax(dists.mean(axis=0))) if len(dists) else None,
            "skew": _nanmean([s["skew"] for s in stats]),
            "exact": share(dists[:, value]) if value < dists.shape[1] else (0.0 if len(dists) else nan),
            "below": share(dists[:, :value].sum(axis=1)),
            "above": share(dists[:, value + 1:].sum(axis=1)),
            "zero": share(dists[:, 0]),
            "invalid": float(np.mean([r["result"].get("invalid_share", 0.0) for r in recs])),
            "steps": int(np.mean([r["provenance"]["steps"] for r in recs])),
        })
    return rows


def _short_commit(commit: str | None) -> str:
    """A record's commit shortened to 12 hex digits, keeping its '+dirty' mark (the code differed from the commit)."""
    if not commit:
        return "unknown"
    return commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")


def provenance_rows(records: list[dict]) -> list[dict]:
    """Where and how each record was made: preset, network width and training images, device, seed, iterations, wall
    time, code version and commit."""
    def size(r: dict, key: str) -> Any:
        return (r.get("params") or {}).get(key)

    rows = []
    for r in sorted(records, key=lambda r: (r["experiment"], r["model"], r["value"], r["seed"],
                                            size(r, "width") or 0, size(r, "pool_size") or 0)):
        p = r["provenance"]
        rows.append({
            "experiment": r["experiment"], "model": r["model"], "value": r["value"], "seed": r["seed"],
            "preset": r["preset"], "width": size(r, "width"), "pool_size": size(r, "pool_size"),
            "device": p["device"], "iterations": p["steps"], "converged_at": p.get("converged_at"),
            "wall_s": p["wall_s"], "torch": p["torch"], "code": p["code_version"],
            "commit": _short_commit(p.get("git_commit")), "created": p["created"],
        })
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Input checks and small helpers
# ---------------------------------------------------------------------------------------------------------------

def _as_dist(name: str, dist: Any, normalise: bool = False) -> np.ndarray:
    """``dist`` as a 1-D float array of finite, non-negative shares (divided by its sum when ``normalise``)."""
    p = np.asarray(dist, float)
    if p.ndim != 1 or p.size == 0:
        raise ParameterError(f"parameter {name!r} must be a non-empty 1-D distribution; got shape {p.shape}")
    if not np.all(np.isfinite(p)) or (p < 0).any():
        raise ParameterError(f"parameter {name!r} must hold finite, non-negative shares")
    if normalise:
        s = p.sum()
        if s <= 0:
            raise ParameterError(f"parameter {name!r} must have positive total mass; got all zeros")
        p = p / s
    return p


def _as_grid(name: str, centres: Any, n: int) -> np.ndarray:
    """Bin centres: ``arange(n)`` when None, else a strictly increasing 1-D array of length ``n``."""
    if centres is None:
        return np.arange(n, dtype=float)
    c = np.asarray(centres, float)
    if c.shape != (n,) or not np.all(np.isfinite(c)) or (n > 1 and (np.diff(c) <= 0).any()):
        raise ParameterError(f"parameter {name!r} must be {n} strictly increasing finite bin centres; "
                             f"got shape {c.shape}")
    return c


def _as_ids(name: str, ids: Any) -> np.ndarray:
    """Integer combination ids as a 1-D int64 array (integer-valued floats are accepted)."""
    a = np.asarray(ids).ravel()
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.issubdtype(a.dtype, np.floating) or not np.all(np.isfinite(a)) or (a != np.round(a)).any():
            raise ParameterError(f"parameter {name!r} must hold integer combination ids; got dtype {a.dtype}")
    return a.astype(np.int64)


def _z(level: float) -> float:
    """Two-sided normal quantile; exactly 1.96 for 95%, as elsewhere in the package."""
    return 1.96 if level == 0.95 else float(stats.norm.ppf(0.5 + level / 2))


def _lookup(mapping: Mapping, key: Any) -> Any:
    """``mapping[key]``, falling back to a numerically close key (so 0.1 + 0.2 finds 0.3)."""
    if key in mapping:
        return mapping[key]
    for k, v in mapping.items():
        try:
            if np.isclose(float(k), float(key), rtol=1e-9, atol=1e-12):
                return v
        except (TypeError, ValueError):
            continue
    raise KeyError(key)


def stack_distributions(records: Sequence[dict]) -> tuple[np.ndarray, int]:
    """Store records' ``result["distribution"]`` stacked into a (records, bins) array, with the smallest
    ``result["n_samples"]`` among them (the input :func:`response_ci` wants)."""
    if not records:
        raise ParameterError("parameter 'records' must be a non-empty list of store records; got []")
    d = np.array([r["result"]["distribution"] for r in records], float)
    return d, int(min(r["result"].get("n_samples", 0) for r in records))


def half_width(values: Any, level: float = 0.95) -> float:
    """Half-width of the two-sided t interval of the mean of ``values`` (NaNs ignored): t·sd/√n with n - 1 degrees
    of freedom (t = 4.30 for 3 values at 95%); NaN for fewer than two values."""
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)]
    if v.size < 2:
        return float("nan")
    return float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))


def _nanmean(values: Any) -> float:
    """Mean of the finite values; NaN when there is none."""
    v = np.asarray(values, float)
    return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else float("nan")


def mean_ci(values: Any, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` (NaNs ignored) and its two-sided t interval; the interval is (nan, nan) for fewer than two
    values."""
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if v.size < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half


# ---------------------------------------------------------------------------------------------------------------
# Single feature: histograms, intervals and response shape (paper Sec. 4.1, Fig. 3 and 5)
# ---------------------------------------------------------------------------------------------------------------

class Histogram(NamedTuple):
    """Shares per bin of the usable values, and how many values were left out (and why)."""

    shares: np.ndarray      # sums to 1 over the bins (all zeros when no value was usable)
    n_used: int             # finite values inside [edges[0], edges[-1]] (or all finite values when clipping)
    n_nan: int              # NaN or infinite values, dropped (e.g. no foreground found in a generated image)
    n_out: int              # finite values outside the edges, dropped (0 when clipping)


def histogram_1d(values: Any, edges: Any, *, clip: bool = False) -> Histogram:
    """Shares of a continuous measured feature (pie red, size, location) per bin ``[edges[i], edges[i+1])`` (the last
    bin also holds ``edges[-1]``, as in ``np.histogram``).

    Non-finite values are dropped and counted in ``n_nan``. Values outside the edges are dropped and counted in
    ``n_out``, or, with ``clip=True``, put into the first or last bin. Shares are over the values used.
    """
    e = np.asarray(edges, float)
    if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or (np.diff(e) <= 0).any():
        raise ParameterError(f"parameter 'edges' must be at least 2 strictly increasing finite numbers; got {edges!r}")
    v = np.asarray(values, float).ravel()
    finite = np.isfinite(v)
    n_nan = int((~finite).sum())
    v = v[finite]
    if clip:
        v, n_out = np.clip(v, e[0], e[-1]), 0
    else:
        inside = (v >= e[0]) & (v <= e[-1])
        v, n_out = v[inside], int((~inside).sum())
    counts, _ = np.histogram(v, e)
    return Histogram(counts / max(v.size, 1), int(v.size), n_nan, n_out)


def bin_centres(edges: Any) -> np.ndarray:
    """Midpoints of consecutive bin edges."""
    e = np.asarray(edges, float)
    return (e[:-1] + e[1:]) / 2


def bin_index(values: Any, edges: Any) -> np.ndarray:
    """Index of the bin of :func:`histogram_1d` that holds each value (e.g. the bins of the trained values)."""
    e = np.asarray(edges, float)
    v = np.atleast_1d(np.asarray(values, float))
    if not np.all(np.isfinite(v)) or (v < e[0]).any() or (v > e[-1]).any():
        raise ParameterError(f"parameter 'values' must lie within [{e[0]}, {e[-1]}]; got {values!r}")
    return np.minimum(np.searchsorted(e, v, side="right") - 1, e.size - 2)


def response_ci(dists: Any, n_samples: int | None = None, level: float = 0.95, method: str = "t",
                clip: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean share per bin over seeds and its two-sided interval at ``level``.

    ``dists`` is (seeds, bins) or one distribution (bins,). With two or more seeds the interval is
    mean ± q·sd/√seeds over seeds, with q the t quantile (``method="t"``) or the normal one (``"normal"``, used by
    :func:`impulse_responses`). With one seed it is the binomial sampling interval of each share given
    ``n_samples`` measured images (normal approximation, mean ± z·√(p(1-p)/n)). Bounds are clipped to [0, 1].
    """
    check_choice("method", method, ["t", "normal"])
    check_float("level", level, 0.0, 1.0)
    d = np.asarray(dists, float)
    d = d[None] if d.ndim == 1 else d
    if d.ndim != 2 or d.shape[0] == 0 or d.shape[1] == 0:
        raise ParameterError(f"parameter 'dists' must have shape (seeds, bins); got {np.shape(dists)}")
    mean = d.mean(axis=0)
    if d.shape[0] >= 2:
        q = float(stats.t.ppf(0.5 + level / 2, d.shape[0] - 1)) if method == "t" else _z(level)
        half = q * d.std(axis=0, ddof=1) / np.sqrt(d.shape[0])
    else:
        if n_samples is None:
            raise ParameterError("parameter 'n_samples' must be given (the number of measured images) when "
                                 "'dists' holds one seed")
        n = check_int("n_samples", n_samples, 0)
        half = _z(level) * np.sqrt(mean * (1 - mean) / max(n, 1))
    lo, hi = mean - half, mean + half
    return (mean, np.clip(lo, 0, 1), np.clip(hi, 0, 1)) if clip else (mean, lo, hi)


def _quantile(p: np.ndarray, c: np.ndarray, q: float) -> float:
    """Quantile of a binned distribution whose mass is spread evenly within each bin (edges halfway between
    centres, the outer ones half a spacing out)."""
    if c.size == 1:
        return float(c[0])
    mids = (c[:-1] + c[1:]) / 2
    edges = np.concatenate([[c[0] - (mids[0] - c[0])], mids, [c[-1] + (c[-1] - mids[-1])]])
    cum = np.cumsum(p)
    j = min(int(np.searchsorted(cum, q * cum[-1], side="left")), p.size - 1)
    before = cum[j - 1] if j > 0 else 0.0
    frac = (q * cum[-1] - before) / p[j] if p[j] > 0 else 0.5
    return float(edges[j] + frac * (edges[j + 1] - edges[j]))


def _half_max_crossing(p: np.ndarray, c: np.ndarray, m: int, step: int) -> float:
    """Distance from the mode ``m`` to where the linearly interpolated curve first drops below half its maximum,
    walking right (``step=1``) or left (``-1``); NaN when it never does before the edge of the grid."""
    half = p[m] / 2
    i = m + step
    while 0 <= i < p.size:
        if p[i] < half:
            j = i - step
            x = c[j] + (p[j] - half) / (p[j] - p[i]) * (c[i] - c[j])
            return float(abs(x - c[m]))
        i += step
    return float("nan")


#: Half-width of a response's bump (:func:`response_shape`) in standard deviations of the whole response, around its
#: median: a normal response loses nothing (beyond 5 sd: below 10⁻⁶ of the mass), a gamma with skewness 1 loses
#: 0.06% and reads 0.92; by Chebyshev's inequality no response loses more than 1/16 of its mass (the median lies
#: within one sd of the mean).
BUMP_WINDOW_SD = 5.0


def response_shape(dist: Any, centres: Any = None) -> dict[str, float]:
    """Shape, width, skew and symmetry of one response (a distribution over bins with the given centres; default
    0..K-1, so numerosity bins are counts).

    Returns ``mean``, ``sd``, ``mode`` (centre of the highest bin; first one on ties), ``mode_bin``, ``median``;
    ``skewness`` (third standardised moment; NaN when sd = 0, where it is undefined); ``bowley`` (quartile skewness (Q3
    + Q1 - 2·Q2) / (Q3 - Q1), with mass spread evenly within each bin; 0 for a symmetric response, in [-1, 1]; NaN when
    Q3 = Q1); ``mass_below`` / ``mass_above`` (mass strictly left / right of the mode bin) and ``mass_asymmetry`` =
    above - below; ``hwhm_left`` / ``hwhm_right`` (distance from the mode to the first crossing of half the peak height,
    linear interpolation between centres; NaN on a side that stays above half to the grid's edge), ``hwhm`` (their mean,
    or the one that exists) and ``hwhm_ratio`` = right / left (> 1: a longer right flank, as for numerosity and size in
    the paper).
    The *bump*: the bins within :data:`BUMP_WINDOW_SD` standard deviations of the median, which leaves out a few
    stray samples far from the response (a misdrawn image read as no red at all): ``bump_sd``, ``bump_skewness`` (the
    moments of the response renormalised over its bump; skewness NaN when its sd = 0) and ``stray_share`` (the mass
    outside it). Strays decide the third moment: 0.25% of the samples 5-7 sd away move the skewness by 0.4, while a
    skewed response keeps its skewness on its bump (a gamma with skewness 0.49 reads 0.49) and a long tail mostly
    stays in it (the window is measured in the sd the tail itself widens, not in a robust one that a sharp peak
    shrinks: a peak holding 94% of the mass in two bins with a 14-bin tail of 6% keeps all but 1.5%).
    A single-bin spike has hwhm = half a bin: widths below a bin are not resolved.
    """
    p = _as_dist("dist", dist, normalise=True)
    c = _as_grid("centres", centres, p.size)
    mean = float((c * p).sum())
    sd = float(np.sqrt(((c - mean) ** 2 * p).sum()))
    skew = float(((c - mean) ** 3 * p).sum() / sd ** 3) if sd > 0 else float("nan")  # undefined without spread
    m = int(np.argmax(p))
    left, right = _half_max_crossing(p, c, m, -1), _half_max_crossing(p, c, m, 1)
    sides = [w for w in (left, right) if np.isfinite(w)]
    q1, q2, q3 = (_quantile(p, c, q) for q in (0.25, 0.5, 0.75))
    below, above = float(p[:m].sum()), float(p[m + 1:].sum())
    inside = np.abs(c - q2) <= BUMP_WINDOW_SD * sd
    bump = p * inside if p[inside].sum() > 0 else p
    bump = bump / bump.sum()
    b_mean = float((c * bump).sum())
    b_sd = float(np.sqrt(((c - b_mean) ** 2 * bump).sum()))
    return {
        "mean": mean, "sd": sd, "mode": float(c[m]), "mode_bin": m, "median": q2, "skewness": skew,
        "bowley": float((q3 + q1 - 2 * q2) / (q3 - q1)) if q3 > q1 else float("nan"),
        "mass_below": below, "mass_above": above, "mass_asymmetry": above - below,
        "hwhm_left": left, "hwhm_right": right, "hwhm": float(np.mean(sides)) if sides else float("nan"),
        "hwhm_ratio": right / left if left > 0 else float("nan"),
        "bump_sd": b_sd, "bump_skewness": float(((c - b_mean) ** 3 * bump).sum() / b_sd ** 3) if b_sd > 0 else
        float("nan"), "stray_share": max(0.0, float(1.0 - p[inside].sum())) if p[inside].sum() > 0 else 0.0,
    }


# ---------------------------------------------------------------------------------------------------------------
# Convolution prediction and prototype enhancement (paper Sec. 4.2, Fig. 6)
# ---------------------------------------------------------------------------------------------------------------

def convolution_prediction(responses: Mapping[Any, Any], weights: Mapping[Any, float]) -> np.ndarray:
    """Predicted response to a multi-valued training distribution: sum_v p(v)·r_v.

    ``responses[v]`` is the response measured when training on the single value v (all on the same bins);
    ``weights[v]`` is p(v), divided by its total here. Responses are used as given (not renormalised), so the
    prediction is linear in them. Keys are matched exactly, else numerically (0.1 + 0.2 finds 0.3).
    """
    if not weights:
        raise ParameterError("parameter 'weights' must map at least one trained value to its probability; got {}")
    w = {v: check_float(f"weights[{v!r}]", x, 0.0) for v, x in weights.items()}
    total = sum(w.values())
    if total <= 0:
        raise ParameterError("parameter 'weights' must have a positive total; got all zeros")
    pred = None
    for v, x in w.items():
        try:
            r = _as_dist(f"responses[{v!r}]", _lookup(responses, v))
        except KeyError:
            raise ParameterError(f"parameter 'responses' must hold a response for every trained value; "
                                 f"missing {v!r} (have {sorted(responses, key=str)})") from None
        if pred is not None and r.shape != pred.shape:
            raise ParameterError(f"parameter 'responses' must all have the same bins; {v!r} has {r.size}, "
                                 f"others {pred.size}")
        pred = x / total * r if pred is None else pred + x / total * r
    return pred


def shift_kernel_prediction(kernel: Any, kernel_centre_bin: int, weights_by_bin: Any,
                            n_bins: int | None = None) -> np.ndarray:
    """Prediction from one measured response, assumed shift-invariant: the training distribution on the bin grid
    convolved with ``kernel`` re-centred so that its bin ``kernel_centre_bin`` (the trained value's bin) moves onto
    each trained bin: pred[j] = sum_i w[i]·kernel[j - i + kernel_centre_bin].

    ``weights_by_bin`` is an array over the bins or a mapping bin -> weight (then ``n_bins`` bins, default
    ``len(kernel)``); weights are divided by their total. Kernel mass shifted past either end of the grid is lost
    (the prediction then sums to less than the kernel), not piled onto the edge bins.
    """
    k = _as_dist("kernel", kernel)
    c = check_int("kernel_centre_bin", kernel_centre_bin, 0, k.size - 1)
    if isinstance(weights_by_bin, Mapping):
        n = check_int("n_bins", k.size if n_bins is None else n_bins, 1)
        w = np.zeros(n)
        for b, x in weights_by_bin.items():
            w[check_int("weights_by_bin key", b, 0, n - 1)] += check_float(f"weights_by_bin[{b!r}]", x, 0.0)
    else:
        w = _as_dist("weights_by_bin", weights_by_bin)
    w = _as_dist("weights_by_bin", w, normalise=True)
    return np.convolve(w, k)[c:c + w.size]


def distribution_distance(p: Any, q: Any, width: float = 1.0, centres: Any = None) -> dict[str, float]:
    """Distances between two distributions over the same bins, each first divided by its total.

    ``tv``: total variation, ½·Σ|p - q| in [0, 1]; ``js``: Jensen-Shannon divergence in bits, in [0, 1];
    ``emd``: earth mover's distance along the bin axis, Σ_k |P_k - Q_k|·(c_{k+1} - c_k) with P, Q the CDFs, i.e.
    L1 between CDFs times the bin width (``width``, or the spacing of ``centres`` when given).
    """
    a = _as_dist("p", p, normalise=True)
    b = _as_dist("q", q, normalise=True)
    if a.shape != b.shape:
        raise ParameterError(f"parameters 'p' and 'q' must have the same bins; got {a.size} and {b.size}")
    steps = np.diff(_as_grid("centres", centres, a.size)) if centres is not None else \
        np.full(a.size - 1, check_float("width", width, 0.0))
    m = (a + b) / 2
    kl = lambda x: float(np.sum(x[x > 0] * np.log2(x[x > 0] / m[x > 0])))  # noqa: E731
    return {
        "tv": float(0.5 * np.abs(a - b).sum()),
        "js": min(max(0.5 * kl(a) + 0.5 * kl(b), 0.0), 1.0),
        "emd": float((np.abs(np.cumsum(a) - np.cumsum(b))[:-1] * steps).sum()),
    }


#: a prototype index above this is shown as "> 100": the prediction puts almost no mass in the window, so the
#: ratio's size says more about that near-zero denominator than about the model
PROTOTYPE_INDEX_SHOWN_UP_TO = 100.0


def prototype_index_text(ratio: float) -> str:
    """The prototype index as a reader sees it: two decimals, "> 100" above :data:`PROTOTYPE_INDEX_SHOWN_UP_TO`
    (including inf), "–" when undefined."""
    if ratio is None or np.isnan(ratio):
        return "–"
    return f"> {PROTOTYPE_INDEX_SHOWN_UP_TO:.0f}" if ratio > PROTOTYPE_INDEX_SHOWN_UP_TO else f"{ratio:.2f}"


def prototype_enhancement(actual: Any, predicted: Any, centres: Any, a: float, b: float,
                          half_width: float | None = None) -> dict[str, Any]:
    """Prototype-enhancement index for a two-mode training distribution with modes a < b: the actual response's
    mass near the midpoint (a + b)/2 against the convolution prediction's mass there.

    Window: bins whose centre c satisfies |c - (a+b)/2| <= half_width; default half_width = (b - a)/4, the middle
    half of the gap, which stays clear of both trained modes. Both distributions are divided by their totals first.
    Returns ``actual_mid``, ``predicted_mid``, ``ratio`` = actual_mid / predicted_mid (> 1: enhancement; inf when
    the prediction has no mass there), ``difference`` = actual_mid - predicted_mid, the ``window`` (lo, hi),
    ``n_window_bins``, the actual response's ``actual_mode`` and whether it lies in the window.
    """
    x = _as_dist("actual", actual, normalise=True)
    y = _as_dist("predicted", predicted, normalise=True)
    if x.shape != y.shape:
        raise ParameterError(f"parameters 'actual' and 'predicted' must have the same bins; got {x.size} and {y.size}")
    c = _as_grid("centres", centres, x.size)
    a, b = check_float("a", a), check_float("b", b)
    if not a < b:
        raise ParameterError(f"parameters 'a' and 'b' must satisfy a < b; got a={a!r}, b={b!r}")
    hw = (b - a) / 4 if half_width is None else check_float("half_width", half_width, 0.0)
    mid = (a + b) / 2
    inside = np.abs(c - mid) <= hw + 1e-9 * max(abs(mid), hw, 1.0)
    if not inside.any():
        raise ParameterError(f"parameter 'half_width' must be large enough for the window {mid}±{hw} to hold a bin "
                             "centre")
    am, pm = float(x[inside].sum()), float(y[inside].sum())
    mode = float(c[int(np.argmax(x))])
    return {
        "actual_mid": am, "predicted_mid": pm, "difference": am - pm,
        "ratio": am / pm if pm > 0 else (float("inf") if am > 0 else float("nan")),
        "window": (mid - hw, mid + hw), "n_window_bins": int(inside.sum()),
        "actual_mode": mode, "actual_mode_in_window": bool(inside[int(np.argmax(x))]),
    }


# ---------------------------------------------------------------------------------------------------------------
# Independence of features (paper Sec. 4.3, Fig. 7)
# ---------------------------------------------------------------------------------------------------------------

def _pool_sparse_bins(counts: np.ndarray, min_expected: float = 5.0) -> np.ndarray:
    """Merge adjacent bins (columns) of a (responses, bins) count table, left to right, until each pooled column
    holds at least ``min_expected`` counts per response on average (the usual validity rule of the chi-square
    test; sparse tail bins otherwise inflate it). A short remainder at the right joins the last pooled column."""
    need = min_expected * counts.shape[0]
    cols, acc = [], np.zeros(counts.shape[0])
    for j in range(counts.shape[1]):
        acc = acc + counts[:, j]
        if acc.sum() >= need:
            cols.append(acc)
            acc = np.zeros(counts.shape[0])
    if acc.sum() > 0:
        if cols:
            cols[-1] = cols[-1] + acc
        else:
            cols.append(acc)
    return np.array(cols).T if cols else np.zeros((counts.shape[0], 0))


def independence_statistic(dists_by_k: Mapping[int, Any], n_samples: int | Mapping[int, int] | None = None,
                           centres: Any = None, reference: int | None = None) -> dict[str, Any]:
    """How one feature's response changes as the other features take k = 1..50 random values.

    ``dists_by_k[k]``: the response (over the same bins) when the nuisance features had k values. Per k (``rows``):
    TV, JS and EMD to the reference response (k = 1 if present, else the smallest k; or ``reference``), the mean and
    sd (over ``centres``, default 0..K-1) and their changes ``d_mean``, ``d_sd``. Summary: ``max_tv``, ``max_emd``;
    ``spearman_rho``/``spearman_p`` between k and sd (the paper sees a slight increase of variance with k; NaN with
    fewer than 3 values of k or a constant sd); and, when ``n_samples`` (images measured per response; an int or a
    mapping k -> int) is given, a chi-square test of homogeneity of the histograms (counts = round(share·n),
    adjacent sparse bins pooled until each pooled bin averages >= 5 counts per response; ``chi2``, ``dof``,
    ``p_value``) with Cramér's V as effect size (with many samples even tiny differences are significant, so read V
    and the distances too).
    """
    if len(dists_by_k) < 2:
        raise ParameterError(f"parameter 'dists_by_k' must hold responses for at least 2 values of k; "
                             f"got {len(dists_by_k)}")
    ks = sorted(dists_by_k)
    rows_in = [_as_dist(f"dists_by_k[{k!r}]", dists_by_k[k], normalise=True) for k in ks]
    if len({x.size for x in rows_in}) != 1:
        raise ParameterError("parameter 'dists_by_k' must hold responses over the same bins")
    d = np.array(rows_in)
    c = _as_grid("centres", centres, d.shape[1])
    ref = (1 if 1 in dists_by_k else ks[0]) if reference is None else reference
    if ref not in dists_by_k:
        raise ParameterError(f"parameter 'reference' must be one of {ks}; got {reference!r}")
    r = d[ks.index(ref)]
    means = d @ c
    sds = np.sqrt(((c[None] - means[:, None]) ** 2 * d).sum(axis=1))
    rows = []
    for i, k in enumerate(ks):
        dist = distribution_distance(d[i], r, centres=c) if c.size > 1 else {"tv": 0.0, "js": 0.0, "emd": 0.0}
        rows.append({"k": k, **dist, "mean": float(means[i]), "sd": float(sds[i]),
                     "d_mean": float(means[i] - means[ks.index(ref)]), "d_sd": float(sds[i] - sds[ks.index(ref)])})
    out: dict[str, Any] = {"reference": ref, "ks": ks, "rows": rows,
                           "max_tv": max(x["tv"] for x in rows), "max_emd": max(x["emd"] for x in rows),
                           "spearman_rho": float("nan"), "spearman_p": float("nan"),
                           "chi2": float("nan"), "dof": 0, "p_value": float("nan"), "cramers_v": float("nan")}
    if len(ks) >= 3 and np.ptp(sds) > 1e-12:
        rho, p = stats.spearmanr(ks, sds)
        out["spearman_rho"], out["spearman_p"] = float(rho), float(p)
    if n_samples is not None:
        if isinstance(n_samples, Mapping) and not all(k in n_samples for k in ks):
            raise ParameterError(f"parameter 'n_samples' must give a count for every k in {ks}; "
                                 f"got keys {sorted(n_samples)}")
        ns = np.array([check_int(f"n_samples[{k!r}]", n_samples[k] if isinstance(n_samples, Mapping) else n_samples,
                                 1) for k in ks], float)
        counts = _pool_sparse_bins(np.rint(d * ns[:, None]))
        if counts.shape[1] < 2:
            out.update(chi2=0.0, dof=0, p_value=1.0, cramers_v=0.0)
        else:
            chi2, p, dof, _ = stats.chi2_contingency(counts, correction=False)
            v = np.sqrt(chi2 / (counts.sum() * (min(counts.shape) - 1)))
            out.update(chi2=float(chi2), dof=int(dof), p_value=float(p), cramers_v=float(v))
    return out


def mode_windows(values: Sequence[float]) -> list[tuple[float, float]]:
    """A window around each trained value of a multi-valued training set: from halfway to its left neighbour to
    halfway to its right one; the outermost values get, outwards, the same half-gap as inwards. The windows
    partition the range between the outer edges, so each trained value owns the mass nearest to it."""
    v = sorted(check_float(f"values[{i}]", x) for i, x in enumerate(values))
    if len(v) < 2 or len(set(v)) < len(v):
        raise ParameterError(f"parameter 'values' must hold at least two distinct trained values; got {values!r}")
    half = [(b - a) / 2 for a, b in zip(v, v[1:])]
    left = [half[0]] + half
    right = half + [half[-1]]
    return [(x - lo, x + hi) for x, lo, hi in zip(v, left, right)]


def per_mode(dist: Any, centres: Any, values: Sequence[float]) -> list[dict[str, float]]:
    """Per trained value of a multi-valued training set (windows of :func:`mode_windows`): the response's
    ``mass`` in the window and its ``mean`` and ``sd`` within the window (NaN when the window holds no mass). The
    spread of each mode, unlike the sd of the whole mixture, does not shrink when a mode is lost."""
    p = _as_dist("dist", dist, normalise=True)
    c = _as_grid("centres", centres, p.size)
    out = []
    for (lo, hi), v in zip(mode_windows(values), sorted(values)):
        inside = (c >= lo) & (c < hi)
        m = float(p[inside].sum())
        if m > 0:
            q = p[inside] / m
            mean = float((c[inside] * q).sum())
            sd = float(np.sqrt(((c[inside] - mean) ** 2 * q).sum()))
        else:
            mean = sd = float("nan")
        out.append({"value": float(v), "lo": lo, "hi": hi, "mass": m, "mean": mean, "sd": sd})
    return out


# ---------------------------------------------------------------------------------------------------------------
# Combinations: support precision/recall and marginals (paper Sec. 5, Fig. 8-9, App. B.2)
# ---------------------------------------------------------------------------------------------------------------

def combination_ids(indices: Sequence[Any], grid_shape: Sequence[int]) -> np.ndarray:
    """Flat combination ids (C order, as ``np.ravel_multi_index``) from per-feature index arrays, one per grid axis;
    -1 where any index is outside its axis (e.g. a measurement that matched no grid value)."""
    shape = tuple(check_int(f"grid_shape[{i}]", s, 1) for i, s in enumerate(grid_shape))
    if len(indices) != len(shape):
        raise ParameterError(f"parameter 'indices' must hold one index array per grid axis ({len(shape)}); "
                             f"got {len(indices)}")
    idx = [_as_ids(f"indices[{i}]", a) for i, a in enumerate(indices)]
    if len({a.size for a in idx}) != 1:
        raise ParameterError("parameter 'indices' must hold index arrays of equal length")
    ok = np.all([(a >= 0) & (a < s) for a, s in zip(idx, shape)], axis=0)
    out = np.full(idx[0].size, -1, np.int64)
    if ok.any():
        out[ok] = np.ravel_multi_index([a[ok] for a in idx], shape)
    return out


def support_precision_recall(generated_ids: Any, train_ids: Any, n_total: int | None = None,
                             threshold: float = 0.1, near: Any = None) -> dict[str, Any]:
    """Precision and recall of the learned support against the training combinations (paper Sec. 5, App. B.2).

    The training distribution is uniform on the set S = unique(``train_ids``), p* = 1/|S|. The learned q is the
    share of each id among the generated samples with a valid id (ids < 0, unmeasurable samples, are left out and
    counted in ``n_invalid``). A combination is in supp(q) when q(z) >= ``threshold``·p*, i.e. when its count is at
    least ``min_count`` = threshold·n_valid/|S| (1e-9 relative tolerance, so counts exactly at the threshold are in).
    precision = |supp(q) ∩ S| / |supp(q)| (NaN for an empty support), recall = |supp(q) ∩ S| / |S|,
    iou = |supp(q) ∩ S| / |supp(q) ∪ S| (both NaN when no sample has a valid id: nothing was measured). Also:
    ``n_support``, ``n_train``, ``n_hit`` (= |supp ∩ S|), ``n_novel`` (supp(q) outside S), ``novel_mass`` (q's
    mass on all ids outside S, above threshold or not), ``n_generated``, ``n_invalid``, the ``missing`` and
    ``novel`` ids, and with ``n_total`` (number of possible combinations, ids must be below it)
    ``chance_precision`` = |S| / n_total, the precision of a model uniform over all combinations.
    With ``near`` (ids counted as training ones for precision, e.g. :func:`near_combinations`, a superset of S): the
    precision is |supp(q) ∩ near| / |supp(q)| and the chance precision |near| / n_total; the support's threshold,
    the recall and the rest stay those of S.
    """
    thr = check_float("threshold", threshold, 0.0)
    g = _as_ids("generated_ids", generated_ids)
    s = np.unique(_as_ids("train_ids", train_ids))
    if s.size == 0 or s[0] < 0:
        raise ParameterError("parameter 'train_ids' must hold at least one non-negative combination id")
    if n_total is not None:
        n_total = check_int("n_total", n_total, 1)
        if s[-1] >= n_total or (g.size and g.max() >= n_total):
            raise ParameterError(f"parameters 'generated_ids' and 'train_ids' must hold ids below n_total={n_total}")
    valid = g[g >= 0]
    ids, counts = np.unique(valid, return_counts=True)
    in_supp = counts * s.size >= thr * valid.size * (1 - 1e-9)
    supp = ids[in_supp]
    hit = np.intersect1d(supp, s)
    novel = np.setdiff1d(supp, s)
    missing = np.setdiff1d(s, supp)
    accept = s if near is None else np.union1d(np.unique(_as_ids("near", near)), s)
    out = {
        "precision": np.isin(supp, accept).sum() / supp.size if supp.size else float("nan"),
        "recall": hit.size / s.size if valid.size else float("nan"),
        "iou": hit.size / np.union1d(supp, s).size if valid.size else float("nan"),
        "n_support": int(supp.size), "n_train": int(s.size), "n_hit": int(hit.size), "n_novel": int(novel.size),
        "n_missing": int(missing.size),
        "novel_mass": float(counts[~np.isin(ids, s)].sum() / valid.size) if valid.size else float("nan"),
        "n_generated": int(g.size), "n_invalid": int(g.size - valid.size),
        "min_count": thr * valid.size / s.size, "threshold": thr,
        "missing": missing.tolist(), "novel": novel.tolist(),
    }
    if n_total is not None:
        out["n_total"], out["chance_precision"] = n_total, accept.size / n_total
    return out


def near_combinations(train_ids: Any, grid_shape: Sequence[int], axes: Sequence[int], steps: int = 1) -> np.ndarray:
    """The combination ids within ``steps`` grid steps of a training combination on each of the grid ``axes`` (the
    other axes equal; the training ids included), sorted: what a reading that forgives a misplacement of ``steps``
    on those axes counts as a training combination."""
    shape = tuple(check_int(f"grid_shape[{i}]", n, 1) for i, n in enumerate(grid_shape))
    steps = check_int("steps", steps, 0, 100)
    axes = [check_int("axes", a, 0, len(shape) - 1) for a in axes]
    s = np.unique(_as_ids("train_ids", train_ids))
    if s.size and (s[0] < 0 or s[-1] >= int(np.prod(shape))):
        raise ParameterError(f"parameter 'train_ids' must hold ids in [0, {int(np.prod(shape))}) (the grid {shape})")
    mask = np.zeros(int(np.prod(shape)), bool)
    mask[s] = True
    size = [2 * steps + 1 if i in axes else 1 for i in range(len(shape))]
    return np.flatnonzero(ndimage.maximum_filter(mask.reshape(shape), size=size, mode="constant").ravel())


def precision_recall_curve(runs: Iterable[tuple[Any, Any]], n_total: int | None = None, threshold: float = 0.1,
                           level: float = 0.95) -> list[dict[str, Any]]:
    """Precision/recall as a function of the number of training combinations |S| (paper Fig. 8).

    ``runs``: (generated_ids, train_ids) pairs, e.g. one per model seed and training set. Runs are grouped by |S|;
    each row holds ``n_train``, ``runs`` and, for precision, recall, iou and novel_mass, the mean over the group's
    runs with its t interval (``<name>_lo``, ``<name>_hi``; NaN for a single run), cut to [0, 1], the values a share
    can take (with two seeds the t interval is wide enough to leave it). Rows are sorted by |S|.
    """
    groups: dict[int, list[dict]] = defaultdict(list)
    for gen, train in runs:
        r = support_precision_recall(gen, train, n_total=n_total, threshold=threshold)
        groups[r["n_train"]].append(r)
    rows = []
    for n, rs in sorted(groups.items()):
        row: dict[str, Any] = {"n_train": n, "runs": len(rs)}
        for name in ("precision", "recall", "iou", "novel_mass"):
            mean, lo, hi = mean_ci([r[name] for r in rs], level)
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = mean, max(lo, 0.0), min(hi, 1.0)  # NaN stays NaN
        rows.append(row)
    return rows


def joint_distribution(ids: Any, grid_shape: Sequence[int]) -> np.ndarray:
    """Share of each combination, shaped like the grid (C order); ids < 0 are left out (paper Fig. 9 tables)."""
    shape = tuple(check_int(f"grid_shape[{i}]", s, 1) for i, s in enumerate(grid_shape))
    a = _as_ids("ids", ids)
    a = a[a >= 0]
    total = int(np.prod(shape))
    if a.size and a.max() >= total:
        raise ParameterError(f"parameter 'ids' must hold ids below {total} (the grid {shape}); got {a.max()}")
    return (np.bincount(a, minlength=total) / max(a.size, 1)).reshape(shape)


def marginals(ids: Any, grid_shape: Sequence[int]) -> list[np.ndarray]:
    """One 1-D distribution per grid axis: the share of ids (each counted once per occurrence; ids < 0 left out)
    taking each value on that axis. Pass ``np.unique(train_ids)`` for the uniform training distribution p*."""
    joint = joint_distribution(ids, grid_shape)
    return [joint.sum(axis=tuple(j for j in range(joint.ndim) if j != i)) for i in range(joint.ndim)]


def marginal_distance(gen_ids: Any, train_ids: Any, grid_shape: Sequence[int]) -> list[dict[str, Any]]:
    """Per grid axis, the generated marginal against the training one (p* uniform on unique(``train_ids``)):
    ``axis``, ``tv``, ``js``, ``emd`` (in index steps), ``max_abs`` (largest share difference), and both marginals
    (``generated``, ``train``). Small values mean the marginals are preserved (paper Sec. 5, CLEVR)."""
    q = marginals(gen_ids, grid_shape)
    p = marginals(np.unique(_as_ids("train_ids", train_ids)), grid_shape)
    out = []
    for i, (qi, pi) in enumerate(zip(q, p)):
        d = distribution_distance(qi, pi) if qi.sum() > 0 else {"tv": float("nan"), "js": float("nan"),
                                                                "emd": float("nan")}
        out.append({"axis": i, **d, "max_abs": float(np.abs(qi - pi).max()), "generated": qi, "train": pi})
    return out


# ---------------------------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------------------------

def bootstrap_ci(stat_fn: Callable[[np.ndarray], float], samples: Any, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float]:
    """Percentile bootstrap: ``stat_fn(samples)`` and the (1-level)/2, (1+level)/2 quantiles of ``stat_fn`` over
    ``n_boot`` resamples (with replacement, along axis 0, numpy Generator seeded by ``seed``). NaN statistics of
    resamples are ignored. E.g. ``bootstrap_ci(lambda g: support_precision_recall(g, S)["precision"], gen_ids)``."""
    n_boot = check_int("n_boot", n_boot, 1)
    check_float("level", level, 0.0, 1.0)
    x = np.asarray(samples)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ParameterError(f"parameter 'samples' must be a non-empty array; got shape {x.shape}")
    rng = np.random.default_rng(check_int("seed", seed, 0))
    est = float(stat_fn(x))
    boots = np.array([stat_fn(x[rng.integers(0, x.shape[0], x.shape[0])]) for _ in range(n_boot)], float)
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return est, float("nan"), float("nan")
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return est, float(lo), float(hi)


#: The :func:`response_shape` statistics a shape table averages over seeds.
SHAPE_KEYS = ("mean", "sd", "hwhm", "skewness", "mass_asymmetry", "hwhm_ratio", "bump_sd", "bump_skewness",
              "stray_share")


def _shape_or_nan(dist: np.ndarray, centres: np.ndarray) -> dict[str, float]:
    """:func:`response_shape`, or NaN for every statistic when no sample could be measured (all-zero shares)."""
    if dist.sum() > 0:
        return response_shape(dist, centres)
    return {k: float("nan") for k in SHAPE_KEYS}


def shape_rows(records: list[dict], centres: np.ndarray) -> list[dict]:
    """One row per (model, trained value) of a continuous feature: :func:`response_shape` of each seed's response,
    averaged over seeds (``mean_ci``: half-width of the mean's 95% t interval over seeds; NaN with one seed). The
    ratio ``hwhm_ratio`` is averaged geometrically (the mean of its logarithm), so a row reads > 1 exactly when the
    findings' flank rule leans right."""
    rows = []
    for (model, value), recs in by_setting(records):
        shapes = [_shape_or_nan(np.asarray(r["result"]["distribution"], float), centres) for r in recs]
        means = np.array([s["mean"] for s in shapes])
        row = {"model": model, "value": value, "seeds": len(recs),
               "mean_ci": half_width(means),
               "invalid": float(np.mean([r["result"].get("invalid_share", 0.0) for r in recs])),
               "steps": int(np.mean([r["provenance"]["steps"] for r in recs]))}
        for key in SHAPE_KEYS:
            vals = np.array([s[key] for s in shapes], float)
            if key == "hwhm_ratio":
                vals = np.where(vals > 0, np.log(np.where(vals > 0, vals, 1.0)), np.nan)
            mean = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
            row[key] = float(np.exp(mean)) if key == "hwhm_ratio" else mean
        row["bias"] = row["mean"] - float(value) if isinstance(value, (int, float)) else float("nan")
        rows.append(row)
    return rows


def _no_convolution(a: float, b: float) -> tuple[dict[str, float], dict[str, Any]]:
    """The distances and prototype index of :func:`convolution_rows` when one side has no measurable sample."""
    nan = float("nan")
    hw = (b - a) / 4
    return ({"tv": nan, "emd": nan}, {"actual_mid": nan, "predicted_mid": nan, "ratio": nan, "actual_mode": nan,
                                      "actual_mode_in_window": False, "window": ((a + b) / 2 - hw, (a + b) / 2 + hw)})


def convolution_rows(unimodal: list[dict], mixtures: list[dict], centres: np.ndarray) -> list[dict]:
    """Per model and multi-modal training distribution (Sec. 4.2): the actual response (mean over seeds), the
    convolution prediction from the unimodal responses at its modes (mean over seeds), their distances and the
    prototype-enhancement index for the outermost modes. A response without any measurable sample gets NaN
    distances and index."""
    rows = []
    for model in sorted({r["model"] for r in mixtures}):
        uni = {r.value: r.dist for r in impulse_responses([u for u in unimodal if u["model"] == model])}
        for resp in impulse_responses([m for m in mixtures if m["model"] == model]):
            modes = mixture_modes(resp.value)
            missing = [m for m in modes if not any(abs(m - v) < 1e-9 for v in uni)]
            if missing:
                raise ValueError(f"{model}: no unimodal response for red = {missing} (run pie_red at these values)")
            responses = {m: next(d for v, d in uni.items() if abs(m - v) < 1e-9) for m in modes}
            predicted = convolution_prediction(responses, {m: 1.0 for m in modes})
            if resp.dist.sum() > 0 and predicted.sum() > 0:
                dist = distribution_distance(resp.dist, predicted, centres=centres)
                proto = prototype_enhancement(resp.dist, predicted, centres, min(modes), max(modes))
            else:  # no measurable sample (the actual response or a unimodal one is empty): nothing to compare
                dist, proto = _no_convolution(min(modes), max(modes))
            rows.append({"model": model, "value": resp.value, "gap": max(modes) - min(modes), "seeds": len(resp.seeds),
                         "actual": resp.dist, "predicted": predicted, "tv": dist["tv"], "emd": dist["emd"],
                         "actual_mid": proto["actual_mid"], "predicted_mid": proto["predicted_mid"],
                         "ratio": proto["ratio"], "actual_mode": proto["actual_mode"],
                         "mode_in_middle": bool(proto["actual_mode_in_window"]), "window": proto["window"]})
    return rows


# ---------------------------------------------------------------------------------------------------------------
# From store records: independence (Sec. 4.3) and combinations (Sec. 5)
# ---------------------------------------------------------------------------------------------------------------

def independence_rows(records: list[dict], centres: np.ndarray) -> list[dict]:
    """Per model: :func:`independence_statistic` of its responses (averaged over seeds) across the numbers of
    nuisance values k, with the chi-square test over the images measured per response. Each row holds ``model``,
    ``ks``, ``seeds`` and the statistic's summary and per-k ``rows``."""
    out = []
    for model in sorted({r["model"] for r in records}):
        resp = {r.value: r for r in impulse_responses([x for x in records if x["model"] == model])
                if r.dist.sum() > 0}  # a response without any measurable sample has no shape to compare
        if len(resp) < 2:
            continue
        stat = independence_statistic({k: r.dist for k, r in resp.items()},
                                      n_samples={k: r.n_samples * len(r.seeds) for k, r in resp.items()},
                                      centres=centres)
        out.append({"model": model, "seeds": min(len(r.seeds) for r in resp.values()), **stat})
    return out


def distribution_ids(dist: Any, n: int, invalid_share: float = 0.0) -> np.ndarray:
    """Combination ids rebuilt from a distribution over ids (shares among measurable samples) of ``n`` samples of
    which ``invalid_share`` could not be measured (one -1 each)."""
    n_valid = int(round(n * (1 - float(invalid_share))))
    counts = np.rint(np.asarray(dist, float) * n_valid).astype(np.int64)
    return np.concatenate([np.repeat(np.arange(counts.size), counts), np.full(n - n_valid, -1, np.int64)])


def record_ids(record: dict) -> np.ndarray:
    """The generated combination ids of a combinations record, rebuilt from its stored distribution (shares over
    ids, times the number of measurable samples) plus one -1 per unmeasurable sample."""
    res = record["result"]
    return distribution_ids(res["distribution"], int(res["n_samples"]), res.get("invalid_share", 0.0))


def combination_rows(records: list[dict], n_total: int, by: str = "model", threshold: float = 0.1) -> list[dict]:
    """Support precision/recall of combinations records (paper Fig. 8), one row per (``by`` group, number of
    training combinations): ``by`` is ``"model"`` or a preset setting (``"width"``, ``"pool_size"``) to compare
    within one model (Fig. 25). Each row: ``group``, ``model``, ``n_train``, ``runs`` and the means with t
    intervals of precision, recall, iou and novel_mass, plus ``n_parameters`` (mean over runs)."""
    check_choice("by", by, ("model", "width", "pool_size"))
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["model"], r["model"] if by == "model" else r["params"][by])].append(r)
    rows = []
    def order(kv: tuple) -> tuple:  # by model, then numbers (widths, sizes) by value
        g = kv[0][1]
        return str(kv[0][0]), (0, float(g), "") if isinstance(g, (int, float)) else (1, 0.0, str(g))

    for (model, group), recs in sorted(groups.items(), key=order):
        for row in precision_recall_curve([(record_ids(r), r["result"]["train_support"]) for r in recs],
                                          n_total=n_total, threshold=threshold):
            params = [r["provenance"].get("n_parameters") for r in recs if len(r["result"]["train_support"]) ==
                      row["n_train"]]
            row.update(model=model, group=group, chance_precision=row["n_train"] / n_total,
                       n_parameters=float(np.mean([p for p in params if p])) if any(params) else float("nan"))
            rows.append(row)
    return rows


def pair_grid_rows(records: list[dict], grid: Sequence[int]) -> list[dict]:
    """Per (model, rare attribute) of a CLEVR pair grid (Fig. 9): the generated joint distribution over cells (mean
    over seeds), the training one, the marginal distances, and how much of the rare row's (or column's) generated
    mass falls on cells the training set never showed (``rare_novel``), next to the share those cells would get
    if the rare shape pair (colour pair) took every cell evenly (``rare_even``). A seed whose samples were all
    refused adds nothing to the mean; with none measured, the generated shares are NaN (nothing was measured)."""
    shape = tuple(grid)
    out = []
    for (model, rare), recs in by_setting(records):
        train = np.asarray(recs[0]["result"]["train_support"])
        allowed = np.zeros(int(np.prod(shape)), bool)
        allowed[train] = True
        allowed = allowed.reshape(shape)
        joints = [j for j in (joint_distribution(record_ids(r), shape) for r in recs) if j.sum() > 0]
        joint = np.mean(joints, axis=0) if joints else np.zeros(shape)
        nan = float("nan")
        p = allowed / allowed.sum()
        # the rare line: the row (shape pair) or column (colour pair) with fewest allowed cells
        axis = 0 if rare == "shape" else 1
        line = int(np.argmin(allowed.sum(axis=1 - axis)))
        q_line = joint[line] if axis == 0 else joint[:, line]
        a_line = allowed[line] if axis == 0 else allowed[:, line]
        ids = np.concatenate([record_ids(r) for r in recs])
        md = marginal_distance(ids, train, shape)
        out.append({
            "model": model, "rare": rare, "seeds": len(recs), "joint": joint, "train": p, "allowed": allowed,
            "rare_line": line, "rare_axis": axis,
            "rare_share": float(q_line.sum()) if joints else nan,
            "rare_share_train": float(p[line].sum() if axis == 0 else p[:, line].sum()),
            "rare_novel": float(q_line[~a_line].sum() / q_line.sum()) if q_line.sum() > 0 else nan,
            "rare_even": float((~a_line).mean()),
            "novel_mass": float(joint[~allowed].sum()) if joints else nan,
            "invalid": float(np.mean([r["result"].get("invalid_share", 0.0) for r in recs])),
            "marginal_tv": [m["tv"] for m in md],
        })
    return out
