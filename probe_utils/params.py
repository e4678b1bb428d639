"""Parameter checks shared by renderers, experiments, the CLI and notebooks.

Every check raises :class:`ParameterError` whose message names the parameter, what is
allowed and what was given, before any work is done.
"""

from __future__ import annotations

import ast
import contextlib
import json
import numbers
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

_NAMED = re.compile(r"parameter '(?P<name>[^']+)'")


class ParameterError(ValueError):
    """A user-facing parameter is out of range or of the wrong type. ``parameter``: the name the message gives
    (e.g. ``values[0]``), read from the message when not given."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        m = _NAMED.search(message) if parameter is None else None
        self.parameter = parameter if parameter is not None else (m["name"] if m else None)


def _fail(name: str, allowed: str, value: Any) -> None:
    raise ParameterError(f"parameter {name!r} must be {allowed}; got {value!r}")


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer (not a bool) within [lo, hi]."""
    rng = f" in {lo}..{hi}" if lo is not None and hi is not None else (
        f" >= {lo}" if lo is not None else (f" <= {hi}" if hi is not None else ""))
    allowed = f"an integer{rng}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            _fail(name, allowed, value)
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        _fail(name, allowed, value)
    return value


def check_float(name: str, value: Any, lo: float | None = None, hi: float | None = None) -> float:
    """Return ``value`` as a float if it is a real number within [lo, hi]."""
    rng = f" in [{lo}, {hi}]" if lo is not None and hi is not None else (
        f" >= {lo}" if lo is not None else (f" <= {hi}" if hi is not None else ""))
    allowed = f"a number{rng}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(name, allowed, value)
    value = float(value)
    if value != value or (lo is not None and value < lo) or (hi is not None and value > hi):
        _fail(name, allowed, value)
    return value


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        _fail(name, "one of " + ", ".join(repr(a) for a in allowed), value)
    return value


def check_list(name: str, value: Any, item_check, *, min_len: int = 1) -> list:
    """Return ``value`` as a list (a scalar becomes a one-item list), each item checked by
    ``item_check(f"{name}[i]", item)``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, set, tuple)):
        if isinstance(value, (numbers.Number, str)):
            value = [value]
        else:
            _fail(name, "a list", value)
    items = [item_check(f"{name}[{i}]", v) for i, v in enumerate(value)]
    if len(items) < min_len:
        _fail(name, f"a list of at least {min_len} item(s)", value)
    return items


def check_seed(name: str, value: Any) -> int:
    """A seed is a non-negative integer below 2**31."""
    return check_int(name, value, 0, 2**31 - 1)


def renamed(err: ParameterError, names: Mapping[str, str], scalars: Iterable[str] = ()) -> ParameterError:
    """``err`` naming the caller's parameter instead of an internal one: with ``names={"values": "red_values"}``,
    "parameter 'values[2]' must be ..." becomes "parameter 'red_values[2]' must be ...". For an internal name in
    ``scalars`` (the caller gave one value, not a list) the index ``[0]`` is dropped."""
    old = err.parameter or ""
    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", old)
    if not m or m[0] not in names:
        return err
    rest = old[m.end():]
    if m[0] in scalars and rest == "[0]":
        rest = ""
    new = names[m[0]] + rest
    return err if new == old else ParameterError(str(err).replace(repr(old), repr(new), 1), new)


@contextlib.contextmanager
def named_as(names: Mapping[str, str], scalars: Iterable[str] = ()) -> Iterator[None]:
    """Inside, a ParameterError about an internal parameter is raised again naming the caller's own (see
    :func:`renamed`): ``with named_as({"values": "red_values"}): experiments.check_parameters(...)``."""
    try:
        yield
    except ParameterError as e:
        raise renamed(e, names, tuple(scalars)) from None


# ---------------------------------------------------------------------------------------------------------------
# chapters' parameters (papermill): read from a chapter's parameters cell, checked under the chapter's own names


def notebook_parameters(path: str | Path) -> dict[str, Any]:
    """The names and default values of a chapter's ``parameters`` cell (a jupytext ``.py`` or an ``.ipynb``); a
    default that is not a literal is given as its source text."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        cells = [c for c in json.loads(text).get("cells", []) if "parameters" in c.get("metadata", {}).get("tags", [])]
        source = "".join(cells[0]["source"]) if cells else None
    else:
        lines = text.splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("# %%") and '"parameters"' in line), None)
        source = None
        if start is not None:
            end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("# %%")), len(lines))
            source = "\n".join(lines[start + 1:end])
    if source is None:
        raise ParameterError(f"{path} has no cell tagged 'parameters'")
    out: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                out[node.targets[0].id] = ast.get_source_segment(source, node.value)
    return out


def check_unknown(given: Iterable[str], known: Iterable[str], where: str) -> None:
    """Refuse a name in ``given`` that is not in ``known`` (a misspelt papermill ``-p`` would otherwise be ignored
    silently: the chapter would run on its defaults)."""
    known = sorted(set(known))
    for name in given:
        if name not in known:
            close = [k for k in known if _similar(name, k)]
            raise ParameterError(f"parameter {name!r} is not a parameter of {where}"
                                 f"{f' (did you mean {close[0]!r}?)' if close else ''}; its parameters: "
                                 f"{', '.join(known)}", name)


def _similar(a: str, b: str) -> bool:
    import difflib

    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.75


def names_any(value: Any) -> bool:
    """Whether a list parameter (e.g. ``other_models``) names anything: papermill's ``-p NAME "[]"`` passes the text
    ``'[]'``, which names nothing although the string is not empty."""
    if isinstance(value, str):
        text = value.strip()
        return text not in ("", "[]", "()", "None")
    return bool(value)


def check_chapter(stem: str, params: Mapping[str, Any]) -> None:
    """Check a chapter's parameters before it does any work; ParameterError names the chapter's own parameter
    (``red_values[0]``, ``pie_combinations[1]``, ``invariance_model``, ``n_check``, ...) and what is allowed.

    ``params``: the chapter's parameters by name (a chapter passes ``globals()``; names it does not declare are
    ignored). The runs are checked as :data:`probe_utils.build.RUN_PLAN` says the chapter makes them."""
    from probe_utils import experiments as ex
    from probe_utils.build import CHAPTERS, RUN_PLAN, skipped

    check_choice("chapter", stem, CHAPTERS)
    p = dict(params)
    if p.get("imports") is not None:  # first: the families these modules register are valid model names below
        from probe_utils.models import import_modules

        import_modules(p["imports"], source="imports")
    presets = list(ex.PRESETS) if CHAPTERS[stem] is not None else ["auto", *ex.PRESETS]
    if "preset" in p:
        check_choice("preset", p["preset"], presets)
    if p.get("repository"):
        from probe_utils.colab import github_url

        github_url(p["repository"])
    for name, check in _EXTRA.get(stem, {}).items():
        if name in p:
            check(name, p[name])
    for entry in RUN_PLAN.get(stem, []):
        if skipped(entry, p):
            continue
        exp = ex.EXPERIMENTS[entry["experiment"]]
        names = {"models": entry.get("models", "models"), "values": entry["values"],
                 "seeds": entry.get("seeds", "seeds")}
        scalars = [k for k, v in names.items() if isinstance(p.get(v), (str, int, float))]
        with named_as({exp.value_name: names["values"], **names}, scalars):
            if entry.get("derive") == "mixture_modes":  # its runs are valid when the mixtures are
                for i, v in enumerate(ex._as_list("values", p[names["values"]])):
                    ex.check_mixture(f"values[{i}]", v)
                continue
            sizes: list[dict] = [{}]
            if "scale" in entry:
                wf, df = entry["scale"]
                sizes = ex.scaled_settings(p["preset"], width_factors=p[wf], data_factors=p[df])
            for extra in sizes:
                ex.check_parameters(entry["experiment"], models=p[names["models"]], values=p[names["values"]],
                                    seeds=p[names["seeds"]], preset=p["preset"], device=p.get("device", "auto"),
                                    reuse=p.get("reuse", True), **extra)


def _optional_int(lo: int, hi: int):
    def check(name: str, value: Any) -> Any:
        return None if value is None else check_int(name, value, lo, hi)
    return check


def _share(name: str, value: Any) -> float:
    v = check_float(name, value, 0.0, 1.0)
    if v <= 0:
        _fail(name, "a number in (0, 1]", value)
    return v


def _seeds(name: str, value: Any) -> Any:
    """A number of seeds (1..1000) or a list of seeds, as :func:`probe_utils.experiments.run` takes them."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return check_int(name, value, 1, 1000)
    return check_list(name, value, check_seed)


def _device(name: str, value: Any) -> Any:
    from probe_utils.train import pick_device

    with named_as({"device": name}):
        pick_device(value)
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(name, "True or False", value)
    return value


#: checks of the parameters of chapters that make no runs (the others are checked through their runs)
_EXTRA: dict[str, dict[str, Any]] = {
    "00_datasets": {"n_check": _optional_int(1, 100_000), "seed": check_seed},
    "91_instrument_check": {"records_per_family": lambda n, v: check_int(n, v, 1, 100)},
    "92_recipe_search": {"target": _share},
    # the page trains a model it defines itself (no RUN_PLAN entry: the sweep cannot make its runs)
    "93_probe_your_model": {"counts": lambda n, v: check_list(n, v, lambda m, x: check_int(m, x, 1, 16)),
                            "seeds": _seeds, "device": _device, "reuse": _flag},
}


def _memory_bytes() -> int:
    """This machine's physical memory (16 GiB where the system does not say)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 16 * 2**30


def check_batch(name: str, n: Any, size: int, channels: int = 3) -> int:
    """``n`` images of ``size`` x ``size`` pixels: an integer >= 1 whose float32 batch takes at most a quarter of this
    machine's memory (a renderer makes a few temporary copies), so a huge ``n`` is refused before any allocation."""
    n = check_int(name, n, 1)
    per_image = channels * int(size) * int(size) * 4
    most = max(1, _memory_bytes() // 4 // per_image)
    if n > most:
        _fail(name, f"an integer in 1..{most} for {size}x{size} images (their float32 batch must fit in a quarter of "
                    f"this machine's {_memory_bytes() / 2**30:.0f} GiB)", n)
    return n
