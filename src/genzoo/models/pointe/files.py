"""Point-E's outputs as files: a coloured point cloud as a binary `.ply` (written and read with `plyfile`, so any
standard tool - MeshLab, Open3D, trimesh, Blender - opens it: vertex x, y, z float32 and red, green, blue uint8),
and PNG figures of the synthetic view and of the cloud seen from three angles."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ...data.shapes import check_cloud, from_channels
from ...errors import InputError

ANGLES = ((35.0, 25.0), (125.0, 25.0), (0.0, 89.0))  # (azimuth, elevation) of the three cloud views, degrees


def _plyfile():
    try:
        import plyfile
    except ImportError as e:  # an optional extra: the rest of Point-E works without it
        raise InputError("writing .ply files needs plyfile: pip install 'genzoo[pointe]'") from e
    return plyfile


def write_ply(cloud: torch.Tensor, path: str | os.PathLike) -> Path:
    """One cloud (6, N) in Point-E channels (or (1, 6, N)) -> a binary little-endian .ply, written atomically.
    Coordinates are the world points (channels / 2); colours are bytes."""
    cloud = cloud[None] if isinstance(cloud, torch.Tensor) and cloud.dim() == 2 else cloud
    check_cloud(cloud)
    if cloud.shape[0] != 1:
        raise InputError(f"write_ply writes one cloud, got a batch of {cloud.shape[0]}")
    xyz, rgb = from_channels(cloud.detach().float().cpu())
    xyz, rgb = xyz[0].numpy(), (rgb[0].numpy() * 255).round().astype(np.uint8)
    vertex = np.empty(len(xyz), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"),
                                       ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    vertex["x"], vertex["y"], vertex["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    plyfile = _plyfile()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")], text=False).write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_ply(path: str | os.PathLike) -> torch.Tensor:
    """A .ply's vertices (x, y, z and red, green, blue) -> a cloud (6, N) in Point-E channels."""
    plyfile = _plyfile()
    try:
        v = plyfile.PlyData.read(str(path))["vertex"]
        xyz = np.stack([v["x"], v["y"], v["z"]], -1).astype(np.float32)
        rgb = np.stack([v["red"], v["green"], v["blue"]], -1).astype(np.float32) / 255.0
    except (KeyError, ValueError) as e:
        raise InputError(f"{path}: not a coloured point cloud .ply (vertex x, y, z, red, green, blue): {e}") from e
    return torch.cat([2 * torch.from_numpy(xyz), 2 * torch.from_numpy(rgb) - 1], dim=-1).t().contiguous()


def cloud_figure(cloud: torch.Tensor, out: str | os.PathLike, title: str = "") -> None:
    """One cloud (6, N) as a scatter from three angles (`ANGLES`), each point in its own colour -> a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...figures import save_figure

    cloud = cloud[None] if cloud.dim() == 2 else cloud
    xyz, rgb = from_channels(cloud.detach().float().cpu())
    xyz, rgb = xyz[0].numpy(), rgb[0].numpy()
    fig = plt.figure(figsize=(9, 3.2), dpi=100)
    for i, (azim, elev) in enumerate(ANGLES):
        ax = fig.add_subplot(1, 3, i + 1, projection="3d")
        ax.scatter(xyz[:, 0], xyz[:, 2], xyz[:, 1], c=rgb, s=6, depthshade=False)  # y is up
        ax.view_init(elev=elev, azim=azim)
        for lim in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
            lim(-0.5, 0.5)
        ax.set_axis_off()
        ax.set_title(f"azimuth {azim:.0f}, elevation {elev:.0f}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, Path(out))


def view_figure(view: torch.Tensor, out: str | os.PathLike, title: str = "") -> None:
    """One synthetic view (3, S, S) in [-1, 1] -> a PNG (nearest-neighbour, so the pixels stay visible)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...figures import save_figure

    fig, ax = plt.subplots(figsize=(3, 3.2), dpi=100)
    ax.imshow(((view.detach().float().cpu().permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy(), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    save_figure(fig, Path(out))
