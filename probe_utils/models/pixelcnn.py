"""Gated PixelCNN (van den Oord et al. 2016) with a discretised output and an exact, cached sampler for the CPU.

**Factorisation.** Images are quantised to ``levels`` intensities per channel (default 16) and modelled as
``p(x) = prod_p p(R_p | x_<p) p(G_p | x_<p, R_p) p(B_p | x_<p, R_p, G_p)`` over pixels ``p`` in raster order. The
conv *trunk* sees only pixels strictly before ``p`` (no part of pixel ``p``); a small *head* at each pixel turns the
trunk's features into the three categorical distributions, G's given R's level and B's given R's and G's levels
(learned embeddings). This is the chain rule, so it is exact, like colour-masked convolutions, but the trunk runs once
per pixel when sampling instead of three times.

**Trunk.** A vertical stack (rows strictly above, ``kernel // 2 + 1`` rows of ``kernel`` columns per layer, so no
blind spot) and a horizontal stack (the current row, to the left), joined by a 1x1 conv from vertical to horizontal,
with gated ``tanh * sigmoid`` units and residual connections in the horizontal stack. The first layer sees
``first_kernel // 2`` rows above (``first_kernel`` columns wide) and ``first_kernel // 2`` pixels to the left (the
paper's 7x7 mask-A split).

**Context** (option, off by default: the paper's model has none). A gated stack's receptive field is local (at the
default depth: 6 rows above, 6 pixels left, 13 columns wide), so it cannot know whether a dot was drawn far away.
``context=True`` adds two causal summaries to the features at each pixel: the running maximum over rows of the
vertical stack (everything in the rows above) and the running maximum along the row of the horizontal stack
(everything to the left), each through a linear map. Both are exact under the same factorisation.

**Levels.** 16: one step (1/15 = 0.067) is above the dot counter's darkness threshold (0.05), so the palest level
under white is still ink, and the rounding error (at most 0.033) is far below the 35% contrast of dots; 8 levels
would double it for no saving (the head's softmax is a few hundred multiply-adds per pixel), 256 need far more data
per level. Quantisation leaves the measured dot count of every training image as it was (see the report).

**Sampling** is exact and batched: per row the vertical stack is computed for that row only, from cached rows of
the layer below; per pixel the horizontal stack and head are computed at that pixel only, from cached values to its
left. That is one network evaluation's worth of arithmetic per image in all, in ``H * W`` small steps.
:func:`sample_naive` (the whole network on the whole image, three times per pixel) is the reference it is tested
against. All randomness is one uniform per sub-pixel drawn from the given generator (inverse-CDF sampling).

Example (measured by ``scripts/pixelcnn_check.py``: 32 px one-dot renders, width 16, default depth, one thread,
fp32, on a loaded 2-core machine): 0.27 CPU-s per iteration at batch 64 (probes included), 3.2 CPU-s to sample 1000
images; bits per sub-pixel 3.39 after 25 iterations, 0.23 at 125, 0.12 at 325, 0.107 at 625 (180 CPU-s)::

    >>> model = PixelCNN(image_size=32, width=16)          # 22,560 parameters
    >>> model.loss(batch, "pixelcnn") / math.log(2)        # bits/dim
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from probe_utils.models.base import GenerativeModel
from probe_utils.params import ParameterError, check_int


def _gate(a: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Gated unit: tanh of the first half of ``dim`` times sigmoid of the second half."""
    t, s = a.chunk(2, dim=dim)
    return torch.tanh(t) * torch.sigmoid(s)


class PixelCNN(GenerativeModel):
    """Gated PixelCNN over ``levels`` intensities per channel; loss: mean NLL in nats per sub-pixel.

    Options: ``layers`` (gated layers after the first, default 3), ``levels`` (2..256, default 16), ``kernel`` (odd,
    default 3), ``first_kernel`` (odd, default 7), ``head`` (hidden units of the per-pixel head, default width),
    ``context`` (causal whole-image summaries, default False).
    """

    family = "pixelcnn"
    lr = 1e-3
    betas = (0.9, 0.999)
    #: most samples the training loop should draw per probe (``None``: as many as the run's settings ask for)
    probe_samples_cap: ClassVar[int | None] = None

    def __init__(self, image_size: int = 64, width: int = 64, z_dim: int = 100, *, layers: int = 3,
                 levels: int = 16, kernel: int = 3, first_kernel: int = 7, head: int | None = None,
                 context: bool = False, **options) -> None:
        if not isinstance(context, bool):
            raise ParameterError(f"parameter 'context' must be True or False; got {context!r}", "context")
        if options:
            bad = sorted(options)[0]
            raise ParameterError(f"parameter {bad!r} is not a PixelCNN option; allowed: layers, levels, kernel, "
                                 f"first_kernel, head, context", bad)
        super().__init__(image_size, width, z_dim)
        check_int("image_size", image_size, 2)
        c = check_int("width", width, 1)
        self.layers = check_int("layers", layers, 0, 64)
        self.levels = check_int("levels", levels, 2, 256)
        for name, k in (("kernel", kernel), ("first_kernel", first_kernel)):
            check_int(name, k, 3, 15)
            if k % 2 == 0:
                raise ParameterError(f"parameter {name!r} must be an odd integer in 3..15; got {k}", name)
        self.kernel, self.first_kernel = kernel, first_kernel
        d = check_int("head", head if head is not None else c, 1)
        k0, kv = first_kernel // 2, kernel // 2
        # first layer: rows i-k0..i-1 (2*k0+1 columns) and columns j-k0..j-1 of the input
        self.v_in = nn.Conv2d(3, 2 * c, (k0, 2 * k0 + 1))
        self.h_in = nn.Conv2d(3, 2 * c, (1, k0))
        self.vh_in = nn.Conv2d(2 * c, 2 * c, 1)
        self.out_in = nn.Conv2d(c, c, 1)
        # gated layers: vertical rows i-kv..i of the layer below (which already sees only rows < i), kv+1 columns
        # j-kv..j of the horizontal stack below
        self.v = nn.ModuleList(nn.Conv2d(c, 2 * c, (kv + 1, 2 * kv + 1)) for _ in range(self.layers))
        self.h = nn.ModuleList(nn.Conv2d(c, 2 * c, (1, kv + 1)) for _ in range(self.layers))
        self.vh = nn.ModuleList(nn.Conv2d(2 * c, 2 * c, 1) for _ in range(self.layers))
        self.out = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(self.layers))
        self.context = bool(context)
        if self.context:  # causal summaries of everything before a pixel: cumulative maxima over rows and columns
            self.ctx_rows = nn.Linear(c, c)
            self.ctx_left = nn.Linear(c, c, bias=False)
        # per-pixel head: R | trunk, G | trunk, R, B | trunk, R, G
        self.proj = nn.Linear(c, 3 * d)
        self.emb_g_r = nn.Embedding(self.levels, d)
        self.emb_b_r = nn.Embedding(self.levels, d)
        self.emb_b_g = nn.Embedding(self.levels, d)
        self.logit = nn.ModuleList(nn.Linear(d, self.levels) for _ in range(3))

    # ---- training ------------------------------------------------------------------------------------------------
    def groups(self) -> dict[str, list[nn.Parameter]]:
        return {"pixelcnn": list(self.parameters())}

    def plan(self) -> list[str]:
        return ["pixelcnn"]

    def quantise(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0,1] -> integer levels 0..levels-1 (long), nearest level."""
        return (images.float().clamp(0, 1) * (self.levels - 1)).round().long()

    def _to_input(self, q: torch.Tensor) -> torch.Tensor:
        """Levels -> the trunk's input in [-1, 1] (0 is the padding value)."""
        return q.to(self.v_in.weight.dtype) * (2.0 / (self.levels - 1)) - 1.0

    def trunk(self, q: torch.Tensor) -> torch.Tensor:
        """Features (n, H, W, width) at every pixel from the pixels strictly before it (raster order)."""
        return self.trunk_input(self._to_input(q))

    def trunk_input(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`trunk` on the scaled input (levels mapped to [-1, 1]); differentiable in ``x``."""
        k0, kv = self.first_kernel // 2, self.kernel // 2
        hgt, wid = x.shape[-2:]
        v_pre = self.v_in(F.pad(x, (k0, k0, k0, 0)))[:, :, :hgt]
        h = self.out_in(_gate(self.h_in(F.pad(x, (k0, 0, 0, 0)))[..., :wid] + self.vh_in(v_pre)))
        v = _gate(v_pre)
        for conv_v, conv_h, vh, out in zip(self.v, self.h, self.vh, self.out):
            v_pre = conv_v(F.pad(v, (kv, kv, kv, 0)))
            h = h + out(_gate(conv_h(F.pad(h, (kv, 0, 0, 0))) + vh(v_pre)))
            v = _gate(v_pre)
        f = h.permute(0, 2, 3, 1)
        if self.context:
            rows = v.amax(dim=3).cummax(dim=2).values  # (n, c, H): ink anywhere in the rows above
            left = h.cummax(dim=3).values  # (n, c, H, W): anything up to this pixel in its row
            f = f + self.ctx_rows(rows.transpose(1, 2)).unsqueeze(2) + self.ctx_left(left.permute(0, 2, 3, 1))
        return f

    def _head(self, f: torch.Tensor, ch: int, r: torch.Tensor | None = None,
              g: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of channel ``ch`` (0 R, 1 G, 2 B) from features ``f`` (..., width) and the levels before it."""
        p = self.proj(torch.relu(f)).chunk(3, dim=-1)[ch]
        if ch >= 1:
            p = p + (self.emb_g_r(r) if ch == 1 else self.emb_b_r(r) + self.emb_b_g(g))
        return self.logit[ch](torch.relu(p))

    def logits(self, q: torch.Tensor) -> torch.Tensor:
        """Logits (n, H, W, 3, levels) of every sub-pixel given all those before it, for levels ``q`` (n,3,H,W)."""
        f = self.trunk(q)
        r, g = q[:, 0], q[:, 1]
        return torch.stack([self._head(f, 0), self._head(f, 1, r), self._head(f, 2, r, g)], dim=3)

    def loss(self, batch: torch.Tensor, group: str) -> torch.Tensor:
        """Mean negative log-likelihood of the quantised batch, in nats per sub-pixel (divide by ln 2: bits/dim)."""
        if group != "pixelcnn":
            raise KeyError(group)
        q = self.quantise(batch)
        logits = self.logits(q).float()
        return F.cross_entropy(logits.reshape(-1, self.levels), q.permute(0, 2, 3, 1).reshape(-1))

    # ---- sampling ------------------------------------------------------------------------------------------------
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("a PixelCNN has no latent code; use sample()")

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, batch_size: int = 1000) -> torch.Tensor:
        """n images (n,3,H,W) in [0,1] (multiples of 1/(levels-1)), float32, exact autoregressive samples."""
        n = check_int("n", n, 0)
        batch_size = check_int("batch_size", batch_size, 1)
        was_training = self.training
        self.eval()
        try:
            out = [self._sample_cached(min(batch_size, n - i), generator) for i in range(0, n, batch_size)]
        finally:
            self.train(was_training)
        s = self.image_size
        dev = self.v_in.weight.device
        return torch.cat(out) if out else torch.empty(0, 3, s, s, device=dev)

    def _uniforms(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """One uniform per sub-pixel, (n, H, W, 3): the only randomness of a sample."""
        s = self.image_size
        return torch.rand(n, s, s, 3, generator=generator, device=self.v_in.weight.device)

    def _draw(self, logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Inverse-CDF draw of one level per row of ``logits`` (m, levels) with uniforms ``u`` (m,)."""
        cdf = torch.softmax(logits, dim=-1).cumsum(dim=-1)
        return (cdf < u.to(cdf.dtype).unsqueeze(-1)).sum(dim=-1).clamp_(max=self.levels - 1)

    def _pixel_levels(self, f: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Levels (m, 3) drawn at one pixel from trunk features ``f`` (m, width) and uniforms ``u`` (m, 3)."""
        r = self._draw(self._head(f, 0), u[:, 0])
        g = self._draw(self._head(f, 1, r), u[:, 1])
        b = self._draw(self._head(f, 2, r, g), u[:, 2])
        return torch.stack([r, g, b], dim=1)

    def _sample_cached(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """One batch by the row/pixel-cached sampler."""
        s, c, L = self.image_size, self.width, self.layers
        k0, kv = self.first_kernel // 2, self.kernel // 2
        w = self.v_in.weight
        dev, dt = w.device, w.dtype
        u = self._uniforms(n, generator)
        q = torch.zeros(n, 3, s, s, dtype=torch.long, device=dev)
        # the input with zero padding: row i at k0 + i, column j at k0 + j
        x = torch.zeros(n, 3, s + k0, s + 2 * k0, device=dev, dtype=dt)
        # gated vertical outputs per layer (all but the last), zero-padded: row i at kv + i, column j at kv + j
        vbuf = [torch.zeros(n, c, s + kv, s + 2 * kv, device=dev, dtype=dt) for _ in range(L)]
        # horizontal outputs of the current row per layer, zero-padded on the left: column j at kv + j
        hrow = [torch.zeros(n, c, s + kv, device=dev, dtype=dt) for _ in range(L)]
        wh = [self.h_in.weight.reshape(2 * c, -1)] + [m.weight.reshape(2 * c, -1) for m in self.h]
        bh = [self.h_in.bias] + [m.bias for m in self.h]
        wo = [self.out_in.weight.reshape(c, c)] + [m.weight.reshape(c, c) for m in self.out]
        bo = [self.out_in.bias] + [m.bias for m in self.out]
        vconv, vhconv = [self.v_in] + list(self.v), [self.vh_in] + list(self.vh)
        for i in range(s):
            vh = []
            left = None
            for layer in range(L + 1):
                src = x[:, :, i:i + k0] if layer == 0 else vbuf[layer - 1][:, :, i:i + kv + 1]
                v_pre = vconv[layer](src)  # (n, 2c, 1, s): row i only
                vh.append((vhconv[layer](v_pre)[:, :, 0] + bh[layer].unsqueeze(-1)).transpose(1, 2).contiguous())
                if layer < L:
                    vbuf[layer][:, :, kv + i, kv:kv + s] = _gate(v_pre)[:, :, 0]
                elif self.context:
                    top = _gate(v_pre)[:, :, 0].amax(dim=2)
                    rows = top if i == 0 else torch.maximum(rows, top)
                    row_ctx = self.ctx_rows(rows)
            for j in range(s):
                win = x[:, :, k0 + i, j:j + k0].reshape(n, -1)
                h = F.linear(_gate(torch.addmm(vh[0][:, j], win, wh[0].t())), wo[0], bo[0])
                for layer in range(1, L + 1):
                    hrow[layer - 1][:, :, kv + j] = h
                    win = hrow[layer - 1][:, :, j:j + kv + 1].reshape(n, -1)
                    h = h + F.linear(_gate(torch.addmm(vh[layer][:, j], win, wh[layer].t())), wo[layer], bo[layer])
                f = h
                if self.context:
                    left = h if j == 0 else torch.maximum(left, h)
                    f = h + row_ctx + self.ctx_left(left)
                lv = self._pixel_levels(f, u[:, i, j])
                q[:, :, i, j] = lv
                x[:, :, k0 + i, k0 + j] = self._to_input(lv)
        return q.float() / (self.levels - 1)


@torch.no_grad()
def sample_naive(model: PixelCNN, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Reference sampler: the whole network on the whole image once per sub-pixel (slow; for tests).

    Draws the same uniforms as :meth:`PixelCNN.sample`, so for a batch of ``n`` the two give the same images."""
    was_training = model.training
    model.eval()
    try:
        u = model._uniforms(n, generator)
        s = model.image_size
        q = torch.zeros(n, 3, s, s, dtype=torch.long, device=u.device)
        for i in range(s):
            for j in range(s):
                for ch in range(3):
                    logits = model.logits(q)[:, i, j, ch]
                    q[:, ch, i, j] = model._draw(logits, u[:, i, j, ch])
    finally:
        model.train(was_training)
    return q.float() / (model.levels - 1)
