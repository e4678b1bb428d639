#!/usr/bin/env python
"""Train the CLEVR reader (object count; shapes and colours of two-object scenes).

Renders a training set with :mod:`probe_utils.render.clevr` on the CPU (scenes of 1..10
objects, plus as many two-object scenes), trains :class:`probe_utils.features.clevr.ClevrNet`
on density and per-cell shape/colour targets, augmented as generated scenes look (random
horizontal flips, brightness and noise jitter, blur, a 32-px round trip, lower contrast, washed
colours, pixel noise: ``AUGMENTATION``), then measures the float16 weights as shipped on fresh
renders (other seeds) and writes

- ``probe_utils/data/clevr_classifier.npz``: float16 state dict (about 0.2 MB);
- ``probe_utils/data/clevr_classifier.json``: accuracies at 64 and 128 px, settings, timings.

Afterwards run ``python scripts/calibrate_classifiers.py clevr``: it adds the refusal thresholds
calibrated for these weights to the JSON.

Usage: ``python scripts/train_clevr_classifier.py [--scenes 8000] [--steps 5000] [--threads 1]``
(the shipped file: ``--steps 5000``, 12 min rendering, 81 min training, 15 s measuring on one
core of a busy 2-core machine; about a quarter of that on an idle core).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from probe_utils.features import clevr as feat
from probe_utils.render import clevr as rend

DATA = Path(feat.__file__).resolve().parent.parent / "data"
BLUR_MAX_PX = 1.75   # strongest training blur, pixels of a 64-px image
CONTRAST_MIN = 0.3   # lowest training contrast (towards the image mean)
AUGMENTATION = ("random horizontal flips, brightness +-3%, noise sd 0.01; then as generated scenes look: Gaussian "
                "blur up to 1.75 px, edges replicated (40%); a 32-px round trip (15%); contrast towards the image "
                "mean 30-100% (40%); colours 30-100% of the way from grey (20%); pixel noise sd up to 0.06 (30%)")


def render_set(n: int, seed: int, chunk: int = 500, **kw) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """n renders at 64 px as uint8 with their training targets, in chunks."""
    xs, ts = [], []
    for i, start in enumerate(range(0, n, chunk)):
        x, lab = rend.render(min(chunk, n - start), seed=seed * 1000 + i, size=64, **kw)
        xs.append((x * 255).round().to(torch.uint8))
        ts.append(feat.targets(lab))
    return torch.cat(xs), {k: torch.cat([t[k] for t in ts]) for k in ts[0]}


def loss_fn(out: torch.Tensor, tgt: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    dens = out[:, 0]
    ns = feat.N_SHAPES
    l_map = ((dens - tgt["density"]) ** 2).sum((1, 2)).mean()
    l_cnt = F.smooth_l1_loss(dens.sum((1, 2)), tgt["count"])
    l_shape = F.cross_entropy(out[:, 1:1 + ns], tgt["shape"], ignore_index=-1)
    l_color = F.cross_entropy(out[:, 1 + ns:], tgt["color"], ignore_index=-1)
    total = 10 * l_map + 0.1 * l_cnt + l_shape + l_color
    parts = {"map": l_map, "cnt": l_cnt, "shape": l_shape, "color": l_color}
    return total, {k: float(v.detach()) for k, v in parts.items()}


def blur_each(img: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of each image (B,C,H,W) by its own ``sigma`` (B,) in pixels, edges replicated."""
    b, c, h, w = img.shape
    half = max(1, int(math.ceil(3 * float(sigma.max()))))
    t = torch.arange(-half, half + 1, dtype=img.dtype)
    k = torch.exp(-0.5 * (t[None] / sigma.clamp(min=1e-3)[:, None]) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)             # (B*C, K)
    y = F.pad(img.reshape(1, b * c, h, w), (half, half, half, half), mode="replicate")
    y = F.conv2d(y, k.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, -1, 1), groups=b * c)
    return y.reshape(b, c, h, w)


def generated_like(img: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """What generated scenes look like, at random per image: blur (up to ``BLUR_MAX_PX`` px), contrast towards the
    image mean (down to ``CONTRAST_MIN``), washed-out colours, a 32-px round trip, pixel noise."""
    b = img.shape[0]

    def some(p: float) -> torch.Tensor:
        return (torch.rand(b, generator=gen) < p)[:, None, None, None]

    def u(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(b, generator=gen))[:, None, None, None]

    img = torch.where(some(0.4), blur_each(img, BLUR_MAX_PX * torch.rand(b, generator=gen)), img)
    small = F.interpolate(F.interpolate(img, size=(32, 32), mode="area"), size=img.shape[-2:], mode="bilinear",
                          align_corners=False)
    img = torch.where(some(0.15), small, img)
    mean = img.mean(dim=(1, 2, 3), keepdim=True)
    img = torch.where(some(0.4), mean + u(CONTRAST_MIN, 1.0) * (img - mean), img)
    grey = img.mean(dim=1, keepdim=True)
    img = torch.where(some(0.2), grey + u(0.3, 1.0) * (img - grey), img)
    return torch.where(some(0.3), img + u(0.0, 0.06) * torch.randn(img.shape, generator=gen), img)


def batch(x: torch.Tensor, tgt: dict[str, torch.Tensor], idx: torch.Tensor, gen: torch.Generator):
    img = x[idx].float() / 255
    t = {k: v[idx] for k, v in tgt.items()}
    flip = torch.rand(len(idx), generator=gen) < 0.5
    img[flip] = img[flip].flip(-1)
    for k in ("density", "shape", "color"):
        t[k][flip] = t[k][flip].flip(-1)
    gain = 1 + 0.06 * (torch.rand(len(idx), 1, 1, 1, generator=gen) - 0.5)
    img = (img * gain + 0.01 * torch.randn(img.shape, generator=gen)).clamp(0, 1)
    img = generated_like(img, gen).clamp(0, 1)
    return img.contiguous(memory_format=torch.channels_last), t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=8000, help="scenes of 1..10 objects (as many two-object ones)")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--eval", type=int, default=600, help="fresh scenes per accuracy figure (64 px)")
    ap.add_argument("--out", type=Path, default=DATA)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    t0 = time.time()
    xa, ta = render_set(args.scenes, args.seed)
    xb, tb = render_set(args.scenes, args.seed + 1, count=2)
    x = torch.cat([xa, xb])
    tgt = {k: torch.cat([ta[k], tb[k]]) for k in ta}
    t_render = time.time() - t0
    print(f"rendered {len(x)} scenes in {t_render:.0f} s", flush=True)

    net = feat.ClevrNet().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.15)
    t1 = time.time()
    net.train()
    for step in range(args.steps):
        idx = torch.randint(0, len(x), (args.batch,), generator=gen)
        img, t = batch(x, tgt, idx, gen)
        loss, parts = loss_fn(net(img), t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        sched.step()
        if step % 200 == 0 or step == args.steps - 1:
            msg = " ".join(f"{k} {v:.3f}" for k, v in parts.items())
            print(f"step {step:5d} loss {float(loss.detach()):.3f} {msg} ({time.time() - t1:.0f} s)", flush=True)
    t_train = time.time() - t1

    # ship float16; measure exactly what ships
    state = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    state = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in state.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    wpath = args.out / feat.WEIGHTS_FILE
    np.savez_compressed(wpath, **state)
    shipped = feat.ClevrNet()
    shipped.load_state_dict({k: torch.from_numpy(v.astype(np.float32) if v.dtype == np.float16 else v)
                             for k, v in state.items()})
    shipped.eval()
    t2 = time.time()
    acc64 = feat.evaluate(args.eval, seed=900_001, size=64, net=shipped)
    acc128 = feat.evaluate(max(200, args.eval // 4), seed=900_101, size=128, net=shipped)
    t_eval = time.time() - t2
    info = {
        "accuracy_64px": acc64,
        "accuracy_128px": acc128,
        "eval_scenes": {"64px": args.eval, "128px": max(200, args.eval // 4)},
        "eval_seeds": {"64px": 900_001, "128px": 900_101},
        "training": {"scenes": 2 * args.scenes, "steps": args.steps, "batch": args.batch, "lr": args.lr,
                     "threads": args.threads, "seed": args.seed, "render_s": round(t_render, 1),
                     "train_s": round(t_train, 1), "eval_s": round(t_eval, 1), "augmentation": AUGMENTATION},
        "weights_bytes": wpath.stat().st_size,
        "weights_sha256": hashlib.sha256(wpath.read_bytes()).hexdigest(),
        "torch": torch.__version__,
    }
    (args.out / feat.INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
