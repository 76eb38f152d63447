"""Sparse mixture of experts (Shazeer et al., 2017; Fedus et al., "Switch Transformers", 2021;
Jiang et al., "Mixtral of Experts", 2024).

- `TopKRouter`: softmax over all E experts, keep the top k, renormalise. This equals Mixtral's
  softmax over the top-k logits (eq. 1-2: G(x) = Softmax(TopK(x W_g))).
- `StackedExperts`: E gated FFNs stored as two stacked tensors in (experts, in, out) order, gate_up (E, D, 2F)
  and down (E, F, D), so each expert's product is x @ W with no transposed operand (`transformers` holds the
  transposes, (E, 2F, D) and (E, D, F); interop transposes on load and save).
  Dispatch is dropless: the N*k (token, expert) pairs are sorted by
  expert and each expert's contiguous slice is multiplied by a grouped matmul (no Python loop over
  experts; a padded batched matmul where grouped matmul is unavailable).
- `load_balancing_loss`: the Switch auxiliary loss (eq. 4-6), E * sum_e f_e * P_e. scope="all-layers" computes
  it exactly as `transformers`' Mixtral does: the counts and probabilities of all layers pooled into one f and
  one P, so it balances the experts' total load over the layers, and one layer may starve an expert that
  another over-uses. scope="per-layer" is the paper's: the loss of each MoE layer, averaged over the layers,
  which balances every layer.
- `router_z_loss`: ST-MoE's z-loss (Zoph et al., 2022, eq. 5), mean(logsumexp(logits)^2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .ffn import ACTIVATIONS


class TopKRouter(nn.Module):
    def __init__(self, dim: int, n_experts: int, top_k: int, jitter: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_experts, dim).normal_(std=0.02))
        self.n_experts, self.top_k, self.jitter = n_experts, top_k, jitter

    def forward(self, x: torch.Tensor):
        """x (N, D) -> logits (N, E), weights (N, k) (sum to 1), experts (N, k)."""
        logits = F.linear(x, self.weight)  # (N, E)
        probs = torch.softmax(logits.float(), dim=-1)
        weights, experts = torch.topk(probs, self.top_k, dim=-1)  # (N, k)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        return logits, weights, experts

    def extra_repr(self) -> str:
        return f"experts={self.n_experts}, top_k={self.top_k}"


def _grouped_mm_ok(x: torch.Tensor, w: torch.Tensor) -> bool:
    """torch._grouped_mm runs on CPU, and on CUDA in bf16 from Hopper (sm90) on, for operands whose strides are
    multiples of 16 bytes (in fp32: dimensions divisible by 4)."""
    if not hasattr(torch, "_grouped_mm"):
        return False
    if torch.compiler.is_compiling() and x.dtype != torch.bfloat16:  # its tracing (meta) kernel takes bf16 only
        return False
    if any(s != 1 and s * t.element_size() % 16 for t in (x, w) for s in t.stride()[-2:]) \
            or w.shape[-1] * w.element_size() % 16:  # the output's row stride
        return False
    if x.device.type == "cpu":
        return True
    return x.device.type == "cuda" and x.dtype == torch.bfloat16 and torch.cuda.get_device_capability(x.device)[0] >= 9


def grouped_matmul(x: torch.Tensor, w: torch.Tensor, counts: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Rows of x (M, K) sorted by group, group g of size counts[g] times w[g] (K, N) -> (M, N)."""
    if _grouped_mm_ok(x, w):
        out = torch._grouped_mm(x, w, offs=offsets)
        if out.requires_grad:  # its backward rejects an expanded (stride-0) gradient, as out.sum() sends
            out.register_hook(torch.Tensor.contiguous)
        return out
    # fallback: pad every group to the largest one and use one batched matmul
    e, cap = w.shape[0], int(counts.max())
    start = offsets - counts  # (E,)
    group = torch.repeat_interleave(torch.arange(e, device=x.device), counts)  # (M,)
    slot = torch.arange(x.shape[0], device=x.device) - start[group]  # position inside its group
    padded = x.new_zeros(e, cap, x.shape[1])
    padded[group, slot] = x
    return torch.bmm(padded, w)[group, slot]  # (M, N)


def _call(fn, *args):
    return fn(*args)


_eagerly = None  # _call under torch.compiler.disable: fn(*args) outside any torch.compile graph (a graph break)


def _eager_call():
    """`_eagerly`, made on first use: torch.compiler.disable imports torch._dynamo (half of `import genzoo`'s time,
    1.5 s of 2.9 s measured), so it is made when the first MoE layer is built, not when genzoo is imported; the
    compiled forward then finds it as a global."""
    global _eagerly
    if _eagerly is None:
        _eagerly = torch.compiler.disable(_call)
    return _eagerly


class StackedExperts(nn.Module):
    def __init__(self, n_experts: int, dim: int, hidden: int, activation: str = "silu"):
        super().__init__()
        self.n_experts, self.hidden, self.activation = n_experts, hidden, activation
        self.act = ACTIVATIONS.get(activation)
        _eager_call()  # before any torch.compile traces forward
        # (in, out) per expert: at one token per step (decoding) x @ W is a matrix-vector product that reads W
        # front to back on both threads, about 1.5x the bandwidth of the (out, in) transposed view on CPU (MKL)
        self.gate_up = nn.Parameter(torch.empty(n_experts, dim, 2 * hidden).normal_(std=0.02))  # (E, D, 2F)
        self.down = nn.Parameter(torch.empty(n_experts, hidden, dim).normal_(std=0.02))  # (E, F, D)

    def forward(self, x: torch.Tensor, experts: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """x (N, D), experts/weights (N, k) -> sum_j weights[:, j] * expert_{experts[:, j]}(x), (N, D)."""
        if torch.compiler.is_compiling() and x.dtype != torch.bfloat16:
            # torch.compile cannot trace torch._grouped_mm outside bf16, and the padded fallback's capacity is
            # data-dependent (a graph break of its own): the layer runs eagerly on the grouped kernel instead, a
            # decoding step measured 2-3x faster that way at batch 1 on CPU
            return _eagerly(self._dispatch, x, experts, weights)
        return self._dispatch(x, experts, weights)

    def _dispatch(self, x: torch.Tensor, experts: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        n, k = experts.shape
        flat = experts.reshape(-1)  # (N k,)
        order = torch.argsort(flat, stable=True)  # (token, choice) pairs sorted by expert
        token = order // k  # (N k,) the token of each sorted pair
        counts = torch.bincount(flat, minlength=self.n_experts)  # (E,)
        offsets = counts.cumsum(0, dtype=torch.int32)  # (E,) the end of each expert's rows
        xs = x.index_select(0, token)  # (N k, D)
        h = grouped_matmul(xs, self.gate_up, counts, offsets)  # (N k, 2F)
        gate, up = h.chunk(2, dim=-1)
        h = grouped_matmul(self.act(gate) * up, self.down, counts, offsets)  # (N k, D)
        h = h * weights.reshape(-1, 1).index_select(0, order).to(h.dtype)  # (N k, D) * (N k, 1)
        return torch.zeros_like(x).index_add_(0, token, h)  # (N, D)

    def extra_repr(self) -> str:
        return f"experts={self.n_experts}, hidden={self.hidden}, activation={self.activation}"


class SparseMoE(nn.Module):
    """Router + experts on (B, T, D). Keeps the last forward's router logits (`router_logits`, (B T, E))
    and choices (`experts`, (B T, k)) for the auxiliary losses and for routing analysis."""

    def __init__(self, router: TopKRouter, experts: StackedExperts):
        super().__init__()
        self.router, self.experts = router, experts
        self.router_logits: torch.Tensor | None = None
        self.chosen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = x.reshape(b * t, d)  # (N, D)
        if self.training and self.router.jitter > 0:
            h = h * torch.empty_like(h).uniform_(1.0 - self.router.jitter, 1.0 + self.router.jitter)
        logits, weights, chosen = self.router(h)
        self.router_logits, self.chosen = logits, chosen
        return self.experts(h, chosen, weights).view(b, t, d)


LOSS_SCOPES = ("all-layers", "per-layer")


def load_balancing_loss(router_logits: list[torch.Tensor], n_experts: int, top_k: int,
                        attention_mask: torch.Tensor | None = None, scope: str = "all-layers") -> torch.Tensor:
    """Switch-Transformer auxiliary loss E * sum_e f_e * P_e, where f_e is the fraction of top-k assignments
    to expert e and P_e the mean router probability of e (padding excluded). router_logits: L x (N, E).
    scope: "all-layers" pools the L layers into one f and P (`transformers`' Mixtral); "per-layer" takes the
    loss of each layer and averages them (Fedus et al., eq. 4, applied at every MoE layer). Both are k for a
    uniform router."""
    if scope not in LOSS_SCOPES:
        raise ConfigError(f"load-balancing scope {scope!r} is unknown: one of {LOSS_SCOPES}")
    mask = None if attention_mask is None else attention_mask.reshape(-1).float()
    parts = []  # per layer: (assignment counts (E,), probability sums (E,), real rows ())
    for logits in router_logits:
        probs = torch.softmax(logits.float(), dim=-1)  # (N, E)
        chosen = torch.topk(probs, top_k, dim=-1).indices  # (N, k)
        w = torch.ones(chosen.shape[0], device=probs.device) if mask is None else mask  # (N,)
        counts = torch.zeros(n_experts, device=probs.device).scatter_add(0, chosen.reshape(-1),
                                                                         w.repeat_interleave(top_k))
        parts.append((counts, (probs * w[:, None]).sum(dim=0), w.sum()))

    def switch(counts, prob_sum, rows):
        return n_experts * torch.sum((counts / rows) * (prob_sum / rows))

    if scope == "per-layer":
        return torch.stack([switch(*p) for p in parts]).mean()
    return switch(*(torch.stack(x).sum(0) for x in zip(*parts)))


def router_z_loss(router_logits: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([torch.logsumexp(l.float(), dim=-1).pow(2).mean() for l in router_logits]).mean()
