"""The figures' house style: no text below MIN_FONT_PT, no figure wider than MAX_WIDTH_IN, enforced on every figure
the plots module returns (the browser test checks how large the built book shows them)."""

import ast
import inspect

import matplotlib.pyplot as plt
import pytest

from probe_utils import plots


def test_house_style_raises_small_text_and_narrows_wide_figures():
    fig, ax = plt.subplots(figsize=(12, 4))
    ax.set_title("title", fontsize=6)
    ax.text(0.5, 0.5, "label", fontsize=4)
    ax.text(0.1, 0.1, "big", fontsize=14)
    ax.plot([0, 1], label="line")
    ax.legend(fontsize=5)
    assert plots.smallest_text_pt(fig) < plots.MIN_FONT_PT
    out = plots.house_style(fig)
    assert out is fig
    assert plots.smallest_text_pt(fig) == plots.MIN_FONT_PT
    w, h = fig.get_size_inches()
    assert w == pytest.approx(plots.MAX_WIDTH_IN) and h == pytest.approx(4 * plots.MAX_WIDTH_IN / 12)
    assert max(t.get_fontsize() for t in ax.texts) == 14  # larger text is left alone
    plt.close(fig)


def test_text_is_legible_in_the_book_column():
    # at MAX_WIDTH_IN and DPI (plus a quarter inch the tight crop may add), a figure shown in the book's text column
    # (672 px at a 1280 px window) keeps MIN_FONT_PT text at MIN_TEXT_PX; the browser test measures the built book
    scale = min(1.0, 672 / ((plots.MAX_WIDTH_IN + 0.25) * plots.DPI))
    assert plots.MIN_FONT_PT * plots.DPI / 72 * scale >= plots.MIN_TEXT_PX


def _figure_functions():
    for name, fn in inspect.getmembers(plots, inspect.isfunction):
        if fn.__module__ == plots.__name__ and not name.startswith("_") and name not in ("house_style",):
            ret = inspect.signature(fn).return_annotation
            if "Figure" in str(ret):
                yield name, fn


@pytest.mark.parametrize("name, fn", list(_figure_functions()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_figure_goes_through_the_house_style(name, fn):
    tree = ast.parse(inspect.getsource(fn).strip())
    styled = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    others = {n for n, _ in _figure_functions()} - {name}
    helpers = {n for n, f in inspect.getmembers(plots, inspect.isfunction)  # private helpers that apply it
               if n.startswith("_") and f.__module__ == plots.__name__ and "house_style(" in inspect.getsource(f)}
    assert "house_style" in styled or styled & (others | helpers), \
        f"plots.{name} returns figures without plots.house_style"


def test_retile_keeps_the_tiles_in_order():
    import numpy as np

    images = np.stack([np.full((3, 6, 6), k / 16) for k in range(16)])
    grid = plots.image_grid(images, cols=8)
    again = plots.retile(grid, cols=8, new_cols=4, limit=8)
    assert again.shape == plots.image_grid(images[:8], cols=4).shape
    assert np.array_equal(again, plots.image_grid(images[:8], cols=4))


@pytest.mark.parametrize("value, label", [(None, "?"), (float("nan"), "?"), (3.0, "3"), (0.349, "0.35"),
                                          (5, "5"), ("new", "new")])
def test_tile_labels(value, label):
    assert plots.tile_label(value) == label


def test_recipe_curves_stay_in_the_text_column_with_many_families():
    """Six families of recipe-search entries (long legends): the saved figure (tight crop, as the book saves it) is no
    wider than MAX_WIDTH_IN plus the quarter inch the crop may add, so its text stays legible in the column."""
    import io

    from PIL import Image

    families = ["wgan_gp", "vae", "wgan_gp_fc", "vae_fc", "pixelcnn", "diffusion"]
    probes = [{"wall_s": 60.0 * m, "exact": 0.1 * m} for m in range(1, 8)]
    results = [{"name": f"{fam}_entry_with_a_long_name_{i}", "model": fam, "count": 1, "seed": 0, "probes": probes}
               for fam in families for i in range(3)]
    fig = plots.recipe_curves(results)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=plots.DPI, bbox_inches="tight")
    plt.close(fig)
    width = Image.open(io.BytesIO(buf.getvalue())).size[0]
    assert width <= (plots.MAX_WIDTH_IN + 0.25) * plots.DPI, width


def _six_families() -> list[dict]:
    from probe_utils.models import FAMILIES
    from test_findings_rules import counts, rec

    return [rec("numerosity", k, counts({k - 1: 0.2, k: 0.5, k + 1: 0.3}), model=m, seed=s)
            for m in list(FAMILIES)[:6] for k in (1, 3) for s in (0, 1)]


def _legend_below_every_panel(fig) -> list[str]:
    fig.canvas.draw()
    (legend,) = fig.legends
    box = legend.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width  # within the figure: it does not widen the saved image
    for ax in fig.axes:
        if ax.get_visible():
            assert box.y1 <= ax.get_tightbbox().y0 + 1  # below each panel and its axis labels: it covers no data
    assert fig.get_size_inches()[0] <= plots.MAX_WIDTH_IN + 1e-6 and plots.smallest_text_pt(fig) >= plots.MIN_FONT_PT
    return [t.get_text() for t in legend.get_texts()]


def test_convergence_legend_sits_below_the_panels_and_tells_families_apart():
    records = _six_families()
    fig = plots.convergence(records)
    labels = _legend_below_every_panel(fig)
    assert labels[:2] == ["trained on 1", "trained on 3"] and len(labels) == 2 + 6
    # no two families share a line style (the dash pattern itself: get_linestyle says '--' for any custom dashes)
    styles = [str(getattr(h, "_unscaled_dash_pattern", h.get_linestyle())) for h in fig.legends[0].legend_handles[2:]]
    assert len(set(styles)) == 6
    plt.close(fig)


def test_response_and_mean_figures_keep_their_legend_off_the_data():
    records = _six_families()
    fig = plots.impulse_response(records)
    assert _legend_below_every_panel(fig) == ["trained on 1", "trained on 3"]
    assert sum(ax.get_visible() for ax in fig.axes) == 6
    assert len({round(ax.get_position().y0, 3) for ax in fig.axes}) == 2  # two rows of three
    plt.close(fig)
    four = [r for r in records if r["model"] in {r["model"] for r in records[:16]}]  # 4 families: two by two
    fig = plots.impulse_response(four)
    assert len(fig.axes) == 4 and len({round(ax.get_position().x0, 3) for ax in fig.axes}) == 2
    plt.close(fig)
    fig = plots.mean_spread(records)
    assert "generated = trained" in _legend_below_every_panel(fig)
    plt.close(fig)


def _legends_off_the_panels(fig) -> int:
    """How many legends ``fig`` has; each must lie outside every visible panel's plotting area."""
    fig.canvas.draw()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    for legend in legends:
        box = legend.get_window_extent()
        for ax in fig.axes:
            if ax.get_visible():
                assert not box.overlaps(ax.get_window_extent()), f"a legend covers the panel {ax.get_title()!r}"
    assert plots.smallest_text_pt(fig) >= plots.MIN_FONT_PT
    plt.close(fig)
    return len(legends)


def test_feature_figures_keep_their_legends_off_the_data():
    import numpy as np

    from test_findings_rules import gauss, rec

    pie = {"pie_red": [rec("pie_red", v, gauss("pie_red", v, 0.05), model=m) for m in ("wgan_gp", "vae")
                       for v in (0.1, 0.5, 0.9)],
           "pie_size": [rec("pie_size", v, gauss("pie_size", v, 0.05), model=m) for m in ("wgan_gp", "vae")
                        for v in (0.5, 0.6, 0.7)]}
    assert _legends_off_the_panels(plots.feature_responses(pie)) == 2  # one per feature column
    indep = {"indep_red": [rec("indep_red", k, gauss("indep_red", 0.5, 0.2), model=m) for m in ("wgan_gp", "vae")
                           for k in (1, 10, 50)]}
    assert _legends_off_the_panels(plots.independence(indep)) == 1
    centres = np.linspace(0.01, 0.99, 50)
    bump = np.exp(-0.5 * ((centres - 0.6) / 0.2) ** 2)
    conv = [{"model": m, "value": v, "window": (0.55, 0.65), "predicted": bump, "actual": bump, "tv": 0.1,
             "ratio": 1.0} for m in ("wgan_gp", "vae") for v in ("0.3+0.9", "0.3+0.4")]
    assert _legends_off_the_panels(plots.convolution_effect(conv, centres)) == 1
    pr = {"pie": [{"group": m, "n_train": n, "chance_precision": 0.1, **{f"{k}{x}": 0.5 for k in ("precision", "recall")
                                                                         for x in ("", "_lo", "_hi")}}
                  for m in ("wgan_gp", "vae") for n in (10, 50, 200)]}
    assert _legends_off_the_panels(plots.precision_recall(pr)) == 1


def test_sample_grids_titles_do_not_run_into_each_other():
    import numpy as np

    from probe_utils.models import FAMILIES
    from probe_utils.store import image_grid, png_base64

    grid = png_base64(image_grid(np.ones((8, 3, 32, 32), np.float32), cols=4))
    records = [{"model": m, "value": v, "seed": 0, "result": {"sample_grid_png": grid, "sample_values": [v] * 8}}
               for m in list(FAMILIES)[:6] for v in (1, 8)]
    fig = plots.training_vs_generated(records, lambda v, n: (np.ones((n, 3, 32, 32), np.float32), [v] * n))
    fig.canvas.draw()
    for row in range(2):
        boxes = sorted((ax.title.get_window_extent() for ax in fig.axes[7 * row:7 * row + 7]), key=lambda b: b.x0)
        assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), "two titles of a row overlap"
    assert fig.get_size_inches()[0] <= plots.MAX_WIDTH_IN + 1e-6 and plots.smallest_text_pt(fig) >= plots.MIN_FONT_PT
    plt.close(fig)
    for rec in records:  # the slider's frames: the same row of sample grids above the distributions
        rec["result"].update(distribution=[0.0, 0.5, 0.5] + [0.0] * 10, n_samples=100, invalid_share=0.0, probes=[])
    fig = plots.response_frames(records, lambda v, n: (np.ones((n, 3, 32, 32), np.float32), [v] * n))[0][1]
    fig.canvas.draw()
    boxes = sorted((ax.title.get_window_extent() for ax in fig.axes[:7]), key=lambda b: b.x0)
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), "two titles of the slider's row overlap"
    plt.close(fig)


def test_column_legends_narrow_to_fit_between_their_neighbours():
    """Legends under each column (feature responses) take fewer columns when their labels are long, so they neither
    overlap each other nor widen the figure."""
    import numpy as np

    from test_findings_rules import gauss, rec

    values = {"pie_red": (0.123456, 0.234567, 0.345678, 0.456789, 0.567891), "pie_size": (0.512345, 0.612345, 0.712345),
              "pie_location": (-0.112345, 0.012345, 0.112345)}
    records = {name: [rec(name, v, gauss(name, v, 0.05), model=m) for m in ("wgan_gp", "vae") for v in vs]
               for name, vs in values.items()}
    fig = plots.feature_responses(records)
    fig.canvas.draw()
    boxes = sorted((ax.get_legend().get_window_extent() for ax in fig.axes if ax.get_legend()), key=lambda b: b.x0)
    assert len(boxes) == 3
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), "two column legends overlap"
    assert boxes[0].x0 >= 0 and boxes[-1].x1 <= fig.bbox.width
    assert fig.get_size_inches()[0] <= plots.MAX_WIDTH_IN + 1e-6
    plt.close(fig)
    indep = {name.replace("pie_", "indep_"): [rec(name.replace("pie_", "indep_"), k, gauss(name.replace("pie_", "indep_"),
                                                                                              vs[0], 0.05), model=m)
                                              for m in ("wgan_gp", "vae") for k in (1, 10, 50)]
             for name, vs in values.items()}
    for fig in (plots.feature_responses(records), plots.independence(indep)):  # panel titles: in the figure, apart
        fig.canvas.draw()
        for row in np.array(fig.axes[:6]).reshape(2, 3):
            titles = sorted((ax.title.get_window_extent() for ax in row), key=lambda b: b.x0)
            assert all(a.x1 <= b.x0 for a, b in zip(titles, titles[1:])), [ax.get_title() for ax in row]
            assert titles[0].x0 >= 0 and titles[-1].x1 <= fig.bbox.width, [ax.get_title() for ax in row]
        plt.close(fig)


def test_trained_value_arrows_never_run_through_a_tick_label():
    """The arrows under the x axis (the paper's trained-value marks) end above the tick labels."""
    from matplotlib.text import Annotation

    from test_findings_rules import gauss, rec

    indep = {"indep_red": [rec("indep_red", k, gauss("indep_red", 0.5, 0.2), model=m) for m in ("wgan_gp", "vae")
                           for k in (1, 10, 50)]}
    for fig in (plots.impulse_response(_six_families()), plots.independence(indep)):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        checked = 0
        for ax in fig.axes:
            arrows = [a for a in ax.texts if isinstance(a, Annotation) and a.arrow_patch is not None]
            labels = [t for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
            for a in arrows:
                box = a.arrow_patch.get_window_extent(renderer)
                for t in labels:
                    assert not box.overlaps(t.get_window_extent(renderer)), f"an arrow runs through {t.get_text()!r}"
                    checked += 1
        assert checked
        plt.close(fig)


def test_runs_failing_their_gate_are_marked_in_every_kind_of_figure():
    """A run that fails its training-health gate is shown but marked: its sample grid's title says so, its response
    is dotted (with a legend entry), its summary point hollow; runs that pass are drawn as before."""
    import numpy as np

    from probe_utils.store import image_grid, png_base64
    from test_findings_rules import gauss, rec

    def counts(k, mode):
        d = np.zeros(20)
        d[mode] = 1.0
        r = rec("numerosity", k, d, model="vae")
        r["result"].update(sample_grid_png=png_base64(image_grid(np.ones((8, 3, 32, 32), np.float32), cols=4)),
                           sample_values=[mode] * 8)
        return r

    good, bad = counts(1, 1), counts(3, 5)  # trained on 3, draws 5: fails its gate (wrong mode)
    assert plots.failing_runs([good, bad]) == {("vae", 3, 0)}
    fig = plots.training_vs_generated([good, bad], lambda v, n: (np.ones((n, 3, 32, 32), np.float32), [v] * n))
    titles = [ax.get_title() for ax in fig.axes]
    assert sum(t.endswith(plots.FAILED_PANEL_TITLE) for t in titles) == 1 and "on 3" in \
        next(t for t in titles if t.endswith(plots.FAILED_PANEL_TITLE))
    plt.close(fig)
    fig = plots.impulse_response([good, bad])
    styles = {ln.get_color(): ln.get_linestyle() for ln in fig.axes[0].lines if len(ln.get_xdata())}
    assert sorted(styles.values()) == ["-", ":"]
    assert plots.FAILED_LINE_LABEL in [t.get_text() for t in fig.legends[0].get_texts()]
    plt.close(fig)
    fig = plots.mean_spread([good, bad])
    hollow = [ln for ln in fig.axes[0].lines if ln.get_markerfacecolor() == "white" and len(ln.get_xdata())]
    assert [float(x) for ln in hollow for x in ln.get_xdata()] == [3.0]
    plt.close(fig)
    red = [rec("pie_red", 0.3, gauss("pie_red", 0.3, 0.05)), rec("pie_red", 0.7, gauss("pie_red", 0.7, 0.05),
                                                                   invalid=0.9)]  # mostly unmeasurable
    fig = plots.feature_responses({"pie_red": red})
    assert sorted(ln.get_linestyle() for ln in fig.axes[0].lines if len(ln.get_xdata())) == ["-", ":"]
    assert plots.FAILED_LINE_LABEL in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)
    fig = plots.feature_responses({"pie_red": red[:1]})  # nothing fails: no dotted line, no entry
    assert plots.FAILED_LINE_LABEL not in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)
    # one seed fails, another passes: the line is the passing seed's response, solid (what the verdicts score)
    passing = rec("pie_red", 0.5, gauss("pie_red", 0.5, 0.05), seed=0)
    failing = rec("pie_red", 0.5, gauss("pie_red", 0.2, 0.05), seed=1, invalid=0.9)
    fig = plots.feature_responses({"pie_red": [passing, failing]})
    (line,) = [ln for ln in fig.axes[0].lines if len(ln.get_xdata())]
    assert line.get_linestyle() == "-" and int(np.argmax(line.get_ydata())) == int(np.argmax(passing["result"]["distribution"]))
    assert plots.FAILED_LINE_LABEL not in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)
    again = {**good, "seed": 1, "key": "vae-1-seed1"}  # trained on 1: two passing seeds; on 3: one of two passes
    fine = {**counts(3, 3), "seed": 1, "key": "vae-3-seed1"}
    fig = plots.impulse_response([good, again, bad, fine])
    assert fig.axes[0].get_title() == "VAE (1–2 seeds)"  # the failing seed at 3 is left out of its line
    plt.close(fig)
    assert plots.seeds_text([3, 3]) == "3 seeds" and plots.seeds_text([1]) == "1 seed"


def test_combination_frames_fit_four_families_with_the_legend_off_the_panels():
    import numpy as np

    from probe_utils import findings
    from probe_utils.store import image_grid, png_base64
    from test_findings_rules import rec

    grid = png_base64(image_grid(np.ones((8, 3, 32, 32), np.float32), cols=4))
    records = []
    for m in ("wgan_gp", "vae", "pixelcnn", "diffusion"):
        for k in (10, 50):
            support = list(range(k))
            d = np.zeros(2025)
            d[support] = 1.0
            r = rec("pie_combos", k, d, model=m, support=support, invalid=0.9 if m == "pixelcnn" else 0.0)
            r["result"].update(sample_grid_png=grid, sample_status=["train"] * 8)
            records.append(r)
    rows = findings.combination_rows_by({"pie_combos": records})["pie"]
    frames = plots.combination_frames(records, rows, lambda v, n: (np.ones((n, 3, 32, 32), np.float32), None))
    assert [name for name, _ in frames] == ["10", "50"]
    fig = frames[0][1]
    titles = [ax.get_title() for ax in fig.axes]
    failed = [t for t in titles if t.endswith(plots.FAILED_PANEL_TITLE)]
    assert failed == [f"PixelCNN samples\n{plots.FAILED_PANEL_TITLE}"]
    assert sum(t.endswith("samples") or t.endswith(plots.FAILED_PANEL_TITLE) for t in titles) == 4
    assert fig.get_size_inches()[0] <= plots.MAX_WIDTH_IN + 1e-6
    assert _legends_off_the_panels(fig) == 1
    plt.close(frames[1][1])


def test_convolution_panels_of_runs_failing_their_gate_are_marked():
    from probe_utils import analysis
    from probe_utils.experiments import EXPERIMENTS
    from test_findings_rules import gauss, rec

    centres = EXPERIMENTS["pie_red"].centres
    uni = [rec("pie_red", v, gauss("pie_red", v, 0.05)) for v in (0.3, 0.4, 0.9)]
    mix = [rec("pie_red_mix", "0.3+0.9", gauss("pie_red", 0.3, 0.05) + gauss("pie_red", 0.9, 0.05), invalid=0.8),
           rec("pie_red_mix", "0.3+0.4", gauss("pie_red", 0.35, 0.06))]
    rows = analysis.convolution_rows(uni, mix, centres)
    fig = plots.convolution_effect(rows, centres, uni + mix)
    marked = {ax.get_title().split(":")[1].strip(): ax.lines[1].get_linestyle() for ax in fig.axes if ax.get_visible()}
    assert marked == {f"trained on red 0.3 or 0.9\n{plots.FAILED_PANEL_TITLE}": ":", "trained on red 0.3 or 0.4": "-"}
    plt.close(fig)
    fig = plots.convolution_effect(rows, centres)  # without the records nothing is judged
    assert not any(plots.FAILED_PANEL_TITLE in ax.get_title() for ax in fig.axes)
    plt.close(fig)


def test_a_convolution_panel_shows_the_tv_digits_that_decide_the_match():
    import numpy as np

    centres = np.linspace(0.01, 0.99, 50)
    bump = np.exp(-0.5 * ((centres - 0.6) / 0.2) ** 2)
    conv = [{"model": "vae", "value": v, "window": (0.55, 0.65), "predicted": bump, "actual": bump, "tv": tv,
             "ratio": 1.0} for v, tv in (("0.3+0.9", 0.2496), ("0.1+0.9", 0.1234))]
    fig = plots.convolution_effect(conv, centres)
    texts = {ax.get_title().split("red ")[1]: t.get_text().split("\n")[0] for ax in fig.axes if ax.get_visible()
             for t in ax.texts if t.get_text().startswith("TV")}
    assert texts == {"0.3 or 0.9": "TV 0.2496", "0.1 or 0.9": "TV 0.12"}  # 0.2496 is below 0.25, "0.25" is not
    plt.close(fig)


def test_precision_recall_keeps_each_group_in_one_colour_across_panels():
    def rows(groups):
        return [{"group": g, "n_train": n, "chance_precision": 0.1,
                 **{f"{k}{x}": 0.5 for k in ("precision", "recall") for x in ("", "_lo", "_hi")}}
                for g in groups for n in (10, 50)]

    fig = plots.precision_recall({"pie": rows(["pixelcnn", "vae", "wgan_gp"]), "mnist3": rows(["vae", "wgan_gp"])})
    colours = [{ln.get_label(): ln.get_color() for ln in ax.lines if ln.get_label() in ("VAE", "WGAN-GP")}
               for ax in fig.axes[:2]]
    assert colours[0] == colours[1] and len(set(colours[0].values())) == 2
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:3] == ["WGAN-GP", "VAE", "PixelCNN"]  # the book's order of families
    plt.close(fig)


def test_training_curves_of_runs_failing_their_gate_are_faded():
    import numpy as np

    from test_findings_rules import rec

    def counts(k, mode):
        d = np.zeros(20)
        d[mode] = 1.0
        r = rec("numerosity", k, d, model="vae")
        r["result"]["probes"] = [{"step": 100, "dist": d.tolist(), "tv": None}, {"step": 200, "dist": d.tolist(),
                                                                                 "tv": 0.0}]
        return r

    fig = plots.convergence([counts(1, 1), counts(3, 5)])  # the run trained on 3 draws 5: it fails its gate
    alphas = sorted(ln.get_alpha() or 1.0 for ln in fig.axes[0].lines if len(ln.get_xdata()))
    assert alphas == [plots.FADED, 1.0]
    assert plots.FAILED_FADED_LABEL in [t.get_text() for t in fig.legends[0].get_texts()]
    plt.close(fig)


def test_feature_panels_say_how_many_seeds_are_behind_their_lines():
    """Feature-response and independence panels name the seeds behind their lines on the title's second line; a
    setting whose failing seed is left out shows fewer."""
    from test_findings_rules import gauss, rec

    red = [rec("pie_red", v, gauss("pie_red", v, 0.05), seed=s) for v in (0.3, 0.5) for s in (0, 1)]
    red.append(rec("pie_red", 0.3, gauss("pie_red", 0.3, 0.05), seed=2, invalid=0.9))  # fails its gate: left out
    fig = plots.feature_responses({"pie_red": red})
    assert fig.axes[0].get_title().split("\n")[1] == "2 seeds"
    plt.close(fig)
    indep = [rec("indep_red", k, gauss("indep_red", 0.4, 0.05), seed=s) for k in (1, 50) for s in (0, 1, 2)][:-1]
    fig = plots.independence({"indep_red": indep})
    assert fig.axes[0].get_title().split("\n")[1] == "2–3 seeds"  # k = 50 has two seeds
    plt.close(fig)
