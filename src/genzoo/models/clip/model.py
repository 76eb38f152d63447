"""CLIP (Radford et al., 2021): contrastive image-text model built from the shared parts.

Text tower: token + learned position embeddings, pre-norm causal transformer, final LayerNorm, pooled at
the end-of-text token. Vision tower (ViT, Dosovitskiy et al., 2021, eq. 1-4): non-overlapping patches by
a strided convolution, a class token, learned positions, LayerNorm before the blocks, pre-norm
transformer, LayerNorm on the class token. Both pooled vectors are projected (no bias) and normalised;
logits are their cosine similarities times exp(logit_scale), clamped at logit_scale_max.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...config import GENRES
from ...errors import InputError
from ...inputs import check_token_ids
from ...nn import MLP, Attention, Block, Stack, make_gate, make_softmax, reset_gates
from ...nn.patches import PatchEmbed
from ...nn.positions import LearnedPositions
from .config import CLIPConfig
from .loss import clip_loss


def make_blocks(d: int, heads: int, d_ff: int, n: int, cfg: CLIPConfig, causal: bool) -> list[Block]:
    def block():
        attn = Attention(nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d), n_heads=heads,
                         n_kv_heads=heads, head_dim=d // heads, causal=causal, dropout=cfg.dropout,
                         backend=cfg.attn_backend, softmax=make_softmax(cfg.softmax, cfg.softmax_args),
                         gate=make_gate(cfg.attn_gate, d, heads))
        return Block(attn, MLP.build(d, d_ff, cfg.activation), nn.LayerNorm(d, eps=cfg.norm_eps),
                     nn.LayerNorm(d, eps=cfg.norm_eps), norm_position="pre")

    return [block() for _ in range(n)]


class TextTower(Stack):
    """A causal `Stack` with learned positions and a final LayerNorm, pooled at the end-of-text token."""

    def __init__(self, cfg: CLIPConfig):
        d = cfg.text_d_model
        super().__init__(make_blocks(d, cfg.text_heads, cfg.text_d_ff, cfg.text_layers, cfg, causal=True),
                         embed=nn.Embedding(cfg.vocab_size, d), positions=LearnedPositions(cfg.max_positions, d),
                         final_norm=nn.LayerNorm(d, eps=cfg.norm_eps), causal=True)
        self.eos_token_id = cfg.eos_token_id

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """input_ids (B, T) -> last hidden state (B, T, D), pooled (B, D) at the end-of-text token."""
        x = super().forward(input_ids, attention_mask=attention_mask)  # (B, T, D)
        if self.eos_token_id == 2:  # legacy CLIP configs: the end-of-text token has the highest id
            eos = input_ids.to(torch.int).argmax(dim=-1)
        else:
            eos = (input_ids == self.eos_token_id).int().argmax(dim=-1)
        return x, x[torch.arange(x.shape[0], device=x.device), eos]


class VisionTower(Stack):
    """ViT as a bidirectional `Stack`: patches behind a class token, learned positions, LayerNorm before the
    blocks (the stack's embed_norm), LayerNorm on the class token (the head)."""

    def __init__(self, cfg: CLIPConfig):
        d = cfg.vision_d_model
        super().__init__(make_blocks(d, cfg.vision_heads, cfg.vision_d_ff, cfg.vision_layers, cfg, causal=False),
                         embed=PatchEmbed(cfg.channels, d, cfg.patch_size, bias=False, class_token=True),
                         positions=LearnedPositions(cfg.n_patches + 1, d),
                         embed_norm=nn.LayerNorm(d, eps=cfg.norm_eps), causal=False)
        self.post_norm = nn.LayerNorm(d, eps=cfg.norm_eps)

    def forward(self, pixel_values: torch.Tensor):
        """pixel_values (B, C, H, W) -> last hidden state (B, 1 + P, D), pooled class token (B, D)."""
        x = super().forward(pixel_values)  # (B, 1 + P, D)
        return x, self.post_norm(x[:, 0])


@dataclass
class CLIPOutput:
    logits_per_image: torch.Tensor | None = None  # (B_img, B_txt)
    logits_per_text: torch.Tensor | None = None  # (B_txt, B_img)
    text_embeds: torch.Tensor | None = None  # (B_txt, P), normalised
    image_embeds: torch.Tensor | None = None  # (B_img, P), normalised
    loss: torch.Tensor | None = None


@GENRES.register("clip")
class CLIP(nn.Module):
    config_class = CLIPConfig

    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = cfg = config
        self.text = TextTower(cfg)
        self.vision = VisionTower(cfg)
        self.text_projection = nn.Linear(cfg.text_d_model, cfg.projection_dim, bias=False)
        self.visual_projection = nn.Linear(cfg.vision_d_model, cfg.projection_dim, bias=False)
        # (1,), not a scalar: FSDP2 shards only parameters with a dimension (HF stores it 0-dim: hf.py reshapes)
        self.logit_scale = nn.Parameter(torch.tensor([cfg.logit_scale_init]))
        self.reset_parameters()

    def shardable_blocks(self) -> list[nn.Module]:
        """The modules FSDP shards one by one (`train.distributed.wrap`): both towers' transformer blocks."""
        return list(self.text.blocks) + list(self.vision.blocks)

    def reset_parameters(self) -> None:
        """CLIP's reference initialisation (as open_clip and transformers): widths set the scales, so the
        pooled features of a small model depend on its input from the first step (a flat 0.02 leaves every
        image with the same class-token output, and training on the log(batch) plateau)."""
        cfg = self.config
        for p in self.parameters():
            if p.dim() == 1:
                nn.init.zeros_(p)
        for tower, d, n in ((self.text, cfg.text_d_model, cfg.text_layers),
                            (self.vision, cfg.vision_d_model, cfg.vision_layers)):
            for block in tower.blocks:
                for proj in (block.attn.q_proj, block.attn.k_proj, block.attn.v_proj):
                    nn.init.normal_(proj.weight, std=d**-0.5 * (2 * n) ** -0.5)
                nn.init.normal_(block.attn.o_proj.weight, std=d**-0.5)
                nn.init.normal_(block.ffn.up.weight, std=(2 * d) ** -0.5)
                nn.init.normal_(block.ffn.down.weight, std=d**-0.5 * (2 * n) ** -0.5)
                for norm in (block.attn_norm, block.ffn_norm):
                    nn.init.ones_(norm.weight)
            nn.init.normal_(tower.positions.weight, std=cfg.init_std)
        for norm in (self.text.final_norm, self.vision.embed_norm, self.vision.post_norm):
            nn.init.ones_(norm.weight)
        nn.init.normal_(self.text.embed.weight, std=cfg.init_std)
        nn.init.normal_(self.vision.embed.class_embedding, std=cfg.vision_d_model**-0.5)
        nn.init.normal_(self.vision.embed.conv.weight, std=cfg.init_std)
        nn.init.normal_(self.text_projection.weight, std=cfg.text_d_model**-0.5)
        nn.init.normal_(self.visual_projection.weight, std=cfg.vision_d_model**-0.5)
        with torch.no_grad():
            self.logit_scale.fill_(cfg.logit_scale_init)
        reset_gates(self)  # gates start open to their init value (the loop above zeroed their biases)

    def check_inputs(self, input_ids=None, pixel_values=None, attention_mask=None) -> None:
        cfg = self.config
        if input_ids is not None:
            check_token_ids(input_ids, cfg.vocab_size, cfg.max_positions, attention_mask)
        if pixel_values is not None:
            want = (cfg.channels, cfg.image_size, cfg.image_size)
            if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != want:
                raise InputError(f"pixel_values has shape {tuple(pixel_values.shape)}; expected (batch, *{want})")

    def encode_text(self, input_ids, attention_mask=None, normalize: bool = True) -> torch.Tensor:
        self.check_inputs(input_ids=input_ids, attention_mask=attention_mask)
        e = self.text_projection(self.text(input_ids, attention_mask)[1])  # (B, P)
        return F.normalize(e, dim=-1) if normalize else e

    def encode_image(self, pixel_values, normalize: bool = True) -> torch.Tensor:
        self.check_inputs(pixel_values=pixel_values)
        e = self.visual_projection(self.vision(pixel_values)[1])  # (B, P)
        return F.normalize(e, dim=-1) if normalize else e

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=self.config.logit_scale_max)[0]

    def forward(self, input_ids: torch.Tensor, pixel_values: torch.Tensor, attention_mask=None,
                return_loss: bool = False) -> CLIPOutput:
        text = self.encode_text(input_ids, attention_mask)  # (Bt, P)
        image = self.encode_image(pixel_values)  # (Bi, P)
        logits_per_text = self.scale() * text @ image.t()  # (Bt, Bi)
        out = CLIPOutput(logits_per_image=logits_per_text.t(), logits_per_text=logits_per_text, text_embeds=text,
                         image_embeds=image)
        if return_loss:
            out.loss = clip_loss(image, text, self.scale())
        return out

    @torch.no_grad()
    def class_embeddings(self, class_names: list[str], templates: list[str], tokenize) -> torch.Tensor:
        """Zero-shot classifier weights (C, P): per class, the normalised mean of the normalised embeddings of
        its captions under every template (prompt ensembling, CLIP sec. 3.1.4). tokenize(list[str]) ->
        (input_ids, attention_mask)."""
        rows = []
        for name in class_names:
            ids, mask = tokenize([t.format(name) for t in templates])
            rows.append(F.normalize(self.encode_text(ids, mask).mean(dim=0), dim=-1))
        return torch.stack(rows)

    @torch.no_grad()
    def classify(self, pixel_values, class_names: list[str], templates: list[str], tokenize):
        """-> (predicted class indices (B,), probabilities (B, C))."""
        weights = self.class_embeddings(class_names, templates, tokenize)
        probs = (self.scale() * self.encode_image(pixel_values) @ weights.t()).softmax(dim=-1)
        return probs.argmax(dim=-1), probs


def recall_at_k(query: torch.Tensor, keys: torch.Tensor, ks=(1, 5), query_labels=None, key_labels=None):
    """Retrieval recall@k over normalised embeddings: the fraction of queries with a match among their k
    most similar keys. A match is the paired key (query i <-> key i), or, given labels, any key of the
    query's label (category-level retrieval, for data whose captions repeat)."""
    sims = query @ keys.t()  # (Nq, Nk)
    if query_labels is None:
        match = torch.eye(len(query), len(keys), dtype=torch.bool, device=sims.device)
    else:
        match = query_labels[:, None].to(sims.device) == key_labels[None, :].to(sims.device)
    top = sims.topk(max(ks), dim=1).indices  # (Nq, K)
    hit = match.gather(1, top)  # (Nq, K)
    return {k: hit[:, :k].any(dim=1).float().mean().item() for k in ks}
