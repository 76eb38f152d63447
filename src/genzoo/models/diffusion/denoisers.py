"""The two denoisers eps_theta(x_t, t, c): a small UNet (Ho et al., 2020, appendix B; Ronneberger et al., 2015) and
a DiT-style transformer (Peebles & Xie, 2023) with in-context conditioning (their sec. 3.2: the timestep and
class embeddings are extra tokens in the sequence), the shared `Stack` with a patch embedding and a patch head.

Both take x_t (B, C, H, W), integer timesteps t (B,) and a conditioning vector (B, E) from `Conditioning`, and
return a tensor shaped like x_t (the eps or v prediction). With `context_dim` they also read a text encoder's token
states (B, L, context_dim): the DiT as L more in-context tokens (LayerNorm + linear, DiT sec. 3.2; Point-E's
conditioning on CLIP tokens, arXiv 2212.08751 sec. 4.2), the UNet by cross-attention at its lowest resolution
(Rombach et al., 2022, sec. 3.3, eq. 3) plus the mean token added to the timestep embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...nn import MLP, Attention, Block, Stack, build_mask, make_dropout, make_gate, make_softmax
from ...nn.patches import PatchEmbed
from ...nn.positions import LearnedPositions, SinusoidalPositions
from ...registry import Registry
from .config import DiffusionConfig

DENOISERS: Registry = Registry("denoiser")


class Conditioning(nn.Module):
    """Timestep (sinusoidal, Vaswani et al. 2017 sec. 3.5, then an MLP) plus class embedding -> (B, E). Class index
    n_classes is the learned null class that classifier-free guidance (Ho & Salimans, 2022) contrasts with."""

    def __init__(self, num_timesteps: int, dim: int, n_classes: int, context_dim: int = 0):
        super().__init__()
        self.time = SinusoidalPositions(num_timesteps, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.classes = nn.Embedding(n_classes + 1, dim) if n_classes else None
        self.pooled = nn.Linear(context_dim, dim) if context_dim else None  # the mean text token (UNet)

    def forward(self, t: torch.Tensor, labels: torch.Tensor | None,
                context: torch.Tensor | None = None) -> torch.Tensor:  # (B,), (B,), (B, L, Dc) -> (B, E)
        e = self.mlp(self.time(t))
        if self.pooled is not None and context is not None:
            e = e + self.pooled(context.mean(1))
        return e if self.classes is None or labels is None else e + self.classes(labels)


class ResBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 conv; add the projected conditioning; GroupNorm, SiLU, dropout, 3x3 conv; residual."""

    def __init__(self, c_in: int, c_out: int, emb: int, groups: int, dropout: float, eps: float = 1e-5):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in, eps), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out, eps), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.drop = make_dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, e):  # (B, Cin, H, W), (B, E) -> (B, Cout, H, W)
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(F.silu(e))[:, :, None, None]
        return self.skip(x) + self.conv2(self.drop(F.silu(self.norm2(h))))


def attention_parts(cfg: DiffusionConfig | None, dim: int, heads: int) -> dict:
    """The softmax variant and output gate `cfg` names, as `Attention` keyword arguments (None: the defaults)."""
    if cfg is None:
        return {}
    return dict(softmax=make_softmax(cfg.softmax, cfg.softmax_args), gate=make_gate(cfg.attn_gate, dim, heads))


class SpatialAttention(nn.Module):
    """Self-attention over the H*W positions of a feature map (the shared Attention part), residual. cfg: the
    config whose softmax variant and attention gate it uses (`attention_parts`; None: standard, ungated)."""

    def __init__(self, c: int, groups: int, heads: int = 4, eps: float = 1e-5, cfg: DiffusionConfig | None = None):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps)
        self.attn = Attention(nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c), n_heads=heads,
                              n_kv_heads=heads, head_dim=c // heads, causal=False, **attention_parts(cfg, c, heads))

    def forward(self, x):  # (B, C, H, W)
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, H*W, C)
        out = self.attn(tokens, build_mask(h * w, h * w, 0, causal=False, device=x.device))
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class CrossAttention(nn.Module):
    """The H*W positions of a feature map attend to a text encoder's tokens (the shared Attention part with keys and
    values from `kv_input`), residual: x + Attn(GroupNorm(x), context)."""

    def __init__(self, c: int, context_dim: int, groups: int, heads: int = 4, eps: float = 1e-5,
                 cfg: DiffusionConfig | None = None):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps)
        self.attn = Attention(nn.Linear(c, c), nn.Linear(context_dim, c), nn.Linear(context_dim, c), nn.Linear(c, c),
                              n_heads=heads, n_kv_heads=heads, head_dim=c // heads, causal=False,
                              **attention_parts(cfg, c, heads))

    def forward(self, x, context):  # (B, C, H, W), (B, L, Dc) -> (B, C, H, W)
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, H*W, C)
        mask = build_mask(h * w, context.shape[1], 0, causal=False, device=x.device, self_attention=False)
        out = self.attn(tokens, mask, kv_input=context.to(tokens.dtype))
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class ContextTokens(nn.Module):
    """A text encoder's token states (B, L, Dc) -> (B, L, D) tokens: LayerNorm, then a linear map."""

    def __init__(self, context_dim: int, dim: int):
        super().__init__()
        self.norm, self.proj = nn.LayerNorm(context_dim), nn.Linear(context_dim, dim)

    def forward(self, context):
        return self.proj(self.norm(context))


@DENOISERS.register("unet")
class UNet(nn.Module):
    """Levels of ResBlocks at halving resolutions with skip connections, attention at the lowest resolution."""

    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        ch, g, emb = cfg.base_channels, cfg.groups, 4 * cfg.base_channels
        self.cond = Conditioning(cfg.num_train_timesteps, emb, cfg.n_classes, cfg.context_dim)
        self.inp = nn.Conv2d(cfg.channels, ch, 3, padding=1)
        widths = [ch * m for m in cfg.channel_mults]
        self.down, skips, c = nn.ModuleList(), [ch], ch
        for i, w in enumerate(widths):
            for _ in range(cfg.n_res_blocks):
                self.down.append(ResBlock(c, w, emb, g, cfg.dropout))
                c = w
                skips.append(c)
            if i < len(widths) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        mid = [ResBlock(c, c, emb, g, cfg.dropout), SpatialAttention(c, g, cfg=cfg)]
        if cfg.context_dim:
            mid.append(CrossAttention(c, cfg.context_dim, g, cfg=cfg))
        self.mid = nn.ModuleList(mid + [ResBlock(c, c, emb, g, cfg.dropout)])
        self.up = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            for _ in range(cfg.n_res_blocks + 1):
                self.up.append(ResBlock(c + skips.pop(), w, emb, g, cfg.dropout))
                c = w
            if i > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.out = nn.Sequential(nn.GroupNorm(g, c), nn.SiLU(), nn.Conv2d(c, cfg.channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)  # start as the zero prediction
        nn.init.zeros_(self.out[-1].bias)

    def shardable_blocks(self) -> list[nn.Module]:
        """The modules FSDP shards one by one (`train.distributed.wrap`): the residual and attention blocks at every level."""
        return [m for m in (*self.down, *self.mid, *self.up)
                if isinstance(m, (ResBlock, SpatialAttention, CrossAttention))]

    def forward(self, x, t, labels, context=None):  # (B, C, H, W), (B,), (B,) | None, (B, L, Dc) | None
        e = self.cond(t, labels, context)
        h = self.inp(x)
        hs = [h]
        for m in self.down:
            h = m(h, e) if isinstance(m, ResBlock) else m(h)
            hs.append(h)
        for m in self.mid:
            h = m(h, e) if isinstance(m, ResBlock) else m(h, context) if isinstance(m, CrossAttention) else m(h)
        for m in self.up:
            h = m(torch.cat([h, hs.pop()], dim=1), e) if isinstance(m, ResBlock) else m(h)
        return self.out(h)


@DENOISERS.register("dit")
class DiT(Stack):
    """A bidirectional `Stack` over image patches: patchify (a strided conv), learned positions, the conditioning
    prepended as one token (and the text tokens after it, without positions), pre-norm transformer blocks,
    LayerNorm; the head is a linear layer back to patches, unpatchified."""

    def __init__(self, cfg: DiffusionConfig):
        d, p = cfg.d_model, cfg.patch_size
        blocks = [Block(Attention(nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d),
                                  n_heads=cfg.n_heads, n_kv_heads=cfg.n_heads, head_dim=d // cfg.n_heads,
                                  causal=False, dropout=cfg.dropout, **attention_parts(cfg, d, cfg.n_heads)),
                        MLP.build(d, cfg.d_ff, "gelu_tanh"), nn.LayerNorm(d), nn.LayerNorm(d), norm_position="pre",
                        dropout=cfg.dropout)
                  for _ in range(cfg.n_layers)]
        side = cfg.image_size // p
        super().__init__(blocks, embed=PatchEmbed(cfg.channels, d, p), positions=LearnedPositions(side**2, d),
                         final_norm=nn.LayerNorm(d), causal=False)
        self.p, self.c, self.side = p, cfg.channels, side
        self.cond = Conditioning(cfg.num_train_timesteps, d, cfg.n_classes)
        self.context = ContextTokens(cfg.context_dim, d) if cfg.context_dim else None
        self.head = nn.Linear(d, p * p * cfg.channels)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def shardable_blocks(self) -> list[nn.Module]:
        """The modules FSDP shards one by one (`train.distributed.wrap`): the transformer blocks."""
        return list(self.blocks)

    def forward(self, x, t, labels, context=None):  # (B, C, H, W), (B,), (B,) | None, (B, L, Dc) | None
        b = x.shape[0]
        prefix = self.cond(t, labels)[:, None]  # (B, 1, D)
        if self.context is not None and context is not None:
            prefix = torch.cat([prefix, self.context(context)], dim=1)  # (B, 1 + L, D)
        h = super().forward(x, prefix=prefix)  # (B, P + N, D)
        out = self.head(h[:, prefix.shape[1]:])  # (B, N, p*p*C)
        out = out.view(b, self.side, self.side, self.c, self.p, self.p)  # (B, h, w, C, p, p)
        return out.permute(0, 3, 1, 4, 2, 5).reshape(b, self.c, self.side * self.p, self.side * self.p)


def _register_unet2d():
    from . import unet2d  # noqa: F401  (registers "unet2d")


_register_unet2d()
