"""Measuring CLEVR-like images: object count, and the shapes and colours of two-object scenes.

Rendered images carry exact labels (:mod:`probe_utils.render.clevr`); generated images need a
trained reader.  :class:`ClevrNet` is a small fully convolutional CNN on 64x64 inputs (128 px
is average-pooled 2x2, other sizes are resized) that predicts, on a 16x16 grid of 4x4-pixel
cells,

* a **density map**: each object adds a small Gaussian (sigma 2 px) of total mass 1 at its
  projected position (the renderer's ``xy`` label); the count is the rounded sum;
* **shape** (5) and **colour** (8) probabilities at the cells around each object's position.

``count(x)``: rounded total density, clipped at 0 (an image may read as 0 objects).  On
generated images a faint or half-formed object adds a fraction of 1, so it counts once the
fractions reach one half; :func:`maps` gives the density map itself for inspection.

``pair_attributes(x)``: for two-object scenes.  The density is split into two clusters
(weighted 2-means on the cell grid, started at the highest cell and the mass farthest from
it); the clusters are ordered **left to right by image x** (object "a" is the left one, as
in the renderer's labels and its ``pairs`` rows); each object's shape and colour are the
density-weighted mean probabilities over its cluster.  ``confidence`` is the product of the
four winning probabilities.  On images that do not hold two objects the answer is still
given but means little: check ``count`` first.

Weights (float16, 206 kB) and their accuracy on fresh renders ship in
``probe_utils/data/clevr_classifier.{npz,json}``, made by ``scripts/train_clevr_classifier.py``
from renders only.  Measured on 1000 + 1000 fresh 64-px scenes: count accuracy 0.993 over
1..10 objects (1.0 up to 7; 0.96 at 10), pair accuracy 0.992 (colours 1.0); at 128 px 0.99 and
0.99.  Errors: a small, far, thin object missed (mostly small tori), small cubes read as
cylinders or spheres.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.special import erf

from probe_utils.features._common import as_images, data_file, read_json_record
from probe_utils.params import check_int, check_seed
from probe_utils.render import clevr as _render

WEIGHTS_FILE = "clevr_classifier.npz"
INFO_FILE = "clevr_classifier.json"
RETRAIN_HINT = "rebuild it with `python scripts/train_clevr_classifier.py` (about 13 minutes on one CPU core)"
INPUT = 64
CELL = 4
GRID = INPUT // CELL
SIGMA = 2.0  # px, density blob of one object
N_SHAPES, N_COLORS = len(_render.SHAPES), len(_render.COLOR_NAMES)


class ClevrNet(nn.Module):
    """64x64 image -> (1 + 5 + 8, 16, 16): density, shape logits, colour logits per cell."""

    def __init__(self, width: int = 48) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                    nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(
            nn.PixelUnshuffle(2),                      # 12 x 32 x 32
            *block(12, 32), *block(32, 48, 2),         # 16 x 16
            *block(48, width), *block(width, width, 1, 2), *block(width, width, 1, 4), *block(width, width),
        )
        self.density = nn.Sequential(nn.Conv2d(width, 32, 1), nn.ReLU(inplace=True), nn.Conv2d(32, 1, 1))
        self.attributes = nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU(inplace=True),
                                        nn.Conv2d(width, N_SHAPES + N_COLORS, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return torch.cat([self.density(h), self.attributes(h)], 1)


def to_input(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Images (n,3,H,W) -> float32 (n,3,64,64) in [0,1]: 2^k x 64 px are average-pooled, other
    sizes resized (area-averaging down, bilinear up)."""
    img = as_images(x)
    h, w = img.shape[-2:]
    if (h, w) == (INPUT, INPUT):
        return img
    if h == w and h % INPUT == 0:
        return F.avg_pool2d(img, h // INPUT)
    mode = "area" if h > INPUT else "bilinear"
    return F.interpolate(img, size=(INPUT, INPUT), mode=mode, **({} if mode == "area" else {"align_corners": False}))


def targets(labels: dict[str, np.ndarray], size: int = INPUT) -> dict[str, torch.Tensor]:
    """Training targets from the labels of renders of side ``size``: density (n,16,16), and per
    cell the shape and colour of the nearest object if its position lies within one cell
    (-1: none)."""
    xy = labels["xy"] * (INPUT / size)
    n = xy.shape[0]
    centres = (np.arange(GRID) + 0.5) * CELL
    present = ~np.isnan(xy[..., 0])
    px = np.where(present, xy[..., 0], -1e3)[:, :, None, None]
    py = np.where(present, xy[..., 1], -1e3)[:, :, None, None]
    # density: each object's Gaussian integrated over the cells (erf), exact mass 1 in-frame
    def mass(c: np.ndarray, p: np.ndarray) -> np.ndarray:
        lo, hi = c - CELL / 2, c + CELL / 2
        return 0.5 * (erf((hi - p) / (SIGMA * np.sqrt(2))) - erf((lo - p) / (SIGMA * np.sqrt(2))))

    mx = mass(centres[None, None, None, :], px)
    my = mass(centres[None, None, :, None], py)
    density = (mx * my * present[:, :, None, None]).sum(1)
    d2 = (centres[None, None, None, :] - px) ** 2 + (centres[None, None, :, None] - py) ** 2
    nearest = d2.argmin(1)
    close = d2.min(1) <= CELL ** 2
    shape = np.take_along_axis(labels["shape"], nearest.reshape(n, -1), 1).reshape(n, GRID, GRID)
    color = np.take_along_axis(labels["color"], nearest.reshape(n, -1), 1).reshape(n, GRID, GRID)
    return {"density": torch.as_tensor(density, dtype=torch.float32),
            "shape": torch.as_tensor(np.where(close, shape, -1), dtype=torch.int64),
            "color": torch.as_tensor(np.where(close, color, -1), dtype=torch.int64),
            "count": torch.as_tensor(labels["count"], dtype=torch.float32)}


def classifier_info() -> dict[str, Any]:
    """The JSON record stored next to the weights (accuracy on fresh renders, training settings)."""
    return read_json_record(INFO_FILE, "CLEVR classifier record", RETRAIN_HINT)


@functools.lru_cache(maxsize=None)
def _classifier(device: str) -> ClevrNet:
    path = data_file(WEIGHTS_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"CLEVR classifier weights {path} are missing; {RETRAIN_HINT}")
    with path.open("rb") as fh, np.load(fh) as npz:
        state = {k: torch.from_numpy(npz[k].astype(np.float32) if npz[k].dtype == np.float16 else npz[k])
                 for k in npz.files}
    net = ClevrNet()
    net.load_state_dict(state)
    return net.eval().to(device)


def load_classifier(device: Any = None) -> ClevrNet:
    """The shipped classifier in eval mode on ``device`` (cached; never trains)."""
    return _classifier(str(torch.device("cpu" if device is None else device)))


@torch.no_grad()
def maps(x: torch.Tensor | np.ndarray, batch_size: int = 256, net: nn.Module | None = None
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Density (n,16,16), shape probabilities (n,5,16,16), colour probabilities (n,8,16,16),
    on the input's device."""
    batch_size = check_int("batch_size", batch_size, 1)
    img = to_input(x)
    net = net if net is not None else load_classifier(img.device)
    outs = [net(img[i:i + batch_size]).float() for i in range(0, img.shape[0], batch_size)]
    out = torch.cat(outs) if outs else torch.zeros(0, 1 + N_SHAPES + N_COLORS, GRID, GRID, device=img.device)
    return (out[:, 0], F.softmax(out[:, 1:1 + N_SHAPES], 1), F.softmax(out[:, 1 + N_SHAPES:], 1))


def count(x: torch.Tensor | np.ndarray, batch_size: int = 256, net: nn.Module | None = None) -> np.ndarray:
    """Number of objects in each image (n,3,H,W), tensor (any device) or array: the rounded
    sum of the predicted density map, at least 0."""
    density, _, _ = maps(x, batch_size, net)
    return np.maximum(np.rint(density.sum((1, 2)).cpu().numpy()), 0).astype(np.int64)


def _two_clusters(density: torch.Tensor, iters: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted 2-means of each density map's cells: centres (n,2,2) in pixels (x, y), unsorted,
    and soft weights (n,2,G*G) of each cell for each cluster."""
    n = density.shape[0]
    w = density.clamp(min=0).reshape(n, -1) + 1e-8
    c = (torch.arange(GRID, device=density.device, dtype=torch.float32) + 0.5) * CELL
    pos = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).reshape(-1, 2)  # (G*G, 2): x, y
    first = pos[w.argmax(1)]
    far = w * ((pos[None] - first[:, None]) ** 2).sum(-1)
    centres = torch.stack([first, pos[far.argmax(1)]], 1)
    for _ in range(iters):
        d2 = ((pos[None, None] - centres[:, :, None]) ** 2).sum(-1)  # (n, 2, G*G)
        assign = F.one_hot(d2.argmin(1), 2).permute(0, 2, 1).to(w.dtype) * w[:, None]
        mass = assign.sum(-1, keepdim=True).clamp(min=1e-8)
        centres = torch.where(mass > 1e-6, (assign @ pos) / mass, centres)
    return centres, assign


def pair_attributes(x: torch.Tensor | np.ndarray, batch_size: int = 256, net: nn.Module | None = None
                    ) -> dict[str, np.ndarray]:
    """Shapes and colours of the two objects of two-object images, left (a) to right (b).

    Returns ``shape_a``, ``shape_b``, ``color_a``, ``color_b`` (n,) names, ``codes`` (n,4)
    ints (shape_a, shape_b, color_a, color_b) in :data:`probe_utils.render.clevr.SHAPES` /
    ``COLOR_NAMES`` order, ``confidence`` (n,) the product of the four winning probabilities,
    and ``xy`` (n,2,2) the two objects' estimated positions in 64-px pixels."""
    density, shape_p, color_p = maps(x, batch_size, net)
    n = density.shape[0]
    centres, assign = _two_clusters(density)
    order = centres[:, :, 0].argsort(1)  # left to right
    centres = torch.gather(centres, 1, order[..., None].expand(-1, -1, 2))
    assign = torch.gather(assign, 1, order[..., None].expand(-1, -1, assign.shape[-1]))
    wts = assign / assign.sum(-1, keepdim=True).clamp(min=1e-8)
    sp = torch.einsum("nkp,ncp->nkc", wts, shape_p.reshape(n, N_SHAPES, -1))
    cp = torch.einsum("nkp,ncp->nkc", wts, color_p.reshape(n, N_COLORS, -1))
    sconf, scode = sp.max(-1)
    cconf, ccode = cp.max(-1)
    codes = torch.cat([scode, ccode], 1).cpu().numpy().astype(np.int64)
    conf = (sconf.prod(1) * cconf.prod(1)).cpu().numpy().astype(np.float64)
    shapes, colors = np.array(_render.SHAPES), np.array(_render.COLOR_NAMES)
    return {"shape_a": shapes[codes[:, 0]], "shape_b": shapes[codes[:, 1]],
            "color_a": colors[codes[:, 2]], "color_b": colors[codes[:, 3]],
            "codes": codes, "confidence": conf, "xy": centres.cpu().numpy()}


def evaluate(n: int, seed: int, size: int = 64, net: nn.Module | None = None) -> dict[str, float]:
    """Accuracies on fresh renders: ``n`` scenes of 1..10 objects (count) and ``n`` two-object
    scenes (pairs), all shapes, colours, sizes and materials."""
    x, lab = _render.render(n, seed=seed, size=size)
    err = count(x, net=net) - lab["count"]
    out = {"count_accuracy": float((err == 0).mean()), "count_mae": float(np.abs(err).mean())}
    for k in range(1, _render.MAX_OBJECTS + 1):
        sel = lab["count"] == k
        if sel.any():
            out[f"count_accuracy_{k}"] = float((err[sel] == 0).mean())
    x, lab = _render.render(n, seed=seed + 1, size=size, count=2)
    pa = pair_attributes(x, net=net)
    want = np.stack([lab["shape"][:, 0], lab["shape"][:, 1], lab["color"][:, 0], lab["color"][:, 1]], 1)
    ok = pa["codes"] == want
    out["pair_accuracy"] = float(ok.all(1).mean())
    out["pair_shape_accuracy"] = float(ok[:, :2].all(1).mean())
    out["pair_color_accuracy"] = float(ok[:, 2:].all(1).mean())
    out["object_shape_accuracy"] = float(ok[:, :2].mean())
    out["object_color_accuracy"] = float(ok[:, 2:].mean())
    return out


def accuracy_report(n: int = 300, seed: int = 12345) -> dict[str, float]:
    """Accuracy of the shipped classifier on fresh renders (64 px): ``count_accuracy`` (exact,
    1..10 objects uniform), ``count_mae``, ``count_accuracy_<k>``, and on two-object scenes
    ``pair_accuracy`` (both shapes and both colours right, left to right), per-pair and
    per-object shape/colour accuracies; plus ``recorded_*``: the same figures stored with the
    weights at training time (larger samples)."""
    n = check_int("n", n, 1, 1_000_000)
    seed = check_seed("seed", seed)
    out = evaluate(n, seed)
    for key in ("count_accuracy", "pair_accuracy"):
        out[f"recorded_{key}"] = float(classifier_info()["accuracy_64px"][key])
    return out
