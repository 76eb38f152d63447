"""DeBERTa's disentangled attention (He et al., "DeBERTa", 2021, sec. 3.1, eq. 2-4; DeBERTa-v2/v3 log-bucket
relative positions). The attention score of query i and key j adds to content-to-content

    c2p(i, j) = Q_i . K^r_{delta(i, j)}      (content -> position)
    p2c(i, j) = K_j . Q^r_{delta(j, i)}      (position -> content)

where delta is the clamped (log-bucketed) relative distance and K^r, Q^r are projections of relative-position
embeddings shared by all layers; the sum is scaled by 1 / sqrt(3 d) (eq. 4, with both terms). These extra
terms depend on the layer's own queries and keys, so `DisentangledBias` computes them inside the attention
part and hands them to the kernel as an additive score bias. `RelativeEmbeddings` (the positions part) builds
the shared embeddings and the index tables once per forward.
"""

from __future__ import annotations

import torch
from torch import nn



def log_bucket_position(rel: torch.Tensor, bucket_size: int, max_position: int) -> torch.Tensor:
    """DeBERTa-v2's bucketing: distances within bucket_size // 2 stay exact, farther ones are log-spaced."""
    sign = torch.sign(rel)
    mid = bucket_size // 2
    abs_pos = torch.where((rel < mid) & (rel > -mid), torch.tensor(mid - 1).type_as(rel), torch.abs(rel))
    log_pos = torch.ceil(torch.log(abs_pos / mid) / torch.log(torch.tensor((max_position - 1) / mid)) * (mid - 1)) + mid
    return torch.where(abs_pos <= mid, rel.type_as(log_pos), log_pos * sign)


def relative_positions(q_pos: torch.Tensor, k_pos: torch.Tensor, buckets: int, max_position: int) -> torch.Tensor:
    """q_pos (Tq,), k_pos (Tk,) -> (Tq, Tk) relative position i - j, log-bucketed when buckets > 0."""
    rel = q_pos.long()[:, None] - k_pos.long()[None, :]
    if buckets > 0 and max_position > 0:
        rel = log_bucket_position(rel, buckets, max_position)
    return rel.long()


class RelativeEmbeddings(nn.Module):
    """The relative-position embeddings all layers share (2 * span, D), optionally layer-normalised."""

    kind = "relative"

    def __init__(self, dim: int, max_positions: int, buckets: int = 256, max_relative: int = -1,
                 norm: bool = True, eps: float = 1e-7):
        super().__init__()
        self.max_relative = max_relative if max_relative > 0 else max_positions
        self.buckets = buckets
        self.span = buckets if buckets > 0 else self.max_relative
        self.weight = nn.Parameter(torch.empty(2 * self.span, dim).normal_(std=0.02))
        self.norm = nn.LayerNorm(dim, eps=eps) if norm else None

    def forward(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_pos (1, Tq), k_pos (1, Tk) slot positions -> embeddings (2 span, D) and the index (Tq, Tk) of
        delta(i, j) into them. The p2c term reads the same table transposed: delta(j, i) = -delta(i, j), and the
        bucketing is odd, so clamp(-rel(j, i) + span) = clamp(rel(i, j) + span)."""
        emb = self.norm(self.weight) if self.norm is not None else self.weight
        rel = relative_positions(q_pos[0], k_pos[0], self.buckets, self.max_relative)  # (Tq, Tk)
        return emb, torch.clamp(rel + self.span, 0, 2 * self.span - 1)


class DisentangledBias(nn.Module):
    """c2p and/or p2c score terms for one attention part. With share_att_key the positions are projected by
    the attention's own query/key projections; otherwise by its own pos_key_proj / pos_query_proj."""

    def __init__(self, dim: int, n_heads: int, head_dim: int, terms: tuple[str, ...] = ("c2p", "p2c"),
                 share_att_key: bool = True):
        super().__init__()
        self.n_heads, self.head_dim, self.terms, self.share = n_heads, head_dim, terms, share_att_key
        if not share_att_key:
            self.pos_key_proj = nn.Linear(dim, n_heads * head_dim) if "c2p" in terms else None
            self.pos_query_proj = nn.Linear(dim, n_heads * head_dim) if "p2c" in terms else None

    @property
    def scale_factor(self) -> int:
        return 1 + len(self.terms)

    def forward(self, q, k, q_proj, k_proj, rel) -> torch.Tensor:
        """q (B, H, Tq, Dh), k (B, H|Hkv, Tk, Dh); rel = RelativeEmbeddings output -> (B, H, Tq, Tk) bias,
        already scaled."""
        emb, idx = rel  # (2 span, D), (Tq, Tk)
        b, h, tq, dh = q.shape
        tk = k.shape[2]
        if k.shape[1] != h:  # grouped-query keys: one copy per query head for the position terms
            k = k.repeat_interleave(h // k.shape[1], dim=1)
        scale = (dh * self.scale_factor) ** 0.5

        def heads(x):  # (2 span, Hx * Dh) -> (1, H, 2 span, Dh); grouped-query heads repeated to H
            x = x.view(1, x.shape[0], -1, dh).transpose(1, 2)
            return x if x.shape[1] == h else x.repeat_interleave(h // x.shape[1], dim=1)

        bias = 0
        if "c2p" in self.terms:
            pos_k = heads((k_proj if self.share else self.pos_key_proj)(emb))
            c2p = torch.matmul(q, pos_k.transpose(-1, -2))  # (B, H, Tq, 2 span)
            bias = bias + torch.gather(c2p, -1, idx[None, None].expand(b, h, tq, tk)) / scale
        if "p2c" in self.terms:
            pos_q = heads((q_proj if self.share else self.pos_query_proj)(emb))
            p2c = torch.matmul(k, pos_q.transpose(-1, -2))  # (B, H, Tk, 2 span)
            bias = bias + torch.gather(p2c, -1, idx.t()[None, None].expand(b, h, tk, tq)).transpose(-1, -2) / scale
        return bias
