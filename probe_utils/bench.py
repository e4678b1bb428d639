"""Throughput benchmark: renderers, measurements, and training one model at a time versus a fleet.

``python -m probe_utils bench`` runs :func:`bench` and prints :func:`format_table`. Every figure excludes warm-up work
and synchronises CUDA before reading the clock. Training is measured twice in the same run on the same total work (K
models x ``iters`` iterations): K models trained one after another by the loop body of
:func:`probe_utils.train.train`, then one :class:`~probe_utils.fleet.FleetTrainer` of K members. Model FLOP
utilisation divides the FLOPs of one training iteration (counted by :class:`torch.utils.flop_counter.FlopCounterMode`:
matmuls and convolutions, forward and backward) times the achieved iterations per second by the device's peak: a table
of bf16 dense tensor-core peaks for CUDA (training runs in bf16 autocast there), a measured float32 matmul rate on CPU.
"""

from __future__ import annotations

import importlib
import platform
import time
from datetime import datetime, timezone
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from probe_utils import __version__
from probe_utils.fleet import FleetTrainer
from probe_utils.models import FAMILIES, GenerativeModel, build
from probe_utils.params import ParameterError, check_choice, check_int
from probe_utils.train import ImagePool, pick_device

#: bf16 dense tensor-core peak in TFLOP/s, by a substring of ``torch.cuda.get_device_name`` (first match wins).
CUDA_PEAK_TFLOPS: list[tuple[str, float]] = [
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0),
    ("A100", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A10G", 70.0), ("A10", 125.0),
    ("V100", 125.0), ("T4", 65.0),
]

PARTS = ("render", "measure", "train")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    """(result, seconds) of one call, CUDA synchronised on both sides."""
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t0


def _renderers(size: int) -> dict[str, Callable[..., tuple[torch.Tensor, dict]]]:
    """Renderer name -> ``render(n, seed, device)``; CLEVR only where its module exists."""
    out: dict[str, Callable] = {}
    from probe_utils.render import dots, mnist3, pie

    out["dots"] = lambda n, seed, dev: dots.render(5, n, seed, dev, size)
    out["pie"] = lambda n, seed, dev: pie.render(n, seed, dev, size)
    out["mnist3"] = lambda n, seed, dev: mnist3.render(n, seed, dev, size)
    try:
        clevr = importlib.import_module("probe_utils.render.clevr")
        out["clevr"] = lambda n, seed, dev: clevr.render(n, seed, dev, size)
    except ImportError:
        pass
    return out


def _measures() -> dict[str, tuple[str, Callable[[torch.Tensor], Any]]]:
    """Measurement name -> (renderer whose images it reads, function)."""
    from probe_utils.features import dots, mnist3, pie

    out: dict[str, tuple[str, Callable]] = {
        "dots count": ("dots", dots.count), "pie measure": ("pie", pie.measure),
        "mnist3 classify": ("mnist3", mnist3.classify),
    }
    try:
        clevr = importlib.import_module("probe_utils.features.clevr")
        out["clevr count"] = ("clevr", clevr.count)
    except ImportError:
        pass
    return out


def bench_render(size: int, images: int, device: torch.device) -> tuple[dict[str, dict], dict[str, torch.Tensor]]:
    """Images per second of each renderer (after a small warm-up render); also returns the images."""
    results: dict[str, dict] = {}
    rendered: dict[str, torch.Tensor] = {}
    for name, render in _renderers(size).items():
        try:
            render(min(images, 8), 1, device)
            (x, _), dt = _timed(lambda: render(images, 0, device), device)
        except (ParameterError, FileNotFoundError, RuntimeError) as e:
            results[name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        rendered[name] = x
        results[name] = {"images": images, "seconds": dt, "images_per_s": images / dt}
    return results, rendered


def bench_measure(rendered: dict[str, torch.Tensor], device: torch.device) -> dict[str, dict]:
    """Images per second of each measurement on its renderer's images (after a warm-up call on a few)."""
    results: dict[str, dict] = {}
    for name, (source, fn) in _measures().items():
        if source not in rendered:
            results[name] = {"error": f"no {source} images"}
            continue
        x = rendered[source]
        try:
            fn(x[:8])
            _, dt = _timed(lambda: fn(x), device)
        except (ParameterError, FileNotFoundError, RuntimeError) as e:
            results[name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        results[name] = {"images": int(x.shape[0]), "seconds": dt, "images_per_s": x.shape[0] / dt}
    return results


class _Single:
    """One model trained by the body of :func:`probe_utils.train.train` (same autocast, layout and optimisers)."""

    def __init__(self, model: GenerativeModel, pool: ImagePool, seed: int, batch_size: int) -> None:
        self.device = pool.device
        self.cuda = self.device.type == "cuda"
        self.model = model.to(self.device)
        if self.cuda:
            self.model.to(memory_format=torch.channels_last)
        self.opts = {g: torch.optim.Adam(ps, lr=model.lr, betas=model.betas) for g, ps in model.groups().items()}
        self.plan = model.plan()
        self.pool, self.batch_size = pool, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda
                         else torch.autocast(self.device.type, enabled=False))
        self.model.train()

    def step(self) -> None:
        for g in self.plan:
            batch = self.pool.batch(self.batch_size, self.gen)
            if self.cuda:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with self.autocast:
                loss = self.model.loss(batch, g)
            self.opts[g].zero_grad(set_to_none=True)
            loss.backward()
            self.opts[g].step()


class _NoModules:
    """Stands in for FlopCounterMode's module tracker, whose hooks break ``torch.autograd.grad`` (WGAN-GP's penalty)."""

    parents = {"Global"}

    def __enter__(self) -> "_NoModules":
        return self

    def __exit__(self, *args: Any) -> None:
        return None


def _flops(step: Callable[[], None]) -> int | None:
    """FLOPs (matmuls and convolutions, forward and backward) of one call of ``step``; None if uncountable."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModules()
    try:
        with counter:
            step()
    except (RuntimeError, AttributeError):
        return None
    return int(counter.get_total_flops())


def cpu_matmul_flops(n: int = 1024, seconds: float = 0.3) -> float:
    """Float32 matmul FLOP/s measured on this CPU with the current torch threads (a practical peak)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or reps < 2:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def cuda_peak(name: str) -> tuple[float | None, str]:
    """(bf16 dense peak FLOP/s, its source) of the CUDA device called ``name``; None when not in the table."""
    for key, tflops in CUDA_PEAK_TFLOPS:
        if key in name:
            return tflops * 1e12, f"bf16 dense tensor-core peak of {key} (table)"
    return None, f"no peak known for {name!r}"


def device_peak(device: torch.device) -> tuple[float | None, str]:
    """(peak FLOP/s, where it comes from) for ``device``; None when unknown."""
    if device.type == "cuda":
        return cuda_peak(torch.cuda.get_device_name(device))
    if device.type == "cpu":
        return cpu_matmul_flops(), f"measured float32 1024x1024 matmul rate, {torch.get_num_threads()} thread(s)"
    return None, f"no peak known for {device.type}"


def bench_train(family: str, size: int, width: int, fleet: int, iters: int, warmup: int, batch_size: int,
                device: torch.device, model_kw: dict[str, Any]) -> dict[str, Any]:
    """Model-iterations per second for ``fleet`` models one at a time and as one fleet, FLOPs and utilisation."""
    from probe_utils.render import dots

    x, _ = dots.render(5, max(4 * batch_size, 256), 0, torch.device("cpu"), size)
    pool = ImagePool(x, device)
    singles_s = 0.0
    flops_single: int | None = None
    for k in range(fleet):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(k)
            single = _Single(build(family, size, width, **model_kw), pool, k, batch_size)
        for _ in range(warmup):
            single.step()
        if k == 0:
            flops_single = _flops(single.step)
        _, dt = _timed(lambda s=single: [s.step() for _ in range(iters)], device)
        singles_s += dt
        del single
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ft = FleetTrainer(family, size, width, [{"seed": k, "pool": pool} for k in range(fleet)], batch_size=batch_size,
                      **model_kw)
    for _ in range(warmup):
        ft.step()
    _, fleet_s = _timed(lambda: [ft.step() for _ in range(iters)], device)
    peak, peak_source = device_peak(device)
    single_rate, fleet_rate = fleet * iters / singles_s, fleet * iters / fleet_s
    out: dict[str, Any] = {
        "model_iterations": fleet * iters,
        "single": {"seconds": singles_s, "model_iters_per_s": single_rate,
                   "achieved_flops": flops_single * single_rate if flops_single else None},
        "fleet": {"seconds": fleet_s, "model_iters_per_s": fleet_rate,
                  "achieved_flops": flops_single * fleet_rate if flops_single else None},
        "fleet_speedup": fleet_rate / single_rate,
        "flops_per_model_iter": flops_single,
        "n_parameters": build(family, size, width, **model_kw).n_parameters(),
        "peak_flops": peak, "peak_source": peak_source,
    }
    for kind in ("single", "fleet"):
        flops = out[kind]["achieved_flops"]
        out[kind]["mfu"] = flops / peak if peak and flops else None
    if device.type == "cuda":
        out["fleet"]["max_memory_bytes"] = torch.cuda.max_memory_allocated(device)
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def bench(device: Any = "auto", family: str = "wgan_gp", size: int = 64, width: int = 64, fleet: int = 8,
          iters: int = 20, warmup: int = 3, batch_size: int = 64, images: int = 512, n_critic: int | None = None,
          parts: Any = PARTS) -> dict[str, Any]:
    """Run the benchmark; return a JSON-ready dict (device, date, versions, settings, figures).

    ``parts``: any of ``render``, ``measure`` (needs ``render``'s images, so it renders too) and ``train``.
    """
    check_choice("family", family, FAMILIES)
    check_choice("size", size, (32, 64, 128))
    check_int("width", width, 1, 1024)
    check_int("fleet", fleet, 1, 1024)
    check_int("iters", iters, 1)
    check_int("warmup", warmup, 0)
    check_int("batch_size", batch_size, 1)
    check_int("images", images, 1)
    if n_critic is not None:
        check_int("n_critic", n_critic, 1, 100)
    parts = [parts] if isinstance(parts, str) else list(parts)
    if not parts:
        raise ParameterError(f"parameter 'parts' must name one or more of {', '.join(PARTS)}; got none")
    for i, p in enumerate(parts):
        check_choice(f"parts[{i}]", p, PARTS)
    dev = pick_device(device)
    model_kw = {"n_critic": n_critic} if n_critic is not None and family.startswith("wgan") else {}
    out: dict[str, Any] = {
        "device": device_name(dev), "device_type": dev.type,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "probe_utils": __version__, "python": platform.python_version(),
        "settings": {"family": family, "size": size, "width": width, "fleet": fleet, "iters": iters,
                     "warmup": warmup, "batch_size": batch_size, "images": images,
                     "n_critic": model_kw.get("n_critic", getattr(FAMILIES[family], "n_critic", None)),
                     "threads": torch.get_num_threads(), "parts": parts},
    }
    if "render" in parts or "measure" in parts:
        out["render"], rendered = bench_render(size, images, dev)
        if "measure" in parts:
            out["measure"] = bench_measure(rendered, dev)
        del rendered
    if "train" in parts:
        out["train"] = bench_train(family, size, width, fleet, iters, warmup, batch_size, dev, model_kw)
    return out


def _num(v: float | None, unit: str = "") -> str:
    if v is None:
        return "n/a"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {prefix}{unit}"
    return f"{v:.3g} {unit}".rstrip()


def format_table(res: dict[str, Any]) -> str:
    """A readable table of :func:`bench`'s result."""
    s = res["settings"]
    lines = [f"device: {res['device']}   torch {res['torch']}   {res['date']}",
             "settings: " + ", ".join(f"{k}={v}" for k, v in s.items() if k != "parts"), ""]
    for section, title in (("render", "render"), ("measure", "measure")):
        if section in res:
            lines.append(f"{title:<24}{'images/s':>14}")
            for name, r in res[section].items():
                val = f"{r['images_per_s']:>14.1f}" if "images_per_s" in r else f"  {r['error'][:60]}"
                lines.append(f"  {name:<22}{val}")
            lines.append("")
    if "train" in res:
        t = res["train"]
        lines.append(f"training {s['family']} {s['size']}px width {s['width']}, batch {s['batch_size']}, "
                     f"{t['model_iterations']} model-iterations each way "
                     f"({_num(t['flops_per_model_iter'], 'FLOP')} per model-iteration)")
        lines.append(f"  {'':<22}{'model-iter/s':>14}{'achieved':>16}{'MFU':>10}")
        for kind, label in (("single", "one at a time"), ("fleet", f"fleet of {s['fleet']}")):
            r = t[kind]
            mfu = f"{100 * r['mfu']:.2f}%" if r["mfu"] is not None else "n/a"
            lines.append(f"  {label:<22}{r['model_iters_per_s']:>14.2f}{_num(r['achieved_flops'], 'FLOP/s'):>16}"
                         f"{mfu:>10}")
        lines.append(f"  fleet speed-up: {t['fleet_speedup']:.2f}x   peak: {_num(t['peak_flops'], 'FLOP/s')} "
                     f"({t['peak_source']})")
    return "\n".join(lines)


__all__ = ["bench", "bench_render", "bench_measure", "bench_train", "cuda_peak", "device_peak", "format_table",
           "CUDA_PEAK_TFLOPS"]
