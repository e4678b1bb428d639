#!/usr/bin/env python
"""Train the Three-MNIST digit classifier and write its weights and accuracy record.

Trains :class:`probe_utils.features.mnist3.DigitNet` (ten digits and a "no digit" class) on the
*train* part of the shipped digits (``probe_utils/data/mnist_digits.npz``) with torch-only
augmentation as generated digits look: random rotation (+-15 deg), scale (0.85..1.15), shear and
shift (+-3 px) by ``affine_grid`` / ``grid_sample``, the renderer's column crop, Gaussian blur (up
to 1.75 px of a 32-px image), faint strokes (down to 25%), a random down/up-sampling round trip
(as if rendered at 64, 48 or 32 px) with pixel noise at that resolution. A fifth of the cells are
replaced by ink that is no digit (blends of two digits of different classes, soft blobs), labelled
``NO_DIGIT``. Then it measures the accuracy on the *held-out* digits with the float16 weights as
shipped and writes

- ``probe_utils/data/mnist3_classifier.npz``: float16 state dict;
- ``probe_utils/data/mnist3_classifier.json``: held-out accuracies and training settings.

Afterwards run ``python scripts/calibrate_classifiers.py mnist3``: it adds the refusal threshold
calibrated for these weights to the JSON.

Usage: ``python scripts/train_mnist_classifier.py [--epochs 40] [--threads 1]``
(a few minutes on one idle CPU core; the shipped weights took 59 minutes on a busy 2-core machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_mnist_digits import write_npz  # noqa: E402

from probe_utils.features import mnist3 as feat  # noqa: E402
from probe_utils.render import mnist3 as rend  # noqa: E402

DATA = Path(rend.__file__).resolve().parent.parent / "data"
BLUR_MAX_PX = 1.75   # strongest training blur, in pixels of a 32-px image
FAINT_MIN = 0.25     # faintest training strokes (share of full ink)
NEGATIVE_SHARE = 0.2  # share of training cells replaced by ink that is no digit (class NO_DIGIT)
NEGATIVE_KINDS = (0, 2)  # which kinds of no-digit cells (with_negatives): blends and blobs
AUGMENTATION = ("rotation +-15 deg, scale 0.85-1.15, shear +-0.2, shift +-3 px, renderer column crop; blur up to "
                "1.75 px of a 32-px image (50%); strokes at 25-100% (50%); down/up-sampling as at 64/48/32 px with "
                "pixel noise sd up to 0.08 at that resolution (30%); 20% of cells replaced by class 10 'no digit': "
                "two digits of different classes blended 35-65%, or one or two soft blobs")


def blur_each(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of each image (B,1,H,W) by its own ``sigma`` (B,) in pixels (black beyond the border)."""
    b = x.shape[0]
    half = max(1, int(math.ceil(3 * float(sigma.max()))))
    t = torch.arange(-half, half + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None] / sigma.clamp(min=1e-3)[:, None]) ** 2)
    k = k / k.sum(1, keepdim=True)
    y = x.reshape(1, b, *x.shape[-2:])
    y = F.conv2d(y, k.view(b, 1, 1, -1), padding=(0, half), groups=b)
    y = F.conv2d(y, k.view(b, 1, -1, 1), padding=(half, 0), groups=b)
    return y.reshape(x.shape)


def augment(d: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random affine + renderer crop + resolution round trip + generated-like blur, faint strokes and noise on
    (B,1,28,28) in [0,1]."""
    b = d.shape[0]

    def u(lo: float, hi: float, shape=(b,)) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(shape, generator=gen)

    def some(p: float) -> torch.Tensor:
        return (torch.rand(b, generator=gen) < p)[:, None, None, None]

    angle = u(-15, 15) * math.pi / 180
    scale = u(0.85, 1.15)
    shear = u(-0.2, 0.2)
    shift = u(-3, 3, (b, 2)) * 2 / 28
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin + shear * cos, shift[:, 0]], 1),
                         torch.stack([sin, cos + shear * sin, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(d.shape), align_corners=False)
    x = feat.crop_columns(F.grid_sample(d, grid, align_corners=False, padding_mode="zeros"))
    # blurred strokes, as generated digits are: sigma up to BLUR_MAX_PX pixels of a 32-px image (2.25 cell
    # pixels each), for half of the digits
    sigma = u(0.0, BLUR_MAX_PX * rend.CANVAS / 32)
    x = torch.where(some(0.5), blur_each(x, sigma), x)
    # faint strokes (ink down to FAINT_MIN of its strength) for half of the digits
    x = torch.where(some(0.5), x * u(FAINT_MIN, 1.0)[:, None, None, None], x)
    # a resolution round trip as if rendered at 64, 48 or 32 px, with pixel noise (sd up to 0.08) at that
    # resolution for 30% of the digits, clipped as in an image
    side = int(torch.randint(0, 4, (1,), generator=gen))
    small = round(28 * (64, 48, 32)[side - 1] / rend.CANVAS) if side else 28
    if side:
        x = F.interpolate(x, size=(small, small), mode="bilinear", align_corners=False, antialias=True)
    noise = torch.randn(x.shape, generator=gen) * u(0.0, 0.08)[:, None, None, None]
    x = torch.where(some(0.3), x + noise, x).clamp(0, 1)
    if side:
        x = feat.crop_columns(F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False))
    return x


def blobs(b: int, gen: torch.Generator) -> torch.Tensor:
    """``b`` cells (B,1,28,28) holding one or two soft filled ellipses: ink that is no digit."""
    yy, xx = torch.meshgrid(torch.arange(28.0) + 0.5, torch.arange(28.0) + 0.5, indexing="ij")
    out = torch.zeros(b, 1, 28, 28)
    for _ in range(2):
        u = torch.rand(b, 6, generator=gen)
        cx, cy = 14 + 6 * (u[:, 0] - 0.5), 14 + 6 * (u[:, 1] - 0.5)
        ax, ay = 3 + 4 * u[:, 2], 5 + 5 * u[:, 3]
        ang = math.pi * u[:, 4]
        dx, dy = xx[None] - cx[:, None, None], yy[None] - cy[:, None, None]
        c, s = torch.cos(ang)[:, None, None], torch.sin(ang)[:, None, None]
        r = ((c * dx + s * dy) / ax[:, None, None]) ** 2 + ((-s * dx + c * dy) / ay[:, None, None]) ** 2
        blob = torch.sigmoid((1 - r.sqrt()) / 0.12) * (0.5 + 0.5 * u[:, 5])[:, None, None]
        keep = torch.ones(b) if not out.any() else (torch.rand(b, generator=gen) < 0.5).float()
        out = torch.maximum(out, blob[:, None] * keep[:, None, None, None])
    return out


def with_negatives(d: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace a share ``NEGATIVE_SHARE`` of raw digits (B,1,28,28) by cells that hold no readable digit, labelled
    ``NO_DIGIT``: two digits of different classes blended 35-65% (``NEGATIVE_KINDS`` 0), a digit blurred beyond
    reading, 2.7-4 px of a 32-px image (1), one or two soft blobs (2)."""
    b = d.shape[0]
    kind = torch.tensor(NEGATIVE_KINDS)[torch.randint(0, len(NEGATIVE_KINDS), (b,), generator=gen)]
    neg = torch.rand(b, generator=gen) < NEGATIVE_SHARE
    partner = torch.randperm(b, generator=gen)
    w = (0.35 + 0.3 * torch.rand(b, generator=gen))[:, None, None, None]
    blend = w * d + (1 - w) * d[partner]
    blend_ok = y != y[partner]
    sigma = (2.7 + 1.3 * torch.rand(b, generator=gen)) * rend.CANVAS / 32
    smeared = blur_each(d, sigma)
    smeared = smeared / smeared.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-6)
    fake = torch.where((kind == 0)[:, None, None, None], blend,
                       torch.where((kind == 1)[:, None, None, None], smeared, blobs(b, gen)))
    neg = neg & ((kind != 0) | blend_ok)
    return torch.where(neg[:, None, None, None], fake, d), torch.where(neg, torch.full_like(y, feat.NO_DIGIT), y)


def to_half_state(net: torch.nn.Module) -> dict[str, np.ndarray]:
    """State dict as numpy: float tensors in float16, integer buffers as they are."""
    return {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()).numpy()
            for k, v in net.state_dict().items()}


@torch.no_grad()
def evaluate(net: torch.nn.Module) -> dict[str, float]:
    """Held-out accuracies: bare 28x28 digits (cropped like a cell) and full renders at 64/32 px."""
    images, labels = rend.load_digits("heldout")
    x = feat.crop_columns(torch.from_numpy(images).float().div(255).unsqueeze(1))
    bare = float((net(x).argmax(1).numpy() == labels).mean())
    m = len(labels) - len(labels) % 3
    trip = labels[:m].reshape(-1, 3) @ np.array([100, 10, 1])
    xr = rend.compose(torch.from_numpy(images[:m]).reshape(-1, 3, 28, 28), 64)
    pred = feat.digit_probs(xr, net=net).argmax(2).numpy()
    return {"heldout_digit_accuracy": feat.heldout_digit_accuracy(64, net=net),
            "heldout_digit_accuracy_32px": feat.heldout_digit_accuracy(32, net=net),
            "heldout_digit_accuracy_bare28": bare,
            "heldout_triple_accuracy": float((pred @ np.array([100, 10, 1]) == trip).mean()),
            "heldout_digits": int(len(labels))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    images, labels = rend.load_digits("train")
    xs = torch.from_numpy(images).float().div(255).unsqueeze(1)
    ys = torch.from_numpy(labels)
    net = feat.DigitNet()
    steps = args.epochs * math.ceil(len(ys) / args.batch)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.2)
    start = time.time()
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(ys), generator=gen)
        total, correct = 0.0, 0
        for i in range(0, len(ys), args.batch):
            idx = order[i:i + args.batch]
            d, y = with_negatives(xs[idx], ys[idx], gen)
            x = augment(d, gen)
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        print(f"epoch {epoch + 1:2d}/{args.epochs}  loss {total / len(ys):.4f}  "
              f"train acc (augmented) {correct / len(ys):.4f}  {time.time() - start:.0f} s", flush=True)
    train_s = time.time() - start

    state = to_half_state(net)
    weights = args.out / feat.WEIGHTS_FILE
    write_npz(weights, **state)
    shipped = feat.DigitNet()
    shipped.load_state_dict(feat.state_from_npz(weights))
    scores = evaluate(shipped.eval())
    data_file = DATA / rend.DATA_FILE
    record = {
        **scores,
        "weights_file": feat.WEIGHTS_FILE,
        "weights_dtype": "float16",
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "train_digits": int(len(ys)),
        "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "seed": args.seed,
        "threads": args.threads, "train_seconds": round(train_s, 1),
        "augmentation": AUGMENTATION,
        "torch": torch.__version__,
        "data_sha256": hashlib.sha256(data_file.read_bytes()).hexdigest(),
        "heldout_note": "every fifth digit of each class of mnist_digits.npz, never used for training; "
                        "heldout_digit_accuracy reads them rendered three per 64-px image",
    }
    (args.out / feat.INFO_FILE).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(scores, indent=2))
    print(f"wrote {weights} ({weights.stat().st_size / 1e3:.0f} kB) and {feat.INFO_FILE}; "
          f"training took {train_s:.0f} s")


if __name__ == "__main__":
    main()
