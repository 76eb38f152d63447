"""An image-prefixed language model: the decoder genre's causal `Stack` reads an image's patch embeddings as
prefix tokens, then text (the prefix-LM captioners of SimVLM, Wang et al. 2021, arXiv 2108.10904, and of LENS's
captioning module in miniature). Used twice by `genzoo experiment lens-spae`: as the captioner LENS describes
images with, and as the image-trained VQA baseline of the same size as LENS's frozen language model.

    pixel_values (B, C, H, W) -> PatchEmbed -> (B, P, D) prefix      input_ids (B, T) -> decoder embedding
    [prefix ; text] -> the decoder's causal Stack (RoPE: positions count the prefix) -> LM head on the text

Captions are decoded with the shared beam search (`genzoo.beam`) or the shared sampling loop (`generate.decode`),
over a static KV cache that the prefix fills once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ...beam import beam_search, check_beams
from ...config import GENRES, PRESETS, Preset, check, check_positive
from ...errors import InputError
from ...generate import Decoding, decode, drain, eos_ids, inference
from ...inputs import check_token_ids
from ...modes import evaluating
from ...nn import Stack
from ...nn.patches import PatchEmbed
from ...outputs import CausalLMOutput
from ..decoder.model import DecoderLM


@dataclass
class PrefixLMConfig:
    decoder_preset: str = "llama-tiny"  # the decoder's parts (a DecoderConfig preset with rotary positions)
    vocab_size: int = 512
    max_positions: int = 64  # image patches + text tokens
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 256
    image_size: int = 8
    channels: int = 1
    patch_size: int = 2
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    checkpoint_format: str = "genzoo"
    genre: str = field(default="image-prefix-lm", repr=False)

    def __post_init__(self):
        check_positive(self, "image_size", "channels", "patch_size")
        check(self.image_size % self.patch_size == 0, "image_size", self.image_size,
              f"must be a multiple of patch_size={self.patch_size}")
        check(self.max_positions > self.n_patches, "max_positions", self.max_positions,
              f"must exceed the {self.n_patches} image patches")
        cfg = self.decoder_config()  # validates the decoder fields
        check(cfg.position == "rope", "decoder_preset", self.decoder_preset,
              "a decoder with rotary positions (the prefix takes positions 0..P-1 of the same sequence)")

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def decoder_config(self):
        return PRESETS.get(self.decoder_preset).make(
            vocab_size=self.vocab_size, max_positions=self.max_positions, d_model=self.d_model,
            n_layers=self.n_layers, n_heads=self.n_heads, n_kv_heads=None, d_ff=self.d_ff,
            bos_token_id=self.bos_token_id, eos_token_id=self.eos_token_id, pad_token_id=self.pad_token_id,
            tie_embeddings=True)


PRESETS.register("image-prefix-lm-tiny", Preset(PrefixLMConfig, vocab_size=128, max_positions=40, d_model=32,
                                                 n_layers=1, n_heads=2, d_ff=64))
PRESETS.register("lens-captioner", Preset(PrefixLMConfig, max_positions=40, d_model=64, n_layers=2, n_heads=4,
                                          d_ff=192))


@GENRES.register("image-prefix-lm")
class ImagePrefixLM(nn.Module):
    config_class = PrefixLMConfig

    def __init__(self, config: PrefixLMConfig):
        super().__init__()
        self.config = cfg = config
        self.lm = DecoderLM(cfg.decoder_config())
        self.patches = PatchEmbed(cfg.channels, cfg.d_model, cfg.patch_size)
        nn.init.normal_(self.patches.conv.weight, std=0.02)
        nn.init.zeros_(self.patches.conv.bias)

    def tied_parameters(self) -> list[str]:
        return ["lm." + n for n in self.lm.tied_parameters()]

    def check_inputs(self, pixel_values: torch.Tensor, input_ids: torch.Tensor | None = None,
                     attention_mask=None) -> None:
        cfg = self.config
        want = (cfg.channels, cfg.image_size, cfg.image_size)
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 4 or \
                tuple(pixel_values.shape[1:]) != want:
            raise InputError(f"pixel_values has shape {tuple(getattr(pixel_values, 'shape', ()))}; expected "
                             f"(batch, *{want})")
        if input_ids is not None:
            check_token_ids(input_ids, cfg.vocab_size, cfg.max_positions, attention_mask, start=cfg.n_patches)
            if input_ids.shape[0] != pixel_values.shape[0]:
                raise InputError(f"{pixel_values.shape[0]} images but {input_ids.shape[0]} rows of input_ids")

    def run(self, input_ids, prefix=None, attention_mask=None, cache=None) -> torch.Tensor:
        """The decoder's own stack over [prefix ; tokens] (the Stack's conditioning prefix) -> hidden states of the
        tokens (B, T, D)."""
        h = Stack.forward(self.lm, input_ids, prefix=prefix, attention_mask=attention_mask, cache=cache)
        return h[:, h.shape[1] - input_ids.shape[1]:]  # (B, T, D): the prefix positions dropped

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask=None,
                labels: torch.Tensor | None = None) -> CausalLMOutput:
        """pixel_values (B, C, H, W), input_ids (B, T) -> logits (B, T, V) for the text positions; labels (B, T):
        next-token targets are labels shifted left, -100 ignored (as the decoder genre)."""
        self.check_inputs(pixel_values, input_ids, attention_mask)
        h = self.run(input_ids, self.patches(pixel_values), attention_mask)
        logits = self.lm.lm_head(h)  # (B, T, V)
        loss = None
        if labels is not None:
            targets = F.pad(labels[:, 1:], (0, 1), value=-100)  # (B, T)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
        return CausalLMOutput(logits=logits, loss=loss, last_hidden_state=h)

    def _prefill(self, pixel_values, prompt, max_new_tokens):
        """A cache holding the image and the prompt (B, T0); -> (cache, logits after the prompt (B, V))."""
        cfg = self.config
        b, t0 = prompt.shape
        total = cfg.n_patches + t0 + max_new_tokens
        if total > cfg.max_positions:
            raise InputError(f"{cfg.n_patches} patches + prompt {t0} + max_new_tokens {max_new_tokens} = {total} "
                             f"exceeds max_positions={cfg.max_positions}")
        cache = self.lm.make_cache(b, total)
        h = self.run(prompt, self.patches(pixel_values), cache=cache)
        return cache, self.lm.lm_head(h[:, -1])

    @inference
    def generate(self, pixel_values: torch.Tensor, input_ids: torch.Tensor | None = None, max_new_tokens: int = 12,
                 num_beams: int = 1, do_sample: bool = False, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, num_return_sequences: int = 1, eos_token_id=None,
                 length_penalty: float = 1.0, seed: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Text for each image: the prompt input_ids (default: the bos token) followed by the new tokens,
        (B * num_return_sequences, T0 + N); beam search when num_beams > 1, else greedy or sampled decoding."""
        cfg = self.config
        b = pixel_values.shape[0] if isinstance(pixel_values, torch.Tensor) and pixel_values.dim() == 4 else 0
        if input_ids is None:
            if cfg.bos_token_id is None:
                raise InputError("give input_ids (the model's config has no bos_token_id to start from)")
            input_ids = torch.full((b, 1), cfg.bos_token_id, dtype=torch.long, device=pixel_values.device)
        self.check_inputs(pixel_values, input_ids)
        d = Decoding.make(max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k,
                          top_p=top_p, num_return_sequences=num_return_sequences, seed=seed, generator=generator,
                          eos_token_id=cfg.eos_token_id if eos_token_id is None else eos_token_id,
                          pad_token_id=cfg.pad_token_id)
        check_beams(num_beams, length_penalty, False, do_sample)
        d.check_return_sequences(num_beams)
        eos = eos_ids(d.eos_token_id, pixel_values.device)
        fill = cfg.pad_token_id if cfg.pad_token_id is not None else (int(eos[0]) if len(eos) else 0)
        with evaluating(self):
            if num_beams > 1:
                k = num_beams
                cache, first = self._prefill(pixel_values.repeat_interleave(k, 0), input_ids.repeat_interleave(k, 0),
                                             max_new_tokens)
                step = lambda tok: self.lm.lm_head(self.run(tok[:, None], cache=cache))[:, -1]  # noqa: E731
                return beam_search(step, cache.reorder, input_ids, k, max_new_tokens, eos, fill, length_penalty,
                                   first_logits=first, num_return_sequences=num_return_sequences)
            n = num_return_sequences
            pixel_values, input_ids = pixel_values.repeat_interleave(n, 0), input_ids.repeat_interleave(n, 0)
            cache, first = self._prefill(pixel_values, input_ids, max_new_tokens)
            t0 = input_ids.shape[1]
            out = input_ids.new_full((input_ids.shape[0], t0 + max_new_tokens), fill)
            out[:, :t0] = input_ids
            step = lambda tok: self.lm.lm_head(self.run(tok[:, None], cache=cache))[:, -1]  # noqa: E731
            return drain(decode(step, first, out, t0, d, eos, fill, d.rng(pixel_values.device)))
