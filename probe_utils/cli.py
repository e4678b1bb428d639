"""Command line: ``python -m probe_utils run|sweep|book|remeasure|bench`` (see ``--help`` of each)."""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from probe_utils.build import PENDING_ENV, PENDING_SEEDS_ENV
from probe_utils.params import ParameterError, notebook_parameters

REPO = Path(__file__).resolve().parent.parent


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def cmd_run(args: argparse.Namespace) -> int:
    import torch

    from probe_utils.analysis import shape_rows, summary_rows
    from probe_utils.experiments import EXPERIMENTS, run

    from probe_utils.params import check_int

    if check_int("threads", args.threads, 0, 1024):
        torch.set_num_threads(args.threads)
    known = EXPERIMENTS.get(args.experiment)
    # the experiment's own names (e.g. 'counts[0]', as in its chapter) and the option that set them
    flags = {"values" if known is None else known.value_name: "--values", "models": "--models", "seeds": "--seeds",
             "preset": "--preset", "device": "--device", "store": "--store", "width": "--width",
             "pool_size": "--pool-size"}
    try:
        recs = run(args.experiment, models=_literal(args.models), values=_literal(args.values),
                   seeds=_literal(args.seeds), preset=args.preset, device=args.device, reuse=not args.fresh,
                   store=args.store, progress=not args.quiet, width=args.width, pool_size=args.pool_size)
    except ParameterError as e:
        flag = flags.get((e.parameter or "").split("[")[0])
        if flag is None:
            raise
        raise ParameterError(f"{flag}: {e}", e.parameter) from None
    exp = EXPERIMENTS[args.experiment]
    for r in recs:  # runs whose samples the measurement refused entirely have no response to summarise
        if r["result"]["invalid_share"] >= 1.0:
            print(json.dumps({"model": r["model"], "value": r["value"], "seed": r["seed"], "measurable": 0.0,
                              "note": "every sample was refused by the measurement: nothing to summarise"}))
    recs = [r for r in recs if r["result"]["invalid_share"] < 1.0]
    if not recs:
        return 0
    if exp.support is not None:  # combinations: precision and recall of the learned support
        from probe_utils.analysis import record_ids, support_precision_recall

        rows = []
        for r in recs:
            pr = support_precision_recall(record_ids(r), r["result"]["train_support"])
            rows.append({"model": r["model"], "value": r["value"], "seed": r["seed"],
                         **{k: pr[k] for k in ("precision", "recall", "n_support", "n_novel", "novel_mass",
                                               "n_invalid")}})
    elif exp.integer and exp.check_value is None and exp.describe is None:  # counts
        rows = summary_rows(recs)
    else:
        rows = shape_rows(recs, exp.centres)
        if exp.name.startswith("indep_"):  # the trained value is a number of nuisance values, not the feature
            for row in rows:
                row.pop("bias", None)
    for row in rows:
        print(_json_line(row))
    return 0


def chapters() -> list[Path]:
    """The book's chapter sources, in order."""
    return sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))


#: per chapter, the model families left out of its page because their runs are not all stored yet (book command)
PENDING: dict[str, list[str]] = {}
PENDING_SEEDS: dict[str, list[int]] = {}


def _book_chapters(args: argparse.Namespace, extra: dict) -> list[tuple[Path, dict]]:
    """The chapters to execute with the parameters each gets, every parameter checked before any work: a ``-p``
    name that no chosen chapter has, or a value a chapter refuses, raises ParameterError naming it."""
    from probe_utils.build import chapter_settings, seed_list
    from probe_utils.experiments import PRESETS
    from probe_utils.params import check_chapter, check_unknown, notebook_parameters

    if args.preset is not None and args.preset not in PRESETS:
        raise ParameterError(f"parameter 'preset' must be one of {', '.join(map(repr, PRESETS))}; "
                             f"got {args.preset!r}")
    every = chapters()
    chosen = [src for src in every if not args.only or any(o in src.stem for o in args.only)]
    if not chosen:
        raise ParameterError(f"parameter 'only' must match a chapter ({', '.join(s.stem for s in every)}); "
                             f"got {args.only!r}")
    declared = {src.stem: notebook_parameters(src) for src in chosen}
    check_unknown([k for k, _ in (args.param or [])], {k for d in declared.values() for k in d},
                  "chapter " + ", ".join(declared) if len(declared) == 1 else "the chapters " + ", ".join(declared))
    out = []
    for src in chosen:
        preset, narrowed, pending = (args.preset, {}, []) if args.preset else chapter_settings(src.stem)
        params = {"preset": preset, **narrowed, **{k: v for k, v in extra.items() if k in declared[src.stem]}}
        PENDING[src.stem] = [] if any(k in extra for k in narrowed if k != "seeds") else pending
        PENDING_SEEDS[src.stem] = []  # the seeds not stored yet, named on the page
        if "seeds" in narrowed and "seeds" not in extra:
            asked = seed_list(declared[src.stem].get("seeds", 1))
            PENDING_SEEDS[src.stem] = [s for s in asked if s not in narrowed["seeds"]]
        try:
            check_chapter(src.stem, {**declared[src.stem], **params})
        except ParameterError as e:
            raise ParameterError(f"chapter {src.stem}: {e}", e.parameter) from None
        out.append((src, params))
    return out


def _execute_chapter(src: Path, params: dict) -> None:
    """Execute chapter ``src`` with papermill into a temporary notebook (under ``_build/``, git-ignored); the chapter's
    notebook is replaced only when every cell ran (a failed execution leaves it as it was)."""
    import nbformat
    import papermill as pm

    nb = src.with_suffix(".ipynb")
    work = REPO / "_build" / "executing"
    work.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=work, prefix=f"{nb.stem}-", suffix=".ipynb")
    os.close(fd)
    tmp = Path(name)
    try:
        cmd = [sys.executable, "-m", "jupytext", "--quiet", "--to", "ipynb", "--output", str(tmp), str(src)]
        if nb.exists():  # keep the committed outputs (and cell ids) where the source did not change
            shutil.copyfile(nb, tmp)
            cmd.insert(-3, "--update")
        else:
            tmp.unlink()
        subprocess.run(cmd, check=True)
        pm.execute_notebook(str(tmp), str(tmp), parameters=params, cwd=str(nb.parent), kernel_name="python3",
                            progress_bar=False, request_save_on_cell_execute=False)
        done = nbformat.read(tmp, as_version=4)
        meta = done.metadata.get("papermill", {})
        meta.update(input_path=str(nb), output_path=str(nb))  # the paths it would have had if run in place
        nbformat.write(done, tmp)
        os.replace(tmp, nb)
    finally:
        tmp.unlink(missing_ok=True)


def _chapter_failure(nb: Path, err: Exception) -> str:
    """One line on why a chapter's execution failed (papermill's error, without its traceback)."""
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    return (f"{nb.name} failed: {ename}: {evalue}. The notebook was left as it was; the failed execution is not "
            f"kept (run the chapter in Jupyter to see the cell)")


def cmd_remeasure(args: argparse.Namespace) -> int:
    """Add missing readings to stored records, one thread (as the runs were made, so the samples come out the same)."""
    import torch

    from probe_utils.experiments import EXPERIMENTS, PRESETS, add_readings
    from probe_utils.params import check_choice

    if args.experiment is not None:
        check_choice("experiment", args.experiment, EXPERIMENTS)
    if args.preset is not None:
        check_choice("preset", args.preset, PRESETS)
    torch.set_num_threads(1)
    done = add_readings(args.store, args.runs_dir, experiment=args.experiment, preset=args.preset)
    for key, what in done:
        print(f"{key}: {what}")
    added = sum(what.startswith("added") for _, what in done)
    print(f"[remeasure] {added} record(s) given readings, {len(done) - added} left as they were; "
          f"{'nothing lacked a reading' if not done else 'done'}")
    return 0


def cmd_book(args: argparse.Namespace) -> int:
    from probe_utils.build import launch_config, repository_url

    extra = {key: _literal(value) for key, value in (args.param or [])}
    todo = _book_chapters(args, extra) if args.execute else []
    url = repository_url(args.repository, REPO)
    if url:
        # chapters learn where to install probe_utils from on Colab (their `repository`); the pages get Colab buttons
        print(f"[book] repository {url} (branch {args.branch}): Colab buttons on every chapter", flush=True)
    else:
        print("[book] no GitHub repository known (--repository OWNER/NAME, $PROBE_BOOK_REPOSITORY or repository.url "
              "in _config.yml): the pages get no Colab buttons", flush=True)
    if args.execute:
        from papermill.exceptions import PapermillExecutionError

        os.environ["PROBE_UTILS_PROGRESS"] = "0"  # executed pages should not embed progress-bar widgets
        for src, params in todo:
            if url and "repository" in notebook_parameters(src):
                params.setdefault("repository", url)
            # building from stored records (no --preset): a chapter that asks for a run missing at its preset fails
            # instead of training; ci runs are quick and never committed, so they are made when missing
            stored_only = args.preset is None and params["preset"] not in ("ci", "auto")
            os.environ["PROBE_UTILS_STORED_ONLY"] = "1" if stored_only else "0"
            os.environ[PENDING_ENV] = ",".join(PENDING.get(src.stem, []))
            os.environ[PENDING_SEEDS_ENV] = ",".join(map(str, PENDING_SEEDS.get(src.stem, [])))
            nb = src.with_suffix(".ipynb")
            print(f"[book] executing {nb.relative_to(REPO)} with {params}", flush=True)
            t0 = time.time()
            try:
                _execute_chapter(src, params)
            except PapermillExecutionError as e:
                print(f"error: {_chapter_failure(nb, e)}", file=sys.stderr)
                return 1
            print(f"[book] {nb.name} done in {time.time() - t0:.0f} s", flush=True)
    # the jupyter-book script of this interpreter's environment, so an un-activated venv works too
    beside = Path(sys.executable).parent / "jupyter-book"
    jb = str(beside) if beside.exists() else (shutil.which("jupyter-book") or "jupyter-book")
    cmd = [jb, "build", str(REPO), "--keep-going"]
    if url:
        cmd += ["--config", str(launch_config(REPO, url, args.branch))]
    if args.strict:
        cmd += ["-W", "-n"]
    print("[book] " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    from probe_utils.build import check_build

    problems = check_build(REPO, url, args.branch)
    for p in problems:
        print(f"[book] PROBLEM: {p}", file=sys.stderr)
    print(f"[book] built {REPO / '_build' / 'html' / 'index.html'}" if not problems else "[book] build has problems")
    if todo:  # the executed chapters replaced the committed ones in the working tree, outputs and all
        names = ", ".join(str(src.with_suffix(".ipynb").relative_to(REPO)) for src, _ in todo)
        print(f"[book] executed in place (with outputs): {names}; the repository keeps them without outputs: "
              f"`git checkout -- notebooks/` restores them before a commit", flush=True)
    return 1 if problems else 0


def _json_line(row: dict) -> str:
    """One JSON line; numbers rounded to 3 decimals, NaN and infinities as null (JSON has no NaN)."""
    import math

    def clean(v):
        if isinstance(v, float):
            return round(v, 3) if math.isfinite(v) else None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(row), allow_nan=False)


def _check_output_file(name: str, path: str | None) -> Path | None:
    """A file the command will write at the end, checked before any work (its folder writable, not a folder)."""
    if path is None:
        return None
    from probe_utils.store import require_writable_dir

    if not str(path).strip():
        raise ParameterError(f"parameter {name!r} must be a file path; got {path!r}")
    out = Path(path)
    if out.is_dir():
        raise ParameterError(f"parameter {name!r} must be a file path; {out} is a folder")
    require_writable_dir(out.parent, name)
    return out


def cmd_bench(args: argparse.Namespace) -> int:
    from probe_utils.params import check_int

    threads = check_int("threads", args.threads, 0, 1024)
    out = _check_output_file("json", args.json)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not parts:
        raise ParameterError(f"parameter 'parts' must name one or more of render, measure, train (comma-separated); "
                             f"got {args.parts!r}")
    import torch

    from probe_utils.bench import bench, format_table

    if threads:
        torch.set_num_threads(threads)
    res = bench(args.device, args.family, args.size, args.width, args.fleet, args.iters, args.warmup,
                args.batch_size, args.images, args.n_critic, parts)
    print(format_table(res))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1) + "\n")
        print(f"[bench] wrote {out}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line: ``run``, ``book``, ``remeasure``, ``sweep`` and ``bench`` with their options."""
    ap = argparse.ArgumentParser(prog="python -m probe_utils", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="train and measure one experiment's runs (reusing stored records)")
    r.add_argument("experiment", help="e.g. numerosity")
    r.add_argument("--models", default="wgan_gp,vae", help="comma-separated families (default: wgan_gp,vae), "
                                                           "including any registered with --import")
    r.add_argument("--values", required=True, help="trained values, e.g. 1,3,5,8 (mixtures: 0.3+0.4,0.3+0.9)")
    r.add_argument("--seeds", default="1", help="a number of seeds (e.g. 3 -> 0,1,2) or a list like [0,4]")
    r.add_argument("--preset", default="ci", help="ci | cpu | colab | gpu20k | paper")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    r.add_argument("--store", default=None, help="results folder (default: the checkout's book/results)")
    r.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    r.add_argument("--fresh", action="store_true", help="train even when a matching record is stored")
    r.add_argument("--width", type=int, default=None, help="network width instead of the preset's")
    r.add_argument("--pool-size", type=int, default=None, help="training images instead of the preset's")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    b = sub.add_parser("book", help="execute the chapters with papermill, then build the Jupyter Book")
    b.add_argument("--preset", default=None,
                   help="preset passed to every chapter (default: per chapter, the largest-scale preset with stored "
                        "records, so nothing is retrained)")
    b.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="extra papermill parameter, e.g. -p seeds 3")
    b.add_argument("--only", nargs="*", help="execute only chapters whose name contains one of these")
    b.add_argument("--no-execute", dest="execute", action="store_false", help="build from the committed notebooks")
    b.add_argument("--strict", action="store_true", help="fail on Sphinx warnings (broken references)")
    b.add_argument("--repository", default=None,
                   help="the book's GitHub repository, OWNER/NAME or its URL, for the Colab buttons and the chapters' "
                        "Colab install cell (default: $PROBE_BOOK_REPOSITORY, $GITHUB_REPOSITORY or repository.url in "
                        "_config.yml)")
    b.add_argument("--branch", default="main", help="branch the Colab buttons open (default: main)")
    b.set_defaults(func=cmd_book)

    m = sub.add_parser("remeasure", help="give stored records the readings their experiment defines but they lack "
                                         "(sampled again from each run's final checkpoint)")
    m.add_argument("--experiment", default=None, help="only this experiment's records (default: all)")
    m.add_argument("--preset", default=None, help="only this preset's records (default: all)")
    m.add_argument("--store", default=None, help="results folder (default: the checkout's book/results)")
    m.add_argument("--runs-dir", default=None, help="checkpoints folder (default: runs/ beside the book)")
    m.set_defaults(func=cmd_remeasure)

    from probe_utils.sweep import add_parser as add_sweep_parser

    add_sweep_parser(sub)

    be = sub.add_parser("bench", help="throughput of renderers, measurements and training (one model vs a fleet)")
    be.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    be.add_argument("--family", default="wgan_gp", help="model family trained (default: wgan_gp)")
    be.add_argument("--size", type=int, default=64, help="image size in pixels (32, 64 or 128)")
    be.add_argument("--width", type=int, default=64, help="model width (64 is the paper's)")
    be.add_argument("--fleet", type=int, default=8, help="models trained at once (and one at a time)")
    be.add_argument("--iters", type=int, default=20, help="timed training iterations per model")
    be.add_argument("--warmup", type=int, default=3, help="untimed iterations before timing")
    be.add_argument("--batch-size", type=int, default=64, help="training batch size")
    be.add_argument("--n-critic", type=int, default=None, help="WGAN critic updates per iteration (model default)")
    be.add_argument("--images", type=int, default=512, help="images rendered and measured per renderer")
    be.add_argument("--parts", default="render,measure,train", help="comma-separated subset of render,measure,train")
    be.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    be.add_argument("--json", default=None, help="also write the figures to this JSON file")
    be.set_defaults(func=cmd_bench)

    for name in ("run", "sweep", "bench"):  # a family of your own: the module that registers it, imported first
        sub.choices[name].add_argument(
            "--import", dest="imports", action="append", metavar="MODULE",
            help="import this module (a name on sys.path or a .py path) first: the model families it registers "
                 "become valid names (repeat it, or give several comma-separated; also $PROBE_UTILS_IMPORT)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from probe_utils.store import CorruptRecord
    from probe_utils.train import CorruptCheckpoint

    try:
        if getattr(args, "imports", None):
            from probe_utils.models import import_modules

            import_modules(",".join(args.imports), source="import")
        return args.func(args)
    except ParameterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (CorruptRecord, CorruptCheckpoint) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a full disk, a read-only folder: the message names the file
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: nothing half-written was kept. Run the same command again to resume: stored records "
              f"are reused and training continues from its last checkpoint.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
