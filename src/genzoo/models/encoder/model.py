"""The encoder-only model (Devlin et al., "BERT", 2019; He et al., "DeBERTa", 2021; Warner et al., "ModernBERT",
2024): the shared bidirectional `Stack` (token + position (+ segment) embeddings, self-attention blocks) with an
optional pooler and masked-LM head. Ragged batches run unpadded: the linear layers, norms and feed-forward see
only real tokens (`nn.packing`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...config import GENRES
from ...errors import InputError
from ...inputs import check_labels, check_token_ids
from ...nn import (FFNS, NORMS, Attention, Block, Stack, attention_options, make_gate, make_positions, make_softmax,
                   reset_gates)
from ...nn.ffn import ACTIVATIONS
from ...nn.positions import LearnedPositions
from .config import EncoderConfig
from .pooling import POOLING


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor  # (B, T, D); zeros at padding when run unpadded
    pooler_output: torch.Tensor | None = None  # (B, D)
    logits: torch.Tensor | None = None  # (B, T, V) masked-LM scores
    loss: torch.Tensor | None = None


class MLMHead(nn.Module):
    """BERT's masked-LM head: dense, activation, norm, then the (tied) vocabulary projection plus a bias."""

    def __init__(self, cfg: EncoderConfig, embedding: nn.Embedding):
        super().__init__()
        self.dense = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.head_bias)
        self.act = ACTIVATIONS.get(cfg.activation)
        self.norm = NORMS.get(cfg.norm)(cfg.d_model, cfg.norm_eps, cfg.norm_bias)
        self.decoder = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.decoder.weight = embedding.weight  # tied to the token embedding; the bias is its own

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., V)
        return self.decoder(self.norm(self.act(self.dense(h))))


def make_block(cfg: EncoderConfig, layer: int, positions: nn.Module) -> Block:
    d, h, bias = cfg.d_model, cfg.n_heads, cfg.attn_bias
    terms = tuple(t for t in cfg.pos_att_type.split("|") if t)
    attn = Attention(nn.Linear(d, d, bias=bias), nn.Linear(d, d, bias=bias), nn.Linear(d, d, bias=bias),
                     nn.Linear(d, d, bias=bias), n_heads=h, n_kv_heads=h, head_dim=d // h,
                     softmax=make_softmax(cfg.softmax, cfg.softmax_args),
                     window=None if cfg.is_global(layer) else cfg.local_window,
                     causal=False, dropout=cfg.dropout, backend=cfg.attn_backend,
                     gate=make_gate(cfg.attn_gate, d, h),
                     **attention_options(positions, dim=d, n_heads=h, head_dim=d // h, terms=terms,
                                         share_att_key=cfg.share_att_key))
    norm = NORMS.get(cfg.norm)
    attn_norm = norm(d, cfg.norm_eps, cfg.norm_bias) if layer or cfg.first_attn_norm else nn.Identity()
    return Block(attn, FFNS.get(cfg.ffn)(d, cfg.d_ff, cfg.activation, cfg.ffn_bias), attn_norm,
                 norm(d, cfg.norm_eps, cfg.norm_bias), norm_position=cfg.norm_position, dropout=cfg.dropout)


@GENRES.register("encoder")
class EncoderModel(Stack):
    """A bidirectional `Stack` (unpadded on ragged batches) with BERT's pooler and masked-LM head."""

    config_class = EncoderConfig

    def __init__(self, config: EncoderConfig):
        cfg = config
        sizes = dict(max_positions=cfg.max_positions, dim=cfg.d_model, head_dim=cfg.head_dim, n_heads=cfg.n_heads)
        positions = make_positions(cfg.position, causal=False, **sizes, theta=cfg.rope_theta,
                                   buckets=cfg.position_buckets, max_relative=cfg.max_relative_positions,
                                   rel_norm=cfg.rel_norm, norm_eps=cfg.norm_eps)
        local = None  # local layers may rotate with their own theta (ModernBERT: 10k local, 160k global)
        if cfg.local_window and cfg.local_rope_theta and positions.kind == "rotary":
            local = make_positions(cfg.position, causal=False, **sizes, theta=cfg.local_rope_theta)
        norm = NORMS.get(cfg.norm)
        super().__init__(
            [make_block(cfg, i, positions) for i in range(cfg.n_layers)],
            embed=nn.Embedding(cfg.vocab_size, cfg.d_model),
            positions=positions,
            # DeBERTa may add learned absolute positions to its input as well ("position_biased_input")
            abs_positions=LearnedPositions(cfg.max_positions, cfg.d_model) if cfg.position_biased_input else None,
            local_positions=local,
            token_types=nn.Embedding(cfg.type_vocab_size, cfg.d_model) if cfg.type_vocab_size else None,
            embed_norm=norm(cfg.d_model, cfg.norm_eps, cfg.norm_bias),
            final_norm=norm(cfg.d_model, cfg.norm_eps, cfg.norm_bias) if cfg.final_norm else None,
            dropout=cfg.dropout,
            causal=False,
            unpad=cfg.unpad,
        )
        self.config = cfg
        self.pooler = nn.Linear(cfg.d_model, cfg.d_model) if cfg.pooler else None
        self.mlm = MLMHead(cfg, self.embed) if cfg.mlm_head else None
        for name, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=cfg.init_std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        reset_gates(self)  # gates start open to their init value (the loop above zeroed their biases)

    def tied_parameters(self) -> list[str]:
        """Parameters that are another parameter under a second name (not stored in checkpoints)."""
        return ["mlm.decoder.weight"] if self.mlm is not None else []

    def shardable_blocks(self) -> list[nn.Module]:
        """The modules FSDP shards one by one (`train.distributed.wrap`): the transformer blocks."""
        return list(self.blocks)

    def check_inputs(self, input_ids, attention_mask=None, token_type_ids=None) -> None:
        cfg = self.config
        check_token_ids(input_ids, cfg.vocab_size, cfg.max_positions, attention_mask)
        b, t = input_ids.shape
        for name, m in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if m is not None and tuple(m.shape) != (b, t):
                raise InputError(f"{name} has shape {tuple(m.shape)}; expected (batch, seq_len) = {(b, t)}")
        if attention_mask is not None and not bool(attention_mask.any(dim=1).all()):
            raise InputError("attention_mask has a row with no real token")

    def check_embeds(self, inputs_embeds, attention_mask=None) -> None:
        cfg = self.config
        if not isinstance(inputs_embeds, torch.Tensor) or inputs_embeds.dim() != 3 or \
                inputs_embeds.shape[-1] != cfg.d_model:
            raise InputError(f"inputs_embeds has shape {tuple(getattr(inputs_embeds, 'shape', ()))}; expected "
                             f"(batch, seq_len, d_model={cfg.d_model})")
        b, t = inputs_embeds.shape[:2]
        if t > cfg.max_positions:
            raise InputError(f"sequence length {t} exceeds the model's max_positions={cfg.max_positions}")
        if attention_mask is not None and tuple(attention_mask.shape) != (b, t):
            raise InputError(f"attention_mask has shape {tuple(attention_mask.shape)}; expected {(b, t)}")
        if attention_mask is not None and not bool(attention_mask.any(dim=1).all()):
            raise InputError("attention_mask has a row with no real token")

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None,
                inputs_embeds=None) -> EncoderOutput:
        """input_ids (B, T) -> last_hidden_state (B, T, D) (+ pooler_output, MLM logits, loss with labels;
        labels use -100 for positions that are not predicted). inputs_embeds (B, T, D): embeddings in place of the
        word embeddings of input_ids (None then); positions, token types and the embedding norm still apply
        (transformers' inputs_embeds)."""
        if inputs_embeds is not None:
            self.check_embeds(inputs_embeds, attention_mask)
        else:
            self.check_inputs(input_ids, attention_mask, token_type_ids)
        if labels is not None:
            shape = inputs_embeds.shape[:2] if inputs_embeds is not None else input_ids.shape
            check_labels(labels, shape, self.config.vocab_size)
        h = super().forward(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            inputs_embeds=inputs_embeds)  # (B, T, D)
        out = EncoderOutput(last_hidden_state=h)
        if self.pooler is not None:
            out.pooler_output = torch.tanh(self.pooler(h[:, 0]))
        if self.mlm is not None:
            out.logits = self.mlm(h)
            if labels is not None:
                out.loss = F.cross_entropy(out.logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        return out

    def sentence_inputs(self, texts: list[str], tokenizer, max_len: int | None = None):
        """Token ids (B, T) and attention mask (B, T) of texts as `encode` sees them: stripped, lowercased when the
        config says so, truncated to max_seq_length (sentence-transformers' settings; default max_positions)."""
        cfg = self.config
        texts = [t.strip() for t in texts]  # as sentence-transformers' Transformer.tokenize
        if cfg.lowercase:
            texts = [t.lower() for t in texts]
        limit = min(x for x in (max_len, cfg.max_seq_length, cfg.max_positions) if x)
        return tokenizer.batch(texts, max_len=limit)

    def pool(self, h: torch.Tensor, mask: torch.Tensor, normalize: bool | None = None) -> torch.Tensor:
        """Token states (B, T, D) -> sentence embeddings (B, D): the config's pooling, L2-normalised when
        `normalize` (default: the config's `normalize`)."""
        e = POOLING.get(self.config.pooling)(h, mask)
        return F.normalize(e, dim=-1) if (self.config.normalize if normalize is None else normalize) else e

    @torch.no_grad()
    def encode(self, texts: list[str], tokenizer, normalize: bool | None = None, batch_size: int = 64) -> torch.Tensor:
        """Sentence embeddings (len(texts), D), as sentence-transformers' `encode` computes them from the same
        directory: texts lowercased and truncated per the config, pooled (config.pooling), normalised (default:
        config.normalize)."""
        rows = []
        for i in range(0, len(texts), batch_size):
            ids, mask = self.sentence_inputs(texts[i:i + batch_size], tokenizer)
            rows.append(self.pool(self(ids, attention_mask=mask).last_hidden_state, mask, normalize))
        return torch.cat(rows)
