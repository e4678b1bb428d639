"""Measured check of the PixelCNN family at CPU scale (not a test): does it fit one-dot images in a few CPU minutes?

Trains ``PixelCNN(image_size=32, width=16)`` with the one training loop on 20,000 renders of one dot, one thread,
for ``--cpu-s`` seconds of this process's CPU time (probes of ``--probe-samples`` every 500 iterations, as the cpu
preset), then reports the bits/dim curve, seconds per training iteration, CPU seconds to sample 1000 images, and the
share of ``--final`` samples in which :func:`probe_utils.features.dots.count` finds exactly one dot.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/pixelcnn_check.py --cpu-s 300 --out /tmp/pixelcnn_check.json
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from probe_utils.features import dots as dot_features
from probe_utils.models.pixelcnn import PixelCNN
from probe_utils.render import dots
from probe_utils.train import ImagePool, TrainConfig, train

BINS = 18  # counts 0..16, and 17 for more


def count_probe(images: torch.Tensor) -> tuple[np.ndarray, float]:
    """Distribution of measurable dot counts over BINS bins, and the share the counter refused."""
    c = dot_features.count(images)
    ok = c >= 0
    hist = np.bincount(np.minimum(c[ok], BINS - 1), minlength=BINS).astype(float)
    return hist / max(hist.sum(), 1.0), float(1.0 - ok.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-s", type=float, default=300.0, help="training budget, CPU seconds of this process")
    ap.add_argument("--layers", type=int, default=None, help="gated layers after the first (default: the model's)")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast while training")
    ap.add_argument("--probe-samples", type=int, default=1000)
    ap.add_argument("--final", type=int, default=500, help="samples counted at the end")
    ap.add_argument("--pool", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the report as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)

    x, _ = dots.render(count=1, n=args.pool, seed=args.seed, size=32)
    model_opts = {} if args.layers is None else {"layers": args.layers}
    torch.manual_seed(args.seed)
    model = PixelCNN(image_size=32, width=16, **model_opts)
    quantised = model.quantise(x[:2000]).float() / (model.levels - 1)
    same_count = float((dot_features.count(quantised) == dot_features.count(x[:2000])).mean())
    pool = ImagePool(x, torch.device("cpu"))
    cfg = TrainConfig(steps=10**6, batch_size=64, probe_every=500, probe_samples=args.probe_samples,
                      checkpoint_every=10**6, max_wall_s=args.cpu_s, budget_clock="cpu", cpu_bf16=args.bf16)
    res = train(model, pool, cfg, seed=args.seed, probe=count_probe, progress=False)

    t0 = time.process_time()
    model.sample(1000, generator=torch.Generator().manual_seed(7))
    sample_1000_s = time.process_time() - t0
    imgs = model.sample(args.final, generator=torch.Generator().manual_seed(123))
    c = dot_features.count(imgs)
    report = {
        "layers": model.layers, "levels": model.levels, "parameters": model.n_parameters(), "bf16": args.bf16,
        "steps": res.steps, "cpu_s": round(res.cpu_s, 1), "wall_s": round(res.wall_s, 1),
        "cpu_s_per_step_incl_probes": round(res.cpu_s / max(res.steps, 1), 4),
        "sample_1000_cpu_s": round(sample_1000_s, 2),
        "bits_per_dim": [(r["step"], round(r["pixelcnn"] / math.log(2), 4)) for r in res.losses[::4]],
        "probes": [{"step": p["step"], "one_dot": round(p["dist"][1], 3), "invalid": round(p["invalid"], 3)}
                   for p in res.probes],
        "final_samples": int(len(c)),
        "exactly_one_share": round(float((c == 1).mean()), 3),
        "count_hist": {str(k): int(v) for k, v in zip(*np.unique(c, return_counts=True))},
        "quantised_training_count_unchanged": round(same_count, 4),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
