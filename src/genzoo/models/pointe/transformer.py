"""Point-E's point cloud diffusion transformer (Nichol et al., 2022, arXiv 2212.08751, sec. 4.2, fig. 3;
openai/point-e `PointDiffusionTransformer`), built on the shared `Stack`.

    points (B, C, N) -> linear input projection -> N tokens, no positional encoding
    [timestep token, condition tokens...] prepended (the stack's `prefix`); the same LayerNorm ("ln_pre") on all
    pre-norm transformer blocks (bidirectional), final LayerNorm ("ln_post")
    the N point tokens -> linear output projection (zero-initialised) -> eps (and the variance values) (B, C', N)

With no positions and no mask, the model is permutation equivariant: permuting the input points permutes the
output the same way. The timestep embedding (sinusoidal, then an MLP) is one more token, or added to every point
token (`time_token=False`). Conditions are parts given as arguments, each mapping its input to tokens of the
model's width: `TokenCondition` (LayerNorm + linear over a sequence of features: CLIP's image grid, as Point-E's
`CLIPImageGridPointDiffusionTransformer`, or CLIP's text tokens), `CloudCondition` (a linear map of a low-resolution
cloud's points, the upsampler's `UpsamplePointDiffusionTransformer`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...nn import MLP, Attention, Block, Stack
from ...nn.positions import timestep_embedding
from .config import PointDenoiserConfig


class TokenCondition(nn.Module):
    """Feature tokens (B, L, F) -> (B, L, D): LayerNorm then linear (Point-E's `clip_embed`)."""

    def __init__(self, features: int, width: int):
        super().__init__()
        self.norm, self.proj = nn.LayerNorm(features), nn.Linear(features, width)
        self.features, self.feature_axis = features, 2  # input (B, L, features)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(tokens))


class CloudCondition(nn.Module):
    """A low-resolution cloud (B, C, K) -> K tokens (B, K, D) by a linear map of each point (Point-E's
    `cond_point_proj`); no positions, so the upsampler stays equivariant to permutations of it too."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.proj = nn.Linear(channels, width)
        self.features, self.feature_axis = channels, 1  # input (B, channels, K)

    def forward(self, cloud: torch.Tensor) -> torch.Tensor:
        return self.proj(cloud.transpose(1, 2))  # (B, K, C) -> (B, K, D)


class PointDenoiser(Stack):
    def __init__(self, cfg: PointDenoiserConfig, conditions: dict[str, nn.Module]):
        """conditions: name -> part mapping that condition's input to (B, L, width) tokens, prepended in this order
        after the timestep token."""
        d = cfg.width
        blocks = [Block(Attention(nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d),
                                  n_heads=cfg.heads, n_kv_heads=cfg.heads, head_dim=d // cfg.heads, causal=False),
                        MLP.build(d, 4 * d, "gelu"), nn.LayerNorm(d), nn.LayerNorm(d), norm_position="pre")
                  for _ in range(cfg.layers)]
        super().__init__(blocks, embed=None, positions=None, embed_norm=nn.LayerNorm(d), final_norm=nn.LayerNorm(d),
                         causal=False)
        self.cfg = cfg
        self.input_proj = nn.Linear(cfg.channels, d)
        self.time_embed = MLP.build(d, 4 * d, "gelu")
        self.conditions = nn.ModuleDict(conditions)
        self.output_proj = nn.Linear(d, cfg.out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Point-E's initialisation: the transformer's and the time MLP's linear weights N(0, (s / sqrt(width))^2),
        s = init_scale, biases 0; the output projection zero (the model starts by predicting 0)."""
        std = self.cfg.init_scale / math.sqrt(self.cfg.width)
        for block in self.blocks:
            a = block.attn
            for lin in (a.q_proj, a.k_proj, a.v_proj, a.o_proj, block.ffn.up, block.ffn.down):
                nn.init.normal_(lin.weight, std=std)
                nn.init.zeros_(lin.bias)
        for lin in (self.time_embed.up, self.time_embed.down):
            nn.init.normal_(lin.weight, std=std)
            nn.init.zeros_(lin.bias)
        nn.init.zeros_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def shardable_blocks(self) -> list[nn.Module]:
        return list(self.blocks)

    def forward(self, x: torch.Tensor, t: torch.Tensor, **conditions: torch.Tensor) -> torch.Tensor:
        """x (B, C, N) noisy points, t (B,) timesteps, each condition's input by name -> (B, C', N)."""
        width = self.cfg.width
        t_emb = self.time_embed(timestep_embedding(t, width, flip_sin_to_cos=True, freq_shift=0.0))  # (B, D)
        h = self.input_proj(x.transpose(1, 2))  # (B, N, D)
        tokens = [t_emb[:, None]] if self.cfg.time_token else []
        if not self.cfg.time_token:
            h = h + t_emb[:, None]
        tokens += [part(conditions[name]) for name, part in self.conditions.items()]
        prefix = self.embed_norm(torch.cat(tokens, dim=1)) if tokens else None  # (B, P, D), ln_pre as the points
        h = super().forward(h, prefix=prefix)  # (B, P + N, D)
        p = 0 if prefix is None else prefix.shape[1]
        return self.output_proj(h[:, p:]).transpose(1, 2)  # (B, C', N)
