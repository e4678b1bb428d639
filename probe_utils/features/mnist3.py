"""Reading the three-digit number in Three-MNIST images (paper Appendix B.2).

The image is cut exactly as :mod:`probe_utils.render.mnist3` composes it: grey (channel
mean), resized to the 72x72 canvas, the 28-row digit band cut into three 28x24 cells, each
padded back to 28x28 with two black columns per side. A small CNN (:class:`DigitNet`,
trained by ``scripts/train_mnist_classifier.py`` with shift/rotation/scale augmentation on
the train part of the shipped digits) classifies each cell. Its float16 weights and their
held-out accuracy ship in ``probe_utils/data/mnist3_classifier.{npz,json}``.

``confidence`` is the product of the three softmax maxima: the classifier's probability of
the predicted triple if the three positions are independent. Low values flag images whose
digits are ambiguous (common in generated samples); the measurement never refuses an image.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from probe_utils.features._common import as_images, data_file, read_json_record
from probe_utils.params import check_int, check_seed
from probe_utils.render import mnist3 as _render

WEIGHTS_FILE = "mnist3_classifier.npz"
INFO_FILE = "mnist3_classifier.json"
RETRAIN_HINT = "rebuild it with `python scripts/train_mnist_classifier.py` (a few minutes on a CPU)"


class DigitNet(nn.Module):
    """A small CNN for one 28x28 digit (white on black, values in [0,1]) -> 10 logits."""

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
                                  nn.Dropout(0.3), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def crop_columns(digits: torch.Tensor) -> torch.Tensor:
    """Black out the outer columns a rendered cell drops (2 per side) of digits (..., 28, 28)."""
    out = digits.clone()
    out[..., : _render.CROP] = 0
    out[..., 28 - _render.CROP:] = 0
    return out


def cells(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Cut three-digit images (n,3,H,W) into digit inputs (n,3,1,28,28), left to right."""
    img = as_images(x).mean(dim=1, keepdim=True)
    if img.shape[-2:] != (_render.CANVAS, _render.CANVAS):
        img = F.interpolate(img, size=(_render.CANVAS, _render.CANVAS), mode="bilinear",
                            align_corners=False, antialias=True)
    band = img[:, 0, _render.TOP:_render.TOP + 28]                          # (n,28,72)
    n = band.shape[0]
    parts = band.reshape(n, 28, 3, _render.CELL).permute(0, 2, 1, 3)        # (n,3,28,24)
    return F.pad(parts, (_render.CROP, _render.CROP)).unsqueeze(2)


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


@torch.no_grad()
def digit_probs(x: torch.Tensor | np.ndarray, batch_size: int = 1024, net: nn.Module | None = None) -> torch.Tensor:
    """Softmax probabilities (n,3,10) for the three positions of each image (on the input's device)."""
    batch_size = check_int("batch_size", batch_size, 1)
    img = as_images(x)
    net = net if net is not None else load_classifier(img.device)
    out = []
    for start in range(0, img.shape[0], batch_size):
        c = cells(img[start:start + batch_size])
        out.append(F.softmax(net(c.reshape(-1, 1, 28, 28)).float(), dim=1).reshape(-1, 3, 10))
    return torch.cat(out) if out else torch.zeros(0, 3, 10, device=img.device)


def classify(x: torch.Tensor | np.ndarray, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Read the number in each three-digit image (n,3,H,W), tensor (any device) or array.

    Returns ``triple`` (n,) ints 0..999, ``digits`` (n,3) ints 0..9 left to right,
    ``confidence`` (n,) the product of the three softmax maxima, and ``digit_confidence``
    (n,3) the maxima themselves.
    """
    probs = digit_probs(x, batch_size)
    conf, digits = probs.max(dim=2)
    digits = digits.cpu().numpy().astype(np.int64)
    conf = conf.cpu().numpy().astype(np.float64)
    return {"triple": digits @ np.array([100, 10, 1]), "digits": digits,
            "confidence": conf.prod(axis=1), "digit_confidence": conf}


def heldout_digit_accuracy(size: int = 64, net: nn.Module | None = None) -> float:
    """Per-digit accuracy on the held-out real digits, each rendered once into a three-digit
    image of side ``size`` (in file order, three per image) and read back by :func:`classify`."""
    images, labels = _render.load_digits("heldout")
    m = len(labels) - len(labels) % 3
    x = _render.compose(torch.from_numpy(images[:m]).reshape(-1, 3, 28, 28), size)
    pred = digit_probs(x, net=net).argmax(dim=2).reshape(-1).numpy()
    return float((pred == labels[:m]).mean())


def accuracy_report(n: int = 1000, seed: int = 12345) -> dict[str, float]:
    """Accuracy figures of the classifier.

    ``heldout_digit_accuracy``: recorded at training time (JSON); ``heldout_digit_accuracy_now``:
    recomputed on the held-out digits rendered at 64 px; ``triple_accuracy`` and
    ``digit_accuracy``: on ``n`` fresh 64-px renders (train-part styles);
    ``triple_accuracy_heldout_styles``: on ``n`` renders made only of held-out digits;
    ``mean_confidence``: mean ``confidence`` on the fresh renders.
    """
    n = check_int("n", n, 1, 1_000_000)
    seed = check_seed("seed", seed)
    report = {"heldout_digit_accuracy": float(classifier_info()["heldout_digit_accuracy"]),
              "heldout_digit_accuracy_now": heldout_digit_accuracy(64)}
    x, labels = _render.render(n, seed=seed)
    out = classify(x)
    report["triple_accuracy"] = float((out["triple"] == labels["triple"]).mean())
    report["digit_accuracy"] = float((out["digits"] == labels["digits"]).mean())
    report["mean_confidence"] = float(out["confidence"].mean())
    x, labels = _render.render(n, seed=seed, split="heldout")
    report["triple_accuracy_heldout_styles"] = float((classify(x)["triple"] == labels["triple"]).mean())
    return report
