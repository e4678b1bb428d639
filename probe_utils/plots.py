"""Figures in one house style, from store records. Each function returns the matplotlib Figure.

House style: a figure is drawn for the book's text column (about 670 px wide in a 1280 px window), at most
:data:`MAX_WIDTH_IN` inches wide at :data:`DPI`, with no text smaller than :data:`MIN_FONT_PT`, so that every label
is at least :data:`MIN_TEXT_PX` pixels tall on the page (:func:`house_style` enforces both on every figure)."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import matplotlib.pyplot as plt
import matplotlib.layout_engine
import matplotlib.text
import numpy as np
import torch

from probe_utils.analysis import impulse_responses, prototype_index_text, summary_rows
from probe_utils.models import FAMILIES, label as family_label, order as family_order
from probe_utils.store import image_grid, png_decode  # noqa: F401  (image_grid: plots.image_grid)

PALETTE = ["#1b6ca8", "#d1495b", "#2e933c", "#edae49", "#6c4f9e", "#00798c", "#8d6a5a", "#3d3d3d",
           "#e07a5f", "#81b29a", "#f2cc8f", "#5a7d9a", "#b5838d", "#6d597a", "#355070", "#b56576"]

#: Resolution of every figure (inline output and slider frames), in pixels per inch.
DPI = 100
#: Widest figure, in inches: at DPI it fits the book's text column (about 670 px) with little scaling.
MAX_WIDTH_IN = 7.8
#: Smallest font size in any figure, in points.
MIN_FONT_PT = 9
#: Smallest text height, in CSS pixels, a figure may show in the book's text column at a 1280 px window.
MIN_TEXT_PX = 10

plt.rcParams.update({
    "figure.dpi": DPI, "savefig.dpi": DPI, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.25, "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10,
    "xtick.labelsize": MIN_FONT_PT, "ytick.labelsize": MIN_FONT_PT, "legend.fontsize": MIN_FONT_PT,
    "legend.title_fontsize": MIN_FONT_PT, "figure.titlesize": 11, "legend.frameon": False,
})


def house_style(fig: plt.Figure) -> plt.Figure:
    """Make ``fig`` follow the house style: text smaller than :data:`MIN_FONT_PT` is raised to it, a figure wider
    than :data:`MAX_WIDTH_IN` is scaled down to that width (keeping its aspect), and the layout is tightened."""
    w, h = fig.get_size_inches()
    if w > MAX_WIDTH_IN:
        fig.set_size_inches(MAX_WIDTH_IN, h * MAX_WIDTH_IN / w)
    for t in fig.findobj(matplotlib.text.Text):
        if t.get_text() and t.get_fontsize() < MIN_FONT_PT:
            t.set_fontsize(MIN_FONT_PT)
    if not isinstance(fig.get_layout_engine(), matplotlib.layout_engine.ConstrainedLayoutEngine):
        fig.tight_layout()  # a figure of fixed-aspect panels keeps its (compressed) constrained layout
    return fig


def smallest_text_pt(fig: plt.Figure) -> float:
    """The smallest font size (points) of any visible, non-empty text in ``fig`` (inf when it has none)."""
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text() and t.get_visible()]
    return min(sizes, default=float("inf"))


def _width(panels: float, per_panel: float) -> float:
    """Figure width for ``panels`` side by side, ``per_panel`` inches each, capped at :data:`MAX_WIDTH_IN`."""
    return min(MAX_WIDTH_IN, panels * per_panel)


def _arrow(ax, x: float, color: str = "0.2", depth: float = 0.14) -> None:
    """An arrow under the x axis pointing at a trained value (the paper's arrows); the tick labels move below the
    arrows, so that an arrow never runs through a label."""
    ax.annotate("", xy=(x, 0), xytext=(x, -depth), xycoords=("data", "axes fraction"),
                textcoords=("data", "axes fraction"), arrowprops=dict(arrowstyle="-|>", color=color, lw=1.5))
    height_pt = ax.get_position().height * ax.figure.get_figheight() * 72
    ax.tick_params(axis="x", pad=max(3.5, depth * height_pt + 2))


def _feature_panel(ax, exp, model: str, first_column: bool, last_row: bool, seeds: Sequence[int] = ()) -> None:
    """Limits, title and axis labels of one (model, feature) density panel; a panel with no curve says "not run".
    ``seeds``: how many seeds are behind each of its lines, named on the title's second line."""
    if not ax.lines:
        ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center", color="0.4")
        ax.set_yticks([])
    ax.set_xlim(exp.edges[0], exp.edges[-1])
    title = f"{family_label(model)}: {exp.label.split(' (')[0]}"  # the unit is on the x axis
    ax.set_title(f"{title}\n{seeds_text(seeds)}" if seeds else title)
    if first_column:
        ax.set_ylabel("density of generated images")
    if last_row:
        ax.set_xlabel(f"generated {exp.label}")


#: Sample panels beside others show this many images in this many columns, so that each tile is wide enough for
#: its label at MIN_FONT_PT (16 images in 8 columns leave about 30 px a tile in a three-panel row).
PANEL_IMAGES, PANEL_COLS = 8, 4


def tile_label(value: Any) -> str:
    """A tile's label: ``?`` for a refused (None or NaN) measurement, whole floats as integers, others to 2 decimals."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "?"
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else f"{value:.2f}"
    return str(value)


def retile(grid: np.ndarray, cols: int = 8, pad: int = 2, new_cols: int = PANEL_COLS,
           limit: int | None = PANEL_IMAGES) -> np.ndarray:
    """A grid of square tiles (as :func:`image_grid` makes and records store), laid out again in ``new_cols``
    columns, keeping its first ``limit`` tiles."""
    side = (grid.shape[1] - pad) // cols - pad
    rows = (grid.shape[0] - pad) // (side + pad)
    at = [pad + i * (side + pad) for i in range(max(rows, cols))]
    tiles = [grid[at[r]: at[r] + side, at[k]: at[k] + side] for r in range(rows) for k in range(cols)][:limit]
    return image_grid(np.stack(tiles).transpose(0, 3, 1, 2), cols=new_cols, pad=pad)


#: The legend entry of a hollow point: the runs behind it all fail their training-health gate (a point with a
#: passing run is drawn from its passing runs only).
FAILED_GATE_LABEL = "hollow: its runs fail their gate (not scored)"
#: The legend entry of a dotted response: some of the runs behind it fail their training-health gate (the
#: captions say so; the entry stays short to fit under one column of panels).
FAILED_LINE_LABEL = "dotted: not scored"
#: Opacity of a training curve whose run fails its training-health gate, and its legend entry.
FADED, FAILED_FADED_LABEL = 0.3, "faded: a run that fails its gate"
#: The last title line of a sample grid whose run fails its training-health gate.
FAILED_PANEL_TITLE = "fails its gate"


def failing_runs(records: Sequence[dict], siblings: Sequence[dict] | None = None) -> set[tuple[str, Any, Any]]:
    """(model, trained value, seed) of the runs among ``records`` that fail their training-health gate
    (:func:`probe_utils.findings.gate`; ``siblings``: the runs a gate may rest on, default ``records``). Records
    without an experiment that has a gate (e.g. hand-made ones) are not judged."""
    from probe_utils.findings import GATES, gate

    judged = [r for r in records if r.get("experiment") in GATES and "result" in r]
    sib = list(records if siblings is None else siblings)
    return {(r["model"], r["value"], r.get("seed")) for r in judged if not gate(r, sib).passed}


def _failing_settings(records: Sequence[dict], siblings: Sequence[dict] | None = None) -> set[tuple[str, Any]]:
    """(model, trained value) of the settings some of whose runs fail their gate."""
    return {(m, v) for m, v, _ in failing_runs(records, siblings)}


def _drawn(records: Sequence[dict], siblings: Sequence[dict] | None = None) -> tuple[list[dict], set[tuple[str, Any]]]:
    """What a response figure draws, so that it shows what the verdicts score: a setting (model, trained value) with
    a run that passes its gate is drawn from its passing runs only; a setting whose runs all fail is drawn from them
    all and returned among the settings to draw dotted (shown, not scored); :func:`probe_utils.findings.shown_runs`."""
    from probe_utils.findings import shown_runs

    sib = list(records if siblings is None else siblings)
    keep, _ = shown_runs(records, sib)
    return keep, {(m, v) for m, v, _ in failing_runs(keep, sib)}


def _hollow_failed(ax: plt.Axes, n: np.ndarray, y: np.ndarray, rows: list[dict], marker: str, color: Any,
                   ms: float) -> None:
    """Redraw as hollow the points of ``rows`` some of whose runs fail their training-health gate."""
    bad = np.array([bool(r.get("gate_failed")) for r in rows])
    if bad.any():
        ax.plot(n[bad], y[bad], marker, ls="none", mfc="white", mec=color, mew=1.2, ms=ms + 0.5, zorder=3)


def _show_grid(ax, grid: np.ndarray, values: Sequence, cols: int = 8, pad: int = 2, title: str = "",
               show_cols: int | None = None, limit: int | None = None) -> None:
    """Show a tiled ``grid`` (``cols`` columns) with each tile's label; ``show_cols``/``limit`` lay it out again."""
    if show_cols is not None and show_cols != cols or limit is not None:
        grid = retile(grid, cols, pad, show_cols or cols, limit)
        values, cols = list(values)[:limit], show_cols or cols
    ax.imshow(grid, interpolation="nearest")
    tile = (grid.shape[1] - pad) / cols
    for i, v in enumerate(values):
        r, k = divmod(i, cols)
        ax.text(pad + k * tile + 1, pad + r * tile + 1, tile_label(v), fontsize=MIN_FONT_PT, va="top", ha="left",
                color="black", bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.8))
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _failed_title(title: str, rec: dict, failing: set) -> str:
    """A sample grid's title, with a last line saying so when its run fails its gate."""
    return f"{title}\n{FAILED_PANEL_TITLE}" if (rec["model"], rec["value"], rec.get("seed")) in failing else title


def training_vs_generated(records: list[dict], render: Callable[[int, int], tuple[torch.Tensor, np.ndarray]],
                          seed: int = 0, n: int = 16, labels: str = "sample_values",
                          siblings: Sequence[dict] | None = None) -> plt.Figure:
    """One row per trained value: training images (left) and each model's generated images (titled in two short
    lines, so seven columns fit the page; a third, "fails its gate", when the run fails its training-health gate,
    judged among ``siblings``, default ``records``), each tile annotated with its measured feature
    (``labels="sample_status"``: train / new / ? for combinations records).
    ``render(value, n) -> (images, measured values)`` makes the training samples."""
    models = sorted({r["model"] for r in records}, key=family_order)
    values = sorted({r["value"] for r in records})
    failing = failing_runs(records, siblings)
    w = _width(1 + len(models), 2.8)
    row_h = w / (1 + len(models)) / PANEL_COLS * (PANEL_IMAGES // PANEL_COLS) + (0.75 if failing else 0.6)
    fig, axes = plt.subplots(len(values), 1 + len(models), figsize=(w, row_h * len(values)), squeeze=False)
    panel = dict(show_cols=PANEL_COLS, limit=PANEL_IMAGES)
    for i, v in enumerate(values):
        imgs, measured = render(v, n)
        _show_grid(axes[i, 0], image_grid(imgs), list(measured), title=f"training\n{v}", **panel)
        for j, m in enumerate(models):
            rec = next((r for r in records if r["model"] == m and r["value"] == v and r["seed"] == seed), None)
            rec = rec or next(r for r in records if r["model"] == m and r["value"] == v)
            res = rec["result"]
            _show_grid(axes[i, 1 + j], png_decode(res["sample_grid_png"]), res[labels],
                       title=_failed_title(f"{family_label(m)}\non {v}, seed {rec['seed']}", rec, failing), **panel)
    return house_style(fig)


def _legend_below(fig: plt.Figure, handles: Sequence[Any], ncol: int) -> plt.Figure:
    """Apply the house style, then put one legend of ``handles`` under all panels (so it covers no data), growing
    the figure by the room it needs."""
    house_style(fig)
    ncol = max(1, ncol)
    while True:  # as many columns as fit the figure's width (a wider legend would widen the saved figure)
        legend = fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, fontsize=MIN_FONT_PT,
                            handlelength=3)
        fig.canvas.draw()
        if ncol == 1 or legend.get_window_extent().width <= fig.bbox.width:
            break
        legend.remove()
        ncol -= 1
    room = legend.get_window_extent().height / fig.dpi + 0.05  # inches the legend needs under the panels
    w, h = fig.get_size_inches()
    fig.set_size_inches(w, h + room)
    fig.tight_layout(rect=(0, room / (h + room), 1, 1))
    return fig


def _legends_under(fig: plt.Figure, columns: Sequence[tuple[Any, Sequence[Any], dict]]) -> plt.Figure:
    """Apply the house style, then give each of ``columns`` — (the panel at the foot of a column, the panels whose
    entries it lists, legend keywords) — a legend under that panel, below its tick and axis labels, so it covers
    no data, with no more columns than fit between its neighbours and the figure's edges; the layout is tightened
    around them."""
    from matplotlib.transforms import ScaledTranslation

    house_style(fig)
    fig.canvas.draw()
    centres = sorted((foot.get_window_extent().x0 + foot.get_window_extent().x1) / 2 for foot, _, _ in columns)
    for foot, panels, kw in columns:
        entries: dict[str, Any] = {}
        for ax in panels:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                entries.setdefault(lab, h)
        below = (foot.get_window_extent().y0 - foot.get_tightbbox().y0) / fig.dpi + 0.05  # inches
        centre = (foot.get_window_extent().x0 + foot.get_window_extent().x1) / 2
        room = 2 * min(centre, fig.bbox.width - centre)  # a legend centred here stays inside the figure ...
        room = min([room] + [abs(c - centre) for c in centres if c != centre])  # ... and clear of its neighbours'
        kw = dict(kw)
        ncol = max(1, kw.pop("ncol", 1))
        while True:  # as many columns as fit that room
            legend = foot.legend(entries.values(), entries.keys(), loc="upper center", bbox_to_anchor=(0.5, 0),
                                 bbox_transform=foot.transAxes + ScaledTranslation(0, -below, fig.dpi_scale_trans),
                                 frameon=False, fontsize=MIN_FONT_PT, title_fontsize=MIN_FONT_PT, ncol=ncol, **kw)
            fig.canvas.draw()
            if ncol == 1 or legend.get_window_extent().width <= room:
                break
            ncol -= 1
    fig.tight_layout()
    return fig


def seeds_text(counts: Sequence[int]) -> str:
    """How many seeds are behind a panel's lines: "3 seeds", or "2–3 seeds" where a setting keeps fewer (its
    failing seeds left out)."""
    lo, hi = min(counts), max(counts)
    return f"{hi} seed{'s' if hi > 1 else ''}" if lo == hi else f"{lo}–{hi} seeds"


def impulse_response(records: list[dict], xlabel: str = "number of dots generated") -> plt.Figure:
    """The paper's Fig. 3 (left): for each trained value (arrow), the distribution of the generated feature; one
    panel per family (at most three to a row; four as two by two), one legend of the trained values below them."""
    from matplotlib.lines import Line2D

    records, failing = _drawn(records)
    responses = impulse_responses(records)
    models = sorted({r.model for r in responses}, key=family_order)
    values = sorted({r.value for r in responses})
    color = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(values)}
    xmax = min(max(len(r.dist) for r in responses) - 1, int(max(values) * 1.6) + 3)
    cols = 2 if len(models) == 4 else min(len(models), 3)
    rows = math.ceil(len(models) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(_width(cols, 2.9), 2.9 * rows), squeeze=False, sharey=True)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    for ax, m in zip(axes.flat, models):
        for r in (r for r in responses if r.model == m):
            k = np.arange(len(r.dist))[: xmax + 1]
            bad = (r.model, r.value) in failing
            ax.plot(k, r.dist[: xmax + 1], ":o" if bad else "-o", ms=3, color=color[r.value],
                    mfc="white" if bad else color[r.value])
            ax.fill_between(k, r.lo[: xmax + 1], r.hi[: xmax + 1], color=color[r.value], alpha=0.2, lw=0)
            _arrow(ax, r.value, color[r.value], depth=0.12)
        ax.set_title(f"{family_label(m)} ({seeds_text([len(r.seeds) for r in responses if r.model == m])})")
        ax.set_xlim(-0.5, xmax + 0.5)
        ax.set_xticks(range(0, xmax + 1, max(1, math.ceil((xmax + 1) / 8))))
    for ax in axes[:, 0]:
        ax.set_ylabel("share of generated images")
    for i, ax in enumerate(axes.flat[:len(models)]):
        if i + cols >= len(models):  # the lowest panel of its column
            ax.set_xlabel(xlabel)
    handles = [Line2D([], [], color=color[v], marker="o", ms=3, label=f"trained on {v}") for v in values]
    if failing:
        handles.append(Line2D([], [], color="0.3", ls=":", marker="o", mfc="white", ms=3, label=FAILED_LINE_LABEL))
    return _legend_below(fig, handles, ncol=min(len(handles), 6))


def mean_spread(records: list[dict], xlabel: str = "trained number of dots",
                ylabel: str = "generated number of dots") -> plt.Figure:
    """Mean (± 95% CI over seeds) and standard deviation of the generated feature against the trained value."""
    records, failing = _drawn(records)
    rows = summary_rows(records)
    for row in rows:
        row["gate_failed"] = (row["model"], row["value"]) in failing
    models = sorted({r["model"] for r in rows}, key=family_order)
    fig, axes = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.4))
    vmax = max(r["value"] for r in rows)
    axes[0].plot([0, vmax + 1], [0, vmax + 1], color="0.6", lw=1, ls="--", label="generated = trained")
    for i, m in enumerate(models):
        rs = [r for r in rows if r["model"] == m]
        v = np.array([r["value"] for r in rs])
        off = (i - (len(models) - 1) / 2) * 0.12
        ci = np.nan_to_num([r["mean_ci"] for r in rs])
        mean, sd = np.array([r["mean"] for r in rs]), np.array([r["sd"] for r in rs])
        axes[0].errorbar(v + off, mean, yerr=ci, fmt="o-", color=PALETTE[i], capsize=3, label=family_label(m))
        axes[1].plot(v, sd, "o-", color=PALETTE[i], label=family_label(m))
        _hollow_failed(axes[0], v + off, mean, rs, "o", PALETTE[i], 6)
        _hollow_failed(axes[1], v, sd, rs, "o", PALETTE[i], 6)
    axes[0].set(xlabel=xlabel, ylabel=f"mean {ylabel}", title="mean of the response")
    axes[1].set(xlabel=xlabel, ylabel="standard deviation", title="spread of the response")
    handles, _ = axes[0].get_legend_handles_labels()
    if failing:
        handles.append(plt.Line2D([], [], ls="none", marker="o", mfc="white", mec="0.3", label=FAILED_GATE_LABEL))
    return _legend_below(fig, handles, ncol=min(len(handles), 4))


#: Line styles that tell model families apart where colour already says something else (the trained value): one per
#: built-in family, in registration order (so a family keeps its style in every chapter), repeated beyond that.
FAMILY_DASHES: list[Any] = ["-", "--", ":", "-.", (0, (6, 2, 1, 2, 1, 2)), (0, (10, 2, 3, 2))]


def convergence(records: list[dict], ylabel: str = "mean generated number of dots") -> plt.Figure:
    """Training curves of the probed feature: its mean over iterations (left) and the total-variation distance
    between consecutive probes (right), one line per run: colour for the trained value, line style for the family,
    in one legend below both panels (so it covers no curve); a run that fails its training-health gate is faded."""
    from matplotlib.lines import Line2D

    models = sorted({r["model"] for r in records}, key=family_order)
    values = sorted({r["value"] for r in records})
    failing = failing_runs(records)
    color = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(values)}
    style = {m: FAMILY_DASHES[family_order(m)[0] % len(FAMILY_DASHES)] for m in models}  # the same in every chapter
    fig, axes = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.6))
    for r in records:
        probes = r["result"]["probes"]
        if not probes:
            continue
        line = dict(ls=style[r["model"]], color=color[r["value"]], lw=1.2,
                    alpha=FADED if (r["model"], r["value"], r.get("seed")) in failing else 1.0)
        steps = [p["step"] for p in probes]
        means = [float(np.dot(np.arange(len(p["dist"])), p["dist"])) for p in probes]
        axes[0].plot(steps, means, **line)
        tv = [(s, p["tv"]) for s, p in zip(steps, probes) if p.get("tv") is not None]
        if tv:
            axes[1].plot(*zip(*tv), **line)
    axes[0].set(xlabel="training iteration", ylabel=ylabel, title="probed feature during training")
    axes[1].set(xlabel="training iteration", ylabel="TV distance to previous probe", title="change between probes")
    handles = ([Line2D([], [], color=color[v], lw=2, label=f"trained on {v}") for v in values]
               + [Line2D([], [], color="0.25", ls=style[m], lw=1.2, label=family_label(m)) for m in models])
    if failing:
        handles.append(Line2D([], [], color="0.25", lw=1.2, alpha=FADED, label=FAILED_FADED_LABEL))
    return _legend_below(fig, handles, ncol=min(6, max(len(values), len(models))))


def labelled_samples(images: torch.Tensor | np.ndarray, labels: Sequence[str], title: str = "",
                     cols: int = 8, scale: float = 1.0) -> plt.Figure:
    """A grid of images, each annotated with its label (e.g. its measured feature)."""
    grid = image_grid(images, cols=cols)
    rows = max(1, -(-len(labels) // cols))
    w = _width(cols, scale)
    fig, ax = plt.subplots(figsize=(w, w / cols * rows + 0.4))
    _show_grid(ax, grid, list(labels), cols=cols, title=title)
    return house_style(fig)


def response_frames(records: list[dict], render: Callable[[int, int], tuple[torch.Tensor, np.ndarray]],
                    xlabel: str = "number of dots") -> list[tuple[str, plt.Figure]]:
    """One figure per trained value (for a slider): training images, each model's generated images, and the
    generated distribution of every model, with the trained value marked."""
    responses = impulse_responses(_drawn(records)[0])
    dotted = _drawn(records)[1]
    models = sorted({r["model"] for r in records}, key=family_order)
    values = sorted({r["value"] for r in records})
    failing = failing_runs(records)
    xmax = min(max(len(r.dist) for r in responses) - 1, int(max(values) * 1.6) + 3)
    frames = []
    for v in values:
        fig = plt.figure(figsize=(MAX_WIDTH_IN, 4.6))
        gs = fig.add_gridspec(2, 1 + len(models), height_ratios=[1, 1.25])
        imgs, measured = render(v, 16)
        panel = dict(show_cols=PANEL_COLS, limit=PANEL_IMAGES)
        _show_grid(fig.add_subplot(gs[0, 0]), image_grid(imgs), list(measured), title=f"training\n{v}", **panel)
        for j, m in enumerate(models):
            rec = min((r for r in records if r["model"] == m and r["value"] == v), key=lambda r: r["seed"])
            res = rec["result"]
            _show_grid(fig.add_subplot(gs[0, 1 + j]), png_decode(res["sample_grid_png"]), res["sample_values"],
                       title=_failed_title(f"{family_label(m)}\nseed {rec['seed']}", rec, failing), **panel)
        ax = fig.add_subplot(gs[1, :])
        for j, r in enumerate(sorted((r for r in responses if r.value == v), key=lambda r: family_order(r.model))):
            k = np.arange(len(r.dist))[: xmax + 1]
            bad = (r.model, r.value) in dotted
            ax.bar(k + (j - (len(models) - 1) / 2) * 0.8 / len(models), r.dist[: xmax + 1], width=0.8 / len(models),
                   color="white" if bad else PALETTE[models.index(r.model)], edgecolor=PALETTE[models.index(r.model)],
                   label=family_label(r.model) + (f" ({FAILED_PANEL_TITLE})" if bad else ""))
        ax.axvline(v, color="0.3", ls="--", lw=1, label=f"trained: {v}")
        ax.set(xlabel=xlabel, ylabel="share of generated images", xlim=(-0.5, xmax + 0.5), ylim=(0, 1))
        ax.set_xticks(range(0, xmax + 1))
        ax.legend(loc="upper right")
        frames.append((f"{v}", house_style(fig)))
    return frames


def _response_line(ax: plt.Axes, x: np.ndarray, y: np.ndarray, color: Any, label: str, failed: bool,
                   lw: float) -> None:
    """A response curve: solid, or dotted when runs behind it fail their gate (its legend entry stays solid)."""
    if failed:
        ax.plot(x, y, ":", color=color, lw=lw)
        ax.plot([], [], "-", color=color, lw=lw, label=label)
    else:
        ax.plot(x, y, "-", color=color, lw=lw, label=label)


def _failed_entry(ax: plt.Axes, failing: set) -> None:
    """Give ``ax`` (the foot of a legend's column) the entry of dotted responses when there are any."""
    if failing:
        ax.plot([], [], ":", color="0.3", lw=1.4, label=FAILED_LINE_LABEL)


def _feature_grid(records: dict[str, list[dict]]) -> tuple[list[str], list[str], plt.Figure, np.ndarray]:
    """The experiments with records (columns), their model families (rows, in the book's order) and a figure with
    one panel per (family, experiment)."""
    names = [n for n in records if records[n]]
    models = sorted({r["model"] for n in names for r in records[n]}, key=family_order)
    fig, axes = plt.subplots(len(models), len(names), figsize=(_width(len(names), 2.9), 2.7 * len(models)),
                             squeeze=False)
    return names, models, fig, axes


def feature_responses(records: dict[str, list[dict]]) -> plt.Figure:
    """The paper's Fig. 5: one column per feature (experiment), one row per model; for each trained value (arrow) the
    density of the generated feature over the experiment's bins."""
    from probe_utils.experiments import EXPERIMENTS

    names, models, fig, axes = _feature_grid(records)
    for j, name in enumerate(names):
        exp = EXPERIMENTS[name]
        edges, centres = np.asarray(exp.edges), exp.centres
        width = np.diff(edges)
        values = sorted({r["value"] for r in records[name]})
        color = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(values)}
        drawn, failing = _drawn(records[name])
        for i, m in enumerate(models):
            ax = axes[i, j]
            responses = impulse_responses([x for x in drawn if x["model"] == m])
            for r in responses:
                _response_line(ax, centres, r.dist / width, color[r.value], f"{r.value:g}", (m, r.value) in failing,
                               lw=1.4)
                ax.fill_between(centres, r.lo / width, r.hi / width, color=color[r.value], alpha=0.2, lw=0)
                _arrow(ax, r.value, color[r.value])
            _feature_panel(ax, exp, m, j == 0, i == len(models) - 1, [len(r.seeds) for r in responses])
        _failed_entry(axes[-1, j], failing)
    return _legends_under(fig, [(axes[-1, j], axes[:, j], dict(title="trained on", ncol=3)) for j in range(len(names))])


def convolution_effect(rows: list[dict], centres: np.ndarray, records: Sequence[dict] | None = None) -> plt.Figure:
    """The paper's Fig. 6: for each multi-modal training distribution (rows) and model (columns), the training modes
    (arrows), the convolution prediction (dashed) and the actual response (solid); the shaded band is the midpoint
    window of the prototype-enhancement index. ``rows`` come from :func:`probe_utils.analysis.convolution_rows`;
    with ``records`` (the mixture and single-value runs behind them) a panel whose mixture runs fail their
    training-health gate is titled so and its actual response dotted."""
    from probe_utils.experiments import mixture_modes
    from probe_utils.findings import CONVOLUTION_TV, on_its_side

    failing = _failing_settings([r for r in records or () if r["experiment"] == "pie_red_mix"], records)
    models = sorted({r["model"] for r in rows}, key=family_order)
    values = sorted({r["value"] for r in rows}, key=lambda v: mixture_modes(v)[-1] - mixture_modes(v)[0])
    width = float(np.mean(np.diff(centres)))
    fig, axes = plt.subplots(len(values), len(models), figsize=(_width(len(models), 4.25), 2.8 * len(values)),
                             squeeze=False)
    for i, v in enumerate(values):
        for j, m in enumerate(models):
            ax = axes[i, j]
            row = next((r for r in rows if r["model"] == m and r["value"] == v), None)
            if row is None:
                ax.set_visible(False)
                continue
            ax.axvspan(*row["window"], color="0.85", lw=0)
            ax.plot(centres, row["predicted"] / width, "--", color=PALETTE[0], label="convolution prediction")
            bad = (m, v) in failing
            ax.plot(centres, row["actual"] / width, ":" if bad else "-", color=PALETTE[1], label="actual")
            for mode in mixture_modes(v):
                _arrow(ax, mode, depth=0.16)
            ax.set_title(f"{family_label(m)}: trained on red {v.replace('+', ' or ')}"
                         + (f"\n{FAILED_PANEL_TITLE}" if bad else ""))
            tv = on_its_side(row["tv"], lambda d: d < CONVOLUTION_TV, 2, percent=False)  # the digits that decide
            ax.text(0.02, 0.95, f"TV {tv}\nmidpoint ratio {prototype_index_text(row['ratio'])}",
                    transform=ax.transAxes, va="top", fontsize=MIN_FONT_PT)
            ax.set_xlim(0, 1)
            if i == len(values) - 1:
                ax.set_xlabel("generated proportion of red")
            if j == 0:
                ax.set_ylabel("density")
    handles, _ = next(ax for ax in axes.flat if ax.get_visible()).get_legend_handles_labels()
    return _legend_below(fig, handles, ncol=2)


def independence(records: dict[str, list[dict]]) -> plt.Figure:
    """The paper's Fig. 7: one column per studied feature, one row per model; the learned distribution of the
    feature (mean over seeds) for each number k of values the nuisance features take, the three trained values
    marked by arrows."""
    from probe_utils.experiments import EXPERIMENTS
    from probe_utils.render.pie import INDEPENDENCE_VALUES

    names, models, fig, axes = _feature_grid(records)
    for j, name in enumerate(names):
        exp = EXPERIMENTS[name]
        edges, centres = np.asarray(exp.edges), exp.centres
        width = np.diff(edges)
        ks = sorted({r["value"] for r in records[name]})
        cmap = plt.get_cmap("viridis")
        fixed = INDEPENDENCE_VALUES["radius" if name.endswith("size") else name.split("_", 1)[1]]
        drawn, failing = _drawn(records[name])
        for i, m in enumerate(models):
            ax = axes[i, j]
            responses = impulse_responses([x for x in drawn if x["model"] == m])
            for r in responses:
                c = cmap(ks.index(r.value) / max(len(ks) - 1, 1) * 0.9)
                _response_line(ax, centres, r.dist / width, c, f"{r.value}", (m, r.value) in failing, lw=1.3)
            for v in fixed:
                _arrow(ax, v)
            _feature_panel(ax, exp, m, j == 0, i == len(models) - 1, [len(r.seeds) for r in responses])
        _failed_entry(axes[-1, j], failing)
    return _legends_under(fig, [(axes[-1, j], axes[:, j], dict(title="nuisance values", ncol=3))
                                for j in range(len(names))])


def independence_frames(records: dict[str, list[dict]]) -> list[tuple[str, plt.Figure]]:
    """One :func:`independence` figure per model family (for a slider)."""
    models = sorted({r["model"] for recs in records.values() for r in recs}, key=family_order)
    return [(family_label(m), independence({n: [r for r in recs if r["model"] == m] for n, recs in records.items()}))
            for m in models]


def precision_recall(rows: dict[str, list[dict]], title: str = "{}") -> plt.Figure:
    """The paper's Fig. 8 (and Fig. 25): precision (solid) and recall (dashed) of the learned support against the
    number of training combinations, one panel per key of ``rows`` (e.g. a data set), one colour per group (a
    model, or a network width); the dotted line is the precision of a model uniform over all combinations.
    ``rows`` come from :func:`probe_utils.findings.combination_rows_by` (a point with a passing run is made of its
    passing runs only); a point whose runs all fail their training-health gate (a row's ``gate_failed``) is drawn
    hollow: shown, not scored. A group keeps its colour in every panel; one legend below them all."""
    names = [n for n in rows if rows[n]]
    every = list(dict.fromkeys(r["group"] for n in names for r in rows[n]))  # one colour per group in every panel
    if all(g in FAMILIES for g in every):  # model families: in the book's order
        every = sorted(every, key=family_order)
    fig, axes = plt.subplots(1, len(names), figsize=(_width(len(names), 4.25), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        groups = [g for g in every if any(r["group"] == g for r in rows[name])]
        for g in groups:
            i = every.index(g)
            rs = sorted((r for r in rows[name] if r["group"] == g), key=lambda r: r["n_train"])
            n = np.array([r["n_train"] for r in rs])
            label = family_label(g) if isinstance(g, str) else f"{g}"
            ax.plot([], [], "-", color=PALETTE[i % len(PALETTE)], lw=2, label=label)  # the group's legend entry
            for key, style in (("precision", "-o"), ("recall", "--s")):
                y = np.array([r[key] for r in rs])
                lo, hi = np.array([r[f"{key}_lo"] for r in rs]), np.array([r[f"{key}_hi"] for r in rs])
                ax.plot(n, y, style, color=PALETTE[i % len(PALETTE)], ms=4, lw=1.4)
                _hollow_failed(ax, n, y, rs, style[-1], PALETTE[i % len(PALETTE)], 4)
                if np.isfinite(lo).any():
                    ax.fill_between(n, lo, hi, color=PALETTE[i % len(PALETTE)], alpha=0.15, lw=0)
        for key, style in (("precision", "-o"), ("recall", "--s")):
            ax.plot([], [], style, color="0.3", ms=4, lw=1.4, label=key)
        chance = sorted({(r["n_train"], r["chance_precision"]) for r in rows[name]})
        ax.plot(*zip(*chance), ":", color="0.5", lw=1, label="uniform over all combinations")
        if any(r.get("gate_failed") for r in rows[name]):
            ax.plot([], [], "o", mfc="white", mec="0.3", ms=4, label=FAILED_GATE_LABEL)
        ax.set(xlabel="combinations in the training set", ylabel="precision / recall", ylim=(-0.03, 1.03),
               title=title.format(name))
        ax.set_xscale("log")
    entries: dict[str, Any] = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(lab, h)
    return _legend_below(fig, list(entries.values()), ncol=3 if len(entries) > 4 else len(entries))


def combination_frames(records: list[dict], rows: list[dict], render: Callable[[int, int], tuple[torch.Tensor, Any]],
                       seed: int = 0) -> list[tuple[str, plt.Figure]]:
    """One figure per number of training combinations (for a slider): the precision/recall curves with this
    number marked and the training images (top), each model's samples annotated train / new / ? (unmeasurable),
    titled "fails its gate" when their run does (below, up to four families a row), one legend under them all."""
    from matplotlib.lines import Line2D

    models = sorted({r["model"] for r in records}, key=family_order)
    values = sorted({r["value"] for r in records})
    failing = failing_runs(records)
    cols = max(3, min(len(models), 4))
    sample_rows = math.ceil(len(models) / cols)
    handles = [Line2D([], [], color=PALETTE[i], lw=2, label=family_label(m)) for i, m in enumerate(models)]
    handles += [Line2D([], [], color="0.3", ls=ls, marker=mk, ms=3, label=k)
                for k, ls, mk in (("precision", "-", "o"), ("recall", "--", "s"))]
    if any(r.get("gate_failed") for r in rows):
        handles.append(Line2D([], [], ls="none", marker="o", mfc="white", mec="0.3", ms=3, label=FAILED_GATE_LABEL))
    frames = []
    for v in values:
        fig = plt.figure(figsize=(MAX_WIDTH_IN, 2.9 + 2.0 * sample_rows))
        gs = fig.add_gridspec(1 + sample_rows, cols, height_ratios=[1.45] + [1] * sample_rows)
        ax = fig.add_subplot(gs[0, :cols - 1])
        for i, m in enumerate(models):
            rs = sorted((r for r in rows if r["group"] == m), key=lambda r: r["n_train"])
            n = np.array([r["n_train"] for r in rs])
            for key, style in (("precision", "-o"), ("recall", "--s")):
                y = np.array([r[key] for r in rs])
                ax.plot(n, y, style, ms=3, color=PALETTE[i])
                _hollow_failed(ax, n, y, rs, style[-1], PALETTE[i], 3)
        ax.axvline(v, color="0.3", lw=1)
        ax.set(xscale="log", ylim=(-0.03, 1.03), xlabel="training combinations", ylabel="precision / recall",
               title=f"{v} combinations")
        imgs, _ = render(v, 16)
        _show_grid(fig.add_subplot(gs[0, cols - 1]), image_grid(imgs[:PANEL_IMAGES], cols=PANEL_COLS), [],
                   cols=PANEL_COLS, title="training")
        for j, m in enumerate(models):
            rec = min((r for r in records if r["model"] == m and r["value"] == v),
                      key=lambda r: (r["seed"] != seed, r["seed"]))
            res = rec["result"]
            grid = png_decode(res["sample_grid_png"])
            _show_grid(fig.add_subplot(gs[1 + j // cols, j % cols]), grid, res["sample_status"],
                       title=_failed_title(f"{family_label(m)} samples", rec, failing), show_cols=PANEL_COLS,
                       limit=PANEL_IMAGES)
        frames.append((f"{v}", _legend_below(fig, handles, ncol=len(handles))))
    return frames


def pair_grids(rows: dict[str, list[dict]], records: Sequence[dict] | None = None) -> plt.Figure:
    """The paper's Fig. 9 / 23: for each CLEVR grid and rare attribute (rows), the training distribution over
    (shape pair, colour pair) cells and each model's generated one (mean over seeds), the rare line outlined.
    ``rows`` map an experiment name to :func:`probe_utils.analysis.pair_grid_rows` of its records; with
    ``records`` (those runs) a panel whose runs all fail their training-health gate is titled so (a panel with a
    passing run shows its passing runs only: :func:`probe_utils.findings.clevr_pair_rows`)."""
    from matplotlib.patches import Rectangle

    from probe_utils.render import clevr

    records = list(records or ())
    failing = {(name, m, v) for name in rows  # a panel's runs all fail (else it shows the passing ones)
               for m, v, _ in failing_runs(_drawn([r for r in records if r["experiment"] == name], records)[0],
                                           records)}

    panels = [(name, rare) for name in rows for rare in dict.fromkeys(r["rare"] for r in rows[name])]
    models = sorted({r["model"] for name in rows for r in rows[name]}, key=family_order)
    # a row: the square grid, four title lines above it and the rotated colour pairs under it
    tall = [3.2 if int(name.rsplit("_", 1)[1].split("x")[0]) <= 4 else 3.7 for name, _ in panels]
    fig, axes = plt.subplots(len(panels), 1 + len(models), figsize=(_width(1 + len(models), 2.6), sum(tall)),
                             squeeze=False, gridspec_kw=dict(height_ratios=tall), layout="compressed")
    for i, (name, rare) in enumerate(panels):
        size = int(name.rsplit("_", 1)[1].split("x")[0])
        fp = clevr.figure9_pairs(size, rare)
        sp = ["-".join(p) for p in fp["shape_pairs"]]
        cp = ["-".join(p) for p in fp["color_pairs"]]
        first = next(r for r in rows[name] if r["rare"] == rare)
        mats = [("training", first["train"], None)] + [
            (family_label(m), r["joint"], r)
            for m in models for r in rows[name] if r["model"] == m and r["rare"] == rare]
        vmax = max(float(mat.max()) for _, mat, _ in mats)
        for j, (label, mat, r) in enumerate(mats):
            ax = axes[i, j]
            ax.imshow(mat, cmap="Greens", vmin=0, vmax=vmax)
            for (a, b), val in np.ndenumerate(mat):
                if size <= 4 or val >= 0.005:
                    ax.text(b, a, f"{val:.2f}" if size <= 4 else f"{100 * val:.0f}", ha="center", va="center",
                            fontsize=MIN_FONT_PT, color="black")
            line = first["rare_line"]
            if first["rare_axis"] == 0:
                ax.add_patch(Rectangle((-0.5, line - 0.5), size, 1, fill=False, ec=PALETTE[1], lw=1.5))
            else:
                ax.add_patch(Rectangle((line - 0.5, -0.5), 1, size, fill=False, ec=PALETTE[1], lw=1.5))
            ax.set_xticks(range(size), cp, rotation=90)
            ax.set_yticks(range(size), sp if j == 0 else [])
            ax.grid(False)
            if r is None:
                ax.set_title(f"{label}\n{size}x{size}, rare {rare}")
            else:  # short lines: a panel is under 2.6 inches wide
                gate = f"\n{FAILED_PANEL_TITLE}" if (name, r["model"], rare) in failing else ""
                novel = f"{r['novel_mass']:.2f}" if np.isfinite(r["novel_mass"]) else "–"  # nothing measured
                ax.set_title(f"{label}\nnovel mass {novel}\noutside grid {r['invalid']:.0%}{gate}")
    return house_style(fig)


def instrument_check(records: list[dict], title: str = "", per_figure: int = 6) -> list[plt.Figure]:
    """For a reader to check the measurement by eye: each record's stored samples with the value measured on each
    (a refused sample is marked "refused" in red), one panel per record, at most ``per_figure`` panels a figure."""
    figs = []
    for start in range(0, len(records), per_figure):
        chunk = records[start:start + per_figure]
        fig, axes = plt.subplots(len(chunk), 1, figsize=(MAX_WIDTH_IN, 1.35 * len(chunk) + 0.3), squeeze=False)
        for ax, rec in zip(axes[:, 0], chunk):
            res = rec["result"]
            grid = png_decode(res["sample_grid_png"])
            values = res.get("sample_values") or []
            status = res.get("sample_status") or [None] * len(values)
            ax.imshow(grid, interpolation="nearest")
            tile = (grid.shape[1] - 2) / 8
            for i, (v, st) in enumerate(zip(values, status)):
                r, k = divmod(i, 8)
                refused = v is None or v == "?"
                text = "refused" if refused else (f"{v} {st}" if st else str(v))
                ax.text(2 + k * tile + 1, 2 + r * tile + 1, text, fontsize=MIN_FONT_PT, va="top", ha="left",
                        color="#b00020" if refused else "black",
                        bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.8))
            ax.set_title(f"{family_label(rec['model'])}, trained on {rec['value']}, seed {rec['seed']} "
                         f"({rec['preset']}): {res.get('invalid_share', 0):.0%} of {res.get('n_samples', '?')} "
                         f"samples refused", loc="left")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        if title:
            fig.suptitle(title, x=0.01, ha="left")
        figs.append(house_style(fig))
    return figs


def recipe_curves(results: Sequence[dict], target: float = 0.9) -> plt.Figure:
    """The recipe search: exactly-k share of each entry's probes against training minutes, one panel per family
    and trained count, with the target as a dashed line."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in results:
        groups.setdefault((r["model"], r["count"]), []).append(r)
    keys = sorted(groups, key=lambda k: (family_order(k[0]), k[1]))
    cols = min(2, max(1, len(keys)))  # two panels a row: each keeps room for its legend in the text column
    rows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(_width(cols, 3.9), 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        for i, r in enumerate(groups[key]):
            t = [p["wall_s"] / 60 for p in r["probes"]]
            ax.plot(t, [p["exact"] for p in r["probes"]], color=PALETTE[i % len(PALETTE)], lw=1.5,
                    label=f"{r['name']} (seed {r['seed']})")
        ax.axhline(target, color="0.3", ls="--", lw=1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("training minutes (one core)")
        ax.set_title(f"{family_label(key[0])}, trained on {key[1]}")
        ax.legend(loc="lower right", fontsize=MIN_FONT_PT)
    for row in axes:
        row[0].set_ylabel("share exactly k dots")
    return house_style(fig)


def recipe_samples(result: dict) -> plt.Figure:
    """The stored sample grid of one recipe-search entry, titled with its name and final share."""
    grid = png_decode(result["sample_grid_png"])
    fig, ax = plt.subplots(figsize=(MAX_WIDTH_IN, MAX_WIDTH_IN * grid.shape[0] / grid.shape[1] + 0.4))
    ax.imshow(grid, interpolation="nearest")
    ax.set_title(f"{result['name']}: {result['final']['exact']:.0%} exactly {result['count']} after "
                 f"{result['minutes']:g} min ({result['steps']:,} iterations)", loc="left")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    return house_style(fig)
