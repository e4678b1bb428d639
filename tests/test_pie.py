"""The Pie renderer and its measurement: seeding, ranges, labels vs measurement, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probe_utils.features import pie as pief
from probe_utils.params import ParameterError
from probe_utils.render import pie


def test_shapes_ranges_and_labels():
    x, lab = pie.render(n=40, seed=1, size=48)
    assert x.shape == (40, 3, 48, 48) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    for key in ("red", "radius", "x", "y", "radius_px", "cx_px", "cy_px", "combo"):
        assert lab[key].shape == (40,)
    for feat, (lo, hi) in pie.RANGES.items():
        assert lab[feat].min() >= lo and lab[feat].max() <= hi
    assert np.allclose(lab["radius_px"], lab["radius"] * 24) and np.allclose(lab["cx_px"], 24 + lab["x"] * 24)
    # every disc stays inside the image: the border rows/columns are white except at a touch
    assert (lab["cx_px"] - lab["radius_px"] >= -1e-9).all() and (lab["cy_px"] + lab["radius_px"] <= 48 + 1e-9).all()
    assert (lab["combo"] == -1).all()


def test_seeding():
    a, la = pie.render(n=16, seed=7)
    b, lb = pie.render(n=16, seed=7)
    c, _ = pie.render(n=16, seed=8)
    assert torch.equal(a, b) and all(np.array_equal(la[k], lb[k]) for k in la)
    assert not torch.equal(a, c)
    # fixing one feature leaves the other draws of the same seed unchanged
    _, lf = pie.render(n=16, seed=7, red=0.3)
    assert np.array_equal(lf["radius"], la["radius"]) and np.array_equal(lf["x"], la["x"])


def test_labels_match_measurement():
    rep = pief.accuracy_report(n=400, seed=3)
    assert rep["empty"] == 0
    for feat in ("size", "x", "y", "red"):
        assert rep[f"{feat}_p99_abs_err"] < rep[f"{feat}_spacing"] / 4, feat
        assert rep[f"{feat}_mean_abs_err"] < rep[f"{feat}_spacing"] / 10, feat


def test_measurement_at_grid_values_is_nearest_to_truth():
    combos = pie.combination_grid()
    x, lab = pie.render(n=300, seed=5, combos=combos)
    got = pief.measure(x)
    grids = {"size": pie.SIZE_GRID, "x": pie.X_GRID, "y": pie.Y_GRID, "red": pie.COMBO_RED_GRID}
    for feat, grid in grids.items():
        nearest = grid[np.abs(got[feat][:, None] - grid[None, :]).argmin(1)]
        assert np.allclose(nearest, lab[pief.LABEL_OF[feat]]), feat


def test_red_proportion_preserved_by_swaps():
    # at high resolution the pixel share of red converges to the exact label
    x, lab = pie.render(n=6, seed=11, size=384, red=[0.1, 0.35, 0.5, 0.9])
    got = pief.measure(x)
    assert np.abs(got["red"] - lab["red"]).max() < 0.004
    x, lab = pie.render(n=4, seed=2, red=[0.0, 1.0])
    np.testing.assert_allclose(pief.measure(x)["red"], lab["red"], atol=0.01)
    assert np.array_equal(pief.measure(x, red_rule="majority")["red"], lab["red"])


def test_not_a_pie_is_refused():
    from probe_utils.features import degrade

    for images, reason in ((torch.ones(2, 3, 32, 32), 2), (torch.full((2, 3, 32, 32), 0.5), 3),
                           (degrade.grey_mush(50, 32, seed=1), 3), (degrade.noise_images(50, 32, seed=1), 3)):
        got = pief.measure(images, details=True)
        assert np.isnan(got["size"]).all() and np.isnan(got["red"]).all()
        assert (got["refusal"] == reason).all(), (reason, got["refusal"])
    x, _ = pie.render(n=3, seed=1, size=32)
    two = torch.minimum(x[0], torch.roll(x[1], 16, dims=2))[None]   # two overlapping pies: one odd blob
    x = x.clone()
    x[2, 0, 5, 5] = float("nan")
    got = pief.measure(torch.cat([x, two]), details=True)
    assert got["refusal"][2] == 1 and np.isfinite(got["red"][:2]).all()
    assert got["refusal"][3] == 4


@pytest.mark.parametrize("size", [32, 64])
def test_red_holds_under_blur_where_the_majority_rule_leans_red(size):
    rows = {r["condition"]: r for r in pief.robustness_report(n=200, size=size)}
    for cond in ("clean", "blur_0.5", "blur_1", "faint_0.6", "faint_0.35", "noise_0.05"):
        assert rows[cond]["refused"] == 0.0, cond
        assert rows[cond]["red_mean_abs_err"] <= 0.05, (cond, rows[cond]["red_mean_abs_err"])
        assert rows[cond]["size_mean_abs_err"] <= 0.02 and rows[cond]["x_mean_abs_err"] <= 0.02, cond
    assert rows["grey_mush"]["refused"] == 1.0 and rows["noise_images"]["refused"] == 1.0
    x, lab = pie.render(n=200, seed=4, size=size, red=0.5)
    from probe_utils.features import degrade

    blurred = degrade.blur(x, 1.0)
    assert abs(np.nanmean(pief.measure(blurred)["red"]) - 0.5) < 0.03
    assert np.nanmean(pief.measure(blurred, red_rule="majority")["red"]) > 0.52   # the paper's rule leans to red


@pytest.mark.parametrize("size", [32, 64])
def test_blur_makes_size_read_smaller_and_the_report_says_so(size):
    """The direction the size claim's second reading rests on: a blurred disc's half-ink contour lies inside its
    edge, so the reading shrinks with the blur (and no more than the report's mean error), never grows."""
    rows = {r["condition"]: r for r in pief.robustness_report(n=200, size=size)}
    assert abs(rows["clean"]["size_bias"]) < 1e-3
    biases = [rows[c]["size_bias"] for c in ("blur_0.5", "blur_1", "blur_1.5")]
    assert biases[0] > biases[1] > biases[2] and biases[2] < -1e-3
    assert abs(biases[2]) <= rows["blur_1.5"]["size_mean_abs_err"] + 1e-12
    assert abs(rows["blur_1"]["x_bias"]) < 2e-3  # blur moves no centroid


@pytest.mark.parametrize("size", [32, 64])
def test_ink_mass_size_holds_under_blur_where_the_area_reading_shrinks(size):
    """The size claim's blur-proof reading: the disc's ink mass over its inside darkness is its area whether or not
    the rim is blurred, so its bias stays a small fraction of the area reading's."""
    rows = {r["condition"]: r for r in pief.robustness_report(n=200, size=size)}
    assert rows["clean"]["size_ink_mean_abs_err"] < rows["clean"]["size_mean_abs_err"]
    for cond in ("blur_0.5", "blur_1", "blur_1.5"):
        assert abs(rows[cond]["size_ink_bias"]) < 0.25 * abs(rows[cond]["size_bias"]), cond
    assert abs(rows["blur_1"]["size_ink_bias"]) < 1e-3 and abs(rows["noise_0.05"]["size_ink_bias"]) < 1e-3
    x, lab = pie.render(n=100, seed=5, size=size, radius=0.5)
    from probe_utils.features import degrade

    blurred = degrade.blur(x, 1.0)
    ink, area = pief.measure(blurred, size_rule="ink")["size"], pief.measure(blurred)["size"]
    assert abs(np.nanmean(ink) - 0.5) < 2e-3 < abs(np.nanmean(area) - 0.5)
    # the same refusals: a reading of the same accepted images
    assert np.array_equal(np.isnan(ink), np.isnan(area))
    with pytest.raises(ParameterError, match="'size_rule'.*'area'.*'ink'"):
        pief.measure(x, size_rule="mass")


def test_colours():
    x, _ = pie.render(n=8, seed=4, red=0.5)
    fg = pief.foreground(x)
    red = (x[:, 0] > x[:, 1]) & (x[:, 0] > x[:, 2])
    inner = fg & ~red
    # non-red slices have R = 0 inside the disc; red ones G = B = 0
    full = x.amin(1) == 0  # pixels fully inside the disc
    assert float(x[:, 0][inner & full].max()) < 1e-6
    assert float(x[:, 1:][(red & full)[:, None].expand(-1, 2, -1, -1)].max()) < 1e-6
    assert float(x[:, 0][red & full].min()) >= 0.8 - 1e-6


def test_fixed_sets_values_and_combos():
    _, lab = pie.render(n=50, seed=0, red=0.3, radius=0.55, x=-0.05, y=0.2)
    assert (lab["red"] == 0.3).all() and (lab["radius"] == 0.55).all()
    assert (lab["x"] == -0.05).all() and (lab["y"] == 0.2).all()
    _, lab = pie.render(n=200, seed=0, red=[0.3, 0.4, 0.9], radius=np.array([0.5, 0.8]))
    assert set(lab["red"]) == {0.3, 0.4, 0.9} and set(lab["radius"]) == {0.5, 0.8}
    v = np.linspace(-0.2, 0.2, 30)
    _, lab = pie.render(n=30, seed=0, values={"x": v}, red=torch.tensor([0.1, 0.2], dtype=torch.float64))
    assert np.array_equal(lab["x"], v) and set(lab["red"]) <= {0.1, 0.2}
    combos = np.array([[0.5, 0.0, 0.1, 0.3], [0.8, -0.2, 0.2, 0.9], [0.6, 0.05, np.nan, 0.5]])
    _, lab = pie.render(n=300, seed=0, combos=combos)
    assert set(lab["combo"]) == {0, 1, 2}
    rows = np.stack([lab["radius"], lab["x"], lab["y"], lab["red"]], 1)
    for i in range(3):
        sel = rows[lab["combo"] == i]
        fixed = ~np.isnan(combos[i])
        assert np.allclose(sel[:, fixed], combos[i, fixed])
    free_y = rows[lab["combo"] == 2, 2]
    assert len(np.unique(free_y)) > 10 and free_y.min() >= -0.2 and free_y.max() <= 0.2
    # a feature not fixed anywhere is drawn uniformly
    _, lab = pie.render(n=1000, seed=0, combos=np.c_[combos[:, :3], [np.nan] * 3])
    assert abs(lab["red"].mean() - 0.5) < 0.03 and lab["red"].min() < 0.02 and lab["red"].max() > 0.98


def test_independence_values_and_grids_are_allowed():
    for key, vals in pie.INDEPENDENCE_VALUES.items():
        feats = ("x", "y") if key == "location" else (key,)
        for f in feats:
            _, lab = pie.render(n=30, seed=0, **{f: list(vals)})
            assert set(lab[f]) == set(vals)
    assert pie.combination_grid().shape == (2025, 4)
    assert len(pie.RED_GRID) == 9 and np.allclose(np.diff(pie.X_GRID), 0.05)


def test_empty_and_input_forms():
    got = pief.measure(torch.ones(3, 3, 32, 32))
    assert all(np.isnan(v).all() for v in got.values())
    x, lab = pie.render(n=4, seed=0)
    a = pief.measure(x)
    b = pief.measure((x.numpy() * 255).round().astype(np.uint8))
    assert all(isinstance(v, np.ndarray) and v.shape == (4,) for v in a.values())
    assert np.allclose(a["size"], b["size"], atol=0.01) and np.allclose(a["red"], b["red"], atol=0.01)
    assert pief.measure(x[0])["size"].shape == (1,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    a, la = pie.render(n=32, seed=9)
    b, lb = pie.render(n=32, seed=9, device="cuda")
    assert b.device.type == "cuda" and np.array_equal(la["red"], lb["red"])
    assert (a - b.cpu()).abs().max() < 1e-4
    ma, mb = pief.measure(a), pief.measure(b)
    assert all(np.allclose(ma[k], mb[k], atol=1e-4) for k in ma)


BAD_RENDER = [
    ({"n": 0}, "n"), ({"n": 2.5}, "n"), ({"n": "3"}, "n"), ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"),
    ({"size": 4}, "size"), ({"size": 64.5}, "size"), ({"device": "nonsense"}, "device"),
    ({"red": -0.1}, "red"), ({"red": 1.2}, "red"), ({"red": float("nan")}, "red"), ({"red": "a"}, "red"),
    ({"red": []}, "red"), ({"red": [0.5, 2.0]}, "red[1]"), ({"red": [[0.1, 0.2]]}, "red"), ({"red": True}, "red"),
    ({"radius": 0.3}, "radius"), ({"radius": 0.81}, "radius"), ({"radius": [0.5, 0.9]}, "radius[1]"),
    ({"x": 0.25}, "x"), ({"x": -0.3}, "x"), ({"y": 0.21}, "y"), ({"y": []}, "y"), ({"x": {"a": 1}}, "x"),
    ({"combos": np.zeros((0, 4))}, "combos"), ({"combos": [0.5, 0, 0, 0.3]}, "combos"),
    ({"combos": np.zeros((2, 3))}, "combos"), ({"combos": [[0.9, 0, 0, 0.3]]}, "combos[0, 0] (radius)"),
    ({"combos": [[0.5, 0, 0.3, 0.3]]}, "combos[0, 2] (y)"), ({"combos": "abc"}, "combos"),
    ({"values": {"blue": np.zeros(4)}}, "values"), ({"values": {"red": np.zeros(3)}}, "values[red]"),
    ({"values": {"red": np.full(4, 1.5)}}, "values[red][0]"), ({"values": [1, 2]}, "values"),
    ({"red": 0.3, "combos": [[0.5, 0, 0, 0.3]]}, "red"), ({"x": 0.0, "values": {"x": np.zeros(4)}}, "x"),
]


@pytest.mark.parametrize("kwargs,name", BAD_RENDER)
def test_bad_render_input(kwargs, name):
    kwargs = {"n": 4, **kwargs}
    with pytest.raises(ParameterError) as err:
        pie.render(**kwargs)
    assert f"parameter {name!r}" in str(err.value)


@pytest.mark.parametrize("threshold", [0.0, 1.0, -1, "a", float("nan")])
def test_bad_threshold(threshold):
    with pytest.raises(ParameterError, match="threshold"):
        pief.measure(torch.ones(1, 3, 8, 8), threshold=threshold)


@pytest.mark.parametrize("x", [torch.ones(2, 1, 8, 8), torch.ones(2, 3, 8, 9), [1, 2, 3]])
def test_bad_images(x):
    with pytest.raises(ParameterError, match="'x'"):
        pief.measure(x)


def test_bad_report_input():
    with pytest.raises(ParameterError, match="'n'"):
        pief.accuracy_report(n=0)
    with pytest.raises(ParameterError, match="'seed'"):
        pief.accuracy_report(seed=-3)
