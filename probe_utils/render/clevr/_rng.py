"""Counter-based random numbers: every draw is a pure function of (seed, scene, keys).

A scene's random choices then never depend on how the batch is split into chunks, on the
device, or on how many other scenes are rendered, so ``render(n, seed)`` is reproducible
everywhere.  The mixing function is SplitMix64 (Steele, Lea & Flood 2014), applied to the
keys one after another.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)

# purposes: one stream per kind of draw
COUNT, SHAPE, COLOR, SIZE, MATERIAL, PAIR, POS_X, POS_Y, ROT = range(9)


def _mix(z: np.ndarray) -> np.ndarray:
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def uniform(seed: int, purpose: int, *keys) -> np.ndarray:
    """Floats in [0, 1), broadcast over the integer arrays ``keys`` (scene, slot, round, ...)."""
    with np.errstate(over="ignore"):
        h = _mix(np.asarray([seed], dtype=np.uint64) * np.uint64(0x100000001B3) + np.uint64(purpose))
        for k in keys:
            h = _mix(h ^ (np.asarray(k, dtype=np.int64).astype(np.uint64) * _M2))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def choice(seed: int, purpose: int, n_options: int, *keys) -> np.ndarray:
    """Integers uniform in 0..n_options-1, broadcast over ``keys``."""
    return np.minimum((uniform(seed, purpose, *keys) * n_options).astype(np.int64), n_options - 1)
