import pytest
import torch

from probe_utils.models.diffusion import Diffusion, cosine_alphas_cumprod, ddim_step, linear_alphas_cumprod
from probe_utils.train import ImagePool, TrainConfig, train


def tiny(**kw) -> Diffusion:
    torch.manual_seed(0)
    return Diffusion(image_size=16, width=4, channel_mult=(1, 2), **kw)


@pytest.mark.parametrize("schedule", [cosine_alphas_cumprod, linear_alphas_cumprod])
def test_schedule_falls_from_one_to_zero(schedule):
    ab = schedule(1000)
    assert ab.shape == (1000,)
    assert bool((ab[1:] < ab[:-1]).all()), "alphas_cumprod must strictly decrease"
    assert ab[0] > 0.99 and ab[-1] < 1e-3 and ab[-1] >= 0


def test_model_uses_its_schedule():
    m = tiny(schedule="linear", T=200)
    assert torch.allclose(m.alphas_cumprod.double(), linear_alphas_cumprod(200), atol=1e-6)
    assert "alphas_cumprod" not in m.state_dict()  # recomputed, not checkpointed or averaged


@pytest.mark.parametrize("clip", [False, True])
def test_ddim_step_with_the_exact_noise_recovers_x0(clip):
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1
    eps = torch.randn(4, 3, 8, 8, generator=g)
    ab_t, ab_prev = 0.3, 0.8
    x_t = ab_t ** 0.5 * x0 + (1 - ab_t) ** 0.5 * eps
    assert torch.allclose(ddim_step(x_t, eps, ab_t, 1.0, clip=clip), x0, atol=1e-5)
    expected = ab_prev ** 0.5 * x0 + (1 - ab_prev) ** 0.5 * eps  # the same noise, less of it
    assert torch.allclose(ddim_step(x_t, eps, ab_t, ab_prev, clip=clip), expected, atol=1e-5)


def test_ddim_step_clips_the_predicted_image():
    x_t, eps = torch.full((1, 1, 2, 2), 3.0), torch.zeros(1, 1, 2, 2)
    assert torch.allclose(ddim_step(x_t, eps, 0.25, 1.0, clip=True), torch.ones(1, 1, 2, 2))
    assert torch.allclose(ddim_step(x_t, eps, 0.25, 1.0, clip=False), torch.full((1, 1, 2, 2), 6.0))


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_sampler_with_an_oracle_network_recovers_the_image(prediction):
    """The whole DDIM loop: with a network that returns the true target, every step lands on the same x0."""
    m = tiny(sample_steps=7, prediction=prediction)
    x0 = torch.rand(2, 3, 16, 16) * 2 - 1
    noise = torch.randn(2, 3, 16, 16)
    ab = m.alphas_cumprod
    t0 = m.timesteps()[0]
    x_t = ab[t0].sqrt() * x0 + (1 - ab[t0]).sqrt() * noise

    class Oracle(torch.nn.Module):
        def forward(self, x, t):
            a = ab[t].view(-1, 1, 1, 1)
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
            return eps if prediction == "eps" else a.sqrt() * eps - (1 - a).sqrt() * x0

    m.net = Oracle()
    assert torch.allclose(m.denoise(x_t), (x0 + 1) / 2, atol=1e-4)


def test_timesteps_descend_from_the_last():
    for steps in (1, 7, 20, 1000):
        ts = Diffusion(image_size=16, width=4, channel_mult=(1,), sample_steps=steps).timesteps()
        assert len(ts) == steps and ts[0] == 999 and ts[-1] >= 0
        assert all(a > b for a, b in zip(ts, ts[1:]))


def test_sample_shape_range_and_seeding():
    m = tiny(sample_steps=3)
    m.train()
    a = m.sample(5, generator=torch.Generator().manual_seed(0), batch_size=2)
    assert a.shape == (5, 3, 16, 16) and a.dtype == torch.float32
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert m.training, "sample must restore training mode"
    b = m.sample(5, generator=torch.Generator().manual_seed(0), batch_size=2)
    c = m.sample(5, generator=torch.Generator().manual_seed(1), batch_size=2)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert m.sample(0).shape == (0, 3, 16, 16)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_loss_decreases_on_a_tiny_batch(prediction):
    torch.set_num_threads(1)
    m = tiny(prediction=prediction)
    x = torch.zeros(8, 3, 16, 16)
    x[:, 0, 4:10, 4:10] = 1.0  # a red square on black

    def fixed_loss() -> float:
        state = torch.get_rng_state()
        torch.manual_seed(123)  # the same time steps and noise before and after training
        with torch.no_grad():
            out = float(m.loss(x, "diffusion"))
        torch.set_rng_state(state)
        return out

    before = fixed_loss()
    opt = torch.optim.Adam(m.groups()["diffusion"], lr=2e-3)
    for _ in range(40):
        loss = m.loss(x, "diffusion")
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = fixed_loss()
    assert after < 0.8 * before, f"loss did not fall: {before:.4f} -> {after:.4f}"


def test_bf16_loss_is_finite_and_float32():
    m = tiny()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = m.loss(torch.rand(4, 3, 16, 16), "diffusion")
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_trains_in_the_loop_with_weight_averaging_and_resumes(tmp_path):
    x = torch.rand(32, 3, 16, 16)
    cfg = TrainConfig(steps=4, batch_size=8, log_every=2, checkpoint_every=2, ema=0.99)
    m = tiny()
    res = train(m, ImagePool(x, torch.device("cpu")), cfg, checkpoint=tmp_path / "c.pt", progress=False)
    assert res.steps == 4 and all(torch.isfinite(torch.tensor(r["diffusion"])) for r in res.losses)
    again = tiny()
    train(again, ImagePool(x, torch.device("cpu")), cfg, checkpoint=tmp_path / "c.pt", progress=False)
    for p, q in zip(m.parameters(), again.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("kw,name", [
    ({"schedule": "quadratic"}, "schedule"),
    ({"prediction": "x0"}, "prediction"),
    ({"sample_steps": 0}, "sample_steps"),
    ({"sample_steps": 2000}, "sample_steps"),
    ({"channel_mult": ()}, "channel_mult"),
    ({"channel_mult": (1, 2, 2, 2, 2, 2)}, "image_size"),
    ({"T": 1}, "T \\(diffusion steps\\)"),
])
def test_bad_options_name_the_parameter(kw, name):
    with pytest.raises(ValueError, match=name):
        Diffusion(image_size=16, width=4, **kw)


def test_unknown_group_is_refused():
    with pytest.raises(KeyError, match="diffusion"):
        tiny().loss(torch.rand(2, 3, 16, 16), "generator")
