import numpy as np
import pytest
import torch

from probe_utils.models import build
from probe_utils.models.base import GenerativeModel
from probe_utils.params import ParameterError
from probe_utils.render import dots
from probe_utils.train import ImagePool, TrainConfig, TrainingDiverged, pick_device, train, tv_distance


@pytest.fixture(scope="module")
def pool():
    x, _ = dots.render(count=3, n=128, seed=1, size=32)
    return ImagePool(x, torch.device("cpu"))


class Interrupt(Exception):
    pass


def test_resume_after_interrupt_gives_the_uninterrupted_result(tmp_path, pool):
    cfg = TrainConfig(steps=20, batch_size=8, checkpoint_every=10, log_every=5, probe_every=5, probe_samples=8)
    torch.manual_seed(0)
    ref = build("wgan_gp", 32, 4, n_critic=2)
    ref_res = train(ref, pool, cfg, seed=3, probe=lambda x: np.ones(2) / 2, progress=False)

    def crashing_probe(x, calls=[0]):
        calls[0] += 1
        if calls[0] == 5:  # at iteration 15 (two calls per probe: its halves), after the checkpoint at 10
            raise Interrupt
        return np.ones(2) / 2

    ckpt = tmp_path / "run.pt"
    torch.manual_seed(0)
    m = build("wgan_gp", 32, 4, n_critic=2)
    with pytest.raises(Interrupt):
        train(m, pool, cfg, seed=3, probe=crashing_probe, checkpoint=ckpt, progress=False)
    assert ckpt.exists()
    torch.manual_seed(123)  # a fresh process would start from other weights: the checkpoint must win
    m2 = build("wgan_gp", 32, 4, n_critic=2)
    res = train(m2, pool, cfg, seed=3, probe=lambda x: np.ones(2) / 2, checkpoint=ckpt, progress=False)
    assert res.resumed_from == 10 and res.steps == 20
    assert [p["step"] for p in res.probes] == [5, 10, 15, 20]
    for a, b in zip(ref.parameters(), m2.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert res.losses[-1]["critic"] == pytest.approx(ref_res.losses[-1]["critic"], rel=1e-5)


class NaNModel(GenerativeModel):
    family = "nan"

    def __init__(self):
        super().__init__(32, 4, 2)
        self.w = torch.nn.Parameter(torch.zeros(1))

    def groups(self):
        return {"only": [self.w]}

    def plan(self):
        return ["only"]

    def loss(self, batch, group):
        return self.w.sum() * float("nan")


def test_nan_loss_stops_with_a_clear_error(pool):
    with pytest.raises(TrainingDiverged, match="'only'.*nan.*iteration 5"):
        train(NaNModel(), pool, TrainConfig(steps=50, batch_size=4, log_every=5), progress=False)


def test_stops_when_the_probed_distribution_has_converged(pool):
    cfg = TrainConfig(steps=200, batch_size=4, probe_every=2, probe_samples=4, converge_tol=0.05,
                      converge_patience=3, min_steps=10)
    res = train(build("vae", 32, 4), pool, cfg, probe=lambda x: np.array([0.5, 0.5]), progress=False)
    assert res.converged_at == 10 and res.steps == 10


def test_tv_distance():
    assert tv_distance([1, 0], [0, 1]) == 1.0
    assert tv_distance([0.5, 0.5], [0.5, 0.5]) == 0.0


def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ParameterError, match="'device'"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="'device'.*cuda"):
            pick_device("cuda")
