"""CLEVR-like renderer (probe_utils.render.clevr) and its reader (probe_utils.features.clevr)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probe_utils.features import clevr as feat
from probe_utils.params import ParameterError
from probe_utils.render import clevr

# Measured on fresh renders: count 0.993 and pair 0.992 (1000 scenes each, seed 12345; 0.997
# and 0.997 on the 600 of the JSON).  The quick test's fixed batches measured 37/40 (count) and
# 30/30 (pairs), so its thresholds leave room for one or two borderline flips across platforms.
COUNT_MIN_QUICK = 0.875
PAIR_MIN_QUICK = 0.9
COUNT_MIN = 0.95  # the slow test, 200 + 200 scenes
PAIR_MIN = 0.95


def _rows(pairs):
    return np.array([[clevr.SHAPES.index(a), clevr.SHAPES.index(b), clevr.COLOR_NAMES.index(c),
                      clevr.COLOR_NAMES.index(d)] for a, b, c, d in pairs])


def test_images_shape_range_and_seeding():
    x, lab = clevr.render(4, seed=3, count=[1, 2, 3, 4])
    assert x.shape == (4, 3, 64, 64) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert lab["count"].tolist() == [1, 2, 3, 4]
    y, lab2 = clevr.render(4, seed=3, count=[1, 2, 3, 4])
    assert torch.equal(x, y)
    for k in lab:
        np.testing.assert_array_equal(lab[k], lab2[k])
    z, _ = clevr.render(4, seed=4, count=[1, 2, 3, 4])
    assert not torch.equal(x, z)


def test_scene_depends_only_on_seed_and_index(monkeypatch):
    """A scene is the same whatever the batch size or chunking (so also on any device)."""
    x5, lab5 = clevr.render(5, seed=11)
    monkeypatch.setattr(clevr, "_chunk_size", lambda res, dev: 2)
    x3, lab3 = clevr.render(3, seed=11)
    assert torch.equal(x5[:3], x3)
    np.testing.assert_array_equal(lab5["position"][:3], lab3["position"])


def test_labels_match_the_image():
    x, lab = clevr.render(8, seed=5, count=[1, 2, 3, 4, 5, 2, 3, 4], shapes=["cube", "torus", "sphere"],
                          colors=["red", "cyan"], sizes="large", materials=["metal"], masks=True)
    n = 8
    present = np.arange(clevr.MAX_OBJECTS)[None] < lab["count"][:, None]
    assert np.all((lab["shape"] >= 0) == present) and np.all(np.isnan(lab["visible"]) == ~present)
    assert set(np.unique(lab["shape"][present])) <= {1, 4, 0}
    assert set(np.unique(lab["color"][present])) <= {1, 6}
    assert np.all(lab["size"][present] == 1) and np.all(lab["material"][present] == 1)
    # the overlap rule: every object keeps at least 90 % of its silhouette
    assert np.all(lab["visible"][present] >= 0.9)
    # objects are listed left to right; positions lie in the frame
    xs = np.where(present, lab["xy"][..., 0], 1e9)
    assert np.all(np.diff(xs, axis=1)[present[:, 1:]] >= 0)
    assert np.all((lab["xy"][present] > 0) & (lab["xy"][present] < 64))
    # the mask (2x resolution) shows each object, and an unoccluded sphere, cube or torus is
    # centred on its projected position
    m = lab["mask"]
    assert m.shape == (n, 128, 128)
    ys, xs_ = np.mgrid[0:128, 0:128]
    checked = 0
    for i in range(n):
        for j in range(lab["count"][i]):
            sel = m[i] == j
            assert sel.sum() > 0
            if lab["visible"][i, j] == 1.0:
                cx, cy = (xs_[sel] + 0.5).mean() / 2, (ys[sel] + 0.5).mean() / 2
                assert abs(cx - lab["xy"][i, j, 0]) < 0.5 and abs(cy - lab["xy"][i, j, 1]) < 0.6
                checked += 1
    assert checked >= 5


def test_pairs_are_respected():
    grid = clevr.figure9_pairs(4, "shape")
    x, lab = clevr.render(10, seed=2, pairs=grid["pairs"])
    rows = _rows(grid["pairs"])
    got = np.stack([lab["shape"][:, 0], lab["shape"][:, 1], lab["color"][:, 0], lab["color"][:, 1]], 1)
    assert np.all(lab["count"] == 2)
    np.testing.assert_array_equal(got, rows[lab["pair"]])
    # object a is left of object b by at least pair_gap of the width
    assert np.all(lab["xy"][:, 1, 0] - lab["xy"][:, 0, 0] >= 0.08 * 64 - 1e-6)


def test_figure9_grids():
    g4 = clevr.figure9_pairs(4)
    assert g4["allowed"].shape == (4, 4) and g4["allowed"].sum() == 13 and len(g4["pairs"]) == 13
    assert ("torus", "cone", "blue", "red") in g4["pairs"] and ("torus", "cone", "red", "blue") not in g4["pairs"]
    g9 = clevr.figure9_pairs(9)
    assert g9["allowed"].sum() == 74
    assert {p[2:] for p in g9["pairs"] if p[:2] == ("cone", "cylinder")} == {("red", "blue"), ("blue", "green")}
    c9 = clevr.figure9_pairs(9, "color")
    assert c9["allowed"].sum() == 74 and c9["allowed"][:, c9["color_pairs"].index(("red", "blue"))].sum() == 2


@pytest.mark.parametrize("kwargs, name", [
    ({"count": 0}, "count"), ({"count": 11}, "count"), ({"count": [1, 2]}, "count"),
    ({"shapes": ["pyramid"]}, "shapes"), ({"colors": "pink"}, "colors"), ({"shapes": []}, "shapes"),
    ({"sizes": ["huge"]}, "sizes"), ({"materials": ["wood"]}, "materials"), ({"size": 50}, "size"),
    ({"pairs": []}, "pairs"), ({"pairs": [("sphere", "cube", "red")]}, "pairs"),
    ({"pairs": [("sphere", "cube", "red", "pink")]}, "pairs"),
    ({"pairs": [("sphere", "cube", "red", "blue")], "count": 3}, "count"),
    ({"pairs": [("sphere", "cube", "red", "blue")], "shapes": ["cube"]}, "shapes"),
    ({"n": 0}, "n"), ({"seed": -1}, "seed"), ({"min_visible": 1.5}, "min_visible"),
    ({"pair_gap": -0.1}, "pair_gap"), ({"device": "nonsense"}, "device"),
])
def test_bad_input_raises(kwargs, name):
    args = {"n": 3, **kwargs}
    with pytest.raises(ParameterError, match=name):
        clevr.render(**args)


def test_size_message_lists_allowed_values():
    with pytest.raises(ParameterError, match="32, 64, 128"):
        clevr.render(2, size=50)


def test_128px():
    x, lab = clevr.render(2, seed=8, size=128, count=3)
    assert x.shape == (2, 3, 128, 128)
    assert np.all((lab["xy"][:, :3] > 0) & (lab["xy"][:, :3] < 128))
    # the same scene at 64 px: positions scale with the image
    _, lab64 = clevr.render(2, seed=8, size=64, count=3)
    np.testing.assert_allclose(lab["xy"][:, :3], 2 * lab64["xy"][:, :3], rtol=1e-9)


def test_classifier_on_fresh_renders():
    x, lab = clevr.render(40, seed=777)
    d = feat.count_details(x)
    assert np.mean(d["read"] == lab["count"]) >= COUNT_MIN_QUICK
    kept = d["count"] >= 0
    assert kept.mean() >= 0.85 and np.mean(d["count"][kept] == lab["count"][kept]) >= COUNT_MIN_QUICK
    assert np.array_equal(d["count"], feat.count(x))
    x, lab = clevr.render(30, seed=778, count=2)
    pa = feat.pair_attributes(x)
    want = np.stack([lab["shape"][:, 0], lab["shape"][:, 1], lab["color"][:, 0], lab["color"][:, 1]], 1)
    assert np.mean((pa["read_codes"] == want).all(1)) >= PAIR_MIN_QUICK
    ok = ~pa["refused"]
    assert ok.mean() >= 0.8 and np.mean((pa["codes"][ok] == want[ok]).all(1)) >= PAIR_MIN_QUICK
    assert pa["shape_a"].shape == (30,) and set(pa["shape_a"][ok]) <= set(clevr.SHAPES)
    assert np.all(pa["codes"][~ok] == -1) and np.all(pa["shape_a"][~ok] == "")
    assert np.all((pa["confidence"] >= 0) & (pa["confidence"] <= 1))


def test_classifier_accepts_128px_and_arrays():
    x, lab = clevr.render(6, seed=21, size=128, count=[1, 2, 3, 4, 5, 6])
    got = feat.count_details(x.numpy())["read"]
    assert got.shape == (6,) and got.dtype.kind == "i"
    assert np.mean(got == lab["count"]) >= 0.8
    assert feat.count((x.numpy() * 255).astype(np.uint8)).shape == (6,)


def test_missing_weights_say_how_to_rebuild(monkeypatch, tmp_path):
    from probe_utils.features import _common

    monkeypatch.setattr(feat, "data_file", lambda name: tmp_path / name)
    monkeypatch.setattr(_common, "data_file", lambda name: tmp_path / name)
    feat._classifier.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="train_clevr_classifier"):
            feat.count(torch.zeros(1, 3, 64, 64), min_confidence=0.5)
        with pytest.raises(FileNotFoundError, match="train_clevr_classifier"):
            feat.calibration()
    finally:
        feat._classifier.cache_clear()


def test_shipped_weights_are_small_float16():
    path = feat.data_file(feat.WEIGHTS_FILE)
    assert path.is_file() and path.stat().st_size < 1_000_000
    with np.load(path) as z:
        assert all(z[k].dtype != np.float32 for k in z.files)
    info = feat.classifier_info()
    assert {"count_accuracy", "pair_accuracy"} <= set(info["accuracy_64px"])


# --- refusals -----------------------------------------------------------------------------

def test_count_refuses_what_is_no_scene():
    from probe_utils.features import degrade

    x, _ = clevr.render(3, seed=5)
    x[1, 2, 30, 30] = float("nan")
    d = feat.count_details(x)
    assert d["count"][1] == -1 and d["reason"][1] == 1
    cases = {"grey mush": degrade.grey_mush(60, 64, seed=2), "noise": degrade.noise_images(20, 64, seed=2),
             "black": torch.zeros(2, 3, 64, 64), "white": torch.ones(2, 3, 64, 64),
             "grey": torch.full((2, 3, 64, 64), 0.5)}
    for name, imgs in cases.items():
        d = feat.count_details(imgs, min_confidence=0.0)  # refused by the fixed rules whatever the threshold
        assert (d["count"] == -1).all() and (d["reason"] > 0).all(), (name, d["reason"])
        pa = feat.pair_attributes(imgs, min_confidence=0.0, count_confidence=0.0)
        assert pa["refused"].all() and (pa["codes"] == -1).all(), name
    assert (feat.count_details(degrade.noise_images(5, 64, seed=3))["reason"] == 2).all()


def test_pairs_refused_unless_two_objects():
    x, lab = clevr.render(12, seed=40, count=[1, 3, 4, 5] * 3)
    pa = feat.pair_attributes(x, min_confidence=0.0)
    counted = feat.count(x)
    assert np.array_equal(pa["refused"], counted != 2)
    assert (pa["reason"][counted > 0] == 7).all()


def test_default_thresholds_are_the_calibrated_ones():
    cal = feat.calibration()
    x, _ = clevr.render(40, seed=91)
    y = feat.degrade("blur_1_faint_0.5", x)
    d = feat.count_details(y)
    assert np.array_equal(d["count"], feat.count(y, min_confidence=cal["count"]["threshold"]))
    by_conf = d["reason"] == 6
    fixed = np.isin(d["reason"], range(1, 6))
    assert np.array_equal(by_conf, (d["count_confidence"] < cal["count"]["threshold"]) & ~fixed)
    assert not (feat.count_details(y, min_confidence=0.0)["reason"] == 6).any()
    xp, _ = clevr.render(30, seed=92, count=2)
    yp = feat.degrade("blur_1_faint_0.5", xp)
    pa = feat.pair_attributes(yp)
    same = feat.pair_attributes(yp, min_confidence=cal["pair"]["threshold"], rule=cal["pair"]["rule"],
                                count_confidence=cal["count"]["threshold"])
    for key in ("codes", "refused", "reason"):
        assert np.array_equal(pa[key], same[key]), key
    fixed = np.isin(pa["reason"], range(1, 8))
    assert np.array_equal(pa["reason"] == 8, (pa["confidence"] < cal["pair"]["threshold"]) & ~fixed)
    # below 64 px the 32-px thresholds apply
    small = clevr.render(30, seed=93, size=32, count=2)[0]
    pa = feat.pair_attributes(small)
    same = feat.pair_attributes(small, min_confidence=cal["pair"]["threshold_32"],
                                count_confidence=cal["count"]["threshold_32"])
    assert np.array_equal(pa["refused"], same["refused"])
    assert np.array_equal(pa["reason"] == 8,
                          (pa["confidence"] < cal["pair"]["threshold_32"]) & ~np.isin(pa["reason"], range(1, 8)))


def test_calibration_record_is_complete_and_matches_the_weights():
    import hashlib

    cal = feat.calibration()
    weights = feat.data_file(feat.WEIGHTS_FILE)
    assert cal["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert cal["calibrated_at"] == 64 and cal["target_accuracy"] == 0.95
    for kind in ("count", "pair"):
        assert 0.0 <= cal[kind]["threshold"] < 1.0 and 0.0 <= cal[kind]["threshold_32"] < 1.0
    assert cal["pair"]["rule"] in feat.PAIR_RULES
    for kind in ("count", "pair"):
        assert cal[kind]["pooled_64"]["accepted_accuracy"] >= 0.95
        assert cal[kind]["pooled_32"]["accepted_accuracy"] >= 0.95
    assert cal["image_rules"] == feat.image_rules()
    conds = {(r["condition"], r["size"]) for r in cal["count"]["per_condition"]}
    assert {(c, s) for c in feat.CALIBRATION_CONDITIONS for s in (64, 32)} <= conds


@pytest.mark.parametrize("kwargs, name", [
    ({"min_confidence": -0.5}, "min_confidence"), ({"min_confidence": 2}, "min_confidence"),
    ({"count_confidence": "x"}, "count_confidence"), ({"rule": "mean"}, "rule"), ({"batch_size": 0}, "batch_size"),
])
def test_pair_attributes_bad_parameters(kwargs, name):
    with pytest.raises(ParameterError, match=name):
        feat.pair_attributes(torch.zeros(2, 3, 64, 64), **kwargs)


def test_count_bad_parameters():
    with pytest.raises(ParameterError, match="min_confidence"):
        feat.count(torch.zeros(2, 3, 64, 64), min_confidence=1.5)
    with pytest.raises(ParameterError, match="'x'"):
        feat.count(torch.zeros(2, 3, 64, 64, dtype=torch.bool))
    with pytest.raises(ParameterError, match="'condition'"):
        feat.degrade("fog", torch.zeros(2, 3, 64, 64))


def test_robustness_report_rows():
    rows = feat.robustness_report(n=8, seed=3)
    assert [r["condition"] for r in rows] == list(feat.CONDITIONS) + list(feat.NOT_SCENES)
    for r in rows:
        assert 0.0 <= r["refused"] <= 1.0 and 0.0 <= r["pair_refused"] <= 1.0
    for r in rows[len(feat.CONDITIONS):]:
        # measured: about 0.5% of grey mush fields still read as a few objects (2000 fields, three seeds)
        least = 0.95 if r["condition"] == "grey_mush" else 1.0
        assert r["refused"] >= least and r["pair_refused"] >= least, r["condition"]


@pytest.mark.slow
def test_accepted_accuracy_on_a_fresh_generated_like_set():
    """A generated-like set the calibration never saw (other seed), 64 px: accepted counts and pairs meet the target
    within the binomial noise of this smaller set (two standard errors)."""
    cal = feat.calibration()
    r = feat.generated_like_readings(40, seed=5151, sizes=(64,))
    kept = r["count_rule_ok"] & (r["count_score"] >= cal["count"]["threshold"])
    acc = r["count_correct"][kept].mean()
    assert acc >= 0.95 - 2 * np.sqrt(0.95 * 0.05 / kept.sum()), acc
    score = r[f"pair_score_{cal['pair']['rule']}"]
    pk = r["pair_scene"] & kept & (r["count_read"] == 2) & (score >= cal["pair"]["threshold"])
    pacc = r["pair_correct"][pk].mean()
    assert pacc >= 0.95 - 2 * np.sqrt(0.95 * 0.05 / pk.sum()), pacc


@pytest.mark.slow
def test_robustness_report_default_is_fast_and_refuses_junk():
    import time

    t0 = time.perf_counter()
    rows = feat.robustness_report()
    assert time.perf_counter() - t0 < 30  # a few seconds on one idle thread; generous for a busy machine
    by = {r["condition"]: r for r in rows}
    assert by["clean"]["accepted_accuracy"] >= 0.95 and by["clean"]["pair_accepted_accuracy"] >= 0.95
    assert all(by[name]["refused"] >= (0.95 if name == "grey_mush" else 1.0) for name in feat.NOT_SCENES)


@pytest.mark.slow
def test_accuracy_report():
    rep = feat.accuracy_report(n=200, seed=4321)
    assert rep["count_accuracy"] >= COUNT_MIN
    assert rep["pair_accuracy"] >= PAIR_MIN
    assert rep["recorded_count_accuracy"] >= COUNT_MIN and rep["recorded_pair_accuracy"] >= PAIR_MIN
    assert rep["count_refused"] <= 0.15 and rep["pair_refused"] <= 0.15


@pytest.mark.slow
def test_ten_objects_at_128px_keep_the_overlap_rule():
    x, lab = clevr.render(6, seed=31, size=128, count=10)
    assert x.shape == (6, 3, 128, 128)
    assert np.all(lab["count"] == 10) and np.all(lab["visible"] >= 0.9)


@pytest.mark.slow
def test_speed_report():
    rep = clevr.speed_report()
    assert set(rep) == {"64px_3obj", "64px_10obj", "128px_3obj", "128px_10obj"}
    assert all(v > 0 for v in rep.values())


@pytest.mark.slow
def test_calibration_recomputes_the_stored_thresholds():
    """scripts/calibrate_classifiers.py, run again, finds the thresholds the JSON holds (about a minute)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "calibrate_classifiers.py"
    spec = importlib.util.spec_from_file_location("calibrate_classifiers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    record = module.calibrate_clevr()
    cal = feat.calibration()
    for kind in ("count", "pair"):
        for key in ("threshold", "threshold_32"):
            assert record[kind][key] == cal[kind][key], (kind, key)
    assert record["pair"]["rule"] == cal["pair"]["rule"]
