import numpy as np
import pytest
import torch

from probe_utils.fleet import FleetTrainer, train_fleet
from probe_utils.models import build
from probe_utils.params import ParameterError
from probe_utils.render import dots
from probe_utils.train import ImagePool, TrainConfig, train

SIZE, WIDTH, SEEDS = 32, 2, (3, 7)




@pytest.fixture(scope="module")
def pools():
    """Two different training sets (2 and 5 dots), as a fleet over trained values would have."""
    return [ImagePool(dots.render(count=c, n=64, seed=c, size=SIZE)[0], torch.device("cpu")) for c in (2, 5)]


def _kw(family):
    return {"n_critic": 2} if family.startswith("wgan") else {}


def _fleet(family, pools, **kw):
    return FleetTrainer(family, SIZE, WIDTH, [{"seed": s, "pool": p} for s, p in zip(SEEDS, pools)], batch_size=8,
                        **_kw(family), **kw)


def _invariant_keys(model):
    """Biases feeding a batch norm (and that norm's running mean): their exact gradient is 0, so Adam turns float
    noise into steps of up to lr, which differ between any two summation orders. Everything else must agree."""
    keys = set()
    for prefix, mod in model.named_modules():
        names = list(dict(mod.named_children()))
        for a, b in zip(names, names[1:]):
            if isinstance(getattr(mod, b), torch.nn.modules.batchnorm._BatchNorm):
                keys |= {f"{prefix}.{a}.bias".lstrip("."), f"{prefix}.{b}.running_mean".lstrip(".")}
    return keys


@pytest.mark.parametrize("family", ["wgan_gp", "vae"])
def test_members_follow_train_exactly(family, pools):
    """Each member of a fleet of 2 (different seeds and training sets) ends where train() takes that model alone:
    same initial weights, batches and noise, so the same losses and weights up to float rounding."""
    cfg = TrainConfig(steps=3, batch_size=8, log_every=1)
    fleet = _fleet(family, pools)
    res = train_fleet(fleet, cfg, progress=False)
    for i, (seed, pool) in enumerate(zip(SEEDS, pools)):
        torch.manual_seed(seed)
        ref = build(family, SIZE, WIDTH, **_kw(family))
        ref_res = train(ref, pool, cfg, seed=seed, progress=False)
        for a, b in zip(ref_res.losses, res[i].losses):
            assert a.keys() == b.keys()
            for g in a:
                assert b[g] == pytest.approx(a[g], rel=1e-5, abs=1e-5)
        mine = fleet.member(i).state_dict()
        skip = _invariant_keys(ref)
        assert (family == "vae") == bool(skip)
        for k, v in ref.state_dict().items():
            if k not in skip:
                torch.testing.assert_close(mine[k].float(), v.float(), atol=2e-5, rtol=1e-4, msg=k)


def test_injected_batches_and_noise_replace_the_drawn_ones(pools):
    a, b, c = (_fleet("wgan_gp", pools) for _ in range(3))
    for _ in range(2):
        batches = [c.draw_batch(8) for _ in c.plan]
        noise = [c.draw_noise(g, 8) for g in c.plan]
        a.step()
        b.step(batches=batches, noise=noise)
    for pa, pb in zip(a.params["generator"].values(), b.params["generator"].values()):
        assert torch.equal(pa, pb)
    assert a.losses() == b.losses()


@pytest.mark.parametrize("family", ["wgan_gp_fc", "vae_fc"])
def test_fc_families_train_and_sample(family, pools):
    fleet = _fleet(family, pools)
    fleet.step()
    fleet.step()
    losses = fleet.losses()
    assert len(losses) == 2 and all(np.isfinite(v) for d in losses for v in d.values())
    assert set(losses[0]) == set(build(family, SIZE, WIDTH).groups())
    x = fleet.member(1).sample(5)
    assert x.shape == (5, 3, SIZE, SIZE) and 0 <= x.min() and x.max() <= 1


def test_fleet_samples_match_member_samples(pools):
    """vmapped sampling (eval-mode batch norm with per-member running statistics) equals each member's own."""
    fleet = _fleet("vae", pools)
    fleet.step()
    x = fleet.sample(6, [torch.Generator().manual_seed(s) for s in (1, 2)])
    for i, s in enumerate((1, 2)):
        ref = fleet.member(i).sample(6, generator=torch.Generator().manual_seed(s))
        torch.testing.assert_close(x[i], ref, atol=1e-5, rtol=1e-4)


def test_resume_and_per_member_convergence(tmp_path, pools):
    cfg = TrainConfig(steps=6, batch_size=8, log_every=2, probe_every=2, probe_samples=4, checkpoint_every=2,
                      converge_tol=0.05, converge_patience=1, min_steps=4)
    same = lambda x: np.array([1.0, 0.0])  # noqa: E731
    ref = train_fleet(_fleet("wgan_gp", pools), cfg, probe=same, progress=False)
    assert [r.converged_at for r in ref] == [4, 4] and [r.steps for r in ref] == [4, 4]

    def crashing(x, n=[0]):
        """Called twice (a probe's two halves) for member 0 then 1 at iterations 2 and 4, then for member 1 alone at
        6, where it crashes."""
        n[0] += 1
        if n[0] == 9:
            raise KeyboardInterrupt
        return np.array([0.0, 1.0]) if n[0] in (3, 4) else np.array([1.0, 0.0])  # member 1 moves between 2 and 4

    ckpt = tmp_path / "fleet.pt"
    with pytest.raises(KeyboardInterrupt):
        train_fleet(_fleet("wgan_gp", pools), cfg, probe=crashing, checkpoint=ckpt, progress=False)
    fleet = _fleet("wgan_gp", pools)
    res = train_fleet(fleet, cfg, probe=same, checkpoint=ckpt, progress=False)
    assert [r.converged_at for r in res] == [4, 6] and [r.resumed_from for r in res] == [4, 4]
    assert [p["step"] for p in res[1].probes] == [2, 4, 6] and fleet.iterations == 6 and sorted(fleet.frozen) == [0, 1]
    # the converged member keeps its iteration-4 weights
    full = _fleet("wgan_gp", pools)
    for _ in range(4):
        full.step()
    for a, b in zip(fleet.member(0).state_dict().values(), full.member(0).state_dict().values()):
        torch.testing.assert_close(a, b)


def test_bad_members_are_rejected_before_any_work(pools):
    with pytest.raises(ParameterError, match="members"):
        FleetTrainer("wgan_gp", SIZE, WIDTH, [])
    with pytest.raises(ParameterError, match=r"members\[0\]"):
        FleetTrainer("wgan_gp", SIZE, WIDTH, [{"seed": 0}])
    with pytest.raises(ParameterError, match=r"members\[1\].seed"):
        FleetTrainer("wgan_gp", SIZE, WIDTH, [{"seed": 0, "pool": pools[0]}, {"seed": -1, "pool": pools[0]}])
    with pytest.raises(ParameterError, match=r"members\[0\].pool.*64"):
        FleetTrainer("wgan_gp", 64, WIDTH, [{"seed": 0, "pool": pools[0]}])
    with pytest.raises(ParameterError, match="family"):
        FleetTrainer("gan", SIZE, WIDTH, [{"seed": 0, "pool": pools[0]}])
    with pytest.raises(ParameterError, match=r"members\[0\].model"):
        FleetTrainer("wgan_gp", SIZE, WIDTH, [{"seed": 0, "pool": pools[0], "model": build("vae", SIZE, WIDTH)}])


@pytest.mark.parametrize("family,opts,cfg_kw", [
    ("vae", dict(recon="l2l1", kl_warmup=2, sigma_floor=1.2, decoder_bn="released", init="normal", beta=0.5),
     dict(lr=1e-3, lr_halve_every=1)),
    ("wgan_gp", dict(n_critic=2, reuse_batch=True, init="normal", generator_bn="released"),
     dict(lr=2e-4, lr_halve_every=2)),
])
def test_recipe_options_follow_train(family, opts, cfg_kw, pools):
    """The recipe options a fleet runs (the released recipe's VAE loss, KL warm-up, sigma floor and KL weight; one
    batch per WGAN iteration, batch norm in the generator; learning rate and its halving) give each member train()'s
    losses and samples. sigma_floor 1.2 binds at initialisation (log-variances start near 0), so a fleet ignoring it
    would fail. Weights are not compared at these learning rates: Adam's first steps are about lr * sign(gradient),
    so elements whose gradient is at float-noise level move by up to lr in either path."""
    cfg = TrainConfig(steps=3, batch_size=8, log_every=1, **cfg_kw)
    members = []
    for s, p in zip(SEEDS, pools):
        torch.manual_seed(s)
        members.append({"seed": s, "pool": p, "model": build(family, SIZE, WIDTH, **opts)})
    fleet = FleetTrainer(family, SIZE, WIDTH, members, batch_size=8, **opts)
    res = train_fleet(fleet, cfg, progress=False)
    for i, seed in enumerate(SEEDS):
        torch.manual_seed(seed)
        ref = build(family, SIZE, WIDTH, **opts)
        ref_res = train(ref, pools[i], cfg, seed=seed, progress=False)
        assert [r["step"] for r in res[i].losses] == [r["step"] for r in ref_res.losses]
        for a, b in zip(ref_res.losses, res[i].losses):
            for g in a:
                assert b[g] == pytest.approx(a[g], rel=1e-5, abs=1e-5), (g, a["step"])
        mine = fleet.member(i).sample(16, generator=torch.Generator().manual_seed(9))
        torch.testing.assert_close(mine, ref.sample(16, generator=torch.Generator().manual_seed(9)), atol=1e-3, rtol=0)
