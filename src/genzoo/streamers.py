"""Streaming generated text. `generate(streamer=...)` calls `put(tokens)` with the prompt, then with each step's
tokens, and `end()` at the end: the protocol of transformers' streamers, so its `TextStreamer` works with genzoo
models too. `TextStreamer` here prints (or hands to a callback) the text of a single row as it is generated."""

from __future__ import annotations

import sys

import torch

from .errors import InputError


class TextStreamer:
    """Writes the decoded text of a batch-1 generation as tokens arrive. Text is released when it no longer ends
    in an incomplete character (a byte-level token may hold half of one), so what is written, concatenated, is the
    decoded text of all new tokens.

    tokenizer: decode(list[int], skip_special_tokens=...) -> str; skip_prompt: do not echo the prompt;
    on_text: called with each new piece (default: write it to `file` and flush)."""

    def __init__(self, tokenizer, skip_prompt: bool = True, skip_special_tokens: bool = False, on_text=None,
                 file=None):
        self.tokenizer, self.skip_prompt, self.skip_special = tokenizer, skip_prompt, skip_special_tokens
        self.on_text = on_text or self._write
        self.file = file
        self.ids: list[int] = []
        self.printed = 0
        self.prompt_seen = False
        self.text = ""

    def _write(self, piece: str) -> None:
        f = self.file or sys.stdout
        f.write(piece)
        f.flush()

    def _decode(self) -> str:
        try:
            return self.tokenizer.decode(self.ids, skip_special_tokens=self.skip_special)
        except TypeError:  # a decode without the keyword
            return self.tokenizer.decode(self.ids)

    def put(self, tokens: torch.Tensor) -> None:
        if tokens.dim() > 1 and tokens.shape[0] > 1:
            raise InputError(f"TextStreamer streams one row; got a batch of {tokens.shape[0]}")
        if not self.prompt_seen:
            self.prompt_seen = True
            if self.skip_prompt:
                return
        self.ids += tokens.flatten().tolist()
        text = self._decode()
        if text.endswith("\ufffd"):  # an incomplete character: wait for the next token
            return
        self.on_text(text[self.printed:])
        self.printed = len(text)
        self.text = text

    def end(self) -> None:
        text = self._decode()
        if len(text) > self.printed:
            self.on_text(text[self.printed:])
        self.text = text
        if self.on_text == self._write:
            self._write("\n")
        self.ids, self.printed, self.prompt_seen = [], 0, False
