"""Interleaved text-and-image token sequences for early fusion (Gemini, arXiv 2312.11805, sec. 2: one decoder over
text and discrete image tokens, able to output images).

The joint vocabulary is the text tokenizer's ids [0, text_vocab_size) (with its begin- and end-of-image markers
<boi>, <eoi> among them), then the image codes: code c is id text_vocab_size + c. An image is
``<boi> c_1 .. c_N <eoi>`` with exactly N = (grid side)^2 codes in raster order; codes appear nowhere else.

A training sequence is a list of `Segment`s, each text or an image, each with or without loss: `build` returns its
ids and labels (-100 where no loss: prompts and input images). `ImageGrammar` masks the scores at generation so
that an image, once begun, gets exactly N codes and then <eoi>, and codes never appear outside one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import InputError


@dataclass(frozen=True)
class JointVocab:
    text_vocab_size: int  # text ids [0, text_vocab_size), the markers among them
    codebook_size: int  # image codes: ids [text_vocab_size, text_vocab_size + codebook_size)
    boi: int
    eoi: int
    image_tokens: int  # codes per image

    @property
    def size(self) -> int:
        return self.text_vocab_size + self.codebook_size

    def image(self, codes: torch.Tensor) -> list[int]:
        """An image's codes (h, w) or (N,) -> its tokens [<boi>, ids.., <eoi>]."""
        flat = codes.reshape(-1)
        if flat.numel() != self.image_tokens:
            raise InputError(f"an image has {flat.numel()} codes; this vocabulary's images have {self.image_tokens}")
        return [self.boi, *(flat + self.text_vocab_size).tolist(), self.eoi]

    def is_code(self, ids: torch.Tensor) -> torch.Tensor:
        return ids >= self.text_vocab_size


@dataclass
class Segment:
    """A piece of a sequence: text (a string, encoded by the text tokenizer) or an image (its VQ codes (h, w));
    loss: whether the model is trained to produce it."""

    text: str | None = None
    image: torch.Tensor | None = None
    loss: bool = False


def build(segments: list[Segment], vocab: JointVocab, tokenizer, bos: int, eos: int | None = None
          ) -> tuple[list[int], list[int]]:
    """Segments -> (ids, labels): bos first; labels are the ids where the segment has loss, -100 elsewhere (the
    decoder shifts them: logits at t predict labels[t + 1]). eos, when given, ends the sequence and takes the loss
    of the segment before it."""
    ids, labels = [bos], [-100]
    for seg in segments:
        if (seg.text is None) == (seg.image is None):
            raise InputError("a Segment is text or an image, not both or neither")
        part = tokenizer.encode(seg.text) if seg.text is not None else vocab.image(seg.image)
        ids += part
        labels += part if seg.loss else [-100] * len(part)
    if eos is not None:
        ids.append(eos)
        labels.append(eos if segments and segments[-1].loss else -100)
    return ids, labels


def check_interleaved(ids: torch.Tensor, vocab: JointVocab, *, allow_open: bool = False) -> None:
    """InputError unless every row of ids (B, T) is well formed: each <boi> followed by exactly image_tokens codes
    and <eoi>, no code outside an image, no <eoi> without its <boi>. allow_open: a row may end inside an image (a
    generation prompt)."""
    n = vocab.image_tokens
    for r, row in enumerate(ids.tolist()):
        inside, count, start = False, 0, -1
        for t, tok in enumerate(row):
            code = tok >= vocab.text_vocab_size
            if tok == vocab.boi:
                if inside:
                    raise InputError(f"row {r}: <boi> at position {t} inside the image begun at {start}")
                inside, count, start = True, 0, t
            elif tok == vocab.eoi:
                if not inside:
                    raise InputError(f"row {r}: <eoi> at position {t} without a <boi>")
                if count != n:
                    raise InputError(f"row {r}: the image begun at position {start} has {count} codes; images have "
                                     f"{n}")
                inside = False
            elif code:
                if not inside:
                    raise InputError(f"row {r}: image code {tok} at position {t} outside an image (<boi> .. <eoi>)")
                count += 1
                if count > n:
                    raise InputError(f"row {r}: the image begun at position {start} has more than {n} codes")
            elif inside:
                raise InputError(f"row {r}: text token {tok} at position {t} inside the image begun at {start}")
        if inside and not allow_open:
            raise InputError(f"row {r}: the image begun at position {start} is unterminated ({count} of {n} codes "
                             "and no <eoi>)")


def images_in(row: torch.Tensor, vocab: JointVocab) -> list[torch.Tensor]:
    """The code grids (N,) of every image in one row of ids (T,), in order; an unterminated image is an InputError."""
    check_interleaved(row[None], vocab)
    starts = (row == vocab.boi).nonzero().squeeze(1).tolist()
    return [row[s + 1: s + 1 + vocab.image_tokens] - vocab.text_vocab_size for s in starts]


class ImageGrammar:
    """A logits processor (transformers' protocol: (input_ids (B, t), scores (B, V)) -> scores) that keeps generation
    well formed: inside an image only codes, exactly image_tokens of them, then only <eoi>; outside, no codes and
    no <eoi>. The model chooses itself whether to begin an image (<boi>)."""

    def __init__(self, vocab: JointVocab):
        self.vocab = vocab

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        v = self.vocab
        t = input_ids.shape[1]
        pos = torch.arange(t, device=input_ids.device)  # (t,)
        last = lambda tok: torch.where(input_ids == tok, pos, -1).max(dim=1).values  # noqa: E731  (B,)
        boi, eoi = last(v.boi), last(v.eoi)
        inside = boi > eoi  # (B,)
        n = t - 1 - boi  # codes since the open <boi> (B,)
        code = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
        code[v.text_vocab_size:] = True
        allowed = torch.where(inside[:, None], code[None] & (n < v.image_tokens)[:, None], ~code[None])  # (B, V)
        full = inside & (n >= v.image_tokens)
        allowed[:, v.eoi] = full
        return scores.masked_fill(~allowed, float("-inf"))
