"""Procedural 3D shapes as coloured point clouds (the data of Point-E, arXiv 2212.08751, made small): a sphere,
cube, cylinder, cone, torus, pyramid and capsule, each with a random size, rotation and colour, sampled uniformly
on its surface as xyz + RGB points with their surface normals (the rasteriser in `raster.py` shades with them).

Every shape is a registered surface sampler (`SHAPES`): `sample(n_objects, n_points, generator)` returns points
and unit normals (B, N, 3) in the shape's canonical frame, the axis of revolution along +y, fitting in
[-0.5, 0.5]^3. An object is a canonical shape scaled by its size, turned "lying on its side" (90 degrees about x)
or left upright, then turned by a random yaw about the vertical axis. Captions are written by `captions.py`.

Point-E's channel convention: coordinates times 2 (about [-1, 1]) and colours in [0, 1] mapped to [-1, 1], stacked
as (B, 6, N) (`to_channels`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InputError
from ..registry import Registry

SHAPES: Registry = Registry("shape")
COLOURS = {  # name -> RGB in [0, 1]
    "red": (0.86, 0.14, 0.12), "green": (0.16, 0.72, 0.22), "blue": (0.16, 0.32, 0.92),
    "yellow": (0.96, 0.86, 0.12), "purple": (0.62, 0.22, 0.78), "orange": (1.0, 0.52, 0.06),
}
SIZES = {"small": 0.45, "large": 0.75}  # name -> scale of the canonical shape (x 2 stays in [-1, 1])
COLOUR_JITTER = 0.04  # per object, per channel (uniform +-)


@dataclass
class Surface:
    """A canonical shape: its sampler and whether it has an axis (so "lying on its side" means something)."""

    sample: callable
    axial: bool


def _uniform(g, *shape):
    return torch.rand(*shape, generator=g)


def _pick(weights: list[float], b: int, n: int, g) -> torch.Tensor:
    """A part index per point (B, N), parts drawn in proportion to their areas."""
    cum = torch.tensor(weights, dtype=torch.float64).cumsum(0)
    return torch.bucketize(_uniform(g, b, n).double() * cum[-1], cum, right=True).clamp(max=len(weights) - 1)


def _choose(part: torch.Tensor, options: list[tuple[torch.Tensor, torch.Tensor]]):
    """Per point, the candidate point and normal of its part: options [(points, normals) (B, N, 3), ...]."""
    pts = torch.stack([o[0] for o in options])  # (P, B, N, 3)
    nrm = torch.stack([o[1] for o in options])
    idx = part[None, :, :, None].expand(1, *pts.shape[1:])  # (1, B, N, 3)
    return pts.gather(0, idx)[0], nrm.gather(0, idx)[0]


def _ring(theta: torch.Tensor, radius, y) -> torch.Tensor:
    """Points (B, N, 3) at angle theta on a horizontal circle of `radius` at height y."""
    y = torch.as_tensor(y, dtype=theta.dtype).expand_as(theta)
    return torch.stack([radius * torch.cos(theta), y, radius * torch.sin(theta)], -1)


def _disc(b, n, g, radius: float, y: float, up: float):
    """Uniform points on a horizontal disc, normal (0, up, 0)."""
    r = radius * _uniform(g, b, n).sqrt()
    p = _ring(2 * math.pi * _uniform(g, b, n), r, y)
    return p, torch.tensor([0.0, up, 0.0]).expand_as(p)


@SHAPES.register("sphere")
def _sphere():
    def sample(b, n, g):
        d = torch.nn.functional.normalize(torch.randn(b, n, 3, generator=g), dim=-1)
        return 0.5 * d, d

    return Surface(sample, axial=False)


@SHAPES.register("cube")
def _cube():
    def sample(b, n, g):
        half = 0.38
        face = torch.randint(6, (b, n), generator=g)  # axis = face // 2, sign = +-1
        axis, sign = face // 2, (face % 2) * 2.0 - 1.0
        p = (_uniform(g, b, n, 3) * 2 - 1) * half
        onehot = torch.nn.functional.one_hot(axis, 3).float()  # (B, N, 3)
        p = p * (1 - onehot) + onehot * (sign * half)[..., None]
        return p, onehot * sign[..., None]

    return Surface(sample, axial=False)


@SHAPES.register("cylinder")
def _cylinder():
    r, h = 0.3, 0.9

    def sample(b, n, g):
        theta = 2 * math.pi * _uniform(g, b, n)
        side = _ring(theta, r, (_uniform(g, b, n) - 0.5) * h)
        side_n = _ring(theta, 1.0, 0.0)
        top, bottom = _disc(b, n, g, r, h / 2, 1.0), _disc(b, n, g, r, -h / 2, -1.0)
        part = _pick([2 * math.pi * r * h, math.pi * r * r, math.pi * r * r], b, n, g)
        return _choose(part, [(side, side_n), top, bottom])

    return Surface(sample, axial=True)


@SHAPES.register("cone")
def _cone():
    r, h = 0.42, 0.9  # apex up at +h/2, base at -h/2

    def sample(b, n, g):
        theta = 2 * math.pi * _uniform(g, b, n)
        f = _uniform(g, b, n).sqrt()  # distance from the apex, uniform in area
        side = _ring(theta, r * f, h / 2 - h * f)
        side_n = torch.nn.functional.normalize(_ring(theta, h, r), dim=-1)  # (h cos, r, h sin) / |.|
        part = _pick([math.pi * r * math.hypot(r, h), math.pi * r * r], b, n, g)
        return _choose(part, [(side, side_n), _disc(b, n, g, r, -h / 2, -1.0)])

    return Surface(sample, axial=True)


@SHAPES.register("torus")
def _torus():
    big, small = 0.33, 0.14  # standing on its edge: the ring in the x-y plane, its axis along z
    # the tube angle phi has density (R + r cos phi) / (2 pi R): drawn by inverting its CDF on a grid
    grid = torch.linspace(0, 2 * math.pi, 2049)
    cdf = (big * grid + small * torch.sin(grid)) / (2 * math.pi * big)

    def sample(b, n, g):
        u = _uniform(g, b, n).contiguous()
        i = torch.searchsorted(cdf, u).clamp(1, len(grid) - 1)
        w = (u - cdf[i - 1]) / (cdf[i] - cdf[i - 1])
        phi = grid[i - 1] + w * (grid[i] - grid[i - 1])
        theta = 2 * math.pi * _uniform(g, b, n)
        normal = torch.stack([torch.cos(phi) * torch.cos(theta), torch.cos(phi) * torch.sin(theta), torch.sin(phi)], -1)
        centre = torch.stack([big * torch.cos(theta), big * torch.sin(theta), torch.zeros_like(theta)], -1)
        return centre + small * normal, normal

    return Surface(sample, axial=True)


@SHAPES.register("pyramid")
def _pyramid():
    half, lo, hi = 0.4, -0.4, 0.45  # square base at y = lo, apex at y = hi
    base = torch.tensor([[-half, lo, -half], [half, lo, -half], [half, lo, half], [-half, lo, half]])
    apex = torch.tensor([0.0, hi, 0.0])
    tris = [(base[i], base[(i + 1) % 4], apex) for i in range(4)]
    tris += [(base[0], base[2], base[1]), (base[0], base[3], base[2])]  # the base, facing down

    def tri_area_normal(a, b, c):
        cr = torch.linalg.cross(b - a, c - a)
        n = torch.nn.functional.normalize(cr, dim=0)
        centroid = (a + b + c) / 3
        return 0.5 * cr.norm().item(), n if (n @ (centroid - torch.tensor([0.0, -0.1, 0.0]))) > 0 else -n

    info = [tri_area_normal(*t) for t in tris]

    def sample(b, n, g):
        options = []
        for (a, bb, c), (_, nrm) in zip(tris, info):
            u, v = _uniform(g, b, n, 1), _uniform(g, b, n, 1)
            flip = (u + v) > 1  # reflect into the triangle
            u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
            options.append((a + u * (bb - a) + v * (c - a), nrm.expand(b, n, 3)))
        return _choose(_pick([a for a, _ in info], b, n, g), options)

    return Surface(sample, axial=True)


@SHAPES.register("capsule")
def _capsule():
    r, h = 0.22, 0.5  # the cylinder part's height; caps are hemispheres of radius r

    def sample(b, n, g):
        theta = 2 * math.pi * _uniform(g, b, n)
        side = _ring(theta, r, (_uniform(g, b, n) - 0.5) * h)
        d = torch.nn.functional.normalize(torch.randn(b, n, 3, generator=g), dim=-1)
        up = torch.where(d[..., 1:2] < 0, -d, d)  # the upper hemisphere (the antipode keeps it uniform)
        up_cap = (r * up + torch.tensor([0.0, h / 2, 0.0]), up)
        down = up * torch.tensor([1.0, -1.0, 1.0])
        down_cap = (r * down - torch.tensor([0.0, h / 2, 0.0]), down)
        part = _pick([2 * math.pi * r * h, 2 * math.pi * r * r, 2 * math.pi * r * r], b, n, g)
        return _choose(part, [(side, _ring(theta, 1.0, 0.0)), up_cap, down_cap])

    return Surface(sample, axial=True)


SHAPE_NAMES = tuple(SHAPES)  # sorted: the class index of each shape
COLOUR_NAMES = tuple(COLOURS)
SIZE_NAMES = tuple(SIZES)
_SURFACES = {name: SHAPES.get(name)() for name in SHAPE_NAMES}


@dataclass
class Objects:
    """A batch of objects: class indices (B,) into SHAPE_NAMES / COLOUR_NAMES / SIZE_NAMES, lying (B,) bool,
    yaw (B,) radians, rgb (B, 3) in [0, 1]."""

    shape: torch.Tensor
    colour: torch.Tensor
    size: torch.Tensor
    lying: torch.Tensor
    yaw: torch.Tensor
    rgb: torch.Tensor

    def __len__(self) -> int:
        return len(self.shape)

    def axial(self) -> torch.Tensor:
        """(B,) bool: the shape has an axis, so its caption may say how it lies."""
        return torch.tensor([_SURFACES[SHAPE_NAMES[int(s)]].axial for s in self.shape])


def random_objects(n: int, generator: torch.Generator, shape: torch.Tensor | None = None,
                   colour: torch.Tensor | None = None) -> Objects:
    """n objects with every attribute random (or the shape / colour indices given)."""
    g = generator
    shape = torch.randint(len(SHAPE_NAMES), (n,), generator=g) if shape is None else shape
    colour = torch.randint(len(COLOUR_NAMES), (n,), generator=g) if colour is None else colour
    size = torch.randint(len(SIZE_NAMES), (n,), generator=g)
    lying = torch.rand(n, generator=g) < 0.5
    yaw = 2 * math.pi * torch.rand(n, generator=g)
    base = torch.tensor([COLOURS[c] for c in COLOUR_NAMES])[colour]  # (B, 3)
    rgb = (base + (torch.rand(n, 3, generator=g) * 2 - 1) * COLOUR_JITTER).clamp(0, 1)
    objs = Objects(shape, colour, size, lying, yaw, rgb)
    objs.lying &= objs.axial()  # a sphere or a cube does not lie on a side
    return objs


def rotation(lying: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3): a quarter turn about x when lying, then the yaw about the vertical (y) axis."""
    b = len(yaw)
    tilt = torch.eye(3).repeat(b, 1, 1)
    tilt[lying] = torch.tensor([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # y -> z
    c, s = torch.cos(yaw), torch.sin(yaw)
    turn = torch.zeros(b, 3, 3)
    turn[:, 0, 0], turn[:, 0, 2], turn[:, 1, 1], turn[:, 2, 0], turn[:, 2, 2] = c, s, 1.0, -s, c
    return turn @ tilt


def surface(objs: Objects, n_points: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Points and unit normals (B, N, 3) on each object's surface, in world coordinates."""
    b = len(objs)
    pts, nrm = torch.empty(b, n_points, 3), torch.empty(b, n_points, 3)
    for i, name in enumerate(SHAPE_NAMES):
        rows = (objs.shape == i).nonzero().squeeze(1)
        if len(rows):
            p, n = _SURFACES[name].sample(len(rows), n_points, generator)
            pts[rows], nrm[rows] = p, n
    rot = rotation(objs.lying, objs.yaw)  # (B, 3, 3)
    scale = torch.tensor([SIZES[s] for s in SIZE_NAMES])[objs.size][:, None, None]  # (B, 1, 1)
    return scale * pts @ rot.transpose(1, 2), nrm @ rot.transpose(1, 2)


def to_channels(points: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """World points (B, N, 3) and colours (B, 3) or (B, N, 3) in [0, 1] -> Point-E channels (B, 6, N): xyz times 2,
    RGB mapped to [-1, 1]."""
    if rgb.dim() == 2:
        rgb = rgb[:, None].expand_as(points)
    return torch.cat([2 * points, 2 * rgb - 1], dim=-1).transpose(1, 2)


def from_channels(cloud: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Point-E channels (B, 6, N) -> world points (B, N, 3) and colours (B, N, 3) in [0, 1]."""
    check_cloud(cloud)
    x = cloud.transpose(1, 2)  # (B, N, 6)
    return x[..., :3] / 2, ((x[..., 3:] + 1) / 2).clamp(0, 1)


def check_cloud(cloud, points: int | None = None, name: str = "cloud") -> None:
    """A cloud must be (B, 6, N) (xyz + RGB channels), with N = `points` when given."""
    if not isinstance(cloud, torch.Tensor) or cloud.dim() != 3 or cloud.shape[1] != 6 or (
            points is not None and cloud.shape[2] != points):
        got = tuple(cloud.shape) if isinstance(cloud, torch.Tensor) else type(cloud).__name__
        want = f"(B, 6, {points if points is not None else 'N'})"
        raise InputError(f"{name} must be {want} (xyz + RGB channels, Point-E layout), got {got}")
