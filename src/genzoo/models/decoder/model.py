"""The decoder-only language model (Radford et al., 2019, GPT-2; Touvron et al., 2023, Llama;
Jiang et al., 2023, Mistral; Jiang et al., 2024, Mixtral): the shared causal `Stack` (token embedding, positions,
N blocks of causal self-attention and feed-forward, final norm) plus a language-model head. Which attention,
position, norm and FFN parts it uses is read from its `DecoderConfig`; the structure reads top to bottom like
nanoGPT's `model.py`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...config import GENRES
from ...errors import InputError
from ...generate import GenerationMixin
from ...inputs import check_labels, check_token_ids
from ...nn import (FFNS, NORMS, Attention, Block, StaticKVCache, Stack, attention_options, make_gate,
                   make_positions, make_softmax, reset_gates)
from ...nn.ffn import GATED_ACTIVATIONS
from ...nn.moe import SparseMoE, StackedExperts, TopKRouter, load_balancing_loss, router_z_loss
from ...outputs import CausalLMOutput
from .config import DecoderConfig


def make_block(cfg: DecoderConfig, positions: nn.Module) -> Block:
    """One pre-norm block: the parts are built here and handed to `Attention` and `Block`."""
    d, h, hkv, dh = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    attn = Attention(
        nn.Linear(d, h * dh, bias=cfg.attn_bias),
        nn.Linear(d, hkv * dh, bias=cfg.attn_bias),
        nn.Linear(d, hkv * dh, bias=cfg.attn_bias),
        nn.Linear(h * dh, d, bias=cfg.attn_out_bias),
        n_heads=h,
        n_kv_heads=hkv,
        head_dim=dh,
        softmax=make_softmax(cfg.softmax, cfg.softmax_args),
        window=cfg.sliding_window,
        causal=True,
        dropout=cfg.dropout,
        backend=cfg.attn_backend,
        gate=make_gate(cfg.attn_gate, d, h),
        **attention_options(positions, dim=d, n_heads=h, head_dim=dh),
    )
    if cfg.n_experts:  # Mixtral: every FFN is a sparse mixture of gated experts
        act = GATED_ACTIVATIONS.get(cfg.ffn, cfg.activation)
        ffn = SparseMoE(TopKRouter(d, cfg.n_experts, cfg.experts_top_k, cfg.router_jitter),
                        StackedExperts(cfg.n_experts, d, cfg.d_ff, act))
    else:
        ffn = FFNS.get(cfg.ffn)(d, cfg.d_ff, cfg.activation, cfg.ffn_bias)
    norm = NORMS.get(cfg.norm)
    return Block(attn, ffn, norm(d, cfg.norm_eps, cfg.norm_bias), norm(d, cfg.norm_eps, cfg.norm_bias),
                 norm_position="pre", dropout=cfg.dropout)


@GENRES.register("decoder")
class DecoderLM(Stack, GenerationMixin):
    """A causal `Stack` and its language-model head."""

    config_class = DecoderConfig

    def __init__(self, config: DecoderConfig):
        cfg = config
        positions = make_positions(cfg.position, causal=True, max_positions=cfg.max_positions, dim=cfg.d_model,
                                   head_dim=cfg.head_dim, n_heads=cfg.n_heads, theta=cfg.rope_theta,
                                   scaling=cfg.rope_scaling)
        super().__init__(
            [make_block(cfg, positions) for _ in range(cfg.n_layers)],
            embed=nn.Embedding(cfg.vocab_size, cfg.d_model),
            positions=positions,
            final_norm=NORMS.get(cfg.norm)(cfg.d_model, cfg.norm_eps, cfg.norm_bias),
            dropout=cfg.dropout,
            causal=True,
        )
        self.config = cfg
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.reset_parameters()

    def tied_parameters(self) -> list[str]:
        """Parameters that are another parameter under a second name (not stored in checkpoints)."""
        return ["lm_head.weight"] if self.config.tie_embeddings else []

    def shardable_blocks(self) -> list[nn.Module]:
        """The modules FSDP shards one by one (`train.distributed.wrap`): the transformer blocks."""
        return list(self.blocks)

    def reset_parameters(self) -> None:
        """Normal(0, init_std) weights, zero biases; residual output projections scaled by
        1/sqrt(2 * n_layers) (GPT-2, sec. 2.3)."""
        std = self.config.init_std
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p) if name.endswith("norm.weight") else nn.init.zeros_(p)
            elif name.endswith(("o_proj.weight", "ffn.down.weight", "ffn.experts.down")):
                nn.init.normal_(p, std=std / math.sqrt(2 * self.config.n_layers))
            else:
                nn.init.normal_(p, std=std)
        reset_gates(self)  # gates start open to their init value (the loop above zeroed their biases)

    # ---- input checks (before any compute; DESIGN.md principle 5) ----
    def check_inputs(self, input_ids, attention_mask=None, position_ids=None, start: int = 0) -> None:
        cfg = self.config
        check_token_ids(input_ids, cfg.vocab_size, cfg.max_positions, attention_mask, start=start)
        b, t = input_ids.shape
        if position_ids is not None:
            if tuple(position_ids.shape) not in ((b, t), (1, t)):
                raise InputError(f"position_ids has shape {tuple(position_ids.shape)}; expected {(b, t)}")
            if int(position_ids.min()) < 0 or int(position_ids.max()) >= cfg.max_positions:
                raise InputError(f"position_ids must lie in [0, {cfg.max_positions})")

    def check_embeds(self, inputs_embeds, attention_mask=None, start: int = 0) -> None:
        cfg = self.config
        if not isinstance(inputs_embeds, torch.Tensor) or inputs_embeds.dim() != 3 or \
                inputs_embeds.shape[-1] != cfg.d_model:
            raise InputError(f"inputs_embeds has shape {tuple(getattr(inputs_embeds, 'shape', ()))}; expected "
                             f"(batch, seq_len, d_model={cfg.d_model})")
        b, t = inputs_embeds.shape[:2]
        if start + t > cfg.max_positions:
            raise InputError(f"sequence length {start + t} exceeds the model's max_positions={cfg.max_positions}")
        if attention_mask is not None and tuple(attention_mask.shape) != (b, t):
            raise InputError(f"attention_mask has shape {tuple(attention_mask.shape)}; expected {(b, t)}")

    def make_cache(self, batch: int, max_len: int, key_valid: torch.Tensor | None = None) -> StaticKVCache:
        cfg = self.config
        w = self.embed.weight
        return StaticKVCache(cfg.n_layers, batch, cfg.n_kv_heads, max_len, cfg.head_dim,
                             dtype=w.dtype, device=w.device, key_valid=key_valid)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        cache: StaticKVCache | None = None,
        logits_to_keep: int = 0,
        check: bool = True,
        inputs_embeds: torch.Tensor | None = None,
        memory_kv: list | None = None,
        memory_valid: torch.Tensor | None = None,
    ) -> CausalLMOutput:
        """input_ids (B, T) -> logits (B, T, V).

        attention_mask (B, T): 1 for tokens, 0 for padding (ignored with a cache, which holds its own).
        labels (B, T): next-token targets are labels shifted left; -100 is ignored (as `transformers`).
        cache: a `StaticKVCache`; the T tokens are written at positions [cache.length, cache.length + T).
        logits_to_keep: compute logits only for the last K positions (0 = all).
        inputs_embeds (B, T, D): input embeddings in place of input_ids' (which is then None): tokens of another
        modality spliced in (LLaVA-style image tokens). memory_kv, memory_valid (B, Tm): cross-attention over a
        memory projected by `project_memory`, for blocks that have cross-attention (Flamingo-style layers).
        """
        start = cache.length if cache is not None else 0
        if inputs_embeds is not None:
            self.check_embeds(inputs_embeds, attention_mask if cache is None else None, start)
        elif check:
            self.check_inputs(input_ids, attention_mask if cache is None else None, position_ids, start)
            if labels is not None:
                check_labels(labels, input_ids.shape, self.config.vocab_size)
        x = super().forward(input_ids, attention_mask=attention_mask if cache is None else None,
                            position_ids=position_ids, cache=cache, inputs_embeds=inputs_embeds,
                            memory_kv=memory_kv, memory_valid=memory_valid)  # (B, T, D)

        h = x[:, -logits_to_keep:] if logits_to_keep else x
        logits = self.lm_head(h)  # (B, T or K, V)
        loss = None
        if labels is not None:  # shift the labels, not the logits: no copy of the (B, T, V) logits
            targets = F.pad(labels[:, 1:], (0, 1), value=-100)  # (B, T)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
        out = CausalLMOutput(logits=logits, loss=loss, last_hidden_state=x)
        if self.config.n_experts and cache is None:  # not while generating
            self._add_router_losses(out, attention_mask)
        return out

    def _add_router_losses(self, out: CausalLMOutput, attention_mask) -> None:
        """Mixtral: the load-balancing loss (pooled over the layers as `transformers` computes it, or per
        layer: `router_aux_loss_scope`) and the optional z-loss, added to `loss` with their coefficients."""
        cfg = self.config
        out.router_logits = tuple(b.ffn.router_logits for b in self.blocks)  # L x (B T, E)
        out.aux_loss = load_balancing_loss(list(out.router_logits), cfg.n_experts, cfg.experts_top_k, attention_mask,
                                           cfg.router_aux_loss_scope)
        out.router_loss = cfg.router_aux_loss_coef * out.aux_loss
        if cfg.router_z_loss_coef:
            out.router_loss = out.router_loss + cfg.router_z_loss_coef * router_z_loss(list(out.router_logits))
        if out.loss is not None:
            out.loss = out.loss + out.router_loss

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.embed.weight.numel()
            if self.positions.kind == "absolute" and hasattr(self.positions, "weight"):
                n -= self.positions.weight.numel()
        return n
