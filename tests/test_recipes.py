"""Training recipes (paper text, released code, cpu): every family trains under each, and the knobs do what they say."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from probe_utils import models as models_mod
from probe_utils.experiments import PROBE_KEYS, RECIPES, TRAIN_KEYS, recipe_settings
from probe_utils.params import ParameterError
from probe_utils.render import dots
from probe_utils.train import ImagePool, TrainConfig, train


def _build(recipe: str, family: str) -> tuple[models_mod.GenerativeModel, dict]:
    opts = recipe_settings(recipe, family)
    train_opts = {k: opts.pop(k) for k in TRAIN_KEYS if k in opts}
    for k in PROBE_KEYS:
        opts.pop(k, None)
    sample_bn = opts.pop("sample_bn", "eval")
    net = models_mod.build(family, 32, 4, **opts)
    net.sample_bn = sample_bn
    return net, train_opts


@pytest.mark.parametrize("recipe", sorted(RECIPES))
@pytest.mark.parametrize("family", sorted(models_mod.FAMILIES))
def test_every_family_trains_under_every_recipe(recipe: str, family: str) -> None:
    x, _ = dots.render(count=1, n=64, seed=0, size=32)
    net, train_opts = _build(recipe, family)
    cfg = TrainConfig(steps=4, batch_size=8, log_every=2, probe_every=100, **train_opts)
    res = train(net, ImagePool(x, torch.device("cpu")), cfg, seed=0, progress=False)
    assert res.steps == 4 and all(np.isfinite(v) for row in res.losses for k, v in row.items() if k != "step")
    out = net.sample(6, generator=torch.Generator().manual_seed(1))
    assert out.shape == (6, 3, 32, 32) and torch.isfinite(out).all()


def test_a_recipe_scales_a_family_s_probes() -> None:
    from probe_utils import experiments as ex

    want = recipe_settings("cpu", "diffusion")
    assert want["probe_every_factor"] > 1 and want["probe_samples_factor"] < 1  # the case this test is about
    for preset in ("ci", "cpu"):
        pre = ex.PRESETS[preset]
        for family in ("diffusion", "wgan_gp"):
            plan = ex.check_parameters("numerosity", models=[family], values=[1], seeds=[0], preset=preset,
                                       device="cpu")
            cfg = ex._setup(plan, family, 1, 0).cfg
            opts = recipe_settings("cpu", family)
            assert cfg.probe_every == pre.probe_every * opts.get("probe_every_factor", 1)
            assert cfg.probe_samples == round(pre.probe_samples * opts.get("probe_samples_factor", 1))
            assert cfg.probe_every <= pre.steps  # still probed at least once
    with pytest.raises(ParameterError, match="probe_every_factor"):
        ex.probe_settings(ex.PRESETS["cpu"], {"probe_every_factor": 0})


def test_unknown_recipe_is_refused() -> None:
    with pytest.raises(ParameterError, match="'recipe'"):
        recipe_settings("nope", "vae")


def test_released_generator_batch_norm_sits_on_fc_fc_and_first_deconv() -> None:
    net = models_mod.build("wgan_gp", 32, 4, generator_bn="released")
    norms = [m for m in net.generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 3
    assert sum(isinstance(m, nn.BatchNorm2d) for m in norms) == 1
    none = models_mod.build("wgan_gp", 32, 4)
    assert not [m for m in none.generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_normal_init_has_the_stated_spread() -> None:
    net = models_mod.build("wgan_gp", 32, 8, init="normal")
    w = torch.cat([m.weight.detach().flatten() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))])
    assert abs(float(w.std()) - 0.02) < 0.002


def test_batch_statistics_at_sampling_leave_running_statistics_alone() -> None:
    net = models_mod.build("vae", 32, 4)
    net.sample_bn = "batch"
    before = [m.running_mean.clone() for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    a = net.sample(32, generator=torch.Generator().manual_seed(0))
    after = [m.running_mean for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(b, c) for b, c in zip(before, after))
    net.sample_bn = "eval"
    b = net.sample(32, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(a, b)  # an untrained net's batch statistics differ from its running ones


def test_vae_released_loss_and_kl_warm_up() -> None:
    torch.manual_seed(0)
    x, _ = dots.render(count=1, n=8, seed=0, size=32)
    net = models_mod.build("vae", 32, 4, recon="l2l1", kl_warmup=100.0)
    net.train_step = 0
    torch.manual_seed(1)
    at0 = float(net.loss(x, "vae").detach())
    net.train_step = 10 ** 6
    torch.manual_seed(1)
    late = float(net.loss(x, "vae").detach())
    assert late > at0  # the KL term switched on
    net.configure(recon="l2l1")
    torch.manual_seed(1)
    assert float(net.loss(x, "vae").detach()) == pytest.approx(late, rel=1e-5)
    with pytest.raises(ValueError, match="recon"):
        net.configure(recon="mse")
    assert 1 - math.exp(-50 / 100.0) == pytest.approx(0.3935, abs=1e-4)


def test_learning_rate_halving() -> None:
    x, _ = dots.render(count=1, n=32, seed=0, size=32)
    net = models_mod.build("vae", 32, 4)
    seen = []
    cfg = TrainConfig(steps=5, batch_size=4, probe_every=100, lr=1e-3, lr_halve_every=2)
    orig = torch.optim.Adam.step

    def step(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    torch.optim.Adam.step = step
    try:
        train(net, ImagePool(x, torch.device("cpu")), cfg, seed=0, progress=False)
    finally:
        torch.optim.Adam.step = orig
    assert seen == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])


def test_vae_beta_option_sets_the_kl_weight_of_the_loss() -> None:
    x, _ = dots.render(count=1, n=8, seed=0, size=32)
    losses = {}
    for beta in (None, 0.5, 4.0):
        torch.manual_seed(0)
        net = models_mod.build("vae", 32, 4, **({} if beta is None else {"beta": beta}))
        net.train()
        torch.manual_seed(1)
        losses[beta] = float(net.loss(x, "vae").detach())
    # same weights and noise: the loss is nll + beta * kl, so it grows with beta and beta 1 lies between
    assert losses[0.5] < losses[None] < losses[4.0]
    kl = (losses[4.0] - losses[0.5]) / 3.5
    assert losses[None] == pytest.approx(losses[0.5] + 0.5 * kl, rel=1e-4)
    with pytest.raises(ValueError, match="beta"):
        models_mod.build("vae", 32, 4, beta=0)
