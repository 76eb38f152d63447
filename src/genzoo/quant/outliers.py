"""Activation-outlier metrics as forward hooks: any model, no change to its code (Bondarenko et al.,
"Quantizable Transformers", 2023, arXiv 2306.12929, sec. 3 and 5; Dettmers et al., "LLM.int8()", 2022).

    meter = OutlierMeter(model)                       # hooks every transformer block and attention part
    with meter:
        for ids in batches:
            meter.mark(token_kinds(ids, tokenizer))   # optional: what sits at each position
            model(ids)
    stats = meter.summary()

Per layer (the output of each block, the hidden states):
- ``inf_norm``: the largest |x| seen, ||x||_inf;
- ``kurtosis``: the kurtosis E[(x - mu)^4] / sigma^4 of each sequence's hidden states (all T x D values
  flattened, as the paper's code does), averaged over sequences; 3 for a Gaussian, large with a few outliers.
With positions marked, ``outlier_kinds``: where the top `top_fraction` (0.1%) of |x| of each layer and batch
sit, by the kind of token at that position (first token, newline, whitespace, punctuation, special, other).
For attention parts without rotary or relative positions, the attention weights are recomputed from the hooked
query and key projections with the part's own softmax variant, scale and causal mask: ``attn_first`` (weight
on the first token), ``attn_delimiters`` (on whitespace, newline, punctuation and special tokens) and
``attn_total`` (the weights' sum: below 1 where a softmax variant lets a head attend to nothing).
"""

from __future__ import annotations

import string

import torch
from torch import nn

from ..errors import ConfigError, InputError
from ..nn.attention import Attention
from ..nn.blocks import Block

KINDS = ("first", "newline", "whitespace", "punctuation", "special", "other")
DELIMITERS = ("newline", "whitespace", "punctuation", "special")  # low-information tokens
_PUNCT = set(string.punctuation)


def vocabulary_kinds(tokenizer) -> torch.Tensor:
    """(V,) the kind (index into KINDS) of every token of a genzoo `Tokenizer`, from its text alone."""
    tok = tokenizer.tok
    special = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}
    kinds = []
    for i in range(tok.get_vocab_size()):
        text = tok.decode([i], skip_special_tokens=False)
        if i in special:
            kinds.append("special")
        elif text and not text.strip():
            kinds.append("newline" if "\n" in text or "\r" in text else "whitespace")
        elif text.strip() and all(c in _PUNCT for c in text.strip()):
            kinds.append("punctuation")
        else:
            kinds.append("other")
    return torch.tensor([KINDS.index(k) for k in kinds])


def token_kinds(ids: torch.Tensor, vocab_kinds: torch.Tensor) -> torch.Tensor:
    """(B, T) token ids -> (B, T) kinds; position 0 of every row is "first"."""
    kinds = vocab_kinds[ids]
    kinds[:, 0] = KINDS.index("first")
    return kinds


def kurtosis(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B,): the kurtosis of each row's values, E[(x - mu)^4] / sigma^4 (sigma with Bessel's
    correction, as the paper's code)."""
    x = x.flatten(1).double()
    mu = x.mean(dim=1, keepdim=True)
    return ((x - mu) ** 4).mean(dim=1) / x.std(dim=1) ** 4


class LayerStats:
    def __init__(self):
        self.inf_norm = 0.0
        self.kurtosis: list[float] = []
        self.kinds = torch.zeros(len(KINDS), dtype=torch.long)
        self.attn = torch.zeros(3, dtype=torch.float64)  # sums of (first, delimiters, total) over queries
        self.queries = 0


class OutlierMeter:
    """Forward hooks measuring activation outliers (see the module docstring). layers: the modules whose outputs
    are measured (default: every `nn.Block`); attention: also recompute attention weights where possible."""

    def __init__(self, model: nn.Module, layers: list[nn.Module] | None = None, *, top_fraction: float = 1e-3,
                 attention: bool = True):
        if not 0.0 < top_fraction < 1.0:
            raise ConfigError(f"OutlierMeter top_fraction={top_fraction!r} is invalid: must be in (0, 1)")
        self.layers = list(layers) if layers is not None else [m for m in model.modules() if isinstance(m, Block)]
        if not self.layers:
            raise ConfigError(f"OutlierMeter: {type(model).__name__} has no transformer block; pass layers=")
        self.top_fraction = top_fraction
        self.attns = [getattr(b, "attn", None) for b in self.layers] if attention else []
        self.stats = [LayerStats() for _ in self.layers]
        self.kinds: torch.Tensor | None = None
        self.hooks: list = []
        self._qk: dict[int, dict] = {}

    # ---- hooks ----
    def __enter__(self) -> "OutlierMeter":
        for i, layer in enumerate(self.layers):
            self.hooks.append(layer.register_forward_hook(lambda m, a, out, i=i: self._layer(i, out)))
        for i, attn in enumerate(self.attns):
            if isinstance(attn, Attention) and not attn.rotary and attn.relative is None:
                self._qk[i] = {}
                for part in ("q", "k"):
                    proj = getattr(attn, f"{part}_proj")
                    self.hooks.append(proj.register_forward_hook(
                        lambda m, a, out, i=i, part=part: self._qk[i].__setitem__(part, out.detach())))
                self.hooks.append(attn.register_forward_hook(lambda m, a, out, i=i: self._attention(i, m)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self.hooks:
            h.remove()
        self.hooks = []

    def mark(self, kinds: torch.Tensor | None) -> None:
        """The kind of token (index into KINDS) at each position (B, T) of the next forward pass."""
        self.kinds = kinds

    def _layer(self, i: int, out) -> None:
        x = (out[0] if isinstance(out, tuple) else out).detach().float()  # (B, T, D)
        if x.dim() == 2:  # an unpadded (N, D) batch: one row
            x = x[None]
        s = self.stats[i]
        s.inf_norm = max(s.inf_norm, float(x.abs().max()))
        s.kurtosis += kurtosis(x).tolist()
        if self.kinds is not None:
            if tuple(self.kinds.shape) != tuple(x.shape[:2]):
                raise InputError(f"OutlierMeter.mark: kinds has shape {tuple(self.kinds.shape)}, the layer output "
                                 f"{tuple(x.shape)}; expected (B, T) = {tuple(x.shape[:2])}")
            flat = x.abs().flatten()
            k = max(1, int(round(self.top_fraction * flat.numel())))
            top = flat.topk(k).indices // x.shape[-1]  # flat (B * T) positions of the largest values
            s.kinds += torch.bincount(self.kinds.flatten().to(x.device)[top].cpu(), minlength=len(KINDS))

    @torch.no_grad()
    def _attention(self, i: int, attn: Attention) -> None:
        qk = self._qk[i]
        if "q" not in qk or "k" not in qk or qk["q"].dim() != 3 or qk["k"].shape[1] != qk["q"].shape[1]:
            qk.clear()  # cross-attention, a cache or an unpadded batch: not measured
            return
        q, k = qk.pop("q").float(), qk.pop("k").float()
        b, t = q.shape[:2]
        q = q.view(b, t, attn.n_heads, attn.head_dim).transpose(1, 2)  # (B, H, T, Dh)
        k = k.view(b, t, attn.n_kv_heads, attn.head_dim).transpose(1, 2)  # (B, Hkv, T, Dh)
        k = k.repeat_interleave(attn.n_heads // attn.n_kv_heads, dim=1)  # (B, H, T, Dh)
        scores = q @ k.transpose(-1, -2) * attn.scale  # (B, H, T, T)
        if attn.causal:
            allowed = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        probs = attn.softmax(scores)  # (B, H, T, T)
        rows = probs[:, :, 1:] if attn.causal else probs  # the first query of a causal row can only see itself
        s = self.stats[i]
        s.attn[0] += float(rows[..., 0].sum())
        s.attn[2] += float(rows.sum())
        if self.kinds is not None:
            delim = torch.isin(self.kinds, torch.tensor([KINDS.index(d) for d in DELIMITERS])).to(probs)  # (B, T)
            s.attn[1] += float((rows * delim[:, None, None, :]).sum())
        s.queries += rows.shape[0] * rows.shape[1] * rows.shape[2]

    # ---- results ----
    def summary(self) -> dict:
        """max_inf_norm, avg_kurtosis (over layers), and per layer inf_norm, kurtosis, outlier_kinds (fractions of
        the top values by token kind), attn_first / attn_delimiters / attn_total (mean weight per query)."""
        layers = []
        for s in self.stats:
            row = {"inf_norm": s.inf_norm, "kurtosis": sum(s.kurtosis) / max(1, len(s.kurtosis))}
            if int(s.kinds.sum()):
                row["outlier_kinds"] = {k: float(n) / float(s.kinds.sum()) for k, n in zip(KINDS, s.kinds.tolist())}
            if s.queries:
                row.update(attn_first=float(s.attn[0]) / s.queries, attn_total=float(s.attn[2]) / s.queries)
                if self.kinds is not None:
                    row["attn_delimiters"] = float(s.attn[1]) / s.queries
            layers.append(row)
        out = {"max_inf_norm": max(r["inf_norm"] for r in layers),
               "avg_kurtosis": sum(r["kurtosis"] for r in layers) / len(layers), "layers": layers}
        counts = sum(s.kinds for s in self.stats)
        if int(counts.sum()):
            out["outlier_kinds"] = {k: float(n) / float(counts.sum()) for k, n in zip(KINDS, counts.tolist())}
        return out
