"""Text prompts for DPOK (Fan et al., arXiv 2305.16381) on a text-to-image model, with the seed's "Training
Diffusion Models with RL" practices for text prompts:

- `PromptTable`: a fixed list of prompts, their text token states (the diffusion model's condition, through
  `condition`) and the frozen CLIP's embeddings of each prompt and of its contrastive prompts (the same template
  with every other shape, then every other colour: `data.shape_captions.contrastive`).
- `CLIPReward`: reward = the frozen CLIP's image-prompt cosine similarity, returned as the matrix (B, 1 + M) of an
  image against its own prompt and its M contrastive prompts, which practice (a) (contrastive normalisation) and
  practice (c) (the textual-inconsistency penalty) read (`practices`).
- `synthesise_prompts` (practice (b), "prompt synthesis via an LLM"): prompts sampled from a genzoo LM trained on
  the caption templates (task "caption-lm"), kept only when they are well formed (exactly one shape word and one
  colour word, no word outside the captions' vocabulary) and novel (in no template list, training or held out).
"""

from __future__ import annotations

import torch

from ....data.shape_captions import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES, all_captions, contrastive, parse, words
from ....data.shapes import COLOUR_NAMES, SHAPE_NAMES
from ....errors import InputError


def names_one_object(text: str) -> bool:
    """Exactly one shape word and one colour word (so its contrastive prompts are well defined)."""
    if not isinstance(text, str) or not text.strip():
        return False
    ws = words(text)
    return sum(w in SHAPE_NAMES for w in ws) == 1 and sum(w in COLOUR_NAMES for w in ws) == 1


def well_formed(text: str) -> bool:
    """`names_one_object`, and every word in the training captions' vocabulary."""
    return names_one_object(text) and not parse(text).unseen


def template_prompts() -> set[str]:
    """Every caption any template list (training and held out) can write."""
    return set(all_captions(TRAIN_TEMPLATES)) | set(all_captions(HELD_OUT_TEMPLATES))


def normalise_text(text: str) -> str:
    return " ".join(text.split())


@torch.no_grad()
def synthesise_prompts(lm, tokenizer, n: int, generator: torch.Generator, temperature: float = 1.0,
                       batch: int = 64, max_rounds: int = 20, max_new_tokens: int = 80) -> tuple[list[str], dict]:
    """Up to n distinct prompts sampled from `lm` (a genzoo decoder trained by task "caption-lm", started from its
    end-of-text token), kept when finished (the LM wrote its end-of-text token within max_new_tokens), `well_formed`
    and not in `template_prompts()`. -> (prompts, statistics: how many were sampled, malformed or unfinished,
    already in a template list, duplicates)."""
    known = template_prompts()
    eos = tokenizer.eos_id
    kept: list[str] = []
    stats = {"sampled": 0, "malformed": 0, "in_templates": 0, "duplicates": 0}
    device = next(lm.parameters()).device
    for _ in range(max_rounds):
        if len(kept) >= n:
            break
        start = torch.full((batch, 1), eos, dtype=torch.long, device=device)  # (B, 1)
        out = lm.generate(start, max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature,
                          eos_token_id=eos, pad_token_id=eos, generator=generator)  # (B, 1 + N)
        for row in out[:, 1:].tolist():
            finished = eos in row
            row = row[: row.index(eos)] if finished else row  # up to the end-of-text token
            text = normalise_text(tokenizer.decode(row, skip_special_tokens=True))
            stats["sampled"] += 1
            if not (finished and well_formed(text)):
                stats["malformed"] += 1
            elif text in known:
                stats["in_templates"] += 1
            elif text in kept:
                stats["duplicates"] += 1
            elif len(kept) < n:
                kept.append(text)
    return kept, stats


class PromptTable:
    """P prompts for a `PointE` model's text-to-image stage: states (P, L, D) its condition, text (P, 1 + M, E) the
    unit CLIP embeddings of each prompt (column 0) and of its M contrastive prompts. Frozen (computed once)."""

    def __init__(self, pointe, prompts: list[str]):
        if not prompts:
            raise InputError("a prompt table needs at least one prompt")
        bad = [p for p in prompts if not names_one_object(p)]
        if bad:
            raise InputError(f"prompts must name exactly one shape ({', '.join(SHAPE_NAMES)}) and one colour "
                             f"({', '.join(COLOUR_NAMES)}); got {bad[:3]}")
        self.prompts = list(prompts)
        rivals = [contrastive(p) for p in prompts]  # each (M,) = 6 other shapes + 5 other colours
        m = len(rivals[0])
        dev = pointe.device
        with torch.no_grad():
            ids = pointe.tokenize(self.prompts).to(dev)  # (P, L)
            self.states = pointe.text_states(ids)  # (P, L, D)
            own = pointe.clip.encode_text(ids)  # (P, E)
            flat = [r for rs in rivals for r in rs]
            others = pointe.clip.encode_text(pointe.tokenize(flat).to(dev)).view(len(prompts), m, -1)  # (P, M, E)
        self.text = torch.cat([own[:, None], others], dim=1)  # (P, 1 + M, E)
        self.shape = torch.tensor([SHAPE_NAMES.index(parse(p).shape) for p in prompts])  # (P,)
        self.colour = torch.tensor([COLOUR_NAMES.index(parse(p).colour) for p in prompts])  # (P,)

    def __len__(self) -> int:
        return len(self.prompts)

    def condition(self, idx: torch.Tensor) -> dict:
        """DPOK's condition hook: prompt indices (B,) -> the text-to-image model's predict arguments."""
        return {"labels": None, "context": self.states[idx.to(self.states.device)]}


class CLIPReward:
    """reward(images (B, 3, S, S), prompt indices (B,)) -> (B, 1 + M): the frozen CLIP's cosine similarity of each
    image with its own prompt (column 0) and with its contrastive prompts."""

    def __init__(self, clip, table: PromptTable):
        self.clip, self.table = clip, table

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        img = self.clip.encode_image(images)  # (B, E), unit length
        text = self.table.text[idx.to(self.table.text.device)]  # (B, 1 + M, E)
        return torch.einsum("be,bme->bm", img, text)  # (B, 1 + M)
