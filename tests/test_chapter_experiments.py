"""The experiments of chapters 4-6: training sets as specified, measurements that recover the rendered labels, clear
errors for bad parameters, and records that carry what the analyses need."""

import numpy as np
import pytest
import torch

from probe_utils import experiments
from probe_utils.experiments import EXPERIMENTS, independence_combos, run, scaled_settings, snap
from probe_utils.params import ParameterError
from probe_utils.render import pie

CPU = torch.device("cpu")


@pytest.mark.parametrize("feature,column", [("red", 3), ("size", 0), ("location", 1)])
def test_independence_training_set(feature, column):
    key = "radius" if feature == "size" else feature
    for k in (1, 7, 50):
        rows = independence_combos(feature, k, seed=3)
        assert rows.shape == (3 * k, 4)
        values, counts = np.unique(rows[:, column], return_counts=True)
        assert np.allclose(values, sorted(pie.INDEPENDENCE_VALUES[key])) and set(counts) == {k}
        for j, f in enumerate(pie.COMBO_COLUMNS):
            lo, hi = pie.RANGES[f]
            assert rows[:, j].min() >= lo and rows[:, j].max() <= hi
        others = np.delete(rows, column, axis=1)
        assert len({tuple(r) for r in others}) == 3 * k  # k random nuisance values per studied value
    assert np.array_equal(independence_combos(feature, 5, 0), independence_combos(feature, 5, 0))
    assert not np.array_equal(independence_combos(feature, 5, 0), independence_combos(feature, 5, 1))


def test_independence_measures_the_studied_feature():
    x, labels = EXPERIMENTS["indep_size"].render(10, 300, 0, 64, CPU)
    measured = EXPERIMENTS["indep_size"].measure(x)
    assert np.abs(measured - labels["radius"]).max() < 0.02


def test_snap_to_a_grid():
    grid = np.array([0.1, 0.3, 0.5])
    got = snap(np.array([0.1, 0.19, 0.21, 0.5, 0.59, 0.61, 0.0, -0.01, np.nan]), grid)
    assert got.tolist() == [0, 0, 1, 2, 2, -1, 0, -1, -1]


def test_pie_combinations_measure_recovers_rendered_ids():
    exp = EXPERIMENTS["pie_combos"]
    support = exp.support(50, 4)
    assert len(support) == 50 and len(set(support.tolist())) == 50 and support.max() < 2025
    assert np.array_equal(support, exp.support(50, 4)) and not np.array_equal(support, exp.support(50, 5))
    x, labels = exp.render(50, 400, 4, 32, CPU)
    expected = np.ravel_multi_index([snap(labels["radius"], pie.SIZE_GRID), snap(labels["x"], pie.X_GRID),
                                     snap(labels["y"], pie.Y_GRID), snap(labels["red"], pie.COMBO_RED_GRID)],
                                    exp.grid)
    assert np.isin(expected, support).all()
    assert np.array_equal(exp.measure(x), expected)
    assert exp.describe(float(expected[0])).count(".") == 3


def test_mnist_combinations_measure_recovers_rendered_numbers():
    exp = EXPERIMENTS["mnist_combos"]
    x, labels = exp.render(20, 300, 1, 32, CPU)
    assert np.isin(labels["triple"], exp.support(20, 1)).all()
    assert np.mean(exp.measure(x) == labels["triple"]) > 0.95


@pytest.mark.parametrize("name,rare", [("clevr_pairs_4x4", "shape"), ("clevr_pairs_9x9", "color")])
def test_clevr_pairs_measure_recovers_rendered_cells(name, rare):
    exp = EXPERIMENTS[name]
    assert exp.min_image_size == 64
    x, labels = exp.render(rare, 120, 2, 64, CPU)
    ids = exp.measure(x)
    assert np.mean(np.isin(ids, exp.support(rare, 0))) > 0.95
    from probe_utils.render import clevr
    fp = clevr.figure9_pairs(exp.grid[0], rare)
    assert len(exp.support(rare, 0)) == fp["allowed"].sum()


BAD = [
    ("indep_red", dict(values=[0]), "'nuisance_values[0]'.*1..50"),
    ("indep_size", dict(values=[51]), "'nuisance_values[0]'.*1..50"),
    ("pie_combos", dict(values=[3000]), "'combinations[0]'.*1..2025"),
    ("mnist_combos", dict(values=[0]), "'combinations[0]'.*1..1000"),
    ("clevr_numerosity", dict(values=[11]), "'counts[0]'.*1..10"),
    ("clevr_pairs_4x4", dict(values=["size"]), "'rare[0]'.*'shape'"),
    ("pie_combos", dict(values=[10], width=0), "'width'"),
    ("pie_combos", dict(values=[10], pool_size=10), "'pool_size'"),
]


@pytest.mark.parametrize("name,change,message", BAD)
def test_bad_parameters_name_themselves(tmp_path, name, change, message):
    kwargs = dict(models=["vae"], seeds=1, preset="ci", device="cpu", **change)
    with pytest.raises(ParameterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run(name, store=tmp_path / "store", runs_dir=tmp_path / "runs", progress=False, **kwargs)
    assert not (tmp_path / "store").exists()


def test_scaled_settings():
    w, p = experiments.PRESETS["ci"].width, experiments.PRESETS["ci"].pool_size
    assert scaled_settings("ci", [0.5, 1, 2], [2]) == [{}, {"width": w // 2}, {"width": 2 * w}, {"pool_size": 2 * p}]
    with pytest.raises(ParameterError, match="'width_factors\\[0\\]'"):
        scaled_settings("ci", [-1])
    with pytest.raises(ParameterError, match="'preset'"):
        scaled_settings("huge")


def test_combination_record_carries_support_and_overrides(tmp_path):
    kw = dict(models="vae", values=[12], seeds=[0], preset="ci", device="cpu", store=tmp_path / "s",
              runs_dir=tmp_path / "r", progress=False)
    (rec,) = run("pie_combos", **kw)
    res = rec["result"]
    assert res["train_support"] == EXPERIMENTS["pie_combos"].support(12, 0).tolist()
    assert len(res["distribution"]) == 2025 and len(res["sample_status"]) == 16
    assert set(res["sample_status"]) <= {"train", "new", "?"}
    (wide,) = run("pie_combos", width=4, **kw)
    assert wide["params"]["width"] == 4 and rec["params"]["width"] == experiments.PRESETS["ci"].width
    assert wide["key"] != rec["key"]
    assert wide["provenance"]["n_parameters"] < rec["provenance"]["n_parameters"]
