"""Late fusion: a pretrained image encoder and a pretrained decoder LM, both frozen, joined by a small trained bridge
(only the bridge, and optionally LoRA adapters on the LM, train).

- ``bridge="prefix"`` (LLaVA, Liu et al., 2023, arXiv 2304.08485, sec. 4.1, eq. 1: H_v = W Z_v): the image tower's
  token states Z_v (class token + patches) are projected into the LM's word-embedding space (a linear map, or
  LLaVA-1.5's two-layer MLP) and put before the text's embeddings: [H_v; embed(text)] -> LM.
- ``bridge="xattn"`` (Flamingo, Alayrac et al., 2022, arXiv 2204.14198, sec. 2.2): every LM block gets a
  GATED XATTN-DENSE layer in front of it (`nn.GatedCrossBlock`) attending to the projected image tokens, with tanh
  gates initialised at 0, so the LM starts out exactly as it was pretrained.

The image encoder is CLIP's vision tower (`models.clip.VisionTower`), the LM the decoder genre (`DecoderLM`).
`LateFusion.from_parts(clip, lm)` builds one from a trained CLIP and a trained decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...config import GENRES
from ...errors import ConfigError, InputError
from ...generate import Decoding, drain, eos_ids, inference
from ...modes import evaluating
from ...nn import FFNS, NORMS, Attention, GatedCrossBlock
from ...outputs import CausalLMOutput
from ..clip.model import VisionTower
from ..decoder.model import DecoderLM
from .config import LateFusionConfig


def make_projector(kind: str, d_in: int, d_out: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(d_in, d_out)
    return nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))


def gated_cross_block(block: nn.Module, lm_cfg, heads: int, d_ff: int) -> GatedCrossBlock:
    """A frozen LM block behind Flamingo's gated cross-attention and gated FFN (the LM's norm and FFN kinds)."""
    d = lm_cfg.d_model
    xattn = Attention(nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False),
                      nn.Linear(d, d, bias=False), n_heads=heads, n_kv_heads=heads, head_dim=d // heads,
                      causal=False, backend=lm_cfg.attn_backend)
    norm = NORMS.get(lm_cfg.norm)
    ffn = FFNS.get(lm_cfg.ffn)(d, d_ff, lm_cfg.activation, lm_cfg.ffn_bias)
    return GatedCrossBlock(block, xattn, norm(d, lm_cfg.norm_eps, lm_cfg.norm_bias), ffn,
                           norm(d, lm_cfg.norm_eps, lm_cfg.norm_bias))


@GENRES.register("late-fusion")
class LateFusion(nn.Module):
    config_class = LateFusionConfig

    def __init__(self, config: LateFusionConfig):
        super().__init__()
        self.config = cfg = config
        lm_cfg = cfg.lm_config
        self.vision = VisionTower(cfg.vision_config)
        self.lm = DecoderLM(lm_cfg)
        self.projector = make_projector(cfg.projector, cfg.vision_config.vision_d_model, lm_cfg.d_model)
        if cfg.bridge == "xattn":
            d_ff = cfg.xattn_d_ff or 4 * lm_cfg.d_model
            for i, block in enumerate(list(self.lm.blocks)):
                self.lm.blocks[i] = gated_cross_block(block, lm_cfg, cfg.xattn_heads, d_ff)
        if cfg.lora_r:
            self._add_lora()
        self.freeze()
        for name, p in self.bridge_parameters():
            if p.dim() > 1 and "lora_B" not in name:
                nn.init.normal_(p, std=lm_cfg.init_std)

    def tied_parameters(self) -> list[str]:
        return [f"lm.{n}" for n in self.lm.tied_parameters()]

    def _add_lora(self) -> None:
        try:
            import peft
        except ImportError:
            raise ConfigError("lora_r > 0 needs peft: pip install 'genzoo[lora]'") from None
        targets = [t.strip() for t in self.config.lora_targets.split(",") if t.strip()]
        lora = peft.LoraConfig(r=self.config.lora_r, lora_alpha=self.config.lora_alpha, target_modules=targets)
        inner = [b.block if isinstance(b, GatedCrossBlock) else b for b in self.lm.blocks]
        for block in inner:  # the LM's own attention projections, never the new cross-attention
            peft.inject_adapter_in_model(lora, block.attn)

    def freeze(self) -> None:
        """The image tower and the LM do not train; the projector, the gated cross-attention layers (everything of
        a `GatedCrossBlock` but the block it wraps) and LoRA adapters do."""
        self.requires_grad_(False)
        self.projector.requires_grad_(True)
        for block in self.lm.blocks:
            if isinstance(block, GatedCrossBlock):
                for name, child in block.named_children():
                    if name != "block":
                        child.requires_grad_(True)
                block.attn_gate.requires_grad_(True)
                block.ffn_gate.requires_grad_(True)
        for name, p in self.named_parameters():
            if "lora_" in name:
                p.requires_grad_(True)

    def bridge_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The parameters that train (name, parameter)."""
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def train(self, mode: bool = True):
        super().train(mode)
        self.vision.eval()  # frozen parts stay in eval mode (no dropout)
        return self

    @classmethod
    def from_parts(cls, clip, lm: DecoderLM, **bridge) -> "LateFusion":
        """A late-fusion model around a trained CLIP's vision tower and a trained decoder LM (their weights copied),
        with a fresh bridge; bridge: LateFusionConfig fields (bridge, projector, lora_r, ...)."""
        from ...config import to_dict

        model = cls(LateFusionConfig(vision=to_dict(clip.config), lm=to_dict(lm.config), **bridge))
        model.vision.load_state_dict(clip.vision.state_dict())
        own = model.lm
        for mine, theirs in zip(own.blocks, lm.blocks):
            inner = mine.block if isinstance(mine, GatedCrossBlock) else mine
            state = theirs.state_dict()
            if model.config.lora_r:  # peft keeps the pretrained weight as base_layer
                have = inner.state_dict()
                state = {next(k2 for k2 in have if k2 == k or k2.replace(".base_layer", "") == k): v
                         for k, v in state.items()}
                inner.load_state_dict(state, strict=False)
            else:
                inner.load_state_dict(state)
        for part in ("embed", "positions", "final_norm"):
            getattr(own, part).load_state_dict(getattr(lm, part).state_dict())
        if not lm.config.tie_embeddings:
            own.lm_head.load_state_dict(lm.lm_head.state_dict())
        return model

    # ---- inputs ----
    def check_inputs(self, pixel_values, input_ids, attention_mask=None, extra: int = 0) -> None:
        v = self.config.vision_config
        want = (v.channels, v.image_size, v.image_size)
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 4 or \
                tuple(pixel_values.shape[1:]) != want:
            raise InputError(f"pixel_values has shape {tuple(getattr(pixel_values, 'shape', ()))}; the image "
                             f"encoder takes (batch, *{want})")
        lm = self.config.lm_config
        from ...inputs import check_token_ids

        check_token_ids(input_ids, lm.vocab_size, lm.max_positions - self.n_prefix - extra, attention_mask)
        if pixel_values.shape[0] != input_ids.shape[0]:
            raise InputError(f"{pixel_values.shape[0]} images for {input_ids.shape[0]} texts; give one image per text")

    @property
    def n_prefix(self) -> int:
        """Image tokens before the text (prefix bridge): the class token and the patches; 0 with cross-attention."""
        return self.config.vision_config.n_patches + 1 if self.config.bridge == "prefix" else 0

    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> image tokens in the LM's embedding space (B, 1 + P, D_lm)."""
        with torch.no_grad():
            z = self.vision(pixel_values)[0]  # (B, 1 + P, Dv): frozen, no graph kept
        return self.projector(z)

    def forward(self, pixel_values, input_ids, attention_mask=None, labels=None, check: bool = True
                ) -> CausalLMOutput:
        """pixel_values (B, C, H, W), input_ids (B, T) -> logits (B, T, V) over the text positions; loss with labels
        (B, T) (-100: no loss; shifted inside, as `DecoderLM`)."""
        if check:
            self.check_inputs(pixel_values, input_ids, attention_mask)
        h = self.image_tokens(pixel_values)  # (B, P, D)
        if self.config.bridge == "xattn":
            out = self.lm(input_ids, attention_mask=attention_mask, labels=labels, check=False,
                          memory_kv=self.lm.project_memory(h))
            return out
        p = h.shape[1]
        embeds = torch.cat([h, self.lm.embed(input_ids)], dim=1)  # (B, P + T, D)
        mask = None if attention_mask is None else F.pad(attention_mask, (p, 0), value=1)  # (B, P + T)
        full = None
        if labels is not None:  # labels[:, 0] is never a target (as in the LM's shift), not even of the prefix
            full = F.pad(labels[:, 1:], (p + 1, 0), value=-100)  # (B, P + T)
        out = self.lm(None, attention_mask=mask, labels=full, inputs_embeds=embeds)
        return CausalLMOutput(logits=out.logits[:, p:], loss=out.loss, last_hidden_state=out.last_hidden_state[:, p:])

    # ---- generation ----
    @inference
    def generate(self, pixel_values, input_ids, attention_mask=None, max_new_tokens: int = 20, **options
                 ) -> torch.Tensor:
        """Answer about images: pixel_values (B, C, H, W), prompts input_ids (B, T) (left or right padded) ->
        the prompts followed by the new tokens (B, T + N), as `DecoderLM.generate` (options: do_sample,
        temperature, top_k, top_p, eos_token_id, pad_token_id, seed, ...)."""
        from ...generate import decode, to_left_padding

        d = Decoding.make(max_new_tokens=max_new_tokens, **options)
        self.check_inputs(pixel_values, input_ids, attention_mask, extra=max_new_tokens)
        if attention_mask is not None:
            input_ids, attention_mask = to_left_padding(input_ids, attention_mask)
        lm = self.lm
        b, t = input_ids.shape
        device = input_ids.device
        with evaluating(self):
            h = self.image_tokens(pixel_values)  # (B, P, D)
            memory_kv, p = None, 0
            if self.config.bridge == "xattn":
                memory_kv = lm.project_memory(h)
                embeds = lm.embed(input_ids)  # (B, T, D)
            else:
                p = h.shape[1]
                seq = torch.cat([h, lm.embed(input_ids)], dim=1)  # (B, P + T, D): [image][pads][text]
                n_pad = (t - attention_mask.sum(-1)) if attention_mask is not None else torch.zeros(b, device=device)
                j = torch.arange(p + t, device=device)[None]  # (1, P + T): pads first, then image, then text
                n = n_pad.long()[:, None]
                index = torch.where(j < n, p + j, torch.where(j < n + p, j - n, j))  # (B, P + T)
                embeds = seq.gather(1, index[..., None].expand(-1, -1, seq.shape[-1]))
            mask = None
            if attention_mask is not None and not bool(attention_mask.all()):
                mask = F.pad(attention_mask, (p, 0), value=1).gather(1, index) if p else attention_mask
            position_ids = None if mask is None else (mask.long().cumsum(-1) - 1).clamp(min=0)
            total = p + t + d.max_new_tokens
            cache = lm.make_cache(b, total, key_valid=None if mask is None else F.pad(mask, (0, d.max_new_tokens),
                                                                                      value=1))
            logits = lm(None, position_ids=position_ids, cache=cache, logits_to_keep=1, inputs_embeds=embeds,
                        memory_kv=memory_kv).logits
            next_pos = None if mask is None else position_ids[:, -1:] + 1

            def step(tok):  # (B,) -> (B, V)
                nonlocal next_pos
                out = lm(tok[:, None], position_ids=next_pos, cache=cache, logits_to_keep=1, check=False,
                         memory_kv=memory_kv).logits
                if next_pos is not None:
                    next_pos = next_pos + 1
                return out[:, -1]

            out = input_ids.new_empty(b, t + d.max_new_tokens)
            out[:, :t] = input_ids
            eos = eos_ids(d.eos_token_id, device)
            pad = d.pad_token_id if d.pad_token_id is not None else (int(eos[0]) if len(eos) else 0)
            return drain(decode(step, logits[:, -1], out, t, d, eos, pad, d.rng(device), attention_mask))
