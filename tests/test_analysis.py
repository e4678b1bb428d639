"""Analysis functions on synthetic inputs with known answers (pure numpy; quick)."""

from __future__ import annotations

import numpy as np
import pytest

from probe_utils import analysis as A
from probe_utils.params import ParameterError


def gauss(centres: np.ndarray, mu: float, sd: float) -> np.ndarray:
    p = np.exp(-0.5 * ((centres - mu) / sd) ** 2)
    return p / p.sum()


def onehot(i: int, n: int) -> np.ndarray:
    p = np.zeros(n)
    p[i] = 1.0
    return p


# --- histograms and response shape -----------------------------------------------------------------------------

def test_histogram_1d_drops_and_reports_nan_and_out_of_range():
    edges = np.linspace(0, 1, 11)
    h = A.histogram_1d([0.05, 0.15, 0.15, np.nan, 1.5, 1.0, np.inf], edges)
    expected = np.zeros(10)
    expected[[0, 1, 9]] = [0.25, 0.5, 0.25]
    np.testing.assert_allclose(h.shares, expected)
    assert (h.n_used, h.n_nan, h.n_out) == (4, 2, 1)
    hc = A.histogram_1d([0.05, 1.5, -3.0, np.nan], edges, clip=True)
    assert (hc.n_used, hc.n_nan, hc.n_out) == (3, 1, 0)
    np.testing.assert_allclose(hc.shares[[0, 9]], [2 / 3, 1 / 3])
    assert A.histogram_1d([np.nan], edges).shares.sum() == 0
    np.testing.assert_array_equal(A.bin_index([0.0, 0.05, 0.1, 0.95, 1.0], edges), [0, 0, 1, 9, 9])
    np.testing.assert_allclose(A.bin_centres(edges)[:2], [0.05, 0.15])
    with pytest.raises(ParameterError, match="edges"):
        A.histogram_1d([0.1], [1.0, 0.0])


def test_response_shape_of_a_gaussian():
    c = np.linspace(0, 1, 201)
    s = A.response_shape(gauss(c, 0.5, 0.05), c)
    assert s["mean"] == pytest.approx(0.5) and s["median"] == pytest.approx(0.5, abs=1e-9)
    assert s["sd"] == pytest.approx(0.05, rel=1e-3)
    assert s["hwhm"] == pytest.approx(np.sqrt(2 * np.log(2)) * 0.05, rel=0.01)
    assert s["hwhm_ratio"] == pytest.approx(1.0)
    for key in ("skewness", "bowley", "mass_asymmetry"):
        assert abs(s[key]) < 1e-9, key


def test_response_shape_of_a_right_skewed_response_matches_dist_stats():
    p = np.array([0.0, 0.05, 0.15, 0.4, 0.2, 0.12, 0.06, 0.02])      # numerosity-like: longer right flank
    s, d = A.response_shape(p), A.dist_stats(p)
    assert s["mode"] == d["mode"] == s["mode_bin"] == 3
    assert s["mean"] == pytest.approx(d["mean"]) and s["sd"] == pytest.approx(d["sd"])
    assert s["skewness"] == pytest.approx(d["skew"])
    assert s["skewness"] > 0 and s["bowley"] > 0 and s["hwhm_ratio"] > 1
    assert s["mass_asymmetry"] == pytest.approx(0.4 - 0.2)
    delta = A.response_shape(onehot(4, 9))
    assert delta["sd"] == 0 and delta["hwhm"] == pytest.approx(0.5) and delta["bowley"] == 0
    edge = A.response_shape([0.6, 0.3, 0.1])                           # mode on the first bin: no left flank
    assert np.isnan(edge["hwhm_left"]) and edge["hwhm"] == pytest.approx(edge["hwhm_right"])


# --- confidence intervals -------------------------------------------------------------------------------------

def test_response_ci_t_normal_and_binomial():
    same = np.tile([0.2, 0.8], (3, 1))
    mean, lo, hi = A.response_ci(same)
    np.testing.assert_allclose([mean, lo, hi], [[0.2, 0.8]] * 3)
    mean, lo, hi = A.response_ci([[0.2], [0.4]], clip=False)
    assert mean[0] == pytest.approx(0.3) and hi[0] - mean[0] == pytest.approx(12.706205 * 0.1, rel=1e-6)
    _, lo_n, hi_n = A.response_ci([[0.2], [0.4]], method="normal", clip=False)
    assert hi_n[0] - 0.3 == pytest.approx(1.96 * 0.1)
    mean, lo, hi = A.response_ci([0.5, 0.5], n_samples=100)
    np.testing.assert_allclose(hi - mean, 1.96 * 0.05)
    _, lo, hi = A.response_ci([[0.0], [1.0]])
    assert lo[0] == 0 and hi[0] == 1                                    # clipped to shares
    with pytest.raises(ParameterError, match="n_samples"):
        A.response_ci([0.5, 0.5])


def test_impulse_responses_use_the_t_interval_and_flag_single_seeds():
    recs = [{"model": "m", "value": 2, "seed": s, "result": {"distribution": d, "n_samples": 50}}
            for s, d in enumerate([[0.1, 0.6, 0.3], [0.2, 0.5, 0.3]])]
    recs.append({"model": "m", "value": 3, "seed": 0, "result": {"distribution": [0.0, 0.3, 0.7], "n_samples": 50}})
    r2, r3 = A.impulse_responses(recs)
    d, n = A.stack_distributions(recs[:2])
    for got, want in zip((r2.dist, r2.lo, r2.hi), A.response_ci(d, n, method="t")):
        np.testing.assert_array_equal(got, want)
    assert r2.seed_variation and not r3.seed_variation
    np.testing.assert_allclose(r3.hi - r3.dist, 1.96 * np.sqrt(r3.dist * (1 - r3.dist) / 50))
    # a seed with every sample refused does not halve the response of the seed that measured some
    refused = {"model": "m", "value": 3, "seed": 1, "result": {"distribution": [0.0, 0.0, 0.0], "n_samples": 50}}
    (alone,) = A.impulse_responses([recs[2], refused])
    np.testing.assert_array_equal(alone.dist, r3.dist)
    assert alone.seeds == [0]


def test_summary_interval_is_t_based_with_the_real_number_of_seeds():
    recs = [{"model": "m", "value": 1, "seed": s, "result": {"distribution": d, "n_samples": 100},
             "provenance": {"steps": 10}} for s, d in enumerate([[0.0, 1.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])]
    (row,) = A.summary_rows(recs)
    assert row["mean_ci"] == pytest.approx(4.303 * 0.5 / np.sqrt(3), rel=1e-3)  # t with 2 dof, sd of 1, 1.5, 2
    (single,) = A.summary_rows(recs[:1])
    assert np.isnan(single["mean_ci"])


def test_a_seed_whose_samples_were_all_refused_adds_no_statistics():
    """A run whose every sample the counter refused has no distribution: it neither drags the shares of the seeds
    that measured something towards 0, nor, alone, reads as "mean 0, mode 0, 0% exact" in the summary table."""
    from probe_utils import findings

    def run(seed: int, dist: list[float], invalid: float) -> dict:
        return {"model": "vae", "value": 1, "seed": seed, "provenance": {"steps": 10},
                "result": {"distribution": dist, "n_samples": 100, "invalid_share": invalid}}

    (row,) = A.summary_rows([run(0, [0.0, 0.8, 0.2], 0.1), run(1, [0.0, 0.0, 0.0], 1.0)])
    assert row["exact"] == pytest.approx(0.8) and row["mean"] == pytest.approx(1.2) and row["mode"] == 1
    assert row["seeds"] == 2 and row["invalid"] == pytest.approx(0.55)
    (empty,) = A.summary_rows([run(0, [0.0, 0.0, 0.0], 1.0)])
    assert empty["mode"] is None and all(np.isnan(empty[k]) for k in ("mean", "sd", "exact", "above", "zero"))
    assert A.dist_stats([0.0, 0.0])["mode"] is None
    recs = [{**run(0, [0.0] * 25, 1.0), "experiment": "numerosity", "preset": "ci", "key": "k", "params": {}}]
    table = findings.summary_table(recs)
    shown = dict(zip(table.columns, (c.text for c in table.rows[0])))
    assert shown["mean"] == shown["mode"] == shown["share exact"] == "–" and shown["unmeasurable"] == "100%"
    assert findings.readings_table(recs).rows[0][3].text == "nothing measured"


def test_skewness_of_a_degenerate_response_is_undefined():
    spike = onehot(3, 7)
    assert np.isnan(A.response_shape(spike)["skewness"]) and np.isnan(A.dist_stats(spike)["skew"])
    assert np.isnan(A.response_shape(spike)["bump_skewness"]) and A.response_shape(spike)["stray_share"] == 0


def test_the_bump_leaves_out_strays_but_keeps_a_skewed_response_whole():
    """A few samples far from a symmetric response decide its third moment; its bump's skewness ignores them and
    says how much it left out. A genuinely skewed response keeps its skewness on the bump."""
    c = np.linspace(0.005, 0.995, 100)
    p = gauss(c, 0.5, 0.04)
    p = p / p.sum()
    p[2] += 0.004                                                      # 0.4% of the samples read as "almost no red"
    s = A.response_shape(p, c)
    assert s["skewness"] < -0.5 and abs(s["bump_skewness"]) < 0.05
    assert s["stray_share"] == pytest.approx(0.004 / p.sum(), rel=0.01) and s["bump_sd"] < s["sd"]
    skewed = np.exp(-0.5 * ((c - 0.4) / 0.05) ** 2) * (1 + np.tanh(3 * (c - 0.4) / 0.05))
    k = A.response_shape(skewed, c)
    assert k["skewness"] > 0.5 and k["bump_skewness"] == pytest.approx(k["skewness"], rel=0.05)
    assert k["stray_share"] < 1e-3
    peak = np.zeros_like(c)  # a sharp peak with a long left tail (6% of the mass): the tail is its shape, kept
    peak[59], peak[60] = 0.6, 0.34
    peak[45:59] = 0.06 * np.linspace(0.2, 1.0, 14) / np.linspace(0.2, 1.0, 14).sum()
    t = A.response_shape(peak, c)
    assert t["stray_share"] < 0.02 and t["bump_skewness"] < -1.5 and t["skewness"] < -1.5


def test_per_mode_spread_does_not_shrink_when_a_mode_is_lost():
    c = np.linspace(0.01, 0.99, 50)
    three = gauss(c, 0.3, 0.03) + gauss(c, 0.4, 0.03) + gauss(c, 0.9, 0.03)
    two = gauss(c, 0.3, 0.03) + gauss(c, 0.4, 0.03)
    whole = [A.response_shape(d, c)["sd"] for d in (three, two)]
    assert whole[1] < whole[0] / 2  # the mixture's sd falls a lot when the mode at 0.9 is lost ...
    modes = [A.per_mode(d, c, [0.3, 0.4, 0.9]) for d in (three, two)]
    assert modes[1][2]["mass"] < 1e-12 and modes[0][2]["mass"] > 0.3
    assert modes[1][0]["sd"] == pytest.approx(modes[0][0]["sd"], rel=0.05)  # ... the spread of each mode does not
    assert A.mode_windows([0.4, 0.3, 0.9]) == [pytest.approx((0.25, 0.35)), pytest.approx((0.35, 0.65)),
                                               pytest.approx((0.65, 1.15))]


# --- convolution and prototype enhancement --------------------------------------------------------------------

def test_convolution_of_delta_responses_is_the_training_distribution():
    n = 11
    responses = {v: onehot(v, n) for v in range(n)}
    weights = {2: 1.0, 5: 2.0, 9: 1.0}
    np.testing.assert_allclose(A.convolution_prediction(responses, weights),
                               np.bincount([2, 5, 5, 9], minlength=n) / 4)
    c = np.linspace(0, 1, 101)
    resp = {0.3: gauss(c, 0.3, 0.04), 0.9: gauss(c, 0.9, 0.02)}
    np.testing.assert_allclose(A.convolution_prediction(resp, {0.1 + 0.2: 1, 0.9: 3}),
                               0.25 * resp[0.3] + 0.75 * resp[0.9])
    with pytest.raises(ParameterError, match="missing 0.5"):
        A.convolution_prediction(resp, {0.5: 1.0})


def test_shifted_gaussian_kernel_reproduces_a_bimodal_mixture():
    c = np.arange(101.0)
    kernel = gauss(c, 20, 3)                                             # tails below bin 0 ~1e-12
    pred = A.shift_kernel_prediction(kernel, 20, {30: 1.0, 70: 1.0})
    np.testing.assert_allclose(pred, 0.5 * gauss(c, 30, 3) + 0.5 * gauss(c, 70, 3), atol=1e-10)
    w = np.zeros(101)
    w[[30, 70]] = 0.5
    np.testing.assert_allclose(A.shift_kernel_prediction(kernel, 20, w), pred)
    lost = A.shift_kernel_prediction(onehot(3, 10), 5, {0: 1.0})         # shifted 2 bins past the left edge
    assert lost.sum() == 0


def test_distribution_distance_known_values():
    n = 20
    for i, j in [(3, 3), (2, 9), (15, 4)]:
        d = A.distribution_distance(onehot(i, n), onehot(j, n), width=0.05)
        assert d["emd"] == pytest.approx(abs(i - j) * 0.05)
        assert d["tv"] == pytest.approx(float(i != j)) and d["js"] == pytest.approx(float(i != j))
    c = np.array([0.0, 0.1, 0.5, 2.0])
    assert A.distribution_distance(onehot(1, 4), onehot(3, 4), centres=c)["emd"] == pytest.approx(1.9)
    p, q = gauss(np.arange(40.0), 15, 3), gauss(np.arange(40.0), 19, 3)
    d1, d2 = A.distribution_distance(p, q), A.distribution_distance(q, p)
    assert d1 == pytest.approx(d2) and d1["emd"] == pytest.approx(4.0, rel=1e-6)
    assert 0 < d1["js"] < d1["tv"] < 1


def test_prototype_enhancement_index():
    c = np.linspace(0.005, 0.995, 100)
    pred = 0.5 * gauss(c, 0.3, 0.03) + 0.5 * gauss(c, 0.4, 0.03)
    same = A.prototype_enhancement(pred, pred, c, 0.3, 0.4)
    assert same["ratio"] == pytest.approx(1.0) and same["difference"] == pytest.approx(0.0)
    assert same["n_window_bins"] == 6 and same["window"] == pytest.approx((0.325, 0.375))
    merged = A.prototype_enhancement(gauss(c, 0.35, 0.03), pred, c, 0.3, 0.4)
    assert merged["ratio"] > 1 and merged["difference"] > 0 and merged["actual_mode_in_window"]
    far = 0.5 * gauss(c, 0.3, 0.03) + 0.5 * gauss(c, 0.9, 0.03)
    assert A.prototype_enhancement(far, far, c, 0.3, 0.9)["ratio"] == pytest.approx(1.0)
    with pytest.raises(ParameterError, match="half_width"):
        A.prototype_enhancement(pred, pred, c, 0.3, 0.4, half_width=0.001)
    with pytest.raises(ParameterError, match="a < b"):
        A.prototype_enhancement(pred, pred, c, 0.4, 0.3)
    # a reader sees "> 100" where the prediction puts next to nothing in the window, not a huge, fragile number
    mushy = A.prototype_enhancement(far + 0.2, far, c, 0.3, 0.9)
    assert mushy["ratio"] > 100 and A.prototype_index_text(mushy["ratio"]) == "> 100"
    assert A.prototype_index_text(merged["ratio"]) == f"{merged['ratio']:.2f}"
    assert A.prototype_index_text(float("inf")) == "> 100" and A.prototype_index_text(float("nan")) == "–"


# --- independence ---------------------------------------------------------------------------------------------

def test_independence_statistic_identical_noisy_and_different():
    c = np.arange(20.0)
    base = gauss(c, 8, 2)
    same = A.independence_statistic({k: base for k in (1, 5, 10, 50)}, n_samples=1000)
    assert same["max_tv"] == 0 and same["max_emd"] == 0 and same["chi2"] == 0 and same["p_value"] == 1
    assert all(r["d_mean"] == 0 and r["d_sd"] == 0 for r in same["rows"]) and np.isnan(same["spearman_rho"])
    rng = np.random.default_rng(0)                                      # sampling noise only: calibrated test
    noisy = [A.independence_statistic({k: rng.multinomial(2000, base) / 2000 for k in (1, 5, 10, 50)},
                                      n_samples=2000) for _ in range(60)]
    assert np.mean([r["p_value"] < 0.05 for r in noisy]) < 0.15
    assert max(r["cramers_v"] for r in noisy) < 0.08 and max(r["max_tv"] for r in noisy) < 0.08
    wider = {k: gauss(c, 8, 2 + 0.02 * k) for k in (1, 5, 10, 50)}
    diff = A.independence_statistic(wider, n_samples={k: 1000 for k in wider})
    assert diff["spearman_rho"] == pytest.approx(1.0) and diff["rows"][-1]["d_sd"] > 0.5
    assert diff["p_value"] < 1e-6 and diff["reference"] == 1
    shifted = A.independence_statistic({1: base, 2: gauss(c, 12, 2)}, n_samples=500)
    assert shifted["p_value"] < 1e-6 and shifted["cramers_v"] > 0.5
    assert shifted["rows"][1]["d_mean"] == pytest.approx(4.0, abs=1e-3)
    assert shifted["rows"][1]["emd"] == pytest.approx(4.0, abs=1e-3)
    assert np.isnan(A.independence_statistic({1: base, 2: base})["p_value"])   # no counts, no test
    with pytest.raises(ParameterError, match="n_samples"):
        A.independence_statistic({1: base, 2: base}, n_samples={1: 100})
    with pytest.raises(ParameterError, match="same bins"):
        A.independence_statistic({1: base, 2: base[:-1]})


# --- combinations ---------------------------------------------------------------------------------------------

def test_support_precision_recall_perfect_and_missing():
    s = np.arange(0, 100, 10)
    r = A.support_precision_recall(np.repeat(s, 50), s, n_total=100)
    assert (r["precision"], r["recall"], r["iou"], r["novel_mass"]) == (1.0, 1.0, 1.0, 0.0)
    assert r["chance_precision"] == pytest.approx(0.1) and r["n_support"] == 10
    r = A.support_precision_recall(np.repeat(s[:7], 50), s)
    assert r["precision"] == 1.0 and r["recall"] == pytest.approx(0.7) and r["missing"] == [70, 80, 90]
    # every sample refused (id -1): nothing was measured, so recall is unknown, not 0
    r = A.support_precision_recall(np.full(50, -1), s)
    assert np.isnan(r["recall"]) and np.isnan(r["iou"]) and np.isnan(r["precision"]) and r["n_invalid"] == 50


def test_near_combinations_and_the_tolerant_precision():
    grid = (5, 9, 9, 5)
    centre = int(np.ravel_multi_index((2, 4, 4, 2), grid))
    near = A.near_combinations([centre], grid, axes=(1, 2))
    cells = {tuple(int(i) for i in np.unravel_index(n, grid)) for n in near}
    assert cells == {(2, 4 + dx, 4 + dy, 2) for dx in (-1, 0, 1) for dy in (-1, 0, 1)}  # size and red unchanged
    assert A.near_combinations([0], grid, axes=(1, 2)).size == 4  # a corner has fewer neighbours
    with pytest.raises(ParameterError, match="train_ids"):
        A.near_combinations([2025], grid, axes=(1,))
    # every sample one x step off a training combination: exactly none are training ones, all are near one
    off = int(np.ravel_multi_index((2, 5, 4, 2), grid))
    gen = np.repeat([centre, off], [60, 40])
    exact = A.support_precision_recall(gen, [centre], n_total=2025)
    tol = A.support_precision_recall(gen, [centre], n_total=2025, near=near)
    assert exact["precision"] == 0.5 and tol["precision"] == 1.0
    assert exact["recall"] == tol["recall"] == 1.0 and tol["n_support"] == exact["n_support"] == 2
    assert exact["chance_precision"] == 1 / 2025 and tol["chance_precision"] == 9 / 2025


def test_support_precision_recall_threshold_rule():
    s = np.arange(10)                                                     # p* = 0.1, threshold 0.01
    novel = A.support_precision_recall(np.concatenate([np.repeat(s, 10), [55] * 5]), s)
    assert novel["precision"] == pytest.approx(10 / 11) and novel["n_novel"] == 1 and novel["recall"] == 1
    rare = A.support_precision_recall(np.concatenate([np.repeat(s, 100), [55] * 5]), s)
    assert rare["precision"] == 1 and rare["n_novel"] == 0                # 5 < min_count = 10.05
    assert rare["novel_mass"] == pytest.approx(5 / 1005) and rare["min_count"] == pytest.approx(10.05)
    at = A.support_precision_recall(np.concatenate([np.repeat(s, 99), [55] * 10]), s)
    assert at["min_count"] == pytest.approx(10) and at["n_novel"] == 1    # exactly at threshold: counted
    weak = A.support_precision_recall(np.concatenate([np.repeat(s[1:], 100), [0] * 5]), s)
    assert weak["recall"] == pytest.approx(0.9) and weak["missing"] == [0]  # a train id below threshold is missed
    inv = A.support_precision_recall(np.concatenate([np.repeat(s, 10), [-1] * 50]), s)
    assert inv["n_invalid"] == 50 and inv["precision"] == inv["recall"] == 1
    assert A.support_precision_recall([55], s, threshold=0.0)["n_support"] == 1
    assert np.isnan(A.support_precision_recall([-1, -1], s)["precision"])
    with pytest.raises(ParameterError, match="n_total"):
        A.support_precision_recall([120], s, n_total=100)
    with pytest.raises(ParameterError, match="integer"):
        A.support_precision_recall([0.5], s)


def test_precision_recall_curve_groups_by_training_size():
    s10, s20 = np.arange(10), np.arange(20)
    runs = [(np.repeat(s20, 5), s20), (np.repeat(s10, 5), s10),
            (np.concatenate([np.repeat(s10, 5), [50] * 5]), s10)]
    rows = A.precision_recall_curve(runs, n_total=100)
    assert [r["n_train"] for r in rows] == [10, 20] and [r["runs"] for r in rows] == [2, 1]
    assert rows[0]["precision"] == pytest.approx((1 + 10 / 11) / 2) and rows[0]["recall"] == 1
    assert rows[0]["precision_lo"] < rows[0]["precision"] < rows[0]["precision_hi"]
    # two runs: the t interval (half-width 12.7 sd / sqrt 2) runs past 1, which no share can reach; it is cut there
    assert A.mean_ci([1, 10 / 11])[2] > 1 and rows[0]["precision_hi"] == 1
    assert rows[0]["recall_lo"] == rows[0]["recall_hi"] == 1  # both runs recall everything: no spread
    assert np.isnan(rows[1]["precision_lo"])


def test_marginals_and_combination_ids():
    grid = (5, 9, 9, 5)
    full = np.arange(int(np.prod(grid)))
    for i, m in enumerate(A.marginals(full, grid)):
        np.testing.assert_allclose(m, np.full(grid[i], 1 / grid[i]))
    idx = np.unravel_index(full, grid)
    np.testing.assert_array_equal(A.combination_ids(idx, grid), full)
    np.testing.assert_array_equal(A.combination_ids([[0, 4, 5], [1, -1, 0]], (5, 3)), [1, -1, -1])
    # Fig. 9-like: shape 0 takes only colours 0-1; generated spreads its mass over all colours, same shape marginal.
    train = A.combination_ids(([0, 0, 1, 1, 1, 1, 2, 2, 2, 2], [0, 1, 0, 1, 2, 3, 0, 1, 2, 3]), (3, 4))
    gen = A.combination_ids(([0] * 8 + [1] * 16 + [2] * 16, [0, 1, 2, 3] * 10), (3, 4))
    d = A.marginal_distance(gen, train, (3, 4))
    assert d[0]["tv"] == pytest.approx(0.0, abs=1e-12) and d[1]["tv"] > 0
    np.testing.assert_allclose(d[0]["train"], [0.2, 0.4, 0.4])
    joint = A.joint_distribution(gen, (3, 4))
    assert joint.shape == (3, 4) and joint.sum() == pytest.approx(1) and joint[0, 3] == pytest.approx(0.05)
    assert all(x["tv"] == 0 for x in A.marginal_distance(train, train, (3, 4)))


def test_bootstrap_ci_of_a_mean():
    x = np.random.default_rng(1).normal(2.0, 1.0, 400)
    est, lo, hi = A.bootstrap_ci(np.mean, x, n_boot=500, seed=3)
    assert est == pytest.approx(x.mean()) and lo < est < hi
    assert hi - lo == pytest.approx(2 * 1.96 / np.sqrt(400), rel=0.2)
    assert A.bootstrap_ci(np.mean, x, n_boot=500, seed=3) == (est, lo, hi)
    s = np.arange(10)
    gen = np.concatenate([np.repeat(s, 20), [50] * 30])
    p, plo, phi = A.bootstrap_ci(lambda g: A.support_precision_recall(g, s)["precision"], gen, n_boot=200)
    assert p == pytest.approx(10 / 11) and plo <= p <= phi


def _record(experiment, model, value, dist, seed=0):
    return {"experiment": experiment, "model": model, "value": value, "seed": seed,
            "result": {"distribution": list(dist), "n_samples": 1000}}


def test_convolution_rows_predict_the_mixture_of_unimodal_responses():
    from probe_utils.analysis import convolution_rows

    centres = np.linspace(0.01, 0.99, 50)
    bump = lambda c: np.exp(-0.5 * ((centres - c) / 0.03) ** 2) / np.exp(-0.5 * ((centres - c) / 0.03) ** 2).sum()
    uni = [_record("pie_red", "vae", 0.3, bump(0.3)), _record("pie_red", "vae", 0.9, bump(0.9)),
           _record("pie_red", "vae", 0.4, bump(0.4))]
    far = _record("pie_red_mix", "vae", "0.3+0.9", (bump(0.3) + bump(0.9)) / 2)
    close = _record("pie_red_mix", "vae", "0.3+0.4", bump(0.35))  # merged into the prototype
    rows = {r["value"]: r for r in convolution_rows(uni, [far, close], centres)}
    assert rows["0.3+0.9"]["tv"] < 1e-9
    assert rows["0.3+0.4"]["ratio"] > 1.5 and rows["0.3+0.4"]["mode_in_middle"]
    with pytest.raises(ValueError, match="no unimodal response"):
        convolution_rows(uni[:1], [far], centres)


def test_convolution_rows_of_an_unmeasurable_response_are_nan():
    from probe_utils.analysis import convolution_rows

    centres = np.linspace(0.01, 0.99, 50)
    uni = [_record("pie_red", "vae", v, gauss(centres, v, 0.03)) for v in (0.3, 0.9)]
    empty = _record("pie_red_mix", "vae", "0.3+0.9", np.zeros(50))
    (row,) = convolution_rows(uni, [empty], centres)
    assert np.isnan(row["tv"]) and np.isnan(row["ratio"]) and not row["mode_in_middle"]
