import pytest
import torch

from probe_utils.models import FAMILIES, build
from probe_utils.params import ParameterError
from probe_utils.render import dots
from probe_utils.train import ImagePool, TrainConfig, train


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("size", [32, 64])
def test_sample_shape_range_and_finite_losses(family, size):
    m = build(family, image_size=size, width=4)
    x = m.sample(5)
    assert x.shape == (5, 3, size, size) and x.dtype == torch.float32
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    batch = torch.rand(4, 3, size, size)
    for g in set(m.plan()):
        assert torch.isfinite(m.loss(batch, g))
    assert set(m.plan()) == set(m.groups())


def test_paper_width_has_paper_channels():
    m = build("wgan_gp", image_size=64, width=64)
    convs = [l for l in m.critic.modules() if isinstance(l, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 192, 256]
    assert all(c.kernel_size == (4, 4) for c in convs)


def test_unknown_family_names_parameter():
    with pytest.raises(ParameterError, match="'model'.*wgan_gp"):
        build("dcgan")


@pytest.mark.parametrize("family,group", [("vae", "vae"), ("wgan_gp", "critic"), ("vae_fc", "vae"),
                                          ("wgan_gp_fc", "critic")])
def test_tiny_model_moves_its_loss(family, group):
    torch.manual_seed(0)
    x, _ = dots.render(count=2, n=256, seed=0, size=32)
    m = build(family, image_size=32, width=4)
    res = train(m, ImagePool(x, torch.device("cpu")), TrainConfig(steps=30, batch_size=16, log_every=5),
                progress=False)
    first, last = res.losses[0][group], res.losses[-1][group]
    assert last < first, f"{family}: {group} loss did not fall ({first} -> {last})"


def _renders(name: str, n: int) -> torch.Tensor:
    import importlib

    mod = importlib.import_module(f"probe_utils.render.{name}")
    if name == "dots":
        x, _ = mod.render(count=3, n=n, seed=0, size=32)
    elif name == "clevr":
        x, _ = mod.render(n=n, seed=0, size=64, count=2)
        x = torch.nn.functional.avg_pool2d(x, 2)
    else:
        x, _ = mod.render(n=n, seed=0, size=32)
    return x


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["dots", "pie", "mnist3", "clevr"])
@pytest.mark.parametrize("family", ["wgan_gp_fc", "vae_fc"])
def test_fc_families_train_on_every_data_set_at_ci_scale(dataset, family):
    from probe_utils.experiments import PRESETS

    pre = PRESETS["ci"]
    x = _renders(dataset, 64 if dataset == "clevr" else 256)
    m = build(family, image_size=32, width=pre.width)
    res = train(m, ImagePool(x, torch.device("cpu")), TrainConfig(steps=pre.steps, batch_size=pre.batch_size,
                                                                   log_every=5), progress=False)
    group = "vae" if family == "vae_fc" else "critic"
    assert all(torch.isfinite(torch.tensor(l[group])) for l in res.losses)
    assert res.losses[-1][group] < res.losses[0][group]
    assert m.sample(4).shape == (4, 3, 32, 32)
