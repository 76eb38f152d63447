"""Tokenizers through the `tokenizers` library, stored as `tokenizer.json`.

`train_bpe` trains a byte-level BPE (Radford et al., 2019, sec. 2.2) on texts. `Tokenizer` wraps any
`tokenizer.json` (byte-level BPE, WordPiece, SentencePiece-style Unigram) and writes the small
`tokenizer_config.json` that lets `transformers.AutoTokenizer` load the same directory.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from tokenizers import Tokenizer as _HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from .errors import CheckpointError, ConfigError, GenzooWarning

EOS = "<|endoftext|>"


def pad_rows(rows: list[list[int]], fill: int):
    """Token-id lists -> ids (B, T) right-padded with `fill` to the longest row, and the mask (B, T) of real ids."""
    import torch

    n = max(map(len, rows))
    ids = torch.full((len(rows), n), fill, dtype=torch.long)
    mask = torch.zeros(len(rows), n, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


class Tokenizer:
    def __init__(self, tok: _HFTokenizer, eos_token: str | None = EOS, pad_token: str | None = None):
        self.tok = tok
        self.eos_token = eos_token if eos_token is not None and tok.token_to_id(eos_token) is not None else None
        pad = pad_token if pad_token is not None and tok.token_to_id(pad_token) is not None else None
        self.pad_id = tok.token_to_id(pad) if pad else (tok.padding or {}).get("pad_id", self.eos_id or 0)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    @property
    def eos_id(self) -> int | None:
        return None if self.eos_token is None else self.tok.token_to_id(self.eos_token)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts)]

    def batch(self, texts: list[str], max_len: int | None = None):
        """Token ids (B, T) right-padded to the longest text with the pad token, and the attention mask (B, T).
        Texts longer than max_len are truncated by the tokenizer (special tokens kept)."""
        self.tok.no_padding()
        if max_len:
            self.tok.enable_truncation(max_len)
        return pad_rows([e.ids for e in self.tok.encode_batch(texts)], self.pad_id)

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def save(self, directory: str | os.PathLike) -> None:
        d = Path(directory)
        self.tok.save(str(d / "tokenizer.json"))
        cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1_000_000_000}
        if self.eos_token:
            cfg.update(eos_token=self.eos_token, bos_token=self.eos_token, unk_token=self.eos_token)
        for name in ("pad", "mask", "cls", "sep"):
            token = {"pad": "[PAD]", "mask": "[MASK]", "cls": "[CLS]", "sep": "[SEP]"}[name]
            if self.tok.token_to_id(token) is not None:
                cfg[f"{name}_token"] = token
        (d / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")

    @classmethod
    def from_dir(cls, directory: str | os.PathLike) -> "Tokenizer":
        d = Path(directory)
        file = d / "tokenizer.json"
        if not file.exists():
            raise CheckpointError(f"{d}: no tokenizer.json")
        try:
            tok = _HFTokenizer.from_file(str(file))
        except Exception as e:
            raise CheckpointError(f"{file}: cannot read tokenizer ({e})") from None
        eos, pad = EOS, None
        cfg_file = d / "tokenizer_config.json"
        if cfg_file.exists():
            cfg = json.loads(cfg_file.read_text())
            e, p = cfg.get("eos_token"), cfg.get("pad_token")
            eos = e.get("content") if isinstance(e, dict) else (e or EOS)
            pad = p.get("content") if isinstance(p, dict) else p
        return cls(tok, eos, pad)


def train_bpe(texts, vocab_size: int, min_frequency: int = 2, special_tokens: tuple[str, ...] = ()) -> Tokenizer:
    """A byte-level BPE with `vocab_size` entries (256 bytes + merges + the end-of-text token + specials); fewer,
    with a warning, when the texts do not hold that many merges."""
    least = 256 + 1 + len(special_tokens)
    if not (isinstance(vocab_size, int) and vocab_size >= least):
        raise ConfigError(f"vocab_size={vocab_size!r} is invalid: a byte-level BPE has at least {least} entries "
                          f"(256 bytes, end-of-text{', ' + ', '.join(special_tokens) if special_tokens else ''})")
    tok = _HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS, *special_tokens],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if tok.get_vocab_size() < vocab_size:
        warnings.warn(f"vocab_size={vocab_size}: the training texts yield only {tok.get_vocab_size()} tokens; the "
                      "tokenizer (and the model) use that many", GenzooWarning, stacklevel=2)
    return Tokenizer(tok, EOS, "[PAD]" if "[PAD]" in special_tokens else None)
