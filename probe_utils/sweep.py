"""Sweeps: every run a chapter needs, planned from the chapter's own parameters, spread over worker processes, Ray
tasks or SLURM jobs (submitit), written into the same results store as :func:`probe_utils.experiments.run`.

A plan is the list of (experiment, model, value, seed[, width, pool size]) runs that the chapter's run cell would
make (:data:`probe_utils.build.RUN_PLAN` says which, from which parameters), less those already stored. Each run is
one ``experiments.run`` call in a worker, so everything ``run`` guarantees holds: parameters checked, a per-run lock
(two identical runs never train at once), checkpoints under ``runs/`` that make an interrupted run resume. A sweep
that is interrupted is resumed by running the same command again: it re-plans, skips what is stored and resumes
what was checkpointed.

Fleets: with ``--fleet K`` (default: 8 on a CUDA device, 1 elsewhere), runs of the same chapter, experiment, model
family, preset and size are grouped into fleets of up to K, and each fleet is one task of the executor: one
:func:`probe_utils.experiments.run_fleet` call that trains its runs together (:mod:`probe_utils.fleet`) and stores one
record per run, the record ``run`` would store. Runs whose recipe the fleet does not implement stay one per task, with
the reason in the plan's printout.

Cost estimates (printed before any work): per run, on a preset with a ``max_minutes`` budget, the median training
cost of the store's current records of the same experiment, family and size at that preset where it holds at least
:data:`MIN_LIKE_RUNS` (runs stop early once converged) and the budget is larger, else the budget; on a preset without
one, its iterations times the seconds per iteration measured on stored records of the same preset and model family
(the store's current and stale records, and ``book/archive``), else times a stated rate (:data:`ASSUMED_ITERS_PER_S`).
"""

from __future__ import annotations

import ast
import json
import math
import os
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from itertools import takewhile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from probe_utils.params import ParameterError, check_choice, check_int

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
EXECUTORS = ("local", "ray", "slurm")
#: Stated training rates (iterations per second of one run) used when neither a budget nor a measurement exists:
#: "cpu" is one one-thread worker at the cpu preset's sizes (records of book/archive measured 4 to 30 it/s at 32 px,
#: width 16; a WGAN-GP is the slow end), "cuda" is an assumption for 64 px, width 64 on one GPU, never measured here.
ASSUMED_ITERS_PER_S = {"cpu": 4.0, "cuda": 20.0}
#: runs per fleet on a CUDA device when ``--fleet`` is not given (elsewhere: 1, one model per process)
CUDA_FLEET = 8


@dataclass(frozen=True)
class Task:
    """One run of a sweep: the arguments of one ``experiments.run`` call with a single (model, value, seed)."""

    experiment: str
    model: str
    value: Any
    seed: int
    preset: str
    width: int | None = None
    pool_size: int | None = None
    key: str = ""                   # the record key the run will have
    chapter: str = ""               # the first chapter that needs it
    also: tuple[str, ...] = ()      # the other chapters that need it (runs shared by chapters are planned once)
    est_s: float = 0.0              # estimated seconds of one worker
    est_source: str = ""            # where the estimate comes from

    def label(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in (("width", self.width), ("pool_size", self.pool_size)) if v)
        return f"{self.experiment} {self.model} value={self.value} seed={self.seed}{extra}"

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class SweepPlan:
    """The runs of a sweep: those still to do and those already stored (with their records' training seconds)."""

    chapters: list[str]
    preset: str
    todo: list[Task] = field(default_factory=list)
    done: list[Task] = field(default_factory=list)
    done_train_s: float = 0.0

    @property
    def est_s(self) -> float:
        return sum(t.est_s for t in self.todo)


# ---------------------------------------------------------------------------------------------------------------
# chapters and their parameters


def chapter_names() -> list[str]:
    """The chapters that make runs, in book order."""
    from probe_utils.build import RUN_PLAN

    return list(RUN_PLAN)


def resolve_chapters(name: str) -> list[str]:
    """``all``, a chapter's file stem (``01_numerosity``), its number (``01``) or its name (``numerosity``)."""
    names = chapter_names()
    if not isinstance(name, str) or not name.strip():
        raise ParameterError(f"parameter 'chapter' must be 'all' or one of {', '.join(map(repr, names))}; "
                             f"got {name!r}")
    name = name.strip()
    if name == "all":
        return names
    hits = [n for n in names if name in (n, n[:2], n[3:])]
    if len(hits) != 1:
        raise ParameterError(f"parameter 'chapter' must be 'all' or one of {', '.join(map(repr, names))} (or its "
                             f"number or name); got {name!r}")
    return hits


def chapter_parameters(stem: str, notebooks: Path | None = None) -> dict[str, Any]:
    """The defaults of a chapter's ``parameters`` cell, read from its jupytext source (literals only)."""
    src = Path(notebooks or NOTEBOOKS) / f"{stem}.py"
    if not src.exists():
        raise ParameterError(f"parameter 'chapter' is {stem!r}, whose source {src} does not exist (the sweep reads "
                             f"a chapter's defaults from a checkout's notebooks/)")
    lines = src.read_text().splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("# %%") and '"parameters"' in line)
    except StopIteration:
        raise ParameterError(f"chapter {stem!r} has no parameters cell in {src}") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("# %%")), len(lines))
    out: dict[str, Any] = {}
    for node in ast.parse("\n".join(lines[start + 1:end])).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def parse_value(text: Any) -> Any:
    """A ``-p`` value as papermill's command line takes it: a Python literal, else the text itself."""
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# ---------------------------------------------------------------------------------------------------------------
# planning


def _chapter_tasks(stem: str, params: dict[str, Any]) -> list[Task]:
    """Every run chapter ``stem`` makes with these parameters (not yet keyed against the store)."""
    from probe_utils import experiments as ex
    from probe_utils.build import RUN_PLAN, skipped
    from probe_utils.store import record_key

    tasks = []
    for entry in RUN_PLAN[stem]:
        if skipped(entry, params):
            continue
        names = {"models": entry.get("models", "models"), "values": entry["values"],
                 "seeds": entry.get("seeds", "seeds")}
        args = {k: params[v] for k, v in names.items()}
        where = f"chapter {stem}, parameters " + ", ".join(repr(v) for v in names.values())
        try:
            if entry.get("derive") == "mixture_modes":
                mixtures = [ex.check_mixture(f"{names['values']}[{i}]", v)
                            for i, v in enumerate(ex._as_list(names["values"], args["values"]))]
                args["values"] = sorted({m for v in mixtures for m in ex.mixture_modes(v)})
            sizes: list[dict] = [{}]
            if "scale" in entry:
                wf, df = entry["scale"]
                sizes = ex.scaled_settings(params["preset"], width_factors=params[wf], data_factors=params[df])
            for extra in sizes:
                plan = ex.check_parameters(entry["experiment"], models=args["models"], values=args["values"],
                                           seeds=args["seeds"], preset=params["preset"], device="cpu", **extra)
                for m in plan.models:
                    run_params = ex._run_params(plan, m)
                    for v in plan.values:
                        for s in plan.seeds:
                            key = record_key(plan.experiment.name, m, plan.preset.name, s, v, run_params)
                            tasks.append(Task(plan.experiment.name, m, v, s, plan.preset.name,
                                              extra.get("width"), extra.get("pool_size"), key, stem))
        except ParameterError as e:
            raise ParameterError(f"{where}: {e}") from None
    return tasks


def plan_runs(chapters: Iterable[str], *, preset: str | None = None, overrides: dict[str, Any] | None = None,
              store: Any = None, device: str = "auto", its_per_s: float | None = None,
              notebooks: Path | None = None) -> SweepPlan:
    """The sweep of ``chapters`` (see :func:`resolve_chapters`) at ``preset`` (default: each chapter's own), with
    papermill-style ``overrides`` of their parameters: each run once (runs shared by chapters are planned once), stored
    runs apart, every run to do with its estimated cost."""
    from probe_utils.experiments import PRESETS
    from probe_utils.store import Store

    chapters = list(dict.fromkeys(c for name in chapters for c in resolve_chapters(name)))
    store = store if isinstance(store, Store) else Store(store)
    overrides = dict(overrides or {})
    if preset is not None:
        check_choice("preset", preset, PRESETS)
        overrides["preset"] = preset
    defaults = {stem: chapter_parameters(stem, notebooks) for stem in chapters}
    unknown = [k for k in overrides if not any(k in d for d in defaults.values())]
    if unknown:
        allowed = sorted({k for d in defaults.values() for k in d})
        raise ParameterError(f"parameter {unknown[0]!r} is not a parameter of {', '.join(chapters)}; allowed: "
                             f"{', '.join(allowed)}")
    seen: dict[str, Task] = {}
    needed_by: dict[str, list[str]] = defaultdict(list)
    for stem in chapters:
        params = {**defaults[stem], **{k: v for k, v in overrides.items() if k in defaults[stem]}}
        check_choice(f"preset (chapter {stem})", params.get("preset"), PRESETS)
        if params.get("imports"):  # modules that register families of your own (exported to the workers)
            from probe_utils.models import import_modules

            import_modules(params["imports"], source="imports")
        for t in _chapter_tasks(stem, params):
            seen.setdefault(t.key, t)
            needed_by[t.key].append(stem)
    seen = {k: replace(t, also=tuple(dict.fromkeys(c for c in needed_by[k] if c != t.chapter)))
            for k, t in seen.items()}
    presets = sorted({t.preset for t in seen.values()})
    out = SweepPlan(chapters, presets[0] if len(presets) == 1 else "+".join(presets))
    return _split_stored(out, seen.values(), store, device, its_per_s)


def _stored(store: Any, t: Task) -> dict | None:
    from probe_utils import experiments as ex

    plan = ex.check_parameters(t.experiment, models=[t.model], values=[t.value], seeds=[t.seed], preset=t.preset,
                               device="cpu", width=t.width, pool_size=t.pool_size)
    return store.get(t.experiment, t.model, t.preset, t.seed, plan.values[0], ex._run_params(plan, t.model))


# ---------------------------------------------------------------------------------------------------------------
# cost


_RATES: dict[str, dict[tuple, list[float]]] = {}
_SPENT: dict[tuple[str, str], dict[tuple, list[float]]] = {}
#: stored runs of the same setting needed before their median cost replaces a budgeted preset's budget as the estimate
MIN_LIKE_RUNS = 3


def _spent_like(store: Any, preset: str) -> dict[tuple, list[float]]:
    """Training cost (:func:`spent_s`) of the store's current records at ``preset``, by (experiment, model, width,
    pool size). Read once per store, preset and process, like the rates."""
    key = (str(Path(store.root).resolve()), preset)
    if key not in _SPENT:
        out: dict[tuple, list[float]] = defaultdict(list)
        try:
            recs = list(store.records(preset=preset))
        except Exception:  # an unreadable record spoils no estimate; the sweep's own reads report it
            recs = []
        for r in recs:
            p = r["params"]
            out[(r["experiment"], r["model"], p.get("width"), p.get("pool_size"))].append(spent_s(r["provenance"]))
        _SPENT[key] = dict(out)
    return _SPENT[key]


def _measured_rates(store: Any) -> dict[tuple, list[float]]:
    """Seconds per training iteration of stored runs, by (preset, model, image size, width) and by (preset, model):
    the store's current and stale records, and those archived beside it (``<store>/../archive/*``). Read once per
    store and process (a plan asks for them for every chapter and preset it looks at)."""
    root = str(Path(store.root).resolve())
    if root not in _RATES:
        _RATES[root] = _read_rates(store)
    return _RATES[root]


def _read_rates(store: Any) -> dict[tuple, list[float]]:
    from probe_utils.store import Store

    roots = [store.root]
    archive = store.root.parent / "archive"
    if archive.is_dir():
        roots += sorted(p for p in archive.iterdir() if p.is_dir())
    rates: dict[tuple, list[float]] = defaultdict(list)
    for root in roots:
        s = Store(root)
        for stale in (False, True):
            try:
                recs = list(s.records(stale=stale))
            except Exception:  # an unreadable record spoils no estimate; the sweep's own reads report it
                continue
            for r in recs:
                prov, p = r["provenance"], r["params"]
                if prov.get("train_wall_s") and prov.get("steps") and "cuda" not in str(prov.get("device", "cpu")):
                    rate = float(prov["train_wall_s"]) / int(prov["steps"])
                    rates[(r["preset"], r["model"], p.get("image_size"), p.get("width"))].append(rate)
                    rates[(r["preset"], r["model"])].append(rate)
    return rates


def estimate(t: Task, rates: dict[tuple, list[float]], *, device: str = "auto",
             its_per_s: float | None = None, spent: dict[tuple, list[float]] | None = None) -> tuple[float, str]:
    """(estimated seconds of one worker, where the estimate comes from) for task ``t``; ``spent``: stored runs'
    costs by setting (:func:`_spent_like`), for presets with a budget."""
    from probe_utils import experiments as ex

    pre = ex.PRESETS[t.preset]
    if pre.max_minutes is not None:
        budget = 60.0 * pre.max_minutes
        like = (spent or {}).get((t.experiment, t.model, t.width or pre.width, t.pool_size or pre.pool_size), [])
        if len(like) >= MIN_LIKE_RUNS and statistics.median(like) < budget:
            return statistics.median(like), f"stored runs like it where {MIN_LIKE_RUNS}+ (their median cost)"
        return budget, f"the preset's budget ({pre.max_minutes:g} min)"
    if its_per_s is not None:
        return pre.steps / its_per_s, f"{its_per_s:g} it/s (given)"
    kind = "cuda" if _device_kind(device) == "cuda" else "cpu"
    if kind == "cpu":
        plan = ex.check_parameters(t.experiment, models=[t.model], values=[t.value], seeds=[t.seed], preset=t.preset,
                                   device="cpu", width=t.width, pool_size=t.pool_size)
        p = ex._run_params(plan, t.model)
        for k, of in (((t.preset, t.model, p["image_size"], p["width"]), ""), ((t.preset, t.model), " of other sizes")):
            if rates.get(k):
                s_per_it = statistics.median(rates[k])
                return pre.steps * s_per_it, f"measured: {len(rates[k])} stored {t.preset} {t.model} runs{of}"
    rate = ASSUMED_ITERS_PER_S[kind]
    return pre.steps / rate, f"stated rate {rate:g} it/s on {kind} (not measured)"


def _device_kind(device: str) -> str:
    if device in (None, "auto"):
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:  # pragma: no cover
            return "cpu"
    return str(device).split(":")[0]


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds / 60:.1f} min"


def fleet_size(fleet: int | None, device: str = "auto") -> int:
    """The fleet size a sweep uses: ``fleet`` when given (checked), else :data:`CUDA_FLEET` on CUDA, else 1."""
    if fleet is None:
        return CUDA_FLEET if _device_kind(device) == "cuda" else 1
    return check_int("fleet", fleet, 1, 1024)


def group_fleets(tasks: list[Task], fleet: int) -> tuple[list[list[Task]], list[str]]:
    """(jobs, notes): the tasks of one chapter, experiment, model, preset and size in fleets of up to ``fleet`` runs
    (in plan order), each fleet one job; every other task a job of its own. ``notes`` say which groups run one at a
    time because the fleet does not implement their recipe (:func:`probe_utils.experiments.fleet_reason`)."""
    from probe_utils import experiments as ex

    fleet = check_int("fleet", fleet, 1, 1024)
    if fleet == 1:
        return [[t] for t in tasks], []
    groups: dict[tuple, list[Task]] = defaultdict(list)
    for t in tasks:
        groups[(t.chapter, t.experiment, t.model, t.preset, t.width, t.pool_size)].append(t)
    jobs: list[list[Task]] = []
    notes: list[str] = []
    for (chapter, exp, model, preset, width, pool), ts in groups.items():
        plan = ex.check_parameters(exp, models=[model], values=[ts[0].value], seeds=[ts[0].seed], preset=preset,
                                   device="cpu", width=width, pool_size=pool)
        reason = ex.fleet_reason(plan, model)
        if reason is not None:
            notes.append(f"{chapter} {exp} {model}: {len(ts)} run(s) one at a time, not as fleets: {reason}")
            jobs += [[t] for t in ts]
        else:
            jobs += [ts[i:i + fleet] for i in range(0, len(ts), fleet)]
    return jobs, notes


def format_jobs(jobs: list[list[Task]], notes: list[str], fleet: int) -> list[str]:
    """Lines of the plan's printout that say how the runs were grouped."""
    if fleet == 1:
        return ["grouping: one run per task (use --fleet K to train runs of one family and preset as fleets)"]
    sizes = sorted((len(j) for j in jobs), reverse=True)
    counts = ", ".join(f"{sizes.count(k)} of {k} run{'s' * (k > 1)}" for k in sorted(set(sizes), reverse=True))
    lines = [f"grouping: fleets of up to {fleet} runs of the same chapter, experiment, model, preset and size: "
             f"{len(jobs)} task(s): {counts}"]
    return lines + [f"  {n}" for n in notes]


def _group_key(t: Task) -> tuple:
    return t.chapter, t.experiment, t.model, t.width, t.pool_size


def _group_parts(ts: list[Task]) -> tuple[str, str, str]:
    """Runs of one (chapter, experiment, model, size): their size ("preset", "w8", "n10000"), values and seeds."""
    size = "".join(f"{k}{v} " for k, v in (("w", ts[0].width), ("n", ts[0].pool_size)) if v).strip() or "preset"
    values = [str(v) for v in sorted({t.value for t in ts}, key=lambda v: (isinstance(v, str), v))]
    return size, ",".join(values), ",".join(map(str, sorted({t.seed for t in ts})))


def _group_line(ts: list[Task]) -> str:
    """One row of the plan's table: runs of one (chapter, experiment, model, size), their estimate, values / seeds."""
    size, values, seeds = _group_parts(ts)
    head = ts[0]
    return (f"  {head.chapter:<26}{head.experiment:<17}{head.model:<11}{size:<13}{len(ts):>5}  "
            f"{_hours(sum(t.est_s for t in ts)):>9}  {values} / {seeds}")


def format_plan(plan: SweepPlan, workers: int, device: str = "auto") -> str:
    """The plan as text: per (chapter, experiment, model, size) the runs to do and their estimate, then totals."""
    unit = "GPU-hours" if _device_kind(device) == "cuda" else "core-hours"
    groups: dict[tuple, list[Task]] = defaultdict(list)
    for t in plan.todo:
        groups[_group_key(t)].append(t)
    lines = [f"sweep of {', '.join(plan.chapters)} at the {plan.preset!r} preset: {len(plan.todo)} run(s) to do, "
             f"{len(plan.done)} stored"]
    if groups:
        lines.append(f"  {'chapter':<26}{'experiment':<17}{'model':<11}{'size':<13}{'runs':>5}  {'estimate':>9}  "
                     f"values / seeds")
    lines += [_group_line(ts) for ts in groups.values()]
    sources = sorted({t.est_source for t in plan.todo})
    if plan.todo:
        lines.append(f"estimate: {plan.est_s / 3600:.2f} {unit}, about {_hours(plan.est_s / max(workers, 1))} with "
                     f"{workers} worker(s) (from {'; '.join(sources)})")
    if plan.done:
        lines.append(f"stored: {len(plan.done)} run(s), {plan.done_train_s / 3600:.2f} {unit} of training spent")
    return "\n".join(lines)


def book_order(plan: SweepPlan, store: Any = None) -> SweepPlan:
    """``plan`` with its runs to do reordered so that the book's pages grow soonest. A page shows a chapter with the
    families and first seeds whose runs are all stored (:func:`probe_utils.build.chapter_settings`), so the runs
    fall into steps that each add to a page: for a chapter already shown with its first S seeds, each family not
    shown yet (its runs at those seeds), then each further seed; for a chapter not shown yet, each seed. Steps run
    by the seed they add (first seeds first), then the cheapest first. Within a seed step the runs go by family, since
    a page can show each family once its runs are stored: the families a page requires first (cheapest first), then
    the optional ones (e.g. chapter 02's ``other_models``, which no page waits for); otherwise in plan order. A run
    that several chapters need (planned once, under the first) belongs to each of their steps, and runs in the one
    that adds to a page soonest: chapter 03's next seed waits for chapter 02's red runs at that seed, not for all of
    chapter 02's earlier seeds."""
    from probe_utils.build import RUN_PLAN, chapter_settings, seed_list

    shown: dict[str, int] = {}
    seeds: dict[str, list[int]] = {}
    required: dict[str, set[str]] = {}
    for stem in dict.fromkeys(c for t in plan.todo for c in (t.chapter, *t.also)):
        defaults = chapter_parameters(stem)
        seeds[stem] = seed_list(defaults.get("seeds", 1))
        required[stem] = set()
        for entry in RUN_PLAN.get(stem, []):
            value = defaults.get(entry.get("models", "models"), [])
            if not entry.get("optional"):
                required[stem] |= {value} if isinstance(value, str) else set(value)
        at, overrides, _ = chapter_settings(stem, store) if stem in RUN_PLAN else ("", {}, [])
        shown[stem] = len(overrides.get("seeds", seeds[stem])) if at == plan.preset and at != "ci" else 0

    def step(stem: str, t: Task) -> tuple[int, tuple]:
        idx = seeds[stem].index(t.seed) if t.seed in seeds[stem] else t.seed
        s = shown[stem]
        if idx < s:
            return 0, (stem, "family", t.model)
        return idx - s + (1 if s else 0), (stem, "seed", idx)

    options = [[step(c, t) for c in (t.chapter, *t.also)] for t in plan.todo]
    cost: dict[tuple, float] = {}
    first: dict[tuple, int] = {}
    for i, t in enumerate(plan.todo):
        for _, name in options[i]:  # a shared run counts in every step that needs it
            for key in (name, name + (t.model,)):
                cost[key] = cost.get(key, 0.0) + t.est_s
                first.setdefault(key, i)
    steps = [min(opts, key=lambda o: (o[0], cost[o[1]], first[o[1]])) for opts in options]

    def within(i: int) -> tuple:
        t, name = plan.todo[i], steps[i][1]
        fam = name + (t.model,)
        return t.model not in required[name[0]], cost[fam], first[fam]

    order = sorted(range(len(plan.todo)),
                   key=lambda i: (steps[i][0], cost[steps[i][1]], first[steps[i][1]], *within(i), i))
    return replace(plan, todo=[plan.todo[i] for i in order])


def plan_json(plan: SweepPlan, command: str) -> dict:
    """The plan as a file: the runs still to do with their estimated cost, and the command that resumes them."""
    return {
        "about": "runs still to do, in the order they run (the book's pages grow soonest: see sweep.book_order); "
                 "resume with the command below (stored runs are skipped, checkpoints resume)",
        "command": command, "chapters": plan.chapters, "preset": plan.preset,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "done": len(plan.done), "done_train_hours": round(plan.done_train_s / 3600, 3),
        "todo": [t.to_json() for t in plan.todo], "estimate_hours": round(plan.est_s / 3600, 3),
    }


def write_plan(path: str | Path, plan: SweepPlan, command: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(plan_json(plan, command), indent=1) + "\n")
    os.replace(tmp, path)
    return path


def read_plan(path: str | Path, store: Any = None, device: str = "auto", its_per_s: float | None = None) -> SweepPlan:
    """A plan written by :func:`write_plan`, re-checked against the store (runs stored since are done)."""
    from probe_utils.store import Store

    path = Path(path)
    try:
        data = json.loads(path.read_text())
        tasks = [Task(**{k: tuple(t[k]) if k == "also" else t[k] for k in Task.__dataclass_fields__ if k in t})
                 for t in data["todo"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ParameterError(f"parameter 'from_plan' must be a plan written by --write-plan; {path}: {e}") from None
    store = store if isinstance(store, Store) else Store(store)
    out = SweepPlan(list(data.get("chapters", [])), str(data.get("preset", "?")))
    return _split_stored(out, tasks, store, device, its_per_s)


def spent_s(provenance: dict) -> float:
    """A stored run's training cost in device-seconds: on the CPU its CPU time (core-seconds, whatever else shared
    the machine; its wall time where an older record lacks it), on a GPU its wall time."""
    wall = float(provenance.get("train_wall_s") or 0.0)
    if "cuda" in str(provenance.get("device", "cpu")) or provenance.get("train_cpu_s") is None:
        return wall
    return float(provenance["train_cpu_s"])


def _split_stored(out: SweepPlan, tasks: Iterable[Task], store: Any, device: str, its_per_s: float | None
                  ) -> SweepPlan:
    """Sort ``tasks`` into ``out``: stored runs are done (their training time summed), the rest to do with an
    estimated cost."""
    from probe_utils import experiments as ex

    rates: dict[tuple, list[float]] | None = None  # read from the whole store only when an estimate needs them
    for t in tasks:
        rec = _stored(store, t)
        if rec is not None:
            out.done.append(t)
            out.done_train_s += spent_s(rec["provenance"])
        else:
            budgeted = ex.PRESETS[t.preset].max_minutes is not None
            if rates is None and not budgeted and its_per_s is None:
                rates = _measured_rates(store)
            est, source = estimate(t, rates or {}, device=device, its_per_s=its_per_s,
                                   spent=_spent_like(store, t.preset) if budgeted else None)
            out.todo.append(Task(**{**asdict(t), "est_s": round(est, 1), "est_source": source}))
    return out


# ---------------------------------------------------------------------------------------------------------------
# workers


def one_thread() -> None:
    """Make this process a one-thread worker (called first in every worker)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    os.environ["PROBE_UTILS_STORED_ONLY"] = "0"  # a sweep is asked to train
    import torch

    torch.set_num_threads(1)


def _local_worker() -> None:
    """A local pool's worker: one thread; Ctrl-C is the sweep's to handle (it terminates the workers: a run's lock
    goes with its process, and a lock file or ``.pt.tmp`` left behind is taken over by the next run of that key).
    A worker whose sweep is gone however it ended (a signal to the sweep alone, kill -9) exits within seconds
    instead of training on as an orphan beside the next sweep; its run resumes from its last checkpoint."""
    import signal

    one_thread()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(os.getppid())


def exit_with_parent(parent: int, every_s: float = 2.0) -> None:
    """Exit this process (``os._exit``) soon after process ``parent`` is gone (a daemon thread checks every
    ``every_s`` seconds whether this process was handed to another parent)."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(every_s)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def run_task(task: dict, store: str | None, runs_dir: str | None, device: str = "auto") -> dict:
    """One run in a worker: ``experiments.run`` with a single (model, value, seed); returns its record."""
    one_thread()
    from probe_utils.experiments import run

    (rec,) = run(task["experiment"], models=[task["model"]], values=[task["value"]], seeds=[task["seed"]],
                 preset=task["preset"], device=device, store=store, runs_dir=runs_dir, progress=False,
                 width=task.get("width"), pool_size=task.get("pool_size"))
    return rec


def run_job(tasks: list[dict], store: str | None, runs_dir: str | None, device: str = "auto"
            ) -> list[tuple[dict | None, str | None]]:
    """One executor task: a single run (:func:`run_task`) or a fleet of runs of one experiment, model, preset and size
    (:func:`probe_utils.experiments.run_fleet`). Per run: (its record, None) or (None, why it failed)."""
    if len(tasks) == 1:
        return [(run_task(tasks[0], store, runs_dir, device), None)]
    one_thread()
    from probe_utils import experiments as ex
    from probe_utils import store as store_module
    from probe_utils.store import Store

    t0 = tasks[0]
    same = ("experiment", "model", "preset", "width", "pool_size")
    if any(t.get(k) != t0.get(k) for t in tasks for k in same):
        raise ParameterError(f"parameter 'tasks' must share {', '.join(same)} to train as one fleet")
    members = []
    for t in tasks:  # each value in its canonical form, as run() passes it
        plan = ex.check_parameters(t["experiment"], models=[t["model"]], values=[t["value"]], seeds=[t["seed"]],
                                   preset=t["preset"], device=device, width=t.get("width"),
                                   pool_size=t.get("pool_size"))
        members.append((plan.values[0], plan.seeds[0]))
    st = Store(store)
    runs = Path(runs_dir) if runs_dir else st.runs_dir
    st.require_writable("store")
    store_module.require_writable_dir(runs, "runs_dir")
    out = ex.run_fleet(plan, t0["model"], members, store=st, runs_dir=runs, progress=False)
    return [(r, None) if isinstance(r, dict) else (None, f"{type(r).__name__}: {r}") for r in out]


#: What a task started too late for ``--until`` returns for each of its runs (left to do, not failed).
DEFERRED = "deferred: it would not finish before --until"
#: A task starts under ``--until`` only if its estimate times this, plus :data:`UNTIL_SLACK_S`, fits before the
#: deadline: an estimate counts reference-core seconds of training, a slower core and sampling take longer.
UNTIL_MARGIN = 1.3
UNTIL_SLACK_S = 60.0


def run_job_until(until: float, needed_s: float, tasks: list[dict], store: str | None, runs_dir: str | None,
                  device: str = "auto") -> list[tuple[dict | None, str | None]]:
    """:func:`run_job`, unless it would not finish before ``until`` (epoch seconds) when it starts now, taking
    ``needed_s``: then :data:`DEFERRED` for each run, nothing trained."""
    if time.time() + needed_s > until:
        return [(None, DEFERRED)] * len(tasks)
    return run_job(tasks, store, runs_dir, device)


def need_s(job: Sequence[Task]) -> float:
    """How long a task of ``job``'s runs may take, for ``--until``: their estimates times :data:`UNTIL_MARGIN`, plus
    :data:`UNTIL_SLACK_S`."""
    return UNTIL_MARGIN * sum(t.est_s for t in job) + UNTIL_SLACK_S


def parse_until(text: str, now: datetime | None = None) -> float:
    """``--until`` as epoch seconds: a time of day ``HH:MM`` (today, local time; it must be ahead), a date and time
    in ISO form (``2026-12-03T14:20``, local unless it says its zone), or a duration from now (``90m``, ``2h``,
    ``1h30m``)."""
    import re

    now = now or datetime.now().astimezone()
    t = str(text).strip()
    m = re.fullmatch(r"(?:(\d+)h)?\s*(?:(\d+)m(?:in)?)?", t)
    if t and m and (m[1] or m[2]):
        return now.timestamp() + 3600 * int(m[1] or 0) + 60 * int(m[2] or 0)
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}", t):
            hh, mm = map(int, t.split(":"))
            when = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
        else:
            when = datetime.fromisoformat(t)
            when = when if when.tzinfo else when.astimezone()
    except ValueError:
        when = None
    if when is None:
        raise ParameterError(f"parameter 'until' must be a time of day HH:MM, an ISO date and time "
                             f"(2026-12-03T14:20) or a duration (90m, 2h, 1h30m); got {text!r}")
    if when.timestamp() <= now.timestamp():
        raise ParameterError(f"parameter 'until' must be ahead of now ({now:%Y-%m-%d %H:%M}); got {text!r}")
    return when.timestamp()


def check_until_executor(executor: str) -> None:
    """``--until`` needs the local executor: a cluster's queue, not the sweep, decides when its tasks start."""
    if executor != "local":
        raise ParameterError(f"parameter 'until' works with --executor local only (a cluster's queue decides when "
                             f"its tasks start); got {executor!r}")


Done = Callable[[list[Task], list[tuple[dict | None, str | None]] | None, BaseException | None], None]


def _stop_workers(pool: Any, grace_s: float = 10.0) -> None:
    """Terminate a process pool's workers now and make sure they are gone (killed after ``grace_s``): their runs
    resume from their checkpoints next time, and nothing waits at exit for a worker still training."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(timeout=grace_s)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=grace_s)


def _run_local(jobs: list[list[Task]], done: Done, *, workers: int, store: str | None, runs_dir: str | None,
               device: str, until: float | None = None, **_: Any) -> None:
    """Ctrl-C (SIGINT) or SIGTERM to the sweep stops it: workers terminated, the interrupt reported as such (never
    as the runs' failures), the remaining runs left to do. ``until`` (epoch seconds): a task that would not finish
    by then when a worker takes it up is not started (:func:`run_job_until`), so the sweep ends by then."""
    import multiprocessing as mp
    import signal
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    stopping = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt(signal.Signals(signum).name)

    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_local_worker)
    try:
        futures = {(pool.submit(run_job, [t.to_json() for t in job], store, runs_dir, device) if until is None else
                    pool.submit(run_job_until, until, need_s(job), [t.to_json() for t in job], store, runs_dir,
                                device)): job for job in jobs}
        for f in as_completed(futures):
            err = f.exception()
            if isinstance(err, BrokenProcessPool):
                if stopping:  # our own stop broke the pool: an interrupt, not the runs' failure
                    raise KeyboardInterrupt
                err = RuntimeError("not finished: a worker process died (killed, or out of memory)")
            done(futures[f], None if err else f.result(), err)
    except KeyboardInterrupt:
        stopping = True
        _stop_workers(pool)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        for sig, old in handlers.items():
            signal.signal(sig, old)
    pool.shutdown(wait=True, cancel_futures=True)


def _run_ray(jobs: list[list[Task]], done: Done, *, workers: int, store: str | None, runs_dir: str | None, device: str,
             address: str | None = None, **_: Any) -> None:
    try:
        import ray
    except ImportError:
        raise ParameterError("parameter 'executor' is 'ray' but Ray is not installed: pip install 'probe_utils[ray]'"
                             ) from None
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:  # a local instance: one CPU per worker
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     object_store_memory=200 * 1024 ** 2)
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(run_job)
        refs = {remote.remote([t.to_json() for t in job], store, runs_dir, device): job for job in jobs}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    rec, err = ray.get(ref), None
                except Exception as e:  # the task's error, or its worker died
                    rec, err = None, e
                done(refs[ref], rec, err)
    except KeyboardInterrupt:  # on a cluster the tasks would go on: cancel them (checkpoints make them resume)
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


def _run_slurm(jobs: list[list[Task]], done: Done, *, workers: int, store: str | None, runs_dir: str | None,
               device: str, cluster: str = "auto", log_dir: str | None = None, timeout_min: int | None = None,
               slurm: dict | None = None, **_: Any) -> None:
    try:
        import submitit
    except ImportError:
        raise ParameterError("parameter 'executor' is 'slurm' but submitit is not installed: "
                             "pip install 'probe_utils[slurm]'") from None
    ex = submitit.AutoExecutor(folder=log_dir, cluster=None if cluster == "auto" else cluster)
    longest = max((sum(t.est_s for t in job) for job in jobs), default=60.0)
    params: dict[str, Any] = {"timeout_min": timeout_min or max(10, math.ceil(2 * longest / 60) + 5),
                              "name": "probe-sweep", "cpus_per_task": 1, "tasks_per_node": 1, "nodes": 1}
    if _device_kind(device) == "cuda":
        params["gpus_per_node"] = 1
    if ex.cluster == "slurm":
        params["slurm_array_parallelism"] = workers
        params.update({f"slurm_{k}": v for k, v in (slurm or {}).items()})
    ex.update_parameters(**params)
    print(f"[sweep] submitit executor: {ex.cluster} (logs under {log_dir})", file=sys.stderr, flush=True)
    queue = list(jobs)
    running: dict[Any, list[Task]] = {}
    if ex.cluster == "slurm":  # one job array; SLURM keeps at most `workers` running
        submitted = ex.map_array(run_job, [[t.to_json() for t in j] for j in queue], [store] * len(queue),
                                 [runs_dir] * len(queue), [device] * len(queue))
        running = dict(zip(submitted, queue))
        queue = []
    try:
        while queue or running:
            while queue and len(running) < workers:  # the local stand-in starts every job at once: keep `workers`
                j = queue.pop(0)
                running[ex.submit(run_job, [t.to_json() for t in j], store, runs_dir, device)] = j
            for job in [j for j in running if j.done()]:
                t = running.pop(job)
                try:
                    rec, err = job.result(), None
                except Exception as e:
                    rec, err = None, e
                done(t, rec, err)
            time.sleep(0.5)
    except KeyboardInterrupt:  # cancel the jobs still queued or running (checkpoints make them resume)
        for job in running:
            job.cancel(check=False)
        raise


RUNNERS = {"local": _run_local, "ray": _run_ray, "slurm": _run_slurm}


# ---------------------------------------------------------------------------------------------------------------
# the sweep


@dataclass
class SweepResult:
    made: list[Task] = field(default_factory=list)
    failed: list[tuple[Task, str]] = field(default_factory=list)
    interrupted: bool = False
    deferred: list[Task] = field(default_factory=list)  # not started: they would not have finished before --until


def execute(plan: SweepPlan, *, executor: str = "local", workers: int = 2, store: str | Path | None = None,
            runs_dir: str | Path | None = None, device: str = "auto", progress: bool = True,
            fleet: int | None = None, **options: Any) -> SweepResult:
    """Run the plan's runs with ``executor``; records land in ``store``. A record a worker could not write where
    this process reads (a cluster without a shared store) is written here. Failed runs are reported, not retried.
    ``fleet``: runs per fleet (:func:`fleet_size`, :func:`group_fleets`); each fleet is one task of the executor.
    ``until`` (local executor only; epoch seconds): start no task that would not finish by then (they are left to
    do, ``SweepResult.deferred``)."""
    from tqdm.auto import tqdm

    from probe_utils.store import Store

    check_choice("executor", executor, EXECUTORS)
    workers = check_int("workers", workers, 1, 4096)
    if options.get("until") is not None:
        check_until_executor(executor)
    st = Store(store)
    out = SweepResult()
    bar = tqdm(total=len(plan.todo), unit="run", desc="sweep", disable=not progress, dynamic_ncols=True,
               file=sys.stderr)

    jobs, _ = group_fleets(plan.todo, fleet_size(fleet, device))

    def done_job(job: list[Task], results: list[tuple[dict | None, str | None]] | None,
                 err: BaseException | None) -> None:
        if err is None and (results is None or len(results) != len(job)):
            err = RuntimeError(f"the task returned {0 if results is None else len(results)} result(s) for "
                               f"{len(job)} run(s)")
        for i, t in enumerate(job):
            if err is not None:
                done(t, None, err)
            else:
                rec, why = results[i]
                if why == DEFERRED:
                    out.deferred.append(t)
                    bar.update(1)
                    continue
                done(t, rec, None if why is None else RuntimeError(why))

    def done(t: Task, rec: dict | None, err: BaseException | None) -> None:
        if err is None and rec is not None:
            try:
                if rec.get("key") != t.key:
                    raise RuntimeError(f"the record made has key {rec.get('key')} where the plan expected {t.key}")
                if _stored(st, t) is None:
                    st.put(rec)
            except Exception as e:  # noqa: BLE001 - reported with the run, the sweep goes on
                err = e
        if err is None:
            out.made.append(t)
        else:
            out.failed.append((t, f"{type(err).__name__}: {err}"))
            bar.write(f"[sweep] FAILED {t.label()}: {type(err).__name__}: {err}", file=sys.stderr)
        bar.set_postfix_str(t.label()[:60])
        bar.update(1)

    root = str(st.root)
    try:
        if plan.todo:
            RUNNERS[executor](jobs, done_job, workers=workers, store=root,
                              runs_dir=None if runs_dir is None else str(runs_dir), device=device, **options)
    except KeyboardInterrupt:
        out.interrupted = True
    finally:
        bar.close()
    return out


def page_state(stem: str, store: Any = None) -> str:
    """What chapter ``stem``'s page shows from the stored records, as the book builds it
    (:func:`probe_utils.build.chapter_settings`): its preset, and the families and seeds when it shows only some."""
    from probe_utils.build import RUN_PLAN, chapter_settings

    if stem not in RUN_PLAN:
        return ""
    preset, overrides, pending = chapter_settings(stem, store)
    if preset == "ci":
        return "page: ci smoke tests"
    shown = [m for k, v in overrides.items() if k != "seeds" for m in ([v] if isinstance(v, str) else v)]
    parts = [f"page: {preset}"]
    if "seeds" in overrides:
        parts.append("seeds " + ",".join(map(str, overrides["seeds"])))
    if shown:
        parts.append("families " + ",".join(dict.fromkeys(shown)))
    if pending:
        parts.append("not yet " + ",".join(pending))
    return ", ".join(parts)


def status_lines(plan: SweepPlan, device: str = "auto", store: Any = None) -> list[str]:
    """done / to do / hours spent, per chapter and in all, and what each chapter's page shows now."""
    unit = "GPU-hours" if _device_kind(device) == "cuda" else "core-hours"
    lines = []
    for stem in plan.chapters:
        done = [t for t in plan.done if stem in (t.chapter, *t.also)]
        todo = [t for t in plan.todo if stem in (t.chapter, *t.also)]
        est = _hours(sum(t.est_s for t in todo))
        shared = Counter(t.chapter for t in todo if t.chapter != stem)
        under = "".join(f", {n} planned under {c}" for c, n in shared.items())
        page = page_state(stem, store)
        lines.append(f"{stem:<26} done {len(done):>4}  to do {len(todo):>4}  (estimate {est}{under})"
                     + (f"  {page}" if page else ""))
    lines.append(f"{'all':<26} done {len(plan.done):>4}  to do {len(plan.todo):>4}  spent "
                 f"{plan.done_train_s / 3600:.3f} {unit} (the records' training time: CPU time on the CPU, wall time "
                 f"on a GPU); to do about {plan.est_s / 3600:.3f} {unit}")
    if plan.todo:  # what a resumed sweep starts with: the plan's first runs of one chapter, experiment, model, size
        first = list(takewhile(lambda t: _group_key(t) == _group_key(plan.todo[0]), plan.todo))
        size, values, seeds = _group_parts(first)
        head = first[0]
        lines.append(f"next in the plan's order: {head.chapter} {head.experiment} {head.model} ({size}), values "
                     f"{values}, seed{'s' if ',' in seeds else ''} {seeds}: {len(first)} run(s), about "
                     f"{_hours(sum(t.est_s for t in first))}"
                     + (f" (needed by {', '.join(head.also)} too)" if head.also else ""))
    return lines


def _resume_command(args: Any, from_plan: str | None = None) -> str:
    import shlex

    parts = ["python", "-m", "probe_utils", "sweep"]
    for module in getattr(args, "imports", None) or []:  # the modules that register families of your own
        parts += ["--import", module]
    if from_plan:
        parts += ["--from-plan", from_plan]
    else:
        parts.append(args.chapter)
        if args.preset:
            parts += ["--preset", args.preset]
        for k, v in args.param or []:
            parts += ["-p", k, v]
    parts += ["--executor", args.executor, "--workers", str(args.workers)]
    if getattr(args, "fleet", None) is not None:
        parts += ["--fleet", str(args.fleet)]
    if args.store:
        parts += ["--store", args.store]
    return " ".join(shlex.quote(p) for p in parts)


def cmd_sweep(args: Any) -> int:
    """``python -m probe_utils sweep``: plan, print the plan and its cost, then run what is not stored."""
    from probe_utils.experiments import PRESETS
    from probe_utils.store import CorruptRecord, Store

    check_choice("executor", args.executor, EXECUTORS)
    workers = check_int("workers", args.workers, 1, 4096)
    if args.its_per_s is not None and not args.its_per_s > 0:
        raise ParameterError(f"parameter 'its_per_s' must be a number > 0; got {args.its_per_s!r}")
    if args.preset is not None:
        check_choice("preset", args.preset, PRESETS)
    bad = [kv for kv in (args.slurm or []) if "=" not in kv or not kv.split("=", 1)[0]]
    if bad:
        raise ParameterError(f"parameter 'slurm' must be KEY=VALUE, e.g. partition=gpu; got {bad[0]!r}")
    if args.timeout_min is not None:
        check_int("timeout_min", args.timeout_min, 1, 60 * 24 * 30)
    until = None if args.until is None else parse_until(args.until)
    if until is not None:
        check_until_executor(args.executor)
    fleet = fleet_size(args.fleet, args.device)
    store = Store(Path(args.store).resolve() if args.store else None)
    try:
        if args.from_plan:
            if args.chapter or args.param or args.preset:
                raise ParameterError("parameter 'from_plan' replaces the chapter, --preset and -p: give one or the "
                                     "other")
            plan = read_plan(args.from_plan, store, args.device, args.its_per_s)
        else:
            if not args.chapter:
                raise ParameterError(f"parameter 'chapter' is required (all or one of "
                                     f"{', '.join(chapter_names())}), or --from-plan FILE")
            overrides = {k: parse_value(v) for k, v in (args.param or [])}
            plan = book_order(plan_runs(resolve_chapters(args.chapter), preset=args.preset, overrides=overrides,
                                        store=store, device=args.device, its_per_s=args.its_per_s), store)
    except CorruptRecord as e:
        raise ParameterError(f"the store {store.root} holds a record that does not check out ({e}); move it away "
                             f"or delete it, then re-run") from None
    if args.status:
        print("\n".join(status_lines(plan, args.device, store)))
        return 0
    jobs, notes = group_fleets(plan.todo, fleet)
    print(format_plan(plan, workers, args.device), flush=True)
    if plan.todo:
        print("\n".join(format_jobs(jobs, notes, fleet)), flush=True)
    if args.write_plan:
        path = write_plan(args.write_plan, plan, _resume_command(args, from_plan=args.write_plan))
        print(f"[sweep] wrote the plan ({len(plan.todo)} run(s) to do) to {path}", flush=True)
    if args.dry_run or not plan.todo:
        return 0
    runs_dir = Path(args.runs_dir).resolve() if args.runs_dir else store.runs_dir
    options: dict[str, Any] = {}
    if args.executor == "ray":
        options["address"] = args.address
    if args.executor == "slurm":
        options.update(cluster=args.cluster, log_dir=str(runs_dir / "submitit"), timeout_min=args.timeout_min,
                       slurm=dict(kv.split("=", 1) for kv in (args.slurm or [])))
    if until is not None:
        options["until"] = until
    res = execute(plan, executor=args.executor, workers=workers, store=store.root, runs_dir=runs_dir,
                  device=args.device, progress=not args.quiet, fleet=fleet, **options)
    left = len(plan.todo) - len(res.made)
    print(f"[sweep] made {len(res.made)} run(s), {len(res.failed)} failed"
          + (", interrupted" if res.interrupted else "")
          + (f", {len(res.deferred)} not started (they would not finish before --until "
             f"{datetime.fromtimestamp(until).astimezone():%H:%M})" if res.deferred else "")
          + f"; {left} still to do", flush=True)
    for t, err in res.failed[:10]:
        print(f"[sweep]   failed: {t.label()}: {err}", file=sys.stderr)
    if left:
        print(f"[sweep] resume with: {_resume_command(args, args.from_plan)} (stored runs are skipped, interrupted "
              f"ones resume from their checkpoints under {runs_dir})", flush=True)
    return 130 if res.interrupted else (1 if res.failed or left > len(res.deferred) else 0)


def add_parser(sub: Any) -> None:
    """The ``sweep`` subcommand of ``python -m probe_utils``."""
    sw = sub.add_parser("sweep", help="plan and run every run a chapter needs (local processes, Ray or SLURM)",
                        description="Plan every run that a chapter (or all) makes with its parameters, skip stored "
                                    "ones, print the plan with its cost, then run the rest. Re-run to resume.")
    sw.add_argument("chapter", nargs="?", help="all, or a chapter: 01_numerosity, 01 or numerosity")
    sw.add_argument("--preset", default=None, help="ci | cpu | colab | gpu20k | paper (default: the chapter's own)")
    sw.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                    help="a chapter parameter, as papermill takes it, e.g. -p seeds 3 -p counts '[1, 3]'")
    sw.add_argument("--executor", default="local", help="local (worker processes) | ray | slurm (submitit)")
    sw.add_argument("--workers", type=int, default=2, help="runs (or fleets) at once (default 2)")
    sw.add_argument("--fleet", type=int, default=None, metavar="K",
                    help=f"train runs of the same chapter, experiment, model family, preset and size as fleets of up "
                         f"to K in one task (default: {CUDA_FLEET} on a CUDA device, else 1: one model per process)")
    sw.add_argument("--dry-run", action="store_true", help="print the plan and its cost; run nothing")
    sw.add_argument("--status", action="store_true", help="print done / to do / hours spent; run nothing")
    sw.add_argument("--write-plan", default=None, metavar="FILE", help="write the runs still to do to FILE (JSON)")
    sw.add_argument("--from-plan", default=None, metavar="FILE", help="run the runs of a plan written by --write-plan")
    sw.add_argument("--store", default=None, help="results folder (default: the checkout's book/results)")
    sw.add_argument("--runs-dir", default=None, help="checkpoints folder (default: runs/ beside book/, else "
                                                       "<store>-runs)")
    sw.add_argument("--device", default="auto", help="auto | cpu | cuda | mps, in each worker")
    sw.add_argument("--its-per-s", type=float, default=None, help="training iterations per second for the estimate")
    sw.add_argument("--address", default=None, help="ray: the address of an existing cluster (default: a local one)")
    sw.add_argument("--cluster", default="auto", choices=("auto", "slurm", "local", "debug"),
                    help="slurm: submitit's cluster (auto: SLURM where sbatch exists, else local processes)")
    sw.add_argument("--timeout-min", type=int, default=None, help="slurm: a job's time limit in minutes "
                                                                   "(default: twice the longest estimate)")
    sw.add_argument("--slurm", action="append", metavar="KEY=VALUE",
                    help="slurm: a submitit SLURM parameter, e.g. --slurm partition=gpu --slurm account=lab")
    sw.add_argument("--until", default=None, metavar="TIME",
                    help="start no run that would not finish by TIME (HH:MM today, an ISO date and time, or a "
                         "duration such as 90m or 2h): the sweep ends by then, leaving the rest to do (local executor)")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=cmd_sweep)
