"""The sweep (planning from the chapters' parameters, executors, resumption), the per-run lock and ``--fresh``."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probe_utils import experiments, sweep
from probe_utils.build import CHAPTERS, RUN_PLAN
from probe_utils.cli import main
from probe_utils.params import ParameterError
from probe_utils.store import Store

REPO = Path(__file__).resolve().parent.parent
#: a tiny chapter-01 plan: two runs of the fastest family at the ci preset
TINY = ["-p", "models", '["vae"]', "-p", "counts", "[1, 2]", "-p", "seeds", "1"]


def _records(root: Path) -> dict[str, tuple[float, str]]:
    """record file -> (mtime, sha256) of every record under ``root``."""
    return {str(p): (p.stat().st_mtime, json.loads(p.read_text())["sha256"]) for p in sorted(root.rglob("seed*.json"))}


# ---------------------------------------------------------------------------------------------------------------
# the run-plan table and planning (no training)


@pytest.mark.parametrize("stem", list(RUN_PLAN))
def test_run_plan_matches_the_chapter(stem):
    """The table names the chapter's experiments and only parameters its parameters cell has; the chapter's source
    calls run for exactly these experiments."""
    params = sweep.chapter_parameters(stem)
    assert {e["experiment"] for e in RUN_PLAN[stem]} == set(CHAPTERS[stem])
    for entry in RUN_PLAN[stem]:
        for name in (entry["values"], entry.get("models", "models"), entry.get("seeds", "seeds"),
                     *entry.get("scale", ())):
            assert name in params, f"{stem}: {name!r} is not a parameter of the chapter"
    src = (REPO / "notebooks" / f"{stem}.py").read_text()
    called = set(re.findall(r'experiments\.run\("(\w+)"', src))
    assert called <= set(CHAPTERS[stem]) and (called or "experiments.run(name" in src)


def test_chapters_without_runs_are_not_in_the_plan():
    assert set(RUN_PLAN) == {stem for stem, names in CHAPTERS.items() if names}


def test_plan_from_chapter_defaults(tmp_store):
    params = sweep.chapter_parameters("01_numerosity")
    plan = sweep.plan_runs(["01_numerosity"], preset="ci", store=tmp_store)
    n_seeds = params["seeds"] if isinstance(params["seeds"], int) else len(params["seeds"])
    assert len(plan.todo) == len(params["models"]) * len(params["counts"]) * n_seeds and not plan.done
    assert {t.value for t in plan.todo} == set(params["counts"]) and {t.preset for t in plan.todo} == {"ci"}
    assert all(t.est_s > 0 and t.est_source for t in plan.todo)


def test_a_preset_that_cannot_fit_an_experiment_runs_its_seed_0_only(tmp_store):
    """SEED_0_ONLY: at `cpu` the CLEVR pair grids plan and run seed 0 only (seeds asked for beyond it are dropped, a
    list without it is refused by name); CLEVR numerosity keeps every seed, and other presets are untouched."""
    from probe_utils import findings

    assert ("clevr_pairs_4x4", "cpu") in experiments.SEED_0_ONLY
    plan = sweep.plan_runs(["06_clevr"], preset="cpu", store=tmp_store)
    seeds = {}
    for t in plan.todo:
        seeds.setdefault(t.experiment, set()).add(t.seed)
    assert seeds["clevr_pairs_4x4"] == seeds["clevr_pairs_9x9"] == {0}
    assert seeds["clevr_numerosity"] == {0, 1, 2}
    ci = sweep.plan_runs(["06_clevr"], preset="ci", store=tmp_store)
    assert {t.seed for t in ci.todo if t.experiment == "clevr_pairs_4x4"} == set(range(len({t.seed for t in ci.todo})))
    assert experiments.check_parameters("clevr_pairs_9x9", models="vae", values="shape", seeds=3, preset="cpu",
                                        device="cpu").seeds == [0]
    with pytest.raises(ParameterError, match=r"parameter 'seeds': 'clevr_pairs_4x4' runs seed 0 only at the 'cpu'"):
        experiments.check_parameters("clevr_pairs_4x4", models="vae", values="shape", seeds=[1, 2], preset="cpu")
    banner = findings.preset_settings("cpu", ["clevr_numerosity", "clevr_pairs_4x4"])
    assert "seed 0 only for `clevr_pairs_4x4`" in banner and "`clevr_numerosity`:" not in banner
    assert "seed 0 only" not in findings.preset_settings("cpu", ["clevr_numerosity"])


def test_book_order_runs_the_steps_that_add_to_a_page_first(monkeypatch):
    """A chapter shown with all its seeds gains a family only with that family's every seed (one step); a chapter not
    shown yet gains its seed 0 first, then each further seed. Steps go by the seed they add, then cheapest first."""
    from probe_utils import build

    shown = {"01_numerosity": ("cpu", {"models": ["wgan_gp"]}, ["pixelcnn"]), "04_independence": ("ci", {}, [])}
    monkeypatch.setattr(build, "chapter_settings", lambda stem, store=None: shown[stem])

    def task(chapter, model, seed, est):
        return sweep.Task("numerosity" if chapter.startswith("01") else "indep_red", model, 1, seed, "cpu",
                          key=f"{chapter}-{model}-{seed}", chapter=chapter, est_s=est)

    todo = [task("01_numerosity", "pixelcnn", s, 900.0) for s in (0, 1, 2)]
    todo += [task("04_independence", "vae", s, 100.0) for s in (0, 1, 2)]
    plan = sweep.SweepPlan(["01_numerosity", "04_independence"], "cpu", todo=todo)
    order = [t.key for t in sweep.book_order(plan).todo]
    assert order == ["04_independence-vae-0", "01_numerosity-pixelcnn-0", "01_numerosity-pixelcnn-1",
                     "01_numerosity-pixelcnn-2", "04_independence-vae-1", "04_independence-vae-2"]
    # a chapter shown with its first seed only: its seed 1 comes before anyone's seed 2
    shown["01_numerosity"] = ("cpu", {"seeds": [0]}, [])
    order = [t.key for t in sweep.book_order(plan).todo]
    assert order.index("01_numerosity-pixelcnn-1") < order.index("04_independence-vae-2")
    assert order.index("04_independence-vae-0") < order.index("01_numerosity-pixelcnn-1")


def test_a_shared_run_goes_with_the_page_it_completes_soonest(monkeypatch, tmp_path):
    """Chapter 03's single-mode red runs are planned under chapter 02: with chapter 03 shown at seeds 0-1 and 02 at
    seed 0, 03's seed 2 (its mixtures and the shared red runs: the cheaper step) comes before 02's seed 1; the
    status counts the shared runs under 03 too, saying where they are planned."""
    from probe_utils import build

    shown = {"02_color_size_location": ("cpu", {"seeds": [0]}, []),
             "03_convolution_prototype": ("cpu", {"seeds": [0, 1]}, [])}
    monkeypatch.setattr(build, "chapter_settings", lambda stem, store=None: shown[stem])

    def task(experiment, seed, est, chapter="02_color_size_location", also=()):
        return sweep.Task(experiment, "vae", 0.3, seed, "cpu", key=f"{experiment}-{seed}", chapter=chapter,
                          also=also, est_s=est)

    todo = [task("pie_size", 1, 900.0), task("pie_location", 1, 900.0),
            task("pie_red", 2, 300.0, also=("03_convolution_prototype",)),
            task("pie_red_mix", 2, 300.0, chapter="03_convolution_prototype")]
    plan = sweep.SweepPlan(["02_color_size_location", "03_convolution_prototype"], "cpu", todo=todo)
    order = [t.key for t in sweep.book_order(plan).todo]
    assert order == ["pie_red-2", "pie_red_mix-2", "pie_size-1", "pie_location-1"]
    # planned once from the chapters, with the other chapters that need it; read back from a plan file the same
    real = sweep.plan_runs(["02_color_size_location", "03_convolution_prototype"], preset="ci", store=tmp_path)
    shared = [t for t in real.todo if t.also]
    assert shared and all(t.chapter == "02_color_size_location" and t.also == ("03_convolution_prototype",)
                          and t.experiment == "pie_red" for t in shared)
    sweep.write_plan(tmp_path / "plan.json", real, "x")
    assert sweep.read_plan(tmp_path / "plan.json", store=tmp_path).todo == real.todo
    lines = sweep.status_lines(plan)
    line = next(x for x in lines if x.startswith("03_convolution_prototype"))
    assert "to do    2" in line and "1 planned under 02_color_size_location" in line
    nxt = sweep.status_lines(sweep.book_order(plan))[-1]
    assert nxt.startswith("next in the plan's order: 02_color_size_location pie_red vae")
    assert nxt.endswith("(needed by 03_convolution_prototype too)")


def test_page_state_says_what_a_chapter_page_shows(monkeypatch):
    from probe_utils import build

    shown = {"02_color_size_location": ("cpu", {"seeds": [0], "models": ["vae"]}, ["wgan_gp"]),
             "01_numerosity": ("cpu", {}, [])}
    monkeypatch.setattr(build, "chapter_settings", lambda stem, store=None: shown[stem])
    assert sweep.page_state("02_color_size_location") == "page: cpu, seeds 0, families vae, not yet wgan_gp"
    assert sweep.page_state("01_numerosity") == "page: cpu"
    assert sweep.page_state("92_recipe_search") == ""


def test_book_order_runs_a_seed_by_family_required_families_first(monkeypatch):
    """Within a chapter's seed step, each family's runs go together, the families a page requires first (cheapest
    first), the optional ones (chapter 02's other_models) last, so that the page can show a family soonest."""
    from probe_utils import build

    monkeypatch.setattr(build, "chapter_settings", lambda stem, store=None: ("ci", {}, []))

    def task(experiment, model, value, est):
        return sweep.Task(experiment, model, value, 0, "cpu", key=f"{experiment}-{model}-{value}",
                          chapter="02_color_size_location", est_s=est)

    todo = [task("pie_red", "wgan_gp", 0.1, 900.0), task("pie_red", "vae", 0.1, 200.0),
            task("pie_red", "pixelcnn", 0.1, 100.0), task("pie_size", "wgan_gp", 0.5, 900.0),
            task("pie_size", "vae", 0.5, 200.0), task("pie_location", "vae", 0.0, 200.0)]
    plan = sweep.SweepPlan(["02_color_size_location"], "cpu", todo=todo)
    order = [t.key for t in sweep.book_order(plan).todo]
    assert order == ["pie_red-vae-0.1", "pie_size-vae-0.5", "pie_location-vae-0.0", "pie_red-wgan_gp-0.1",
                     "pie_size-wgan_gp-0.5", "pie_red-pixelcnn-0.1"]


def test_plan_shares_runs_between_chapters(tmp_store):
    """Chapter 03's single-mode runs are chapter 02's red runs when their values match: planned once."""
    both = sweep.plan_runs(["02_color_size_location", "03_convolution_prototype"], preset="ci", store=tmp_store)
    keys = [t.key for t in both.todo]
    assert len(keys) == len(set(keys))
    alone = sweep.plan_runs(["03_convolution_prototype"], preset="ci", store=tmp_store)
    modes = {m for v in sweep.chapter_parameters("03_convolution_prototype")["mixtures"] for m in v}
    assert {t.value for t in alone.todo if t.experiment == "pie_red"} == modes
    assert len(both.todo) < len(alone.todo) + len(sweep.plan_runs(["02"], preset="ci", store=tmp_store).todo)


def test_an_empty_other_models_parameter_makes_no_runs(tmp_store):
    """other_models (families beyond the paper's four) is optional: [] plans and checks without them."""
    from probe_utils.params import check_chapter

    for stem in ("02_color_size_location", "05_combinations"):
        params = sweep.chapter_parameters(stem)
        assert params["other_models"], "the defaults name families beyond the paper's four"
        full = sweep.plan_runs([stem], preset="ci", store=tmp_store)
        bare = sweep.plan_runs([stem], preset="ci", store=tmp_store, overrides={"other_models": []})
        other = {t.key for t in full.todo if t.model in params["other_models"]}
        assert other and {t.key for t in bare.todo} == {t.key for t in full.todo} - other
        check_chapter(stem, {**params, "preset": "ci", "other_models": []})
        with pytest.raises(ParameterError, match="other_models"):
            check_chapter(stem, {**params, "preset": "ci", "other_models": ["gan"]})
        # papermill's `-p other_models "[]"` passes the text '[]': it names nothing too (the chapter skips the runs)
        text = sweep.plan_runs([stem], preset="ci", store=tmp_store, overrides={"other_models": "[]"})
        assert {t.key for t in text.todo} == {t.key for t in bare.todo}
        source = (sweep.NOTEBOOKS / f"{stem}.py").read_text()
        assert "params.names_any(other_models)" in source and "if other_models" not in source
    from probe_utils.params import names_any
    assert not any(map(names_any, ["[]", " ", "()", [], None, "None"])) and names_any("['pixelcnn']")


def test_plan_scaled_runs_of_chapter_05(tmp_store):
    plan = sweep.plan_runs(["05_combinations"], preset="ci", store=tmp_store,
                           overrides={"width_factors": [0.5], "data_factors": [2]})
    pre = experiments.PRESETS["ci"]
    assert {t.width for t in plan.todo} == {None, pre.width // 2}
    assert {t.pool_size for t in plan.todo} == {None, 2 * pre.pool_size}


@pytest.mark.parametrize("chapter,overrides,preset,match", [
    ("07", {}, "ci", "'chapter'"),
    ("01", {"countz": [3]}, "ci", "'countz'"),
    ("01", {"counts": [0]}, "ci", "'counts'"),
    ("03", {"mixtures": [[0.3]]}, "ci", "'mixtures"),
    ("01", {}, "huge", "'preset'"),
    ("01", {"models": ["gpt"]}, "ci", "'models'"),
])
def test_plan_errors_name_the_parameter(tmp_store, chapter, overrides, preset, match):
    with pytest.raises(ParameterError, match=match):
        sweep.plan_runs(sweep.resolve_chapters(chapter), preset=preset, overrides=overrides, store=tmp_store)


def test_resolve_chapters():
    assert sweep.resolve_chapters("all") == list(RUN_PLAN)
    assert sweep.resolve_chapters("01") == sweep.resolve_chapters("numerosity") == ["01_numerosity"]
    assert sweep.resolve_chapters("01_numerosity") == ["01_numerosity"]


def test_estimate_sources(tmp_store, monkeypatch):
    """Budget first, then a given rate, then measured records, then the stated rate."""
    t = sweep.Task("numerosity", "vae", 1, 0, "ci")
    steps = experiments.PRESETS["ci"].steps
    est, src = sweep.estimate(t, {}, device="cpu")
    assert est == pytest.approx(steps / sweep.ASSUMED_ITERS_PER_S["cpu"]) and "stated" in src
    est, src = sweep.estimate(t, {("ci", "vae"): [0.5, 0.7, 0.1]}, device="cpu")
    assert est == pytest.approx(steps * 0.5) and "measured" in src
    assert sweep.estimate(t, {}, device="cpu", its_per_s=10)[0] == pytest.approx(steps / 10)
    monkeypatch.setitem(experiments.PRESETS, "ci", dataclasses.replace(experiments.PRESETS["ci"], max_minutes=2.0))
    est, src = sweep.estimate(t, {("ci", "vae"): [0.5]}, device="cpu")
    assert est == 120.0 and "budget" in src
    # a budgeted preset: runs like it that stopped early (converged) say what a run costs, once there are enough
    pre = experiments.PRESETS["ci"]
    like = ("numerosity", "vae", pre.width, pre.pool_size)
    est, src = sweep.estimate(t, {}, device="cpu", spent={like: [30.0, 60.0, 90.0]})
    assert est == 60.0 and "median" in src
    assert sweep.estimate(t, {}, device="cpu", spent={like: [30.0, 60.0]})[0] == 120.0  # too few
    assert sweep.estimate(t, {}, device="cpu", spent={like: [130.0, 150.0, 190.0]})[0] == 120.0  # never above it
    wider = dataclasses.replace(t, width=pre.width * 2)  # another size is another setting
    assert sweep.estimate(wider, {}, device="cpu", spent={like: [30.0, 60.0, 90.0]})[0] == 120.0


def test_budgeted_estimates_read_the_stored_runs_cost(tmp_path, monkeypatch):
    from test_findings_rules import counts, rec

    monkeypatch.setitem(experiments.PRESETS, "cpu", dataclasses.replace(experiments.PRESETS["cpu"], max_minutes=2.0))
    pre = experiments.PRESETS["cpu"]
    recs = []
    for v in (1, 3, 5):
        r = rec("numerosity", v, counts({v: 1.0}), model="vae")
        r["params"].update(width=pre.width, pool_size=pre.pool_size)
        r["provenance"].update(device="cpu (x86_64, 1 threads)", train_cpu_s=30.0 * v, train_wall_s=40.0 * v)
        recs.append(r)

    class Records:
        root = tmp_path

        def records(self, preset=None, **_):
            return iter([r for r in recs if preset in (None, r["preset"])])

    spent = sweep._spent_like(Records(), "cpu")
    est, _ = sweep.estimate(sweep.Task("numerosity", "vae", 8, 0, "cpu"), {}, device="cpu", spent=spent)
    assert est == 90.0  # the median CPU time of the three, not their wall time, not the budget
    assert sweep.estimate(sweep.Task("numerosity", "wgan_gp", 8, 0, "cpu"), {}, spent=spent)[0] == 120.0


def test_cli_dry_run_writes_a_plan_and_trains_nothing(tmp_path, capsys):
    store = tmp_path / "s"
    plan_file = tmp_path / "run_plan.json"
    rc = main(["sweep", "01", "--preset", "ci", *TINY, "--store", str(store), "--dry-run",
               "--write-plan", str(plan_file)])
    out = capsys.readouterr().out
    assert rc == 0 and "2 run(s) to do, 0 stored" in out and "estimate:" in out
    data = json.loads(plan_file.read_text())
    assert len(data["todo"]) == 2 and "--from-plan" in data["command"] and data["preset"] == "ci"
    assert all(t["est_s"] > 0 for t in data["todo"])
    assert not store.exists() or not list(store.rglob("*.json"))
    assert main(["sweep", "--from-plan", str(plan_file), "--store", str(store), "--status"]) == 0
    status = capsys.readouterr().out
    assert "to do    2" in status and "page: ci smoke tests" in status  # nothing stored: the page shows ci
    nxt = status.strip().splitlines()[-1]  # what a resumed sweep starts with
    assert nxt.startswith("next in the plan's order: 01_numerosity numerosity ") and "2 run(s)" in nxt, nxt


@pytest.mark.parametrize("argv,match", [
    (["sweep", "01", "--executor", "dask"], "'executor'"),
    (["sweep", "01", "--workers", "0"], "'workers'"),
    (["sweep"], "'chapter'"),
    (["sweep", "01", "-p", "countz", "3"], "'countz'"),
    (["sweep", "01", "--executor", "slurm", "--slurm", "partition"], "'slurm'"),
    (["sweep", "01", "--timeout-min", "0"], "'timeout_min'"),
    (["sweep", "01", "--its-per-s", "-1"], "'its_per_s'"),
    (["sweep", "01", "--preset", "huge"], "'preset'"),
    (["sweep", "--from-plan", "/nonexistent/plan.json"], "'from_plan'"),
    (["sweep", "01", "--until", "25:99"], "'until'"),
    (["sweep", "01", "--until", "tomorrow"], "'until'"),
    (["sweep", "01", "--until", "2h", "--executor", "ray"], "'until'"),
])
def test_cli_sweep_bad_input(argv, match, capsys):
    assert main(argv + ["--dry-run"]) == 2
    assert re.search(match, capsys.readouterr().err)


def test_parse_until_takes_a_time_of_day_a_date_or_a_duration():
    from datetime import datetime, timedelta

    now = datetime(2026, 12, 3, 12, 0).astimezone()
    assert sweep.parse_until("90m", now) == now.timestamp() + 5400
    assert sweep.parse_until("1h30m", now) == sweep.parse_until("90min", now)
    assert sweep.parse_until("14:25", now) == (now + timedelta(hours=2, minutes=25)).timestamp()
    assert sweep.parse_until("2026-12-04T01:00", now) == datetime(2026, 12, 4, 1, 0).astimezone().timestamp()
    for past in ("11:59", "2026-12-02T12:00"):
        with pytest.raises(ParameterError, match="'until' must be ahead of now"):
            sweep.parse_until(past, now)


def test_until_starts_only_tasks_that_finish_in_time(monkeypatch):
    """A task that would not finish before --until is left to do (deferred), not failed; one that fits runs."""
    ran = []
    monkeypatch.setattr(sweep, "run_job", lambda tasks, *a: ran.append(tasks) or [({"key": "k"}, None)])
    soon = time.time() + 600
    assert sweep.run_job_until(soon, 700.0, [{"key": "a"}], None, None) == [(None, sweep.DEFERRED)] and not ran
    assert sweep.run_job_until(soon, 100.0, [{"key": "a"}], None, None) == [({"key": "k"}, None)] and ran
    job = [sweep.Task("numerosity", "wgan_gp", 1, 0, "cpu", est_s=900.0)]
    assert sweep.need_s(job) == pytest.approx(sweep.UNTIL_MARGIN * 900 + sweep.UNTIL_SLACK_S)


def test_cli_until_leaves_what_would_not_finish_to_do(tmp_path, capsys):
    """With --until nearer than a run needs, the sweep starts nothing, says so, stores nothing, exits 0 (it did what
    was asked), and the runs stay to do."""
    store = tmp_path / "s"
    rc = main(["sweep", "01", "--preset", "ci", *TINY, "--store", str(store), "--quiet", "--until", "1m"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "made 0 run(s), 0 failed, 2 not started (they would not finish before --until" in out
    assert "2 still to do" in out and not list(store.rglob("seed*.json"))


# ---------------------------------------------------------------------------------------------------------------
# --fresh and the per-run lock (issue 13, items 3 and 4)


def test_fresh_retrains_from_scratch(tmp_path):
    kw = dict(models="vae", values=[2], seeds=[0], preset="ci", device="cpu", store=tmp_path / "s",
              runs_dir=tmp_path / "r", progress=False)
    (first,) = experiments.run("numerosity", **kw)
    assert (tmp_path / "r" / f"{first['key']}.pt").exists()  # the final checkpoint stays
    (fresh,) = experiments.run("numerosity", **kw, reuse=False)
    assert fresh["provenance"]["resumed_from"] is None  # the old behaviour reloaded it: resumed_from == steps
    assert fresh["provenance"]["steps"] == experiments.PRESETS["ci"].steps
    assert fresh["provenance"]["created"] >= first["provenance"]["created"]
    assert not list((tmp_path / "r").glob("*.lock")) and not list((tmp_path / "r").glob("*.tmp"))


@pytest.mark.slow
def test_cli_run_fresh(tmp_path, capsys):
    args = ["run", "numerosity", "--models", "vae", "--values", "3", "--seeds", "[0]", "--preset", "ci",
            "--device", "cpu", "--store", str(tmp_path / "s"), "--quiet"]
    assert main(args) == 0
    assert main(args + ["--fresh"]) == 0
    (rec,) = Store(tmp_path / "s").records()
    assert rec["provenance"]["resumed_from"] is None


def test_lock_of_a_dead_holder_is_taken(tmp_path):
    """A lock file left by a process that died (its flock went with it) does not block."""
    lock = tmp_path / "abc.lock"
    lock.write_text("pid 999999 on elsewhere\n")
    t0 = time.time()
    with experiments.run_lock(lock):
        assert f"pid {os.getpid()}" in lock.read_text()
    assert time.time() - t0 < 5 and not lock.exists()


def _same_run(store: str, runs: str, log: str, go) -> None:
    """Child of the two-process test: count every training this process starts, then make the run."""
    import torch

    from probe_utils import experiments as ex

    torch.set_num_threads(1)
    real = ex.run_one

    def counted(*a, **k):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return real(*a, **k)

    ex.run_one = counted
    go.wait()
    (rec,) = ex.run("numerosity", models="vae", values=[4], seeds=[0], preset="ci", device="cpu", store=store,
                    runs_dir=runs, progress=False)
    with open(log + ".keys", "a") as f:
        f.write(f"{rec['sha256']}\n")


@pytest.mark.slow
def test_two_processes_make_one_run(tmp_path):
    """Two identical runs at once: one trains, the other waits for it and returns the same record."""
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    log = str(tmp_path / "trainings")
    procs = [ctx.Process(target=_same_run, args=(str(tmp_path / "s"), str(tmp_path / "r"), log, go))
             for _ in range(2)]
    for p in procs:
        p.start()
    time.sleep(0.5)
    go.set()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(Path(log).read_text().split()) == 1  # trained once
    shas = Path(log + ".keys").read_text().split()
    assert len(shas) == 2 and shas[0] == shas[1]
    assert len(list((tmp_path / "s").rglob("seed*.json"))) == 1
    assert not list((tmp_path / "r").glob("*.lock")) and not list((tmp_path / "r").glob("*.tmp"))


# ---------------------------------------------------------------------------------------------------------------
# executors: local processes, interrupt and resume, Ray, submitit


def _sweep_cmd(store: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "probe_utils", "sweep", "01", "--preset", "ci", "--store", str(store), "--quiet",
            *extra]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.mark.slow
def test_sweep_local_ci_then_nothing_to_do(tmp_path, capsys):
    store = tmp_path / "s"
    res = subprocess.run(_sweep_cmd(store, *TINY, "--workers", "2"), capture_output=True, text=True, env=_env(),
                         cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "2 run(s) to do, 0 stored" in res.stdout and "made 2 run(s), 0 failed" in res.stdout
    recs = list(Store(store).records())
    assert sorted(r["value"] for r in recs) == [1, 2] and {r["preset"] for r in recs} == {"ci"}
    assert all(r["provenance"]["device"].endswith("1 threads)") for r in recs)  # one-thread workers
    before = _records(store)
    base = ["sweep", "01", "--preset", "ci", "--store", str(store), "--quiet", *TINY]
    assert main(base + ["--status"]) == 0
    assert re.search(r"done\s+2\s+to do\s+0", capsys.readouterr().out)
    assert main(base) == 0
    assert "0 run(s) to do, 2 stored" in capsys.readouterr().out
    assert _records(store) == before


@pytest.mark.slow
def test_sweep_resumes_after_a_worker_is_killed(tmp_path, capsys):
    """Kill a worker in the middle of a plan: the sweep stops and says how to resume; the same command then makes
    the rest, and nothing stored before is made again."""
    store, runs = tmp_path / "s", tmp_path / "s-runs"
    args = ["-p", "models", '["wgan_gp"]', "-p", "counts", "[1, 2, 3]", "-p", "seeds", "1", "--workers", "2"]
    proc = subprocess.Popen(_sweep_cmd(store, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), cwd=REPO)
    killed = None
    deadline = time.time() + 400
    while killed is None and time.time() < deadline and proc.poll() is None:
        if list(store.rglob("seed*.json")):  # one run stored: kill a worker that holds a run's lock
            for lock in runs.glob("*.lock"):
                m = re.match(r"pid (\d+)", lock.read_text() if lock.exists() else "")
                if m and not list(store.rglob(f"seed*-{lock.stem[:8]}.json")):  # a run still training
                    os.kill(int(m[1]), signal.SIGKILL)
                    killed = lock.stem
                    break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=300)
    assert killed, f"no worker was caught holding a run: {out}\n{err[-2000:]}"
    assert proc.returncode == 1, err[-2000:]
    assert "resume with:" in out
    before = _records(store)
    # the killed run is not stored, unless it stored its record in the instant between the check and the kill
    assert 1 <= len(before) < 3 and (killed[:8] not in {Path(p).stem.split("-")[1] for p in before} or len(before) == 2)
    assert main(["sweep", "01", "--preset", "ci", "--store", str(store), "--quiet", *args]) == 0
    assert f"{3 - len(before)} run(s) to do, {len(before)} stored" in capsys.readouterr().out
    after = _records(store)
    assert len(after) == 3 and all(after[p] == before[p] for p in before)  # nothing stored was made again
    assert not list(runs.glob("*.lock")) and not list(runs.glob("*.tmp"))


def _workers_holding_runs(proc: subprocess.Popen, runs: Path, want: int, timeout_s: float = 300) -> set[int]:
    """The pids of the sweep's workers seen holding a run's lock (up to ``want`` of them, or fewer if the sweep ends
    or ``timeout_s`` passes first)."""
    workers: set[int] = set()
    deadline = time.time() + timeout_s
    while len(workers) < want and time.time() < deadline and proc.poll() is None:
        for lock in runs.glob("*.lock") if runs.exists() else []:
            m = re.match(r"pid (\d+)", lock.read_text() if lock.exists() else "")
            if m:
                workers.add(int(m[1]))
        time.sleep(0.05)
    return workers


@pytest.mark.slow
def test_workers_of_a_killed_sweep_exit(tmp_path):
    """kill -9 of the sweep alone (not its workers): no worker trains on as an orphan; the run's lock is freed."""
    store, runs = tmp_path / "s", tmp_path / "s-runs"
    args = ["-p", "models", '["wgan_gp"]', "-p", "counts", "[1, 2, 3]", "-p", "seeds", "1", "--workers", "2"]
    proc = subprocess.Popen(_sweep_cmd(store, *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=_env(), cwd=REPO)
    workers = _workers_holding_runs(proc, runs, want=1)
    assert workers, "no worker was caught holding a run"
    proc.kill()
    proc.wait(timeout=30)
    gone = time.time() + 30
    while time.time() < gone and any(_alive(pid) for pid in workers):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers), "a worker outlived its sweep"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_sweep_stops_it_as_an_interrupt(tmp_path, sig):
    """Ctrl-C or SIGTERM to the sweep alone while its workers train: it stops within seconds, says "interrupted",
    reports no run as failed, and leaves no worker training; the runs stay to do."""
    store, runs = tmp_path / "s", tmp_path / "s-runs"
    args = ["-p", "models", '["wgan_gp"]', "-p", "counts", "[1, 2, 3]", "-p", "seeds", "1", "--workers", "2"]
    proc = subprocess.Popen(_sweep_cmd(store, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), cwd=REPO)
    workers = _workers_holding_runs(proc, runs, want=2)
    assert workers, "no worker was caught holding a run"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in out and "FAILED" not in err and "failed:" not in err, (out, err[-2000:])
    assert re.search(r"made \d run\(s\), 0 failed, interrupted", out)
    assert not any(_alive(pid) for pid in workers), "a worker trained on after the sweep stopped"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (exited, not yet reaped) is gone
        return f.read().split(") ")[-1][:1] != "Z"


@pytest.mark.slow
def test_sweep_with_ray(tmp_path):
    pytest.importorskip("ray")
    store = tmp_path / "s"
    res = subprocess.run(_sweep_cmd(store, *TINY, "--executor", "ray", "--workers", "2"), capture_output=True,
                         text=True, env=_env(), cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "made 2 run(s), 0 failed" in res.stdout
    assert sorted(r["value"] for r in Store(store).records()) == [1, 2]


@pytest.mark.slow
def test_sweep_with_submitit_local(tmp_path):
    pytest.importorskip("submitit")
    store = tmp_path / "s"
    res = subprocess.run(_sweep_cmd(store, *TINY, "--executor", "slurm", "--cluster", "local", "--workers", "2"),
                         capture_output=True, text=True, env=_env(), cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "made 2 run(s), 0 failed" in res.stdout
    assert sorted(r["value"] for r in Store(store).records()) == [1, 2]


def test_chapter_preset_needs_every_run_of_the_chapter(monkeypatch, tmp_path):
    """A preset with only some of a chapter's runs stored would make the book train (or fail): not chosen."""
    from probe_utils import build, sweep
    from probe_utils.sweep import SweepPlan

    stored = {"cpu": (["a", "b"], []), "colab": (["a"], ["b"])}

    def fake(chapters, *, preset=None, store=None, **kw):
        done, todo = stored.get(preset, ([], ["x"]))
        return SweepPlan(list(chapters), preset, todo=list(todo), done=list(done))

    monkeypatch.setattr(sweep, "plan_runs", fake)
    assert build.chapter_preset("01_numerosity") == "cpu"          # complete at cpu, partial at colab
    stored["cpu"] = (["a"], ["b"])
    assert build.chapter_preset("01_numerosity") == "ci"           # partial everywhere: the smoke test
    assert build.chapter_preset("90_scorecard") == "auto"


def test_book_shows_the_families_whose_runs_are_all_stored(monkeypatch, tmp_store):
    """Before a chapter's runs are all stored, the book shows it at that preset with only the complete families
    (and names the rest); a required model parameter left empty, or a missing single family, means ci."""
    from probe_utils import build

    stored: set[str] = set()
    monkeypatch.setattr(sweep, "_stored", lambda store, t: {"provenance": {"train_wall_s": 1.0}}
                        if t.preset == "cpu" and t.model in stored else None)
    every = sweep.chapter_parameters("01_numerosity")["models"]
    assert build.chapter_settings("01_numerosity", store=tmp_store) == ("ci", {}, [])
    stored.add("wgan_gp")
    assert build.chapter_settings("01_numerosity", store=tmp_store) == (
        "cpu", {"models": ["wgan_gp"]}, [m for m in every if m != "wgan_gp"])
    p02 = sweep.chapter_parameters("02_color_size_location")
    assert build.chapter_settings("02_color_size_location", store=tmp_store) == (
        "cpu", {"models": ["wgan_gp"], "other_models": []},
        [m for m in p02["models"] + p02["other_models"] if m != "wgan_gp"])
    stored.clear()
    stored.add("vae")  # chapter 05's invariance runs are WGAN-GP's: without them, no cpu page
    assert build.chapter_settings("05_combinations", store=tmp_store)[0] == "ci"
    stored.update(every)
    assert build.chapter_settings("01_numerosity", store=tmp_store) == ("cpu", {}, [])


def test_book_shows_the_first_seeds_whose_runs_are_all_stored(monkeypatch, tmp_store):
    """With only seed 0 of a family stored, the page shows that seed; more families before more seeds."""
    from probe_utils import build

    stored: dict[str, set[int]] = {}
    monkeypatch.setattr(sweep, "_stored", lambda store, t: {"provenance": {"train_wall_s": 1.0}}
                        if t.preset == "cpu" and t.seed in stored.get(t.model, ()) else None)
    every = sweep.chapter_parameters("01_numerosity")["models"]
    seeds = build.seed_list(sweep.chapter_parameters("01_numerosity")["seeds"])
    assert len(seeds) == 3
    stored["wgan_gp"] = {0, 2}  # seed 1 missing: only the first seed is shown
    assert build.chapter_settings("01_numerosity", store=tmp_store) == (
        "cpu", {"seeds": [0], "models": ["wgan_gp"]}, [m for m in every if m != "wgan_gp"])
    stored["wgan_gp"].add(1)
    assert build.chapter_settings("01_numerosity", store=tmp_store) == (
        "cpu", {"models": ["wgan_gp"]}, [m for m in every if m != "wgan_gp"])
    stored["vae"] = {0}  # a second family at seed 0 outweighs the first family's seeds 1 and 2
    assert build.chapter_settings("01_numerosity", store=tmp_store) == (
        "cpu", {"seeds": [0], "models": ["wgan_gp", "vae"]}, [m for m in every if m not in ("wgan_gp", "vae")])
    stored["vae"] |= {1, 2}
    assert build.chapter_settings("01_numerosity", store=tmp_store) == (
        "cpu", {"models": ["wgan_gp", "vae"]}, [m for m in every if m not in ("wgan_gp", "vae")])
    assert build.chapter_records("01_numerosity", ["numerosity"], store=tmp_store)[3] is None
    stored["vae"] = {0}
    assert build.chapter_records("01_numerosity", ["numerosity"], store=tmp_store)[3] == [0]  # the seeds shown
    assert build.seed_list(2) == [0, 1] and build.seed_list([4, 7]) == [4, 7]


def test_book_command_names_the_seeds_it_left_out(monkeypatch):
    """The book command passes the narrowed seeds to the chapter and names the others for its banner."""
    import argparse

    from probe_utils import build, cli

    monkeypatch.setattr(build, "chapter_settings", lambda stem, store=None: (
        ("cpu", {"seeds": [0], "models": ["wgan_gp"]}, ["vae"]) if stem == "01_numerosity" else ("ci", {}, [])))
    args = argparse.Namespace(preset=None, only=["01_numerosity"], param=None)
    [(src, params)] = cli._book_chapters(args, {})
    assert params["seeds"] == [0] and params["models"] == ["wgan_gp"] and params["preset"] == "cpu"
    assert cli.PENDING["01_numerosity"] == ["vae"] and cli.PENDING_SEEDS["01_numerosity"] == [1, 2]
    cli.PENDING_SEEDS.clear()
    [(src, params)] = cli._book_chapters(args, {"seeds": 1})  # the reader's own seeds: nothing to name
    assert params["seeds"] == 1 and cli.PENDING_SEEDS["01_numerosity"] == []


def test_core_hours_spent_count_cpu_time_not_a_shared_machine_s_wall_time():
    """A one-thread CPU run that shared its core took longer on the clock than it trained: the plan counts its CPU
    time; a GPU run counts its wall time; an old record without CPU time counts its wall time."""
    assert sweep.spent_s({"device": "cpu (x86_64, 1 threads)", "train_wall_s": 1869.2, "train_cpu_s": 900.0}) == 900.0
    assert sweep.spent_s({"device": "cuda (NVIDIA H200)", "train_wall_s": 300.0, "train_cpu_s": 310.0}) == 300.0
    assert sweep.spent_s({"device": "cpu", "train_wall_s": 500.0}) == 500.0
