"""The one training loop: any model family, any device, checkpoints, resume, NaN guard, progress, probes.

A run renders (or is given) a pool of training images once, then draws random batches from it, as the paper trains
on a fixed data set. At intervals it samples the model, measures the probed feature and keeps the distribution in the
run's history, so a chapter can show convergence, and (optionally) stops once that distribution has converged.

Convergence criterion: after ``min_steps``, the total-variation distance between the feature distributions of two
consecutive probes stays below the larger of ``converge_tol`` and the probe's own noise floor for
``converge_patience`` probes in a row. The noise floor is measured at every probe: the TV distance between the
distributions of its two halves, times ``1 / sqrt(2)`` (two full probes differ by that much when nothing changes),
times ``NOISE_MARGIN``. A run whose probe is unhealthy (half or more of the samples unmeasurable, or the
experiment's own ``healthy`` test fails: e.g. all blank) is never converged: it is collapsed, not finished. A probe
too noisy to see a change (its tolerance, ``NOISE_MARGIN`` times its noise floor, above ``MAX_CONVERGE_TV``: a
distribution over many more bins than the probe has samples, such as the 2,025 pie combinations) cannot vouch for
convergence either: such a run trains to its budget.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from probe_utils.models import GenerativeModel
from probe_utils.params import ParameterError, check_choice


#: the convergence tolerance is at least this multiple of the expected probe-to-probe noise
NOISE_MARGIN = 1.5
#: a probe with at least this share of unmeasurable samples is unhealthy (never converged)
MAX_INVALID = 0.5
#: a probe whose tolerance (``NOISE_MARGIN`` times its noise floor) exceeds this TV distance is blind to the change
#: it should rule out, so it never counts towards convergence (methods page, "Training")
MAX_CONVERGE_TV = 0.25


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


class CorruptCheckpoint(RuntimeError):
    """A checkpoint cannot be read, does not match its checksum, or belongs to another run."""


#: the format of :func:`save_checkpoint`'s files: a checksummed payload (torch itself checks no checksum on load)
CHECKPOINT_FORMAT = "probe_utils-checkpoint/1"


@dataclass(frozen=True)
class TrainConfig:
    """How long and how a run trains and how often it probes and checkpoints."""

    steps: int                      # maximum generator (outer) iterations
    batch_size: int = 64
    probe_every: int = 100          # iterations between feature probes
    probe_samples: int = 1000       # generated images measured per probe
    checkpoint_every: int = 500     # iterations between checkpoints
    log_every: int = 25             # iterations between loss records (and NaN checks)
    converge_tol: float | None = None   # TV distance; None: always run ``steps``
    converge_patience: int = 3
    min_steps: int = 0
    lr: float | None = None             # Adam learning rate instead of the model family's
    lr_halve_every: int | None = None   # halve the learning rate every this many iterations (released code: 30k)
    cpu_bf16: bool = False              # bfloat16 autocast on CPU too (CUDA always uses it)
    max_wall_s: float | None = None     # stop after this much training time (resumed sessions included)
    budget_clock: str = "wall"          # what max_wall_s counts: "wall" time, or this process's "cpu" time at the
    #                                     reference core's speed (CPU seconds times :func:`cpu_speed`)
    ema: float | None = None            # sample from an exponential moving average of the weights (decay, e.g. 0.999)


@dataclass
class TrainResult:
    """What a run produced, besides the trained model."""

    steps: int
    wall_s: float
    device: str
    converged_at: int | None
    resumed_from: int | None
    cpu_s: float = 0.0              # CPU time of this process spent training (resumed sessions included)
    budget_s: float = 0.0           # that CPU time at the reference core's speed (what a "cpu" budget counts)
    cpu_speeds: list[float] = field(default_factory=list)  # cpu_speed() at the start and at each probe
    losses: list[dict] = field(default_factory=list)   # {"step": s, group: mean loss, ...}
    probes: list[dict] = field(default_factory=list)   # {"step": s, "dist": [...], "tv": float | None}


#: CPU seconds (one thread) that :func:`cpu_speed`'s fixed workload takes on the reference core: the speed of the
#: machines that made the stored `cpu` runs up to 2026-12-02 (see :func:`cpu_speed`; derivation on the methods page)
REFERENCE_CHECK_S = 0.0174


def check_workload_s(steps: int = 6) -> float:
    """CPU seconds of this process for one training step of a fixed small conv net on a fixed batch of 64 images
    (the median of ``steps`` after one warm-up step; float32 on the CPU, whatever else the process does)."""
    with torch.random.fork_rng(devices=[]):  # the run's own random stream is not touched
        torch.manual_seed(0)  # three convolutions and a linear read-out, 32×32 RGB in
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, 4, 2, 1), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(32, 64, 4, 2, 1),
            torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(64, 64, 4, 2, 1), torch.nn.LeakyReLU(0.2), torch.nn.Flatten(),
            torch.nn.Linear(64 * 16, 1))
    x = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    times = []
    for i in range(steps + 1):
        t = time.process_time()
        opt.zero_grad(set_to_none=True)
        net(x).square().mean().backward()
        opt.step()
        if i:
            times.append(time.process_time() - t)
    return float(np.median(times))


def cpu_speed() -> float:
    """This process's CPU speed relative to the reference core (:data:`REFERENCE_CHECK_S` over the time the fixed
    workload takes now): 0.5 on a core that does half the work per CPU second. A ``cpu`` budget counts CPU seconds
    times this, so a run on a slow or shared core trains about as far as on the reference core."""
    return REFERENCE_CHECK_S / max(check_workload_s(), 1e-9)


class CpuBudget:
    """What a run has spent of a ``cpu`` budget: its CPU seconds times the speed :func:`cpu_speed` measured last
    (at the start and again at each probe, as other tenants come and go). ``measure=False`` (a CUDA run): speed 1.
    Resumes from ``budget_s``, ``cpu_s`` and ``speeds`` of a checkpoint; one from before speeds were measured
    counts its CPU time at today's speed."""

    def __init__(self, cpu_s: float = 0.0, budget_s: float = 0.0, speeds: list[float] | None = None,
                 measure: bool = True) -> None:
        self.measure = measure
        self.speeds = list(speeds or [])
        self.counted = cpu_s
        self.check()
        self.budget_s = budget_s if budget_s or not cpu_s else cpu_s * self.speed

    @property
    def speed(self) -> float:
        return self.speeds[-1] if self.speeds else 1.0

    def check(self) -> None:
        if self.measure:
            self.speeds.append(round(cpu_speed(), 3))

    def update(self, cpu_s: float) -> float:
        """Count the CPU seconds since the last update at the current speed; return the budget seconds spent."""
        self.budget_s += (cpu_s - self.counted) * self.speed
        self.counted = cpu_s
        return self.budget_s


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' (or None) picks cuda, then mps, then cpu; otherwise the named device, checked to exist."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    name = str(device)
    check_choice("device", name.split(":")[0], ("auto", "cpu", "cuda", "mps"))
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError("parameter 'device' is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if name.startswith("mps") and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ParameterError("parameter 'device' is 'mps' but MPS is not available; use 'auto' or 'cpu'")
    return torch.device(name)


class ImagePool:
    """A fixed training set kept on the device as uint8, sampled in random batches."""

    def __init__(self, images: torch.Tensor, device: torch.device) -> None:
        self.images = (images.clamp(0, 1) * 255).round().to(torch.uint8).to(device)
        self.device = device

    def __len__(self) -> int:
        return self.images.shape[0]

    def batch(self, n: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(self), (n,), generator=generator).to(self.device)
        return self.images[idx].float().div_(255.0)


def tv_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Total-variation distance between two discrete distributions on the same bins."""
    return 0.5 * float(np.abs(np.asarray(p, float) - np.asarray(q, float)).sum())


def _save_atomic(obj: dict, path: Path) -> None:
    """``torch.save`` to ``<path>.tmp``, then rename: ``path`` is always a whole checkpoint. On a failure (a full
    disk) the temporary file is removed and the error names the checkpoint."""
    buf = io.BytesIO()  # serialised in memory, written with plain file I/O: a full disk is an OSError (ENOSPC),
    torch.save(obj, buf)  # where torch's own file writer reports an opaque RuntimeError
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(buf.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OSError(e.errno, f"could not write checkpoint {path} ({e.strerror or e}); the previous checkpoint "
                                   f"is kept: free space, then run again to resume from it") from e
        raise


def save_checkpoint(state: dict, path: Path) -> None:
    """Write ``state`` atomically as a checksummed checkpoint (:func:`load_checkpoint` verifies it)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    _save_atomic({"format": CHECKPOINT_FORMAT, "sha256": hashlib.sha256(payload).hexdigest(), "payload": payload},
                 path)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """The state saved by :func:`save_checkpoint` (or an older, unchecksummed checkpoint); CorruptCheckpoint naming
    the file when it is unreadable, truncated or altered."""
    hint = "delete it to train this run from the start"
    try:
        outer = torch.load(path, map_location=device, weights_only=False)
    except Exception as e:  # truncated: EOFError, RuntimeError from the zip reader, UnpicklingError, ...
        raise CorruptCheckpoint(f"checkpoint {path} is unreadable ({type(e).__name__}: {e}); {hint}") from None
    if isinstance(outer, dict) and outer.get("format") == CHECKPOINT_FORMAT:
        payload = outer.get("payload")
        if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != outer.get("sha256"):
            raise CorruptCheckpoint(f"checkpoint {path} does not match its checksum (altered or damaged); {hint}")
        try:
            outer = torch.load(io.BytesIO(payload), map_location=device, weights_only=False)
        except Exception as e:
            raise CorruptCheckpoint(f"checkpoint {path} is unreadable ({type(e).__name__}: {e}); {hint}") from None
    missing = [k for k in ("model", "opts", "gen", "rng", "result") if not isinstance(outer, dict) or k not in outer]
    if missing:
        raise CorruptCheckpoint(f"checkpoint {path} lacks {', '.join(missing)}; {hint}")
    return outer


def record_probe(probes: list[dict], step: int, first: tuple[np.ndarray, float], second: tuple[np.ndarray, float],
                 config: TrainConfig, healthy: Callable[[np.ndarray], bool] | None = None) -> bool:
    """Append a probe to ``probes`` from the measurements (distribution, invalid share) of two halves of its samples,
    and say whether the run has converged: past ``min_steps``, the last ``converge_patience`` probes were healthy
    and each moved (TV from the previous probe) less than ``converge_tol`` or ``NOISE_MARGIN`` times its sampling
    noise (the TV between the halves, over sqrt 2), a noise floor that leaves that tolerance at most
    ``MAX_CONVERGE_TV``."""
    (da, ia), (db, ib) = first, second
    # each half's shares are over its measurable samples: weigh them by how many it had (a half with none measurable
    # adds nothing), so the probe's shares sum to 1 whenever any sample was measurable
    wa, wb = 1.0 - ia, 1.0 - ib
    dist = (da * wa + db * wb) / (wa + wb) if wa + wb > 0 else np.zeros_like(da)
    invalid = (ia + ib) / 2
    prev = probes[-1]["dist"] if probes else None
    tv = tv_distance(dist, prev) if prev is not None else None
    noise = tv_distance(da, db) / np.sqrt(2)
    ok = invalid < MAX_INVALID and (healthy is None or bool(healthy(dist)))
    probes.append({"step": step, "dist": dist.tolist(), "tv": tv, "noise": noise, "invalid": invalid, "healthy": ok})
    if config.converge_tol is None or step < config.min_steps:
        return False
    recent = probes[-config.converge_patience:]
    return len(recent) == config.converge_patience and all(
        p["tv"] is not None and p.get("healthy", True) and
        NOISE_MARGIN * p.get("noise", 0.0) <= MAX_CONVERGE_TV and
        p["tv"] < max(config.converge_tol, NOISE_MARGIN * p.get("noise", 0.0)) for p in recent)


class WeightAverage:
    """An exponential moving average of a model's floating-point state (weights and batch-norm statistics).

    The decay warms up as ``min(decay, (1 + t) / (10 + t))`` so that early averages are not dominated by the initial
    weights. ``swapped_in()`` lends the averaged weights to the model (for sampling) and puts the trained ones back.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ParameterError(f"ema must be a decay in (0, 1), e.g. 0.999; got {decay!r}")
        self.decay = decay
        self.model = model
        self.live = {k: v for k, v in model.state_dict().items() if v.dtype.is_floating_point}
        self.avg = {k: v.detach().clone() for k, v in self.live.items()}
        self.updates = 0

    def update(self) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(list(self.avg.values()), [v.detach() for v in self.live.values()], 1.0 - d)
        self.updates += 1

    def state(self) -> dict:
        return {"avg": {k: v.detach().cpu() for k, v in self.avg.items()}, "updates": self.updates}

    def load(self, state: dict) -> None:
        for k, v in state["avg"].items():
            self.avg[k].copy_(v)
        self.updates = int(state["updates"])

    def swapped_in(self) -> "_Swap":
        return _Swap(self)


class _Swap:
    def __init__(self, wa: WeightAverage) -> None:
        self.wa = wa
        self.saved: dict[str, torch.Tensor] = {}

    def __enter__(self) -> None:
        self.saved = {k: v.detach().clone() for k, v in self.wa.live.items()}
        with torch.no_grad():
            for k, v in self.wa.live.items():
                v.copy_(self.wa.avg[k])

    def __exit__(self, *exc: object) -> None:
        with torch.no_grad():
            for k, v in self.wa.live.items():
                v.copy_(self.saved[k])


def train(
    model: GenerativeModel,
    pool: ImagePool,
    config: TrainConfig,
    *,
    seed: int = 0,
    probe: Callable[[torch.Tensor], np.ndarray | tuple[np.ndarray, float]] | None = None,
    healthy: Callable[[np.ndarray], bool] | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> TrainResult:
    """Train ``model`` on batches from ``pool``; return its history. The model ends on the pool's device.

    ``probe(images) -> distribution`` (or ``(distribution, unmeasurable share)``) measures a feature of generated images
    and returns its distribution over fixed bins among the measurable ones; ``healthy(distribution)`` says whether a
    probe shows a working model (default: always). With ``checkpoint`` set, state is saved every ``checkpoint_every``
    iterations and at the end, and a run that finds a checkpoint there resumes from it (same seed, same stream of
    batches). With ``config.ema``, probes sample the averaged weights and the model ends holding them (the checkpoint
    keeps both).
    """
    device = pool.device
    cuda = device.type == "cuda"
    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    groups = model.groups()
    lr0 = config.lr if config.lr is not None else model.lr
    opts = {g: torch.optim.Adam(ps, lr=lr0, betas=model.betas) for g, ps in groups.items()}
    plan = model.plan()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    sample_gen = torch.Generator(device=device).manual_seed(seed + 1)

    average = WeightAverage(model, config.ema) if config.ema is not None else None
    result = TrainResult(steps=0, wall_s=0.0, device=str(device), converged_at=None, resumed_from=None)
    ckpt = Path(checkpoint) if checkpoint else None
    identity = {"file": ckpt.name if ckpt else None, "seed": seed, "family": model.family,
                "batch_size": config.batch_size}
    log_carry = None
    if ckpt and ckpt.exists():
        state = load_checkpoint(ckpt, device)
        other = {k: v for k, v in state.get("identity", {}).items() if identity.get(k) != v}
        if other:
            raise CorruptCheckpoint(f"checkpoint {ckpt} belongs to another run (" + ", ".join(
                f"{k} {v!r}, not {identity.get(k)!r}" for k, v in other.items()) + "); delete it or move it back")
        try:
            model.load_state_dict(state["model"])
            for g, o in opts.items():
                o.load_state_dict(state["opts"][g])
            gen.set_state(state["gen"].cpu())  # generator states are CPU tensors
            torch.set_rng_state(state["rng"].cpu())
            if "sample_gen" in state:  # older checkpoints lack it: their resumed probes differ from a straight run
                sample_gen.set_state(state["sample_gen"].cpu())
            result = TrainResult(**state["result"])
            if average is not None:
                average.load(state["ema"])
        except (RuntimeError, KeyError, TypeError, ValueError) as e:
            raise CorruptCheckpoint(f"checkpoint {ckpt} does not fit this run ({type(e).__name__}: "
                                    f"{str(e)[:200]}); delete it to train this run from the start") from None
        if cuda and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu())
        log_carry = state.get("log_carry")  # loss sums of the iterations since the last loss record
        result.resumed_from = result.steps
        if result.converged_at is not None:
            if average is not None:
                average.swapped_in().__enter__()  # a finished run ends holding its averaged weights
            return result

    def save() -> None:
        if ckpt:
            save_checkpoint({
                "model": model.state_dict(), "opts": {g: o.state_dict() for g, o in opts.items()},
                "gen": gen.get_state(), "rng": torch.get_rng_state(), "sample_gen": sample_gen.get_state(),
                "cuda_rng": torch.cuda.get_rng_state() if cuda else None, "result": asdict(result),
                "log_carry": {"sums": {g: v.detach().cpu() for g, v in sums.items()}, "counts": dict(counts)},
                "identity": identity, "ema": average.state() if average is not None else None,
            }, ckpt)

    def measure(images: torch.Tensor) -> tuple[np.ndarray, float]:
        out = probe(images)
        dist, invalid = out if isinstance(out, tuple) else (out, 0.0)
        return np.asarray(dist, float), float(invalid)

    def run_probe(step: int) -> bool:
        """Measure, record, and say whether the convergence criterion is met."""
        if average is not None:
            with average.swapped_in():
                images = model.sample(config.probe_samples, generator=sample_gen)
        else:
            images = model.sample(config.probe_samples, generator=sample_gen)
        half = images.shape[0] // 2
        return record_probe(result.probes, step, measure(images[:half]), measure(images[half:]), config, healthy)

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else (
        torch.autocast("cpu", dtype=torch.bfloat16) if config.cpu_bf16 else torch.autocast("cpu", enabled=False))
    reuse = bool(getattr(model, "reuse_batch", False))
    sums = {g: torch.zeros((), device=device) for g in groups}
    counts = {g: 0 for g in groups}
    if log_carry is not None:  # a resumed run's next loss record averages the same iterations as a straight run's
        sums.update({g: v.to(device) for g, v in log_carry["sums"].items() if g in sums})
        counts.update({g: int(v) for g, v in log_carry["counts"].items() if g in counts})
    start = time.perf_counter() - result.wall_s
    cpu_start = time.process_time() - result.cpu_s
    budget = CpuBudget(result.cpu_s, result.budget_s, result.cpu_speeds,
                       measure=config.budget_clock == "cpu" and config.max_wall_s is not None and not cuda)
    bar = tqdm(total=config.steps, initial=result.steps, desc=desc or model.family, disable=not progress,
               dynamic_ncols=True, leave=False)
    model.train()
    step = result.steps
    while step < config.steps:
        model.train_step = step
        if config.lr_halve_every:
            for o in opts.values():
                for grp in o.param_groups:
                    grp["lr"] = lr0 * 0.5 ** (step // config.lr_halve_every)
        batch = None
        for g in plan:
            if batch is None or not reuse:
                batch = pool.batch(config.batch_size, gen)
                if cuda:
                    batch = batch.contiguous(memory_format=torch.channels_last)
            with autocast:
                loss = model.loss(batch, g)
            opts[g].zero_grad(set_to_none=True)
            loss.backward()
            opts[g].step()
            sums[g] += loss.detach().float()
            counts[g] += 1
        if average is not None:
            average.update()
        step += 1
        bar.update(1)
        if step % config.log_every == 0 or step == config.steps:
            means = {g: float(sums[g]) / max(counts[g], 1) for g in groups}
            bad = [g for g, v in means.items() if not np.isfinite(v)]
            if bad:
                bar.close()
                last = (step // config.checkpoint_every) * config.checkpoint_every if ckpt else None
                raise TrainingDiverged(
                    f"{model.family}: the loss of {bad[0]!r} became {means[bad[0]]} by iteration {step} "
                    f"(seed {seed}); last checkpoint: {last}. Lower the learning rate or check the data.")
            result.losses.append({"step": step, **means})
            bar.set_postfix({g: f"{v:.3g}" for g, v in means.items()})
            sums = {g: torch.zeros((), device=device) for g in groups}
            counts = {g: 0 for g in groups}
        converged = False
        probed = probe is not None and (step % config.probe_every == 0 or step == config.steps)
        if probed:
            converged = run_probe(step)
        result.steps = step
        result.wall_s = time.perf_counter() - start
        result.cpu_s = time.process_time() - cpu_start
        result.budget_s = budget.update(result.cpu_s)
        if probed:
            budget.check()
        result.cpu_speeds = budget.speeds
        if converged:
            result.converged_at = step
        spent = result.budget_s if config.budget_clock == "cpu" else result.wall_s
        out_of_time = config.max_wall_s is not None and spent >= config.max_wall_s
        if out_of_time and probe is not None and step % config.probe_every != 0:
            run_probe(step)  # the history ends with the state the run stops in
        if step % config.checkpoint_every == 0 or converged or step == config.steps or out_of_time:
            save()
        if converged or out_of_time:
            break
    bar.close()
    model.eval()
    if average is not None:
        average.swapped_in().__enter__()  # the model ends holding its averaged weights (the checkpoint has both)
    return result
