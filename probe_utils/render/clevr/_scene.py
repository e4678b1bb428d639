"""Scene constants, the fixed camera and light, and seeded object placement (numpy, CPU)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _rng

SHAPES: tuple[str, ...] = ("sphere", "cube", "cylinder", "cone", "torus")
# CLEVR's colours (properties.json of the CLEVR generator), sRGB 0..255
COLORS: dict[str, tuple[int, int, int]] = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)
# CLEVR's two sizes: the object's "radius" in scene units
SIZES: dict[str, float] = {"small": 0.35, "large": 0.7}
SIZE_NAMES: tuple[str, ...] = tuple(SIZES)
MATERIALS: tuple[str, ...] = ("rubber", "metal")
MAX_OBJECTS = 10

SPHERE, CUBE, CYLINDER, CONE, TORUS = range(5)
# per shape, in units of the size s: main radius (sphere r, cube half side, cylinder r,
# cone base r, torus ring R), height, footprint radius on the ground (for collisions)
RADIUS = np.array([1.0, 0.75, 0.9, 1.0, 0.7])
HEIGHT = np.array([2.0, 1.5, 1.6, 2.0, 0.6])
FOOT = np.array([1.0, 0.75 * np.sqrt(2.0), 0.9, 1.0, 1.0])
TORUS_TUBE = 0.3  # torus tube radius / s; ring radius R + tube = 1.0 s

# camera: fixed, above the ground at an angle, looking at the origin (like CLEVR's)
CAM_ELEVATION = np.deg2rad(45.0)
CAM_DISTANCE = 15.0
CAM_FOV = np.deg2rad(24.0)
CAM_TARGET = np.array([0.0, 0.4, 0.0])
# key light (direction towards it): front-left, high; soft shadows jitter it by LIGHT_SPREAD rad
LIGHT_DIR = np.array([-0.62, -0.48, 1.05])
LIGHT_DIR = LIGHT_DIR / np.linalg.norm(LIGHT_DIR)
LIGHT_SPREAD = 0.09
FILL_DIR = np.array([0.8, -0.3, 0.5])
FILL_DIR = FILL_DIR / np.linalg.norm(FILL_DIR)
COLLISION_MARGIN = 0.12  # extra ground distance between object footprints
VIEW_MARGIN = 1.0 / 64.0  # objects stay this far (image fraction) inside the frame
N_CANDIDATES = 64  # positions proposed per placement attempt


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: position, orthonormal frame (forward, right, up) and tan(fov/2)."""

    pos: np.ndarray
    fwd: np.ndarray
    right: np.ndarray
    up: np.ndarray
    tan_half: float

    def project(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points -> image coordinates (u right, v down) as fractions of the width."""
        dx, dy, dz = x - self.pos[0], y - self.pos[1], z - self.pos[2]
        depth = dx * self.fwd[0] + dy * self.fwd[1] + dz * self.fwd[2]
        a = (dx * self.right[0] + dy * self.right[1] + dz * self.right[2]) / (depth * self.tan_half)
        b = (dx * self.up[0] + dy * self.up[1] + dz * self.up[2]) / (depth * self.tan_half)
        return (a + 1.0) * 0.5, (1.0 - b) * 0.5

    def ray_dirs(self, res: int) -> np.ndarray:
        """Unit ray directions (res*res, 3) through pixel centres, row-major from the top left."""
        c = (np.arange(res) + 0.5) / res * 2.0 - 1.0
        a = c[None, :] * self.tan_half
        b = -c[:, None] * self.tan_half
        d = self.fwd[None, None, :] + a[..., None] * self.right + b[..., None] * self.up
        d = d / np.linalg.norm(d, axis=-1, keepdims=True)
        return d.reshape(-1, 3)


def make_camera() -> Camera:
    pos = CAM_TARGET + CAM_DISTANCE * np.array([0.0, -np.cos(CAM_ELEVATION), np.sin(CAM_ELEVATION)])
    fwd = CAM_TARGET - pos
    fwd = fwd / np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right = right / np.linalg.norm(right)
    up = np.cross(right, fwd)
    return Camera(pos, fwd, right, up, float(np.tan(CAM_FOV / 2)))


CAMERA = make_camera()


def light_dirs() -> np.ndarray:
    """The four jittered key-light directions (2x2 stratified over the light's disc)."""
    a = np.cross(LIGHT_DIR, [0.0, 0.0, 1.0])
    a = a / np.linalg.norm(a)
    b = np.cross(LIGHT_DIR, a)
    out = []
    for sy in (-0.5, 0.5):
        for sx in (-0.5, 0.5):
            d = LIGHT_DIR + LIGHT_SPREAD * (sx * a + sy * b)
            out.append(d / np.linalg.norm(d))
    return np.array(out)


def _ground_region() -> tuple[float, float, float, float]:
    """Bounding rectangle (x0, x1, y0, y1) of the ground seen by the camera."""
    pts = []
    for a in (-1.0, 1.0):
        for b in (-1.0, 1.0):
            v = CAMERA.fwd + CAMERA.tan_half * (a * CAMERA.right + b * CAMERA.up)
            pts.append(CAMERA.pos - CAMERA.pos[2] / v[2] * v)
    pts = np.array(pts)
    return pts[:, 0].min(), pts[:, 0].max(), pts[:, 1].min(), pts[:, 1].max()


GROUND_REGION = _ground_region()


def object_box(shape: np.ndarray, s: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Projected image box (u0, v0, u1, v1), image fractions, of each object's bounding
    cylinder's box (8 corners); arrays broadcast."""
    rf = FOOT[shape] * s
    h = HEIGHT[shape] * s
    us, vs = [], []
    for cx in (-1.0, 1.0):
        for cy in (-1.0, 1.0):
            for z in (0.0, 1.0):
                u, v = CAMERA.project(x + cx * rf, y + cy * rf, z * h + 0.0 * x)
                us.append(u)
                vs.append(v)
    us, vs = np.stack(us), np.stack(vs)
    return us.min(0), vs.min(0), us.max(0), vs.max(0)


def shadow_box(shape: np.ndarray, s: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Projected image box of the object together with its shadow volume down to the ground
    (its bounding box's corners and their projections along each jittered light direction)."""
    rf = FOOT[shape] * s
    h = HEIGHT[shape] * s
    us, vs = [], []
    dirs = light_dirs()
    for cx in (-1.0, 1.0):
        for cy in (-1.0, 1.0):
            px, py = x + cx * rf, y + cy * rf
            for z in (0.0, 1.0):
                u, v = CAMERA.project(px, py, z * h + 0.0 * x)
                us.append(u)
                vs.append(v)
            for d in dirs:
                k = h / d[2]
                u, v = CAMERA.project(px - k * d[0], py - k * d[1], 0.0 * x)
                us.append(u)
                vs.append(v)
    us, vs = np.stack(us), np.stack(vs)
    return us.min(0), vs.min(0), us.max(0), vs.max(0)


def centre_uv(shape: np.ndarray, s: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image position of each object's "position": the centre of its bounding box, (x, y, h/2)."""
    return CAMERA.project(x, y, HEIGHT[shape] * s / 2)


@dataclass
class Scenes:
    """Per-scene attributes, (n, MAX_OBJECTS) arrays padded with -1 (ints) or nan (floats)."""

    count: np.ndarray
    shape: np.ndarray
    color: np.ndarray
    size: np.ndarray
    material: np.ndarray
    x: np.ndarray
    y: np.ndarray
    rot: np.ndarray
    pair: np.ndarray  # (n,) row of ``pairs`` drawn, -1 without pairs
    attempt: np.ndarray  # (n, MAX_OBJECTS) placement attempts so far, keys the random stream

    @property
    def s(self) -> np.ndarray:
        sizes = np.array(list(SIZES.values()))
        return np.where(self.size >= 0, sizes[np.maximum(self.size, 0)], np.nan)


def draw_attributes(n: int, seed: int, count: np.ndarray | None, shapes: list[int], colors: list[int],
                    sizes: list[int], materials: list[int], pairs: np.ndarray | None) -> Scenes:
    """Draw count, shape, colour, size, material (and the pair row) for every scene."""
    scene = np.arange(n)[:, None]
    slot = np.arange(MAX_OBJECTS)[None, :]
    if count is None:
        count = _rng.choice(seed, _rng.COUNT, MAX_OBJECTS, np.arange(n)) + 1
    present = slot < count[:, None]

    def pick(purpose: int, allowed: list[int]) -> np.ndarray:
        idx = _rng.choice(seed, purpose, len(allowed), scene, slot)
        return np.where(present, np.asarray(allowed)[idx], -1)

    shape, color = pick(_rng.SHAPE, shapes), pick(_rng.COLOR, colors)
    size, material = pick(_rng.SIZE, sizes), pick(_rng.MATERIAL, materials)
    pair = np.full(n, -1, dtype=np.int64)
    if pairs is not None:
        pair = _rng.choice(seed, _rng.PAIR, len(pairs), np.arange(n))
        rows = pairs[pair]
        shape[:, 0], shape[:, 1], color[:, 0], color[:, 1] = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    nan = np.full((n, MAX_OBJECTS), np.nan)
    return Scenes(count.astype(np.int64), shape, color, size, material, nan.copy(), nan.copy(), nan.copy(),
                  pair, np.zeros((n, MAX_OBJECTS), dtype=np.int64))


def place(sc: Scenes, seed: int, scenes: np.ndarray, slot: int, pair_gap: float | None) -> np.ndarray:
    """Propose new ground positions for object ``slot`` of ``scenes`` (which must have it);
    keep the first candidate that is in view, clear of the scene's other placed objects and,
    in ordered pair scenes, left (slot 0) or right (slot 1) of its partner by ``pair_gap``.
    Returns a boolean array: which scenes got a valid position (the others keep nan)."""
    if len(scenes) == 0:
        return np.zeros(0, dtype=bool)
    att = sc.attempt[scenes, slot]
    sc.attempt[scenes, slot] += 1
    cand = np.arange(N_CANDIDATES)[None, :]
    keys = (scenes[:, None], slot, att[:, None], cand)
    x0, x1, y0, y1 = GROUND_REGION
    cx = x0 + (x1 - x0) * _rng.uniform(seed, _rng.POS_X, *keys)
    cy = y0 + (y1 - y0) * _rng.uniform(seed, _rng.POS_Y, *keys)
    shp = sc.shape[scenes, slot][:, None]
    s = sc.s[scenes, slot][:, None]
    u0, v0, u1, v1 = object_box(shp, s, cx, cy)
    ok = (u0 >= VIEW_MARGIN) & (v0 >= VIEW_MARGIN) & (u1 <= 1 - VIEW_MARGIN) & (v1 <= 1 - VIEW_MARGIN)
    rf = FOOT[shp] * s
    for k in range(MAX_OBJECTS):
        if k == slot:
            continue
        ox, oy = sc.x[scenes, k][:, None], sc.y[scenes, k][:, None]
        other_rf = np.nan_to_num(FOOT[np.maximum(sc.shape[scenes, k], 0)] * sc.s[scenes, k])[:, None]
        dist2 = (cx - ox) ** 2 + (cy - oy) ** 2
        ok &= np.isnan(ox) | (dist2 >= (rf + other_rf + COLLISION_MARGIN) ** 2)
    if pair_gap is not None and slot < 2:
        # two-object scenes: slot 0 is the left object, slot 1 the right one
        other = 1 - slot
        two = (sc.count[scenes] == 2)[:, None]
        ox, oy = sc.x[scenes, other][:, None], sc.y[scenes, other][:, None]
        oshp = np.maximum(sc.shape[scenes, other], 0)[:, None]
        ou, _ = centre_uv(oshp, sc.s[scenes, other][:, None], ox, oy)
        u, _ = centre_uv(shp, s, cx, cy)
        gap = (ou - u) if slot == 0 else (u - ou)
        ok &= ~two | np.isnan(ou) | (gap >= pair_gap)
    found = ok.any(1)
    first = ok.argmax(1)
    rows = np.arange(len(scenes))
    sc.x[scenes, slot] = np.where(found, cx[rows, first], np.nan)
    sc.y[scenes, slot] = np.where(found, cy[rows, first], np.nan)
    rot = _rng.uniform(seed, _rng.ROT, scenes, slot, att) * 2 * np.pi
    sc.rot[scenes, slot] = np.where(found, rot, np.nan)
    return found


def place_scenes(sc: Scenes, seed: int, scenes: np.ndarray, pair_gap: float | None, max_restarts: int = 200) -> None:
    """(Re)place every object of ``scenes`` from scratch, slot by slot; a scene in which some
    object finds no free position is cleared and placed again with fresh draws."""
    todo = np.asarray(scenes, dtype=np.int64)
    for _ in range(max_restarts):
        if len(todo) == 0:
            return
        sc.x[todo], sc.y[todo], sc.rot[todo] = np.nan, np.nan, np.nan
        failed = np.zeros(len(todo), dtype=bool)
        for slot in range(MAX_OBJECTS):
            has = (sc.count[todo] > slot) & ~failed
            idx = np.flatnonzero(has)
            found = place(sc, seed, todo[idx], slot, pair_gap)
            failed[idx[~found]] = True
        todo = todo[failed]
    raise RuntimeError("clevr: could not place the objects of some scenes; use fewer or smaller objects")
