"""Early fusion (Gemini Team, 2023, arXiv 2312.11805, sec. 2; Chameleon, arXiv 2405.09818): ONE decoder trained
from scratch over interleaved text and image tokens. Images become discrete tokens through a VQ-VAE
(`models.vq`); text and image codes share one vocabulary (`sequence.JointVocab`) and one next-token objective, so
the model reads images and writes them: generated image codes are decoded by the VQ decoder back to pixels.

    ids = [bos] text .. <boi> c_1 .. c_N <eoi> text .. [eos]             joint vocabulary (text ids, then codes)
    logits = DecoderLM(ids)                                              the decoder genre, unchanged
    loss = CE over the positions whose label is not -100                 (`sequence.build`: the segments with loss)

The model is the decoder genre (`DecoderLM`: the shared causal Stack and its head) with the joint vocabulary and its
frozen VQ image tokenizer as a submodule (`image_tokenizer`), saved and loaded with it.
"""

from __future__ import annotations

import torch

from ...config import GENRES
from ...errors import InputError
from ..decoder.model import DecoderLM
from ..vq.model import VQImageTokenizer
from .config import EarlyFusionConfig
from .sequence import ImageGrammar, JointVocab, check_interleaved, images_in


@GENRES.register("early-fusion")
class EarlyFusionLM(DecoderLM):
    config_class = EarlyFusionConfig

    def __init__(self, config: EarlyFusionConfig):
        super().__init__(config)
        self.image_tokenizer = VQImageTokenizer(config.vq_config).requires_grad_(False)  # frozen
        self.vocab = JointVocab(config.text_vocab_size, config.vq_config.codebook_size, config.boi_token_id,
                                config.eoi_token_id, config.image_tokens)

    def train(self, mode: bool = True):
        super().train(mode)
        self.image_tokenizer.eval()  # frozen: its EMA codebook never updates here
        return self

    def forward(self, input_ids, attention_mask=None, position_ids=None, labels=None, cache=None,
                logits_to_keep: int = 0, check: bool = True, **kwargs):
        """As `DecoderLM.forward`; with check, the rows must also be well-formed interleaved sequences
        (`sequence.check_interleaved`: an image may be left open at the end only when no labels are given)."""
        if check and cache is None and isinstance(input_ids, torch.Tensor) and input_ids.dim() == 2:
            super().check_inputs(input_ids, attention_mask, position_ids)
            check_interleaved(input_ids, self.vocab, allow_open=labels is None)
        return super().forward(input_ids, attention_mask=attention_mask, position_ids=position_ids, labels=labels,
                               cache=cache, logits_to_keep=logits_to_keep, check=check, **kwargs)

    def image_ids(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> their tokens (B, N + 2): <boi>, the VQ codes as joint-vocabulary ids, <eoi>."""
        codes = self.image_tokenizer.encode(pixel_values).flatten(1)  # (B, N)
        b = codes.shape[0]
        boi = codes.new_full((b, 1), self.vocab.boi)
        eoi = codes.new_full((b, 1), self.vocab.eoi)
        return torch.cat([boi, codes + self.vocab.text_vocab_size, eoi], dim=1)

    def generate(self, input_ids, attention_mask=None, max_new_tokens: int = 20, **options):
        """`GenerationMixin.generate` under the image grammar (`sequence.ImageGrammar`): the model may begin an
        image with <boi>; it then gets exactly N codes and <eoi>. Decode the images with `images`."""
        check_interleaved(input_ids, self.vocab, allow_open=True)
        grammar = ImageGrammar(self.vocab)
        extra = options.pop("logits_processor", None)
        processor = grammar if extra is None else (lambda ids, scores: extra(ids, grammar(ids, scores)))
        return super().generate(input_ids, attention_mask, max_new_tokens=max_new_tokens,
                                logits_processor=processor, **options)

    @torch.no_grad()
    def images(self, row: torch.Tensor) -> list[torch.Tensor]:
        """Every image in one row of ids (T,) decoded to pixels (C, H, W) by the VQ decoder, in order; an
        unterminated image is an InputError."""
        g = self.config.vq_config.grid
        return [self.image_tokenizer.decode(codes.view(1, g, g))[0] for codes in images_in(row, self.vocab)]

    @torch.no_grad()
    def draw(self, prompt_ids: torch.Tensor, attention_mask=None, **options) -> torch.Tensor:
        """Text -> image: prompts (B, T) that end with <boi> -> images (B, C, H, W) (greedy unless options say
        otherwise): the N codes the model writes, decoded by the VQ decoder."""
        if not bool((prompt_ids[:, -1] == self.vocab.boi).all()):
            raise InputError("draw: every prompt must end with <boi> (left-pad prompts of different lengths)")
        n = self.vocab.image_tokens
        out = self.generate(prompt_ids, attention_mask, max_new_tokens=n + 1, **options)
        codes = out[:, -(n + 1):-1] - self.vocab.text_vocab_size  # (B, N)
        g = self.config.vq_config.grid
        return self.image_tokenizer.decode(codes.reshape(-1, g, g))
