"""The project's files agree with each other: environment.yml with pyproject.toml, chapters with the book."""

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_agrees_with_pyproject():
    yaml = pytest.importorskip("yaml")
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = env["dependencies"]
    py = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    major_minor = tuple(int(x) for x in py.split("=")[-1].split(".")[:2])
    lowest = tuple(int(x) for x in project["requires-python"].lstrip(">=").split(".")[:2])
    assert major_minor >= lowest, f"environment.yml's {py} is below requires-python {project['requires-python']}"
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    local = [p for p in pip if re.match(r"^(-e\s+)?\.(\[|$)", p)]
    assert local, "environment.yml must install this package (-e .[book,...])"
    extras = set(re.search(r"\[(.*)\]", local[0]).group(1).split(","))
    assert "book" in extras and extras <= set(project["optional-dependencies"])
    known = {_name(d) for d in project["dependencies"]}
    for req in pip:
        if req.startswith("-") or req in local:
            continue
        assert _name(req) in known, f"environment.yml pins {req!r}, which pyproject.toml does not depend on"


def test_every_chapter_is_paired_parameterised_and_in_the_toc():
    toc = (REPO / "_toc.yml").read_text()
    chapters = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))
    assert chapters
    for py in chapters:
        assert py.with_suffix(".ipynb").exists(), f"{py.name} has no paired .ipynb"
        assert 'tags=["parameters"]' in py.read_text(), f"{py.name} has no papermill parameters cell"
        assert f"notebooks/{py.stem}" in toc, f"{py.name} is not in _toc.yml"


def test_book_config_never_executes_notebooks():
    cfg = (REPO / "_config.yml").read_text()
    assert re.search(r'execute_notebooks:\s*"?off"?', cfg)
