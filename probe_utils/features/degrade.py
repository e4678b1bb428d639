"""Generated-like versions of rendered images: how measurements are tested where they are used.

Generated samples are rarely as clean as renders: they are blurred, faint, noisy, their colours averaged, and
sometimes not an image of the data set at all (grey mush, noise). Each function here turns a batch of renders
(n,3,H,W) in [0,1] into one such version, so every measurement can state its accuracy on it
(``probe_utils.features.<name>.robustness_report``). All functions are deterministic given ``seed`` and return
float32 tensors on the input's device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from probe_utils.features._common import as_images
from probe_utils.params import check_float, check_int, check_seed


def blur(x: torch.Tensor | np.ndarray, sigma_px: float) -> torch.Tensor:
    """Gaussian blur of standard deviation ``sigma_px`` pixels (white beyond the border)."""
    sigma = check_float("sigma_px", sigma_px, 0.0, 16.0)
    img = as_images(x)
    if sigma == 0:
        return img.clone()
    half = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-half, half + 1, dtype=torch.float32, device=img.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(img.dtype)
    ink = 1.0 - img  # blur the ink, so the white beyond the border stays white (zero padding)
    c = ink.shape[1]
    ink = F.conv2d(ink, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, half), groups=c)
    ink = F.conv2d(ink, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(half, 0), groups=c)
    return (1.0 - ink).clamp(0.0, 1.0)


def faint(x: torch.Tensor | np.ndarray, contrast: float) -> torch.Tensor:
    """Ink at ``contrast`` of its strength: ``1 - contrast * (1 - x)`` (1 = unchanged, 0 = blank)."""
    c = check_float("contrast", contrast, 0.0, 1.0)
    return 1.0 - c * (1.0 - as_images(x))


def noise(x: torch.Tensor | np.ndarray, sd: float, seed: int = 0) -> torch.Tensor:
    """Independent Gaussian noise of standard deviation ``sd`` on every pixel and channel, clipped to [0, 1]."""
    sd = check_float("sd", sd, 0.0, 1.0)
    seed = check_seed("seed", seed)
    img = as_images(x)
    gen = torch.Generator().manual_seed(seed)
    return (img + sd * torch.randn(img.shape, generator=gen).to(img.device)).clamp(0.0, 1.0)


def average_colour(x: torch.Tensor | np.ndarray, threshold: float = 0.1) -> torch.Tensor:
    """Every object drawn in the image's mean ink colour, shapes kept: what a model that has learnt the shapes but
    not yet the colours draws. A pixel's coverage is its darkness relative to the image's typical ink darkness."""
    threshold = check_float("threshold", threshold, 0.0, 1.0)
    img = as_images(x)
    dark = 1.0 - img.amin(dim=1, keepdim=True)                          # (n,1,H,W)
    fg = (dark > threshold).float()
    n_fg = fg.sum(dim=(2, 3), keepdim=True).clamp(min=1.0)
    mean_ink = ((1.0 - img) * fg).sum(dim=(2, 3), keepdim=True) / n_fg   # (n,3,1,1) mean ink of the objects
    ref = (dark * fg).sum(dim=(2, 3), keepdim=True) / n_fg               # typical darkness of an object pixel
    cover = (dark / ref.clamp(min=1e-6)).clamp(0.0, 1.0)
    return (1.0 - cover * mean_ink).clamp(0.0, 1.0)


def grey_mush(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Images that belong to no data set: smooth grey-brown fields (what an untrained or collapsed generator
    draws), levels between 0.25 and 0.85."""
    n = check_int("n", n, 1, 100_000)
    size = check_int("size", size, 8, 512)
    seed = check_seed("seed", seed)
    gen = torch.Generator().manual_seed(seed)
    level = 0.25 + 0.6 * torch.rand(n, 1, 1, 1, generator=gen)
    tint = 0.05 * torch.randn(n, 3, 1, 1, generator=gen)
    field = F.interpolate(torch.randn(n, 1, 4, 4, generator=gen), size=(size, size), mode="bicubic",
                          align_corners=False)
    return (level + tint + 0.08 * field).clamp(0.0, 1.0)


def noise_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Uniform noise in every pixel and channel."""
    n = check_int("n", n, 1, 100_000)
    size = check_int("size", size, 8, 512)
    seed = check_seed("seed", seed)
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def no_data(name: str, n: int, size: int, seed: int = 0, flat: dict[str, float] | None = None) -> torch.Tensor:
    """``n`` images of side ``size`` that hold no data set's content, which every measurement must refuse:
    ``"grey_mush"``, ``"noise_images"``, or a flat image of one of the levels ``flat`` names (e.g. a blank white)."""
    if name == "grey_mush":
        return grey_mush(n, size, seed)
    if name == "noise_images":
        return noise_images(n, size, seed)
    flat = flat or {}
    if name not in flat:
        raise ValueError(f"no_data: {name!r} is not grey_mush, noise_images or one of {', '.join(flat)}")
    n = check_int("n", n, 1, 100_000)
    return torch.full((n, 3, size, size), float(flat[name]))


def shift(x: torch.Tensor | np.ndarray, dx: np.ndarray, dy: np.ndarray) -> torch.Tensor:
    """Translate each image by whole pixels (``dx`` right, ``dy`` down, one per image), white coming in: objects
    near the border are cut by it."""
    img = as_images(x)
    n, _, h, w = img.shape
    dx = np.asarray(dx, dtype=np.int64).reshape(-1)
    dy = np.asarray(dy, dtype=np.int64).reshape(-1)
    if dx.shape != (n,) or dy.shape != (n,):
        raise ValueError(f"dx and dy need one shift per image ({n}); got {dx.shape}, {dy.shape}")
    out = torch.ones_like(img)
    for i in range(n):
        sx, sy = int(dx[i]), int(dy[i])
        src = img[i, :, max(0, -sy):h - max(0, sy), max(0, -sx):w - max(0, sx)]
        out[i, :, max(0, sy):max(0, sy) + src.shape[1], max(0, sx):max(0, sx) + src.shape[2]] = src
    return out


#: The generated-like conditions every measurement reports (name -> description), in the order tables show them.
CONDITIONS: dict[str, str] = {
    "clean": "fresh renders",
    "blur_0.5": "Gaussian blur, 0.5 px",
    "blur_1": "Gaussian blur, 1 px",
    "blur_1.5": "Gaussian blur, 1.5 px",
    "faint_0.6": "ink at 60% contrast",
    "faint_0.35": "ink at 35% contrast",
    "blur_1_faint_0.5": "blur 1 px and ink at 50%",
    "noise_0.05": "pixel noise, sd 0.05",
    "average_colour": "colours averaged per image",
}


def apply(condition: str, x: torch.Tensor | np.ndarray, seed: int = 0) -> torch.Tensor:
    """One of :data:`CONDITIONS` applied to renders ``x``."""
    from probe_utils.params import check_choice

    check_choice("condition", condition, CONDITIONS)
    if condition == "clean":
        return as_images(x).clone()
    if condition == "average_colour":
        return average_colour(x)
    if condition == "blur_1_faint_0.5":
        return faint(blur(x, 1.0), 0.5)
    kind, value = condition.split("_", 1)
    if kind == "blur":
        return blur(x, float(value))
    if kind == "faint":
        return faint(x, float(value))
    return noise(x, float(value), seed)
