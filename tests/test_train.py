from dataclasses import replace

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


def test_weight_average_is_sampled_and_resumes_exactly(tmp_path) -> None:
    """With ``ema``, probes and the final model use the averaged weights; an interrupted run resumes to the same."""
    from probe_utils.train import WeightAverage
    torch.set_num_threads(1)
    x, _ = dots.render(count=1, n=64, seed=0, size=32)
    pool = ImagePool(x, torch.device("cpu"))

    def fresh():
        torch.manual_seed(0)
        return build("vae", 32, 4)

    cfg = TrainConfig(steps=12, batch_size=8, log_every=4, probe_every=100, checkpoint_every=6, ema=0.9)
    plain = fresh()
    train(plain, pool, TrainConfig(steps=12, batch_size=8, log_every=4, probe_every=100), seed=0, progress=False)
    averaged = fresh()
    train(averaged, pool, cfg, seed=0, progress=False)
    # same training, different weights held at the end: the average lags the last iterate
    p = dict(plain.named_parameters())
    assert any(not torch.allclose(v, p[k]) for k, v in averaged.named_parameters())
    # an interrupted run (stopped at 6) resumes to exactly the same averaged weights
    ck = tmp_path / "run.pt"
    half = fresh()
    train(half, pool, replace(cfg, steps=6), seed=0, checkpoint=ck, progress=False)
    resumed = fresh()
    train(resumed, pool, cfg, seed=0, checkpoint=ck, progress=False)
    q = dict(averaged.named_parameters())
    assert all(torch.allclose(v, q[k], atol=1e-6) for k, v in resumed.named_parameters())
    with pytest.raises(ParameterError, match="ema"):
        WeightAverage(plain, 1.5)


def test_a_probe_whose_half_is_all_unmeasurable_still_sums_to_one():
    """Each half's shares are over its own measurable samples: a half with none adds nothing (before, the two halves
    were averaged and such a probe summed to 0.5, which the store then refused)."""
    import numpy as np

    from probe_utils.train import TrainConfig, record_probe

    probes: list[dict] = []
    one = np.eye(5)[1]
    record_probe(probes, 10, (np.zeros(5), 1.0), (one, 0.98), TrainConfig(steps=10, converge_tol=None))
    assert np.isclose(sum(probes[0]["dist"]), 1.0) and probes[0]["dist"] == one.tolist()
    assert np.isclose(probes[0]["invalid"], 0.99)
    record_probe(probes, 20, (np.eye(5)[2], 0.5), (one, 0.0), TrainConfig(steps=10, converge_tol=None))
    assert np.allclose(probes[1]["dist"], [0, 2 / 3, 1 / 3, 0, 0])  # 1 of 2 vs 2 of 2 measurable samples
    record_probe(probes, 30, (np.zeros(5), 1.0), (np.zeros(5), 1.0), TrainConfig(steps=10, converge_tol=None))
    assert sum(probes[2]["dist"]) == 0 and probes[2]["invalid"] == 1.0


def test_cpu_budget_counts_cpu_seconds_at_the_reference_speed(monkeypatch):
    from probe_utils import train as tr

    speeds = iter([0.5, 0.25])
    monkeypatch.setattr(tr, "cpu_speed", lambda: next(speeds))
    b = tr.CpuBudget()
    assert b.update(10.0) == pytest.approx(5.0)  # half the reference speed: 10 CPU seconds are 5 of its seconds
    b.check()  # the machine slowed down (another tenant)
    assert b.update(14.0) == pytest.approx(6.0) and b.speeds == [0.5, 0.25]
    monkeypatch.setattr(tr, "cpu_speed", lambda: 0.5)
    old = tr.CpuBudget(cpu_s=10.0)  # a checkpoint from before speeds were measured: counted at today's speed
    assert old.budget_s == pytest.approx(5.0) and old.update(12.0) == pytest.approx(6.0)
    assert tr.CpuBudget(cpu_s=10.0, budget_s=3.0, speeds=[0.3]).budget_s == 3.0  # resumed: as it was
    assert tr.CpuBudget(measure=False).update(4.0) == 4.0  # a CUDA run: CPU seconds as they are


def test_a_cpu_budget_on_a_slow_core_trains_longer(pool, monkeypatch):
    from probe_utils import train as tr

    monkeypatch.setattr(tr, "cpu_speed", lambda: 0.25)
    cfg = TrainConfig(steps=100_000, batch_size=8, max_wall_s=0.3, budget_clock="cpu")
    res = train(build("vae", 32, 4), pool, cfg, progress=False)
    assert res.steps < 100_000 and res.cpu_speeds and res.cpu_speeds[0] == 0.25
    assert res.budget_s == pytest.approx(res.cpu_s * 0.25) and 1.2 <= res.cpu_s < 3.0  # 4x the budget in CPU time


def test_cpu_speed_is_one_on_the_reference_core(monkeypatch):
    from probe_utils import train as tr

    assert tr.check_workload_s() > 0
    monkeypatch.setattr(tr, "check_workload_s", lambda: tr.REFERENCE_CHECK_S / 2)
    assert tr.cpu_speed() == pytest.approx(2.0)


def test_a_probe_too_noisy_to_see_a_change_never_vouches_for_convergence():
    """A flat distribution over many bins, probed with few samples: consecutive probes differ by noise alone, so the
    noise-scaled tolerance would call any run converged (the pie combinations' 2,025 bins with 1,000 samples). Such
    probes do not count; the same run probed with enough samples to resolve a change converges."""
    import numpy as np

    from probe_utils.train import MAX_CONVERGE_TV, NOISE_MARGIN, TrainConfig, record_probe

    config = TrainConfig(steps=100, converge_tol=0.02, converge_patience=3, min_steps=0)
    rng = np.random.default_rng(0)

    def half(bins: int, n: int) -> tuple[np.ndarray, float]:
        return np.bincount(rng.integers(0, bins, n), minlength=bins) / n, 0.0

    sparse: list[dict] = []
    assert not any(record_probe(sparse, s, half(2025, 500), half(2025, 500), config) for s in range(10))
    assert all(NOISE_MARGIN * p["noise"] > MAX_CONVERGE_TV for p in sparse)
    dense: list[dict] = []
    assert any(record_probe(dense, s, half(5, 500), half(5, 500), config) for s in range(10))
