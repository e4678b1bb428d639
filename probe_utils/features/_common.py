"""Shared input handling for measurements: any (n,3,H,W) image batch, tensor or array."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import numpy as np
import torch

from probe_utils.params import ParameterError


#: float images may overshoot [0, 1] by this much (rounding in a generator's output) and are clipped; beyond it the
#: input is refused, since it is not an image in [0, 1] (e.g. 0-255 floats)
RANGE_SLACK = 0.05


def as_images(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Return ``x`` as a float32 tensor (n,3,H,W) in [0,1] on its own device; non-finite pixels become NaN.

    One rule for every measurement: float input must lie in [0, 1] (up to :data:`RANGE_SLACK`, clipped); uint8 and
    other integer input is read as 0-255; bool input is refused. NaN or infinite pixels are kept as NaN, so that
    each measurement refuses that image (count -1, features NaN) instead of reading it. A single image (3,H,W)
    becomes a batch of one.
    """
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise ParameterError("parameter 'x' must be an array of numbers (images); got an object array")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise ParameterError(f"parameter 'x' must be a torch tensor or numpy array of images; got {type(x).__name__}")
    if x.dtype == torch.bool:
        raise ParameterError("parameter 'x' must hold images (float in [0, 1] or integers 0-255); got a bool tensor")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ParameterError(f"parameter 'x' must have shape (n, 3, H, W); got {tuple(x.shape)}")
    if x.is_complex():
        raise ParameterError("parameter 'x' must hold real numbers; got a complex tensor")
    if not x.is_floating_point():
        if x.numel() and (int(x.min()) < 0 or int(x.max()) > 255):
            raise ParameterError(f"parameter 'x': integer images are read as 0-255; got values from {int(x.min())} "
                                 f"to {int(x.max())}")
        return x.detach().float().div(255.0)
    x = x.detach().float()
    bad = ~torch.isfinite(x)
    if x.numel():
        vals = x.masked_fill(bad, 0.5)
        lo, hi = float(vals.min()), float(vals.max())
        if lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
            raise ParameterError(f"parameter 'x' must hold images in [0, 1] (or integers 0-255); got values from "
                                 f"{lo:g} to {hi:g}")
    return x.clamp(0.0, 1.0).masked_fill(bad, float("nan"))


def finite_images(img: torch.Tensor) -> np.ndarray:
    """Per image of a batch from :func:`as_images`: True when every pixel is a number (False: refuse it)."""
    return torch.isfinite(img).flatten(1).all(dim=1).cpu().numpy()


def data_file(name: str):
    """A file shipped in ``probe_utils/data/``."""
    return resources.files("probe_utils").joinpath("data", name)


def read_json_record(name: str, what: str, hint: str) -> dict[str, Any]:
    """Load a JSON file shipped in ``probe_utils/data/``; a missing file says what it is and how to rebuild it."""
    path = data_file(name)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} is missing; {hint}")
    return json.loads(path.read_text())
