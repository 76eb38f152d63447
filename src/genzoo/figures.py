"""Figures shared by tasks and experiments (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

from pathlib import Path

import torch


def image_grid(images: torch.Tensor, out: Path, ncol: int, title: str = "", row_labels: list[str] | None = None):
    """Save images (N, 1, H, W) greyscale or (N, 3, H, W) RGB in [-1, 1] as a grid of N / ncol rows to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = images.shape[0]
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * 0.6, nrow * 0.6 + (0.4 if title else 0)), dpi=100,
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i < n and images.shape[1] == 3:
            ax.imshow(((images[i].float().cpu().permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy())  # (H, W, 3)
        elif i < n:
            ax.imshow(images[i, 0].float().cpu().numpy(), cmap="gray_r", vmin=-1, vmax=1)
        else:
            ax.axis("off")
        if row_labels is not None and i % ncol == 0 and i // ncol < len(row_labels):
            ax.set_ylabel(row_labels[i // ncol], rotation=0, labelpad=10, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, out)


def save_figure(fig, out: Path) -> None:
    """Write a matplotlib figure to a PNG atomically (a temporary file renamed into place) and close it."""
    import matplotlib.pyplot as plt

    out = Path(out)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)


def save_gif(frames: list, out, fps: int = 30) -> None:
    """RGB frames (H, W, 3) uint8 as an animated GIF (Pillow), written atomically."""
    from PIL import Image

    from .errors import InputError

    if not frames:
        raise InputError("no frames to write: the environment rendered none")
    out = Path(out)
    images = [Image.fromarray(f) for f in frames]
    tmp = out.with_suffix(".tmp.gif")
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0)
    tmp.replace(out)
