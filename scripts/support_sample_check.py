#!/usr/bin/env python
"""Measured check of the learned-support rule (not a test): how much do precision and recall depend on the number
of samples a combinations run measures?

For every stored combinations record of a preset whose final checkpoint is in the runs folder, the trained model is
sampled again (``--samples``, default the released code's 20,480, with a generator of its own), every sample is
placed on the grid, and the paper's 10% rule is scored on all of them and on disjoint sets of the preset's own
sample count (4,000 at ``cpu``). Prints one line per record: the stored score, the mean and spread over the small
sets, the score on all samples, and the rule's threshold in samples for each.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/support_sample_check.py --preset cpu --model vae
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from probe_utils import analysis as A
from probe_utils.experiments import EXPERIMENTS, PRESETS, load_final_model
from probe_utils.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", default="book/results")
    ap.add_argument("--runs", default="runs", help="folder of the runs' final checkpoints")
    ap.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    ap.add_argument("--experiments", default="pie_combos,mnist_combos")
    ap.add_argument("--model", default=None, help="only this family (default: all)")
    ap.add_argument("--samples", type=int, default=20_480)
    args = ap.parse_args()
    torch.set_num_threads(1)
    store, pre = Store(args.store), PRESETS[args.preset]
    small = pre.final_samples
    for name in args.experiments.split(","):
        exp = EXPERIMENTS[name]
        n_total = int(np.prod(exp.grid))
        for rec in sorted(store.records(name, args.preset), key=lambda r: (r["model"], r["value"], r["seed"])):
            if args.model and rec["model"] != args.model:
                continue
            label = f"{name} {rec['model']} m={rec['value']} seed {rec['seed']}"
            try:
                net, _ = load_final_model(rec, args.runs)
            except FileNotFoundError as e:
                print(f"{label}: {e}")
                continue
            gen = torch.Generator().manual_seed(777 + rec["seed"])  # not the record's own samples
            with torch.no_grad():
                x = torch.cat([net.sample(min(2048, args.samples - i), generator=gen)
                               for i in range(0, args.samples, 2048)])
            v = np.asarray(exp.measure(x), float)
            ids = np.where(np.isfinite(v), v, -1).astype(np.int64)
            train = rec["result"]["train_support"]
            score = lambda g: A.support_precision_recall(g, train, n_total=n_total)  # noqa: E731
            whole, stored = score(ids), score(A.record_ids(rec))
            parts = [score(ids[i:i + small]) for i in range(0, len(ids) - small + 1, small)]
            p, r = [s["precision"] for s in parts], [s["recall"] for s in parts]
            print(f"{label}: stored P {stored['precision']:.3f} R {stored['recall']:.3f} | "
                  f"{len(parts)} sets of {small}: P {np.mean(p):.3f} ± {np.std(p):.3f} R {np.mean(r):.3f} "
                  f"(threshold {parts[0]['min_count']:.2f} samples) | all {len(ids)}: P {whole['precision']:.3f} "
                  f"R {whole['recall']:.3f} (threshold {whole['min_count']:.2f} samples)", flush=True)


if __name__ == "__main__":
    main()
