"""Train a fleet of K models of one family and architecture at once, in one process (seeds x training sets).

The members' weights are stacked along a new leading axis (:func:`torch.func.stack_module_state`), and each family's
loss runs once per member under :func:`torch.func.vmap` with :func:`torch.func.functional_call` on one template model:
vmap turns each conv of the K members into one grouped conv and each linear layer into one batched matmul. WGAN-GP's
gradient penalty takes the critic's gradient with respect to its input with :func:`torch.func.grad` inside the vmapped
loss (``torch.autograd.grad`` cannot run under vmap); one ordinary ``backward`` of the summed member losses then gives
every member exactly its own gradient. Batch-norm running statistics are stacked buffers, updated per member. One Adam
per parameter group over the stacked tensors amounts to K independent Adams, as Adam is elementwise.

Randomness is per member and drawn as :func:`probe_utils.train.train` draws it: batches from a CPU generator seeded with
the member's seed, the loss's noise (latents, interpolation weights, reparameterisation noise) from a generator on the
device seeded with the same seed, in the order the model's own ``loss`` draws it, and probe samples from a generator
seeded with seed + 1. On the CPU a member therefore sees the same batches and noise as ``train(model, pool, config,
seed=seed)`` and ends at the same weights up to float rounding, whatever the fleet's size.

Recipe options: the fleet runs the model options of :data:`FLEET_OPTIONS` (e.g. the released generator's batch norm,
N(0, 0.02) initialisation, one batch per iteration, the VAE's L2+L1 reconstruction, KL warm-up, sigma floor and KL
weight) and the training settings of :data:`FLEET_TRAIN_OPTIONS` (learning rate and its halving, bf16 on the CPU,
batch statistics at sampling). :func:`fleet_unsupported` names any other option, so that a caller trains such runs one
at a time instead of differently.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from probe_utils.models import FAMILIES, GenerativeModel, build
from probe_utils.params import ParameterError, check_choice, check_int, check_seed
from probe_utils.train import (CorruptCheckpoint, CpuBudget, ImagePool, TrainConfig,
                               TrainingDiverged, TrainResult, _save_atomic, record_probe)

Tensors = dict[str, torch.Tensor]

#: Sub-modules whose weights a family's parameter groups hold, and the one that decodes latents.
_WGAN = {"critic": ["critic"], "generator": ["generator"]}
_VAE = {"vae": ["encoder", "to_stats", "decoder"]}


#: model options (keyword arguments of :func:`probe_utils.models.build`) the fleet trains exactly as the family does
FLEET_OPTIONS: dict[str, frozenset[str]] = {
    "wgan_gp": frozenset({"n_critic", "reuse_batch", "init", "generator_bn"}),
    "wgan_gp_fc": frozenset({"n_critic"}),
    "vae": frozenset({"recon", "kl_warmup", "sigma_floor", "decoder_bn", "init", "beta"}),
    "vae_fc": frozenset({"recon", "kl_warmup", "sigma_floor", "beta"}),
}
#: recipe settings of the training loop (and of sampling) the fleet follows
FLEET_TRAIN_OPTIONS = frozenset({"lr", "lr_halve_every", "cpu_bf16", "sample_bn"})


def fleet_unsupported(family: str, settings: Mapping[str, Any]) -> str | None:
    """Why runs of ``family`` with recipe ``settings`` cannot train as a fleet (None: they can)."""
    if family not in FLEET_OPTIONS:
        return f"the fleet has no loss for the {family!r} family"
    other = sorted(set(settings) - FLEET_OPTIONS[family] - FLEET_TRAIN_OPTIONS)
    if other:
        return (f"the fleet does not implement the recipe option(s) {', '.join(map(repr, other))} of {family!r} "
                f"(it runs {', '.join(sorted(FLEET_OPTIONS[family] | FLEET_TRAIN_OPTIONS))})")
    if settings.get("sample_bn", "eval") not in ("eval", "batch"):
        return f"sample_bn {settings['sample_bn']!r} is neither 'eval' nor 'batch'"
    return None


def _kind(family: str) -> str:
    return "wgan" if family.startswith("wgan") else "vae"


def _bce_sum(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed binary cross-entropy, computed in float32 outside autocast (which bans it on CUDA)."""
    with torch.autocast(recon.device.type, enabled=False):
        return F.binary_cross_entropy(recon.float(), target.float(), reduction="sum")


class FleetTrainer:
    """K members of one family and architecture trained together; each follows its own seed and training set.

    ``members``: one mapping per member with ``seed`` (initial weights when no ``model`` is given, batches and noise)
    and ``pool`` (its :class:`~probe_utils.train.ImagePool`; all on one device), optionally ``model`` (a built model
    of the same family and architecture supplying the initial weights). ``model_kw`` go to
    :func:`probe_utils.models.build` (e.g. ``n_critic``; see :data:`FLEET_OPTIONS`). ``sample_bn``: batch norm at
    sampling, "eval" (running statistics) or "batch" (each sampled batch's own), as ``GenerativeModel.sample_bn``.
    """

    def __init__(self, family: str, image_size: int = 64, width: int = 64,
                 members: Sequence[Mapping[str, Any]] = (), *, batch_size: int = 64, z_dim: int = 100,
                 sample_bn: str = "eval", **model_kw: Any) -> None:
        check_choice("family", family, FAMILIES)
        self.sample_bn = check_choice("sample_bn", sample_bn, ("eval", "batch"))
        self.batch_size = check_int("batch_size", batch_size, 1)
        if isinstance(members, (str, bytes, Mapping)) or not isinstance(members, Sequence) or len(members) == 0:
            raise ParameterError(f"parameter 'members' must be a non-empty list of dicts with 'seed' and 'pool'; "
                                 f"got {members!r}")
        self.family, self.image_size, self.width, self.z_dim = family, image_size, width, z_dim
        self.model_kw = dict(model_kw)
        self.seeds: list[int] = []
        self.pools: list[ImagePool] = []
        models: list[GenerativeModel] = []
        for i, m in enumerate(members):
            if not isinstance(m, Mapping) or "seed" not in m or "pool" not in m:
                raise ParameterError(f"parameter 'members[{i}]' must be a dict with 'seed' and 'pool'; got {m!r}")
            self.seeds.append(check_seed(f"members[{i}].seed", m["seed"]))
            pool = m["pool"]
            if not isinstance(pool, ImagePool):
                raise ParameterError(f"parameter 'members[{i}].pool' must be an ImagePool; got {type(pool).__name__}")
            if tuple(pool.images.shape[1:]) != (3, image_size, image_size):
                raise ParameterError(f"parameter 'members[{i}].pool' must hold (n, 3, {image_size}, {image_size}) "
                                     f"images; got {tuple(pool.images.shape)}")
            if self.pools and pool.device != self.pools[0].device:
                raise ParameterError(f"parameter 'members[{i}].pool' is on {pool.device}, but members[0]'s pool is "
                                     f"on {self.pools[0].device}; all pools must share one device")
            self.pools.append(pool)
            models.append(self._initial_model(i, m.get("model"), self.seeds[-1]))
        self.device = self.pools[0].device
        self.template = self._fresh().to(self.device).train()
        self.groups = _WGAN if _kind(family) == "wgan" else _VAE
        if sorted(self.groups) != sorted(self.template.groups()):
            raise RuntimeError(f"fleet: groups of {family} changed: {sorted(self.template.groups())}")
        self.decoder = "generator" if _kind(family) == "wgan" else "decoder"
        self.params: dict[str, Tensors] = {}
        self.buffers: dict[str, Tensors] = {}
        for part in {p for parts in self.groups.values() for p in parts}:
            params, buffers = stack_module_state([getattr(mod.train(), part) for mod in models])
            self.params[part] = {k: v.detach().to(self.device).requires_grad_(True) for k, v in params.items()}
            self.buffers[part] = {k: v.detach().to(self.device) for k, v in buffers.items()}
        self.opts = {g: torch.optim.Adam([p for part in parts for p in self.params[part].values()],
                                         lr=self.template.lr, betas=self.template.betas)
                     for g, parts in self.groups.items()}
        self.plan = self.template.plan()
        self.batch_gens = [torch.Generator().manual_seed(s) for s in self.seeds]
        self.noise_gens = [torch.Generator(device=self.device).manual_seed(s) for s in self.seeds]
        self.frozen: dict[int, dict[str, Tensors]] = {}
        self.iterations = 0
        self.reuse = bool(getattr(self.template, "reuse_batch", False))
        #: members whose loss became NaN or infinite (index -> message), dropped by ``train_fleet(diverged="drop")``
        self.failed: dict[int, str] = {}
        self._sums = {g: torch.zeros(len(self), device=self.device) for g in self.groups}
        self._counts = {g: 0 for g in self.groups}
        self.amp = self.device.type == "cuda"

    # ----------------------------------------------------------------------------------------------- construction
    def _fresh(self) -> GenerativeModel:
        with torch.random.fork_rng(devices=[]):
            return build(self.family, self.image_size, self.width, self.z_dim, **self.model_kw)

    def _initial_model(self, i: int, model: Any, seed: int) -> GenerativeModel:
        if model is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)   # as experiments.run_one builds a model
                return build(self.family, self.image_size, self.width, self.z_dim, **self.model_kw)
        ref = self._fresh()
        if not isinstance(model, type(ref)) or {k: v.shape for k, v in model.state_dict().items()} != {
                k: v.shape for k, v in ref.state_dict().items()}:
            raise ParameterError(f"parameter 'members[{i}].model' must be a {self.family} model of size "
                                 f"{self.image_size} and width {self.width}; got {type(model).__name__}")
        return model

    def __len__(self) -> int:
        return len(self.seeds)

    # ------------------------------------------------------------------------------------------------ randomness
    def draw_noise(self, group: str, n: int) -> Tensors:
        """Each member's noise for one update of ``group``, stacked (K, ...), drawn as the model's ``loss`` would."""
        outs: list[Tensors] = []
        for gen in self.noise_gens:
            if _kind(self.family) == "wgan":
                d = {"z": self.template.latent(n, gen)}
                if group == "critic":
                    d["eps"] = torch.rand(n, 1, 1, 1, device=self.device, generator=gen)
            else:
                d = {"eps": torch.randn(n, self.z_dim, device=self.device, generator=gen)}
            outs.append(d)
        return {k: torch.stack([o[k] for o in outs]) for k in outs[0]}

    def draw_batch(self, n: int) -> torch.Tensor:
        """Each member's next training batch from its own pool, stacked (K, n, 3, H, W)."""
        return torch.stack([p.batch(n, g) for p, g in zip(self.pools, self.batch_gens)])

    # ---------------------------------------------------------------------------------------------------- losses
    def _call(self, part: str, params: Tensors, buffers: Tensors, x: torch.Tensor) -> torch.Tensor:
        return functional_call(getattr(self.template, part), (params, buffers), (x,))

    def _critic_loss(self, cp: Tensors, cb: Tensors, real: torch.Tensor, fake: torch.Tensor,
                     eps: torch.Tensor) -> torch.Tensor:
        def critic(x: torch.Tensor) -> torch.Tensor:
            return self._call("critic", cp, cb, x)

        w = critic(fake).mean() - critic(real).mean()
        x_hat = eps * real + (1 - eps) * fake
        grad = torch.func.grad(lambda x: critic(x).sum())(x_hat)
        gp = ((grad.flatten(1).float().norm(dim=1) - 1.0) ** 2).mean()
        return w + self.template.gp_weight * gp

    def _generator_loss(self, gp: Tensors, gb: Tensors, cp: Tensors, cb: Tensors, z: torch.Tensor) -> torch.Tensor:
        return -self._call("critic", cp, cb, self._call("generator", gp, gb, z)).mean()

    def _vae_loss(self, p: dict[str, Tensors], b: dict[str, Tensors], batch: torch.Tensor,
                  eps: torch.Tensor) -> torch.Tensor:
        n, t = batch.shape[0], self.template
        h = self._call("encoder", p["encoder"], b["encoder"], batch)
        mu, logvar = self._call("to_stats", p["to_stats"], b["to_stats"], h).float().chunk(2, dim=1)
        lo = -20.0 if t.sigma_floor is None else 2 * math.log(t.sigma_floor)
        logvar = logvar.clamp(lo, 10)
        z = mu + eps * (0.5 * logvar).exp()
        recon = self._call("decoder", p["decoder"], b["decoder"], z.to(batch.dtype)).float().clamp(1e-6, 1 - 1e-6)
        if t.recon == "bce":
            nll = _bce_sum(recon, batch) / n
        else:  # "l2l1", the released code's
            err = recon - batch.float()
            nll = (err.pow(2).sum() + 0.5 * err.abs().sum()) / n
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / n
        weight = getattr(t, "kl_weight", t.beta)
        if t.kl_warmup:
            weight *= 1.0 - math.exp(-t.train_step / t.kl_warmup)
        return nll + weight * kl

    def member_losses(self, group: str, batch: torch.Tensor, noise: Tensors) -> torch.Tensor:
        """The K members' losses (K,) for ``group`` on stacked batches (K, n, 3, H, W) and noise (K, ...)."""
        P, B = self.params, self.buffers
        if group == "critic":
            with torch.no_grad():
                fake = vmap(lambda p, b, z: self._call("generator", p, b, z))(P["generator"], B["generator"],
                                                                            noise["z"])
            fake = fake.to(batch.dtype)
            return vmap(self._critic_loss)(P["critic"], B["critic"], batch, fake, noise["eps"])
        if group == "generator":
            frozen = {k: v.detach() for k, v in P["critic"].items()}
            return vmap(self._generator_loss)(P["generator"], B["generator"], frozen, B["critic"], noise["z"])
        if group == "vae":
            parts = self.groups["vae"]
            return vmap(self._vae_loss)({k: P[k] for k in parts}, {k: B[k] for k in parts}, batch, noise["eps"])
        raise KeyError(group)

    # ------------------------------------------------------------------------------------------------- training
    def step(self, batch_size: int | None = None, *, batches: Sequence[torch.Tensor] | None = None,
             noise: Sequence[Tensors] | None = None, cpu_bf16: bool = False) -> None:
        """One outer iteration for every member: one update per entry of the family's ``plan()`` (each on a fresh
        batch, or all on one batch when the model reuses it, as ``train`` does). ``cpu_bf16``: bfloat16 autocast on the
        CPU too (CUDA always uses it).

        ``batches`` / ``noise`` (one entry per plan entry, stacked over members) replace the drawn ones: a test hook.
        """
        n = batch_size or self.batch_size
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.amp
                    else torch.autocast("cpu", dtype=torch.bfloat16) if cpu_bf16 and self.device.type == "cpu"
                    else torch.autocast(self.device.type, enabled=False))
        self.template.train_step = self.iterations  # schedules such as the VAE's KL warm-up read it
        drawn = None
        for j, g in enumerate(self.plan):
            if batches is not None:
                batch = batches[j]
            else:
                if drawn is None or not self.reuse:
                    drawn = self.draw_batch(n)
                batch = drawn
            nz = noise[j] if noise is not None else self.draw_noise(g, batch.shape[1])
            with autocast:
                loss = self.member_losses(g, batch, nz)
            self.opts[g].zero_grad(set_to_none=True)
            loss.sum().backward()
            self.opts[g].step()
            self._sums[g] += loss.detach().float()
            self._counts[g] += 1
        self.iterations += 1

    def set_lr(self, lr: float) -> None:
        """Every member's Adam learning rate (all groups)."""
        for o in self.opts.values():
            for grp in o.param_groups:
                grp["lr"] = lr

    def losses(self) -> list[dict[str, float]]:
        """Each member's mean loss per group since the last call (then reset)."""
        means = {g: (self._sums[g] / max(self._counts[g], 1)).tolist() for g in self.groups}
        self._sums = {g: torch.zeros(len(self), device=self.device) for g in self.groups}
        self._counts = {g: 0 for g in self.groups}
        return [{g: means[g][i] for g in self.groups} for i in range(len(self))]

    # -------------------------------------------------------------------------------------------------- members
    def _member_state(self, i: int) -> dict[str, Tensors]:
        return {part: {**{k: v[i].detach().clone() for k, v in self.params[part].items()},
                       **{k: v[i].clone() for k, v in self.buffers[part].items()}} for part in self.params}

    def freeze(self, i: int) -> None:
        """Keep member i's current weights as its final ones (it converged); the fleet trains on unchanged."""
        self.frozen[i] = {p: {k: v.cpu() for k, v in s.items()} for p, s in self._member_state(i).items()}

    def member(self, i: int) -> GenerativeModel:
        """Member i as an ordinary model (its frozen weights if it converged) on the fleet's device, in eval mode."""
        check_int("i", i, 0, len(self) - 1)
        net = self._fresh()
        net.sample_bn = self.sample_bn
        state = self.frozen.get(i) or self._member_state(i)
        for part, sd in state.items():
            getattr(net, part).load_state_dict(sd)
        return net.to(self.device).eval()

    @torch.no_grad()
    def sample(self, n: int, generators: Sequence[torch.Generator | None] | None = None,
               batch_size: int = 1000) -> torch.Tensor:
        """n images per member (K, n, 3, H, W) in eval mode, latents drawn as ``GenerativeModel.sample`` draws them."""
        gens = list(generators) if generators is not None else [None] * len(self)
        self.template.eval()
        norms = [m for m in self.template.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        if self.sample_bn == "batch":  # each batch's own statistics; running ones unchanged (momentum 0)
            for m in norms:
                m.train()
                m.momentum = 0.0
        try:
            chunks = []
            for start in range(0, n, batch_size):
                z = torch.stack([self.template.latent(min(batch_size, n - start), g) for g in gens])
                chunks.append(vmap(lambda p, b, zz: self._call(self.decoder, p, b, zz))(
                    self.params[self.decoder], self.buffers[self.decoder], z).float())
        finally:
            for m, mom in zip(norms, momenta):
                m.momentum = mom
            self.template.train()
        return torch.cat(chunks, dim=1) if chunks else torch.empty(len(self), 0, 3, self.image_size, self.image_size)

    # ---------------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "family": self.family, "seeds": list(self.seeds), "iterations": self.iterations,
            "params": {p: {k: v.detach() for k, v in d.items()} for p, d in self.params.items()},
            "buffers": self.buffers, "opts": {g: o.state_dict() for g, o in self.opts.items()},
            "batch_gens": [g.get_state() for g in self.batch_gens],
            "noise_gens": [g.get_state() for g in self.noise_gens], "frozen": self.frozen,
            "failed": dict(self.failed), "log_carry": {"sums": {g: v.detach().cpu() for g, v in self._sums.items()},
                                                       "counts": dict(self._counts)},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["family"] != self.family or list(state["seeds"]) != self.seeds:
            raise ValueError(f"fleet checkpoint is for {state['family']} seeds {state['seeds']}, not "
                             f"{self.family} seeds {self.seeds}")
        with torch.no_grad():
            for kind, mine in (("params", self.params), ("buffers", self.buffers)):
                for part, d in mine.items():
                    for k, v in d.items():
                        v.copy_(state[kind][part][k])
        for g, o in self.opts.items():
            o.load_state_dict(state["opts"][g])
        for g, s in zip(self.batch_gens, state["batch_gens"]):
            g.set_state(s.cpu())
        for g, s in zip(self.noise_gens, state["noise_gens"]):
            g.set_state(s.cpu())
        self.frozen = dict(state["frozen"])
        self.failed = dict(state.get("failed", {}))
        self.iterations = int(state["iterations"])
        carry = state.get("log_carry")
        if carry is not None:  # the next loss record averages the same iterations as a straight run's
            self._sums = {g: v.to(self.device) for g, v in carry["sums"].items()}
            self._counts = {g: int(c) for g, c in carry["counts"].items()}


def train_fleet(fleet: FleetTrainer, config: TrainConfig, *,
                probe: Callable[[torch.Tensor], np.ndarray | tuple[np.ndarray, float]] | None = None,
                healthy: Callable[[np.ndarray], bool] | Sequence[Callable[[np.ndarray], bool] | None] | None = None,
                checkpoint: str | Path | None = None, progress: bool = True, desc: str | None = None,
                diverged: str = "raise") -> list[TrainResult]:
    """Train every member of ``fleet`` as :func:`probe_utils.train.train` trains one model; one result per member.

    Logging, probes (two halves, their noise floor, the unmeasurable share, ``healthy``: one test for all members or
    one per member), the convergence rule, the learning-rate settings, bf16 on the CPU, the NaN guard, the budget
    (``max_wall_s``, here the whole fleet's) and checkpoints follow ``train``. A member whose probed distribution
    converges keeps its weights of that iteration (:meth:`FleetTrainer.freeze`) and its history ends there; the fleet
    stops when every member has converged (or failed) or after ``config.steps``, or when the budget is spent.
    ``wall_s`` and ``cpu_s`` are the whole fleet's. ``diverged``: "raise" (a member's NaN loss stops the fleet with
    :class:`~probe_utils.train.TrainingDiverged`) or "drop" (that member stops, its message in ``fleet.failed``, the
    others go on).
    """
    check_choice("diverged", diverged, ("raise", "drop"))
    k = len(fleet)
    tests = list(healthy) if isinstance(healthy, Sequence) else [healthy] * k
    if len(tests) != k:
        raise ParameterError(f"parameter 'healthy' must be one test or {k} (one per member); got {len(tests)}")
    results = [TrainResult(steps=0, wall_s=0.0, device=str(fleet.device), converged_at=None, resumed_from=None)
               for _ in range(k)]
    sample_gens = [torch.Generator(device=fleet.device).manual_seed(s + 1) for s in fleet.seeds]
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt and ckpt.exists():
        try:
            state = torch.load(ckpt, map_location=fleet.device, weights_only=False)
            fleet.load_state_dict(state["fleet"])
            for g, s in zip(sample_gens, state["sample_gens"]):
                g.set_state(s.cpu())
            results = [TrainResult(**r) for r in state["results"]]
        except ValueError:
            raise
        except Exception as e:  # truncated, altered, or another fleet's
            raise CorruptCheckpoint(f"fleet checkpoint {ckpt} is unreadable or does not fit this fleet "
                                    f"({type(e).__name__}: {str(e)[:200]}); delete it to train the fleet from the "
                                    f"start") from None
        for r in results:
            r.resumed_from = r.steps
    step = fleet.iterations
    lr0 = config.lr if config.lr is not None else fleet.template.lr

    def save() -> None:
        if ckpt:
            _save_atomic({"fleet": fleet.state_dict(), "sample_gens": [g.get_state() for g in sample_gens],
                          "results": [asdict(r) for r in results]}, ckpt)

    def measure(images: torch.Tensor) -> tuple[np.ndarray, float]:
        out = probe(images)
        dist, invalid = out if isinstance(out, tuple) else (out, 0.0)
        return np.asarray(dist, float), float(invalid)

    def run_probe(i: int, images: torch.Tensor) -> bool:
        """Measure member i as train's probe does, record, and say whether it has converged."""
        half = images.shape[0] // 2
        return record_probe(results[i].probes, step, measure(images[:half]), measure(images[half:]), config,
                            tests[i])

    def probe_all(members: list[int]) -> list[int]:
        """Probe ``members``; those that converged."""
        if probe is None or not members:
            return []
        images = fleet.sample(config.probe_samples, sample_gens)
        return [i for i in members if run_probe(i, images[i])]

    active = [i for i in range(k) if results[i].converged_at is None and i not in fleet.failed]
    start = time.perf_counter() - max((r.wall_s for r in results), default=0.0)
    cpu_start = time.process_time() - max((r.cpu_s for r in results), default=0.0)
    last = max(results, key=lambda r: r.cpu_s)
    budget = CpuBudget(last.cpu_s, last.budget_s, last.cpu_speeds, measure=config.budget_clock == "cpu"
                       and config.max_wall_s is not None and fleet.device.type != "cuda")
    bar = tqdm(total=config.steps, initial=step, desc=desc or f"{fleet.family} x{k}", disable=not progress,
               dynamic_ncols=True, leave=False)
    while active and step < config.steps:
        fleet.set_lr(lr0 * 0.5 ** (step // config.lr_halve_every) if config.lr_halve_every else lr0)
        fleet.step(config.batch_size, cpu_bf16=config.cpu_bf16)
        step += 1
        bar.update(1)
        if step % config.log_every == 0 or step == config.steps:
            means = fleet.losses()
            for i in list(active):
                bad = [g for g, v in means[i].items() if not np.isfinite(v)]
                if bad:
                    last = (step // config.checkpoint_every) * config.checkpoint_every if ckpt else None
                    msg = (f"{fleet.family} member {i}: the loss of {bad[0]!r} became {means[i][bad[0]]} by "
                           f"iteration {step} (seed {fleet.seeds[i]}); last checkpoint: {last}. Lower the learning "
                           f"rate or check the data.")
                    if diverged == "raise":
                        bar.close()
                        raise TrainingDiverged(msg)
                    fleet.failed[i] = msg
                    active.remove(i)
                    continue
                results[i].losses.append({"step": step, **means[i]})
            if active:
                bar.set_postfix({g: f"{np.mean([means[i][g] for i in active]):.3g}" for g in fleet.groups})
        done: list[int] = []
        if step % config.probe_every == 0 or step == config.steps:
            done = probe_all(active)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        spent_cpu = budget.update(cpu)
        if step % config.probe_every == 0:
            budget.check()
        for i in active:
            results[i].steps, results[i].wall_s, results[i].cpu_s = step, wall, cpu
            results[i].budget_s, results[i].cpu_speeds = spent_cpu, list(budget.speeds)
        spent = spent_cpu if config.budget_clock == "cpu" else wall
        out_of_time = config.max_wall_s is not None and spent >= config.max_wall_s
        if out_of_time and step % config.probe_every != 0:
            probe_all([i for i in active if i not in done])  # the history ends with the state the fleet stops in
        for i in done:
            results[i].converged_at = step
            fleet.freeze(i)
        active = [i for i in active if i not in done]
        if step % config.checkpoint_every == 0 or done or step == config.steps or out_of_time:
            save()
        if out_of_time:
            break
    bar.close()
    return results


__all__ = ["FLEET_OPTIONS", "FLEET_TRAIN_OPTIONS", "FleetTrainer", "fleet_unsupported", "train_fleet"]
