"""Fleets on the training path (issue 14): ``experiments.run_fleet`` stores the records ``run_one`` stores, and the
sweep groups runs into fleets (``--fleet K``), falling back to single runs where the fleet lacks a recipe option."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from probe_utils import experiments as ex
from probe_utils import fleet as fleet_mod
from probe_utils import sweep
from probe_utils.cli import main
from probe_utils.store import Store, validate

REPO = Path(__file__).resolve().parent.parent
MEMBERS = [(1, 0), (2, 1)]   # (dot count, seed): different training sets and seeds in one fleet


def _pixels(rec: dict) -> np.ndarray:
    """The record's sample grid as floats in [0, 1] (8-bit PNG)."""
    return mpimg.imread(io.BytesIO(base64.b64decode(rec["result"]["sample_grid_png"])), format="png")[..., :3]


def _fp32(monkeypatch, family: str) -> None:
    """The ci preset's cpu recipe without bf16 on the CPU: the fleet then equals single runs up to float32 rounding.
    (Under bf16, grouped and single kernels round differently, ~1% on the first WGAN-GP loss, and a GAN amplifies it:
    members then agree with single runs in distribution only, as any two bf16 runs on a GPU do.)"""
    settings = {k: v for k, v in ex.RECIPES["cpu"][family].items() if k != "cpu_bf16"}
    monkeypatch.setitem(ex.RECIPES["cpu"], family, settings)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["vae", "wgan_gp"])
def test_fleet_records_match_single_runs(family, tmp_path, monkeypatch):
    """Two runs trained as one fleet at the ci preset store the records that run_one stores for the same runs: same
    key and params, same steps, losses, probes and final measurements, and sample images equal up to float rounding.

    Tolerances: members see the same batches and noise as single runs; only the summation order of a grouped conv or
    batched matmul differs, ~1e-7 relative per operation, and 40 iterations of training grow that (measured: 1e-6 to
    1e-4 relative in the losses, less than one 8-bit level in the images). We allow 1e-3 relative in losses and 2/255
    per pixel; a wrong batch, seed or recipe option moves losses by whole percents and pixels by tens of levels."""
    _fp32(monkeypatch, family)
    plan = ex.check_parameters("numerosity", models=[family], values=[1, 2], seeds=[0, 1], preset="ci", device="cpu")
    assert ex.fleet_reason(plan, family) is None, "the ci recipe must train as a fleet for this test"
    fleet_store, single_store = Store(tmp_path / "fleet"), Store(tmp_path / "single")
    got = ex.run_fleet(plan, family, MEMBERS, store=fleet_store, runs_dir=tmp_path / "fr", progress=False)
    for (value, seed), rec in zip(MEMBERS, got):
        ref = ex.run_one(plan, family, value, seed, store=single_store, runs_dir=tmp_path / "sr", progress=False)
        assert rec["key"] == ref["key"] and rec["params"] == ref["params"] and rec["value"] == value
        p, q = rec["provenance"], ref["provenance"]
        assert p["fleet_size"] == 2 and "fleet_size" not in q
        assert p["steps"] == q["steps"] == ex.PRESETS["ci"].steps and p["converged_at"] == q["converged_at"]
        assert set(p) - {"fleet_size", "fleet_train_wall_s", "fleet_train_cpu_s"} == set(q)
        assert set(rec["result"]) == set(ref["result"])
        a, b = rec["result"], ref["result"]
        assert [e["step"] for e in a["losses"]] == [e["step"] for e in b["losses"]]
        for x, y in zip(a["losses"], b["losses"]):
            assert x.keys() == y.keys()
            for g in x:
                assert x[g] == pytest.approx(y[g], rel=1e-3, abs=1e-4), (g, x["step"])
        assert [e["step"] for e in a["probes"]] == [e["step"] for e in b["probes"]]
        for x, y in zip(a["probes"], b["probes"]):
            np.testing.assert_allclose(x["dist"], y["dist"], atol=1e-9)
            assert x["invalid"] == y["invalid"] and x["healthy"] == y["healthy"]
        np.testing.assert_allclose(a["distribution"], b["distribution"], atol=1e-9)
        assert a["invalid_share"] == b["invalid_share"] and a["readings"] == b["readings"]
        assert np.abs(_pixels(rec) - _pixels(ref)).max() <= 2 / 255 + 1e-6
    recs = list(fleet_store.records())   # read back through the store's checks (checksum, key, schema)
    assert len(recs) == 2 and all(validate(r) for r in recs)
    # again: both records are found stored, nothing is trained
    monkeypatch.setattr(fleet_mod, "train_fleet", lambda *a, **k: pytest.fail("trained a stored run again"))
    assert ex.run_fleet(plan, family, MEMBERS, store=fleet_store, runs_dir=tmp_path / "fr", progress=False) == got


def test_unsupported_recipe_option_falls_back_to_single_runs(tmp_path, monkeypatch, capsys):
    """A recipe option the fleet does not implement (weight averaging, 'ema'): the runs are made one at a time
    (run_one), with the reason; the sweep plans them as single tasks and says why."""
    monkeypatch.setitem(ex.RECIPES["cpu"], "vae", {**ex.RECIPES["cpu"]["vae"], "ema": 0.999})
    plan = ex.check_parameters("numerosity", models=["vae"], values=[1, 2], seeds=[0, 1], preset="ci", device="cpu")
    assert "'ema'" in ex.fleet_reason(plan, "vae")
    made = []

    def fake_run_one(plan, model, value, seed, **kw):
        made.append((value, seed))
        return {"value": value, "seed": seed}

    monkeypatch.setattr(ex, "run_one", fake_run_one)
    monkeypatch.setattr(fleet_mod, "train_fleet", lambda *a, **k: pytest.fail("trained a fleet"))
    out = ex.run_fleet(plan, "vae", MEMBERS, store=Store(tmp_path / "s"), runs_dir=tmp_path / "r", progress=False)
    assert made == MEMBERS and [r["value"] for r in out] == [1, 2]
    assert "one at a time, not as a fleet" in capsys.readouterr().err
    tasks = sweep.plan_runs(["01"], preset="ci", store=tmp_path / "s", overrides={
        "models": ["vae", "wgan_gp"], "counts": [1, 2, 3], "seeds": 1}).todo
    jobs, notes = sweep.group_fleets(tasks, 2)
    assert sorted(len(j) for j in jobs if j[0].model == "vae") == [1, 1, 1]
    assert sorted(len(j) for j in jobs if j[0].model == "wgan_gp") == [1, 2]
    assert len(notes) == 1 and "vae" in notes[0] and "'ema'" in notes[0]


def test_fleet_unsupported_names_options():
    for recipe in ("paper", "released", "cpu"):
        for family in ("wgan_gp", "vae", "wgan_gp_fc", "vae_fc"):
            settings = ex.recipe_settings(recipe, family)
            reason = fleet_mod.fleet_unsupported(family, settings)
            assert reason is None or "ema" in settings, (recipe, family, reason)
    reason = fleet_mod.fleet_unsupported("wgan_gp_fc", {"reuse_batch": True, "lr": 1e-4})
    assert "'reuse_batch'" in reason and "'lr'" not in reason.split("(")[0]
    assert "sample_bn 'other'" in fleet_mod.fleet_unsupported("vae", {"sample_bn": "other"})
    assert "family" in fleet_mod.fleet_unsupported("my_model", {})


def test_grouping_and_fleet_size(tmp_path, capsys):
    tasks = sweep.plan_runs(["01"], preset="ci", store=tmp_path / "s", overrides={
        "models": ["vae", "wgan_gp"], "counts": [1, 2, 3], "seeds": [0, 1]}).todo
    jobs, notes = sweep.group_fleets(tasks, 4)
    assert not notes and sorted(len(j) for j in jobs) == [2, 2, 4, 4]
    assert all(len({(t.experiment, t.model, t.preset, t.width, t.pool_size) for t in j}) == 1 for j in jobs)
    assert sorted(t.key for j in jobs for t in j) == sorted(t.key for t in tasks)
    assert sweep.group_fleets(tasks, 1)[0] == [[t] for t in tasks]
    assert sweep.fleet_size(None, "cpu") == 1 and sweep.fleet_size(None, "cuda") == sweep.CUDA_FLEET
    assert sweep.fleet_size(3, "cpu") == 3
    assert main(["sweep", "01", "--preset", "ci", "-p", "models", '["vae"]', "-p", "counts", "[1, 2, 3]", "-p",
                 "seeds", "1", "--store", str(tmp_path / "s"), "--dry-run", "--fleet", "2"]) == 0
    assert "fleets of up to 2" in capsys.readouterr().out
    assert main(["sweep", "01", "--fleet", "0", "--dry-run"]) == 2
    assert "'fleet'" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_fleet_writes_the_records_of_the_plain_sweep(tmp_path):
    """``sweep --fleet 2`` at ci makes the same set of records (same keys) as the plain sweep, with equal results."""
    args = ["-p", "models", '["vae"]', "-p", "counts", "[1, 2]", "-p", "seeds", "1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    stores = {}
    for name, extra in (("plain", []), ("fleet", ["--fleet", "2", "--workers", "1"])):
        stores[name] = tmp_path / name
        res = subprocess.run([sys.executable, "-m", "probe_utils", "sweep", "01", "--preset", "ci", "--store",
                              str(stores[name]), *args, *extra], capture_output=True, text=True, env=env, cwd=REPO,
                             timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        assert "made 2 run(s), 0 failed" in res.stdout
    plain = {r["key"]: r for r in Store(stores["plain"]).records()}
    fleet = {r["key"]: r for r in Store(stores["fleet"]).records()}
    assert set(plain) == set(fleet) and len(plain) == 2
    for k, r in fleet.items():
        assert r["provenance"]["fleet_size"] == 2 and r["provenance"]["steps"] == plain[k]["provenance"]["steps"]
        np.testing.assert_allclose(r["result"]["distribution"], plain[k]["result"]["distribution"], atol=1e-9)
        assert np.abs(_pixels(r) - _pixels(plain[k])).max() <= 2 / 255 + 1e-6
