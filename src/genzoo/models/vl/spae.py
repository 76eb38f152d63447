"""SPAE, the Semantic Pyramid AutoEncoder (Yu et al. 2023, arXiv 2306.17842): images to and from words of a
frozen language model's vocabulary.

- Codebook (sec. 3.1): the frozen LM's token embedding table, a buffer here (never trained); only the rows of
  `allowed` tokens (the vocabulary's content words) may be chosen, so every token SPAE emits is a word the LM has.
- Token pyramid (sec. 3.1): the encoder's grid z (B, Dc, G, G) is quantised in layers of growing resolution,
  `pyramid` = (1, 2, 4) grid sides -> 1, 4, 16 tokens, coarse to fine.
- Streaming average quantisation (SAQ, sec. 3.1): layer l quantises the part of l * z its predecessors left,
  pooled to its resolution,
      t_l = pool_l(l * z - sum_{i<l} up(e_i)),   k_l = argmin_k ||t_l - e(k)||,
  so the running average zq_l = (1 / l) sum_{i<=l} up(e(k_i)) tracks z: every prefix of layers is a complete
  (coarser) code, and always an average of vocabulary embeddings, which the decoder reads.
- Losses (sec. 3.2): reconstruction of the image from every prefix (L2), commitment of the encoder to its codes
  (as VQ-VAE, Oord et al. 2017, eq. 3, the codebook term dropped as the codebook is frozen), and the semantic loss
  on the coarse layers: the tokens an image should get are the words a frozen CLIP finds most relevant to it,
      L_sem = E_l E_{c in K_I} -log softmax_k(-||t_l - e(k)||^2 / tau)[c].
Gradients pass the quantiser straight through (Bengio et al. 2013): each layer's code is t_l + sg(e_l - t_l).
Encoder and decoder are the shared bidirectional `Stack` over patches (ViT, Dosovitskiy et al. 2021).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ...config import GENRES, PRESETS, Preset, check, check_positive
from ...errors import ConfigError, InputError
from ...nn import ATTENTION_GATES, Stack, make_softmax
from ...nn.ffn import ACTIVATIONS
from ...nn.patches import PatchEmbed
from ...nn.positions import LearnedPositions
from ..clip.model import make_blocks


@dataclass
class SPAEConfig:
    image_size: int = 8
    channels: int = 1
    patch_size: int = 2
    pyramid: tuple = (1, 2, 4)  # grid side of each token layer, coarse to fine; the last is image_size/patch_size
    codebook_size: int = 512  # the frozen LM's vocabulary size
    codebook_dim: int = 64  # the frozen LM's embedding width
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 128
    activation: str = "gelu"
    norm_eps: float = 1e-5
    dropout: float = 0.0
    attn_backend: str = "sdpa"
    softmax: str = "standard"  # SOFTMAX: the encoder's and decoder's attention softmax variant (CLIP's blocks)
    softmax_args: dict | None = None  # the variant's parameters (nn.softmax.make_softmax)
    attn_gate: str = "none"  # ATTENTION_GATES: a per-head sigmoid gate on the attention outputs
    commitment_weight: float = 0.25
    semantic_weight: float = 1.0  # 0: no semantic loss
    semantic_layers: int = 1  # the coarse layers the semantic loss applies to
    semantic_temperature: float = 0.1  # tau, in units of the codebook's mean squared distance to its mean
    checkpoint_format: str = "genzoo"
    genre: str = field(default="spae", repr=False)

    def __post_init__(self):
        self.pyramid = tuple(self.pyramid)
        check_positive(self, "image_size", "channels", "patch_size", "codebook_size", "codebook_dim", "d_model",
                       "n_layers", "n_heads", "d_ff")
        check(self.image_size % self.patch_size == 0, "image_size", self.image_size,
              f"must be a multiple of patch_size={self.patch_size}")
        g = self.image_size // self.patch_size
        check(len(self.pyramid) > 0 and all(isinstance(s, int) and s > 0 and g % s == 0 for s in self.pyramid)
              and list(self.pyramid) == sorted(set(self.pyramid)) and self.pyramid[-1] == g, "pyramid",
              self.pyramid, f"increasing grid sides that divide {g}, the last = image_size / patch_size = {g}")
        check(self.d_model % self.n_heads == 0, "d_model", self.d_model, f"must be divisible by n_heads={self.n_heads}")
        check(isinstance(self.semantic_layers, int) and 0 <= self.semantic_layers <= len(self.pyramid),
              "semantic_layers", self.semantic_layers, f"in 0..{len(self.pyramid)}")
        check(self.semantic_weight >= 0 and self.commitment_weight >= 0, "semantic_weight",
              (self.semantic_weight, self.commitment_weight), "loss weights are >= 0")
        check(self.semantic_temperature > 0, "semantic_temperature", self.semantic_temperature, "> 0")
        ACTIVATIONS.get(self.activation)
        make_softmax(self.softmax, self.softmax_args)  # the variant, its parameters' names and values
        ATTENTION_GATES.get(self.attn_gate)

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def layer_sizes(self) -> list[int]:
        return [s * s for s in self.pyramid]

    @property
    def n_tokens(self) -> int:
        return sum(self.layer_sizes)


PRESETS.register("spae-digits", Preset(SPAEConfig, codebook_size=367, codebook_dim=96))
PRESETS.register("spae-tiny", Preset(SPAEConfig, codebook_size=64, codebook_dim=16, d_model=32, n_layers=1,
                                     n_heads=2, d_ff=64))


@dataclass
class SAQOutput:
    ids: list[torch.Tensor]  # per layer (B, s*s) token ids, row-major
    prefixes: list[torch.Tensor]  # per depth l, the streaming average zq_l (B, Dc, G, G), straight-through
    targets: list[torch.Tensor]  # per layer t_l (B, s*s, Dc)
    codes: list[torch.Tensor]  # per layer e(k_l) (B, s*s, Dc)


@dataclass
class SPAEOutput:
    loss: torch.Tensor
    reconstruction_loss: torch.Tensor
    commitment_loss: torch.Tensor
    semantic_loss: torch.Tensor | None
    reconstructions: list[torch.Tensor]  # per depth (B, C, H, W)
    token_ids: torch.Tensor  # (B, n_tokens), coarse to fine


@GENRES.register("spae")
class SPAE(nn.Module):
    config_class = SPAEConfig

    def __init__(self, config: SPAEConfig):
        super().__init__()
        self.config = cfg = config
        d, n = cfg.d_model, cfg.grid**2

        def stack(embed):
            return Stack(make_blocks(d, cfg.n_heads, cfg.d_ff, cfg.n_layers, cfg, causal=False), embed=embed,
                         positions=LearnedPositions(n, d), final_norm=nn.LayerNorm(d, eps=cfg.norm_eps), causal=False)

        self.encoder = stack(PatchEmbed(cfg.channels, d, cfg.patch_size))
        self.to_code = nn.Linear(d, cfg.codebook_dim)
        self.decoder = stack(nn.Linear(cfg.codebook_dim, d))
        self.to_pixels = nn.Linear(d, cfg.channels * cfg.patch_size**2)
        # the frozen language codebook: buffers, saved with the model, never given to an optimiser
        self.register_buffer("codebook", torch.zeros(cfg.codebook_size, cfg.codebook_dim))
        self.register_buffer("allowed", torch.ones(cfg.codebook_size, dtype=torch.bool))

    # ---- the codebook ----
    @torch.no_grad()
    def set_codebook(self, embeddings: torch.Tensor, allowed_ids=None) -> None:
        """Copy a frozen LM's token embedding table (V, Dc) in; allowed_ids: the token ids SPAE may emit."""
        want = tuple(self.codebook.shape)
        if tuple(embeddings.shape) != want:
            raise ConfigError(f"codebook embeddings have shape {tuple(embeddings.shape)}; this SPAE expects {want} "
                              "(codebook_size = the LM's vocab_size, codebook_dim = its d_model)")
        allowed = torch.ones_like(self.allowed)
        if allowed_ids is not None:
            ids = torch.as_tensor(list(allowed_ids), dtype=torch.long)
            if ids.numel() == 0:
                raise InputError("allowed_ids is empty: SPAE needs at least one vocabulary token to emit")
            if int(ids.min()) < 0 or int(ids.max()) >= want[0]:
                raise InputError(f"allowed_ids must lie in [0, {want[0]})")
            allowed = torch.zeros_like(self.allowed)
            allowed[ids] = True
        self.codebook.copy_(embeddings.detach().to(self.codebook.dtype))
        self.allowed.copy_(allowed)

    def spread(self) -> torch.Tensor:
        """The allowed codes' mean squared distance to their mean (the semantic temperature's unit)."""
        e = self.codebook[self.allowed]
        return ((e - e.mean(0)) ** 2).sum(-1).mean().clamp_min(1e-12)

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., Dc) -> the id of the nearest allowed codebook row (...)."""
        e = self.codebook
        d = (x**2).sum(-1, keepdim=True) - 2 * x @ e.t() + (e**2).sum(-1)  # (..., V)
        return d.masked_fill(~self.allowed, float("inf")).argmin(-1)

    # ---- checks ----
    def check_pixels(self, pixel_values) -> None:
        cfg = self.config
        want = (cfg.channels, cfg.image_size, cfg.image_size)
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 4 or \
                tuple(pixel_values.shape[1:]) != want:
            raise InputError(f"pixel_values has shape {tuple(getattr(pixel_values, 'shape', ()))}; expected "
                             f"(batch, *{want}) (channels {cfg.channels}, {cfg.image_size}x{cfg.image_size})")

    def check_ids(self, ids) -> int:
        """-> the depth (number of layers) a token sequence (B, n) covers; n must end a layer."""
        cfg = self.config
        ends = [sum(cfg.layer_sizes[: i + 1]) for i in range(len(cfg.pyramid))]
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype not in (torch.long, torch.int32):
            raise InputError(f"token ids must be an integer tensor (batch, n); got {getattr(ids, 'dtype', type(ids))}")
        if ids.shape[1] not in ends:
            raise InputError(f"{ids.shape[1]} tokens do not end a pyramid layer; a prefix has one of {ends} tokens")
        if int(ids.min()) < 0 or int(ids.max()) >= cfg.codebook_size or not bool(self.allowed[ids].all()):
            raise InputError("token ids must be allowed codebook ids (the vocabulary's content words)")
        return ends.index(ids.shape[1]) + 1

    # ---- encode, quantise, decode ----
    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> z (B, Dc, G, G)."""
        self.check_pixels(pixel_values)
        g = self.config.grid
        z = self.to_code(self.encoder(pixel_values))  # (B, G*G, Dc)
        return z.transpose(1, 2).reshape(z.shape[0], -1, g, g)  # (B, Dc, G, G)

    def quantize(self, z: torch.Tensor) -> SAQOutput:
        """Streaming average quantisation of z (B, Dc, G, G), coarse to fine."""
        b, dc, g, _ = z.shape
        total = torch.zeros_like(z)
        out = SAQOutput([], [], [], [])
        for level, s in enumerate(self.config.pyramid, 1):
            f = g // s
            target = F.avg_pool2d(level * z - total, f).flatten(2).transpose(1, 2)  # (B, s*s, Dc)
            ids = self.nearest(target.detach())  # (B, s*s)
            code = self.codebook[ids]  # (B, s*s, Dc)
            st = target + (code - target).detach()  # straight through
            grid = st.transpose(1, 2).reshape(b, dc, s, s)  # (B, Dc, s, s)
            total = total + grid.repeat_interleave(f, 2).repeat_interleave(f, 3)  # (B, Dc, G, G)
            out.ids.append(ids)
            out.targets.append(target)
            out.codes.append(code)
            out.prefixes.append(total / level)
        return out

    def decode(self, zq: torch.Tensor) -> torch.Tensor:
        """zq (B, Dc, G, G) -> images (B, C, H, W)."""
        cfg = self.config
        b, g, p, c = zq.shape[0], cfg.grid, cfg.patch_size, cfg.channels
        h = self.to_pixels(self.decoder(zq.flatten(2).transpose(1, 2)))  # (B, G*G, C*p*p)
        h = h.view(b, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5)  # (B, C, G, p, G, p)
        return h.reshape(b, c, g * p, g * p)

    @torch.no_grad()
    def tokenize(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Images -> token ids (B, n_tokens), layer after layer, coarse to fine."""
        return torch.cat(self.quantize(self.encode(pixel_values)).ids, dim=1)

    @torch.no_grad()
    def decode_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids of the first l layers (B, sum of their sizes) -> images (B, C, H, W), in [-1, 1]."""
        depth = self.check_ids(ids)
        cfg = self.config
        b, g = ids.shape[0], cfg.grid
        total = self.codebook.new_zeros(b, cfg.codebook_dim, g, g)
        start = 0
        for s in cfg.pyramid[:depth]:
            code = self.codebook[ids[:, start: start + s * s]]  # (B, s*s, Dc)
            grid = code.transpose(1, 2).reshape(b, -1, s, s)
            total = total + grid.repeat_interleave(g // s, 2).repeat_interleave(g // s, 3)
            start += s * s
        return self.decode(total / depth).clamp(-1, 1)

    def split(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """A (B, n_tokens) sequence -> its layers."""
        return list(ids.split(self.config.layer_sizes, dim=1))

    # ---- training ----
    def semantic_loss(self, q: SAQOutput, positives: torch.Tensor) -> torch.Tensor:
        """positives (B, m): the word ids CLIP finds most relevant to each image (K_I)."""
        cfg = self.config
        tau = cfg.semantic_temperature * self.spread()
        losses = []
        for target in q.targets[: cfg.semantic_layers]:  # (B, s*s, Dc)
            e = self.codebook
            d = (target**2).sum(-1, keepdim=True) - 2 * target @ e.t() + (e**2).sum(-1)  # (B, s*s, V)
            logp = (-d / tau).masked_fill(~self.allowed, float("-inf")).log_softmax(-1)
            picked = logp.gather(2, positives[:, None, :].expand(-1, target.shape[1], -1))  # (B, s*s, m)
            losses.append(-picked.mean())
        return torch.stack(losses).mean()

    def forward(self, pixel_values: torch.Tensor, positives: torch.Tensor | None = None) -> SPAEOutput:
        """Reconstruct from every prefix; loss = reconstruction + commitment (+ semantic, given positives)."""
        cfg = self.config
        if positives is not None and (positives.dim() != 2 or positives.shape[0] != pixel_values.shape[0]):
            raise InputError(f"positives must be (batch, m) word ids; got shape {tuple(positives.shape)}")
        q = self.quantize(self.encode(pixel_values))
        recons = [self.decode(zq) for zq in q.prefixes]
        recon = torch.stack([F.mse_loss(r, pixel_values) for r in recons]).mean()
        commit = torch.stack([F.mse_loss(t, c) / (i + 1) ** 2 for i, (t, c) in enumerate(zip(q.targets, q.codes))]).mean()
        loss = recon + cfg.commitment_weight * commit
        sem = None
        if positives is not None and cfg.semantic_weight > 0 and cfg.semantic_layers > 0:
            sem = self.semantic_loss(q, positives)
            loss = loss + cfg.semantic_weight * sem
        return SPAEOutput(loss, recon, commit, sem, recons, torch.cat(q.ids, dim=1))


def psnr(images: torch.Tensor, reference: torch.Tensor, data_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio in dB over a batch, images in [-1, 1] (data range 2)."""
    mse = F.mse_loss(images.clamp(-1, 1), reference).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(data_range**2 / mse)).item()


@torch.no_grad()
def clip_relevance(clip, tokenize, images: torch.Tensor, words: list[str], templates: list[str]) -> torch.Tensor:
    """CLIP's relevance of each word to each image (N, W): cosine of the image embedding and the word's
    prompt-ensembled text embedding (CLIP sec. 3.1.4), SPAE's relevance score s(I, c)."""
    if not words:
        raise InputError("no words to score")
    text = clip.class_embeddings(words, templates, tokenize)  # (W, P), normalised
    return clip.encode_image(images) @ text.t()  # (N, W)
