"""WGAN-GP (Gulrajani et al. 2017) with the paper's conv critic/generator, and its fully connected variant."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from probe_utils.models.base import ConvDecoder, ConvEncoder, GenerativeModel, init_normal_


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Mean of (||grad critic(x_hat)|| - 1)^2 at random interpolates of real and fake."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).float().norm(dim=1) - 1.0) ** 2).mean()


class _WGANBase(GenerativeModel):
    """Shared WGAN-GP objective; subclasses build ``critic`` and ``generator``."""

    gp_weight: ClassVar[float] = 10.0
    n_critic: int = 5
    #: True: every update of one iteration uses the same batch of training images (the released code's choice)
    reuse_batch: bool = False
    critic: nn.Module
    generator: nn.Module

    def groups(self) -> dict[str, list[nn.Parameter]]:
        return {"critic": list(self.critic.parameters()), "generator": list(self.generator.parameters())}

    def plan(self) -> list[str]:
        return ["critic"] * self.n_critic + ["generator"]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def loss(self, batch: torch.Tensor, group: str) -> torch.Tensor:
        n = batch.shape[0]
        if group == "critic":
            with torch.no_grad():
                fake = self.generator(self.latent(n))
            fake = fake.to(batch.dtype)
            w = self.critic(fake).mean() - self.critic(batch).mean()
            return w + self.gp_weight * gradient_penalty(self.critic, batch, fake)
        if group == "generator":
            return -self.critic(self.generator(self.latent(n))).mean()
        raise KeyError(group)


class WGANGP(_WGANBase):
    """Conv WGAN-GP (paper Table 1 'WGAN'): Gaussian latent, no batch norm in the generator, lr 1e-4."""

    family = "wgan_gp"

    def __init__(self, image_size: int = 64, width: int = 64, z_dim: int = 100, n_critic: int = 5,
                 generator_bn: bool | str = False, init: str = "default", reuse_batch: bool = False) -> None:
        super().__init__(image_size, width, z_dim)
        self.n_critic = n_critic
        self.reuse_batch = reuse_batch
        trunk = ConvEncoder(image_size, width)
        self.critic = nn.Sequential(trunk, nn.Linear(trunk.out_features, 1))
        self.generator = ConvDecoder(image_size, width, z_dim, batch_norm=generator_bn)
        if init not in ("default", "normal"):
            raise ValueError(f"init must be 'default' or 'normal'; got {init!r}")
        if init == "normal":
            init_normal_(self)


def mlp(sizes: list[int], batch_norm: bool, act: type[nn.Module]) -> nn.Sequential:
    """Linear layers with optional batch norm and activation between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(act())
    return nn.Sequential(*layers)


class WGANGPFC(_WGANBase):
    """Fully connected WGAN-GP (paper Table 1 'WGAN-FC'): Bernoulli latent, batch norm in the generator, lr 1e-4.

    Hidden layers have ``16 * width`` units (1024 at width 64), three in each network.
    """

    family = "wgan_gp_fc"

    def __init__(self, image_size: int = 64, width: int = 64, z_dim: int = 100, n_critic: int = 5) -> None:
        super().__init__(image_size, width, z_dim)
        self.n_critic = n_critic
        h, d = 16 * width, 3 * image_size * image_size
        self.critic = nn.Sequential(nn.Flatten(), mlp([d, h, h, h, 1], False, lambda: nn.LeakyReLU(0.1)))
        self._gen = mlp([z_dim, h, h, h, d], True, nn.ReLU)
        self.generator = nn.Sequential(self._gen, nn.Sigmoid(), nn.Unflatten(1, (3, image_size, image_size)))

    def latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        dev = next(self.parameters()).device
        return torch.bernoulli(torch.full((n, self.z_dim), 0.5, device=dev), generator=generator)
