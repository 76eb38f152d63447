"""A small point rasteriser: the synthetic view of a shape that Point-E's image model learns to draw and its point
model learns to read (arXiv 2212.08751, sec. 4: renders of each object condition the point cloud model).

Orthographic camera at a fixed azimuth and elevation looking at the origin; each surface point is splatted over
a 2 x 2 footprint of a grid `supersample` times finer than the view, a z-buffer keeps the point nearest the camera
per pixel, which is shaded with a Lambert term from its normal (ambient + diffuse); the fine grid is averaged down
to the view. Views are (B, 3, S, S) in [-1, 1], background dark grey.
"""

from __future__ import annotations

import math

import torch

BACKGROUND = 0.12  # grey level in [0, 1]
EXTENT = 0.52  # the view covers [-EXTENT, EXTENT] in camera x and y
AZIMUTH, ELEVATION = 35.0, 25.0  # degrees
AMBIENT = 0.35


def camera(azimuth: float = AZIMUTH, elevation: float = ELEVATION) -> torch.Tensor:
    """(3, 3) rows: the camera's right, up and towards-the-viewer axes in world coordinates (y up)."""
    a, e = math.radians(azimuth), math.radians(elevation)
    toward = torch.tensor([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
    right = torch.nn.functional.normalize(torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0]), toward), dim=0)
    up = torch.linalg.cross(toward, right)
    return torch.stack([right, up, toward])


LIGHT = torch.nn.functional.normalize(torch.tensor([-0.4, 0.8, 0.6]), dim=0)  # world direction towards the light


def render(points: torch.Tensor, normals: torch.Tensor, rgb: torch.Tensor, size: int = 16, supersample: int = 2,
           azimuth: float = AZIMUTH, elevation: float = ELEVATION) -> torch.Tensor:
    """points, normals (B, N, 3) world; rgb (B, 3) or (B, N, 3) in [0, 1] -> views (B, 3, size, size) in [-1, 1]."""
    b, n, _ = points.shape
    fine = size * supersample
    cam = camera(azimuth, elevation)
    p = points @ cam.T  # (B, N, 3) camera coordinates; z grows towards the viewer
    shade = AMBIENT + (1 - AMBIENT) * (normals @ LIGHT).clamp(min=0)  # (B, N)
    if rgb.dim() == 2:
        rgb = rgb[:, None].expand(b, n, 3)
    colour = rgb * shade[..., None]  # (B, N, 3)
    col = ((p[..., 0] + EXTENT) / (2 * EXTENT) * fine).floor().long()  # (B, N)
    row = ((EXTENT - p[..., 1]) / (2 * EXTENT) * fine).floor().long()
    depth = p[..., 2]
    facing = (normals @ cam[2]) > -0.2  # back faces are hidden by the front ones anyway; skip most of them
    pix, dep, val = [], [], []
    for dr in (0, 1):  # a 2 x 2 footprint per point, so the splats close up
        for dc in (0, 1):
            r, c = row + dr, col + dc
            ok = facing & (r >= 0) & (r < fine) & (c >= 0) & (c < fine)
            flat = torch.arange(b)[:, None] * fine * fine + r * fine + c  # (B, N) index into all pixels
            pix.append(flat[ok])
            dep.append(depth[ok])
            val.append(colour[ok])
    pix, dep, val = torch.cat(pix), torch.cat(dep), torch.cat(val)
    zbuf = torch.full((b * fine * fine,), -math.inf).scatter_reduce(0, pix, dep, reduce="amax")
    front = dep >= zbuf[pix]  # the nearest point of each pixel (ties: the last write wins)
    image = torch.full((b * fine * fine, 3), BACKGROUND)
    image[pix[front]] = val[front]
    image = image.view(b, fine, fine, 3).permute(0, 3, 1, 2)  # (B, 3, fine, fine)
    image = torch.nn.functional.avg_pool2d(image, supersample)  # (B, 3, size, size)
    return image * 2 - 1
