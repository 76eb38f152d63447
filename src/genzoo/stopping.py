"""Stop strings: end a row once its text contains one of the given strings, as transformers' `StopStringCriteria`
(`generate(stop_strings=..., tokenizer=...)`) decides it: the row stops at the token that completes the string, and
only a string that overlaps the row's last token counts (so a stop string already in the prompt never stops it,
and a token may run past the string's end: "st" + "opper" completes "stop")."""

from __future__ import annotations

import torch

from .errors import InputError


class StopStrings:
    """stop: a string or list of strings; tokenizer: anything with decode(list[int]) -> str (a genzoo `Tokenizer`,
    a transformers tokenizer)."""

    def __init__(self, stop: str | list[str], tokenizer):
        strings = [stop] if isinstance(stop, str) else list(stop)
        if not strings or not all(isinstance(s, str) and s for s in strings):
            raise InputError(f"stop must be a non-empty string or a list of them, got {stop!r}")
        if tokenizer is None or not hasattr(tokenizer, "decode"):
            raise InputError("stop strings need tokenizer= (anything with decode(ids) -> str) to read the tokens")
        self.strings, self.tokenizer = strings, tokenizer
        # every token decodes to at least one byte: the last (longest string in bytes) tokens hold any occurrence
        # that overlaps the last token; two more cover a decoder that drops a leading space at the window's start
        self.window = max(len(s.encode("utf-8")) for s in strings) + 2

    def __call__(self, seq: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        """seq (B, L) the tokens so far, live (B,) rows still running -> (B,) rows that a stop string ends now."""
        hit = torch.zeros(seq.shape[0], dtype=torch.bool, device=seq.device)
        for r in live.nonzero().flatten().tolist():
            ids = seq[r, -self.window:].tolist()
            text, before = self.tokenizer.decode(ids), len(self.tokenizer.decode(ids[:-1]))
            hit[r] = any((k := text.rfind(s)) >= 0 and k + len(s) > before for s in self.strings)
        return hit
