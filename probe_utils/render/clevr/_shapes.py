"""Ray-object intersections and surface normals in each object's local frame (torch).

Local frame: the object stands on the ground z = 0 with its vertical axis through the
origin; ``s`` is its size (CLEVR's "radius").  Rays are given by components so that a
single origin (G, 1) can broadcast over many directions (G, P).  Misses are ``inf``.
"""

from __future__ import annotations

import torch

from ._scene import CONE, CUBE, CYLINDER, SPHERE, TORUS
from ._scene import HEIGHT as _HEIGHT
from ._scene import RADIUS as _RADIUS
from ._scene import TORUS_TUBE as _TUBE

# plain Python floats (numpy scalars times a tensor would round-trip through numpy)
RADIUS = [float(v) for v in _RADIUS]
HEIGHT = [float(v) for v in _HEIGHT]
TORUS_TUBE = float(_TUBE)

T_EPS = 1e-4
TORUS_STEPS = 28
_INF = float("inf")


def _safe(d: torch.Tensor) -> torch.Tensor:
    """Direction component kept away from zero (keeps its sign) for slab divisions."""
    return torch.where(d.abs() < 1e-9, 1e-9, d)


def _slab(o: torch.Tensor, d: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / _safe(d)
    t1, t2 = (lo - o) * inv, (hi - o) * inv
    return torch.minimum(t1, t2), torch.maximum(t1, t2)


def _box(ox, oy, oz, dx, dy, dz, half, height) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of an axis-aligned box [-half, half]^2 x [0, height]."""
    ax, bx = _slab(ox, dx, -half, half)
    ay, by = _slab(oy, dy, -half, half)
    az, bz = _slab(oz, dz, torch.zeros_like(height), height)
    return torch.maximum(torch.maximum(ax, ay), az), torch.minimum(torch.minimum(bx, by), bz)


def _keep(t: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    return torch.where(ok & (t > T_EPS), t, _INF)


def sphere(ox, oy, oz, dx, dy, dz, s):
    r = RADIUS[SPHERE] * s
    cz = oz - r
    b = ox * dx + oy * dy + cz * dz
    c = ox * ox + oy * oy + cz * cz - r * r
    disc = b * b - c
    root = torch.sqrt(disc.clamp(min=0.0))
    t = -b - root
    t = torch.where(t > T_EPS, t, -b + root)
    return _keep(t, disc >= 0)


def cube(ox, oy, oz, dx, dy, dz, s):
    half = RADIUS[CUBE] * s
    tn, tf = _box(ox, oy, oz, dx, dy, dz, half, 2 * half)
    return _keep(tn, tn <= tf)


def cylinder(ox, oy, oz, dx, dy, dz, s):
    r, h = RADIUS[CYLINDER] * s, HEIGHT[CYLINDER] * s
    a = dx * dx + dy * dy
    b = ox * dx + oy * dy
    c = ox * ox + oy * oy - r * r
    disc = b * b - a * c
    t_side = (-b - torch.sqrt(disc.clamp(min=0.0))) / a.clamp(min=1e-12)
    z = oz + t_side * dz
    t_side = _keep(t_side, (disc >= 0) & (a > 1e-12) & (z >= 0) & (z <= h))
    t_cap = (h - oz) / _safe(dz)
    px, py = ox + t_cap * dx, oy + t_cap * dy
    t_cap = _keep(t_cap, (dz < 0) & (px * px + py * py <= r * r))
    return torch.minimum(t_side, t_cap)


def cone(ox, oy, oz, dx, dy, dz, s):
    r, h = RADIUS[CONE] * s, HEIGHT[CONE] * s
    k2 = (RADIUS[CONE] / HEIGHT[CONE]) ** 2
    w = h - oz
    a = dx * dx + dy * dy - k2 * dz * dz
    b = ox * dx + oy * dy + k2 * w * dz
    c = ox * ox + oy * oy - k2 * w * w
    disc = b * b - a * c
    root = torch.sqrt(disc.clamp(min=0.0))
    a = torch.where(a.abs() < 1e-9, 1e-9, a)
    best = None
    for t in ((-b - root) / a, (-b + root) / a):
        z = oz + t * dz
        t = _keep(t, (disc >= 0) & (z >= 0) & (z <= h))
        best = t if best is None else torch.minimum(best, t)
    del r
    return best


def torus(ox, oy, oz, dx, dy, dz, s, steps: int = TORUS_STEPS):
    """Flat torus (axis vertical) lying on the ground, by sphere tracing its exact distance
    function from the entry into its bounding box."""
    big, tube = RADIUS[TORUS] * s, TORUS_TUBE * s
    tn, tf = _box(ox, oy, oz, dx, dy, dz, big + tube, 2 * tube)
    inside = tn <= tf
    t = tn.clamp(min=0.0)
    dist = None
    for _ in range(steps):
        px, py, pz = ox + t * dx, oy + t * dy, oz + t * dz
        ring = torch.sqrt(px * px + py * py) - big
        dist = torch.sqrt(ring * ring + (pz - tube) ** 2) - tube
        t = t + dist
    return _keep(t, inside & (dist < 2e-3 + 4e-3 * s) & (t <= tf + 1e-3))


INTERSECT = {SPHERE: sphere, CUBE: cube, CYLINDER: cylinder, CONE: cone, TORUS: torus}


def _unit(x, y, z):
    n = torch.sqrt(x * x + y * y + z * z).clamp(min=1e-12)
    return x / n, y / n, z / n


def sphere_normal(qx, qy, qz, s):
    return _unit(qx, qy, qz - RADIUS[SPHERE] * s)


def cube_normal(qx, qy, qz, s):
    """The face whose axis has the largest relative coordinate."""
    half = RADIUS[CUBE] * s
    ux, uy, uz = qx / half, qy / half, qz / half - 1.0
    mx, my, mz = ux.abs(), uy.abs(), uz.abs()
    fx = (mx >= my) & (mx >= mz)
    fy = ~fx & (my >= mz)
    fz = ~fx & ~fy
    return fx * torch.sign(ux), fy * torch.sign(uy), fz * torch.sign(uz)


def cylinder_normal(qx, qy, qz, s):
    """Top cap or side, whichever surface the point is relatively closer to."""
    r, h = RADIUS[CYLINDER] * s, HEIGHT[CYLINDER] * s
    rho = torch.sqrt(qx * qx + qy * qy).clamp(min=1e-9)
    cap = (h - qz) * r < (r - rho) * h
    return torch.where(cap, 0.0, qx / rho), torch.where(cap, 0.0, qy / rho), cap.to(qx.dtype)


def cone_normal(qx, qy, qz, s):
    """Gradient of x^2 + y^2 - k^2 (h - z)^2."""
    k2 = (RADIUS[CONE] / HEIGHT[CONE]) ** 2
    return _unit(qx, qy, k2 * (HEIGHT[CONE] * s - qz).clamp(min=0.0))


def torus_normal(qx, qy, qz, s):
    """Away from the nearest point of the ring."""
    rho = torch.sqrt(qx * qx + qy * qy).clamp(min=1e-9)
    f = 1.0 - RADIUS[TORUS] * s / rho
    return _unit(qx * f, qy * f, qz - TORUS_TUBE * s)


NORMAL = {SPHERE: sphere_normal, CUBE: cube_normal, CYLINDER: cylinder_normal, CONE: cone_normal,
          TORUS: torus_normal}
