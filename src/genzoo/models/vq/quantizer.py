"""Vector quantisation with a straight-through gradient (van den Oord et al., 2017, arXiv 1711.00937, sec. 3.1-3.2),
exponential-moving-average codebook updates (ibid., appendix A.1) and restarts of dead codes (Dhariwal et al., 2020,
"Jukebox", arXiv 2005.00341, sec. 3.3).

    k(z)  = argmin_j || z - e_j ||^2                       (eq. 1, per grid position)
    z_q   = z + sg(e_k - z)                                 (the straight-through estimator, sec. 3.1)
    loss  = beta || z - sg(e_k) ||^2                        (commitment; eq. 3's codebook term is replaced by EMA:)
    N_j  <- decay N_j + (1 - decay) n_j,  m_j <- decay m_j + (1 - decay) sum_{k(z)=j} z,  e_j = m_j / N_j
A code whose EMA usage N_j falls below `restart_threshold` is moved onto a random encoder output of the batch.
With decay = 0 the codebook is a parameter learned by eq. 3's term || sg(z) - e_k ||^2 instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    def __init__(self, codebook_size: int, dim: int, *, beta: float = 0.25, decay: float = 0.99, eps: float = 1e-5,
                 restart_threshold: float = 1.0):
        super().__init__()
        self.codebook_size, self.dim = codebook_size, dim
        self.beta, self.decay, self.eps, self.restart_threshold = beta, decay, eps, restart_threshold
        init = torch.randn(codebook_size, dim) * dim**-0.5
        if decay > 0:
            self.register_buffer("embed", init)
            self.register_buffer("cluster_size", torch.ones(codebook_size))
            self.register_buffer("embed_sum", init.clone())
        else:
            self.embed = nn.Parameter(init)
        self.restarts = 0  # codes restarted so far in this process (a diagnostic, not state)

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, D) -> nearest code indices (N,) (eq. 1)."""
        e = self.embed
        dist = (z.pow(2).sum(1, keepdim=True) - 2 * z @ e.t() + e.pow(2).sum(1)[None])  # (N, K)
        return dist.argmin(1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (...) -> code vectors (..., D)."""
        return F.embedding(indices, self.embed)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (N, D) -> (z_q (N, D) with the straight-through gradient, indices (N,), loss, perplexity of the codes).

        Runs in the codebook's dtype with autocast off: under bf16 autocast the encoder's z arrives in bf16, and
        nearest-code distances and the EMA statistics need float32."""
        with torch.autocast(z.device.type, enabled=False):
            return self._quantise(z.to(self.embed.dtype))

    def _quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = self.codes(z.detach())
        e_k = self.lookup(idx)  # (N, D)
        loss = self.beta * F.mse_loss(z, e_k.detach())
        if self.decay == 0:
            loss = loss + F.mse_loss(e_k, z.detach())  # eq. 3's codebook term
        elif self.training:
            self._ema_update(z.detach(), idx)
        counts = torch.bincount(idx, minlength=self.codebook_size).float()
        p = counts / counts.sum()
        perplexity = torch.exp(-(p * (p + 1e-10).log()).sum())
        return z + (e_k - z).detach(), idx, loss, perplexity

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, idx: torch.Tensor) -> None:
        onehot = F.one_hot(idx, self.codebook_size).type(z.dtype)  # (N, K)
        n, s = onehot.sum(0), onehot.t() @ z  # (K,), (K, D)
        if torch.distributed.is_available() and torch.distributed.is_initialized():  # every rank's batch counts
            torch.distributed.all_reduce(n)
            torch.distributed.all_reduce(s)
        self.cluster_size.mul_(self.decay).add_(n, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(s, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total  # Laplace
        self.embed.copy_(self.embed_sum / smoothed[:, None])
        dead = self.cluster_size < self.restart_threshold
        if self.restart_threshold > 0 and bool(dead.any()):
            # restart on encoder outputs of this batch; the fresh count (2x the threshold) gives a restarted code
            # about ln 2 / (1 - decay) steps to win usage before it could be restarted again
            pick = torch.randint(len(z), (int(dead.sum()),), device=z.device)
            fresh = z[pick]
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.broadcast(fresh, 0)  # every rank restarts on the same vectors
            self.embed[dead] = fresh
            self.embed_sum[dead] = fresh * 2 * self.restart_threshold
            self.cluster_size[dead] = 2 * self.restart_threshold
            self.restarts += int(dead.sum())
