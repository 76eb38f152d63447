"""What a continuous-value target is trained against (`GatoConfig.continuous_target`, resolved by name here).

Gato (Reed et al., 2022, arXiv 2205.06175, sec. 2.3) trains every target token, a continuous action's bin
included, with the cross-entropy against that one token. Over 1024 ordered bins the one-hot target says nothing of
distance: a prediction one bin off costs as much as one at the far end of the range, and what the model learns for
one bin reaches its neighbours only through the smooth initial rows (`value_init`). With few labels per bin (a
Pendulum policy sees a few tens of thousands of torques spread over some 500 bins), the predicted distribution
stays ragged and its expected value (`agent.GatoAgent`, continuous="mean") noisy. The options:

- `onehot`: the paper's target, the label's bin alone;
- `gauss`: the histogram loss with a Gaussian target (HL-Gauss; Imani & White, 2018, "Improving Regression
  Performance with Distributional Losses", sec. 3; Farebrother et al., 2024, arXiv 2403.03950, sec. 3.1, eq. 3):
  the target is the mass a normal N(y, sigma^2) centred on the label puts in each bin,

      p_i = (Phi((e_(i+1) - y) / sigma) - Phi((e_i - y) / sigma)) / (Phi((e_n - y) / sigma) - Phi((e_0 - y) / sigma)),

  with e_0..e_n the bin edges and y the centre of the label's bin, both measured in bins (the mu-law space the bins
  are uniform in), and sigma in bins (`continuous_target_args={"sigma": ...}`, default 0.75 bins as the paper
  recommends for sigma / bin width; wider spreads what one label teaches further). The loss at a continuous target
  is the cross-entropy -sum_i p_i log q_i of the model's distribution q over the whole joint vocabulary (mass
  outside the bins is a loss, as in the one-hot case). Text, discrete and every other target keep the one-hot loss.

A target is a callable (logits (N, V), target ids (N,)) -> losses (N,).
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ...registry import Registry
from .tokens import Vocab

CONTINUOUS_TARGETS: Registry = Registry("continuous target")


@CONTINUOUS_TARGETS.register("onehot")
class OneHot:
    """The paper's target: the cross-entropy against the label's token, whatever its kind."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, reduction="none")  # (N,)


@CONTINUOUS_TARGETS.register("gauss")
class GaussianBins(OneHot):
    """HL-Gauss at continuous-value targets (module docstring), the one-hot cross-entropy elsewhere."""

    def __init__(self, vocab: Vocab, sigma: float = 0.75):
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
            raise ConfigError(f"config field continuous_target_args.sigma={sigma!r} is invalid for continuous target "
                              "'gauss': a finite number of bins > 0")
        super().__init__(vocab)
        self.sigma = float(sigma)

    def distribution(self, index: torch.Tensor) -> torch.Tensor:
        """Label bins (N,) in [0, bins) -> the target distributions over the bins (N, bins), each summing to 1."""
        edges = torch.arange(self.vocab.bins + 1, device=index.device, dtype=torch.float32)  # (bins + 1,)
        centre = index.float()[:, None] + 0.5  # (N, 1), in bins
        cdf = torch.special.ndtr((edges[None] - centre) / self.sigma)  # (N, bins + 1)
        mass = cdf[:, 1:] - cdf[:, :-1]  # (N, bins)
        return mass / (cdf[:, -1:] - cdf[:, :1])

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = super().__call__(logits, target)  # (N,)
        lo, n = self.vocab.continuous_offset, self.vocab.bins
        cont = (target >= lo) & (target < lo + n)  # (N,)
        if bool(cont.any()):
            logq = logits[cont].float().log_softmax(-1)[:, lo:lo + n]  # (Nc, bins): over the joint vocabulary
            p = self.distribution(target[cont] - lo)  # (Nc, bins)
            loss = loss.masked_scatter(cont, -(p * logq).sum(-1))
        return loss

    def __repr__(self) -> str:
        return f"GaussianBins(sigma={self.sigma})"


def make_continuous_target(name: str, vocab: Vocab, args: dict | None = None):
    """The continuous target registered as `name`, built with `args` (`GatoConfig.continuous_target_args`); an
    unknown name, an argument it does not take or a value it refuses raises ConfigError."""
    cls = CONTINUOUS_TARGETS.get(name)
    if args is None:
        args = {}
    allowed = [p for p in inspect.signature(cls).parameters if p != "vocab"]
    if not isinstance(args, dict) or any(k not in allowed for k in args):
        raise ConfigError(f"config field continuous_target_args={args!r} is invalid: continuous target {name!r} "
                          f"takes {'only ' + ', '.join(allowed) if allowed else 'no parameters'}")
    return cls(vocab, **args)
