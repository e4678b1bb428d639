"""Measuring CLEVR-like images: object count, and the shapes and colours of two-object scenes; refusing what it
cannot read.

Rendered images carry exact labels (:mod:`probe_utils.render.clevr`); generated images need a
trained reader.  :class:`ClevrNet` is a small fully convolutional CNN on 64x64 inputs (128 px
is average-pooled 2x2, other sizes are resized) that predicts, on a 16x16 grid of 4x4-pixel
cells,

* a **density map**: each object adds a small Gaussian (sigma 2 px) of total mass 1 at its
  projected position (the renderer's ``xy`` label); the count is the rounded sum;
* **shape** (5) and **colour** (8) probabilities at the cells around each object's position.

It is trained on renders only, augmented as generated scenes look (blur, lower contrast, washed
colours, pixel noise, a 32-px round trip; ``scripts/train_clevr_classifier.py``).

``count(x)``: the rounded density sum; -1 (refused, :func:`count_details` says why, :data:`REASONS`)
for an image with NaN or infinite pixels; an image of pixel noise (:func:`pixel_noise` above
``NOISE_MAX``); no object found (sum below 0.5: blank ground, a white or grey image, most grey
mush); more than 10 objects (the reader knows 1-10); a diffuse or weak map (less than
``PEAK_SHARE_MIN`` of the mass near its peaks, or no cell above ``PEAK_TOP_MIN``: grey mush, a
black image); and a sum whose distance from a whole number gives a *count confidence*
``1 - 2 |sum - round(sum)|`` below the calibrated threshold.

``pair_attributes(x)``: for two-object scenes.  The density is split into two clusters
(weighted 2-means on the cell grid, started at the highest cell and the mass farthest from
it); the clusters are ordered **left to right by image x** (object "a" is the left one, as
in the renderer's labels and its ``pairs`` rows); each object's shape and colour are the
density-weighted mean probabilities over its cluster.  An image is refused (codes -1,
:data:`PAIR_REASONS`) when its count is refused or is not 2, or when its pair confidence (the
``min`` or ``product`` of the four winning probabilities, the calibrated rule) is below the
calibrated threshold.

The thresholds (:func:`calibration`) are set by ``scripts/calibrate_classifiers.py`` as the
lowest at which the accepted images of a generated-like set (:data:`CALIBRATION_CONDITIONS`) are
read right at least 95% of the time: ``threshold`` at 64 px (for images of 64 px or more, as the
CLEVR experiments use), ``threshold_32`` at 32 px (smaller images).  :func:`robustness_report`
gives the accuracy of accepted images and the share refused per condition and on images that
are no scene (:data:`NOT_SCENES`).

Weights (float16, 207 kB), their accuracy on fresh renders and the calibration ship in
``probe_utils/data/clevr_classifier.{npz,json}``.  Measured before any refusal on 600 + 600
fresh 64-px scenes: count accuracy 0.995 over 1..10 objects (1.0 up to 7; 0.98 from 8), pair
accuracy 0.98 (colours 1.0); at 128 px 0.995 and 0.99.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.special import erf

from probe_utils.features._common import as_images, data_file, finite_images, read_json_record
from probe_utils.params import check_choice, check_float, check_int, check_seed
from probe_utils.render import clevr as _render

WEIGHTS_FILE = "clevr_classifier.npz"
INFO_FILE = "clevr_classifier.json"
RETRAIN_HINT = ("rebuild it with `python scripts/train_clevr_classifier.py` (about 25 minutes on one idle CPU core), "
                "then `python scripts/calibrate_classifiers.py clevr`")
INPUT = 64
CELL = 4
GRID = INPUT // CELL
SIGMA = 2.0  # px, density blob of one object
N_SHAPES, N_COLORS = len(_render.SHAPES), len(_render.COLOR_NAMES)
CALIBRATE_HINT = "recompute it with `python scripts/calibrate_classifiers.py clevr`"
#: pixel noise (:func:`pixel_noise`) beyond which an image is noise, not a scene (renders: at most 0.03; renders
#: with pixel noise of sd 0.05: at most 0.05; uniform noise: 0.12)
NOISE_MAX = 0.08
#: a density cell counts as a peak from this value on
PEAK_MIN = 0.1
#: least share of the density mass near its peaks (:func:`peak_share`) for the map to read as distinct objects
#: (renders, also blurred, faint, noisy: at least 0.8; grey mush: mostly 0.1-0.6)
PEAK_SHARE_MIN = 0.75
#: least value of the map's highest cell: one object's blob peaks at 0.25-0.47 on renders, also generated-like
#: ones; grey mush mostly below 0.2
PEAK_TOP_MIN = 0.2
#: pair confidence rules (:func:`pair_score`)
PAIR_RULES = ("min", "product")
#: why a count is refused (``count_details(...)["reason"]``); 0 = counted
REASONS = {0: "", 1: "not a number (NaN or infinite pixels)", 2: "pixel noise, not a scene",
           3: "no object found (blank ground, grey mush)", 4: "more than 10 objects (beyond what the reader knows)",
           5: "diffuse or weak density (no distinct objects: grey mush, a blank image)",
           6: "density sum not near a whole number (below the calibrated confidence)"}
#: why a pair reading is refused (``pair_attributes(...)["reason"]``): the count's reasons, and two more
PAIR_REASONS = {**REASONS, 7: "not two objects", 8: "shapes or colours below the calibrated confidence"}


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


def calibration() -> dict[str, Any]:
    """The calibration record (``calibration`` in the JSON): the ``count`` and ``pair`` thresholds, how they were
    chosen and what they do per condition."""
    info = classifier_info()
    if "calibration" not in info:
        raise FileNotFoundError(f"the CLEVR classifier record {INFO_FILE} holds no calibration; {CALIBRATE_HINT}")
    return info["calibration"]


def image_rules() -> dict[str, float]:
    """The fixed refusal rules' constants (stored with the calibration)."""
    return {"noise_max": NOISE_MAX, "peak_min": PEAK_MIN, "peak_share_min": PEAK_SHARE_MIN,
            "peak_top_min": PEAK_TOP_MIN,
            "sum_min": 0.5, "sum_max": _render.MAX_OBJECTS + 0.5}


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


def _finite_input(x: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """64-px network input with NaN pixels read as 0, and whether each image was all numbers."""
    img = as_images(x)
    ok = finite_images(img)
    return to_input(torch.nan_to_num(img, nan=0.0)), ok


@torch.no_grad()
def _maps(img: torch.Tensor, batch_size: int, net: nn.Module | None
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    batch_size = check_int("batch_size", batch_size, 1)
    net = net if net is not None else load_classifier(img.device)
    outs = [net(img[i:i + batch_size]).float() for i in range(0, img.shape[0], batch_size)]
    out = torch.cat(outs) if outs else torch.zeros(0, 1 + N_SHAPES + N_COLORS, GRID, GRID, device=img.device)
    return (out[:, 0], F.softmax(out[:, 1:1 + N_SHAPES], 1), F.softmax(out[:, 1 + N_SHAPES:], 1))


def maps(x: torch.Tensor | np.ndarray, batch_size: int = 256, net: nn.Module | None = None
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Density (n,16,16), shape probabilities (n,5,16,16), colour probabilities (n,8,16,16),
    on the input's device (NaN pixels read as 0: :func:`count` refuses those images)."""
    return _maps(_finite_input(x)[0], batch_size, net)


def pixel_noise(img: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference (n,) between each pixel and the mean of its 3x3 neighbourhood (grey, edges
    replicated) of 64-px inputs (n,3,64,64): about 0.001-0.03 on renders, 0.12 on uniform noise."""
    grey = img.mean(dim=1, keepdim=True)
    local = F.avg_pool2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return (grey - local).abs().mean(dim=(1, 2, 3))


def peak_share(density: torch.Tensor) -> torch.Tensor:
    """Share (n,) of each density map's mass within one cell of a local maximum of at least ``PEAK_MIN``: near 1
    when the map is a sum of distinct object blobs, low when it is diffuse."""
    d = density.clamp(min=0)
    top = F.max_pool2d(d[:, None], 3, stride=1, padding=1)[:, 0]
    peaks = (d >= top) & (d >= PEAK_MIN)
    near = F.max_pool2d(peaks[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0
    return (d * near).sum(dim=(1, 2)) / d.sum(dim=(1, 2)).clamp(min=1e-6)


def _count_reading(density: torch.Tensor, noise: torch.Tensor, finite: np.ndarray, threshold: float
                   ) -> dict[str, np.ndarray]:
    """Count, reason and scores from density maps (n,16,16), pixel noise (n,) and finiteness (n,)."""
    total = density.sum(dim=(1, 2)).cpu().numpy().astype(np.float64)
    read = np.rint(total).astype(np.int64)
    score = 1.0 - 2.0 * np.abs(total - read)
    share = peak_share(density).cpu().numpy().astype(np.float64)
    top = density.amax(dim=(1, 2)).cpu().numpy().astype(np.float64) if len(total) else np.zeros(0)
    noise = noise.cpu().numpy().astype(np.float64)
    reason = np.zeros(len(total), dtype=np.int64)
    reason[score < threshold] = 6
    reason[(share < PEAK_SHARE_MIN) | (top < PEAK_TOP_MIN)] = 5
    reason[total > _render.MAX_OBJECTS + 0.5] = 4
    reason[total < 0.5] = 3
    reason[noise > NOISE_MAX] = 2
    reason[~finite] = 1
    return {"count": np.where(reason > 0, -1, read), "reason": reason, "read": np.maximum(read, 0),
            "density_sum": total, "count_confidence": score, "peak_share": share, "peak": top,
            "pixel_noise": noise}


def _threshold(name: str, value: float | None, kind: str, side: int) -> float:
    """``value`` checked, or (None) the calibrated ``kind`` threshold for images of side ``side``: the 64-px one
    from 64 px on, the 32-px one below."""
    if value is None:
        cal = calibration()[kind]
        return float(cal["threshold"] if side >= INPUT else cal["threshold_32"])
    return check_float(name, value, 0.0, 1.0)


def _side(x: torch.Tensor | np.ndarray) -> int:
    """Side of the images (their smaller dimension); 0 when ``x`` has no image shape (as_images then says why)."""
    shape = tuple(getattr(x, "shape", ()))
    return int(min(shape[-2:])) if len(shape) >= 2 else 0


def count_details(x: torch.Tensor | np.ndarray, min_confidence: float | None = None, batch_size: int = 256,
                  net: nn.Module | None = None) -> dict[str, np.ndarray]:
    """Per image (n,): ``count`` (-1 when refused), ``reason`` (a key of :data:`REASONS`), ``read`` (the rounded
    density sum, before any refusal), ``density_sum``, ``count_confidence`` (1 - 2 x its distance from the nearest
    whole number), ``peak_share``, ``peak`` (the map's highest cell) and ``pixel_noise`` (see the module
    docstring). ``min_confidence``: refuse when ``count_confidence`` is below it (None: the calibrated threshold,
    :func:`calibration`: the 64-px one for images of 64 px or more, the 32-px one for smaller ones)."""
    threshold = _threshold("min_confidence", min_confidence, "count", _side(x))
    img, ok = _finite_input(x)
    density, _, _ = _maps(img, batch_size, net)
    return _count_reading(density, pixel_noise(img), ok, threshold)


def count(x: torch.Tensor | np.ndarray, min_confidence: float | None = None, batch_size: int = 256,
          net: nn.Module | None = None) -> np.ndarray:
    """Number of objects in each image (n,3,H,W), tensor (any device) or array: the rounded sum of the predicted
    density map; -1 when the image is refused (rules in the module docstring, :func:`count_details` says why)."""
    return count_details(x, min_confidence, batch_size, net)["count"]


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


def _pair_reading(density: torch.Tensor, shape_p: torch.Tensor, color_p: torch.Tensor
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes (n,4), the four winning probabilities (n,4) and positions (n,2,2) of two-object readings."""
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
    probs = torch.cat([sconf, cconf], 1).cpu().numpy().astype(np.float64)
    return codes, probs, centres.cpu().numpy()


def pair_score(probs: np.ndarray, rule: str) -> np.ndarray:
    """Confidence (n,) of pair readings from their four winning probabilities (n,4): their minimum (``min``) or
    product (``product``)."""
    rule = check_choice("rule", rule, PAIR_RULES)
    return probs.min(axis=1) if rule == "min" else probs.prod(axis=1)


def pair_attributes(x: torch.Tensor | np.ndarray, min_confidence: float | None = None, batch_size: int = 256,
                    net: nn.Module | None = None, *, rule: str | None = None,
                    count_confidence: float | None = None) -> dict[str, np.ndarray]:
    """Shapes and colours of the two objects of two-object images, left (a) to right (b); refuses what it cannot read.

    An image is refused when its count is refused or is not 2 (:func:`count`, at ``count_confidence``; None: the
    calibrated one), or when its pair confidence is below ``min_confidence`` (None: the calibrated threshold for the
    image size, and ``rule``). Returns ``shape_a``, ``shape_b``, ``color_a``, ``color_b`` (n,) names ("" when refused),
    ``codes`` (n,4) ints (shape_a, shape_b, color_a, color_b) in :data:`probe_utils.render.clevr.SHAPES` /
    ``COLOR_NAMES`` order (-1 when refused), ``refused`` (n,) bool, ``reason`` (n,) a key of :data:`PAIR_REASONS`,
    ``confidence`` (n,) the pair confidence by ``rule``, ``probabilities`` (n,4) the four winning probabilities,
    ``read_codes`` (n,4) the reading before any refusal, and ``xy`` (n,2,2) the two objects' estimated positions
    in 64-px pixels."""
    threshold = _threshold("min_confidence", min_confidence, "pair", _side(x))
    rule = check_choice("rule", calibration()["pair"]["rule"] if rule is None else rule, PAIR_RULES)
    count_threshold = _threshold("count_confidence", count_confidence, "count", _side(x))
    img, ok = _finite_input(x)
    density, shape_p, color_p = _maps(img, batch_size, net)
    counted = _count_reading(density, pixel_noise(img), ok, count_threshold)
    codes, probs, xy = _pair_reading(density, shape_p, color_p)
    conf = pair_score(probs, rule)
    reason = counted["reason"].copy()
    reason[(reason == 0) & (counted["count"] != 2)] = 7
    reason[(reason == 0) & (conf < threshold)] = 8
    refused = reason > 0
    shown = np.where(refused[:, None], -1, codes)
    shapes, colors = np.array(_render.SHAPES + ("",)), np.array(_render.COLOR_NAMES + ("",))
    return {"shape_a": shapes[shown[:, 0]], "shape_b": shapes[shown[:, 1]],
            "color_a": colors[shown[:, 2]], "color_b": colors[shown[:, 3]],
            "codes": shown, "refused": refused, "reason": reason, "confidence": conf, "probabilities": probs,
            "read_codes": codes, "xy": xy}


def evaluate(n: int, seed: int, size: int = 64, net: nn.Module | None = None) -> dict[str, float]:
    """Accuracies of the network's readings, before any refusal, on fresh renders: ``n`` scenes of 1..10 objects
    (count: the rounded density sum) and ``n`` two-object scenes (pairs), all shapes, colours, sizes and materials."""
    x, lab = _render.render(n, seed=seed, size=size)
    err = count_details(x, 0.0, net=net)["read"] - lab["count"]
    out = {"count_accuracy": float((err == 0).mean()), "count_mae": float(np.abs(err).mean())}
    for k in range(1, _render.MAX_OBJECTS + 1):
        sel = lab["count"] == k
        if sel.any():
            out[f"count_accuracy_{k}"] = float((err[sel] == 0).mean())
    x, lab = _render.render(n, seed=seed + 1, size=size, count=2)
    img, _ = _finite_input(x)
    codes, _, _ = _pair_reading(*_maps(img, 256, net))
    ok = codes == _pair_truth(lab)
    out["pair_accuracy"] = float(ok.all(1).mean())
    out["pair_shape_accuracy"] = float(ok[:, :2].all(1).mean())
    out["pair_color_accuracy"] = float(ok[:, 2:].all(1).mean())
    out["object_shape_accuracy"] = float(ok[:, :2].mean())
    out["object_color_accuracy"] = float(ok[:, 2:].mean())
    return out


def _pair_truth(lab: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([lab["shape"][:, 0], lab["shape"][:, 1], lab["color"][:, 0], lab["color"][:, 1]], 1)


def accuracy_report(n: int = 300, seed: int = 12345) -> dict[str, float]:
    """Accuracy of the shipped classifier on fresh renders (64 px), read before any refusal: ``count_accuracy``
    (exact, 1..10 objects uniform), ``count_mae``, ``count_accuracy_<k>``, and on two-object scenes
    ``pair_accuracy`` (both shapes and both colours right, left to right), per-pair and per-object shape/colour
    accuracies; ``count_refused`` and ``pair_refused``: the shares refused at the calibrated thresholds; plus
    ``recorded_*``: the same figures stored with the weights at training time (larger samples)."""
    n = check_int("n", n, 1, 1_000_000)
    seed = check_seed("seed", seed)
    out = evaluate(n, seed)
    x, _ = _render.render(n, seed=seed, size=64)
    out["count_refused"] = float((count(x) < 0).mean())
    x, _ = _render.render(n, seed=seed + 1, size=64, count=2)
    out["pair_refused"] = float(pair_attributes(x)["refused"].mean())
    for key in ("count_accuracy", "pair_accuracy"):
        out[f"recorded_{key}"] = float(classifier_info()["accuracy_64px"][key])
    return out


# --- generated-like images -----------------------------------------------------------------------------------

#: generated-like conditions of this data set. Blur pads by repeating the edge (the ground continues), faint
#: lowers the contrast towards the image's mean colour (objects fade into the ground), washed colours move every
#: pixel halfway to its grey; ``generated`` mixes them as generated scenes look
CONDITIONS: dict[str, str] = {
    "clean": "fresh renders",
    "blur_0.5": "Gaussian blur, 0.5 px",
    "blur_1": "Gaussian blur, 1 px",
    "blur_1.5": "Gaussian blur, 1.5 px",
    "faint_0.6": "contrast 60% (towards the image mean)",
    "faint_0.35": "contrast 35% (towards the image mean)",
    "blur_1_faint_0.5": "blur 1 px and contrast 50%",
    "noise_0.05": "pixel noise, sd 0.05",
    "washed_colour": "colours halfway to grey",
    "generated": "generated-like mix: blur 0.5-1.5 px, contrast 50-100%, noise sd 0.03",
}
#: the conditions the thresholds are calibrated on (pooled, equal shares, 64 px)
CALIBRATION_CONDITIONS = ("blur_0.5", "blur_1", "blur_1.5", "faint_0.6", "faint_0.35", "blur_1_faint_0.5",
                          "noise_0.05", "washed_colour", "generated")
#: images that are no scene, which must be refused (name -> description)
NOT_SCENES: dict[str, str] = {
    "grey_mush": "grey mush (must be refused)",
    "noise_images": "uniform noise (must be refused)",
    "blank_black": "black image (must be refused)",
    "blank_white": "white image (must be refused)",
    "blank_grey": "uniform mid-grey image (must be refused)",
}


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    from probe_utils.features import degrade as _degrade

    half = max(1, int(np.ceil(3 * sigma)))
    padded = F.pad(img, (half, half, half, half), mode="replicate")
    return _degrade.blur(padded, sigma)[..., half:-half, half:-half]


def _faint(img: torch.Tensor, contrast: float | torch.Tensor) -> torch.Tensor:
    mean = img.mean(dim=(1, 2, 3), keepdim=True)
    return mean + contrast * (img - mean)


def degrade(condition: str, x: torch.Tensor | np.ndarray, seed: int = 0) -> torch.Tensor:
    """One of :data:`CONDITIONS` applied to CLEVR-like images ``x``."""
    from probe_utils.features import degrade as _degrade

    check_choice("condition", condition, CONDITIONS)
    seed = check_seed("seed", seed)
    img = as_images(x)
    if condition == "clean":
        return img.clone()
    if condition == "washed_colour":
        grey = img.mean(dim=1, keepdim=True)
        return grey + 0.5 * (img - grey)
    if condition == "blur_1_faint_0.5":
        return _faint(_blur(img, 1.0), 0.5)
    if condition == "generated":
        gen = torch.Generator().manual_seed(seed)
        n = img.shape[0]
        sigma = torch.tensor([0.5, 0.75, 1.0, 1.25, 1.5])[torch.randint(0, 5, (n,), generator=gen)]
        contrast = (0.5 + 0.5 * torch.rand(n, generator=gen)).to(img.device)[:, None, None, None]
        out = torch.empty_like(img)
        for s in sigma.unique():
            sel = (sigma == s).to(img.device)
            out[sel] = _blur(img[sel], float(s))
        return _degrade.noise(_faint(out, contrast).clamp(0, 1), 0.03, seed + 1)
    kind, value = condition.split("_", 1)
    if kind == "blur":
        return _blur(img, float(value)).clamp(0, 1)
    if kind == "faint":
        return _faint(img, float(value))
    return _degrade.noise(img, float(value), seed)


def not_scenes(name: str, n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` images of :data:`NOT_SCENES` ``name`` of side ``size``."""
    from probe_utils.features import degrade as _degrade

    check_choice("name", name, NOT_SCENES)
    return _degrade.no_data(name, n, size, seed, {"blank_black": 0.0, "blank_white": 1.0, "blank_grey": 0.5})


def generated_like_readings(n: int, seed: int, sizes=(64, 32), conditions=CALIBRATION_CONDITIONS
                            ) -> dict[str, np.ndarray]:
    """Raw readings of ``n`` fresh scenes of 1..10 objects and ``n`` two-object scenes per (size, condition), for
    calibration. Per image: ``condition``, ``size``, ``pair_scene`` (a two-object scene), ``count_score``,
    ``count_rule_ok`` (the fixed count rules accept it), ``count_read``, ``count_correct``, ``pair_score_min``,
    ``pair_score_product`` and ``pair_correct`` (pair entries of the other scenes are False / 0)."""
    n = check_int("n", n, 1, 1_000_000)
    seed = check_seed("seed", seed)
    keys = ("condition", "size", "pair_scene", "count_score", "count_rule_ok", "count_read", "count_correct",
            "pair_score_min", "pair_score_product", "pair_correct")
    out: dict[str, list] = {k: [] for k in keys}
    m = n * len(conditions)
    for i, size in enumerate(sizes):
        xc, lc = _render.render(m, seed=seed + 2 * i, size=size)
        xp, lp = _render.render(m, seed=seed + 2 * i + 1, size=size, count=2)
        for j, cond in enumerate(conditions):
            sl = slice(j * n, (j + 1) * n)
            x = torch.cat([degrade(cond, xc[sl], seed + 100 * i + j), degrade(cond, xp[sl], seed + 100 * i + j + 50)])
            img, ok = _finite_input(x)
            density, shape_p, color_p = _maps(img, 256, None)
            r = _count_reading(density, pixel_noise(img), ok, 0.0)
            codes, probs, _ = _pair_reading(density, shape_p, color_p)
            truth = np.concatenate([lc["count"][sl], lp["count"][sl]])
            pair = np.r_[np.zeros(n, bool), np.ones(n, bool)]
            out["condition"].append(np.full(2 * n, cond))
            out["size"].append(np.full(2 * n, size))
            out["pair_scene"].append(pair)
            out["count_score"].append(r["count_confidence"])
            out["count_rule_ok"].append(r["reason"] == 0)
            out["count_read"].append(r["read"])
            out["count_correct"].append(r["read"] == truth)
            out["pair_score_min"].append(np.where(pair, pair_score(probs, "min"), 0.0))
            out["pair_score_product"].append(np.where(pair, pair_score(probs, "product"), 0.0))
            right = np.zeros(2 * n, bool)
            right[n:] = (codes[n:] == _pair_truth(lp)[sl]).all(1)
            out["pair_correct"].append(right)
    return {k: np.concatenate(v) for k, v in out.items()}


def robustness_report(n: int = 60, seed: int = 12345, size: int = 64) -> list[dict]:
    """Accuracy of :func:`count` and :func:`pair_attributes` on generated-like versions of ``n`` fresh scenes of
    1..10 objects and ``n`` two-object scenes of side ``size``, one row per condition of :data:`CONDITIONS`, then
    :data:`NOT_SCENES` (``max(n, 50)`` each).

    Each row: ``condition``, ``description``, ``images``; for the count ``exact`` (share of all images counted
    right; for the images that are no scene, the share refused), ``accepted_accuracy`` (share right of those not
    refused; NaN when all are), ``refused``, ``worst`` (lowest accepted accuracy over the true counts); for the
    two-object scenes ``pair_exact``, ``pair_accepted_accuracy`` and ``pair_refused``.
    """
    n = check_int("n", n, 1, 100_000)
    seed = check_seed("seed", seed)
    size = check_choice("size", size, _render.IMAGE_SIZES)
    xc, lc = _render.render(n, seed=seed, size=size)
    xp, lp = _render.render(n, seed=seed + 1, size=size, count=2)
    truth = _pair_truth(lp)
    rows = []

    def share(right: np.ndarray, kept: np.ndarray) -> float:
        return float(right[kept].mean()) if kept.any() else float("nan")

    for cond, desc in CONDITIONS.items():
        got = count(degrade(cond, xc, seed))
        right, kept = got == lc["count"], got >= 0
        per = [right[kept & (lc["count"] == k)].mean() for k in np.unique(lc["count"])
               if (kept & (lc["count"] == k)).any()]
        pa = pair_attributes(degrade(cond, xp, seed + 1))
        p_right = (pa["codes"] == truth).all(1)
        rows.append({"condition": cond, "description": desc, "images": n, "exact": float(right.mean()),
                     "accepted_accuracy": share(right, kept), "refused": float((~kept).mean()),
                     "worst": float(min(per)) if per else float("nan"),
                     "pair_exact": float(p_right.mean()), "pair_accepted_accuracy": share(p_right, ~pa["refused"]),
                     "pair_refused": float(pa["refused"].mean())})
    m = max(50, n)
    for name, desc in NOT_SCENES.items():
        imgs = not_scenes(name, m, size, seed)
        refused = float((count(imgs) < 0).mean())
        p_refused = float(pair_attributes(imgs)["refused"].mean())
        rows.append({"condition": name, "description": desc, "images": m, "exact": refused,
                     "accepted_accuracy": float("nan"), "refused": refused, "worst": refused,
                     "pair_exact": p_refused, "pair_accepted_accuracy": float("nan"), "pair_refused": p_refused})
    return rows
