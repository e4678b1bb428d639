"""Running a chapter on Google Colab, and the one place the book's repository is configured.

A chapter's first code cell installs this package on Colab before it can be imported (the cell's own lines do
that, see :data:`INSTALL_CELL`), then calls :func:`setup`, which picks the preset for the machine. The repository
the cell installs from is the chapter's ``repository`` parameter; its default in every chapter is the book's
``repository.url`` in ``_config.yml``. ``python -m probe_utils.colab OWNER/NAME`` changes that address in
``_config.yml``, ``CITATION.cff`` and every chapter at once; ``tests/test_book_config.py`` checks that they agree.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from probe_utils.params import ParameterError

REPO = Path(__file__).resolve().parent.parent
COLAB_MODULE = "google.colab"
_GITHUB = re.compile(r"^(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)?"
                     r"(?P<owner>[A-Za-z0-9][A-Za-z0-9-]*)/(?P<name>[A-Za-z0-9._-]+?)(?:\.git)?/?$")
#: The citation file (Citation File Format) at the repository's root; its ``repository-code`` is the book's repository.
CITATION = "CITATION.cff"
#: The chapters' parameter line that holds the repository (its default is the book's configured repository).
PARAMETER_LINE = re.compile(r'^(?P<head>repository = )"(?P<url>[^"]*)"(?P<tail>.*)$', re.M)

#: The first code cell of every chapter (after the parameters): on Colab, and only there, install probe_utils from
#: ``repository``; then let :func:`setup` choose the preset. It must run before probe_utils is importable.
INSTALL_CELL = """\
import subprocess, sys  # on Colab only: install probe_utils from `repository`, then choose the preset
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"probe_utils @ git+{repository}"], check=True)
from probe_utils.colab import setup; preset = setup(preset, repository)"""


def on_colab() -> bool:
    """True inside a Google Colab runtime (its ``google.colab`` module is loaded)."""
    return COLAB_MODULE in sys.modules


def github_url(value: str, name: str = "repository") -> str:
    """``value`` (``https://github.com/OWNER/NAME``, ``OWNER/NAME``, a ``.git`` or SSH address) as
    ``https://github.com/OWNER/NAME``; ParameterError naming ``name`` otherwise."""
    m = _GITHUB.match(value.strip()) if isinstance(value, str) else None
    if not m:
        raise ParameterError(f"parameter {name!r} must be a GitHub repository, https://github.com/OWNER/NAME or "
                             f"OWNER/NAME; got {value!r}")
    return f"https://github.com/{m['owner']}/{m['name']}"


def configured_repository(repo: Path = REPO) -> str | None:
    """The book's repository, ``repository.url`` in ``repo/_config.yml`` (None when it is not set)."""
    import yaml

    cfg = yaml.safe_load((repo / "_config.yml").read_text()) or {}
    url = (cfg.get("repository") or {}).get("url")
    return github_url(url, "repository.url (in _config.yml)") if url else None


def setup(preset: str, repository: str = "", *, gpu: bool | None = None) -> str:
    """The preset a chapter runs at on this machine: on Colab with a GPU, ``ci`` and ``cpu`` become ``colab``
    (any other preset is kept); anywhere else ``preset`` unchanged. On Colab, ``repository`` is checked too (it is
    what the install line used). ``gpu`` overrides CUDA detection (for tests)."""
    if not isinstance(preset, str):
        raise ParameterError(f"parameter 'preset' must be a preset name such as 'colab'; got {preset!r}")
    if not on_colab():
        return preset
    github_url(repository)
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    if gpu and preset in ("ci", "cpu"):
        print(f"On a Colab GPU: preset {preset!r} -> 'colab' (set preset in the parameters cell to keep another)")
        return "colab"
    if not gpu:
        print("On Colab without a GPU: Runtime > Change runtime type > GPU makes new runs much faster.")
    return preset


def chapter_sources(repo: Path = REPO) -> list[Path]:
    """Every chapter's source and its paired notebook (``notebooks/NN_*.py`` and ``.ipynb``)."""
    return sorted(p for p in (repo / "notebooks").glob("[0-9][0-9]_*") if p.suffix in (".py", ".ipynb"))


def chapter_repositories(repo: Path = REPO) -> dict[str, str | None]:
    """Per chapter file, the default of its ``repository`` parameter (None when it has none)."""
    import json

    out = {}
    for path in chapter_sources(repo):
        text = path.read_text()
        if path.suffix == ".ipynb":
            cells = json.loads(text).get("cells", [])
            text = "\n".join("".join(c.get("source", "")) for c in cells
                             if "parameters" in c.get("metadata", {}).get("tags", []))
        m = PARAMETER_LINE.search(text)
        out[path.relative_to(repo).as_posix()] = m["url"] if m else None
    return out


def cited_repository(repo: Path = REPO) -> str | None:
    """The ``repository-code`` of ``repo/CITATION.cff`` (None without one)."""
    import yaml

    cff = repo / CITATION
    return (yaml.safe_load(cff.read_text()) or {}).get("repository-code") if cff.exists() else None


def set_repository(value: str, repo: Path = REPO) -> list[Path]:
    """Make ``value`` the book's repository: ``repository.url`` in ``_config.yml``, ``repository-code`` in
    ``CITATION.cff`` and the ``repository`` default of every chapter (``.py`` and ``.ipynb``). Returns the files
    changed."""
    url = github_url(value)
    changed = []
    cfg = repo / "_config.yml"
    text = cfg.read_text()
    new = re.sub(r"^(repository:\n(?:[ \t]+.*\n)*?[ \t]+url:[ \t]*).*$", lambda m: m[1] + url, text, count=1,
                 flags=re.M)
    if new == text and configured_repository(repo) != url:
        raise ParameterError(f"{cfg} has no 'repository:' section with a 'url:' line to set")
    if new != text:
        cfg.write_text(new)
        changed.append(cfg)
    cff = repo / CITATION
    if cff.exists():  # the citation file names the code's repository too
        text = cff.read_text()
        new = re.sub(r'^(repository-code:[ \t]*).*$', lambda m: f'{m[1]}"{url}"', text, count=1, flags=re.M)
        if new != text:
            cff.write_text(new)
            changed.append(cff)
    for path in chapter_sources(repo):
        text = path.read_text()
        if path.suffix == ".ipynb":  # the line sits in a JSON string: quotes are escaped there
            new = re.sub(r'(repository = \\")[^"\\]*(\\")', lambda m: m[1] + url + m[2], text, count=1)
        else:
            new = PARAMETER_LINE.sub(lambda m: f'{m["head"]}"{url}"{m["tail"]}', text, count=1)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m probe_utils.colab",
                                 description="Set the book's GitHub repository (Colab buttons and install cells).")
    ap.add_argument("repository", help="OWNER/NAME or https://github.com/OWNER/NAME")
    args = ap.parse_args(argv)
    for path in set_repository(args.repository):
        print(f"updated {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
