"""LENS (Berrios et al. 2023, "Towards Language Models That Can See", arXiv 2306.16410): frozen vision modules
describe an image in text, and a frozen language model that has only ever read text answers questions about it.

Vision modules (sec. 3.1), all frozen:
- tags: the CLIP image embedding against a vocabulary of tags (each embedded with a prompt ensemble); the top-k
  tags whose CLIP probability over the vocabulary is at least a threshold (the best one always);
- attributes: the same with attribute descriptions ("seven which has no loops");
- captions: an image captioner's beam-search caption and a few sampled ones (LENS's "intensive captioner").
Reasoning module (sec. 3.2): the prompt "Tags: ... Attributes: ... Captions: ... Question: ... Short answer:" goes to
the frozen decoder LM, whose greedy continuation is the answer. Nothing in LENS trains.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...data.digit_qa import lens_prompt
from ...errors import ConfigError, InputError


@dataclass
class LENSConfig:
    tag_top_k: int = 3
    tag_threshold: float = 0.05  # least CLIP probability (over the tag vocabulary) of a listed tag
    attribute_top_k: int = 3
    attribute_threshold: float = 0.05
    num_beams: int = 3  # the beam-search caption
    num_sampled: int = 2  # sampled captions (top-k sampling)
    sample_top_k: int = 5
    caption_tokens: int = 10
    answer_tokens: int = 3
    seed: int = 0  # the sampled captions' generator

    def __post_init__(self):
        for f in ("tag_top_k", "attribute_top_k", "num_beams", "sample_top_k", "caption_tokens", "answer_tokens"):
            v = getattr(self, f)
            if not (isinstance(v, int) and v > 0):
                raise ConfigError(f"LENSConfig field {f}={v!r} is invalid: a positive integer")
        if not (isinstance(self.num_sampled, int) and self.num_sampled >= 0):
            raise ConfigError(f"LENSConfig field num_sampled={self.num_sampled!r} is invalid: an integer >= 0")
        for f in ("tag_threshold", "attribute_threshold"):
            if not 0 <= getattr(self, f) < 1:
                raise ConfigError(f"LENSConfig field {f}={getattr(self, f)!r} is invalid: in [0, 1)")


@dataclass
class Description:
    tags: list[str]
    attributes: list[str]
    captions: list[str]


def _freeze(module):
    module.eval().requires_grad_(False)
    return module


class LENS:
    """clip + clip_tokenize (texts -> (ids, mask)): the tag and attribute modules; captioner: an
    `ImagePrefixLM`; lm: a causal LM trained on text only; tokenizer: the captioner's and the LM's (shared)."""

    def __init__(self, clip, clip_tokenize, captioner, lm, tokenizer, tags: list[str], attributes: list[str],
                 config: LENSConfig | None = None, tag_templates: tuple[str, ...] = ("{}",)):
        if not tags:
            raise InputError("the tag vocabulary is empty: LENS needs at least one tag for CLIP to rank")
        if not attributes:
            raise InputError("the attribute vocabulary is empty: LENS needs at least one attribute description")
        self.config = config or LENSConfig()
        self.clip, self.captioner, self.lm = _freeze(clip), _freeze(captioner), _freeze(lm)
        self.tokenizer, self.tags, self.attributes = tokenizer, list(tags), list(attributes)
        self.tag_embeds = clip.class_embeddings(self.tags, list(tag_templates), clip_tokenize)  # (Nt, P)
        self.attribute_embeds = clip.class_embeddings(self.attributes, ["{}"], clip_tokenize)  # (Na, P)

    def check_pixels(self, pixel_values) -> None:
        for name, cfg in (("CLIP", self.clip.config), ("captioner", self.captioner.config)):
            want = (cfg.channels, cfg.image_size, cfg.image_size)
            if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 4 or \
                    tuple(pixel_values.shape[1:]) != want:
                raise InputError(f"pixel_values has shape {tuple(getattr(pixel_values, 'shape', ()))}; the {name} "
                                 f"module expects (batch, *{want})")

    @staticmethod
    def _top(probs: torch.Tensor, names: list[str], k: int, threshold: float) -> list[list[str]]:
        """Per row of probs (B, N): the top-k names with probability >= threshold (the first always)."""
        p, idx = probs.topk(min(k, probs.shape[1]), dim=-1)  # (B, k)
        return [[names[int(j)] for r, (q, j) in enumerate(zip(pi, ii)) if r == 0 or q >= threshold]
                for pi, ii in zip(p, idx)]

    @torch.no_grad()
    def describe(self, pixel_values: torch.Tensor) -> list[Description]:
        """Tags, attributes and captions for each image (B, C, H, W)."""
        self.check_pixels(pixel_values)
        cfg = self.config
        image = self.clip.encode_image(pixel_values)  # (B, P)
        scale = self.clip.scale()
        tags = self._top((scale * image @ self.tag_embeds.t()).softmax(-1), self.tags, cfg.tag_top_k,
                         cfg.tag_threshold)
        attrs = self._top((scale * image @ self.attribute_embeds.t()).softmax(-1), self.attributes,
                          cfg.attribute_top_k, cfg.attribute_threshold)
        captions = self.captions(pixel_values)
        return [Description(t, a, c) for t, a, c in zip(tags, attrs, captions)]

    def _text(self, ids: torch.Tensor) -> str:
        eos = self.tokenizer.eos_id
        ids = ids.tolist()[1:]  # after the start token
        return self.tokenizer.decode(ids[: ids.index(eos)] if eos in ids else ids).strip()

    @torch.no_grad()
    def captions(self, pixel_values: torch.Tensor) -> list[list[str]]:
        """The beam-search caption, then `num_sampled` top-k sampled ones, duplicates dropped."""
        cfg = self.config
        best = self.captioner.generate(pixel_values, max_new_tokens=cfg.caption_tokens, num_beams=cfg.num_beams)
        rows = [[self._text(r)] for r in best]
        if cfg.num_sampled:
            sampled = self.captioner.generate(pixel_values, max_new_tokens=cfg.caption_tokens, do_sample=True,
                                              top_k=cfg.sample_top_k, num_return_sequences=cfg.num_sampled,
                                              seed=cfg.seed)
            for i, r in enumerate(sampled):
                text = self._text(r)
                if text not in rows[i // cfg.num_sampled]:
                    rows[i // cfg.num_sampled].append(text)
        return rows

    @staticmethod
    def prompt(description: Description, question: str) -> str:
        return lens_prompt(description.tags, description.attributes, description.captions, question)

    @torch.no_grad()
    def reason(self, prompts: list[str]) -> list[str]:
        """The frozen LM's short answers (the first word of its greedy continuation) to text prompts."""
        from ...tokenizers import pad_rows

        tok = self.tokenizer
        rows = [[tok.eos_id] + r for r in tok.encode_batch(prompts)]  # the start token, then the prompt
        ids, mask = pad_rows(rows, tok.pad_id, side="left")
        out = self.lm.generate(ids, attention_mask=mask, max_new_tokens=self.config.answer_tokens,
                               eos_token_id=tok.eos_id)
        answers = []
        for row in out[:, ids.shape[1]:].tolist():
            row = row[: row.index(tok.eos_id)] if tok.eos_id in row else row
            words = tok.decode(row).split()
            answers.append(words[0] if words else "")
        return answers

    @torch.no_grad()
    def answer(self, pixel_values: torch.Tensor, questions: list[list[str]]) -> tuple[list[list[str]], list]:
        """questions: for each image, the questions about it -> (answers in the same layout, descriptions)."""
        if len(questions) != len(pixel_values):
            raise InputError(f"{len(pixel_values)} images but {len(questions)} lists of questions")
        descriptions = self.describe(pixel_values)
        prompts = [self.prompt(d, q) for d, qs in zip(descriptions, questions) for q in qs]
        flat = self.reason(prompts) if prompts else []
        out, i = [], 0
        for qs in questions:
            out.append(flat[i: i + len(qs)])
            i += len(qs)
        return out, descriptions
