"""Shared input handling for measurements: any (n,3,H,W) image batch, tensor or array."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import numpy as np
import torch

from probe_utils.params import ParameterError


def as_images(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Return ``x`` as a float32 tensor (n,3,H,W) in [0,1] on its own device.

    Accepts torch tensors on any device or numpy arrays; uint8 input is scaled by 1/255;
    a single image (3,H,W) becomes a batch of one.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise ParameterError(f"parameter 'x' must be a torch tensor or numpy array of images; got {type(x).__name__}")
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    x = x.detach().float()
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ParameterError(f"parameter 'x' must have shape (n, 3, H, W); got {tuple(x.shape)}")
    return x.clamp(0.0, 1.0)


def data_file(name: str):
    """A file shipped in ``probe_utils/data/``."""
    return resources.files("probe_utils").joinpath("data", name)


def read_json_record(name: str, what: str, hint: str) -> dict[str, Any]:
    """Load a JSON file shipped in ``probe_utils/data/``; a missing file says what it is and how to rebuild it."""
    path = data_file(name)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} is missing; {hint}")
    return json.loads(path.read_text())
