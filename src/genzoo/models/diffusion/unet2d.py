"""The UNet of DDPM (Ho et al., 2020, arXiv:2006.11239, appendix B) laid out as diffusers' `UNet2DModel`: the same
modules under the same names (`conv_in`, `time_embedding`, `down_blocks.i.resnets.j`, `...attentions.j`,
`...downsamplers.0`, `mid_block`, `up_blocks`, `conv_norm_out`, `conv_out`), so a diffusers directory maps onto it
one tensor to one tensor (`diffusers_format`). Built from the same parts as genzoo's own UNet (`ResBlock`,
`SpatialAttention` on the shared `Attention`) and the shared sinusoidal `timestep_embedding`.

Each level is a `DownBlock2D` or, where config.attention_levels names it, an `AttnDownBlock2D` (attention after
each residual block, heads = channels / attention_head_dim); the up path mirrors it with one more residual block
per level, each taking a skip connection; a level halves (doubles) the resolution except the last (first)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.positions import timestep_embedding
from .config import DiffusionConfig
from .denoisers import DENOISERS, ResBlock, SpatialAttention


class Downsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=1)

    def forward(self, x):  # (B, C, H, W) -> (B, C, H/2, W/2)
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):  # (B, C, H, W) -> (B, C, 2H, 2W): nearest neighbour, then a 3x3 conv
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TimeMLP(nn.Module):
    """linear_1, SiLU, linear_2 on the sinusoidal timestep embedding (diffusers' TimestepEmbedding)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.linear_1, self.linear_2 = nn.Linear(c_in, c_out), nn.Linear(c_out, c_out)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class Level(nn.Module):
    """One down or up block: residual blocks (each followed by attention when `attend`), then the resampler."""

    def __init__(self, resnets: list[ResBlock], attentions: list[SpatialAttention] | None, sampler: nn.Module | None,
                 kind: str):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(attentions) if attentions else None
        self.kind = kind
        setattr(self, f"{kind}samplers", nn.ModuleList([sampler]) if sampler is not None else None)

    @property
    def sampler(self) -> nn.Module | None:
        samplers = getattr(self, f"{self.kind}samplers")
        return samplers[0] if samplers is not None else None

    def blocks(self):
        for j, r in enumerate(self.resnets):
            yield r, (self.attentions[j] if self.attentions is not None else None)


@DENOISERS.register("unet2d")
class UNet2D(nn.Module):
    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        widths = [cfg.base_channels * m for m in cfg.channel_mults]
        g, eps, drop, emb = cfg.groups, cfg.norm_eps, cfg.dropout, 4 * widths[0]
        self.cfg = cfg

        def res(c_in, c_out):
            return ResBlock(c_in, c_out, emb, g, drop, eps)

        def attn(c):
            return SpatialAttention(c, g, heads=c // cfg.attention_head_dim, eps=eps, cfg=cfg)

        self.conv_in = nn.Conv2d(cfg.channels, widths[0], 3, padding=1)
        self.time_embedding = TimeMLP(widths[0], emb)
        self.class_embedding = nn.Embedding(cfg.n_classes + 1, emb) if cfg.n_classes else None
        self.down_blocks, c = nn.ModuleList(), widths[0]
        for i, w in enumerate(widths):
            resnets = [res(c if j == 0 else w, w) for j in range(cfg.n_res_blocks)]
            attend = [attn(w) for _ in resnets] if i in cfg.attention_levels else None
            last = i == len(widths) - 1
            self.down_blocks.append(Level(resnets, attend, None if last else Downsample(w), "down"))
            c = w
        self.mid_block = Level([res(c, c), res(c, c)], [attn(c)], None, "mid")
        self.up_blocks = nn.ModuleList()
        rev = list(reversed(widths))
        for i, w in enumerate(rev):
            prev, skip_in = (rev[i - 1] if i else rev[0]), rev[min(i + 1, len(rev) - 1)]
            n = cfg.n_res_blocks + 1
            resnets = [res((prev if j == 0 else w) + (skip_in if j == n - 1 else w), w) for j in range(n)]
            level = len(widths) - 1 - i
            attend = [attn(w) for _ in resnets] if level in cfg.attention_levels else None
            last = i == len(widths) - 1
            self.up_blocks.append(Level(resnets, attend, None if last else Upsample(w), "up"))
        self.conv_norm_out = nn.GroupNorm(g, widths[0], eps)
        self.conv_out = nn.Conv2d(widths[0], cfg.channels, 3, padding=1)

    def shardable_blocks(self) -> list[nn.Module]:
        return [*self.down_blocks, self.mid_block, *self.up_blocks]

    def forward(self, x, t, labels):  # (B, C, H, W), (B,), (B,) | None -> (B, C, H, W)
        cfg = self.cfg
        e = self.time_embedding(timestep_embedding(t, self.conv_in.out_channels, cfg.flip_sin_to_cos,
                                                   cfg.freq_shift).to(x.dtype))  # (B, E)
        if self.class_embedding is not None and labels is not None:
            e = e + self.class_embedding(labels)
        h = self.conv_in(x)
        skips = [h]
        for level in self.down_blocks:
            for r, a in level.blocks():
                h = r(h, e)
                h = a(h) if a is not None else h
                skips.append(h)
            if level.sampler is not None:
                h = level.sampler(h)
                skips.append(h)
        r0, r1 = self.mid_block.resnets
        h = r1(self.mid_block.attentions[0](r0(h, e)), e)
        for level in self.up_blocks:
            for r, a in level.blocks():
                h = r(torch.cat([h, skips.pop()], dim=1), e)
                h = a(h) if a is not None else h
            if level.sampler is not None:
                h = level.sampler(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))
