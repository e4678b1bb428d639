"""PixelCNN family: it learns, samples reproducibly, is causal without a blind spot, and its cached sampler is exact."""

from __future__ import annotations

import itertools

import pytest
import torch

from probe_utils.models.pixelcnn import PixelCNN, sample_naive
from probe_utils.params import ParameterError
from probe_utils.render import dots


def _tiny(size: int = 8, **kw) -> PixelCNN:
    torch.manual_seed(0)
    opts = dict(width=4, layers=2, levels=4, first_kernel=5, head=16) | kw
    model = PixelCNN(image_size=size, **opts).double()
    with torch.no_grad():  # larger weights than the default init: distributions far from uniform, stronger signals
        for p in model.parameters():
            p.mul_(3)
    return model


def test_loss_decreases_on_dots():
    x, _ = dots.render(count=1, n=8, seed=0, size=32)
    torch.manual_seed(0)
    model = PixelCNN(image_size=32, width=8, layers=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = model.loss(x, "pixelcnn")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(torch.isfinite(torch.tensor(losses)))


def test_sample_shape_range_and_determinism():
    model = PixelCNN(image_size=8, width=4, layers=1, levels=8)
    model.train()
    a = model.sample(5, generator=torch.Generator().manual_seed(3), batch_size=2)
    assert model.training  # the mode is restored
    assert a.shape == (5, 3, 8, 8) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a * 7, (a * 7).round())  # on the quantisation grid
    b = model.sample(5, generator=torch.Generator().manual_seed(3), batch_size=2)
    c = model.sample(5, generator=torch.Generator().manual_seed(4), batch_size=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert model.sample(0).shape == (0, 3, 8, 8)


@pytest.mark.parametrize("kw", [dict(), dict(layers=0), dict(kernel=5, first_kernel=3, layers=1), dict(context=True)])
def test_cached_sampler_matches_naive(kw):
    """Float64, so the conv (naive) and matmul (cached) routes round alike and every draw agrees."""
    model = _tiny(**kw)
    cached = model.sample(6, generator=torch.Generator().manual_seed(1), batch_size=4)
    gen = torch.Generator().manual_seed(1)
    naive = torch.cat([sample_naive(model, 4, gen), sample_naive(model, 2, gen)])
    assert torch.equal(cached, naive)
    assert cached.unique().numel() > 1  # not a degenerate all-one-level sample


def _order(size: int) -> list[tuple[int, int, int]]:
    """Sub-pixels (row, column, channel) in the model's order."""
    return list(itertools.product(range(size), range(size), range(3)))


@pytest.mark.parametrize("context", [False, True])
def test_logits_do_not_see_the_future(context):
    """The logits of a sub-pixel do not change when it or any later one changes; the one just before is seen."""
    size = 5
    model = _tiny(size, context=context)
    gen = torch.Generator().manual_seed(0)
    q = torch.randint(0, model.levels, (1, 3, size, size), generator=gen)
    base = model.logits(q)
    order = _order(size)
    for t, (i, j, c) in enumerate(order):
        later = q.clone()
        for (a, b, d) in order[t:]:
            later[0, d, a, b] = (later[0, d, a, b] + 1 + torch.randint(0, model.levels - 1, (), generator=gen)) \
                % model.levels
        assert torch.allclose(model.logits(later)[0, i, j, c], base[0, i, j, c], rtol=0, atol=1e-12), (i, j, c)
        if c > 0:  # the same pixel's earlier channel is seen
            earlier = q.clone()
            earlier[0, c - 1, i, j] = (earlier[0, c - 1, i, j] + 1) % model.levels
            assert not torch.equal(model.logits(earlier)[0, i, j, c], base[0, i, j, c]), (i, j, c)
        elif t > 0:  # the pixel before is seen by the trunk
            a, b, _ = order[t - 1]
            earlier = q.clone()
            earlier[0, :, a, b] = (earlier[0, :, a, b] + 1) % model.levels
            assert not torch.equal(model.trunk(earlier)[0, i, j], model.trunk(q)[0, i, j]), (i, j)


@pytest.mark.parametrize("context", [False, True])
def test_trunk_has_no_blind_spot(context):
    """Gradients of the trunk's features at a pixel: zero at it and after it, non-zero at every pixel of the row
    to its left and of the rows above within the receptive field (the blind spot of a masked 3x3 stack included);
    with ``context`` at every pixel before it."""
    size = 9
    model = _tiny(size, layers=3, first_kernel=3, context=context)  # reach: 1 + 3 rows up, 1 + 3 left, 1 + 3 wide
    x = torch.rand(1, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x.requires_grad_(True)
    i, j = 6, 4
    (grad,) = torch.autograd.grad(model.trunk_input(x)[0, i, j].sum(), x)
    seen = grad[0].abs().sum(0) > 0
    expect = torch.zeros(size, size, dtype=torch.bool)
    expect[i, j - 4:j] = True
    expect[i - 4:i, max(0, j - 4):j + 5] = True
    if context:
        expect[:i] = True
        expect[i, :j] = True
    assert torch.equal(seen, expect)


def test_loss_is_mean_nll_in_nats():
    model = _tiny(4)
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    q = model.quantise(x)
    logp = torch.log_softmax(model.logits(q), dim=-1)
    manual = -logp.gather(-1, q.permute(0, 2, 3, 1).unsqueeze(-1)).mean()
    assert torch.allclose(model.loss(x, "pixelcnn").double(), manual)


def test_bad_options_name_the_parameter():
    with pytest.raises(ParameterError, match="levels"):
        PixelCNN(image_size=8, width=4, levels=1)
    with pytest.raises(ParameterError, match="kernel"):
        PixelCNN(image_size=8, width=4, kernel=4)
    with pytest.raises(ParameterError, match="context"):
        PixelCNN(image_size=8, width=4, context="yes")
    with pytest.raises(ParameterError, match="dropout"):
        PixelCNN(image_size=8, width=4, dropout=0.1)
    with pytest.raises(NotImplementedError):
        PixelCNN(image_size=8, width=4).decode(torch.zeros(1, 100))
