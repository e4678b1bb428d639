"""A small denoising diffusion model: DDPM training (Ho et al. 2020), deterministic DDIM sampling (Song et al. 2021).

The network is a small U-Net (residual blocks with group norm, a sinusoidal time embedding, one stride-2 level per
entry of ``channel_mult`` after the first, self-attention at the lowest resolution) predicting the noise added to
images scaled to [-1, 1], under the cosine schedule (Nichol & Dhariwal 2021) with ``T`` = 1000 training steps.
``loss`` is the mean squared error of the network's target at a uniformly drawn time step.

Target (``prediction``): ``"v"`` (default; Salimans & Ho 2022: v = sqrt(ab) eps - sqrt(1 - ab) x0) or ``"eps"`` (the
noise itself, DDPM's). Both are turned into a noise estimate for the DDIM step. Measured reason for the default: the
dot data sets are almost all white (mean about +0.98 in [-1, 1]); the cosine schedule ends at alpha-bar about 2e-9
(signal-to-noise ratio about 0), where a noise predictor's estimate of x0 is its error times 1 / sqrt(ab) ~ 2e4. An
eps model trained 5 CPU minutes on one-dot images (loss 0.037) therefore started every DDIM trajectory at a grey
x0 and never recovered: 100% of samples were grey mush (refused by the dot counter) at 10 and 20 steps. At high
noise v is about -x0, so a v model predicts the clean image directly there.

EMA: the model keeps none of its own. The training loop averages any model's weights when ``TrainConfig.ema`` is set
(recipe key ``ema``; checkpointed, probes sample the average, the run ends holding it); diffusion models want it
(e.g. 0.999), as sampling the live weights of a short run gives visibly noisier images.

Sampling: DDIM with ``eta = 0`` over ``sample_steps`` steps spaced evenly from ``T - 1`` down ("trailing" spacing, so
the first step starts from pure noise), the predicted clean image clipped to [-1, 1] at every step; the result is
mapped to [0, 1] and clipped. The only randomness is the initial noise, drawn from the given generator.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from probe_utils.models.base import GenerativeModel


def cosine_alphas_cumprod(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """alpha-bar_t for t = 0..T-1 of the cosine schedule, float64, betas clipped at ``max_beta``."""
    if not (isinstance(T, int) and T >= 2):
        raise ValueError(f"T (diffusion steps) must be an integer >= 2; got {T!r}")
    steps = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return torch.cumprod(1 - betas, dim=0)


def linear_alphas_cumprod(T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """alpha-bar_t for t = 0..T-1 of DDPM's linear beta schedule, float64."""
    if not (isinstance(T, int) and T >= 2):
        raise ValueError(f"T (diffusion steps) must be an integer >= 2; got {T!r}")
    return torch.cumprod(1 - torch.linspace(beta_1, beta_T, T, dtype=torch.float64), dim=0)


SCHEDULES = {"cosine": cosine_alphas_cumprod, "linear": linear_alphas_cumprod}


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, ab_t: float | torch.Tensor, ab_prev: float | torch.Tensor,
              clip: bool = True) -> torch.Tensor:
    """One deterministic DDIM update (eta = 0) from alpha-bar ``ab_t`` to ``ab_prev`` given the predicted noise.

    x0 = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t), optionally clipped to [-1, 1] (then eps is recomputed from the
    clipped x0 so the update stays on the line through x_t and x0); returns sqrt(ab_prev) x0 + sqrt(1 - ab_prev) eps.
    """
    ab_t = torch.as_tensor(ab_t, dtype=x_t.dtype, device=x_t.device)
    x0 = (x_t - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
    return ddim_update(x_t, x0, eps, ab_t, ab_prev, clip)


def ddim_update(x_t: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, ab_t: float | torch.Tensor,
                ab_prev: float | torch.Tensor, clip: bool = True) -> torch.Tensor:
    """The DDIM update given both estimates (x0, eps) of x_t at alpha-bar ``ab_t``; see :func:`ddim_step`."""
    ab_t = torch.as_tensor(ab_t, dtype=x_t.dtype, device=x_t.device)
    ab_prev = torch.as_tensor(ab_prev, dtype=x_t.dtype, device=x_t.device)
    if clip:
        x0 = x0.clamp(-1, 1)
        eps = (x_t - ab_t.sqrt() * x0) / (1 - ab_t).clamp(min=1e-12).sqrt()
    return ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (n, dim) of integer time steps t (n,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _norm(c: int) -> nn.GroupNorm:
    """Group norm with up to 8 groups (as many as divide ``c``)."""
    return nn.GroupNorm(math.gcd(c, 8), c)


class ResBlock(nn.Module):
    """GN-SiLU-conv, plus the projected time embedding, GN-SiLU-conv (zero-initialised), plus a (1x1) skip."""

    def __init__(self, c_in: int, c_out: int, t_dim: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.temb = nn.Linear(t_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(temb)[:, :, None, None].to(h.dtype)
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the pixels of a feature map, residual, output projection zero-initialised."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm, self.qkv, self.proj = _norm(c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=2)  # (n, hw, c) each
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(1, 2).reshape(n, c, h, w))


class UNet(nn.Module):
    """Noise predictor eps(x_t, t): one residual block per level on the way down and up, skips by concatenation,
    stride-2 conv down, nearest-neighbour up (the next block's conv smooths), attention at the lowest level."""

    def __init__(self, width: int, channel_mult: tuple[int, ...], attention: bool) -> None:
        super().__init__()
        chans = [width * m for m in channel_mult]
        t_dim = 4 * width
        self.width = width
        self.t_mlp = nn.Sequential(nn.Linear(width, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.inp = nn.Conv2d(3, chans[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = chans[0]
        for i, c in enumerate(chans):
            self.down.append(ResBlock(prev, c, t_dim))
            prev = c
            if i < len(chans) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(prev, prev, t_dim)
        self.attn = Attention(prev) if attention else nn.Identity()
        self.up = nn.ModuleList()
        for c in reversed(chans):
            self.up.append(ResBlock(prev + c, c, t_dim))
            prev = c
        self.out_norm = _norm(prev)
        self.out = nn.Conv2d(prev, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.t_mlp(timestep_embedding(t, self.width).to(x.dtype))
        h = self.inp(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, temb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.attn(self.mid(h, temb))
        for i, block in enumerate(self.up):
            if i > 0:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1), temb)
        return self.out(F.silu(self.out_norm(h)))


class Diffusion(GenerativeModel):
    """DDPM-trained noise-predicting (v or eps) U-Net sampled by deterministic DDIM (family ``"diffusion"``).

    ``width``: base channels of the U-Net; ``channel_mult``: channel multiplier per resolution level (its length is
    the number of levels: 32 px with (1, 2, 2) has 32, 16 and 8 px levels); ``attention``: self-attention at the
    lowest level; ``schedule``: ``"cosine"`` or ``"linear"``; ``T``: training time steps; ``sample_steps``: DDIM steps;
    ``prediction``: ``"v"`` or ``"eps"`` (the network's target; see the module docstring);
    ``clip_x0``: clip the predicted clean image to [-1, 1] at every DDIM step; ``z_dim`` is accepted and unused.
    """

    family = "diffusion"
    lr: ClassVar[float] = 2e-4
    betas: ClassVar[tuple[float, float]] = (0.9, 0.999)

    def __init__(self, image_size: int = 64, width: int = 64, z_dim: int = 100, *,
                 channel_mult: tuple[int, ...] = (1, 2, 2), attention: bool = True, schedule: str = "cosine",
                 T: int = 1000, sample_steps: int = 20, prediction: str = "v",
                 clip_x0: bool = True) -> None:
        super().__init__(image_size, width, z_dim)
        if not (isinstance(width, int) and width >= 1):
            raise ValueError(f"width must be an integer >= 1; got {width!r}")
        mult = tuple(channel_mult)
        if not mult or not all(isinstance(m, int) and m >= 1 for m in mult):
            raise ValueError(f"channel_mult must be a non-empty sequence of integers >= 1; got {channel_mult!r}")
        if image_size % 2 ** (len(mult) - 1):
            raise ValueError(f"image_size {image_size} must be divisible by 2 ** (len(channel_mult) - 1) = "
                             f"{2 ** (len(mult) - 1)}; use fewer levels in channel_mult")
        if prediction not in ("v", "eps"):
            raise ValueError(f"prediction must be 'v' or 'eps'; got {prediction!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}; got {schedule!r}")
        if not (isinstance(T, int) and T >= 2):
            raise ValueError(f"T (diffusion steps) must be an integer >= 2; got {T!r}")
        if not (isinstance(sample_steps, int) and 1 <= sample_steps <= T):
            raise ValueError(f"sample_steps must be an integer in [1, T={T}]; got {sample_steps!r}")
        self.T, self.sample_steps, self.clip_x0 = T, sample_steps, clip_x0
        self.schedule, self.prediction = schedule, prediction
        self.register_buffer("alphas_cumprod", SCHEDULES[schedule](T).float(), persistent=False)
        self.net = UNet(width, mult, attention)

    def groups(self) -> dict[str, list[nn.Parameter]]:
        return {"diffusion": list(self.net.parameters())}

    def plan(self) -> list[str]:
        return ["diffusion"]

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def loss(self, batch: torch.Tensor, group: str) -> torch.Tensor:
        """MSE between the target (v or the noise) and its prediction at a uniform time step (t and noise from
        torch's global RNG)."""
        if group != "diffusion":
            raise KeyError(f"group must be 'diffusion'; got {group!r}")
        x0 = batch * 2 - 1
        n = x0.shape[0]
        t = torch.randint(0, self.T, (n,), device=x0.device)
        eps = torch.randn_like(x0)
        ab = self.alphas_cumprod[t].view(n, 1, 1, 1).to(x0.dtype)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        target = eps if self.prediction == "eps" else ab.sqrt() * eps - (1 - ab).sqrt() * x0
        return F.mse_loss(self.net(x_t, t).float(), target.float())

    def timesteps(self) -> list[int]:
        """The DDIM time steps, descending from T - 1 ("trailing" spacing)."""
        s = self.sample_steps
        return [int(round(self.T * (s - i) / s)) - 1 for i in range(s)]

    def predict(self, x_t: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's estimates (x0, eps) of the clean image and the noise in x_t at time step t (float32),
        each computed directly from its output (no division by a vanishing sqrt(alpha-bar) for v)."""
        out = self.net(x_t, torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long)).float()
        ab = self.alphas_cumprod[t]
        if self.prediction == "eps":
            return (x_t - (1 - ab).sqrt() * out) / ab.sqrt(), out
        return ab.sqrt() * x_t - (1 - ab).sqrt() * out, (1 - ab).sqrt() * x_t + ab.sqrt() * out

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        """Run the DDIM sampler from noise ``x`` (n,3,H,W); images in [0,1]."""
        ts = self.timesteps()
        ab = self.alphas_cumprod
        for i, t in enumerate(ts):
            prev = ab[ts[i + 1]] if i + 1 < len(ts) else torch.ones((), device=x.device)
            x = ddim_update(x, *self.predict(x, t), ab[t], prev, clip=self.clip_x0)
        return ((x + 1) / 2).clamp(0, 1)

    def latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Initial noise x_T (n,3,H,W)."""
        dev = self.alphas_cumprod.device
        return torch.randn(n, 3, self.image_size, self.image_size, device=dev, generator=generator)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.denoise(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, batch_size: int = 1000) -> torch.Tensor:
        """n images (n,3,H,W) float32 in [0,1] on the model's device, in eval mode; seeded by ``generator``."""
        was_training = self.training
        self.eval()
        try:
            out = [self.denoise(self.latent(min(batch_size, n - i), generator)).float()
                   for i in range(0, n, batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out) if out else torch.empty(0, 3, self.image_size, self.image_size)
