"""Meta-Transformer (Zhang et al., 2023, arXiv 2307.10802, sec. 3): one frozen, pretrained shared encoder for every
modality. A modality-specific tokenizer (`modalities.MODALITY_TOKENIZERS`) maps raw data to token embeddings, the
shared encoder (here the encoder genre: all-MiniLM-L6-v2's layers, pretrained on text) encodes them with its
parameters frozen, and a task head reads the result; only tokenizers and heads train (sec. 3.3).

    tokens, mask = modality_tokenizer(x)                  (B, T, D)
    h = encoder(inputs_embeds=tokens, attention_mask)     (B, T, D)   frozen: its positions, norms, blocks
    logits = head(mean of h over real tokens)             (B, C)      LayerNorm + linear
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...config import GENRES
from ...errors import InputError
from ..encoder.model import EncoderModel
from .config import MetaTransformerConfig
from .modalities import MODALITY_TOKENIZERS


@dataclass
class ClassifierOutput:
    logits: torch.Tensor  # (B, C)
    loss: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None  # (B, T, D)


@GENRES.register("meta-transformer")
class MetaTransformer(nn.Module):
    config_class = MetaTransformerConfig

    def __init__(self, config: MetaTransformerConfig):
        super().__init__()
        self.config = cfg = config
        d = cfg.encoder_config.d_model
        self.modality_tokenizer = MODALITY_TOKENIZERS.get(cfg.modality)(cfg, d)
        self.encoder = EncoderModel(cfg.encoder_config)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, cfg.n_classes))
        self.encoder.requires_grad_(not cfg.freeze_encoder)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.config.freeze_encoder:
            self.encoder.eval()  # frozen: no dropout either
        return self

    def load_encoder(self, encoder: EncoderModel) -> "MetaTransformer":
        """Copy a pretrained encoder's weights into the shared encoder (same config)."""
        self.encoder.load_state_dict(encoder.state_dict())
        return self

    def parameter_counts(self) -> dict:
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {"total": total, "trainable": trainable, "trainable_share": trainable / total}

    def check_inputs(self, x) -> None:
        cfg = self.config
        want = cfg.input_shape
        if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != want or x.dim() != len(want) + 1:
            raise InputError(f"{cfg.modality} input has shape {tuple(getattr(x, 'shape', ()))}; this model takes "
                             f"(batch, *{want})")
        if cfg.modality == "text":
            if x.is_floating_point():
                raise InputError("text input must be token ids (an integer tensor)")
            v = cfg.encoder_config.vocab_size
            if int(x.min()) < 0 or int(x.max()) >= v:
                raise InputError(f"token id out of range: the encoder's vocabulary has ids 0..{v - 1}")
            if not bool((x != 0).any(dim=1).all()):
                raise InputError("a text row has no real token (all 0 = padding)")
        elif not x.is_floating_point():
            raise InputError(f"{cfg.modality} input must be a floating-point tensor, got {x.dtype}")

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, check: bool = True) -> ClassifierOutput:
        """x: one batch of the model's modality (B, *input_shape) -> class logits (B, C); loss with labels (B,)."""
        if check:
            self.check_inputs(x)
        tokens, mask = self.modality_tokenizer(x, self.encoder.embed)  # (B, T, D), (B, T) or None
        h = self.encoder(None, attention_mask=mask, inputs_embeds=tokens).last_hidden_state  # (B, T, D)
        if mask is None:
            pooled = h.mean(1)
        else:
            m = mask[..., None].to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1)  # (B, D)
        logits = self.head(pooled)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return ClassifierOutput(logits=logits, loss=loss, last_hidden_state=h)
