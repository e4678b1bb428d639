"""VAE (Kingma & Welling 2014) with the paper's conv encoder/decoder, and the fully connected beta-VAE variant."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from probe_utils.models.base import ConvDecoder, ConvEncoder, GenerativeModel, init_normal_
from probe_utils.models.wgan_gp import mlp


class _VAEBase(GenerativeModel):
    """Negative ELBO with a ``beta``-weighted KL term.

    ``recon``: ``"bce"`` (Bernoulli pixel likelihood, the usual reading of the paper) or ``"l2l1"`` (the released
    code: sum of squared errors plus half the sum of absolute errors). ``kl_warmup``: None, or a time constant
    ``tau`` in iterations, the KL weight then being ``beta * (1 - exp(-t / tau))`` (the released code: 50,000).
    ``sigma_floor``: None, or the smallest standard deviation of the encoder (the released code: 0.01).
    ``beta``: None (the family's own KL weight: 1 for the conv VAE, 3 for the FC beta-VAE) or another weight > 0."""

    beta: ClassVar[float] = 1.0
    recon: str = "bce"
    kl_warmup: float | None = None
    sigma_floor: float | None = None

    def configure(self, recon: str = "bce", kl_warmup: float | None = None, sigma_floor: float | None = None,
                  beta: float | None = None) -> None:
        if recon not in ("bce", "l2l1"):
            raise ValueError(f"recon must be 'bce' or 'l2l1'; got {recon!r}")
        if beta is not None and not (isinstance(beta, (int, float)) and 0 < beta <= 100):
            raise ValueError(f"beta (the KL weight) must be a number in (0, 100]; got {beta!r}")
        self.recon, self.kl_warmup, self.sigma_floor = recon, kl_warmup, sigma_floor
        if beta is not None:
            self.kl_weight = float(beta)
    encoder: nn.Module
    to_stats: nn.Module
    decoder: nn.Module

    def groups(self) -> dict[str, list[nn.Parameter]]:
        return {"vae": list(self.parameters())}

    def plan(self) -> list[str]:
        return ["vae"]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def loss(self, batch: torch.Tensor, group: str) -> torch.Tensor:
        mu, logvar = self.to_stats(self.encoder(batch)).float().chunk(2, dim=1)
        lo = -20.0 if self.sigma_floor is None else 2 * math.log(self.sigma_floor)
        logvar = logvar.clamp(lo, 10)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = self.decoder(z.to(batch.dtype)).float().clamp(1e-6, 1 - 1e-6)
        with torch.autocast(recon.device.type, enabled=False):  # BCE is not allowed under CUDA autocast
            if self.recon == "bce":
                nll = F.binary_cross_entropy(recon, batch.float(), reduction="sum") / batch.shape[0]
            else:
                err = recon - batch.float()
                nll = (err.pow(2).sum() + 0.5 * err.abs().sum()) / batch.shape[0]
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / batch.shape[0]
        weight = getattr(self, "kl_weight", self.beta)
        if self.kl_warmup:
            weight *= 1.0 - math.exp(-self.train_step / self.kl_warmup)
        return nll + weight * kl


def _init(model: nn.Module, init: str) -> None:
    """``init``: "default" (PyTorch's) or "normal" (N(0, 0.02) weights, the released code's)."""
    if init not in ("default", "normal"):
        raise ValueError(f"init must be 'default' or 'normal'; got {init!r}")
    if init == "normal":
        init_normal_(model)


class VAE(_VAEBase):
    """Conv VAE (paper Table 1 'VAE'): ELBO, Gaussian latent, batch norm in the decoder, lr 1e-4."""

    family = "vae"

    def __init__(self, image_size: int = 64, width: int = 64, z_dim: int = 100, decoder_bn: bool | str = True,
                 init: str = "default", **options) -> None:
        super().__init__(image_size, width, z_dim)
        self.encoder = ConvEncoder(image_size, width, batch_norm=True)
        self.to_stats = nn.Linear(self.encoder.out_features, 2 * z_dim)
        self.decoder = ConvDecoder(image_size, width, z_dim, batch_norm=decoder_bn)
        _init(self, init)
        self.configure(**options)


class VAEFC(_VAEBase):
    """Fully connected beta-VAE (paper Table 1 'VAE-FC'): beta = 3, batch norm, lr 5e-3; hidden 16 * width units."""

    family = "vae_fc"
    beta = 3.0
    lr = 5e-3

    def __init__(self, image_size: int = 64, width: int = 64, z_dim: int = 100, **options) -> None:
        super().__init__(image_size, width, z_dim)
        self.configure(**options)
        h, d = 16 * width, 3 * image_size * image_size
        self.encoder = nn.Sequential(nn.Flatten(), mlp([d, h, h], True, lambda: nn.LeakyReLU(0.1)), nn.LeakyReLU(0.1))
        self.to_stats = nn.Linear(h, 2 * z_dim)
        self.decoder = nn.Sequential(mlp([z_dim, h, h, d], True, nn.ReLU), nn.Sigmoid(),
                                     nn.Unflatten(1, (3, image_size, image_size)))
