"""The book's configuration: the repository set once (``_config.yml``) and where a build takes it from, the Colab
install cell every chapter shares (run with and without a fake ``google.colab``), the generated launch config, the
build check, and the book's own Sphinx extension (one parameters cell, tables as CSV, the presets table)."""

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from probe_utils import build, colab
from probe_utils.params import ParameterError

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))
CONFIGURED = colab.configured_repository(REPO)


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("PROBE_BOOK_REPOSITORY", raising=False)
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)


@pytest.fixture
def ext():
    """book/_ext/probe_book.py, imported as Sphinx imports it."""
    sys.path.insert(0, str(REPO / "book" / "_ext"))
    try:
        import probe_book
        yield probe_book
    finally:
        sys.path.remove(str(REPO / "book" / "_ext"))


def _book_copy(tmp_path: Path, url: str | None) -> Path:
    """A folder with the book's _config.yml, its repository.url replaced (or removed when ``url`` is None)."""
    cfg = yaml.safe_load((REPO / "_config.yml").read_text())
    if url is None:
        cfg.pop("repository")
    else:
        cfg["repository"]["url"] = url
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(cfg))
    return tmp_path


@pytest.mark.parametrize("given", ["octo/probe-book", "https://github.com/octo/probe-book",
                                   "https://github.com/octo/probe-book.git", "git@github.com:octo/probe-book.git"])
def test_repository_forms(no_env, given):
    assert build.repository_url(given) == "https://github.com/octo/probe-book"
    assert colab.github_url(given) == "https://github.com/octo/probe-book"


def test_the_book_configures_its_repository_once():
    cfg = yaml.safe_load((REPO / "_config.yml").read_text())
    assert CONFIGURED and cfg["repository"]["url"] == CONFIGURED
    assert cfg["launch_buttons"]["colab_url"] == build.COLAB_URL  # a fresh clone's build has Colab buttons


def test_the_citation_file_is_complete_and_agrees_with_the_package_and_the_book():
    """CITATION.cff (GitHub's "Cite this repository"): the Citation File Format's required keys, each author named,
    the package's version, the book's repository, and the paper it re-runs as the one it references."""
    from probe_utils import __version__

    cff = yaml.safe_load((REPO / colab.CITATION).read_text())
    assert cff["cff-version"] == "1.2.0" and cff["message"].strip() and cff["title"].strip()
    assert cff["authors"] and all(a.get("name") or a.get("family-names") for a in cff["authors"])
    assert cff["version"] == __version__
    assert colab.cited_repository(REPO) == CONFIGURED
    paper = cff["references"][0]
    assert paper["year"] == 2018 and "1811.03259" in paper["url"]
    assert [a["family-names"] for a in paper["authors"]][:2] == ["Zhao", "Ren"]


def test_repository_sources_in_order(no_env, monkeypatch, tmp_path):
    assert build.repository_url(None, _book_copy(tmp_path, None)) is None
    assert build.repository_url(None, _book_copy(tmp_path, "a/from-config")) == "https://github.com/a/from-config"
    monkeypatch.setenv("GITHUB_REPOSITORY", "b/from-actions")
    assert build.repository_url(None, tmp_path) == "https://github.com/b/from-actions"
    monkeypatch.setenv("PROBE_BOOK_REPOSITORY", "c/from-env")
    assert build.repository_url(None, tmp_path) == "https://github.com/c/from-env"
    assert build.repository_url("d/explicit", tmp_path) == "https://github.com/d/explicit"


def test_bad_repository_names_the_parameter(no_env, tmp_path):
    with pytest.raises(ParameterError, match="'repository'.*OWNER/NAME"):
        build.repository_url("https://gitlab.com/x/y")
    with pytest.raises(ParameterError, match=r"repository\.url.*OWNER/NAME"):
        build.repository_url(None, _book_copy(tmp_path, "not a repository"))


def test_launch_config_adds_colab_and_keeps_the_book_config(tmp_path):
    (tmp_path / "_config.yml").write_text((REPO / "_config.yml").read_text())
    cfg = yaml.safe_load(build.launch_config(tmp_path, "https://github.com/octo/probe-book").read_text())
    assert cfg["repository"]["url"] == "https://github.com/octo/probe-book"
    assert cfg["launch_buttons"]["colab_url"] == build.COLAB_URL
    original = yaml.safe_load((REPO / "_config.yml").read_text())
    # the book's extension is found from the generated file's folder too (Jupyter Book resolves it from there)
    for name, path in original["sphinx"].pop("local_extensions").items():
        assert Path(cfg["sphinx"]["local_extensions"].pop(name)) == (tmp_path / path).resolve()
    cfg["sphinx"].pop("local_extensions")
    assert cfg["sphinx"] == original["sphinx"] and cfg["execute"] == original["execute"]


def _cells(src: Path) -> list[tuple[str, str]]:
    """(cell header line, cell body) of a jupytext percent file."""
    parts = re.split(r"^(# %%.*)$", src.read_text(), flags=re.M)
    return [(parts[i], parts[i + 1].strip("\n")) for i in range(1, len(parts) - 1, 2)]


@pytest.mark.parametrize("src", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_installs_from_the_configured_repository(src):
    cells = _cells(src)
    params = next(body for head, body in cells if '"parameters"' in head)
    assert re.search(rf'^repository = "{re.escape(CONFIGURED)}"', params, re.M), \
        f"{src.name}: the repository default differs from _config.yml (python -m probe_utils.colab OWNER/NAME)"
    first_code = next(i for i, (head, _) in enumerate(cells) if "[markdown]" not in head and "parameters" not in head)
    head, body = cells[first_code]
    assert body == colab.INSTALL_CELL and "remove-cell" in head  # the shared cell, before any other code
    assert src.with_suffix(".ipynb").exists()  # the notebook the Colab button opens
    assert colab.chapter_repositories(REPO)[src.with_suffix(".ipynb").relative_to(REPO).as_posix()] == CONFIGURED


class _Ran(list):
    def __call__(self, cmd, check=False, **kw):
        self.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)


def test_install_cell_off_colab_does_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    ran = _Ran()
    monkeypatch.setattr(subprocess, "run", ran)
    scope = {"repository": CONFIGURED, "preset": "cpu"}
    exec(colab.INSTALL_CELL, scope)
    assert ran == [] and scope["preset"] == "cpu"


@pytest.mark.parametrize("gpu, expected", [(True, "colab"), (False, "cpu")])
def test_install_cell_on_colab_installs_then_picks_the_preset(monkeypatch, gpu, expected):
    import torch

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    ran = _Ran()
    monkeypatch.setattr(subprocess, "run", ran)
    scope = {"repository": "https://github.com/octo/probe-book", "preset": "cpu"}
    exec(colab.INSTALL_CELL, scope)
    assert ran == [[sys.executable, "-m", "pip", "install", "-q", "probe_utils @ git+https://github.com/octo/probe-book"]]
    assert scope["preset"] == expected


def test_install_cell_on_colab_without_a_repository_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", _Ran())
    with pytest.raises(ParameterError, match="'repository'"):
        exec(colab.INSTALL_CELL, {"repository": "", "preset": "cpu"})
    with pytest.raises(ParameterError, match="'preset'"):
        colab.setup(None)


def test_set_repository_changes_config_and_every_chapter(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_config.yml").write_text((REPO / "_config.yml").read_text())
    (tmp_path / colab.CITATION).write_text((REPO / colab.CITATION).read_text())
    for src in CHAPTERS[:2]:
        for path in (src, src.with_suffix(".ipynb")):
            (tmp_path / "notebooks" / path.name).write_text(path.read_text())
    changed = colab.set_repository("octo/elsewhere", tmp_path)
    assert len(changed) == 6
    assert colab.configured_repository(tmp_path) == "https://github.com/octo/elsewhere"
    assert colab.cited_repository(tmp_path) == "https://github.com/octo/elsewhere"
    assert set(colab.chapter_repositories(tmp_path).values()) == {"https://github.com/octo/elsewhere"}
    nb = json.loads((tmp_path / "notebooks" / CHAPTERS[0].with_suffix(".ipynb").name).read_text())  # still JSON
    assert nb["cells"]
    with pytest.raises(ParameterError, match="'repository'"):
        colab.set_repository("not/a repo", tmp_path)


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


# --- the book's Sphinx extension -------------------------------------------------------------------------------

def _nb(*cells: tuple[list[str], str]) -> dict:
    return {"cells": [{"cell_type": "code", "metadata": {"tags": tags}, "source": src, "outputs": []}
                      for tags, src in cells], "metadata": {}}


def test_one_parameters_cell_shows_the_values_used(ext):
    nb = _nb((["parameters"], 'preset = "cpu"  # ci | cpu\nseeds = [0,\n         1]  # seeds\nreuse = True\nsize = "32×32"  # px'),
             (["injected-parameters"], '# Parameters\npreset = "ci"\nseeds = [4]\nrepository = "x"\nsize = "64×64"\n'),
             ([], "print(preset)"))
    assert ext.merge_parameter_cells(nb)
    assert [c["metadata"]["tags"] for c in nb["cells"]] == [["parameters"], []]
    src = nb["cells"][0]["source"]
    assert 'preset = "ci"  # ci | cpu' in src and "seeds = [4]  # seeds" in src and "reuse = True" in src
    assert 'repository = "x"' in src and "set by the book build" in src and "preset, seeds, size" in src
    assert 'size = "64×64"  # px' in src
    assert ext.notebook_parameters(nb) == {"preset": "ci", "seeds": [4], "reuse": True, "size": "64×64",
                                           "repository": "x"}
    untouched = _nb((["parameters"], "a = 1"), ([], "a"))
    assert not ext.merge_parameter_cells(untouched) and len(untouched["cells"]) == 2


def test_tables_become_csv_files(ext, tmp_path):
    from docutils.core import publish_doctree

    doc = publish_doctree("Summary\n=======\n\n.. list-table::\n   :header-rows: 1\n\n   * - model\n     - mean\n"
                          "   * - VAE, β\n     - 1.5\n\n"
                          ".. raw:: html\n\n   <table><tr><th>a</th><th>b</th></tr><tr><td>1 &lt; 2</td>"
                          "<td>x<br>y</td></tr></table>\n", settings_overrides={"doctitle_xform": False})
    tables = ext.doctree_tables(doc)
    assert tables == [("Summary", [["model", "mean"], ["VAE, β", "1.5"]]), ("Summary", [["a", "b"], ["1 < 2", "x y"]])]
    written = ext.write_csvs(tables, tmp_path)
    assert [w[1] for w in written] == ["summary.csv", "summary-2.csv"]
    assert (tmp_path / "summary.csv").read_text(encoding="utf-8") == 'model,mean\n"VAE, β",1.5\n'


def test_presets_table_comes_from_presets(ext):
    from probe_utils.experiments import PRESETS
    from probe_utils.findings import PAPER_SETTINGS

    header, rows, note = ext.presets_rows()
    by_name = {r[0]: dict(zip(header, r)) for r in rows}
    for name, p in PRESETS.items():
        assert by_name[name]["iterations (at most)"] == f"{p.steps:,}"
        assert by_name[name]["images"] == f"{p.image_size}×{p.image_size}"
        assert by_name[name]["budget per run"] == (
            "none" if p.max_minutes is None else f"{p.max_minutes:g} min of a reference core")
    assert by_name["(the paper)"]["iterations (at most)"] == f"{PAPER_SETTINGS['steps']:,}"
    assert "clevr" in note


def test_fontawesome_script_is_dropped_and_nothing_else(ext):
    head = ('<link href="x.css" rel="stylesheet" />\n  <script defer src="../_static/scripts/fontawesome.js?digest=1">'
            '</script>\n  <link rel="preload" as="script" href="../_static/scripts/bootstrap.js" />')
    out = ext.without_fontawesome_js(head)
    assert "fontawesome" not in out and "x.css" in out and "bootstrap.js" in out


def test_methods_page_does_not_type_the_presets():
    text = (REPO / "book" / "methods.md").read_text()
    assert "{presets-table}" in text
    assert not re.search(r"^\|\s*`?(ci|cpu|colab|paper)`?\s*\|", text, re.M), "a preset row typed into methods.md"
