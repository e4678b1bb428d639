"""A catalogue of bad inputs across the command line, every chapter's papermill parameters and the Python API.

Each case asserts three things: the error names the bad parameter (the chapter's own name for a chapter), it is a
clear error rather than a raw traceback, and nothing was written (the temporary store, the working folder and the
committed notebooks are as they were). Chapters are found with :mod:`probe_utils.build`; their parameters are
checked before any execution (one chapter is executed with papermill to show the check runs first in the notebook).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from probe_utils import build, cli
from probe_utils.params import ParameterError, check_chapter, notebook_parameters

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"


def _tree(root: Path, pattern: str = "*") -> dict[str, tuple[int, int]]:
    """Every file under ``root`` (matching ``pattern``) with its size and modification time."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob(pattern)
            if p.is_file()}


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working folder and a store under tmp_path (also the default store, so runs would go to its ``-runs``
    folder there); yields a function that asserts nothing was written there, nor to the committed notebooks."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("PROBE_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("PROBE_UTILS_STORED_ONLY", raising=False)
    watched = [(tmp_path, "*"), (NOTEBOOKS, "*.ipynb")]
    before = [_tree(*w) for w in watched]

    def nothing_written() -> None:
        for (root, pattern), old in zip(watched, before):
            assert _tree(root, pattern) == old, f"files were written or changed under {root}"

    return nothing_written


def _cli_fails(argv: list[str], name: str, capsys) -> str:
    """Run the CLI in this process; it must fail with a one-line error that names ``name``."""
    capsys.readouterr()
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, f"{argv}: rc {rc}, stderr {err!r}, stdout {out[-300:]!r}"
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert f"'{name}'" in err, f"{argv}: the error does not name {name!r}: {err}"
    return err


# ---------------------------------------------------------------------------------------------------------------
# command line

RUN = ["run", "numerosity", "--models", "vae", "--quiet"]
CLI_CASES = [
    (RUN + ["--values", "3", "--threads", "-1"], "threads"),
    (RUN + ["--values", "0"], "counts[0]"),
    (RUN + ["--values", "17"], "counts[0]"),
    (RUN + ["--values", "3.5"], "counts[0]"),
    (RUN + ["--values", "[]"], "counts"),
    (["run", "numerosity", "--models", "gan", "--values", "3"], "models[0]"),
    (RUN + ["--values", "3", "--preset", "fast"], "preset"),
    (RUN + ["--values", "3", "--seeds", "0"], "seeds"),
    (RUN + ["--values", "3", "--seeds", "[-1]"], "seeds[0]"),
    (RUN + ["--values", "3", "--device", "tpu"], "device"),
    (["run", "nope", "--values", "3"], "experiment"),
    (RUN + ["--values", "3", "--store", ""], "store"),
    (RUN + ["--values", "3", "--store", "/dev/null/x"], "store"),
    (RUN + ["--values", "3", "--width", "0"], "width"),
    (RUN + ["--values", "3", "--pool-size", "1"], "pool_size"),
    (["run", "pie_red", "--models", "vae", "--values", "1.5"], "values[0]"),
    (["run", "pie_size", "--models", "vae", "--values", "0.1"], "values[0]"),
    (["run", "pie_red_mix", "--models", "vae", "--values", "0.3"], "mixtures[0]"),
    (["run", "indep_red", "--models", "vae", "--values", "51"], "nuisance_values[0]"),
    (["run", "pie_combos", "--models", "vae", "--values", "0"], "combinations[0]"),
    (["run", "clevr_pairs_4x4", "--models", "vae", "--values", "size"], "rare[0]"),
    (["bench", "--threads", "-1"], "threads"),
    (["bench", "--parts", ""], "parts"),
    (["bench", "--parts", "render,fly"], "parts[1]"),
    (["bench", "--json", "/proc/nope/b.json", "--parts", "render"], "json"),
    (["bench", "--json", "", "--parts", "render"], "json"),
    (["bench", "--size", "48"], "size"),
    (["bench", "--family", "gan"], "family"),
    (["bench", "--fleet", "0"], "fleet"),
    (["bench", "--iters", "0"], "iters"),
    (["bench", "--images", "0"], "images"),
    (["bench", "--n-critic", "0"], "n_critic"),
    (["bench", "--width", "0"], "width"),
    (["bench", "--batch-size", "0"], "batch_size"),
    (["bench", "--device", "tpu"], "device"),
    (["book", "--only", "01", "-p", "countz", "[3]"], "countz"),
    (["book", "--only", "01", "-p", "counts", "[0]"], "counts[0]"),
    (["book", "--only", "01", "-p", "seeds", "0"], "seeds"),
    (["book", "--only", "zz"], "only"),
    (["book", "--preset", "fast", "--only", "01"], "preset"),
    (["book", "--only", "02", "-p", "red_values", "[0.5, 2]"], "red_values[1]"),
    (["book", "--only", "03", "-p", "mixtures", "[[0.3]]"], "mixtures[0]"),
    (["book", "--only", "04", "-p", "nuisance_values", "[0]"], "nuisance_values[0]"),
    (["book", "--only", "05", "-p", "pie_combinations", "[0]"], "pie_combinations[0]"),
    (["book", "--only", "05", "-p", "invariance_model", "gan"], "invariance_model"),
    (["book", "--only", "06", "-p", "rare", "['size']"], "rare[0]"),
    (["book", "--only", "00", "-p", "n_check", "0"], "n_check"),
    (["book", "--only", "90", "-p", "preset", "foo"], "preset"),
    (["book", "--only", "91", "-p", "records_per_family", "0"], "records_per_family"),
    (["book", "--only", "92", "-p", "target", "2"], "target"),
    (["book", "--only", "01", "-p", "repository", "not a repository"], "repository"),
]


@pytest.mark.parametrize("argv,name", CLI_CASES, ids=[" ".join(a)[:60] for a, _ in CLI_CASES])
def test_cli_refuses_before_any_work(argv, name, sandbox, capsys):
    _cli_fails(argv, name, capsys)
    sandbox()


#: a `run` error names the option that set the bad value, beside the chapter's own name for it
RUN_FLAGS = {"counts": "--values", "values": "--values", "mixtures": "--values", "nuisance_values": "--values",
             "combinations": "--values", "rare": "--values", "models": "--models", "seeds": "--seeds",
             "preset": "--preset", "device": "--device", "store": "--store", "width": "--width",
             "pool_size": "--pool-size"}
RUN_CASES = [(argv, name) for argv, name in CLI_CASES if argv[0] == "run" and name.split("[")[0] in RUN_FLAGS]


@pytest.mark.parametrize("argv,name", RUN_CASES, ids=[" ".join(a)[:60] for a, _ in RUN_CASES])
def test_a_run_error_names_the_option_that_set_the_value(argv, name, sandbox, capsys):
    err = _cli_fails(argv, name, capsys)
    flag = RUN_FLAGS[name.split("[")[0]]
    assert err.startswith(f"error: {flag}: "), f"{argv}: the error does not start with {flag}: {err}"
    sandbox()


def test_cli_store_that_is_a_file(tmp_path, sandbox, capsys):
    bad = tmp_path / "a-file"
    bad.write_text("not a folder\n")
    before = bad.read_text()
    _cli_fails(RUN + ["--values", "3", "--store", str(bad)], "store", capsys)
    assert bad.read_text() == before and not (tmp_path / "a-file-runs").exists()


def test_book_misspelt_parameter_suggests_the_right_one(sandbox, capsys):
    err = _cli_fails(["book", "--only", "01", "-p", "countz", "[3]"], "countz", capsys)
    assert "did you mean 'counts'" in err


def test_book_bad_value_leaves_the_committed_notebook(sandbox, capsys):
    nb = NOTEBOOKS / "01_numerosity.ipynb"
    before = nb.read_bytes()
    _cli_fails(["book", "--only", "01", "-p", "counts", "[0]"], "counts[0]", capsys)
    assert nb.read_bytes() == before


# ---------------------------------------------------------------------------------------------------------------
# every chapter's papermill parameters, by the chapter's own names

#: per parameter name, bad values (any chapter that has the parameter is checked with each)
BAD_VALUES: dict[str, list] = {
    "preset": ["fast", 3],
    "models": [["gan"], []],
    "other_models": [["gan"], "pixelcnn,nope"],  # empty is allowed: no family beyond the paper's four
    "imports": [["no_such_module_for_probe_utils"], [3], 5],
    "counts": [[0], [3.5]],
    "red_values": [[1.5], [-0.1]],
    "size_values": [[0.2]],
    "location_values": [[0.5]],
    "mixtures": [[[0.3]], [[0.3, 0.3]], "0.3+x"],
    "nuisance_values": [[0], [51]],
    "pie_combinations": [[0], [2026]],
    "mnist_combinations": [[1001]],
    "invariance_model": ["gan"],
    "invariance_combinations": [[0]],
    "width_factors": [[0]],
    "data_factors": [[100]],
    "rare": [["size"]],
    "seeds": [0, [-1], True],
    "device": ["tpu"],
    "reuse": ["yes"],
    "n_check": [0, "many"],
    "seed": [-1],
    "records_per_family": [0],
    "target": [0, 1.5],
    "repository": ["not a repository"],
}
#: a bad value of one chapter that is fine in another (clevr counts stop at 10)
CHAPTER_VALUES = {("06_clevr", "counts"): [[11]]}


def _chapter_cases() -> list[tuple[str, str, object]]:
    cases = []
    for stem in build.CHAPTERS:
        names = notebook_parameters(NOTEBOOKS / f"{stem}.py")
        for name in names:
            for value in CHAPTER_VALUES.get((stem, name), BAD_VALUES.get(name, [])):
                cases.append((stem, name, value))
    return cases


CHAPTER_CASES = _chapter_cases()


def test_every_chapter_parameter_has_bad_cases():
    """No chapter parameter goes unchecked by this catalogue (a new parameter needs bad values above)."""
    for stem in build.CHAPTERS:
        for name in notebook_parameters(NOTEBOOKS / f"{stem}.py"):
            assert name in BAD_VALUES or (stem, name) in CHAPTER_VALUES, f"{stem}: no bad values for {name!r}"


@pytest.mark.parametrize("stem,name,value", CHAPTER_CASES, ids=[f"{s}-{n}-{v!r}"[:60] for s, n, v in CHAPTER_CASES])
def test_chapter_parameter_named_by_the_chapter(stem, name, value, sandbox):
    params = notebook_parameters(NOTEBOOKS / f"{stem}.py")
    check_chapter(stem, params)  # the defaults pass
    with pytest.raises(ParameterError) as e:
        check_chapter(stem, {**params, name: value})
    assert e.value.parameter is not None and e.value.parameter.split("[")[0] == name, str(e.value)
    assert f"'{e.value.parameter}'" in str(e.value)
    sandbox()


def test_every_chapter_checks_its_parameters_before_any_work():
    """Each chapter's first code cell after its Colab cell calls check_chapter with its own name."""
    for stem in build.CHAPTERS:
        text = (NOTEBOOKS / f"{stem}.py").read_text()
        cells = text.split("\n# %%")
        first = next(c for c in cells if not c.startswith((" tags=", " [markdown]")) and "import" in c
                     and "google.colab" not in c and "probe_utils" in c)
        assert f'params.check_chapter("{stem}", globals())' in first, f"{stem}: {first[:300]}"


@pytest.mark.book
def test_papermill_execution_fails_on_the_chapter_parameter(tmp_path, monkeypatch):
    """One real execution: the chapter stops at its parameter check, naming its own parameter (red_values)."""
    pm = pytest.importorskip("papermill")
    jupytext = pytest.importorskip("jupytext")
    monkeypatch.setenv("PROBE_RESULTS", str(tmp_path / "results"))
    before = _tree(NOTEBOOKS, "*.ipynb")
    src = tmp_path / "chapter.ipynb"
    jupytext.write(jupytext.read(NOTEBOOKS / "02_color_size_location.py"), src)
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(src), str(tmp_path / "out.ipynb"), parameters={"red_values": [0.5, 7]},
                            cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False)
    assert e.value.ename == "ParameterError" and "'red_values[1]'" in e.value.evalue
    assert not (tmp_path / "results").exists() and _tree(NOTEBOOKS, "*.ipynb") == before


# ---------------------------------------------------------------------------------------------------------------
# Python API


def _api_cases():
    from probe_utils import experiments as ex
    from probe_utils import findings
    from probe_utils.bench import bench
    from probe_utils.features import dots as dotf
    from probe_utils.features import pie as pief
    from probe_utils.render import clevr, dots, mnist3, pie
    from probe_utils.store import CorruptRecord, Store
    from probe_utils.train import pick_device

    def put(**over):
        rec = {"experiment": "numerosity", "model": "vae", "preset": "ci", "seed": 0, "value": 3, "params": {},
               "provenance": {"device": "cpu", "torch": "2", "steps": 1, "wall_s": 1.0, "created": "now",
                              "code_version": "0"}, "result": {"distribution": [1.0]}}
        rec.update(over)
        Store(Path(os.environ["PROBE_RESULTS"])).put(rec)

    huge = 10**12
    return [
        ("run counts", lambda: ex.run("numerosity", models="vae", values=[0], preset="ci"), ParameterError, "counts[0]"),
        ("run store ''", lambda: ex.run("numerosity", models="vae", values=3, preset="ci", store=""), ParameterError,
         "store"),
        ("run reuse", lambda: ex.run("numerosity", models="vae", values=3, reuse="no"), ParameterError, "reuse"),
        ("run width", lambda: ex.run("numerosity", models="vae", values=3, width=10**6), ParameterError, "width"),
        ("run seeds bool", lambda: ex.run("numerosity", models="vae", values=3, seeds=[True]), ParameterError,
         "seeds[0]"),
        ("mixture text", lambda: ex.check_mixture("mixtures", "0.3+x"), ParameterError, "mixtures"),
        ("scaled width", lambda: ex.scaled_settings("ci", width_factors=[0]), ParameterError, "width_factors[0]"),
        ("scorecard preset", lambda: findings.scorecard("foo"), ParameterError, "preset"),
        ("put escape", lambda: put(experiment="../../escape"), CorruptRecord, "experiment"),
        ("put value path", lambda: put(value="a/b"), CorruptRecord, "value"),
        ("put model dots", lambda: put(model=".."), CorruptRecord, "model"),
        ("put distribution", lambda: put(result={"distribution": "oops"}), CorruptRecord, "result.distribution"),
        ("put share", lambda: put(result={"distribution": [1.0], "invalid_share": 2}), CorruptRecord,
         "result.invalid_share"),
        ("put sum", lambda: put(result={"distribution": [0.7, 0.7]}), CorruptRecord, "result.distribution"),
        ("store ''", lambda: Store(""), ParameterError, "store"),
        ("records ../x", lambda: list(Store(Path(os.environ["PROBE_RESULTS"])).records("../x")), ParameterError,
         "experiment"),
        ("dots n", lambda: dots.render(count=3, n=huge), ParameterError, "n"),
        ("pie n", lambda: pie.render(n=huge), ParameterError, "n"),
        ("clevr n", lambda: clevr.render(n=huge), ParameterError, "n"),
        ("mnist3 n", lambda: mnist3.render(n=huge), ParameterError, "n"),
        ("dots bool", lambda: dotf.count(torch.zeros(2, 3, 32, 32, dtype=torch.bool)), ParameterError, "x"),
        ("pie 0-255 floats", lambda: pief.measure(torch.full((2, 3, 32, 32), 200.0)), ParameterError, "x"),
        ("bench parts", lambda: bench(parts=[]), ParameterError, "parts"),
        ("bench size", lambda: bench(size=48, parts=["render"]), ParameterError, "size"),
        ("device", lambda: pick_device("tpu"), ParameterError, "device"),
        ("chapter", lambda: check_chapter("07_nope", {}), ParameterError, "chapter"),
    ]


API_CASES = _api_cases()


@pytest.mark.parametrize("label,call,error,name", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_refuses_before_any_work(label, call, error, name, sandbox):
    with pytest.raises(error) as e:
        call()
    assert f"'{name}'" in str(e.value), str(e.value)
    sandbox()


def test_catalogue_size():
    assert len(CLI_CASES) + len(CHAPTER_CASES) + len(API_CASES) >= 60


# ---------------------------------------------------------------------------------------------------------------
# outputs that must be valid


def test_run_summary_lines_are_json_without_nan():
    import json

    line = cli._json_line({"model": "vae", "mean": float("nan"), "sd": math.inf, "share": 0.12345,
                           "nested": [np.float64(1.0), float("-inf")]})
    assert json.loads(line) == {"model": "vae", "mean": None, "sd": None, "share": 0.123, "nested": [1.0, None]}


# ---------------------------------------------------------------------------------------------------------------
# measurements never read a number off NaN or infinite pixels


@pytest.mark.parametrize("bad", [float("nan"), float("-inf"), float("inf")], ids=["nan", "-inf", "+inf"])
def test_measurements_refuse_non_finite_images(bad):
    """A whole image of ``bad`` and an image with one ``bad`` pixel are refused (-1 / NaN); a clean one is read."""
    from probe_utils.features import clevr as clevrf
    from probe_utils.features import dots as dotf
    from probe_utils.features import mnist3 as mnistf
    from probe_utils.features import pie as pief
    from probe_utils.render import clevr, dots, mnist3, pie

    def spoil(x):
        x = x.clone()
        x[0] = bad
        x[1, :, 10, 10] = bad
        return x

    assert list(dotf.count(spoil(dots.render(count=3, n=3, seed=0, size=32)[0]))[:2]) == [-1, -1]
    red = pief.measure(spoil(pie.render(n=3, seed=0, size=32)[0]))["red"]
    assert np.isnan(red[:2]).all() and np.isfinite(red[2])
    if not hasattr(mnistf, "REASONS") or not hasattr(clevrf, "REASONS"):
        pytest.skip("the refusing three-MNIST and CLEVR readers are not in this checkout yet")
    triple = mnistf.classify(spoil(mnist3.render(n=3, seed=0, size=64)[0]), min_confidence=0.0, rule="digit")
    assert list(triple["triple"][:2]) == [-1, -1] and triple["triple"][2] >= 0
    counts = clevrf.count(spoil(clevr.render(n=3, seed=0, size=64)[0]), min_confidence=0.0)
    assert list(counts[:2]) == [-1, -1] and counts[2] >= 1
