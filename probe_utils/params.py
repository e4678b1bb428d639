"""Parameter checks shared by renderers, experiments, the CLI and notebooks.

Every check raises :class:`ParameterError` whose message names the parameter, what is
allowed and what was given, before any work is done.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable, Sequence


class ParameterError(ValueError):
    """A user-facing parameter is out of range or of the wrong type."""


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
