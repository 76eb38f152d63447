"""The fusion text as sequences: each document is cut at line ends into chunks of at most `max_tokens` target
tokens and `max_chars` characters. A chunk is one training sequence of the target and is tokenized by every
source on its own, so each tokenization covers exactly the same text (FuseLLM aligns per sequence).
A line longer than the limits is cut into pieces."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError


@dataclass
class Chunk:
    text: str
    ids: list[int]  # target token ids


def _lines(text: str, max_chars: int) -> list[str]:
    out = []
    for line in text.splitlines(keepends=True):
        while len(line) > max_chars:
            out.append(line[:max_chars])
            line = line[max_chars:]
        if line:
            out.append(line)
    return out


def make_chunks(texts: list[str], tokenizer, max_tokens: int, max_chars: int) -> list[Chunk]:
    """Documents -> chunks of whole lines (every chunk at least 2 tokens, so it predicts something)."""
    if max_tokens < 2 or max_chars < 1:
        raise InputError(f"chunks need max_tokens >= 2 and max_chars >= 1, got {max_tokens} and {max_chars}")
    if not any(t.strip() for t in texts):
        raise InputError(f"the text to fuse on is empty ({len(texts)} documents, no non-blank character)")
    pieces_per_doc = [_lines(t, max(1, max_chars // 2)) for t in texts]
    flat = [p for doc in pieces_per_doc for p in doc]
    counts = iter(len(ids) for ids in tokenizer.encode_batch(flat))  # tokens of each line alone: an estimate
    drafts: list[list[str]] = []
    for doc in pieces_per_doc:
        cur, n_tok, n_chr = [], 0, 0
        for line in doc:
            c = next(counts)
            if cur and (n_tok + c > max_tokens or n_chr + len(line) > max_chars):
                drafts.append(cur)
                cur, n_tok, n_chr = [], 0, 0
            cur.append(line)
            n_tok, n_chr = n_tok + c, n_chr + len(line)
        if cur:
            drafts.append(cur)
    chunks = []
    for lines in drafts:  # the real count of the joined lines can differ from the sum: drop lines until it fits
        stack = [lines]
        while stack:
            part = stack.pop()
            text = "".join(part)
            ids = tokenizer.encode(text)
            if len(ids) > max_tokens:  # halve the lines, or the one line's characters
                if len(part) > 1:
                    half = len(part) // 2
                    stack += [part[half:], part[:half]]
                else:
                    half = len(text) // 2
                    stack += [[text[half:]], [text[:half]]]
                continue
            if len(ids) >= 2 and text.strip():
                chunks.append(Chunk(text, ids))
    if not chunks:
        raise InputError("the text to fuse on makes no sequence of at least 2 target tokens")
    return chunks
