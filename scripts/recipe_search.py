"""The CPU recipe search of issue 11: which training recipe makes a small conv model reproduce its training data
within a fixed budget of one CPU core.

Each entry of the plan (``book/recipe_search/plan.json``) names a model family, a trained dot count, a seed,
a budget in minutes and the recipe's knobs (model options and training settings). A worker takes the next entry
that has neither a result nor a live lock, trains it with the project's one training loop (one thread), measures
``--probe`` samples about every minute with the project's counter, and writes
``book/recipe_search/<name>.json``: the knobs, the probe history (exactly-k share, refused and blank
shares, mean), the final measurement on 2,000 samples, a sample grid and provenance. Run two workers, one per
core::

    OMP_NUM_THREADS=1 python scripts/recipe_search.py --worker &
    OMP_NUM_THREADS=1 python scripts/recipe_search.py --worker &
    python scripts/recipe_search.py --status

Budgets count this process's CPU time (``budget_clock="cpu"``), so that entries compare fairly on a busy machine;
probe times (``wall_s`` in the probes) are CPU seconds too. An interrupted entry restarts from scratch (entries are
short); finished ones are never redone. An entry with a ``skip`` reason is kept in the plan, with its reason, and not
run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from probe_utils import __version__  # noqa: E402
from probe_utils import models as models_mod  # noqa: E402
from probe_utils.features import dots as dotf  # noqa: E402
from probe_utils.render import dots  # noqa: E402
from probe_utils.store import git_commit, image_grid, png_base64  # noqa: E402
from probe_utils.train import ImagePool, TrainConfig, train  # noqa: E402

OUT = REPO / "book" / "recipe_search"
PLAN = OUT / "plan.json"
TRAIN_KEYS = {"lr", "lr_halve_every", "cpu_bf16", "batch_size", "ema"}


def measure(images: torch.Tensor, k: int) -> dict:
    """Exactly-k share (refused images count as wrong), refused, blank, mean of the countable, both merge rules."""
    c = dotf.count(images)
    s = dotf.count(images, split_merged=True)
    ok = c >= 0
    return {"exact": float((c == k).mean()), "exact_split": float((s == k).mean()), "refused": float(1 - ok.mean()),
            "blank": float((c == 0).mean()), "mean": float(c[ok].mean()) if ok.any() else None,
            "hist": np.bincount(c[ok], minlength=k + 4)[: k + 4].tolist() if ok.any() else []}


def run_entry(entry: dict, size: int = 32, width: int = 16, pool_size: int = 20000) -> dict:
    """Train and measure one plan entry; return its result record."""
    torch.set_num_threads(1)
    k, seed = int(entry["count"]), int(entry["seed"])
    knobs = dict(entry.get("knobs", {}))
    train_kw = {key: knobs.pop(key) for key in list(knobs) if key in TRAIN_KEYS}
    sample_bn = knobs.pop("sample_bn", "eval")
    width = int(knobs.pop("width", width))
    images, _ = dots.render(count=k, n=pool_size, seed=seed, size=size)
    pool = ImagePool(images, torch.device("cpu"))
    torch.manual_seed(seed)
    net = models_mod.build(entry["model"], size, width, **knobs)
    net.sample_bn = sample_bn
    history: list[dict] = []
    t0 = time.process_time()

    def probe(x: torch.Tensor) -> np.ndarray:
        m = measure(x, k)
        history.append({"wall_s": round(time.process_time() - t0, 1), **m})  # CPU seconds of this process
        print(f"[{entry['name']}] {history[-1]['wall_s']:7.1f}s exact {m['exact']:.3f} refused {m['refused']:.3f} "
              f"blank {m['blank']:.3f} mean {m['mean']}", flush=True)
        return np.ones(2) / 2

    cfg = TrainConfig(steps=10 ** 7, batch_size=int(train_kw.pop("batch_size", 64)), probe_every=int(entry["probe_every"]),
                      probe_samples=int(entry.get("probe_samples", 1000)), checkpoint_every=10 ** 7,
                      max_wall_s=60.0 * float(entry["minutes"]), budget_clock="cpu", **train_kw)
    res = train(net, pool, cfg, seed=seed, probe=probe, progress=False)
    merged = []  # the loop measures each probe in two halves: merge them
    for a, b in zip(history[0::2], history[1::2]):
        merged.append({"wall_s": b["wall_s"], **{key: (a[key] + b[key]) / 2 for key in ("exact", "exact_split",
                                                                                         "refused", "blank")}})
    gen = torch.Generator().manual_seed(10_000 + seed)
    samples = net.sample(2000, generator=gen)
    final = measure(samples, k)
    return {
        "name": entry["name"], "model": entry["model"], "count": k, "seed": seed, "minutes": entry["minutes"],
        "knobs": entry.get("knobs", {}), "image_size": size, "width": width, "pool_size": pool_size,
        "steps": res.steps, "iterations_per_s": round(res.steps / max(res.cpu_s, 1e-9), 2),
        "probes": [dict(p, step=s["step"]) for p, s in zip(merged, res.probes)], "final": final,
        "sample_grid_png": png_base64(image_grid(samples[:32])),
        "provenance": {"device": f"cpu ({platform.processor() or platform.machine()}, 1 thread)",
                       "torch": torch.__version__, "code_version": __version__, "git_commit": git_commit(),
                       "train_wall_s": round(res.wall_s, 1), "train_cpu_s": round(res.cpu_s, 1),
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def next_entry(plan: list[dict]) -> dict | None:
    """The first entry without a result and without a live lock; takes its lock."""
    for entry in plan:
        done = OUT / f"{entry['name']}.json"
        lock = OUT / f"{entry['name']}.lock"
        if done.exists() or entry.get("skip"):
            continue
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock.read_text() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _alive(pid):
                continue
            lock.unlink(missing_ok=True)  # a dead worker's lock
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return entry
    return None


def worker() -> None:
    while True:
        plan = json.loads(PLAN.read_text())
        entry = next_entry(plan)
        if entry is None:
            print("[recipe_search] nothing left to run", flush=True)
            return
        lock = OUT / f"{entry['name']}.lock"
        try:
            rec = run_entry(entry)
            tmp = OUT / f"{entry['name']}.json.tmp"
            tmp.write_text(json.dumps(rec, indent=1))
            os.replace(tmp, OUT / f"{entry['name']}.json")
        finally:
            lock.unlink(missing_ok=True)


def status() -> None:
    plan = json.loads(PLAN.read_text())
    spent = 0.0
    for entry in plan:
        path = OUT / f"{entry['name']}.json"
        if path.exists():
            rec = json.loads(path.read_text())
            spent += rec["provenance"].get("train_cpu_s", rec["provenance"]["train_wall_s"])
            f = rec["final"]
            print(f"{entry['name']:28s} {rec['model']:8s} k={rec['count']} {rec['steps']:6d} it "
                  f"exact {f['exact']:.3f} (split {f['exact_split']:.3f}) refused {f['refused']:.3f} "
                  f"blank {f['blank']:.3f} mean {f['mean']}")
        elif entry.get("skip"):
            print(f"{entry['name']:28s} skipped: {entry['skip']}")
        else:
            lock = OUT / f"{entry['name']}.lock"
            print(f"{entry['name']:28s} {'running' if lock.exists() else 'to do'} ({entry['minutes']} min)")
    todo = sum(e["minutes"] for e in plan if not (OUT / f"{e['name']}.json").exists() and not e.get("skip"))
    print(f"core-hours spent {spent / 3600:.2f}; planned still {todo / 60:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", action="store_true", help="run plan entries until none is left")
    ap.add_argument("--status", action="store_true", help="print what is done and what is left")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.worker:
        worker()
    else:
        status()
