#!/usr/bin/env python
"""Measured check of the pie combinations (not a test): where do the samples that miss the training combinations go?

For every stored ``pie_combos`` record of a preset at its own width and number of training images, prints the share
of measurable samples on training combinations, the share within one x or y step of one (size and red exact: a pie
placed a pixel off at 32 px), and, per feature, the share whose snapped value differs from that of the nearest
training combination (nearest by the summed grid steps).

    .venv/bin/python scripts/combination_miss_check.py --preset cpu --value 10
"""

from __future__ import annotations

import argparse

import numpy as np

from probe_utils.experiments import EXPERIMENTS, PRESETS
from probe_utils.render.pie import COMBO_COLUMNS
from probe_utils.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", default="book/results")
    ap.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    ap.add_argument("--value", type=int, default=None, help="only this number of training combinations")
    args = ap.parse_args()
    exp, pre = EXPERIMENTS["pie_combos"], PRESETS[args.preset]
    grid = tuple(exp.grid)
    cells = np.array(np.unravel_index(np.arange(int(np.prod(grid))), grid)).T  # grid indices per combination
    xy = [COMBO_COLUMNS.index("x"), COMBO_COLUMNS.index("y")]
    exact = [i for i in range(len(grid)) if i not in xy]
    recs = [r for r in Store(args.store).records("pie_combos", args.preset)
            if r["params"].get("width") == pre.width and r["params"].get("pool_size") == pre.pool_size
            and (args.value is None or r["value"] == args.value)]
    for r in sorted(recs, key=lambda r: (r["model"], r["value"], r["seed"])):
        d = np.asarray(r["result"]["distribution"], float)
        if d.sum() <= 0:
            print(f"{r['model']} m={r['value']} seed {r['seed']}: no measurable sample")
            continue
        d = d / d.sum()
        train = np.asarray(r["result"]["train_support"], int)
        steps = np.abs(cells[:, None, :] - cells[train][None, :, :])  # (combination, training combination, feature)
        near = ((steps[:, :, exact].max(axis=2) == 0) & (steps[:, :, xy].max(axis=2) <= 1)).any(axis=1)
        nearest = steps[np.arange(len(cells)), steps.sum(axis=2).argmin(axis=1)]
        off = ", ".join(f"{f} {d[nearest[:, i] > 0].sum():.2f}" for i, f in enumerate(COMBO_COLUMNS))
        print(f"{r['model']} m={r['value']} seed {r['seed']}: on training {d[train].sum():.2f}, within one x/y step "
              f"{d[near].sum():.2f}; off per feature: {off}")


if __name__ == "__main__":
    main()
