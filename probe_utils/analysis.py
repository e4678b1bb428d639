"""Analyses on measured features (pure numpy): impulse responses with confidence intervals, summary statistics.

Inputs are store records (see :mod:`probe_utils.store`); each holds the distribution of a measured feature over
fixed bins 0..bins-1 for one (model, trained value, seed).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np


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


def dist_stats(dist: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation, mode and skewness of a distribution over bins 0..K-1."""
    p = np.asarray(dist, float)
    p = p / p.sum() if p.sum() > 0 else p
    k = np.arange(len(p))
    mean = float((k * p).sum())
    var = float(((k - mean) ** 2 * p).sum())
    sd = var ** 0.5
    skew = float(((k - mean) ** 3 * p).sum() / sd ** 3) if sd > 0 else 0.0
    return {"mean": mean, "sd": sd, "mode": int(np.argmax(p)), "skew": skew}


def impulse_responses(records: list[dict]) -> list[Response]:
    """Group records by (model, value) and average their distributions over seeds, with 95% intervals.

    With two or more seeds the interval is the t-free normal interval of the mean over seeds; with one seed it is the
    binomial sampling interval of each bin's share.
    """
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["model"], r["value"])].append(r)
    out = []
    for (model, value), recs in sorted(groups.items()):
        d = np.array([r["result"]["distribution"] for r in recs], float)
        n = int(min(r["result"]["n_samples"] for r in recs))
        mean = d.mean(axis=0)
        if len(recs) >= 2:
            half = 1.96 * d.std(axis=0, ddof=1) / np.sqrt(len(recs))
        else:
            half = 1.96 * np.sqrt(mean * (1 - mean) / max(n, 1))
        out.append(Response(model, value, mean, np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1),
                            sorted(r["seed"] for r in recs), n))
    return out


def summary_rows(records: list[dict]) -> list[dict]:
    """One row per (model, trained value): statistics of the generated distribution, mean ± 95% CI over seeds."""
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["model"], r["value"])].append(r)
    rows = []
    for (model, value), recs in sorted(groups.items()):
        stats = [dist_stats(r["result"]["distribution"]) for r in recs]
        dists = np.array([r["result"]["distribution"] for r in recs], float)
        means = np.array([s["mean"] for s in stats])
        ci = 1.96 * means.std(ddof=1) / np.sqrt(len(means)) if len(means) >= 2 else float("nan")
        exact = dists[:, value].mean() if value < dists.shape[1] else 0.0
        rows.append({
            "model": model, "value": value, "seeds": len(recs),
            "mean": float(means.mean()), "mean_ci": float(ci),
            "sd": float(np.mean([s["sd"] for s in stats])),
            "mode": int(np.argmax(dists.mean(axis=0))),
            "skew": float(np.mean([s["skew"] for s in stats])),
            "exact": float(exact),
            "below": float(dists[:, :value].sum(axis=1).mean()),
            "above": float(dists[:, value + 1:].sum(axis=1).mean()),
            "zero": float(dists[:, 0].mean()),
            "steps": int(np.mean([r["provenance"]["steps"] for r in recs])),
        })
    return rows


def provenance_rows(records: list[dict]) -> list[dict]:
    """Where and how each record was made: preset, device, seed, iterations, wall time, code version and commit."""
    rows = []
    for r in sorted(records, key=lambda r: (r["model"], r["value"], r["seed"])):
        p = r["provenance"]
        rows.append({
            "model": r["model"], "value": r["value"], "seed": r["seed"], "preset": r["preset"],
            "device": p["device"], "iterations": p["steps"], "converged_at": p.get("converged_at"),
            "wall_s": p["wall_s"], "torch": p["torch"], "code": p["code_version"],
            "commit": (p.get("git_commit") or "unknown")[:12], "created": p["created"],
        })
    return rows
