"""The interface every generative model family implements, and the shared conv stacks.

A model owns its parameter groups (one optimiser each), the order in which they are updated within one training
iteration (``plan``), and a loss per group. The single training loop in :mod:`probe_utils.train` drives any family
through this interface; notebooks only call ``sample``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn


class GenerativeModel(nn.Module):
    """Base class: a generator of (n,3,H,W) images in [0,1] trained by per-group losses."""

    family: ClassVar[str] = ""
    #: Adam settings (paper: lr 1e-4, betas (0.5, 0.9)); a family may override them.
    lr: ClassVar[float] = 1e-4
    betas: ClassVar[tuple[float, float]] = (0.5, 0.9)

    def __init__(self, image_size: int = 64, width: int = 64, z_dim: int = 100) -> None:
        super().__init__()
        self.image_size = image_size
        self.width = width
        self.z_dim = z_dim
        #: "eval": sample with batch norm's running statistics; "batch": with each sampled batch's own statistics
        #: (the released code's choice; running statistics are left untouched)
        self.sample_bn = "eval"
        #: the training iteration now running (set by the training loop; schedules such as KL warm-up read it)
        self.train_step = 0

    def groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameter groups, each trained by its own optimiser."""
        raise NotImplementedError

    def plan(self) -> list[str]:
        """Groups updated, in order, within one training iteration (each on a fresh batch)."""
        raise NotImplementedError

    def loss(self, batch: torch.Tensor, group: str) -> torch.Tensor:
        """Scalar loss for ``group`` on a batch of training images in [0,1]."""
        raise NotImplementedError

    def latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n latent codes (standard normal by default)."""
        dev = next(self.parameters()).device
        return torch.randn(n, self.z_dim, device=dev, generator=generator)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map latent codes to images in [0,1]."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, batch_size: int = 1000) -> torch.Tensor:
        """Generate n images (n,3,H,W) in [0,1] on the model's device, in eval mode, as float32."""
        was_training = self.training
        self.eval()
        norms = [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        if self.sample_bn == "batch":
            for m in norms:
                m.train()
                m.momentum = 0.0  # use the batch's statistics, keep the running ones as they are
        try:
            out = [self.decode(self.latent(min(batch_size, n - i), generator)).float()
                   for i in range(0, n, batch_size)]
        finally:
            for m, mom in zip(norms, momenta):
                m.momentum = mom
            self.train(was_training)
        return torch.cat(out) if out else torch.empty(0, 3, self.image_size, self.image_size)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def init_normal_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """Weights of every conv and linear layer drawn from N(0, std), biases zero (the released code's hidden-layer
    initialisation; PyTorch's default is Kaiming-uniform)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def stage_channels(image_size: int, width: int) -> list[int]:
    """Channels of the stride-2 stages from full resolution down to 4x4.

    At 64 px and width 64 this is the paper's 64-128-192-256; other sizes add or drop stages at the wide end.
    """
    stages = int(round(math.log2(image_size))) - 2
    if 2 ** (stages + 2) != image_size or stages < 1:
        raise ValueError(f"image_size must be a power of two >= 8; got {image_size}")
    mult = [1] * max(0, stages - 4) + [1, 2, 3, 4][-stages:]
    return [width * m for m in mult]


class ConvEncoder(nn.Module):
    """4x4 stride-2 convs with leaky ReLU 0.1 down to 4x4, then fc ``16 * width`` (1024 at the paper's width 64)."""

    def __init__(self, image_size: int, width: int, hidden: int | None = None, batch_norm: bool = False) -> None:
        super().__init__()
        chans = stage_channels(image_size, width)
        hidden = hidden or 16 * width
        layers: list[nn.Module] = []
        c_in = 3
        for i, c in enumerate(chans):
            layers.append(nn.Conv2d(c_in, c, 4, stride=2, padding=1))
            if batch_norm and i > 0:
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.LeakyReLU(0.1))
            c_in = c
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c_in * 16, hidden), nn.LeakyReLU(0.1))
        self.out_features = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x))


class ConvDecoder(nn.Module):
    """z -> fc 16*width (1024 at width 64) -> 4x4xC -> 4x4 stride-2 transposed convs up to the image, sigmoid (the
    paper's generator).

    ``batch_norm``: False (none), True (after every hidden layer) or ``"released"`` (the authors' released code:
    after the two fc layers and the first transposed conv only)."""

    def __init__(self, image_size: int, width: int, z_dim: int, hidden: int | None = None,
                 batch_norm: bool | str = False) -> None:
        super().__init__()
        if batch_norm not in (False, True, "released"):
            raise ValueError(f"batch_norm must be False, True or 'released'; got {batch_norm!r}")
        chans = stage_channels(image_size, width)[::-1]
        hidden = hidden or 16 * width
        n_norm = {False: 0, True: 10 ** 6, "released": 3}[batch_norm]
        norm = (lambda n: nn.BatchNorm1d(n)) if n_norm >= 1 else (lambda n: nn.Identity())
        self.c0 = chans[0]
        self.fc = nn.Sequential(
            nn.Linear(z_dim, hidden), norm(hidden), nn.ReLU(),
            nn.Linear(hidden, chans[0] * 16), norm(chans[0] * 16), nn.ReLU(),
        )
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(chans, chans[1:])):
            bn = nn.BatchNorm2d(c_out) if i + 2 < n_norm else nn.Identity()
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), bn, nn.ReLU()]
        layers.append(nn.ConvTranspose2d(chans[-1], 3, 4, stride=2, padding=1))
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], self.c0, 4, 4)
        return torch.sigmoid(self.deconvs(h))
