"""CLEVR-like scenes from a batched pure-torch ray caster, with exact labels.

A fixed camera looks down at a grey ground plane at 45 degrees, like CLEVR's.  One key light
(front left) casts soft shadows (four stratified light directions, one per sub-pixel of
each 2x2 block, averaged by the 2x down-sampling), plus a weak fill light and ambient light.
Shading is Lambert + Blinn-Phong; "rubber" is matte, "metal" is darker in diffuse, has a
sharp highlight and mirrors a bright sky / dark ground in its own colour.  Objects: the
shapes in ``SHAPES`` (sphere, cube, cylinder, cone, and a flat torus lying on the ground),
CLEVR's eight colours ``COLORS`` (CLEVR's sRGB values), CLEVR's two sizes ``SIZES`` (the
object's "radius": 0.35 and 0.7 scene units) and two ``MATERIALS``.  Images are rendered
at twice the requested size and average-pooled.  (The paper's numerosity scenes, Fig. 2-3,
used CLEVR's sphere, cube and cylinder only: ``shapes=["sphere", "cube", "cylinder"]``.)

Placement.  Objects stand on the ground at uniform random positions whose whole bounding
box projects inside the frame, with a random rotation about the vertical, and never
intersect in 3-D (footprints at least 0.12 apart).  The paper rejects scenes where two
objects overlap by more than 10 %; here each object must keep at least ``min_visible``
(0.9) of its silhouette visible: after a cheap hit-only pass the occluded objects (only
those) are moved, until every object passes.  Every random draw is a pure function of
(seed, scene index, object, attempt), so results do not depend on the batch size, and
scene i of ``render(n, seed)`` is the same for every n.  (On another device, float rounding can
in rare borderline cases flip a visibility decision and so move an object.)

Labels (numpy, first axis n; per-object arrays are (n, 10, ...) padded with -1 or nan,
objects sorted left to right by their projected position):

* ``count`` (n,); ``shape``, ``color``, ``size``, ``material`` (n, 10) int codes into
  ``SHAPES``, ``COLOR_NAMES``, ``SIZE_NAMES``, ``MATERIALS``; ``rotation`` (n, 10) radians.
* ``position`` (n, 10, 3): the centre of the object's bounding box in scene units,
  (x, y, h/2) with h the object's height (sphere, cube: their centre; cylinder and cone:
  the middle of the axis; torus: its centre).  The ground is z = 0.  For a cone the centroid
  of its image sits a few pixels *below* this point (its mass is near the base).
* ``xy`` (n, 10, 2): ``position`` projected into the image, in output pixels, x to the
  right and y down, pixel (i, j) covering [j, j+1) x [i, i+1).
* ``visible`` (n, 10): visible fraction of each object's silhouette (>= ``min_visible``),
  counted on the 2x sub-pixel grid.
* ``pair`` (n,): which row of ``pairs`` each scene drew (-1 without ``pairs``).

Two-object scenes (Fig. 9 and 23 of the paper).  In every scene with exactly two objects the
objects are ordered by image x: object "a" (slot 0) is the left one, "b" the right one, at
least ``pair_gap`` of the image width apart (centre to centre), so "left" is never ambiguous.
``pairs`` lists the allowed combinations as rows ``(shape_a, shape_b, color_a, color_b)``;
each image draws one row uniformly (repeat a row to weight it), size and material stay
random.  The paper's grids are 4x4 or 9x9 cells: rows of the grid are ordered shape pairs,
columns are ordered colour pairs; a training set is the list of its allowed cells.
``figure9_pairs`` builds them (4x4: shapes {torus, cone} x colours {blue, red}; 9x9:
shapes {cone, cylinder, torus} x colours {red, blue, green}).

Images are 32, 64 or 128 px.  Everything runs on ``device`` (CUDA included): the scene
parameters are drawn on the CPU, each pass over the objects copies them to the device once,
and the only device-to-host reads are the visibility counts, once per placement round.

Speed (``speed_report()``, images per CPU-second, one thread, all shapes; a shared 2-core
AMD EPYC, two runs): 64 px: 314-331 (3 objects), 109-118 (10 objects); 128 px: 114-121 (3),
35-41 (10).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import torch

from probe_utils.params import ParameterError, check_batch, check_choice, check_float, check_int, check_seed

from . import _raster, _scene
from ._scene import COLOR_NAMES, COLORS, MATERIALS, MAX_OBJECTS, SHAPES, SIZE_NAMES, SIZES

__all__ = ["render", "figure9_pairs", "speed_report", "SHAPES", "COLORS", "COLOR_NAMES", "SIZES",
           "SIZE_NAMES", "MATERIALS", "MAX_OBJECTS", "IMAGE_SIZES"]

IMAGE_SIZES = (32, 64, 128)
MAX_ROUNDS = 60  # re-placement rounds before a scene is started afresh
_FRESH_AFTER = 8  # rounds of moving only the occluded objects before re-placing the scene


def _names(name: str, value: Any, allowed: Sequence[str]) -> list[int]:
    """Codes of a list of names (a single name is a one-item list); None means all."""
    if value is None:
        return list(range(len(allowed)))
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) == 0:
        raise ParameterError(f"parameter {name!r} must be a non-empty list of names from "
                             f"{', '.join(allowed)}; got {value!r}")
    codes = []
    for i, v in enumerate(value):
        check_choice(f"{name}[{i}]", v, allowed)
        codes.append(list(allowed).index(v))
    return sorted(set(codes))


def _counts(value: Any, n: int) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple, np.ndarray, torch.Tensor)):
        arr = np.asarray(value.cpu() if isinstance(value, torch.Tensor) else value)
        if arr.shape != (n,):
            raise ParameterError(f"parameter 'count' must be an integer in 1..{MAX_OBJECTS} or an array of n={n} "
                                 f"such integers; got shape {arr.shape}")
        return np.array([check_int(f"count[{i}]", v.item(), 1, MAX_OBJECTS) for i, v in enumerate(arr)],
                        dtype=np.int64)
    return np.full(n, check_int("count", value, 1, MAX_OBJECTS), dtype=np.int64)


def _pairs(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    allowed = f"a non-empty list of rows (shape_a, shape_b, color_a, color_b) with shapes from " \
              f"{', '.join(SHAPES)} and colours from {', '.join(COLOR_NAMES)}"
    try:
        rows = [list(r) for r in value]
    except TypeError:
        rows = None
    if not rows or any(len(r) != 4 for r in rows):
        raise ParameterError(f"parameter 'pairs' must be {allowed}; got {value!r}")
    out = np.zeros((len(rows), 4), dtype=np.int64)
    for i, r in enumerate(rows):
        for j, (v, names) in enumerate(zip(r, (SHAPES, SHAPES, COLOR_NAMES, COLOR_NAMES))):
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v < len(names):
                out[i, j] = int(v)
            elif isinstance(v, str) and v in names:
                out[i, j] = names.index(v)
            else:
                raise ParameterError(f"parameter 'pairs' must be {allowed}; row {i} has {v!r}")
    return out


def _chunk_size(res: int, device: torch.device) -> int:
    budget = 2**27 if device.type == "cuda" else 2**23
    return max(1, budget // (MAX_OBJECTS * res * res))


def render(n: int = 64, seed: int = 0, device: Any = None, size: int = 64, *, count: Any = None,
           shapes: Any = None, colors: Any = None, sizes: Any = None, materials: Any = None,
           pairs: Any = None, min_visible: float = 0.9, pair_gap: float = 0.08, masks: bool = False
           ) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """Render ``n`` CLEVR-like scenes; returns images (n, 3, size, size) in [0, 1] on ``device``
    and their exact labels (see the module docstring).

    count: objects per scene, an int or an array of n ints in 1..10 (default: uniform 1..10;
    2 when ``pairs`` is given).  shapes, colors, sizes, materials: the allowed names (default:
    all).  pairs: allowed (shape_a, shape_b, color_a, color_b) rows for two-object scenes
    (names or codes), a for the left object.  min_visible: least visible fraction of every
    object.  pair_gap: least horizontal distance (image fraction) between the two objects of a
    two-object scene.  masks: also return ``labels["mask"]``, (n, 2*size, 2*size) int8, the
    index (in the labels' left-to-right order) of the object seen at each rendered sub-pixel,
    -1 for the ground.  Scenes that cannot be placed (e.g. 10 objects all ``sizes="large"``; up
    to 8 large ones fit) raise ``RuntimeError`` after a bounded search.
    """
    n = check_int("n", n, 1)
    seed = check_seed("seed", seed)
    size = check_choice("size", size, IMAGE_SIZES)
    n = check_batch("n", n, 2 * size)  # rendered at twice the size, then averaged down
    counts = _counts(count, n)
    shape_codes = _names("shapes", shapes, SHAPES)
    color_codes = _names("colors", colors, COLOR_NAMES)
    size_codes = _names("sizes", sizes, SIZE_NAMES)
    material_codes = _names("materials", materials, MATERIALS)
    pair_rows = _pairs(pairs)
    min_visible = check_float("min_visible", min_visible, 0.0, 1.0)
    pair_gap = check_float("pair_gap", pair_gap, 0.0, 0.5)
    if pair_rows is not None:
        if counts is not None and np.any(counts != 2):
            raise ParameterError(f"parameter 'count' must be 2 (or None) when 'pairs' is given; got {count!r}")
        if shapes is not None or colors is not None:
            raise ParameterError("parameters 'shapes' and 'colors' must be None when 'pairs' is given "
                                 "(the pairs fix both)")
        counts = np.full(n, 2, dtype=np.int64)
    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as e:
        raise ParameterError(f"parameter 'device' must be a torch device such as 'cpu' or 'cuda'; "
                             f"got {device!r}") from e

    sc = _scene.draw_attributes(n, seed, counts, shape_codes, color_codes, size_codes, material_codes, pair_rows)
    _scene.place_scenes(sc, seed, np.arange(n), pair_gap)
    res = 2 * size
    fr = _raster.frame(res, dev)
    images = torch.empty((n, 3, size, size), device=dev)
    visible = np.full((n, MAX_OBJECTS), np.nan)
    mask = np.empty((n, res, res), dtype=np.int8) if masks else None
    step = _chunk_size(res, dev)
    for start in range(0, n, step):
        ids = np.arange(start, min(n, start + step))
        hits = _settle(sc, seed, ids, fr, dev, min_visible, pair_gap, visible)
        sub = _raster.shade(fr, sc, ids, hits, dev)
        if mask is not None:
            mask[ids] = hits.oid.view(len(ids), res, res).cpu().numpy()
        images[ids[0]:ids[-1] + 1] = torch.nn.functional.avg_pool2d(sub, 2)
    return images, _labels(sc, visible, size, mask)


def _settle(sc: _scene.Scenes, seed: int, ids: np.ndarray, fr: _raster.Frame, dev: torch.device,
            min_visible: float, pair_gap: float, visible: np.ndarray) -> _raster.Hits:
    """Cast primary rays for the scenes ``ids``, moving occluded objects until every object
    keeps ``min_visible`` of its silhouette; fills ``visible`` and returns the hits."""
    p = fr.res * fr.res
    out = _raster.Hits(torch.empty((len(ids), p), device=dev), torch.empty((len(ids), p), dtype=torch.int64,
                       device=dev), torch.empty((3, len(ids), p), device=dev))
    todo = np.arange(len(ids))  # positions in ids
    rounds = np.zeros(len(ids), dtype=np.int64)
    for _ in range(MAX_ROUNDS):
        g = ids[todo]
        hits, sil, vis = _raster.primary(fr, sc, g, dev)
        if len(todo) == len(ids):
            out = hits
        else:
            sel = torch.as_tensor(todo, device=dev)
            out.t[sel], out.oid[sel], out.normal[:, sel] = hits.t, hits.oid, hits.normal
        sil, vis = sil.cpu().numpy().astype(np.int64), vis.cpu().numpy().astype(np.int64)
        frac = np.where(sil > 0, vis / np.maximum(sil, 1), 0.0)
        present = np.arange(MAX_OBJECTS)[None, :] < sc.count[g][:, None]
        visible[g] = np.where(present, frac, np.nan)
        bad = present & (frac < min_visible)
        again = bad.any(1)
        if not again.any():
            return out
        todo, bad, g = todo[again], bad[again], g[again]
        rounds[todo] += 1
        # move only the occluded objects; every few rounds start the scene afresh
        fresh = rounds[todo] % _FRESH_AFTER == 0
        _scene.place_scenes(sc, seed, g[fresh], pair_gap)
        for slot in range(MAX_OBJECTS):
            move = np.flatnonzero(~fresh & bad[:, slot])
            found = _scene.place(sc, seed, g[move], slot, pair_gap)
            fresh[move[~found]] = True
            _scene.place_scenes(sc, seed, g[move[~found]], pair_gap)
    raise RuntimeError("clevr: could not reach the visibility rule; lower 'min_visible' or use fewer objects")


def _labels(sc: _scene.Scenes, visible: np.ndarray, size: int, mask: np.ndarray | None) -> dict[str, np.ndarray]:
    s = sc.s
    shape0 = np.maximum(sc.shape, 0)
    h = _scene.HEIGHT[shape0] * s
    u, v = _scene.CAMERA.project(sc.x, sc.y, h / 2)
    order = np.argsort(np.where(np.isnan(u), np.inf, u), axis=1, kind="stable")

    def srt(a: np.ndarray) -> np.ndarray:
        return np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1)

    out = {
        "count": sc.count.copy(),
        "shape": srt(sc.shape), "color": srt(sc.color), "size": srt(sc.size), "material": srt(sc.material),
        "rotation": srt(sc.rot),
        "position": srt(np.stack([sc.x, sc.y, h / 2], -1)),
        "xy": srt(np.stack([u * size, v * size], -1)),
        "visible": srt(visible),
        "pair": sc.pair.copy(),
    }
    if mask is not None:
        rank = np.argsort(order, axis=1).astype(np.int8)  # slot -> left-to-right index
        scene = np.arange(len(mask))[:, None, None]
        out["mask"] = np.where(mask >= 0, rank[scene, np.maximum(mask, 0)], -1).astype(np.int8)
    return out


def figure9_pairs(grid: int = 4, rare: str = "shape") -> dict[str, Any]:
    """The paper's Fig. 9 (rare="shape") and Fig. 23 (rare="color") training grids.

    Rows of a grid are ordered shape pairs (a left, b right), columns ordered colour pairs.
    4x4: shapes {torus, cone}, colours {blue, red}; Fig. 9A: the shape pair torus-cone only
    takes blue-red; our Fig. 23 analogue: the colour pair blue-red only comes as torus-cone.
    9x9: shapes {cone, cylinder, torus}, colours {red, blue, green}; Fig. 9C: cone-cylinder only
    takes red-blue or blue-green; our Fig. 23 analogue: red-blue only comes as cone-cylinder or
    torus-cone.  (The paper does not list the 9x9 grid's third shape nor Fig. 23's cells; these
    are our choice.)  Returns shape_pairs, color_pairs, allowed (bool grid) and pairs (the rows
    for ``render(pairs=...)``).
    """
    grid = check_choice("grid", grid, (4, 9))
    rare = check_choice("rare", rare, ("shape", "color"))
    if grid == 4:
        shp, col = ("torus", "cone"), ("blue", "red")
        rare_shape, rare_colors = ("torus", "cone"), [("blue", "red")]
        rare_color, rare_shapes = ("blue", "red"), [("torus", "cone")]
    else:
        shp, col = ("cone", "cylinder", "torus"), ("red", "blue", "green")
        rare_shape, rare_colors = ("cone", "cylinder"), [("red", "blue"), ("blue", "green")]
        rare_color, rare_shapes = ("red", "blue"), [("cone", "cylinder"), ("torus", "cone")]
    shape_pairs = [(a, b) for a in shp for b in shp]
    color_pairs = [(a, b) for a in col for b in col]
    allowed = np.ones((len(shape_pairs), len(color_pairs)), dtype=bool)
    if rare == "shape":
        allowed[shape_pairs.index(rare_shape)] = [c in rare_colors for c in color_pairs]
    else:
        allowed[:, color_pairs.index(rare_color)] = [s in rare_shapes for s in shape_pairs]
    rows = [(sp[0], sp[1], cp[0], cp[1]) for i, sp in enumerate(shape_pairs) for j, cp in enumerate(color_pairs)
            if allowed[i, j]]
    return {"shape_pairs": shape_pairs, "color_pairs": color_pairs, "allowed": allowed, "pairs": rows}


def speed_report(threads: int = 1, repeats: int = 1, clock: str = "cpu") -> dict[str, float]:
    """Images per second on the CPU with ``threads`` torch threads: 64 and 128 px, 3 and 10
    objects (all shapes, sizes, colours, materials), best of ``repeats``.  ``clock="cpu"`` times
    the process's CPU time (with one thread: the speed of an otherwise idle core, robust to
    other work on a shared machine); ``"wall"`` the elapsed time.  Takes a few seconds."""
    threads = check_int("threads", threads, 1, 64)
    repeats = check_int("repeats", repeats, 1, 100)
    timer = {"cpu": time.process_time, "wall": time.perf_counter}[check_choice("clock", clock, ("cpu", "wall"))]
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    out: dict[str, float] = {}
    try:
        render(4, seed=1, size=64, count=3)
        for size, n in ((64, 48), (128, 16)):
            for k in (3, 10):
                best = 0.0
                for r in range(repeats):
                    t0 = timer()
                    render(n, seed=100 + r, size=size, count=k)
                    best = max(best, n / max(timer() - t0, 1e-9))
                out[f"{size}px_{k}obj"] = round(best, 1)
    finally:
        torch.set_num_threads(old)
    return out
