"""The methods page (book/methods.md) quotes what the chapters' stored `cpu` runs show; those quotes must be what the
committed records hold, so a record that lands or is re-run cannot leave the page saying something else."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from probe_utils import findings as F
from probe_utils.experiments import PRESETS
from probe_utils.store import Store

REPO = Path(__file__).resolve().parents[1]
TEXT = re.sub(r"\s+", " ", (REPO / "book" / "methods.md").read_text())


def _runs(experiment: str, value: float, model: str) -> dict[int, dict]:
    """The chapter's `cpu` runs of ``model`` at ``value`` (the preset's own width and training-set size), by seed."""
    pre = PRESETS["cpu"]
    recs = [r for r in Store().records(experiment, "cpu") if r["model"] == model
            and abs(float(r["value"]) - value) < 1e-9
            and all((r.get("params") or {}).get(k, getattr(pre, k)) == getattr(pre, k) for k in ("width", "pool_size"))]
    return {int(r["seed"]): r for r in recs}


def _one_dot(model: str) -> list[float]:
    """The share of all samples with exactly one dot, per stored seed (0, 1, 2), trained on one dot."""
    runs = _runs("numerosity", 1, model)
    assert sorted(runs) == [0, 1, 2], f"{model}: the page quotes three seeds; stored: {sorted(runs)}"
    return [F.measurable(runs[s]) * float(F._dist(runs[s])[1] / F._dist(runs[s]).sum()) for s in (0, 1, 2)]


def test_one_dot_shares_of_the_paper_families_are_the_stored_ranges():
    for label, model in (("VAE", "vae"), ("WGAN-GP", "wgan_gp")):
        shares = np.round(np.array(_one_dot(model)) * 100).astype(int)
        quoted = f"{label} {shares.min()}–{shares.max()}%"
        assert quoted in TEXT, f"the methods page should say {quoted!r} (the records)"


def test_one_dot_shares_of_pixelcnn_and_diffusion_are_the_stored_ones():
    for label, model in (("diffusion drew exactly one dot in", "diffusion"), ("PixelCNN in", "pixelcnn")):
        a, b, c = (f"{100 * s:.1f}%" for s in _one_dot(model))
        quoted = f"{label} {a}, {b} and {c}"
        assert quoted in TEXT, f"the methods page should say {quoted!r} (the records, seeds 0, 1, 2)"


def test_long_runs_are_quoted_as_the_search_stored_them():
    """"moved the share from 73% at 15 minutes to 75% (VAE), ...": per long run of the search (four times the `cpu`
    budget), the exactly-one share at the preset's budget and that of its final 2,000 samples."""
    budget = 60 * float(PRESETS["cpu"].max_minutes)
    long = {r["model"]: r for r in F.recipe_search_results() if r["minutes"] * 60 > budget}
    assert set(long) == {"vae", "wgan_gp", "vae_fc", "wgan_gp_fc"}
    for model, label in (("vae", "VAE"), ("wgan_gp", "WGAN-GP"), ("vae_fc", "fully connected VAE"),
                         ("wgan_gp_fc", "fully connected WGAN-GP")):
        at, end = F._share_by(long[model]["probes"], budget), long[model]["final"]["exact"]
        quoted = f"{100 * at:.0f}% {'at 15 minutes ' if model == 'vae' else ''}to {100 * end:.0f}% ({label}"
        assert quoted in TEXT, f"the methods page should say {quoted!r} (the long run {long[model]['name']})"
