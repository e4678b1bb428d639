"""Measured check of the diffusion family at CPU scale (not a test): does it fit one-dot training images?

Trains ``Diffusion`` at 32 px on images of exactly one dot for a budget of CPU seconds on one thread, then samples
500 images with several DDIM step counts (averaged weights, and the live ones at the default step count) and reports
the share counted as exactly one dot by ``probe_utils.features.dots.count``, the unreadable (-1) share, the CPU
seconds per 1000 samples, and the loss curve. Writes a JSON report.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/diffusion_check.py --cpu-s 300 --out /tmp/diffusion_check.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from probe_utils.features import dots as dot_features
from probe_utils.models.diffusion import Diffusion
from probe_utils.render import dots
from probe_utils.train import ImagePool, TrainConfig, load_checkpoint, train


def one_dot_share(images: torch.Tensor) -> dict[str, float]:
    c = np.asarray(dot_features.count(images))
    return {"one": float((c == 1).mean()), "refused": float((c == -1).mean()),
            "mean_count": float(c[c >= 0].mean()) if (c >= 0).any() else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-s", type=float, default=300.0, help="training budget in CPU seconds")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--prediction", choices=["v", "eps"], default="v", help="the network's target")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast while training")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--pool", type=int, default=20000)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50])
    ap.add_argument("--out", type=Path, default=Path("/tmp/diffusion_check.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    x, _ = dots.render(count=1, n=args.pool, seed=0, size=32)
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "data": one_dot_share(x[:args.samples])}
    model = Diffusion(image_size=32, width=args.width, prediction=args.prediction)
    ckpt = args.out.with_suffix(".pt")
    ckpt.unlink(missing_ok=True)
    cfg = TrainConfig(steps=10 ** 7, batch_size=64, log_every=50, checkpoint_every=10 ** 7, lr=args.lr,
                      cpu_bf16=args.bf16, max_wall_s=args.cpu_s, budget_clock="cpu", ema=args.ema)
    res = train(model, ImagePool(x, torch.device("cpu")), cfg, seed=0, checkpoint=ckpt, progress=False)
    report["train"] = {"iterations": res.steps, "cpu_s": res.cpu_s, "wall_s": res.wall_s,
                       "it_per_cpu_s": res.steps / res.cpu_s,
                       "loss": [(r["step"], round(r["diffusion"], 5)) for r in res.losses]}
    print(json.dumps(report["train"] | {"loss": report["train"]["loss"][::5]}), flush=True)

    def measure(m: Diffusion, steps: int, label: str) -> None:
        m.sample_steps = steps
        t0 = time.process_time()
        images = m.sample(args.samples, generator=torch.Generator().manual_seed(1))
        cpu = time.process_time() - t0
        report[label] = one_dot_share(images) | {"cpu_s_per_1000": cpu * 1000 / args.samples}
        print(label, report[label], flush=True)

    for s in args.steps:  # the model ends training holding its averaged weights
        measure(model, s, f"ema_steps{s}")
    live = Diffusion(image_size=32, width=args.width, prediction=args.prediction)
    live.load_state_dict(load_checkpoint(ckpt)["model"])
    measure(live, 20, "live_steps20")
    args.out.write_text(json.dumps(report, indent=1))
    ckpt.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
