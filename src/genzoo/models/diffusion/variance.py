"""A learned variance for the reverse process (Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic
Models", 2021, arXiv 2102.09672, sec. 3.1), as Point-E's models predict it (arXiv 2212.08751: eps and variance,
"learned_range"; 12 output channels for 6 input channels).

The model outputs v in [-1, 1] per channel besides eps; the reverse step's log-variance interpolates between the
posterior's log beta~_t and log beta_t (their eq. 15): log Sigma = frac log beta_t + (1 - frac) log beta~_t,
frac = (v + 1) / 2. It is trained by the variational bound term L_t = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))
in bits per dimension with the mean's gradient stopped (their "L_hybrid": L_simple + L_vlb, sec. 3.1; the decoder
term at t = 0 is 0, as Point-E sets `discretized_t0=False` for point clouds).

`GaussianTables` holds the posterior coefficients of any alpha_bar sequence: the training schedule, or a respaced
one (a subset of its timesteps, Nichol & Dhariwal sec. 4: the betas recomputed from the kept alpha_bars), so a
learned variance is read against the process it is sampled on.
"""

from __future__ import annotations

import math

import torch


class GaussianTables:
    """Per-step tables (K,) of a diffusion with cumulative alphas `alphas_cumprod` (K,), all float64."""

    def __init__(self, alphas_cumprod: torch.Tensor):
        ac = alphas_cumprod.double()
        prev = torch.cat([ac.new_ones(1), ac[:-1]])
        self.alphas_cumprod, self.alphas_cumprod_prev = ac, prev
        self.betas = 1 - ac / prev
        self.posterior_variance = self.betas * (1 - prev) / (1 - ac)
        # log beta~ clipped: beta~_0 = 0, so step 0 borrows step 1's value
        pv = self.posterior_variance
        self.posterior_log_variance = torch.log(torch.cat([pv[1:2], pv[1:]]) if len(pv) > 1 else pv.clamp(min=1e-20))
        self.coef_x0 = self.betas * prev.sqrt() / (1 - ac)
        self.coef_xt = (1 - prev) * (1 - self.betas).sqrt() / (1 - ac)

    @staticmethod
    def _at(table: torch.Tensor, i: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return table.to(like.device)[i.to(like.device)].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def posterior(self, x0: torch.Tensor, x_t: torch.Tensor, i: torch.Tensor):
        """q(x_{t-1} | x_t, x_0): mean and clipped log-variance, each shaped like x_t; i (B,) step indices."""
        mean = self._at(self.coef_x0, i, x_t) * x0 + self._at(self.coef_xt, i, x_t) * x_t
        return mean, self._at(self.posterior_log_variance, i, x_t).expand_as(x_t)

    def x0_from_eps(self, x_t: torch.Tensor, i: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        a = self._at(self.alphas_cumprod, i, x_t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def learned_log_variance(self, v: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        """log Sigma from the model's v in [-1, 1] (Nichol & Dhariwal eq. 15)."""
        frac = (v + 1) / 2
        lo = self._at(self.posterior_log_variance, i, v)
        hi = self._at(torch.log(self.betas), i, v)
        return frac * hi + (1 - frac) * lo


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def vb_term(tables: GaussianTables, x0: torch.Tensor, x_t: torch.Tensor, i: torch.Tensor, eps: torch.Tensor,
            v: torch.Tensor, clip: bool = False) -> torch.Tensor:
    """L_t in bits per dimension (B,): KL between the true posterior and the model's Gaussian whose mean comes from
    the eps prediction (pass it detached to train only the variance) and whose log-variance from v; 0 at step 0."""
    true_mean, true_logvar = tables.posterior(x0, x_t, i)
    x0_pred = tables.x0_from_eps(x_t, i, eps)
    if clip:
        x0_pred = x0_pred.clamp(-1, 1)
    mean, _ = tables.posterior(x0_pred, x_t, i)
    kl = normal_kl(true_mean, true_logvar, mean, tables.learned_log_variance(v, i))
    kl = kl.flatten(1).mean(1) / math.log(2.0)
    return torch.where(i.to(kl.device) == 0, torch.zeros_like(kl), kl)
