"""The symmetric InfoNCE loss of CLIP (Radford et al., 2021, Fig. 3), correct under data parallelism.

With N ranks, each rank gathers every rank's features and scores its local images against all texts
(and its local texts against all images), with labels offset by rank * local_batch, as open_clip's
`ClipLoss`. `torch.distributed.nn.functional.all_gather` carries gradients back to every rank's
features, so the loss and its gradients equal those of one process holding the global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All ranks' rows of x (with gradients), and this rank's offset into them."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0), dist.get_rank() * x.shape[0]


def clip_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, distributed: bool = True) -> torch.Tensor:
    """image, text (B, P) normalised features of B pairs; scale = exp(logit_scale). distributed=False
    scores the local batch only (e.g. a validation set every rank holds whole)."""
    all_image, offset = gather(image) if distributed else (image, 0)
    all_text, _ = gather(text) if distributed else (text, 0)
    labels = torch.arange(image.shape[0], device=image.device) + offset
    per_image = scale * image @ all_text.t()  # (B, N B)
    per_text = scale * text @ all_image.t()  # (B, N B)
    return (F.cross_entropy(per_image, labels) + F.cross_entropy(per_text, labels)) / 2
