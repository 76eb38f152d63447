"""Gato's tokenization (Reed et al., "A Generalist Agent", 2022, arXiv 2205.06175, sec. 2.1 and appendix B).

Every modality becomes integers of one joint vocabulary, or image patches:

- text: the ids of a BPE tokenizer, [0, text_size) (the paper: SentencePiece, 32000 subwords);
- discrete values (a button press, a grid move): integers in [0, bins), shifted after the text vocabulary;
- continuous values (joint angles, torques): mu-law companded (eq. in sec. 2.1),

      F(x) = sgn(x) * ln(|x| mu + 1) / ln(M mu + 1),   mu = 100, M = 256,

  clipped to [-1, 1], discretised into `bins` = 1024 uniform bins and shifted after the discrete values;
- the separator `|` between an observation and its action: the last id;
- images: non-overlapping P x P patches in raster order, each pixel normalised to [-1, 1] and divided by sqrt(P)
  (the paper's 16 x 16 patches divided by 4; here 4 x 4 patches of an 8 x 8 image), embedded by a ResNet block
  (`embedding.PatchResNet`) rather than looked up. Each patch carries its row and column interval, normalised
  to [0, 1] and quantised into `position_bins` = 128 (appendix C.3).

The token kinds (`TEXT`, `DISCRETE`, `CONTINUOUS`, `IMAGE`, `SEPARATOR`) tell the embedding which path a
position takes; the joint vocabulary layout is `Vocab`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...errors import InputError

TEXT, DISCRETE, CONTINUOUS, IMAGE, SEPARATOR = range(5)
KIND_NAMES = ("text", "discrete", "continuous", "image", "separator")

MU, M = 100.0, 256.0
BINS = 1024
POSITION_BINS = 128


def mu_law(x: torch.Tensor, mu: float = MU, m: float = M) -> torch.Tensor:
    """F(x) = sgn(x) ln(|x| mu + 1) / ln(M mu + 1): [-M, M] -> [-1, 1], fine near 0, coarse far from it."""
    x = torch.as_tensor(x, dtype=torch.float64 if torch.as_tensor(x).dtype == torch.float64 else torch.float32)
    return torch.sign(x) * torch.log1p(x.abs() * mu) / math.log(m * mu + 1.0)


def inverse_mu_law(y: torch.Tensor, mu: float = MU, m: float = M) -> torch.Tensor:
    """F^-1(y) = sgn(y) (exp(|y| ln(M mu + 1)) - 1) / mu."""
    return torch.sign(y) * torch.expm1(y.abs() * math.log(m * mu + 1.0)) / mu


def bin_edges(bins: int = BINS) -> torch.Tensor:
    """The bins + 1 edges of the uniform bins over [-1, 1]: bin i is [edge[i], edge[i + 1]), the last one closed."""
    return torch.linspace(-1.0, 1.0, bins + 1, dtype=torch.float64)


def discretise(y: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """Values in [-1, 1] (clipped there first) -> bin indices in [0, bins)."""
    y = y.clamp(-1.0, 1.0)
    return torch.floor((y + 1.0) * (bins / 2.0)).long().clamp(0, bins - 1)


def bin_centres(index: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """Bin indices -> the centre of each bin in [-1, 1]."""
    return -1.0 + (2.0 * index.double() + 1.0) / bins


@dataclass(frozen=True)
class Vocab:
    """The joint vocabulary, in this order: text [0, text_size), discrete values [text_size, text_size + bins),
    continuous-value bins [text_size + bins, text_size + 2 bins), the separator. The paper shifts the value tokens
    past its 32000 text ids; here discrete values and continuous bins get a range each, so a token's id alone says
    what it is (and the continuous bins' rows can start smooth: `embedding.sinusoidal_table`)."""

    text_size: int
    bins: int = BINS

    @property
    def discrete_offset(self) -> int:
        return self.text_size

    @property
    def continuous_offset(self) -> int:
        return self.text_size + self.bins

    @property
    def separator(self) -> int:
        return self.text_size + 2 * self.bins

    @property
    def size(self) -> int:
        return self.separator + 1

    def continuous(self, x, name: str = "continuous value") -> torch.Tensor:
        """Continuous values (any shape) -> token ids: mu-law, clip to [-1, 1], discretise, shift."""
        x = torch.as_tensor(x, dtype=torch.float64)
        if not bool(torch.isfinite(x).all()):
            raise InputError(f"{name} must be finite, got {x.flatten()[~torch.isfinite(x.flatten())][:3].tolist()}")
        return discretise(mu_law(x), self.bins) + self.continuous_offset

    def continuous_values(self, ids: torch.Tensor) -> torch.Tensor:
        """Continuous-bin token ids -> the value at each bin's centre (float64)."""
        self._check_range(ids, self.continuous_offset, "continuous")
        return inverse_mu_law(bin_centres(ids - self.continuous_offset, self.bins))

    def discrete(self, v, name: str = "discrete value") -> torch.Tensor:
        """Integers in [0, bins) -> token ids."""
        v = torch.as_tensor(v)
        if v.is_floating_point() and not bool((v == v.round()).all()):
            raise InputError(f"{name} must be integers, got {v.flatten()[:4].tolist()}")
        v = v.long()
        if v.numel() and (int(v.min()) < 0 or int(v.max()) >= self.bins):
            bad = int(v.min()) if int(v.min()) < 0 else int(v.max())
            raise InputError(f"{name} {bad} is out of range: discrete values are integers in [0, {self.bins})")
        return v + self.discrete_offset

    def discrete_values(self, ids: torch.Tensor) -> torch.Tensor:
        self._check_range(ids, self.discrete_offset, "discrete")
        return ids - self.discrete_offset

    def text(self, ids) -> torch.Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.text_size):
            raise InputError(f"text token ids must lie in [0, {self.text_size}), got {ids.min()}..{ids.max()}")
        return ids

    def _check_range(self, ids: torch.Tensor, lo: int, what: str) -> None:
        hi = lo + self.bins
        if ids.numel() and (int(ids.min()) < lo or int(ids.max()) >= hi):
            raise InputError(f"{what} token ids must lie in [{lo}, {hi}), got {int(ids.min())}..{int(ids.max())}")


# ---- images ----
def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Images (B, C, H, W) -> non-overlapping patches in raster order (B, N, C, P, P), N = (H / P) (W / P)."""
    if images.dim() != 4:
        raise InputError(f"images must have shape (batch, channels, height, width), got {tuple(images.shape)}")
    b, c, h, w = images.shape
    if h % patch or w % patch:
        raise InputError(f"image size {h}x{w} is not a multiple of patch_size={patch}")
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)  # (B, C, Hp, P, Wp, P)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, Hp, Wp, C, P, P)
    return x.reshape(b, (h // patch) * (w // patch), c, patch, patch)  # (B, N, C, P, P)


def normalise_patches(patches: torch.Tensor, low: float, high: float, patch: int) -> torch.Tensor:
    """Pixels in [low, high] -> [-1, 1], divided by sqrt(P) (sec. 2.1: 16 x 16 patches divided by 4)."""
    x = patches.float()
    return (2.0 * (x - low) / (high - low) - 1.0) / math.sqrt(patch)


def patch_intervals(height: int, width: int, patch: int,
                    bins: int = POSITION_BINS) -> tuple[torch.Tensor, torch.Tensor]:
    """Each patch's row and column interval [from, to) (appendix C.3): the patch's pixel interval normalised by
    the image size to [0, 1] and quantised into `bins`. -> rows (N, 2), cols (N, 2), raster order."""
    hp, wp = height // patch, width // patch

    def quantised(i: torch.Tensor, n: int) -> torch.Tensor:
        lo = torch.floor(i * bins / n).long()
        hi = torch.floor((i + 1) * bins / n).long().clamp(max=bins)
        return torch.stack([lo, torch.maximum(hi, lo + 1)], dim=-1)  # (n, 2), never empty

    r = quantised(torch.arange(hp, dtype=torch.float64), hp)  # (Hp, 2)
    c = quantised(torch.arange(wp, dtype=torch.float64), wp)  # (Wp, 2)
    rows = r[:, None].expand(hp, wp, 2).reshape(-1, 2)  # (N, 2)
    cols = c[None].expand(hp, wp, 2).reshape(-1, 2)  # (N, 2)
    return rows, cols


def interval_index(interval: torch.Tensor, sample: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """(..., 2) quantised intervals [from, to) -> one position index each: drawn uniformly from the interval while
    training, the interval's (rounded-down) mean at evaluation (appendix C.3)."""
    lo, hi = interval[..., 0], interval[..., 1]
    if not sample:
        return (lo + hi) // 2
    u = torch.rand(lo.shape, generator=generator, device=lo.device)
    return lo + (u * (hi - lo)).long().clamp(max=(hi - lo - 1).clamp(min=0))
