"""From text to GLiNER's encoder rows, as the `gliner` package builds them.

- Words: the package's whitespace splitter, the regex ``\\w+(?:[-_]\\w+)*|\\S`` (a word with inner hyphens or
  underscores, or any other single non-space character), with character offsets.
- A row: ``<<ENT>> type_1 <<ENT>> type_2 ... <<SEP>>`` followed by the words, each prompt item and each word one
  pre-tokenized "word" of the backbone's tokenizer (`tokenizers`' ``is_pretokenized``, what transformers'
  ``is_split_into_words=True`` calls), with its special tokens.
- words_mask: at the first sub-token of the text's i-th word, i (1-based), 0 elsewhere. (The package counts the
  words it sees in the sub-tokens, so a word that yields no sub-token shifts every later word by one; here each
  sub-token carries its own word's index.)

`GLiNERTokenizer` holds the backbone's `tokenizers.Tokenizer` (with the GLiNER tokens added) and the tokenizer
files of the directory it came from, so a save writes back what transformers' AutoTokenizer reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import AddedToken
from tokenizers import Tokenizer as _HFTokenizer

from ...errors import CheckpointError, InputError
from ...tokenizers import pad_rows

WORD = re.compile(r"\w+(?:[-_]\w+)*|\S")
# files of a transformers tokenizer directory that are kept verbatim (tokenizer.json is rewritten from the tokenizer)
TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt", "spm.model",
                   "vocab.json", "merges.txt", "sentencepiece.bpe.model")


def split_words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) for each word of `text`, end exclusive (character offsets)."""
    return [(m.group(), m.start(), m.end()) for m in WORD.finditer(text)]


class GLiNERTokenizer:
    """The backbone tokenizer of a GLiNER model: pre-tokenized encoding, no truncation, no padding."""

    def __init__(self, tok: _HFTokenizer, files: dict[str, bytes] | None = None):
        self.tok = tok
        tok.no_truncation()
        tok.no_padding()
        self.files = dict(files or {})

    @classmethod
    def from_dir(cls, directory) -> "GLiNERTokenizer":
        d = Path(directory)
        file = d / "tokenizer.json"
        if not file.exists():
            raise CheckpointError(f"{d}: no tokenizer.json (genzoo reads the fast-tokenizer file; "
                                  "transformers' AutoTokenizer.from_pretrained(...).save_pretrained(dir) writes one)")
        try:
            tok = _HFTokenizer.from_file(str(file))
        except Exception as e:
            raise CheckpointError(f"{file}: cannot read tokenizer ({e})") from None
        return cls(tok, {n: (d / n).read_bytes() for n in TOKENIZER_FILES if (d / n).is_file()})

    def save(self, directory) -> None:
        d = Path(directory)
        for name, data in self.files.items():
            (d / name).write_bytes(data)
        (d / "tokenizer.json").write_text(self.tok.to_str())

    def add_special_tokens(self, tokens: list[str]) -> None:
        """Add GLiNER's tokens ([FLERT], <<ENT>>, <<SEP>>) as special tokens, as the package does."""
        self.tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in tokens])

    def __len__(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def token_id(self, token: str) -> int | None:
        return self.tok.token_to_id(token)

    @property
    def config(self) -> dict:
        raw = self.files.get("tokenizer_config.json")
        return json.loads(raw) if raw else {}

    @property
    def pad_id(self) -> int:
        pad = self.config.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        if pad is not None and self.tok.token_to_id(pad) is not None:
            return self.tok.token_to_id(pad)
        return 0

    @property
    def max_length(self) -> int | None:
        """The tokenizer's model_max_length (None when it sets none)."""
        n = self.config.get("model_max_length")
        return int(n) if isinstance(n, (int, float)) and n < 1e12 else None

    def encode(self, words: list[str]) -> tuple[list[int], list[int | None]]:
        """Token ids of pre-tokenized `words` (special tokens added) and each token's word index (None: special)."""
        e = self.tok.encode(words, is_pretokenized=True)
        return e.ids, e.word_ids


def prompt_words(labels: list[str], ent_token: str, sep_token: str) -> list[str]:
    """<<ENT>> type_1 <<ENT>> type_2 ... <<SEP>>"""
    out = []
    for label in labels:
        out += [ent_token, label]
    return out + [sep_token]


@dataclass
class Row:
    """One encoder pass: a prompt (one group of labels, in one order) and a window of one text's words."""

    text: int  # index of the text
    labels: list[int]  # the prompt's labels as indices into the label list, in prompt order
    first: int  # the window's first word (index in the text)
    n_words: int
    input_ids: list[int]
    words_mask: list[int]


def encode_row(tokenizer: GLiNERTokenizer, prompt: list[str], words: list[str]) -> tuple[list[int], list[int]]:
    """(input_ids, words_mask) of prompt + words."""
    ids, word_ids = tokenizer.encode(prompt + words)
    n, mask, prev = len(prompt), [], None
    for wid in word_ids:
        first = wid is not None and wid != prev and wid >= n
        mask.append(wid - n + 1 if first else 0)
        prev = wid
    return ids, mask


def collate(rows: list[Row], pad_id: int) -> dict[str, torch.Tensor]:
    """The model's inputs for a list of rows: input_ids, attention_mask, words_mask (B, T); text_lengths (B,)."""
    ids, mask = pad_rows([r.input_ids for r in rows], pad_id)  # (B, T), (B, T)
    words_mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        words_mask[i, : len(r.words_mask)] = torch.tensor(r.words_mask)
    lengths = torch.tensor([r.n_words for r in rows], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "words_mask": words_mask, "text_lengths": lengths}


def windows(token_counts: list[int], max_words: int, budget: int, overlap: int) -> list[tuple[int, int]]:
    """Overlapping windows [a, b) over words whose sub-token counts are `token_counts`: at most `max_words` words and
    `budget` sub-tokens each; consecutive windows share `overlap` words (fewer when a window is shorter)."""
    n, out, a = len(token_counts), [], 0
    while True:
        b, used = a, 0
        while b < n and b - a < max_words and used + token_counts[b] <= budget:
            used += token_counts[b]
            b += 1
        if b == a:
            raise InputError(f"word {a} alone needs {token_counts[a]} sub-tokens; with the prompt, at most {budget} "
                             "fit the encoder")
        out.append((a, b))
        if b == n:
            return out
        a = max(a + 1, b - overlap)


def owned(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The words each window owns, [o_j, o_j+1): a span found in window j is kept when it starts there. Boundaries
    sit in the middle of each overlap, so a span owned by a window has context on both sides of it."""
    cuts = [0] + [(spans[j + 1][0] + spans[j][1] + 1) // 2 for j in range(len(spans) - 1)] + [spans[-1][1]]
    return [(cuts[j], cuts[j + 1]) for j in range(len(spans))]
