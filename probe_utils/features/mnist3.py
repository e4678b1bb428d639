"""Reading the three-digit number in Three-MNIST images (paper Appendix B.2), and refusing what it cannot read.

The image is cut exactly as :mod:`probe_utils.render.mnist3` composes it: grey (channel
mean), resized to the 72x72 canvas, the 28-row digit band cut into three 28x24 cells, each
padded back to 28x28 with two black columns per side. A small CNN (:class:`DigitNet`,
trained by ``scripts/train_mnist_classifier.py`` on the train part of the shipped digits)
classifies each cell into the ten digits and an eleventh class, :data:`NO_DIGIT` (ink that is
no readable digit). Training augments the digits as generated ones look (shift, rotation,
scale, shear, blur up to 1.75 px of a 32-px image, strokes down to 25% brightness, pixel
noise at the rendered resolution) and replaces a fifth of them by no-digit cells (two digits
of different classes blended 35-65%, soft blobs). Its float16 weights, their held-out accuracy
and the calibrated refusal threshold ship in ``probe_utils/data/mnist3_classifier.{npz,json}``.

A digit's *confidence* is the softmax probability of its most likely digit (over the eleven
classes, so a cell the network finds digit-less has a low confidence). :func:`classify`
refuses (digit -1; the triple -1 when any digit is refused):

1. an image with a NaN or infinite pixel (all three digits);
2. an image that is not white digits on black: the median brightness of the canvas rows above and
   below the digit band exceeds ``BACKGROUND_MAX`` (grey mush, noise, a light or white image);
3. a cell that holds no ink: its brightest 3x3 mean is less than ``INK_MIN`` above that background
   (a blank or black image, a missing digit);
4. a digit whose confidence is below the calibrated threshold (``min_confidence``; by default the
   one in the JSON, chosen by ``scripts/calibrate_classifiers.py`` as the lowest at which the
   accepted images of a generated-like set are read right at least 95% of the time, at 32 and at
   64 px); reason 5 when the network finds "no digit" likelier than that digit.

The threshold applies per digit (rule ``digit``) or to the product of the three confidences
(rule ``product``): the calibration keeps the rule that refuses fewer images at the target
(:func:`calibration` records both). ``reason`` says which rule refused an image
(:data:`REASONS`). :func:`robustness_report` gives the accuracy of accepted images and the share
refused on generated-like versions of fresh renders (:data:`CONDITIONS`) and on images that hold
no number (:data:`NOT_DIGITS`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from probe_utils.features._common import as_images, data_file, finite_images, read_json_record
from probe_utils.params import check_choice, check_float, check_int, check_seed
from probe_utils.render import mnist3 as _render

WEIGHTS_FILE = "mnist3_classifier.npz"
INFO_FILE = "mnist3_classifier.json"
RETRAIN_HINT = ("rebuild it with `python scripts/train_mnist_classifier.py` (a few minutes on a CPU), then "
                "`python scripts/calibrate_classifiers.py mnist3`")
CALIBRATE_HINT = "recompute it with `python scripts/calibrate_classifiers.py mnist3`"
#: median brightness (grey, 0-1) of the canvas rows above and below the digit band beyond which an image is not
#: white digits on black (renders: 0; generated digits: under 0.05; grey mush: 0.2-0.85; noise: 0.5)
BACKGROUND_MAX = 0.15
#: least brightness above the background of a cell's brightest 3x3 mean for it to hold a digit (renders: about 1;
#: strokes at 35% of full ink blurred by 1.5 px in a 32-px image: 0.06-0.3; pixel noise of sd 0.05 alone: under 0.06)
INK_MIN = 0.08
#: refusal rules: ``digit`` refuses each digit whose softmax maximum is below the threshold (the triple when any
#: is); ``product`` refuses the triple (all three digits) when the product of the three maxima is below it
RULES = ("digit", "product")
#: why a reading is refused (``classify(...)["reason"]``); 0 = read
REASONS = {0: "", 1: "not a number (NaN or infinite pixels)",
           2: "not white digits on black (grey mush, noise, a light image)",
           3: "a digit cell holds no ink (blank)", 4: "a digit below the calibrated confidence",
           5: "a digit below the calibrated confidence, the classifier finding no digit likelier (a blend, a blob)"}


#: the classifier's eleventh class: ink that is no readable digit (blends of two digits, blobs, smears)
NO_DIGIT = 10


class DigitNet(nn.Module):
    """A small CNN for one 28x28 cell (white on black, values in [0,1]) -> 11 logits: digits 0-9 and
    :data:`NO_DIGIT`."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(1, 16), *block(16, 16), nn.MaxPool2d(2),       # 14x14
            *block(16, 32), *block(32, 32), nn.MaxPool2d(2),      # 7x7
            *block(32, 64), nn.MaxPool2d(2),                      # 3x3
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 9, 128), nn.ReLU(inplace=True),
                                  nn.Dropout(0.3), nn.Linear(128, NO_DIGIT + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def crop_columns(digits: torch.Tensor) -> torch.Tensor:
    """Black out the outer columns a rendered cell drops (2 per side) of digits (..., 28, 28)."""
    out = digits.clone()
    out[..., : _render.CROP] = 0
    out[..., 28 - _render.CROP:] = 0
    return out


def _canvas(img: torch.Tensor) -> torch.Tensor:
    """Grey (channel mean) images (n,1,72,72) on the renderer's canvas, from images (n,3,H,W) in [0,1]."""
    grey = img.mean(dim=1, keepdim=True)
    if grey.shape[-2:] != (_render.CANVAS, _render.CANVAS):
        grey = F.interpolate(grey, size=(_render.CANVAS, _render.CANVAS), mode="bilinear",
                             align_corners=False, antialias=True)
    return grey


def _cut(canvas: torch.Tensor) -> torch.Tensor:
    """Grey canvases (n,1,72,72) -> digit inputs (n,3,1,28,28), left to right."""
    band = canvas[:, 0, _render.TOP:_render.TOP + 28]                       # (n,28,72)
    n = band.shape[0]
    parts = band.reshape(n, 28, 3, _render.CELL).permute(0, 2, 1, 3)        # (n,3,28,24)
    return F.pad(parts, (_render.CROP, _render.CROP)).unsqueeze(2)


def cells(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Cut three-digit images (n,3,H,W) into digit inputs (n,3,1,28,28), left to right."""
    return _cut(_canvas(as_images(x)))


def _checks(canvas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Background brightness (n,) and ink of each cell above it (n,3) of grey canvases (n,1,72,72)."""
    n = canvas.shape[0]
    outside = torch.cat([canvas[:, 0, :_render.TOP], canvas[:, 0, _render.TOP + 28:]], 1).reshape(n, -1)
    background = outside.median(dim=1).values
    smooth = F.avg_pool2d(canvas, 3, stride=1, padding=1, count_include_pad=False)
    band = smooth[:, 0, _render.TOP:_render.TOP + 28].reshape(n, 28, 3, _render.CELL)
    return background, band.amax(dim=(1, 3)) - background[:, None]


def classifier_info() -> dict[str, Any]:
    """The JSON record stored next to the weights (held-out accuracy, training settings)."""
    return read_json_record(INFO_FILE, "classifier record", RETRAIN_HINT)


def state_from_npz(path) -> dict[str, torch.Tensor]:
    """Read a float16/int state dict saved as ``.npz`` into float32 (int buffers kept)."""
    with path.open("rb") as fh, np.load(fh) as npz:
        return {k: torch.from_numpy(npz[k].astype(np.float32) if npz[k].dtype == np.float16 else npz[k])
                for k in npz.files}


@functools.lru_cache(maxsize=None)
def _classifier(device: str) -> DigitNet:
    path = data_file(WEIGHTS_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"digit classifier weights {path} are missing; {RETRAIN_HINT}")
    net = DigitNet()
    net.load_state_dict(state_from_npz(path))
    return net.eval().to(device)


def load_classifier(device: Any = None) -> DigitNet:
    """The shipped digit classifier in eval mode on ``device`` (cached; never trains)."""
    return _classifier(str(_render._device(device)))


def calibration() -> dict[str, Any]:
    """The calibration record of the refusal threshold (``calibration`` in the JSON): the threshold, its rule, how
    it was chosen and what it does per condition."""
    info = classifier_info()
    if "calibration" not in info:
        raise FileNotFoundError(f"the classifier record {INFO_FILE} holds no calibration; {CALIBRATE_HINT}")
    return info["calibration"]


def confidence_threshold() -> float:
    """The calibrated threshold :func:`classify` refuses below by default."""
    return float(calibration()["threshold"])


@torch.no_grad()
def _read(x: torch.Tensor | np.ndarray, batch_size: int, net: nn.Module | None
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """Softmax probabilities (n,3,11) (digits 0-9, :data:`NO_DIGIT`), background (n,), cell ink (n,3) and
    finiteness (n,) of a batch."""
    batch_size = check_int("batch_size", batch_size, 1)
    img = as_images(x)
    ok = finite_images(img)
    net = net if net is not None else load_classifier(img.device)
    probs, bgs, inks = [], [], []
    for start in range(0, img.shape[0], batch_size):
        canvas = _canvas(torch.nan_to_num(img[start:start + batch_size], nan=0.0))
        c = _cut(canvas)
        probs.append(F.softmax(net(c.reshape(-1, 1, 28, 28)).float(), dim=1).reshape(-1, 3, NO_DIGIT + 1))
        bg, ink = _checks(canvas)
        bgs.append(bg)
        inks.append(ink)
    if not probs:
        z = img.new_zeros
        return z(0, 3, NO_DIGIT + 1), z(0), z(0, 3), ok
    return torch.cat(probs), torch.cat(bgs), torch.cat(inks), ok


@torch.no_grad()
def digit_probs(x: torch.Tensor | np.ndarray, batch_size: int = 1024, net: nn.Module | None = None) -> torch.Tensor:
    """Probabilities (n,3,10) of the ten digits at the three positions of each image (on the input's device), from
    the classifier's softmax over digits and :data:`NO_DIGIT` (so a row sums to 1 less the no-digit probability);
    NaN pixels read as black (:func:`classify` refuses those images)."""
    return _read(x, batch_size, net)[0][..., :NO_DIGIT]


def _refuse(conf: np.ndarray, no_digit: np.ndarray, background: np.ndarray, ink: np.ndarray, finite: np.ndarray,
            threshold: float, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Per digit refused (n,3) and per image reason (n,) by the rules of the module docstring, from the winning
    digit probabilities ``conf`` (n,3) and the no-digit probabilities (n,3)."""
    n = conf.shape[0]
    low = conf < threshold if rule == "digit" else np.repeat((conf.prod(1) < threshold)[:, None], 3, 1)
    empty = ink < INK_MIN
    image = (~finite) | (background > BACKGROUND_MAX)
    refused = image[:, None] | empty | low
    reason = np.zeros(n, dtype=np.int64)
    reason[low.any(1)] = 4
    reason[(low & (no_digit >= conf)).any(1)] = 5
    reason[empty.any(1)] = 3
    reason[background > BACKGROUND_MAX] = 2
    reason[~finite] = 1
    return refused, reason


def classify(x: torch.Tensor | np.ndarray, min_confidence: float | None = None, batch_size: int = 1024,
             *, rule: str | None = None, net: nn.Module | None = None) -> dict[str, np.ndarray]:
    """Read the number in each three-digit image (n,3,H,W), tensor (any device) or array; refuse what it cannot read.

    ``min_confidence``: refuse below this confidence (None: the threshold calibrated for ``rule``, see
    :func:`calibration`; 0: only the image rules 1-3 of the module docstring refuse); ``rule``: ``"digit"`` or
    ``"product"`` (None: the calibrated rule). Returns ``triple`` (n,) ints 0..999 or -1 when refused, ``digits``
    (n,3) ints 0..9 left to right, -1 where refused, ``refused`` (n,) bool, ``reason`` (n,) a key of
    :data:`REASONS`, ``confidence`` (n,) the product of the three softmax maxima, ``digit_confidence`` (n,3) the
    maxima themselves, and ``read_digits`` (n,3) the classifier's reading before any refusal.
    """
    if min_confidence is None or rule is None:
        cal = calibration()
        rule = cal["rule"] if rule is None else check_choice("rule", rule, RULES)
        if min_confidence is None:
            min_confidence = cal["threshold"] if rule == cal["rule"] else cal["rules_compared"][rule]["threshold"]
    threshold = check_float("min_confidence", min_confidence, 0.0, 1.0)
    rule = check_choice("rule", rule, RULES)
    probs, background, ink, finite = _read(x, batch_size, net)
    conf, digits = probs[..., :NO_DIGIT].max(dim=2)
    digits = digits.cpu().numpy().astype(np.int64)
    conf = conf.cpu().numpy().astype(np.float64)
    no_digit = probs[..., NO_DIGIT].cpu().numpy().astype(np.float64)
    refused, reason = _refuse(conf, no_digit, background.cpu().numpy(), ink.cpu().numpy(), finite, threshold, rule)
    shown = np.where(refused, -1, digits)
    triple = np.where(refused.any(1), -1, digits @ np.array([100, 10, 1]))
    return {"triple": triple, "digits": shown, "refused": refused.any(1), "reason": reason,
            "confidence": conf.prod(axis=1), "digit_confidence": conf, "no_digit": no_digit, "read_digits": digits}


def heldout_digit_accuracy(size: int = 64, net: nn.Module | None = None) -> float:
    """Per-digit accuracy on the held-out real digits, each rendered once into a three-digit
    image of side ``size`` (in file order, three per image) and read back by the classifier (no refusal)."""
    images, labels = _render.load_digits("heldout")
    m = len(labels) - len(labels) % 3
    x = _render.compose(torch.from_numpy(images[:m]).reshape(-1, 3, 28, 28), size)
    pred = digit_probs(x, net=net).argmax(dim=2).reshape(-1).numpy()
    return float((pred == labels[:m]).mean())


# --- generated-like images -----------------------------------------------------------------------------------

#: generated-like conditions of this data set: :data:`probe_utils.features.degrade.CONDITIONS` applied to the
#: digits' ink (white strokes on black: blur spreads the strokes into the black, faint ink dims the strokes), plus
#: ``generated``, the mix generated digits look like
CONDITIONS: dict[str, str] = {
    "clean": "fresh renders (held-out digit styles)",
    "blur_0.5": "strokes blurred, 0.5 px",
    "blur_1": "strokes blurred, 1 px",
    "blur_1.5": "strokes blurred, 1.5 px",
    "faint_0.6": "strokes at 60% brightness",
    "faint_0.35": "strokes at 35% brightness",
    "blur_1_faint_0.5": "strokes blurred 1 px, at 50%",
    "noise_0.05": "pixel noise, sd 0.05",
    "average_colour": "stroke brightness evened out",
    "generated": "generated-like mix: blur 0.5-1.5 px, strokes at 35-100%, noise sd 0.03",
}
#: the conditions the refusal threshold is calibrated on (pooled, equal shares, 32 and 64 px)
CALIBRATION_CONDITIONS = ("blur_0.5", "blur_1", "blur_1.5", "faint_0.6", "faint_0.35", "blur_1_faint_0.5",
                          "noise_0.05", "generated")
#: images that are no three-digit number, which must be refused (name -> description)
NOT_DIGITS: dict[str, str] = {
    "grey_mush": "grey mush (must be refused)",
    "noise_images": "uniform noise (must be refused)",
    "blank_black": "black image (must be refused)",
    "blank_white": "white image (must be refused)",
}


def degrade(condition: str, x: torch.Tensor | np.ndarray, seed: int = 0) -> torch.Tensor:
    """One of :data:`CONDITIONS` applied to Three-MNIST images ``x`` (white strokes on black)."""
    from probe_utils.features import degrade as _degrade

    check_choice("condition", condition, CONDITIONS)
    seed = check_seed("seed", seed)
    img = as_images(x)
    if condition != "generated":
        return 1.0 - _degrade.apply(condition, 1.0 - img, seed)
    gen = torch.Generator().manual_seed(seed)
    n = img.shape[0]
    sigma = torch.tensor([0.5, 0.75, 1.0, 1.25, 1.5])[torch.randint(0, 5, (n,), generator=gen)]
    strength = 0.35 + 0.65 * torch.rand(n, generator=gen)
    out = torch.empty_like(img)
    for s in sigma.unique():
        sel = (sigma == s).to(img.device)
        out[sel] = 1.0 - _degrade.blur(1.0 - img[sel], float(s))
    out = out * strength.to(img.device)[:, None, None, None]
    return _degrade.noise(out, 0.03, seed + 1)


def not_digits(name: str, n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` images of :data:`NOT_DIGITS` ``name`` of side ``size``."""
    from probe_utils.features import degrade as _degrade

    check_choice("name", name, NOT_DIGITS)
    return _degrade.no_data(name, n, size, seed, {"blank_black": 0.0, "blank_white": 1.0})


def generated_like_readings(n: int, seed: int, sizes=(32, 64), conditions=CALIBRATION_CONDITIONS,
                            split: str = "heldout") -> dict[str, np.ndarray]:
    """Raw readings of ``n`` fresh renders per (size, condition) (digit styles of ``split``), for calibration.

    Returns per image: ``digit_confidence`` (N,3), ``no_digit`` (N,3), ``correct`` (N,3) (the reading is the
    truth), ``background``,
    ``ink`` (N,3), ``finite``, ``condition`` and ``size``.
    """
    n = check_int("n", n, 1, 1_000_000)
    seed = check_seed("seed", seed)
    out: dict[str, list] = {k: [] for k in ("digit_confidence", "no_digit", "correct", "background", "ink", "finite",
                                            "condition", "size")}
    for i, size in enumerate(sizes):
        x, labels = _render.render(n * len(conditions), seed=seed + i, size=size, split=split)
        for j, cond in enumerate(conditions):
            sl = slice(j * n, (j + 1) * n)
            probs, bg, ink, ok = _read(degrade(cond, x[sl], seed + 100 * i + j), 1024, None)
            conf, read = probs[..., :NO_DIGIT].max(dim=2)
            out["digit_confidence"].append(conf.numpy().astype(np.float64))
            out["no_digit"].append(probs[..., NO_DIGIT].numpy().astype(np.float64))
            out["correct"].append(read.numpy() == labels["digits"][sl])
            out["background"].append(bg.numpy())
            out["ink"].append(ink.numpy())
            out["finite"].append(ok)
            out["condition"].append(np.full(n, cond))
            out["size"].append(np.full(n, size))
    return {k: np.concatenate(v) for k, v in out.items()}


def robustness_report(n: int = 100, seed: int = 12345, size: int = 32, min_confidence: float | None = None
                      ) -> list[dict]:
    """Accuracy of :func:`classify` on generated-like versions of ``n`` fresh renders (held-out digit styles) of side
    ``size``, one row per condition of :data:`CONDITIONS`, then :data:`NOT_DIGITS` (``max(n, 50)`` each).

    Each row: ``condition``, ``description``, ``images``, ``exact`` (share of all images read right; for the
    images that hold no number, the share refused), ``accepted_accuracy`` (share read right of those not refused;
    NaN when all are), ``refused`` (share refused), ``worst`` (lowest accepted-digit accuracy over the digit
    classes 0-9; for the images that hold no number, the share refused).
    """
    n = check_int("n", n, 1, 100_000)
    seed = check_seed("seed", seed)
    size = check_int("size", size, 16, 1024)
    x, labels = _render.render(n, seed=seed, size=size, split="heldout")
    rows = []
    for cond, desc in CONDITIONS.items():
        out = classify(degrade(cond, x, seed), min_confidence)
        right = out["triple"] == labels["triple"]
        kept = ~out["refused"]
        digit_ok = (out["digits"] == labels["digits"])[out["digits"] >= 0]
        digit_cls = labels["digits"][out["digits"] >= 0]
        per = [digit_ok[digit_cls == k].mean() for k in range(10) if (digit_cls == k).any()]
        rows.append({"condition": cond, "description": desc, "images": n, "exact": float(right.mean()),
                     "accepted_accuracy": float(right[kept].mean()) if kept.any() else float("nan"),
                     "refused": float(out["refused"].mean()), "worst": float(min(per)) if per else float("nan")})
    m = max(50, n)
    for name, desc in NOT_DIGITS.items():
        refused = float(classify(not_digits(name, m, size, seed), min_confidence)["refused"].mean())
        rows.append({"condition": name, "description": desc, "images": m, "exact": refused,
                     "accepted_accuracy": float("nan"), "refused": refused, "worst": refused})
    return rows


def accuracy_report(n: int = 1000, seed: int = 12345) -> dict[str, float]:
    """Accuracy figures of the classifier.

    ``heldout_digit_accuracy``: recorded at training time (JSON); ``heldout_digit_accuracy_now``:
    recomputed on the held-out digits rendered at 64 px; ``triple_accuracy`` and
    ``digit_accuracy``: on ``n`` fresh 64-px renders (train-part styles), read without refusal;
    ``triple_accuracy_heldout_styles``: on ``n`` renders made only of held-out digits;
    ``mean_confidence``: mean ``confidence`` on the fresh renders; ``refused``: share of the fresh renders refused
    at the calibrated threshold, ``accepted_accuracy``: share of the others read right.
    """
    n = check_int("n", n, 1, 1_000_000)
    seed = check_seed("seed", seed)
    report = {"heldout_digit_accuracy": float(classifier_info()["heldout_digit_accuracy"]),
              "heldout_digit_accuracy_now": heldout_digit_accuracy(64)}
    x, labels = _render.render(n, seed=seed)
    out = classify(x)
    report["triple_accuracy"] = float(((out["read_digits"] == labels["digits"]).all(1)).mean())
    report["digit_accuracy"] = float((out["read_digits"] == labels["digits"]).mean())
    report["mean_confidence"] = float(out["confidence"].mean())
    report["refused"] = float(out["refused"].mean())
    kept = ~out["refused"]
    report["accepted_accuracy"] = float((out["triple"] == labels["triple"])[kept].mean()) if kept.any() else 0.0
    x, labels = _render.render(n, seed=seed, split="heldout")
    read = classify(x)["read_digits"]
    report["triple_accuracy_heldout_styles"] = float((read == labels["digits"]).all(1).mean())
    return report
