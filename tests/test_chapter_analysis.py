"""Record-level analyses and findings of chapters 4-6 on synthetic records with known answers."""

import numpy as np
import pytest

from probe_utils import analysis, findings
from probe_utils.experiments import EXPERIMENTS, PRESETS


def _record(experiment, model, value, ids, n_bins, support=None, seed=0, params=None, preset="cpu"):
    ids = np.asarray(ids)
    valid = ids[ids >= 0]
    dist = np.bincount(valid, minlength=n_bins) / max(valid.size, 1)
    pre = PRESETS[preset]
    rec = {"experiment": experiment, "model": model, "value": value, "seed": seed, "preset": preset,
           "key": f"{experiment}-{model}-{value}-{seed}-{params}",
           "params": {"width": pre.width, "pool_size": pre.pool_size, **(params or {})},
           "provenance": {"n_parameters": 1000},
           "result": {"distribution": dist.tolist(), "n_samples": int(ids.size),
                      "invalid_share": float(1 - valid.size / ids.size)}}
    if support is not None:
        rec["result"]["train_support"] = [int(i) for i in support]
    return rec


def test_record_ids_round_trip():
    ids = np.array([3, 3, 5, -1, 0, 5, 5, -1])
    rec = _record("pie_combos", "vae", 3, ids, 10, support=[3, 5, 0])
    assert sorted(analysis.record_ids(rec).tolist()) == sorted(ids.tolist())


def _combination_records(model="vae", params=None):
    rng = np.random.default_rng(0)
    recs = []
    for m in (10, 400):
        support = np.sort(rng.choice(2025, m, replace=False))
        if m == 10:  # memorised: only training combinations, all of them
            gen = np.repeat(support, 100)
        else:  # spread over every combination
            gen = np.concatenate([np.repeat(support, 10), np.repeat(np.arange(2025), 4)])
        recs.append(_record("pie_combos", model, m, gen, 2025, support=support, params=params))
    return recs


def test_combination_rows_and_findings():
    recs = _combination_records() + _combination_records("wgan_gp")
    rows = findings.combination_rows_by({"pie_combos": recs})["pie"]
    by = {(r["group"], r["n_train"]): r for r in rows}
    assert by[("vae", 10)]["precision"] == 1 and by[("vae", 10)]["recall"] == 1
    assert by[("vae", 400)]["recall"] == 1
    assert abs(by[("vae", 400)]["precision"] - 400 / 2025) < 1e-9
    found = findings.combination_findings({"pie_combos": recs})
    assert "recall ≥ 0.9 in 4 of 4" in str(found)
    assert "for 2 of 2 (data set, model)" in str(found)
    for key in ("combinations.recall", "combinations.precision_falls", "combinations.memorised"):
        assert found.verdict(key).label in ("agrees 4/4", "agrees 2/2")


def test_network_size_rows_group_by_width():
    recs = _combination_records("wgan_gp") + _combination_records("wgan_gp", params={"width": 4})
    rows = findings.combination_rows_by({"pie_combos": recs}, by="width", default_only=False)["pie"]
    assert {r["group"] for r in rows} == {"width 4", f"width {PRESETS['cpu'].width}"}
    found = findings.combination_findings({"pie_combos": recs})
    # at 10 combinations both widths memorise (same precision); at 400 both are at chance, which says nothing
    assert found.verdict("combinations.width").label == "partly 1/2"
    assert found.verdict("combinations.width").reasons[0] == (  # which cause, not "at chance, or the noise"
        "1 of 2 undecided (pie WGAN-GP at 400): a size is at chance precision (pie WGAN-GP at 400)")


def test_a_size_whose_seeds_disagree_is_undecided_by_the_noise_not_at_chance():
    """Two widths at 10 combinations, two seeds each: seed 0 memorises (precision 1), seed 1 adds 20 new combinations
    (precision 1/3). Far above chance (lift ~0.67), but two seeds this far apart make the noise reach chance: the
    claim is undecided because of the noise, and the reason must not call the setting "at chance"."""
    rng = np.random.default_rng(1)
    support = np.sort(rng.choice(2025, 10, replace=False))
    new = np.setdiff1d(np.arange(2025), support)[:20]
    recs = []
    for params in (None, {"width": 4}):
        recs.append(_record("pie_combos", "wgan_gp", 10, np.repeat(support, 100), 2025, support=support,
                            params=params))
        recs.append(_record("pie_combos", "wgan_gp", 10, np.concatenate([np.repeat(support, 100), np.repeat(new, 30)]),
                            2025, support=support, seed=1, params=params))  # 62% on training: passes its gate
    points = findings.combination_points(recs)
    assert all(p["lift"] > 0.5 and not findings.above_chance(p) for p in points)  # far above chance, noise wide
    width = findings.combination_findings({"pie_combos": recs}).verdict("combinations.width")
    assert width.status == findings.NOT_TESTABLE and width.reasons[0] == findings.WITHIN_NOISE


def test_pair_grid_rows():
    exp = EXPERIMENTS["clevr_pairs_4x4"]
    support = exp.support("shape", 0)
    same = _record("clevr_pairs_4x4", "vae", "shape", np.repeat(support, 50), 16, support=support)
    even = _record("clevr_pairs_4x4", "wgan_gp", "shape", np.repeat(np.arange(16), 50), 16, support=support)
    rows = {r["model"]: r for r in analysis.pair_grid_rows([same, even], exp.grid)}
    assert rows["vae"]["rare_novel"] == 0 and max(rows["vae"]["marginal_tv"]) < 1e-12
    assert rows["vae"]["rare_line"] == 1 and rows["vae"]["rare_even"] == 0.75
    assert abs(rows["wgan_gp"]["rare_novel"] - 0.75) < 1e-12
    found = findings.clevr_findings({"clevr_pairs_4x4": [same, even]})
    assert "below 0.25 in 1 of 2 settings" in str(found)
    assert found.verdict("clevr_pairs.few_4x4").label == "partly 1/2"
    assert found.verdict("clevr_pairs.few_4x4").reasons == ("against the claim: 4x4 WGAN-GP rare shape",)


def test_pair_grid_rows_leave_out_a_seed_with_nothing_measured():
    """A seed whose scenes were all refused adds no mass to the shares; with only such seeds the generated shares are
    unknown ("–" in the table), not 0."""
    exp = EXPERIMENTS["clevr_pairs_4x4"]
    support = exp.support("shape", 0)
    measured = _record("clevr_pairs_4x4", "vae", "shape", np.repeat(support, 50), 16, support=support)
    refused = _record("clevr_pairs_4x4", "vae", "shape", np.full(100, -1), 16, support=support, seed=1)
    (alone,) = analysis.pair_grid_rows([measured], exp.grid)
    (both,) = analysis.pair_grid_rows([measured, refused], exp.grid)
    assert both["seeds"] == 2 and both["rare_share"] == alone["rare_share"] > 0
    np.testing.assert_array_equal(both["joint"], alone["joint"])
    (none,) = analysis.pair_grid_rows([refused], exp.grid)
    assert np.isnan(none["rare_share"]) and np.isnan(none["novel_mass"]) and np.isnan(none["rare_novel"])
    shown = findings.clevr_pair_table({"clevr_pairs_4x4": [none]}).rows[0]
    assert [c.text for c in shown[7:11]] == ["–", "–", "0.75", "–"] and shown[11].text == "100%"
    from probe_utils import plots

    fig = plots.pair_grids({"clevr_pairs_4x4": [none]}, [refused])
    assert any("novel mass –" in ax.get_title() for ax in fig.axes)
    plots.plt.close(fig)


def test_independence_findings():
    centres = EXPERIMENTS["indep_red"].centres
    modes = lambda sd: sum(np.exp(-0.5 * ((centres - v) / sd) ** 2) for v in (0.3, 0.4, 0.9))  # noqa: E731
    recs = []
    for k, d in ((1, modes(0.015)), (10, modes(0.015)), (50, modes(0.025))):
        recs.append({"experiment": "indep_red", "model": "vae", "value": k, "seed": 0, "preset": "cpu",
                     "result": {"distribution": (d / d.sum()).tolist(), "n_samples": 4000}})
    (row,) = analysis.independence_rows(recs, centres)
    assert row["ks"] == [1, 10, 50] and row["rows"][1]["tv"] < 1e-12 and row["rows"][2]["sd"] > row["rows"][0]["sd"]
    found = findings.independence_findings({"indep_red": recs})
    assert "larger with the most nuisance values than with the fewest in 1 of 1 settings" in str(found)
    assert found.verdict("independence.variance_rises").label == "agrees 1/1"
    # with 4,000 samples per response a clear widening drives the chi-square p below the smallest float: it is
    # computed as 0, which the table does not print as "0"
    d = modes(0.06)
    wide = recs[:2] + [{**recs[2], "result": {"distribution": (d / d.sum()).tolist(), "n_samples": 4000}}]
    assert analysis.independence_rows(wide, centres)[0]["p_value"] == 0
    table = findings.independence_table({"indep_red": wide})
    assert [c.text for c in table.rows[0]][table.columns.index("χ² p")] == "< 1e-300"


def test_provenance_table_lists_a_record_once():
    rec = {"experiment": "pie_combos", "model": "vae", "value": 10, "seed": 0, "preset": "cpu", "key": "k1",
           "provenance": {"device": "cpu", "steps": 5, "wall_s": 1.0, "torch": "2", "code_version": "0",
                          "created": "now"}}
    table = findings.provenance_table([rec, dict(rec)])
    assert str(table).count("| VAE |") == 1 and len(table) == 1
    assert "width" not in str(table).splitlines()[0]
    wide = {**rec, "key": "k2", "params": {"width": 32}}  # the same setting at another network width
    header = str(findings.provenance_table([{**rec, "params": {"width": 16}}, wide])).splitlines()[0]
    assert "| seed | width | preset |" in header and "training images" not in header
    # the commit, shortened, keeps the mark of code that differed from it
    dirty = {**rec, "provenance": {**rec["provenance"], "git_commit": "0123456789abcdef0123+dirty"}}
    assert "| 0123456789ab+dirty |" in str(findings.provenance_table([dirty]))
    assert "| 0123456789ab |" in str(findings.provenance_table([{**dirty, "provenance": {
        **rec["provenance"], "git_commit": "0123456789abcdef0123"}}]))


def test_rows_whose_runs_fail_their_gate_are_counted_and_drawn_hollow():
    import matplotlib.pyplot as plt

    from probe_utils import plots

    recs = _combination_records() + _combination_records("wgan_gp")
    for r in recs:  # the WGAN-GP run at 10 combinations draws mostly unmeasurable images: its family is not scored
        if r["model"] == "wgan_gp" and r["value"] == 10:
            ids = np.repeat(r["result"]["train_support"], 10)
            r.update(_record("pie_combos", "wgan_gp", 10, np.concatenate([ids, [-1] * 900]), 2025,
                             support=r["result"]["train_support"]))
    rows = findings.combination_rows_by({"pie_combos": recs})
    failed = {(r["group"], r["n_train"]): r["gate_failed"] for r in rows["pie"]}
    assert failed == {("vae", 10): 0, ("vae", 400): 0, ("wgan_gp", 10): 1, ("wgan_gp", 400): 1}
    assert [line.rsplit("|", 2)[1].strip() for line in str(findings.combination_table(rows)).splitlines()[2:]] == \
        ["0", "0", "1", "1"]  # the last column: runs failing their gate
    fig = plots.precision_recall(rows)
    hollow = [ln for ln in fig.axes[0].lines if ln.get_markerfacecolor() == "white" and len(ln.get_xdata())]
    assert sorted(x for ln in hollow for x in ln.get_xdata()) == [10, 10, 400, 400]  # precision and recall
    assert plots.FAILED_GATE_LABEL in [t.get_text() for t in fig.legends[0].get_texts()]
    plt.close(fig)
    clean = plots.precision_recall(findings.combination_rows_by({"pie_combos": _combination_records()}))
    assert plots.FAILED_GATE_LABEL not in [t.get_text() for t in clean.legends[0].get_texts()]
    plt.close(clean)


def test_the_table_gives_precision_one_interval_within_the_range_a_share_takes():
    """Two seeds that disagree at 10 combinations: one memorises (precision 1), one also draws 20 new combinations
    (precision 1/3). The t interval over two seeds runs past both ends; the table shows it as one column, cut to
    [0, 1], the values a share can take."""
    memorised = _combination_records()
    new = np.setdiff1d(np.arange(2025), memorised[0]["result"]["train_support"])[:20]
    sup = memorised[0]["result"]["train_support"]
    gen = np.concatenate([np.repeat(sup, 100), np.repeat(new, 40)])  # 56% on training combinations: it passes
    rows = findings.combination_rows_by({"pie_combos": [*memorised, _record("pie_combos", "vae", 10, gen, 2025,
                                                                           support=sup, seed=1)]})["pie"]
    at10 = next(r for r in rows if r["n_train"] == 10)
    assert at10["runs"] == 2 and at10["precision"] == pytest.approx(2 / 3)
    assert analysis.mean_ci([1, 1 / 3])[1] < 0 and analysis.mean_ci([1, 1 / 3])[2] > 1
    assert (at10["precision_lo"], at10["precision_hi"]) == (0, 1)
    table = findings.combination_table({"pie": rows})
    column = table.columns.index("precision's 95% interval over seeds")
    assert [row[column].text for row in table.rows] == ["0.00–1.00", "–"]  # 400 combinations: one seed
    assert not any("CI" in c for c in table.columns)


def test_points_with_a_passing_seed_are_made_of_the_passing_seeds_only():
    """A setting with one passing and one failing seed: its point is the passing seed's (as the verdicts score
    it), drawn solid; the table counts the failing run it leaves out."""
    import matplotlib.pyplot as plt

    from probe_utils import plots

    good = _combination_records()
    bad = []
    for r in _combination_records():  # seed 1: mostly unmeasurable images, its gate fails
        sup = r["result"]["train_support"]
        ids = np.concatenate([np.repeat(np.arange(2025)[::7], 1), [-1] * 3000])
        bad.append(_record("pie_combos", "vae", r["value"], ids, 2025, support=sup, seed=1))
    rows = findings.combination_rows_by({"pie_combos": good + bad})["pie"]
    by = {r["n_train"]: r for r in rows}
    assert by[10]["precision"] == 1 and by[10]["recall"] == 1  # seed 0 alone (seed 1 would pull it down)
    assert [(r["runs"], r["left_out"], r["gate_failed"]) for r in rows] == [(1, 1, 0), (1, 1, 0)]
    table = findings.combination_table({"pie": rows})
    assert "precision's 95% interval over seeds" in table.columns and {row[5].text for row in table.rows} == {"–"}
    last = [line.split("|")[-3:-1] for line in str(findings.combination_table({"pie": rows})).splitlines()[2:]]
    assert [[c.strip() for c in cells] for cells in last] == [["1", "0"], ["1", "0"]]
    fig = plots.precision_recall({"pie": rows})
    assert not [ln for ln in fig.axes[0].lines if ln.get_markerfacecolor() == "white" and len(ln.get_xdata())]
    assert plots.FAILED_GATE_LABEL not in [t.get_text() for t in fig.legends[0].get_texts()]
    plt.close(fig)


def test_pair_grid_panels_of_runs_failing_their_gate_are_marked():
    import matplotlib.pyplot as plt

    from probe_utils import plots

    exp = EXPERIMENTS["clevr_pairs_4x4"]
    support = exp.support("shape", 0)
    good = _record("clevr_pairs_4x4", "vae", "shape", np.repeat(support, 50), 16, support=support)
    mush = _record("clevr_pairs_4x4", "wgan_gp", "shape", np.concatenate([np.repeat(support, 5), [-1] * 400]), 16,
                   support=support)  # mostly outside the grid: fails its gate
    rows = findings.clevr_pair_rows({"clevr_pairs_4x4": [good, mush]})
    fig = plots.pair_grids(rows, [good, mush])
    marked = [ax.get_title().split("\n")[0] for ax in fig.axes if plots.FAILED_PANEL_TITLE in ax.get_title()]
    assert marked == ["WGAN-GP"]
    plt.close(fig)
    fine = {**good, "model": "wgan_gp", "seed": 1, "key": "wgan_gp-1"}  # a passing seed: the panel is made of it
    rows = findings.clevr_pair_rows({"clevr_pairs_4x4": [good, mush, fine]})
    [wgan] = [r for r in rows["clevr_pairs_4x4"] if r["model"] == "wgan_gp"]
    assert wgan["seeds"] == 1 and wgan["invalid"] == 0 and wgan["novel_mass"] == 0
    fig = plots.pair_grids(rows, [good, mush, fine])
    assert not [ax for ax in fig.axes if plots.FAILED_PANEL_TITLE in ax.get_title()]
    plt.close(fig)


def test_pair_grid_titles_clear_each_other_and_the_row_above():
    import matplotlib.pyplot as plt

    from probe_utils import plots

    records = {}
    for name in ("clevr_pairs_4x4", "clevr_pairs_9x9"):
        exp = EXPERIMENTS[name]
        n_bins = int(name.rsplit("x", 1)[1]) ** 2
        records[name] = [_record(name, m, rare, np.concatenate([np.repeat(exp.support(rare, 0), 9), [-1] * 300]),
                                 n_bins, support=exp.support(rare, 0))
                         for m in ("wgan_gp", "vae", "pixelcnn") for rare in ("color", "shape")]
    fig = plots.pair_grids(findings.clevr_pair_rows(records), [r for recs in records.values() for r in recs])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = np.array(fig.axes).reshape(4, 4)
    for i, row in enumerate(axes):
        titles = sorted((ax.title.get_window_extent(renderer) for ax in row), key=lambda b: b.x0)
        assert all(a.x1 <= b.x0 for a, b in zip(titles, titles[1:])), f"two titles of row {i} overlap"
        if i:
            labels = [t.get_window_extent(renderer) for ax in axes[i - 1] for t in ax.get_xticklabels()]
            assert min(b.y0 for b in labels) > max(t.y1 for t in titles), f"row {i}'s titles run into the row above"
    assert fig.get_size_inches()[0] <= plots.MAX_WIDTH_IN + 1e-6 and plots.smallest_text_pt(fig) >= plots.MIN_FONT_PT
    plt.close(fig)


def test_failing_runs_of_two_experiments_are_told_apart():
    recs = []
    for name in ("clevr_pairs_4x4", "clevr_pairs_9x9"):
        support = EXPERIMENTS[name].support("shape", 0)
        n_bins = int(name.rsplit("x", 1)[1]) ** 2
        recs.append(_record(name, "wgan_gp", "shape", np.concatenate([support, [-1] * 400]), n_bins, support=support))
    _, failed = findings.split_by_gate(recs)
    assert len(failed) == 2
    note = findings.gate_note(recs, failed)
    assert "WGAN-GP 4x4 shape, seed 0" in note and "WGAN-GP 9x9 shape, seed 0" in note
    assert findings.gate_reasons(failed) == ("2 runs fail their training-health gate (WGAN-GP 4x4 shape; "
                                             "WGAN-GP 9x9 shape)",)
    # one run: singular; a verdict over both grids names the grid even where only one of its runs fails
    assert findings.gate_reasons(failed[:1], recs) == ("1 run fails its training-health gate (WGAN-GP 4x4 shape)",)
    one = findings.gate_note(recs[:1], failed[:1])  # one experiment: the value alone names the setting
    assert "WGAN-GP shape, seed 0" in one


def test_gate_note_names_an_experiment_once_for_its_values():
    """Two values of one experiment failing for one reason at the same seed: "WGAN-GP 4x4 shape, color, seed 0", not
    the experiment's name before each value."""
    recs = []
    for name, value in (("clevr_pairs_4x4", "shape"), ("clevr_pairs_4x4", "color"), ("clevr_pairs_9x9", "shape")):
        support = EXPERIMENTS[name].support(value, 0)
        n_bins = int(name.rsplit("x", 1)[1]) ** 2
        recs.append(_record(name, "wgan_gp", value, np.concatenate([support, [-1] * 400]), n_bins, support=support))
    _, failed = findings.split_by_gate(recs)
    note = findings.gate_note(recs, failed)
    assert "WGAN-GP 4x4 shape, color, seed 0:" in note and "WGAN-GP 9x9 shape, seed 0:" in note, note
