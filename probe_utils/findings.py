"""What chapters display besides figures: the preset banner, tables, and the paper's claims checked against our
records (findings and the scorecard). Texts here are generated from records, never typed-in outcomes."""

from __future__ import annotations

import numpy as np

from probe_utils.analysis import provenance_rows, summary_rows
from probe_utils.build import CLEVR_EXPERIMENTS, INDEPENDENCE_EXPERIMENTS
from probe_utils.models import LABELS

#: The paper's own training settings (its original code; the paper's text gives the architecture), for comparison.
PAPER_SETTINGS = {"image_size": 64, "width": 64, "batch_size": 100, "n_critic": 5, "steps": 200_000}

#: What each preset is for (the numbers come from :data:`probe_utils.experiments.PRESETS`).
PRESET_PURPOSE = {
    "ci": ("Smoke test", "on whatever CPU ran this page. These figures prove that every cell runs; they are not "
           "findings and say nothing about what the models learn."),
    "cpu": ("CPU scale", "the largest scale we could run without a GPU. Read the numbers as preliminary."),
    "colab": ("Colab scale", "on one GPU, the scale a reader re-runs in minutes."),
    "paper": ("Paper scale", "on a GPU, the largest of our presets."),
}


def preset_settings(preset: str, experiments: list[str] | None = None) -> str:
    """One sentence of a preset's settings, generated from :data:`probe_utils.experiments.PRESETS` (the image size
    raised to what ``experiments`` need, e.g. CLEVR's 64 px)."""
    from probe_utils.experiments import EXPERIMENTS, PRESETS
    from probe_utils.params import check_choice

    p = PRESETS[check_choice("preset", preset, PRESETS)]
    size = max([p.image_size] + [EXPERIMENTS[e].min_image_size for e in experiments or []])
    stop = (f"stopped earlier once the measured distribution stopped changing (tolerance {p.converge_tol:g}, at "
            f"least {p.min_steps:,} iterations; see the methods page)" if p.converge_tol is not None
            else "no early stopping")
    return (f"{size}×{size} images, networks of width {p.width}, batch {p.batch_size}, {p.pool_size:,} training "
            f"images, at most {p.steps:,} generator iterations ({p.n_critic} critic steps each for WGAN-GP), {stop}")


def paper_settings() -> str:
    """The paper's settings in the same words as :func:`preset_settings`."""
    s = PAPER_SETTINGS
    return (f"{s['image_size']}×{s['image_size']} images, width {s['width']}, batch {s['batch_size']}, "
            f"{s['n_critic']} critic steps and {s['steps'] // 1000}k iterations")


#: A run whose samples are at least this share blank (zero dots) has collapsed: its generator draws empty images,
#: so it has no numerosity response to compare with the paper. Such runs are listed, not scored.
BLANK_COLLAPSE = 0.95


class Markdown(str):
    """A string that notebooks render as Markdown (``_repr_markdown_``)."""

    def _repr_markdown_(self) -> str:
        return str(self)


def preset_banner(preset: str, experiments: list[str] | None = None) -> Markdown:
    """A note on what the chapter's preset means for how to read its figures (settings from ``PRESETS``; image size
    as ``experiments`` run it)."""
    if preset == "auto":
        return Markdown("> Each section uses the largest-scale preset with stored records; sections at the `ci` "
                        "preset are smoke tests, not findings; see the methods page for what each preset means.")
    title, purpose = PRESET_PURPOSE[preset]
    return Markdown(f"> **{title} (`{preset}` preset).** {preset_settings(preset, experiments)}; {purpose} The "
                    f"paper used {paper_settings()}.")


def _table(rows: list[dict], columns: dict[str, str], fmt: dict[str, str] | None = None) -> str:
    fmt = fmt or {}
    head = "| " + " | ".join(columns.values()) + " |\n|" + "---|" * len(columns) + "\n"
    body = ""
    for r in rows:
        cells = []
        for k in columns:
            v = r.get(k)
            if v is None or (isinstance(v, float) and np.isnan(v)):
                cells.append("–")
            elif k in fmt and v is not None:
                cells.append(format(v, fmt[k]))
            else:
                cells.append(LABELS.get(v, str(v)) if k == "model" else str(v))
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def collapsed(record: dict) -> bool:
    """A numerosity run whose samples are at least :data:`BLANK_COLLAPSE` blank (zero dots counted)."""
    return record["result"]["distribution"][0] >= BLANK_COLLAPSE


def summary_table(records: list[dict]) -> Markdown:
    """Per model and trained count, over the seeds that did not collapse: mean (± 95% CI over seeds), spread, mode
    and where the mass goes; collapsed seeds are counted in their own column."""
    kept = [r for r in records if not collapsed(r)]
    rows = summary_rows(kept)
    for row in rows:
        row["collapsed"] = sum(collapsed(r) for r in records if r["model"] == row["model"] and r["value"] == row["value"])
    for model, value in sorted({(r["model"], r["value"]) for r in records} - {(r["model"], r["value"]) for r in kept}):
        rows.append({"model": model, "value": value, "seeds": 0, "collapsed": sum(
            collapsed(r) for r in records if r["model"] == model and r["value"] == value)})
    rows.sort(key=lambda r: (list(LABELS).index(r["model"]), r["value"]))
    cols = {"model": "model", "value": "trained", "seeds": "seeds", "collapsed": "collapsed seeds",
            "mean": "mean", "mean_ci": "± CI",
            "sd": "sd", "mode": "mode", "exact": "share exact", "below": "share fewer", "above": "share more",
            "zero": "share blank", "steps": "iterations"}
    fmt = {"mean": ".2f", "mean_ci": ".2f", "sd": ".2f", "exact": ".0%", "below": ".0%", "above": ".0%",
           "zero": ".0%"}
    return Markdown(_table(rows, cols, fmt))


def provenance_table(records: list[dict]) -> Markdown:
    """Where each record in the figures came from (a record passed twice is listed once)."""
    records = list({r.get("key", id(r)): r for r in records}.values())
    cols = {"model": "model", "value": "trained", "seed": "seed", "preset": "preset", "device": "device",
            "iterations": "iterations", "converged_at": "converged at", "wall_s": "wall s", "torch": "torch",
            "code": "probe_utils", "commit": "commit", "created": "created (UTC)"}
    if len({r["experiment"] for r in records}) > 1:
        cols = {"experiment": "experiment", **cols}
    return Markdown(_table(provenance_rows(records), cols))


def _verdict(hits: int, total: int) -> str:
    if total == 0:
        return "no data"
    if hits == total:
        return "agrees"
    if hits == 0:
        return "disagrees"
    return "partly"


def numerosity_findings(records: list[dict], noun: str = "dots") -> Markdown:
    """The paper's numerosity claims (Sec. 4.1.1), each checked against our records, with the numbers."""
    gone = [r for r in records if collapsed(r)]
    rows = summary_rows([r for r in records if not collapsed(r)])
    preset = sorted({r["preset"] for r in records})
    n = len(rows)
    not_exact = sum(r["exact"] < 0.95 for r in rows)
    centred = sum(r["mode"] == r["value"] or abs(r["mean"] - r["value"]) < 0.5 for r in rows)
    over = sum(r["above"] > r["below"] for r in rows)
    sds = {m: [(r["value"], r["sd"]) for r in rows if r["model"] == m] for m in {r["model"] for r in rows}}
    grows = sum(1 for v in sds.values() if len(v) >= 2 and np.std([s for _, s in v]) > 0
                and np.corrcoef(*zip(*v))[0, 1] > 0)
    n_fam = sum(1 for v in sds.values() if len(v) >= 2)
    per = "; ".join(f"{LABELS[r['model']]} on {r['value']}: mean {r['mean']:.2f}, mode {r['mode']}, "
                    f"{r['exact']:.0%} exact, {r['below']:.0%} fewer / {r['above']:.0%} more" for r in rows)
    lines = [
        f"Measured on {len(records)} runs at the `{'`, `'.join(preset)}` preset: {n} (model, trained count) settings "
        f"with at least one run that did not collapse.",
        "",
    ]
    if gone:
        names = ", ".join(f"{LABELS[r['model']]} on {r['value']}, seed {r['seed']} "
                          f"({r['result']['distribution'][0]:.0%} blank)" for r in gone)
        lines += [f"**{len(gone)} collapsed runs, left out of the verdicts:** {names}. Their generators draw (almost) "
                  f"only blank images, so they have no numerosity response to compare.", ""]
    lines += [
        "| the paper says | what our runs show | verdict |",
        "|---|---|---|",
        f"| Generated images do not always have the trained number of {noun} | the trained count is generated in "
        f"less than 95% of samples in {not_exact} of {n} settings | {_verdict(not_exact, n)} |",
        f"| The distribution is centred at the trained count | its mode equals the trained count or its mean is "
        f"within 0.5 of it in {centred} of {n} settings | {_verdict(centred, n)} |",
        f"| It is biased slightly towards more {noun} | more mass above than below the trained count in {over} of "
        f"{n} settings | {_verdict(over, n)} |",
        f"| The spread grows with the count (as in human and monkey numerosity) | the standard deviation rises "
        f"with the trained count for {grows} of {n_fam} families | {_verdict(grows, n_fam)} |",
        "",
        f"Per setting: {per}." if rows else "",
    ]
    if "ci" in preset:
        lines.insert(0, "> These rows come from the `ci` smoke test; the verdicts below are not findings.\n")
    return Markdown("\n".join(lines))


def shape_table(records: list[dict], centres: np.ndarray) -> Markdown:
    """Per model and trained value of a continuous feature: mean, bias, spread, half-width and asymmetry."""
    from probe_utils.analysis import shape_rows

    cols = {"model": "model", "value": "trained", "seeds": "seeds", "mean": "mean", "bias": "bias", "sd": "sd",
            "hwhm": "half-width", "skewness": "skewness", "mass_asymmetry": "mass right − left of mode",
            "invalid": "unmeasurable", "steps": "iterations"}
    fmt = {"mean": ".3f", "bias": "+.3f", "sd": ".3f", "hwhm": ".3f", "skewness": "+.2f", "mass_asymmetry": "+.2f",
           "invalid": ".0%"}
    return Markdown(_table(shape_rows(records, centres), cols, fmt))


#: A response whose sd is below this share of its axis is degenerate: all samples measure about the same value.
DEGENERATE_SD = 0.005


def pie_findings(records: dict[str, list[dict]]) -> Markdown:
    """The paper's claims on colour, size and location (Sec. 4.1.2-4.1.3), checked against our records."""
    from probe_utils.analysis import shape_rows
    from probe_utils.experiments import EXPERIMENTS

    rows = {n: shape_rows(recs, EXPERIMENTS[n].centres) for n, recs in records.items() if recs}
    presets = sorted({r["preset"] for recs in records.values() for r in recs})
    lines = ["| the paper says | what our runs show | verdict |", "|---|---|---|"]
    if "pie_red" in rows:
        red = rows["pie_red"]
        near = sum(abs(r["bias"]) < 0.05 for r in red)
        lines.append(f"| Red: the response is centred at the trained proportion | mean within 0.05 of it in {near} of "
                     f"{len(red)} settings | {_verdict(near, len(red))} |")
        by_model: dict[str, dict[float, float]] = {}
        for r in red:
            by_model.setdefault(r["model"], {})[r["value"]] = r["sd"]
        weber = [m for m, v in by_model.items() if len(v) >= 3]
        sharper = sum(1 for m in weber if max(by_model[m][min(by_model[m])], by_model[m][max(by_model[m])])
                      < by_model[m][min(by_model[m], key=lambda x: abs(x - 0.5))])
        lines.append(f"| Red: sharper at the extremes (10%, 90%) than in the middle (Weber's law) | the sd at both "
                     f"extreme trained values is below the sd nearest 50% for {sharper} of {len(weber)} families | "
                     f"{_verdict(sharper, len(weber))} |")
        sym = sum(abs(r["skewness"]) < 0.5 for r in red)
        lines.append(f"| Red: the response is symmetric | |skewness| < 0.5 in {sym} of {len(red)} settings | "
                     f"{_verdict(sym, len(red))} |")
    if "pie_size" in rows:
        size = rows["pie_size"]
        larger = sum(r["skewness"] > 0 or r["bias"] > 0 for r in size)
        lines.append(f"| Size: skewed towards larger objects | positive skewness or bias in {larger} of {len(size)} "
                     f"settings | {_verdict(larger, len(size))} |")
    if "pie_location" in rows:
        loc = rows["pie_location"]
        sym = sum(abs(r["skewness"]) < 0.5 for r in loc)
        lines.append(f"| Location: fairly symmetric | |skewness| < 0.5 in {sym} of {len(loc)} settings | "
                     f"{_verdict(sym, len(loc))} |")
    if "pie_red" in rows and ("pie_size" in rows or "pie_location" in rows):
        rel = lambda rs, span: np.mean([r["sd"] for r in rs]) / span  # noqa: E731
        red_rel = rel(rows["pie_red"], 1.0)
        others = {n: rel(rows[n], EXPERIMENTS[n].allowed[1] - EXPERIMENTS[n].allowed[0])
                  for n in ("pie_size", "pie_location") if n in rows}
        ok = sum(v < red_rel for v in others.values())
        detail = ", ".join(f"{EXPERIMENTS[n].feature} {v:.3f}" for n, v in others.items())
        lines.append(f"| Size and location responses are sharper than red's | sd relative to the feature's range: red "
                     f"{red_rel:.3f}, {detail} | {_verdict(ok, len(others))} |")
    head = f"Measured at the `{'`, `'.join(presets)}` preset.\n\n"
    flat = [(n, r) for n, rs in rows.items() for r in rs]
    degenerate = [(n, r) for n, r in flat if r["sd"] < DEGENERATE_SD * np.ptp(EXPERIMENTS[n].edges)]
    if degenerate:
        names = ", ".join(f"{LABELS[r['model']]} {EXPERIMENTS[n].feature} {r['value']:g} (all near {r['mean']:.2f})"
                          for n, r in degenerate)
        head += (f"**{len(degenerate)} of {len(flat)} responses are degenerate** (sd below {DEGENERATE_SD:.1%} of the "
                 f"axis: every sample measures about the same): {names}. Check them against the samples above: a "
                 f"blurred disc of one mixed colour is measured as all red or as no red at all, which reflects the "
                 f"samples' sharpness rather than how the model generalizes.\n\n")
    if "ci" in presets:
        head = "> These rows come from the `ci` smoke test; the verdicts below are not findings.\n\n" + head
    return Markdown(head + "\n".join(lines))


def scorecard(preset: str = "auto", store=None) -> Markdown:
    """Every claim we check, per experiment and model family, from the stored records at ``preset`` (``auto``: for
    each chapter, the largest-scale preset with records)."""
    from probe_utils.experiments import PRESETS, best_preset
    from probe_utils.params import check_choice
    from probe_utils.store import Store

    check_choice("preset", preset, ["auto", *PRESETS])
    store = store or Store()
    requested = preset
    parts = []
    chapters = [
        ("Numerosity (Sec. 4.1.1)", ["numerosity"], lambda recs: numerosity_findings(recs["numerosity"])),
        ("Colour, size and location (Sec. 4.1.2–4.1.3)", ["pie_red", "pie_size", "pie_location"], pie_findings),
        ("Convolution and prototype enhancement (Sec. 4.2)", ["pie_red", "pie_red_mix"],
         lambda recs: convolution_findings(_convolution_rows(recs))),
        ("Independence of features (Sec. 4.3)", list(INDEPENDENCE_EXPERIMENTS), independence_findings),
        ("Combinations: pie and three-MNIST (Sec. 5)", ["pie_combos", "mnist_combos"], combination_findings),
        ("CLEVR: numerosity and shape–colour pairs (Sec. 4.1.1, 5)", list(CLEVR_EXPERIMENTS), clevr_findings),
    ]
    for title, names, findings in chapters:
        preset = best_preset(names, store) if requested == "auto" else requested
        recs = {n: list(store.records(n, preset)) for n in names}
        families = sorted({r["model"] for rs in recs.values() for r in rs}, key=list(LABELS).index)
        parts.append(f"## {title}\n")
        if families and preset == "ci":
            parts.append("> Only `ci` smoke-test runs exist for this chapter so far: these verdicts are not findings.\n")
        if not families:
            parts.append(f"Not run at the `{preset}` preset yet.\n")
            continue
        for fam in families:
            sub = {n: [r for r in rs if r["model"] == fam] for n, rs in recs.items()}
            n_runs = sum(len(v) for v in sub.values())
            parts.append(f"### {LABELS[fam]} ({n_runs} runs at the `{preset}` preset)\n")
            parts.append(str(findings(sub)) + "\n")
    return Markdown("\n".join(parts))


#: Two modes at most this far apart count as "close" (the paper's close pair is 0.3 / 0.4, its far pair 0.3 / 0.9).
CLOSE_GAP = 0.15
#: The actual response "matches" the convolution prediction when their total-variation distance is below this.
CONVOLUTION_TV = 0.25


def _convolution_rows(recs: dict[str, list[dict]]) -> list[dict]:
    from probe_utils.analysis import convolution_rows
    from probe_utils.analysis import mixture_modes
    from probe_utils.experiments import EXPERIMENTS

    have = {(r["model"], r["value"]) for r in recs["pie_red"]}
    mixes = [r for r in recs["pie_red_mix"] if all((r["model"], m) in have for m in mixture_modes(r["value"]))]
    return convolution_rows(recs["pie_red"], mixes, EXPERIMENTS["pie_red"].centres)


def convolution_table(rows: list[dict]) -> Markdown:
    """Per model and training mixture: distance between actual and predicted responses, and the prototype index."""
    cols = {"model": "model", "value": "trained red", "seeds": "seeds", "tv": "TV(actual, predicted)",
            "emd": "EMD", "actual_mid": "actual mass at midpoint", "predicted_mid": "predicted mass at midpoint",
            "ratio": "prototype index", "actual_mode": "actual mode"}
    fmt = {"tv": ".3f", "emd": ".3f", "actual_mid": ".3f", "predicted_mid": ".3f", "ratio": ".2f",
           "actual_mode": ".2f"}
    return Markdown(_table(rows, cols, fmt))


def convolution_findings(rows: list[dict]) -> Markdown:
    """The paper's claims of Sec. 4.2 checked against our records: far modes combine like a linear filter, close modes
    merge towards their mean (prototype enhancement)."""
    far = [r for r in rows if r["gap"] > CLOSE_GAP]
    close = [r for r in rows if r["gap"] <= CLOSE_GAP]
    fits = sum(r["tv"] < CONVOLUTION_TV for r in far)
    proto = sum(bool(r["ratio"] > 1) for r in close)  # an undefined ratio (no mass predicted there) counts as no
    merged = sum(r["mode_in_middle"] for r in close)
    far_tv = ", ".join(f"{LABELS[r['model']]} {r['value']}: {r['tv']:.2f}" for r in far)
    close_ratio = ", ".join(f"{LABELS[r['model']]} {r['value']}: {r['ratio']:.2f}" for r in close)
    lines = [
        "| the paper says | what our runs show | verdict |", "|---|---|---|",
        f"| Far modes: the response is the convolution of the unimodal responses with the training distribution | "
        f"TV distance below {CONVOLUTION_TV} in {fits} of {len(far)} settings ({far_tv}) | {_verdict(fits, len(far))} |",
        f"| Close modes: more mass at their mean than convolution predicts (prototype enhancement) | prototype index "
        f"above 1 in {proto} of {len(close)} settings ({close_ratio}) | {_verdict(proto, len(close))} |",
        f"| Close modes snap together: the most likely value lies between them | the actual mode lies in the midpoint "
        f"window in {merged} of {len(close)} settings | {_verdict(merged, len(close))} |",
    ]
    return Markdown("\n".join(lines))


#: A feature's response counts as unchanged by the nuisance features when its largest TV distance to the response
#: with the fewest nuisance values stays below this (our threshold; the paper gives none).
INDEPENDENCE_TV = 0.25


def _smoke_note(presets: list[str]) -> str:
    return "> These rows come from the `ci` smoke test; the verdicts below are not findings.\n\n" if "ci" in presets else ""


def independence_table(records: dict[str, list[dict]]) -> Markdown:
    """Per studied feature and model: how far the responses for different numbers of nuisance values are from the
    one with the fewest, and how the spread changes with it (Sec. 4.3)."""
    from probe_utils.analysis import independence_rows
    from probe_utils.experiments import EXPERIMENTS

    rows = []
    for name, recs in records.items():
        for r in independence_rows(recs, EXPERIMENTS[name].centres):
            first, last = r["rows"][0], r["rows"][-1]
            rows.append({"feature": EXPERIMENTS[name].feature, "model": r["model"], "seeds": r["seeds"],
                         "ks": ", ".join(map(str, r["ks"])), "max_tv": r["max_tv"], "max_emd": r["max_emd"],
                         "sd_first": first["sd"], "sd_last": last["sd"], "rho": r["spearman_rho"],
                         "p": r["p_value"], "v": r["cramers_v"]})
    cols = {"feature": "feature", "model": "model", "seeds": "seeds", "ks": "nuisance values k", "max_tv":
            "largest TV to fewest k", "max_emd": "largest EMD", "sd_first": "sd, fewest k", "sd_last": "sd, most k",
            "rho": "Spearman ρ(k, sd)", "p": "χ² p", "v": "Cramér's V"}
    fmt = {"max_tv": ".3f", "max_emd": ".3f", "sd_first": ".3f", "sd_last": ".3f", "rho": "+.2f", "p": ".2g",
           "v": ".3f"}
    return Markdown(_table(rows, cols, fmt))


def independence_findings(records: dict[str, list[dict]]) -> Markdown:
    """The paper's claims of Sec. 4.3 checked against our records."""
    from probe_utils.analysis import independence_rows
    from probe_utils.experiments import EXPERIMENTS

    rows = [(EXPERIMENTS[n].feature, r) for n, recs in records.items() for r in
            independence_rows(recs, EXPERIMENTS[n].centres)]
    presets = sorted({r["preset"] for recs in records.values() for r in recs})
    same = sum(r["max_tv"] < INDEPENDENCE_TV for _, r in rows)
    wider = sum(r["rows"][-1]["sd"] > r["rows"][0]["sd"] for _, r in rows)
    detail = ", ".join(f"{f} {LABELS[r['model']]} {r['max_tv']:.2f}" for f, r in rows)
    sds = ", ".join(f"{f} {LABELS[r['model']]} {r['rows'][0]['sd']:.3f}→{r['rows'][-1]['sd']:.3f}" for f, r in rows)
    lines = [
        f"Measured at the `{'`, `'.join(presets)}` preset." if presets else "No records.", "",
        "| the paper says | what our runs show | verdict |", "|---|---|---|",
        f"| The learned distribution of each feature is fairly independent of how many values the other features "
        f"take (1–50) | largest TV distance to the response with the fewest nuisance values below {INDEPENDENCE_TV} "
        f"in {same} of {len(rows)} (feature, model) settings ({detail}) | {_verdict(same, len(rows))} |",
        f"| The variance rises slightly when the nuisance features are more random | sd with the most nuisance "
        f"values above sd with the fewest in {wider} of {len(rows)} settings ({sds}) | {_verdict(wider, len(rows))} |",
    ]
    return Markdown(_smoke_note(presets) + "\n".join(lines))


#: Our thresholds for the combinations claims (the paper gives none).
RECALL_HIGH = 0.9       # "very high recall"
PRECISION_MEMORISED = 0.8  # "memorises few combinations almost exactly": precision at the fewest combinations
SIZE_INVARIANT = 0.1    # "almost identical": precision differs by less than this across network / data-set sizes


def combination_rows_by(records: dict[str, list[dict]], by: str = "model", model: str | None = None,
                        default_only: bool = True) -> dict[str, list[dict]]:
    """:func:`probe_utils.analysis.combination_rows` per combinations experiment. ``default_only``: only runs at
    the preset's own width and number of training images; ``model``: only that family."""
    from probe_utils.analysis import combination_rows
    from probe_utils.experiments import EXPERIMENTS, PRESETS

    def default(r: dict, key: str) -> bool:
        return r["params"][key] == getattr(PRESETS[r["preset"]], key)

    out = {}
    for name, recs in records.items():
        exp = EXPERIMENTS[name]
        unique = {r["key"]: r for r in recs}.values()  # the same run may be passed twice
        keep = [r for r in unique if (model is None or r["model"] == model) and (
            all(default(r, k) for k in ("width", "pool_size")) if default_only else
            # comparing widths: default data size only, and the other way round
            by == "model" or default(r, "pool_size" if by == "width" else "width"))]
        if keep:
            rows = combination_rows(keep, int(np.prod(exp.grid)), by=by)
            if by != "model":
                for row in rows:
                    row["group"] = f"{'width' if by == 'width' else 'images'} {row['group']}"
            out[exp.dataset] = rows
    return out


def combination_table(rows: dict[str, list[dict]], group: str = "model") -> Markdown:
    """Precision, recall and novel mass per data set, group and number of training combinations."""
    flat = [{"dataset": d, **r, "group": LABELS.get(r["group"], r["group"]) if group == "model" else r["group"]}
            for d, rs in rows.items() for r in rs]
    cols = {"dataset": "data set", "group": group.replace("_", " "), "n_train": "training combinations",
            "runs": "seeds", "precision": "precision", "precision_lo": "CI low", "precision_hi": "CI high",
            "recall": "recall", "novel_mass": "mass on new combinations", "chance_precision": "uniform precision"}
    if group != "model":
        cols = {"dataset": "data set", "model": "model", **{k: v for k, v in cols.items() if k != "dataset"},
                "n_parameters": "parameters"}
        cols["group"] = "network width" if group == "width" else "training images"
    fmt = {"precision": ".2f", "precision_lo": ".2f", "precision_hi": ".2f", "recall": ".2f", "novel_mass": ".2f",
           "chance_precision": ".3f", "n_parameters": ",.0f"}
    return Markdown(_table(flat, cols, fmt))


def _spread_across(rows: list[dict], key: str = "precision") -> list[tuple[int, float]]:
    """Per number of training combinations that several groups share: the range of ``key`` across them."""
    by_n: dict[int, list[float]] = {}
    for r in rows:
        by_n.setdefault(r["n_train"], []).append(r[key])
    return [(n, float(np.ptp(v))) for n, v in sorted(by_n.items()) if len(v) >= 2 and np.isfinite(v).all()]


def combination_findings(records: dict[str, list[dict]]) -> Markdown:
    """The paper's claims of Sec. 5 (pie and three-MNIST) and App. A (Fig. 25) checked against our records."""
    main = combination_rows_by(records)
    presets = sorted({r["preset"] for recs in records.values() for r in recs})
    settings = [(d, m, sorted((r for r in rs if r["group"] == m), key=lambda r: r["n_train"]))
                for d, rs in main.items() for m in dict.fromkeys(r["group"] for r in rs)]
    all_rows = [r for rs in main.values() for r in rs]
    high = sum(r["recall"] >= RECALL_HIGH for r in all_rows)
    # precision is undefined (NaN) when a model's support is empty (nothing measurable): such settings are left out
    defined = [(d, m, [r for r in rs if np.isfinite(r["precision"])]) for d, m, rs in settings]
    falls = [(d, m, rs) for d, m, rs in defined if len(rs) >= 2]
    n_falls = sum(rs[-1]["precision"] < rs[0]["precision"] for _, _, rs in falls)
    firsts = [(d, m, rs) for d, m, rs in settings if rs and np.isfinite(rs[0]["precision"])]
    memo = sum(rs[0]["precision"] >= PRECISION_MEMORISED for _, _, rs in firsts)
    falls_txt = ", ".join(f"{d} {LABELS[m]} {rs[0]['precision']:.2f} at {rs[0]['n_train']} → "
                          f"{rs[-1]['precision']:.2f} at {rs[-1]['n_train']}" for d, m, rs in falls)
    lines = [f"Measured at the `{'`, `'.join(presets)}` preset." if presets else "No records.", "",
             "| the paper says | what our runs show | verdict |", "|---|---|---|",
             f"| Recall is very high: every training combination is generated | recall ≥ {RECALL_HIGH} in {high} of "
             f"{len(all_rows)} (data set, model, number of combinations) settings | {_verdict(high, len(all_rows))} |",
             f"| Precision falls as the training set holds more combinations (new combinations appear) | precision "
             f"at the most combinations below precision at the fewest for {n_falls} of {len(falls)} (data set, model) "
             f"pairs ({falls_txt}) | {_verdict(n_falls, len(falls))} |",
             f"| A few combinations (10–20) are memorised almost exactly | precision ≥ {PRECISION_MEMORISED} at the "
             f"fewest combinations for {memo} of {len(firsts)} pairs with a defined precision | "
             f"{_verdict(memo, len(firsts))} |"]
    for by, what in (("width", "network size (Fig. 25)"), ("pool_size", "data-set size")):
        for d, rs in combination_rows_by(records, by=by, default_only=False).items():
            for m in dict.fromkeys(r["model"] for r in rs):
                sub = [r for r in rs if r["model"] == m]
                if len({r["group"] for r in sub}) < 2:
                    continue
                spread = _spread_across(sub)
                ok = sum(s < SIZE_INVARIANT for _, s in spread)
                txt = ", ".join(f"{n}: {s:.3f}" for n, s in spread)
                groups = ", ".join(str(g) for g in sorted({r["group"] for r in sub}))
                lines.append(f"| The curves do not depend on the {what} | {d}, {LABELS[m]}, {groups}: range "
                             f"of precision across them below {SIZE_INVARIANT} at {ok} of {len(spread)} numbers of "
                             f"combinations ({txt}) | {_verdict(ok, len(spread))} |")
    return Markdown(_smoke_note(presets) + "\n".join(lines))


#: Our thresholds for the CLEVR pair claims (the paper gives none).
MARGINAL_TV = 0.1       # "the marginal is preserved"
FEW_NOVEL = 0.25        # 4x4: "very few, if any" new colours for the rare shape: share of its mass on new cells
EVEN_SHARE = 0.5        # 9x9: "takes on all colours almost evenly": new cells get at least half their even share


def clevr_pair_table(rows: dict[str, list[dict]]) -> Markdown:
    """Per grid, rare attribute and model: marginal distances, the rare line's mass and how much of it is new."""
    flat = [{"grid": n.rsplit("_", 1)[1], **r, "tv_shape": r["marginal_tv"][0], "tv_color": r["marginal_tv"][1]}
            for n, rs in rows.items() for r in rs]
    cols = {"grid": "grid", "rare": "rare", "model": "model", "seeds": "seeds", "tv_shape": "TV shape-pair marginal",
            "tv_color": "TV colour-pair marginal", "rare_share_train": "rare line, training share",
            "rare_share": "rare line, generated share", "rare_novel": "rare line: share on new cells",
            "rare_even": "… if spread evenly", "novel_mass": "all new cells", "invalid": "outside the grid"}
    fmt = {k: ".2f" for k in ("tv_shape", "tv_color", "rare_share_train", "rare_share", "rare_novel", "rare_even",
                              "novel_mass")}
    fmt["invalid"] = ".0%"
    return Markdown(_table(flat, cols, fmt))


def clevr_pair_rows(records: dict[str, list[dict]]) -> dict[str, list[dict]]:
    from probe_utils.analysis import pair_grid_rows
    from probe_utils.experiments import EXPERIMENTS

    return {n: pair_grid_rows(rs, EXPERIMENTS[n].grid) for n, rs in records.items()
            if n.startswith("clevr_pairs") and rs}


def clevr_findings(records: dict[str, list[dict]]) -> Markdown:
    """The paper's CLEVR claims (Fig. 3 middle, Fig. 9 / 23) checked against our records."""
    presets = sorted({r["preset"] for recs in records.values() for r in recs})
    parts = []
    if records.get("clevr_numerosity"):
        parts.append(str(numerosity_findings(records["clevr_numerosity"], noun="objects")))
    rows = clevr_pair_rows(records)
    flat = [(n.rsplit("_", 1)[1], r) for n, rs in rows.items() for r in rs]
    if flat:
        kept = sum(max(r["marginal_tv"]) < MARGINAL_TV for _, r in flat)
        small = [(g, r) for g, r in flat if g == "4x4" and np.isfinite(r["rare_novel"])]
        large = [(g, r) for g, r in flat if g == "9x9" and np.isfinite(r["rare_novel"])]
        few = sum(r["rare_novel"] < FEW_NOVEL for _, r in small)
        even = sum(r["rare_novel"] >= EVEN_SHARE * r["rare_even"] for _, r in large)
        txt = lambda rs: ", ".join(f"{LABELS[r['model']]} rare {r['rare']} {r['rare_novel']:.2f}" for _, r in rs)  # noqa
        parts.append("\n".join([
            "| the paper says (shape–colour pairs) | what our runs show | verdict |", "|---|---|---|",
            f"| The marginals are preserved | TV of both marginals below {MARGINAL_TV} in {kept} of {len(flat)} "
            f"settings | {_verdict(kept, len(flat))} |",
            f"| 4×4: the rare shape pair (colour pair) gets very few new colours (shapes) | share of its generated "
            f"mass on new cells below {FEW_NOVEL} in {few} of {len(small)} settings ({txt(small)}) | "
            f"{_verdict(few, len(small))} |",
            f"| 9×9: it takes all colours (shapes) almost evenly | new cells get at least {EVEN_SHARE:.0%} of their "
            f"even share in {even} of {len(large)} settings ({txt(large)}) | {_verdict(even, len(large))} |"]))
    note = "" if records.get("clevr_numerosity") else _smoke_note(presets)  # numerosity_findings has its own
    return Markdown(note + "\n\n".join(parts))


def measurement_accuracy(n: int = 500, seed: int = 12345) -> Markdown:
    """Every measurement's accuracy on ``n`` fresh renders per check (computed now, not typed in), next to the
    requirement it must meet."""
    from probe_utils.features import clevr as clevrf, dots as dotf, mnist3 as mnistf, pie as pief

    rows = []
    d = dotf.accuracy_report(n=max(n // 4, 25), seed=seed)
    rows.append(("dots", "count, exact (worst of counts 1–12)", f"{d['exact_worst']:.2%}", "≥ 99.5%",
                 d["exact_worst"] >= 0.995))
    p = pief.accuracy_report(n=n, seed=seed)
    for feat in ("size", "x", "y", "red"):
        err, sp = p[f"{feat}_p99_abs_err"], p[f"{feat}_spacing"]
        rows.append(("pie", f"{feat}, 99th percentile abs. error", f"{err:.4f}",
                     f"≤ ¼ of the grid spacing ({sp:g})", err <= sp / 4))
    m = mnistf.accuracy_report(n=n, seed=seed)
    rows.append(("three-MNIST", "digit, held-out real digits", f"{m['heldout_digit_accuracy_now']:.2%}", "≥ 98%",
                 m["heldout_digit_accuracy_now"] >= 0.98))
    rows.append(("three-MNIST", "triple, fresh renders", f"{m['triple_accuracy']:.2%}", "≥ 95%",
                 m["triple_accuracy"] >= 0.95))
    c = clevrf.accuracy_report(n=max(n // 2, 50), seed=seed)
    for key, label in (("count_accuracy", "count (1–10)"), ("pair_shape_accuracy", "two objects: shape pair"),
                       ("pair_color_accuracy", "two objects: colour pair")):
        if key in c:
            rows.append(("CLEVR", label, f"{c[key]:.2%}", "≥ 95%", c[key] >= 0.95))
    head = "| data set | measurement | on fresh renders | requirement | met |\n|---|---|---|---|---|\n"
    body = "".join(f"| {a} | {b} | {v} | {r} | {'yes' if ok else '**no**'} |\n" for a, b, v, r, ok in rows)
    return Markdown(head + body)
