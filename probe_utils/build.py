"""The book build: which chapters exist and which experiments each shows, the preset a chapter is executed at,
the Colab launch buttons and the check that a built book is complete. Findings and tables live in
:mod:`probe_utils.findings`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

#: Which experiments each chapter shows (the book command executes a chapter at the largest-scale preset for
#: which all of them have stored records). ``None``: the chapter takes ``auto``; ``[]``: no experiments.
CHAPTERS: dict[str, list[str] | None] = {
    "00_datasets": [],
    "01_numerosity": ["numerosity"],
    "02_color_size_location": ["pie_red", "pie_size", "pie_location"],
    "03_convolution_prototype": ["pie_red", "pie_red_mix"],
    "04_independence": ["indep_red", "indep_size", "indep_location"],
    "05_combinations": ["pie_combos", "mnist_combos"],
    "06_clevr": ["clevr_numerosity", "clevr_pairs_4x4", "clevr_pairs_9x9"],
    "90_scorecard": None,
    "91_instrument_check": None,
    "92_recipe_search": [],
    "93_probe_your_model": [],
}
INDEPENDENCE_EXPERIMENTS: list[str] = CHAPTERS["04_independence"] or []
CLEVR_EXPERIMENTS: list[str] = CHAPTERS["06_clevr"] or []

#: The runs each chapter makes, as data: one entry per ``experiments.run`` call of the chapter's run cell (keep the
#: two in step; ``python -m probe_utils sweep`` plans from this). ``experiment``: the experiment; ``values``,
#: ``models``, ``seeds``: the name of the chapter parameter that gives them (default "models" and "seeds");
#: ``derive``: "mixture_modes" runs each single proportion of the mixtures that ``values`` names; ``scale``: the
#: chapter parameters of width and data-size factors, a call per ``experiments.scaled_settings`` keyword set
#: (``width`` / ``pool_size``, the preset's own size first); ``optional``: the call is skipped when its models
#: parameter is an empty list (a chapter's ``other_models``).
RUN_PLAN: dict[str, list[dict]] = {
    "01_numerosity": [{"experiment": "numerosity", "values": "counts"}],
    "02_color_size_location": [{"experiment": "pie_red", "values": "red_values"},
                               {"experiment": "pie_red", "values": "red_values", "models": "other_models",
                                "optional": True},
                               {"experiment": "pie_size", "values": "size_values"},
                               {"experiment": "pie_location", "values": "location_values"}],
    "03_convolution_prototype": [{"experiment": "pie_red", "values": "mixtures", "derive": "mixture_modes"},
                                 {"experiment": "pie_red_mix", "values": "mixtures"}],
    "04_independence": [{"experiment": name, "values": "nuisance_values"} for name in INDEPENDENCE_EXPERIMENTS],
    "05_combinations": [{"experiment": "pie_combos", "values": "pie_combinations"},
                        {"experiment": "pie_combos", "values": "pie_combinations", "models": "other_models",
                         "optional": True},
                        {"experiment": "mnist_combos", "values": "mnist_combinations"},
                        {"experiment": "pie_combos", "models": "invariance_model", "values": "invariance_combinations",
                         "scale": ("width_factors", "data_factors")}],
    "06_clevr": [{"experiment": "clevr_numerosity", "values": "counts"}] +
                [{"experiment": name, "values": "rare"} for name in CLEVR_EXPERIMENTS[1:]],
}



def skipped(entry: dict, params: dict) -> bool:
    """Whether a :data:`RUN_PLAN` entry makes no runs with these chapter parameters (optional, and no models)."""
    from probe_utils.params import names_any

    return bool(entry.get("optional")) and not names_any(params.get(entry.get("models", "models")))


#: Figures a built chapter page must show (default 1); the scorecard is tables only.
MIN_FIGURES = {"00_datasets": 4, "01_numerosity": 4, "02_color_size_location": 2, "03_convolution_prototype": 2,
               "04_independence": 2, "05_combinations": 3, "06_clevr": 4, "90_scorecard": 0,
               "91_instrument_check": 0, "92_recipe_search": 1, "93_probe_your_model": 2}

#: Pages executed at a fixed preset: the probe-your-model page trains the model it defines at ``ci`` every build
#: (a smoke test; records at `ci` are never committed).
FIXED_PRESET = {"93_probe_your_model": "ci"}


def chapter_preset(stem: str, store=None) -> str:
    """The preset the book executes chapter ``stem`` at when no preset is forced: the largest-scale preset at which
    every run the chapter's own parameters ask for is stored (a preset with only some of them would make the build
    train, or fail), else ``ci``. Chapters without runs of their own: ``auto`` (the scorecard, per experiment) or
    ``cpu`` (pages that only read files)."""
    from probe_utils.experiments import SCALE_ORDER, best_preset

    if stem in FIXED_PRESET:
        return FIXED_PRESET[stem]
    names = CHAPTERS.get(stem, [])
    if names is None:
        return "auto"
    if not names:
        return "cpu"
    if stem not in RUN_PLAN:
        return best_preset(names, store)
    from probe_utils.sweep import plan_runs

    for preset in SCALE_ORDER[:-1]:
        plan = plan_runs([stem], preset=preset, store=store)
        if plan.done and not plan.todo:
            return preset
    return "ci"


#: the environment variable through which the book command tells a chapter which families are not shown yet
PENDING_ENV = "PROBE_BOOK_PENDING"
#: ... and which of the chapter's seeds are not shown yet (comma-separated; empty when all are)
PENDING_SEEDS_ENV = "PROBE_BOOK_PENDING_SEEDS"


def chapter_settings(stem: str, store=None) -> tuple[str, dict, list[str]]:
    """How the book executes chapter ``stem`` from stored records: (preset, parameter overrides, families left out).

    At the largest-scale preset at which every run the chapter asks for is stored: that preset, no overrides. Else at
    the largest-scale preset at which some model families have every run of the chapter stored, for all of its seeds
    or else for its first seeds (each of the chapter's required model parameters keeps at least one family): that
    preset, with the model parameters (and ``seeds``) narrowed to what is stored, and the families still to run named
    (the page says so, and which seeds it shows). More families before more seeds: of the first-seed counts, the one
    that shows the most families, and of those the most seeds (a reader compares families within a chapter, so one
    family's extra seed never hides another family). Else ``ci``."""
    preset = chapter_preset(stem, store)
    if preset != "ci" or stem not in RUN_PLAN:
        return preset, {}, []
    from probe_utils.experiments import SCALE_ORDER
    from probe_utils.sweep import chapter_parameters

    defaults = chapter_parameters(stem)
    seeds = seed_list(defaults.get("seeds", 1))
    for preset in SCALE_ORDER[:-1]:
        best: tuple | None = None
        for k in range(len(seeds), 0, -1):
            base = {} if k == len(seeds) else {"seeds": seeds[:k]}
            found = _stored_families(stem, preset, store, defaults, base)
            if found is None:
                continue
            shown = len(_shown_families(stem, defaults, found[0]))
            if best is None or shown > best[0]:
                best = (shown, {**base, **found[0]}, found[1])
        if best is not None:
            return preset, best[1], best[2]
    return "ci", {}, []


def _shown_families(stem: str, defaults: dict, overrides: dict) -> set[str]:
    """The model families chapter ``stem``'s page shows with ``overrides`` (each model parameter, narrowed or not)."""
    out: set[str] = set()
    for name in {e.get("models", "models") for e in RUN_PLAN[stem]}:
        value = overrides.get(name, defaults[name])
        out |= {value} if isinstance(value, str) else set(value)
    return out


def chapter_records(stem: str, experiments: list[str], store=None
                    ) -> tuple[str, dict[str, list[dict]], list[str], list[int] | None]:
    """The records chapter ``stem``'s page shows, by experiment, as the book builds it (:func:`chapter_settings`):
    (preset, records, families left out, the first seeds shown where not all its seeds are; else None). At ``ci``
    (smoke tests, never part of the plan): every stored ``ci`` record of ``experiments``."""
    from probe_utils.store import Store
    from probe_utils.sweep import _stored, plan_runs

    store = store if isinstance(store, Store) else Store(store)
    preset, overrides, pending = chapter_settings(stem, store)
    if preset == "ci" or stem not in RUN_PLAN:
        return preset, {n: list(store.records(n, preset)) for n in experiments}, [], None
    out: dict[str, list[dict]] = {n: [] for n in experiments}
    for t in plan_runs([stem], preset=preset, store=store, overrides=overrides).done:
        rec = _stored(store, t)
        if rec is not None and t.experiment in out:
            out[t.experiment].append(rec)
    return preset, out, pending, overrides.get("seeds")


def seed_list(seeds: Any) -> list[int]:
    """A chapter's ``seeds`` parameter as the list of seeds it means (a number n means 0..n-1)."""
    return list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]


def _stored_families(stem: str, preset: str, store, defaults: dict, base: dict) -> tuple[dict, list[str]] | None:
    """The model-parameter overrides that keep the families with every run of chapter ``stem`` stored at ``preset``
    (under the ``base`` overrides), and the families left out; None when no page can be made from them."""
    from probe_utils.sweep import plan_runs

    plan = plan_runs([stem], preset=preset, store=store, overrides=base)
    complete = {t.model for t in plan.done} - {t.model for t in plan.todo}
    if not complete:
        return None
    names = list(dict.fromkeys(e.get("models", "models") for e in RUN_PLAN[stem]))
    optional = {e.get("models", "models") for e in RUN_PLAN[stem] if e.get("optional")}
    overrides: dict = {}
    pending: list[str] = []
    for name in names:
        value = defaults[name]
        if isinstance(value, str):  # one family (e.g. invariance_model): all of its runs, or no page
            if value not in complete:
                return None
            continue
        keep = [m for m in value if m in complete]
        if not keep and name not in optional:
            return None
        pending += [m for m in value if m not in complete and m not in pending]
        if keep != list(value):
            overrides[name] = keep
    check = plan_runs([stem], preset=preset, store=store, overrides={**base, **overrides})
    return (overrides, pending) if check.done and not check.todo else None


COLAB_URL = "https://colab.research.google.com"
_GITHUB = re.compile(r"^(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)?"
                     r"(?P<owner>[A-Za-z0-9][A-Za-z0-9-]*)/(?P<name>[A-Za-z0-9._-]+?)(?:\.git)?/?$")


def repository_url(explicit: str | None = None, repo: Path | None = None) -> str | None:
    """The book's GitHub repository as ``https://github.com/OWNER/NAME``: ``explicit`` (a URL or OWNER/NAME), else
    ``$PROBE_BOOK_REPOSITORY``, else ``$GITHUB_REPOSITORY`` (set in GitHub Actions), else ``repository.url`` in
    ``repo/_config.yml`` (the book's one configured address); None when none is set (no Colab buttons)."""
    import os

    from probe_utils.colab import configured_repository
    from probe_utils.params import ParameterError

    candidates = [("repository", explicit), ("PROBE_BOOK_REPOSITORY", os.environ.get("PROBE_BOOK_REPOSITORY")),
                  ("GITHUB_REPOSITORY", os.environ.get("GITHUB_REPOSITORY"))]
    for name, value in candidates:
        if value:
            m = _GITHUB.match(value.strip())
            if not m:
                raise ParameterError(f"parameter {name!r} must be a GitHub repository, https://github.com/OWNER/NAME "
                                     f"or OWNER/NAME; got {value!r}")
            return f"https://github.com/{m['owner']}/{m['name']}"
    config = (repo or Path.cwd()) / "_config.yml"
    return configured_repository(config.parent) if config.exists() else None


def launch_config(repo: Path, url: str, branch: str = "main") -> Path:
    """Write ``_build/_config.yml``: the book's ``_config.yml`` plus the repository and Colab launch buttons for
    ``url`` (pass it to ``jupyter-book build --config``). Returns its path."""
    import yaml

    cfg = yaml.safe_load((repo / "_config.yml").read_text())
    cfg["repository"] = {"url": url, "branch": branch, "path_to_book": ""}
    sphinx = cfg.get("sphinx") or {}
    if sphinx.get("local_extensions"):  # Jupyter Book finds them relative to the config file, which moves here
        sphinx["local_extensions"] = {k: str((repo / v).resolve()) for k, v in sphinx["local_extensions"].items()}
    cfg.setdefault("launch_buttons", {})["colab_url"] = COLAB_URL
    cfg.setdefault("html", {}).update(use_repository_button=True, use_issues_button=False)
    out = repo / "_build" / "_config.yml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# generated by `python -m probe_utils book` from _config.yml; do not edit\n" +
                   yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return out


def colab_link(url: str, stem: str, branch: str = "main") -> str:
    """The Colab address of chapter ``stem``'s committed notebook."""
    return f"{COLAB_URL}/github/{url.removeprefix('https://github.com/')}/blob/{branch}/notebooks/{stem}.ipynb"


def check_build(repo: Path, url: str | None = None, branch: str = "main") -> list[str]:
    """Problems in a built book: a chapter page missing, a chapter page without figures or with an error output,
    and, with a repository ``url``, a chapter page without its Colab button or whose notebook does not exist."""
    html = repo / "_build" / "html"
    problems = []
    if not (html / "index.html").exists():
        return [f"{html / 'index.html'} was not built"]
    for src in sorted((repo / "notebooks").glob("[0-9][0-9]_*.py")):
        page = html / "notebooks" / f"{src.stem}.html"
        if not page.exists():
            problems.append(f"chapter page {page.relative_to(repo)} was not built")
            continue
        text = page.read_text(errors="replace")
        n_img = len(re.findall(r"<img [^>]*src=\"[^\"]*(?:\.png|data:image)", text))
        need = MIN_FIGURES.get(src.stem, 1)
        if n_img < need:
            problems.append(f"{page.relative_to(repo)} shows {n_img} figures (expected at least {need})")
        if re.search(r"(Traceback \(most recent call last\)|ParameterError|ModuleNotFoundError)", text):
            problems.append(f"{page.relative_to(repo)} contains an error output")
        if url is not None:
            link = colab_link(url, src.stem, branch)
            if link not in text:
                problems.append(f"{page.relative_to(repo)} has no Colab button for {link}")
            if not src.with_suffix(".ipynb").exists():
                problems.append(f"the Colab button of {page.relative_to(repo)} points at a notebook that does not "
                                f"exist: {src.with_suffix('.ipynb').relative_to(repo)}")
    return problems
