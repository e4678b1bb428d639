"""Batched ray casting of placed scenes: primary hits, shadows and shading (torch).

Objects are processed in groups of instances (same shape, same screen-window size) over the
pixels of each instance's screen window only; the windows come from the objects'
parameters on the CPU and reach the device in one copy per pass, so the inner loops never
wait for the device.  Whole-frame work is limited to a few per-pixel selections: the
ground's colour (lit or in shadow) is a per-frame table because the camera is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from . import _scene as S
from ._shapes import INTERSECT, NORMAL

_BUCKETS = np.array([4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512])
GROUND_ALBEDO = 0.64
SHADOW_OFFSET = 2e-3
# plain floats: a numpy scalar on the left of a tensor operation would go through numpy
_CAM = [float(v) for v in S.CAMERA.pos]
_KEY = [float(v) for v in S.LIGHT_DIR]
_FILL = [float(v) for v in S.FILL_DIR]
_TARGET_Y = float(S.CAM_TARGET[1])
_RGB = np.array(list(S.COLORS.values()), dtype=np.float64) / 255.0


@dataclass
class Frame:
    """Per-pixel constants of the fixed camera at one resolution, on one device: ray
    directions, ground distance, jittered key light, Blinn-Phong half vector, and the
    ground's colour when lit and when in shadow."""

    res: int
    dx: torch.Tensor  # (P,) ray direction components, P = res * res
    dy: torch.Tensor
    dz: torch.Tensor
    t_ground: torch.Tensor  # (P,)
    lx: torch.Tensor  # (P,) the sub-pixel's jittered key-light direction
    ly: torch.Tensor
    lz: torch.Tensor
    hx: torch.Tensor  # (P,) unit half vector between key light and eye
    hy: torch.Tensor
    hz: torch.Tensor
    ground_lit: torch.Tensor  # (3, P)
    ground_dark: torch.Tensor  # (3, P)
    rgb: torch.Tensor  # (8, 3) CLEVR's colours in [0, 1]


def _ground(d: np.ndarray, tg: np.ndarray, half: np.ndarray, lit: bool) -> np.ndarray:
    """Ground colour per pixel: the rubber shading model with normal +z, gently darker away
    from the camera's target."""
    ambient = 0.26 + 0.12
    diffuse = ambient + 0.2 * _FILL[2] + (0.78 * _KEY[2] if lit else 0.0)
    spec = 0.12 * np.clip(half[:, 2], 0, 1) ** 8 if lit else 0.0
    p = S.CAMERA.pos + tg[:, None] * d
    gain = 1.08 - 0.012 * np.minimum(p[:, 0] ** 2 + (p[:, 1] - _TARGET_Y) ** 2, 20.0)
    v = GROUND_ALBEDO * diffuse * gain + spec
    return np.clip(np.repeat(v[None], 3, 0), 0, 1)


@lru_cache(maxsize=8)
def frame(res: int, device: torch.device) -> Frame:
    d = S.CAMERA.ray_dirs(res)
    tg = -S.CAMERA.pos[2] / d[:, 2]
    row, col = np.divmod(np.arange(res * res), res)
    light = S.light_dirs()[(row % 2) * 2 + (col % 2)]
    half = S.LIGHT_DIR[None, :] - d
    half /= np.linalg.norm(half, axis=1, keepdims=True)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)

    return Frame(res, t(d[:, 0]), t(d[:, 1]), t(d[:, 2]), t(tg), t(light[:, 0]), t(light[:, 1]), t(light[:, 2]),
                 t(half[:, 0]), t(half[:, 1]), t(half[:, 2]), t(_ground(d, tg, half, True)),
                 t(_ground(d, tg, half, False)), t(_RGB))


def _windows(u0: np.ndarray, v0: np.ndarray, u1: np.ndarray, v1: np.ndarray, res: int):
    """Pixel windows (x0, y0, w, h) covering the image boxes, sizes rounded up to buckets."""
    def axis(a0, a1):
        lo = np.clip(np.floor(a0 * res - 0.5).astype(np.int64) - 1, 0, res - 1)
        hi = np.floor(a1 * res - 0.5).astype(np.int64) + 1
        need = np.clip(hi - lo + 1, 1, res)
        w = np.minimum(_BUCKETS[np.searchsorted(_BUCKETS, need)], res)
        return np.minimum(lo, res - w), w

    x0, w = axis(u0, u1)
    y0, h = axis(v0, v1)
    return x0, y0, w, h


@dataclass
class Group:
    """Object instances sharing a shape and a window size (w, h); each column is (G, 1) on
    the device: scene index in the batch, slot, window origin, colour code, metal flag, pose."""

    shape: int
    w: int
    h: int
    scene: torch.Tensor
    slot: torch.Tensor
    x0: torch.Tensor
    y0: torch.Tensor
    color: torch.Tensor
    metal: torch.Tensor
    cx: torch.Tensor
    cy: torch.Tensor
    cos: torch.Tensor
    sin: torch.Tensor
    s: torch.Tensor


def groups(sc: S.Scenes, ids: np.ndarray, res: int, device, shadow: bool = False) -> list[Group]:
    """The objects of scenes ``ids`` grouped for one pass over windows around each object
    (``shadow``: around the object and its shadow); one host-to-device copy per pass."""
    present = np.arange(S.MAX_OBJECTS)[None, :] < sc.count[ids][:, None]
    local, slot = np.nonzero(present)
    g = ids[local]
    shape, s = sc.shape[g, slot], sc.s[g, slot]
    x, y, rot = sc.x[g, slot], sc.y[g, slot], sc.rot[g, slot]
    box = (S.shadow_box if shadow else S.object_box)(shape, s, x, y)
    x0, y0, w, h = _windows(*box, res)
    key = (shape * 1000 + w) * 1000 + h
    order = np.argsort(key, kind="stable")
    fl = torch.as_tensor(np.stack([x, y, np.cos(rot), np.sin(rot), s], 1)[order], dtype=torch.float32,
                         device=device)
    ints = np.stack([local, slot, x0, y0, sc.color[g, slot], sc.material[g, slot]], 1)[order]
    it = torch.as_tensor(ints, dtype=torch.int64, device=device)
    _, starts = np.unique(key[order], return_index=True)
    out = []
    for a, b in zip(starts, list(starts[1:]) + [len(order)]):
        i = order[a]
        f, n = fl[a:b], it[a:b]
        out.append(Group(int(shape[i]), int(w[i]), int(h[i]), n[:, 0:1], n[:, 1:2], n[:, 2:3], n[:, 3:4],
                         n[:, 4:5], n[:, 5:6] == 1, f[:, 0:1], f[:, 1:2], f[:, 2:3], f[:, 3:4], f[:, 4:5]))
    return out


def _pixels(g: Group, res: int) -> torch.Tensor:
    """Flat pixel indices (G, h*w) of each instance's window."""
    rows = g.y0 + torch.arange(g.h, device=g.y0.device)[None, :]
    cols = g.x0 + torch.arange(g.w, device=g.x0.device)[None, :]
    return (rows[:, :, None] * res + cols[:, None, :]).reshape(len(g.y0), g.h * g.w)


def _take(src: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``src[idx]`` for a 1-D ``src`` (index_select is much faster than advanced indexing)."""
    return src.index_select(0, idx.reshape(-1)).view(idx.shape)


def _to_local(g: Group, x, y, z, dx, dy, dz):
    """World ray (origin x, y, z; direction dx, dy, dz) -> each instance's local frame."""
    c, s = g.cos, g.sin
    x, y = x - g.cx, y - g.cy
    return (c * x + s * y, c * y - s * x, z, c * dx + s * dy, c * dy - s * dx, dz, g.s)


@dataclass
class Hits:
    """Primary hits of n scenes: distance t (n, P), visible slot oid (n, P) (-1: ground) and
    world normal (3, n, P)."""

    t: torch.Tensor
    oid: torch.Tensor
    normal: torch.Tensor


def primary(fr: Frame, sc: S.Scenes, ids: np.ndarray, device) -> tuple[Hits, torch.Tensor, torch.Tensor]:
    """Closest hits of camera rays for the scenes ``ids``; also each object's silhouette and
    visible pixel counts, (n, MAX_OBJECTS) each."""
    n, p, k = len(ids), fr.res * fr.res, S.MAX_OBJECTS
    best = torch.full((n * p,), float("inf"), device=device)
    sil = torch.zeros(n * k, device=device)
    parts = []
    for g in groups(sc, ids, fr.res, device):
        pix = _pixels(g, fr.res)
        flat = g.scene * p + pix
        ray = _to_local(g, _CAM[0], _CAM[1], _CAM[2], _take(fr.dx, pix), _take(fr.dy, pix), _take(fr.dz, pix))
        t = INTERSECT[g.shape](*ray)
        best.scatter_reduce_(0, flat.reshape(-1), t.reshape(-1), "amin")
        sil.index_add_(0, (g.scene * k + g.slot).reshape(-1), torch.isfinite(t).sum(1).to(sil.dtype))
        parts.append((g, flat, t, ray))
    # each pixel's winner writes its slot and its normal (ties are measure-zero)
    oid = torch.full((n * p,), -1, dtype=torch.int64, device=device)
    nrm = torch.zeros((3, n * p), device=device)
    for g, flat, t, ray in parts:
        win = torch.isfinite(t) & (t == _take(best, flat))
        flat = flat.reshape(-1)
        oid.scatter_reduce_(0, flat, torch.where(win, g.slot, -1).reshape(-1), "amax")
        ox, oy, oz, dx, dy, dz, s = ray
        tt = torch.where(win, t, 0.0)
        lx, ly, lz = NORMAL[g.shape](ox + tt * dx, oy + tt * dy, oz + tt * dz, s)
        for axis, v in enumerate((g.cos * lx - g.sin * ly, g.sin * lx + g.cos * ly, lz)):
            nrm[axis].scatter_add_(0, flat, torch.where(win, v, 0.0).reshape(-1))
    oid = oid.view(n, p)
    on = oid >= 0
    nrm = nrm.view(3, n, p)
    nrm[2] = torch.where(on, nrm[2], torch.ones_like(nrm[2]))
    t = torch.where(on, best.view(n, p), fr.t_ground.expand(n, p))
    scene = torch.arange(n, device=device)[:, None] * k
    vis = torch.zeros(n * k, device=device)
    vis.scatter_add_(0, (scene + oid.clamp(min=0)).reshape(-1), on.reshape(-1).to(vis.dtype))
    return Hits(t, oid, nrm), sil.view(n, k), vis.view(n, k)


def lit_mask(fr: Frame, sc: S.Scenes, ids: np.ndarray, hits: Hits, device) -> torch.Tensor:
    """Whether each visible surface point (n, P) sees its sub-pixel's jittered key light."""
    n, p = hits.t.shape
    nx, ny, nz = hits.normal
    t = hits.t
    ox = (_CAM[0] + t * fr.dx + SHADOW_OFFSET * nx).reshape(-1)
    oy = (_CAM[1] + t * fr.dy + SHADOW_OFFSET * ny).reshape(-1)
    oz = (_CAM[2] + t * fr.dz + SHADOW_OFFSET * nz).reshape(-1)
    count = torch.zeros(n * p, device=device)
    for g in groups(sc, ids, fr.res, device, shadow=True):
        pix = _pixels(g, fr.res)
        flat = g.scene * p + pix
        ray = _to_local(g, _take(ox, flat), _take(oy, flat), _take(oz, flat), _take(fr.lx, pix), _take(fr.ly, pix),
                        _take(fr.lz, pix))
        hit = torch.isfinite(INTERSECT[g.shape](*ray))
        count.scatter_add_(0, flat.reshape(-1), hit.reshape(-1).to(count.dtype))
    return count.view(n, p) == 0


def _object_colour(fr: Frame, g: Group, pix, nx, ny, nz, lit) -> tuple[torch.Tensor, ...]:
    """Shaded RGB of the window pixels of a group (Lambert + Blinn-Phong; metal: darker
    diffuse, sharp highlight and a tinted mirror of a bright sky over a dark ground)."""
    ndl = (nx * _KEY[0] + ny * _KEY[1] + nz * _KEY[2]).clamp(min=0.0)
    ndf = (nx * _FILL[0] + ny * _FILL[1] + nz * _FILL[2]).clamp(min=0.0)
    ndh = (nx * _take(fr.hx, pix) + ny * _take(fr.hy, pix) + nz * _take(fr.hz, pix)).clamp(min=0.0)
    ambient = 0.26 + 0.12 * nz
    direct = ndl * lit
    rubber = ambient + 0.78 * direct + 0.2 * ndf
    dx, dy, dz = _take(fr.dx, pix), _take(fr.dy, pix), _take(fr.dz, pix)
    rz = dz - 2 * (dx * nx + dy * ny + dz * nz) * nz
    env = torch.where(rz > 0, 0.45 + 0.55 * rz.clamp(max=1.0), 0.22 + 0.1 * (1 + rz))
    metal = 0.45 * ambient + 0.42 * direct + 0.1 * ndf + 0.6 * env
    p8 = ndh * ndh
    p8 = p8 * p8
    p8 = p8 * p8
    p64 = p8 * p8
    p64 = p64 * p64
    p64 = p64 * p64
    lit_front = lit * (ndl > 0)
    spec = torch.where(g.metal, 1.1 * p64, 0.12 * p8) * lit_front
    diffuse = torch.where(g.metal, metal, rubber)
    albedo = fr.rgb[g.color[:, 0]]  # (G, 3)
    return tuple(albedo[:, c:c + 1] * diffuse + spec for c in range(3))


def shade(fr: Frame, sc: S.Scenes, ids: np.ndarray, hits: Hits, device) -> torch.Tensor:
    """Colour of every sub-pixel (n, 3, res, res) from the primary hits, with shadows."""
    n, p = hits.t.shape
    lit = lit_mask(fr, sc, ids, hits, device)
    colour = torch.where(lit[:, None], fr.ground_lit, fr.ground_dark)  # (n, 3, p)
    flat_colour = colour.view(-1)
    oid, (nx, ny, nz) = hits.oid.reshape(-1), (v.reshape(-1) for v in hits.normal)
    litf = lit.reshape(-1).to(hits.t.dtype)
    for g in groups(sc, ids, fr.res, device):
        pix = _pixels(g, fr.res)
        flat = g.scene * p + pix
        mine = _take(oid, flat) == g.slot
        rgb = _object_colour(fr, g, pix, _take(nx, flat), _take(ny, flat), _take(nz, flat), _take(litf, flat))
        for c in range(3):
            # replace the ground colour written above by the object's colour
            idx = (g.scene * 3 + c) * p + pix
            new = torch.where(mine, rgb[c] - _take(flat_colour, idx), 0.0)
            flat_colour.scatter_add_(0, idx.reshape(-1), new.reshape(-1))
    return colour.clamp_(0.0, 1.0).view(n, 3, fr.res, fr.res)
