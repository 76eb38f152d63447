"""FT-Transformer (Gorishniy et al. 2021, "Revisiting Deep Learning Models for Tabular Data", arXiv:2106.11959,
sec. 3.3): every feature becomes a token, a [CLS] token is added, and a bidirectional transformer without
positions (each feature's token carries its own embedding, so order carries no information) reads them; the
prediction is made from [CLS].

    feature tokenizer:  T_j = b_j + x_j W_j             (numeric feature j, a quantile-normalised number)
                        T_j = b_j + e_j(x_j)            (categorical feature j, an embedding table per column)
    T_0 = [CLS];  h = Transformer([CLS], T_1..T_k);  y_hat = Linear(ReLU(LayerNorm(h_[CLS])))

The transformer is the shared `Stack` of pre-norm `Block`s (shared `Attention`, a ReGLU `GatedMLP`); as in the
paper the first block has no normalisation before its attention, attention probabilities are dropped out and the
FFN's hidden units too. Classification: cross-entropy over the classes; regression: MSE of the standardised target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...config import GENRES
from ...errors import InputError
from ...nn import Attention, Block, GatedMLP, Stack, make_dropout
from .config import FTTransformerConfig
from .schema import TableSchema


@dataclass
class TabularOutput:
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # (B, n_classes), or (B, 1): the standardised regression prediction


class FeatureTokenizer(nn.Module):
    """(B, n_num) numbers and (B, n_cat) category indices -> (B, n_num + n_cat, D) tokens. Category index -1 (a
    value unseen in training) has its own learned row in each column's table."""

    def __init__(self, n_numeric: int, cardinalities: list[int], d: int):
        super().__init__()
        bound = 1 / math.sqrt(d)  # the paper's initialisation: U(-1/sqrt(d), 1/sqrt(d))
        self.num_weight = nn.Parameter(torch.empty(n_numeric, d).uniform_(-bound, bound))  # W_j
        self.num_bias = nn.Parameter(torch.empty(n_numeric, d).uniform_(-bound, bound))  # b_j
        self.cardinalities = list(cardinalities)
        sizes = [k + 1 for k in cardinalities]  # + the unseen-value row, at index 0 of each column's block
        self.register_buffer("offsets", torch.tensor([0, *np.cumsum(sizes)[:-1].tolist()], dtype=torch.long)[
            : len(sizes)], persistent=False)
        self.cat_embed = nn.Embedding(max(1, sum(sizes)), d)
        nn.init.uniform_(self.cat_embed.weight, -bound, bound)
        self.cat_bias = nn.Parameter(torch.empty(len(sizes), d).uniform_(-bound, bound))

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        tokens = numeric[:, :, None] * self.num_weight + self.num_bias  # (B, n_num, D)
        if self.cardinalities:
            cat = self.cat_embed(categorical + 1 + self.offsets) + self.cat_bias  # (B, n_cat, D)
            tokens = torch.cat([tokens, cat], dim=1)
        return tokens


@GENRES.register("ft-transformer")
class FTTransformer(nn.Module):
    config_class = FTTransformerConfig

    def __init__(self, config: FTTransformerConfig):
        super().__init__()
        self.config = config
        self.schema = TableSchema.from_dict(config.schema)
        s, d = self.schema, config.d_model
        if s.target is None:
            raise InputError("an FT-Transformer predicts a target column: fit the schema with a target")
        self.n_outputs = len(s.target.categories) if s.task == "classification" else 1
        self.feature_tokenizer = FeatureTokenizer(len(s.numeric), [len(c.categories) for c in s.categorical], d)
        self.cls = nn.Parameter(torch.empty(1, 1, d).uniform_(-1 / math.sqrt(d), 1 / math.sqrt(d)))
        blocks = []
        for i in range(config.n_layers):
            attn = Attention(nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d), n_heads=config.n_heads,
                             n_kv_heads=config.n_heads, head_dim=d // config.n_heads, causal=False,
                             dropout=config.attention_dropout)
            h = config.hidden
            ffn = GatedMLP(nn.Linear(d, h), nn.Linear(d, h), nn.Sequential(make_dropout(config.ffn_dropout),
                                                                          nn.Linear(h, d)), activation="relu")  # ReGLU
            blocks.append(Block(attn, ffn, nn.LayerNorm(d) if i > 0 else nn.Identity(), nn.LayerNorm(d),
                                norm_position="pre", dropout=config.residual_dropout))
        self.stack = Stack(blocks, final_norm=nn.LayerNorm(d), causal=False)
        self.head = nn.Linear(d, self.n_outputs)

    def check_inputs(self, numeric: torch.Tensor, categorical: torch.Tensor) -> None:
        s = self.schema
        if numeric.dim() != 2 or numeric.shape[1] != len(s.numeric):
            raise InputError(f"numeric must be (B, {len(s.numeric)}), got {tuple(numeric.shape)}")
        if categorical.shape != (numeric.shape[0], len(s.categorical)):
            raise InputError(f"categorical must be ({numeric.shape[0]}, {len(s.categorical)}), got "
                             f"{tuple(categorical.shape)}")
        if not torch.isfinite(numeric).all():
            raise InputError("numeric holds NaN or infinite values")
        for j, c in enumerate(s.categorical):
            col = categorical[:, j]
            if bool(((col < -1) | (col >= len(c.categories))).any()):
                raise InputError(f"categorical column {c.name!r}: indices must be in [-1, {len(c.categories) - 1}]")

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor, labels: torch.Tensor | None = None,
                check: bool = True) -> TabularOutput:
        """numeric (B, n_num) normal scores, categorical (B, n_cat) indices (-1: unseen), labels (B,) class indices
        or target values -> logits (B, n_classes | 1), and the loss when labels are given."""
        if check:
            self.check_inputs(numeric, categorical)
        tokens = self.feature_tokenizer(numeric, categorical)  # (B, k, D)
        h = self.stack(tokens, prefix=self.cls.expand(tokens.shape[0], -1, -1))  # (B, 1 + k, D), [CLS] first
        logits = self.head(F.relu(h[:, 0]))  # (B, n_outputs)
        loss = None
        if labels is not None:
            if self.n_outputs > 1:
                loss = F.cross_entropy(logits, labels.long())
            else:
                t = self.schema.target
                loss = F.mse_loss(logits.squeeze(1), (labels.float() - t.mean) / t.std)
        return TabularOutput(loss=loss, logits=logits)

    def tensors(self, df) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.schema.encode(df, with_target=False)
        device = self.head.weight.device
        return torch.from_numpy(enc["numeric"]).to(device), torch.from_numpy(enc["categorical"]).to(device)

    @torch.no_grad()
    def predict(self, df, batch_size: int = 1024) -> np.ndarray:
        """Predictions for a DataFrame's rows, in the target's own values (class labels, or numbers)."""
        outs = []
        was = self.training
        self.eval()
        try:
            for i in range(0, len(df), batch_size):
                outs.append(self(*self.tensors(df.iloc[i: i + batch_size])).logits.cpu())
        finally:
            self.train(was)
        logits = torch.cat(outs) if outs else torch.zeros(0, self.n_outputs)
        t = self.schema.target
        if self.n_outputs > 1:
            return np.asarray(self.schema.target_values(logits.argmax(1).numpy()))
        return logits.squeeze(1).double().numpy() * t.std + t.mean
