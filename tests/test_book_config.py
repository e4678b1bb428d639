"""Colab buttons and the chapters' Colab install cell: where the repository comes from, the generated config, and
that the install cell does nothing off Colab and fails clearly without a repository."""

import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from probe_utils import build
from probe_utils.params import ParameterError

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("PROBE_BOOK_REPOSITORY", raising=False)
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)


@pytest.mark.parametrize("given", ["octo/probe-book", "https://github.com/octo/probe-book",
                                   "https://github.com/octo/probe-book.git", "git@github.com:octo/probe-book.git"])
def test_repository_forms(no_env, given):
    assert build.repository_url(given) == "https://github.com/octo/probe-book"


def test_repository_sources_in_order(no_env, monkeypatch, tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert build.repository_url(None, tmp_path) is None
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", "git@github.com:a/from-remote.git"],
                   check=True)
    assert build.repository_url(None, tmp_path) == "https://github.com/a/from-remote"
    monkeypatch.setenv("GITHUB_REPOSITORY", "b/from-actions")
    assert build.repository_url(None, tmp_path) == "https://github.com/b/from-actions"
    monkeypatch.setenv("PROBE_BOOK_REPOSITORY", "c/from-env")
    assert build.repository_url(None, tmp_path) == "https://github.com/c/from-env"
    assert build.repository_url("d/explicit", tmp_path) == "https://github.com/d/explicit"


def test_bad_repository_names_the_parameter(no_env):
    with pytest.raises(ParameterError, match="'repository'.*OWNER/NAME"):
        build.repository_url("https://gitlab.com/x/y")


def test_launch_config_adds_colab_and_keeps_the_book_config(tmp_path):
    (tmp_path / "_config.yml").write_text((REPO / "_config.yml").read_text())
    cfg = yaml.safe_load(build.launch_config(tmp_path, "https://github.com/octo/probe-book").read_text())
    assert cfg["repository"]["url"] == "https://github.com/octo/probe-book"
    assert cfg["launch_buttons"]["colab_url"] == build.COLAB_URL
    original = yaml.safe_load((REPO / "_config.yml").read_text())
    assert cfg["sphinx"] == original["sphinx"] and cfg["execute"] == original["execute"]


def _install_cell(src: Path) -> str:
    cells = re.split(r"^# %%.*$", src.read_text(), flags=re.M)
    return next(c for c in cells if "google.colab" in c)


@pytest.mark.parametrize("src", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_has_a_repository_parameter_and_installs_only_on_colab(src, monkeypatch):
    text = src.read_text()
    params = re.search(r'# %% tags=\["parameters"\]\n(.*?)\n\n', text, re.S).group(1)
    assert re.search(r'^repository = ""', params, re.M)
    assert text.index("google.colab") < text.index("from probe_utils")  # installs before the first import
    assert (src.with_suffix(".ipynb")).exists()  # the notebook the Colab button opens
    cell = _install_cell(src)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    scope = {"repository": "", "preset": "ci"}
    exec(cell, scope)  # off Colab: nothing happens
    assert scope["preset"] == "ci"
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    with pytest.raises(ValueError, match="'repository'"):
        exec(cell, {"repository": "", "preset": "ci"})


def test_check_build_wants_a_colab_button_per_chapter(tmp_path):
    html = tmp_path / "_build" / "html"
    (html / "notebooks").mkdir(parents=True)
    (html / "index.html").write_text("<html></html>")
    (tmp_path / "notebooks").mkdir()
    url = "https://github.com/octo/probe-book"
    for stem in ("01_numerosity", "02_color_size_location"):
        (tmp_path / "notebooks" / f"{stem}.py").write_text("")
        link = build.colab_link(url, stem) if stem == "01_numerosity" else ""
        (html / "notebooks" / f"{stem}.html").write_text(f'<a href="{link}"></a>' + '<img src="a.png">' * 5)
    (tmp_path / "notebooks" / "01_numerosity.ipynb").write_text("{}")
    problems = build.check_build(tmp_path, url)
    assert any("02_color_size_location.html has no Colab button" in p for p in problems)
    assert any("does not exist: notebooks/02_color_size_location.ipynb" in p for p in problems)
    assert not any("01_numerosity" in p for p in problems)
