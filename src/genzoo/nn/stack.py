"""The shared transformer stack: input embedding, positions, masks, blocks, final norm. Every genre (decoder,
encoder, T5's encoder and decoder, CLIP's towers, the DiT denoiser) is a `Stack` plus its head.

    x = embed(inputs) [+ token_types(segments)] [+ absolute positions]   (B, T, D)
    x = drop(embed_norm(x)); prefix tokens are prepended here (conditioning)
    for each block: x = block(x, mask[window], rotary tables, position bias, cache, memory)
    x = final_norm(x)

The stack owns how each kind of position part (`positions.py`) is applied, once:
- ``absolute``: added to the input embeddings, at `position_ids` (counting real tokens of a left-padded batch);
- ``rotary``: cos/sin tables computed once per forward and handed to every attention part built with
  ``rotary=True`` (layers with a local window may rotate with their own `local_positions`, ModernBERT);
- ``bias``: an additive score bias over slot positions (ALiBi, T5's buckets), folded into each mask;
- ``relative``: DeBERTa's shared relative embeddings, handed to each attention part's `DisentangledBias`.
A combination the stack cannot honour (a rotary part with attention parts that do not rotate, a relative part
without `DisentangledBias` in the attention, ...) raises `ConfigError` when it is built; `attention_options`
gives a genre what its attention parts need for a position part, so a model never reads `kind` itself.

Masks: padding (`attention_mask`, or the cache's own), causal, sliding/local window per layer, one mask per
distinct window, built once per forward; with `unpad` a ragged batch runs as its real tokens only
(`packing.Packing`, masks per length group). A `StaticKVCache` and cross-attention over a projected memory
(`project_memory`) are options of the same forward.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .blocks import make_dropout
from .cache import StaticKVCache
from .disentangled import DisentangledBias
from .masks import build_mask
from .packing import Packing
from .positions import POSITIONS, NoPositions

KINDS = ("none", "absolute", "rotary", "bias", "relative")


def make_positions(name: str, *, causal: bool, **sizes) -> nn.Module:
    """The position part registered as `name` (`POSITIONS`), for a causal or a bidirectional stack. sizes: the
    factories' shared keywords (max_positions, dim, head_dim, n_heads, theta, scaling, buckets, ...)."""
    return POSITIONS.get(name)(bidirectional=not causal, **sizes)


def attention_options(positions: nn.Module, *, dim: int, n_heads: int, head_dim: int,
                      terms: tuple[str, ...] = ("c2p", "p2c"), share_att_key: bool = True) -> dict:
    """Keyword arguments an `Attention` part needs to honour this position part: ``rotary=True`` for a rotary
    part, a `DisentangledBias` (``relative=``) for DeBERTa's relative embeddings; nothing for the others, which
    the stack applies outside attention. terms / share_att_key: DeBERTa's options for its bias."""
    kind = positions.kind
    if kind == "rotary":
        return {"rotary": True}
    if kind == "relative":
        return {"relative": DisentangledBias(dim, n_heads, head_dim, terms, share_att_key)}
    return {}


class Stack(nn.Module):
    def __init__(
        self,
        blocks: list[nn.Module],
        *,
        embed: nn.Module | None = None,
        positions: nn.Module | None = None,
        abs_positions: nn.Module | None = None,
        local_positions: nn.Module | None = None,
        token_types: nn.Module | None = None,
        embed_norm: nn.Module | None = None,
        final_norm: nn.Module | None = None,
        dropout: float = 0.0,
        output_dropout: bool = False,
        causal: bool = True,
        unpad: bool = False,
    ):
        """blocks: `Block`s whose `attn` parts share the stack's direction (causal or not).
        embed: inputs -> (B, T, D) (an `nn.Embedding` for token ids, a patch embedding for images), or None when
        the caller passes embeddings. positions: the main position part (any kind; None = no positions).
        abs_positions: a second, absolute part added to the input as well (DeBERTa's position_biased_input).
        local_positions: a rotary part for the layers with a window (ModernBERT's local theta).
        token_types: segment embeddings added to the input (BERT). embed_norm: a norm on the input embeddings
        (BERT, ModernBERT, CLIP's ViT pre-norm). output_dropout: dropout after the final norm too (T5).
        unpad: ragged batches run as their real tokens (bidirectional stacks without a cache)."""
        super().__init__()
        self.embed = embed
        self.positions = positions if positions is not None else NoPositions()
        self.abs_positions, self.local_positions = abs_positions, local_positions
        self.token_types, self.embed_norm = token_types, embed_norm
        self.drop = make_dropout(dropout)
        self.blocks = nn.ModuleList(blocks)
        self.final_norm = final_norm
        self.output_dropout, self.causal, self.unpad = output_dropout, causal, unpad
        # one mask per distinct window; None (global) first
        self.windows = sorted({b.attn.window for b in self.blocks}, key=lambda w: -1 if w is None else w)
        self._check_parts()

    def _check_parts(self) -> None:
        kind = self.positions.kind
        if kind not in KINDS:
            raise ConfigError(f"position part {type(self.positions).__name__} has kind {kind!r}; known: {KINDS}")
        attns = [b.attn for b in self.blocks]
        if any(a.causal != self.causal for a in attns):
            raise ConfigError(f"every attention part of a {'causal' if self.causal else 'bidirectional'} stack "
                              f"must be {'causal' if self.causal else 'bidirectional'}")
        rotary = [a.rotary for a in attns]
        if kind == "rotary" and not all(rotary):
            raise ConfigError("position kind 'rotary' needs attention parts built with rotary=True "
                              "(stack.attention_options)")
        if kind != "rotary" and any(rotary):
            raise ConfigError(f"attention parts rotate their queries and keys, but the position part is {kind!r}; "
                              "rotary attention needs a rotary position part")
        relative = [a.relative is not None for a in attns]
        if (kind == "relative") != all(relative) or (kind != "relative" and any(relative)):
            raise ConfigError("position kind 'relative' (disentangled) and a DisentangledBias in every attention "
                              "part go together (stack.attention_options)")
        if self.abs_positions is not None and self.abs_positions.kind != "absolute":
            raise ConfigError(f"abs_positions must be an absolute part, got kind {self.abs_positions.kind!r}")
        if self.local_positions is not None and (self.local_positions.kind != "rotary" or kind != "rotary"):
            raise ConfigError("local_positions is a rotary part for the windowed layers of a rotary stack")
        if self.unpad and self.causal:
            raise ConfigError("unpad (packed ragged batches) is for bidirectional stacks")

    # ---- helpers for heads ----
    def project_memory(self, memory: torch.Tensor) -> list:
        """Every block's cross-attention keys/values of an encoder output (B, Tm, D), once per sequence."""
        return [b.cross_attn.project_memory(memory) for b in self.blocks]

    def forward(
        self,
        x: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        cache: StaticKVCache | None = None,
        memory_kv: list | None = None,
        memory_valid: torch.Tensor | None = None,
        prefix: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: the embed part's input (token ids (B, T)), or embeddings (B, T, D) without one -> (B, T', D),
        T' = T + prefix length; zeros at padding when run unpadded.

        attention_mask (B, T): 1 for tokens, 0 for padding (a cache holds its own). position_ids (B|1, T): the
        absolute/rotary positions (default start..start+T-1). cache: the T new tokens go to positions
        [cache.length, cache.length + T). memory_kv, memory_valid (B, Tm): cross-attention over a projected
        encoder output (`project_memory`). prefix (B, P, D): tokens prepended after the input stage (conditioning
        tokens that carry no absolute position; attention-side positions number the whole sequence).
        inputs_embeds (B, T, D): embeddings in place of embed(x) (x is then None); they go through the rest of the
        input stage (token types, absolute positions, embed_norm) like embedded tokens (transformers' inputs_embeds:
        image tokens spliced into a decoder, another modality's tokens into a pretrained encoder).
        """
        start = cache.length if cache is not None else 0
        if inputs_embeds is not None:
            h = inputs_embeds  # (B, T, D)
        else:
            h = self.embed(x) if self.embed is not None else x  # (B, T, D)
        b, t = h.shape[:2]
        device = h.device
        if position_ids is None:
            position_ids = torch.arange(start, start + t, device=device)[None]  # (1, T)
        if self.token_types is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros(b, t, dtype=torch.long, device=device)
            h = h + self.token_types(token_type_ids)
        for part in (self.positions, self.abs_positions):
            if part is not None and part.kind == "absolute":
                h = h + part(position_ids)
        if self.embed_norm is not None:
            h = self.embed_norm(h)
        h = self.drop(h)
        if prefix is not None:
            h = torch.cat([prefix.to(h.dtype), h], dim=1)  # (B, P + T, D)
            t += prefix.shape[1]
            position_ids = torch.arange(start, start + t, device=device)[None]
        tk = start + t

        # padding: the cache's, or the mask's (None when there is none)
        if cache is not None:
            key_valid = None if cache.key_valid is None else cache.key_valid[:, :tk]
        else:
            key_valid = None
            if attention_mask is not None and not bool(attention_mask.all()):
                key_valid = attention_mask.bool()
                if prefix is not None:  # prefix tokens are always real
                    key_valid = torch.cat([key_valid.new_ones(b, prefix.shape[1]), key_valid], dim=1)
        packing = Packing.from_mask(key_valid) if self.unpad and key_valid is not None and cache is None else None

        kind = self.positions.kind
        ropes = {}  # window -> (cos, signed_sin), 2 x (B|1, 1, T, Dh)
        if kind == "rotary":
            pos = position_ids.expand(b, t) if packing is not None else position_ids
            main = self.positions(pos)
            ropes = {w: main for w in self.windows}
            if self.local_positions is not None:
                local = self.local_positions(pos)
                ropes.update({w: local for w in self.windows if w is not None})
        bias = rel = None
        if kind in ("bias", "relative"):  # only these count slots (not built in every decoding step otherwise)
            slots = torch.arange(tk, device=device)[None]  # (1, Tk)
            if kind == "bias":
                bias = self.positions(slots[:, start:], slots)  # (1|B, H, T, Tk)
            else:
                rel = self.positions(slots[:, start:], slots)

        if packing is not None:
            masks = {w: packing.masks(self.causal, w, bias) for w in self.windows}  # per length group
            h = packing.unpad(h)  # (N, D): only real tokens from here on
        else:
            masks = {w: build_mask(t, tk, start, causal=self.causal, window=w, key_valid=key_valid, device=device)
                     for w in self.windows}
            if bias is not None:
                masks = {w: m.with_bias(bias, t, tk, device) for w, m in masks.items()}
        cross = None
        if memory_kv is not None:
            tm = memory_kv[0][0].shape[1]
            cross = build_mask(t, tm, 0, causal=False, key_valid=memory_valid, device=device, self_attention=False)

        for i, block in enumerate(self.blocks):
            w = block.attn.window
            kw = {"rope": ropes.get(w), "rel": rel, "cache": cache, "layer": i, "start": start}
            if packing is not None:
                kw["packing"] = packing
            if cross is not None:
                kw["cross"] = (cross, memory_kv[i])
            h = block(h, masks[w], **kw)
        if cache is not None:
            cache.length = tk
        if self.final_norm is not None:
            h = self.final_norm(h)
        if packing is not None:
            h = packing.pad(h)  # (B, T, D), zeros at padding
        return self.drop(h) if self.output_dropout else h
