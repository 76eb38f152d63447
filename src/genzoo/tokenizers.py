"""Tokenizers through the `tokenizers` library.

`train_bpe` trains a byte-level BPE (Radford et al., 2019, sec. 2.2) on texts. `Tokenizer` wraps any tokenizer the
`tokenizers` library runs (byte-level BPE, WordPiece, SentencePiece-style Unigram), read from `tokenizer.json`, or,
where a directory has none, built by the library from `vocab.json` + `merges.txt` (byte-level BPE, as GPT-2 and
RoBERTa ship) or `vocab.txt` (WordPiece, as BERT ships), or from a GGUF file's metadata (`interop.gguf`). It keeps
the special tokens and the chat template of `tokenizer_config.json` (`genzoo.chat` renders it) and writes the small
`tokenizer_config.json` that lets `transformers.AutoTokenizer` load the same directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tokenizers import Tokenizer as _HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

from .errors import CheckpointError, InputError

EOS = "<|endoftext|>"
SPECIAL_NAMES = ("bos", "eos", "unk", "pad", "mask", "cls", "sep")


def pad_rows(rows: list[list[int]], fill: int, side: str = "right"):
    """Token-id lists -> ids (B, T) padded with `fill` to the longest row (on the right, or on the left), and the
    mask (B, T) of real ids."""
    import torch

    if side not in ("right", "left"):
        raise InputError(f"padding side must be 'right' or 'left', got {side!r}")
    n = max(map(len, rows))
    ids = torch.full((len(rows), n), fill, dtype=torch.long)
    mask = torch.zeros(len(rows), n, dtype=torch.long)
    for i, r in enumerate(rows):
        cols = slice(0, len(r)) if side == "right" else slice(n - len(r), n)
        ids[i, cols] = torch.tensor(r, dtype=torch.long)
        mask[i, cols] = 1
    return ids, mask


def _content(token) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or an AddedToken dict."""
    return token.get("content") if isinstance(token, dict) else token


class Tokenizer:
    """tok: a `tokenizers.Tokenizer`; special tokens by name (bos/eos/unk/pad/mask/cls/sep, those the vocabulary
    has); chat_template: a Jinja chat template (or None)."""

    def __init__(self, tok: _HFTokenizer, eos_token: str | None = EOS, pad_token: str | None = None, *,
                 chat_template: str | None = None, **special_tokens: str | None):
        self.tok = tok
        self.eos_token = eos_token if eos_token is not None and tok.token_to_id(eos_token) is not None else None
        pad = pad_token if pad_token is not None and tok.token_to_id(pad_token) is not None else None
        self.pad_token = pad
        self.config: dict | None = None  # the tokenizer_config.json it was read with (`from_dir`), written back
        self.pad_id = tok.token_to_id(pad) if pad else (tok.padding or {}).get("pad_id", self.eos_id or 0)
        tok.no_padding()  # a tokenizer.json may pad every text to a fixed length; padding is `batch`'s job
        self.pad_token = pad or (tok.id_to_token(self.pad_id) if self.pad_id is not None else None)
        self.chat_template = chat_template
        self.special = {"eos_token": self.eos_token, "pad_token": pad}
        for name, token in special_tokens.items():
            if name.removesuffix("_token") not in SPECIAL_NAMES:
                raise InputError(f"unknown special token {name!r}; known: {[n + '_token' for n in SPECIAL_NAMES]}")
            self.special[name] = token if token is not None and tok.token_to_id(token) is not None else None
        self.special = {k: v for k, v in self.special.items() if v is not None}

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    @property
    def eos_id(self) -> int | None:
        return None if self.eos_token is None else self.tok.token_to_id(self.eos_token)

    def token_id(self, name: str) -> int | None:
        """The id of a special token by name ("mask", "bos", ...), None when the tokenizer has none."""
        token = self.special.get(f"{name}_token")
        return None if token is None else self.tok.token_to_id(token)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.tok.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(self, texts: list[str], add_special_tokens: bool = True) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=add_special_tokens)]

    def batch(self, texts: list[str], max_len: int | None = None, side: str = "right",
              add_special_tokens: bool = True):
        """Token ids (B, T) padded to the longest text with the pad token (on the `side` given: "right", or "left",
        which causal generation uses as it is), and the attention mask (B, T). Texts longer than max_len are
        truncated by the tokenizer (special tokens kept)."""
        self.tok.no_padding()
        if max_len:
            self.tok.enable_truncation(max_len)
        else:
            self.tok.no_truncation()
        return pad_rows(self.encode_batch(texts, add_special_tokens), self.pad_id, side)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages, add_generation_prompt: bool = False, tokenize: bool = False,
                            chat_template: str | None = None, **variables):
        """The conversation rendered by the chat template (`genzoo.chat.render_chat`, as transformers renders it);
        tokenize=True: its token ids (no special tokens added, as transformers)."""
        from .chat import render_chat

        template = chat_template or self.chat_template
        if template is None:
            raise InputError("this tokenizer has no chat template (tokenizer_config.json 'chat_template', "
                             "chat_template.jinja or GGUF 'tokenizer.chat_template'); pass chat_template=")
        text = render_chat(template, messages, add_generation_prompt, **{**self.special, **variables})
        return self.encode(text, add_special_tokens=False) if tokenize else text

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
        cfg.update({k: v for k, v in self.special.items() if k != "eos_token"})
        if self.config is not None:  # read from a directory: its own settings, as they were
            cfg = {k: v for k, v in self.config.items() if k != "auto_map"}
        if self.chat_template and "chat_template" not in cfg:
            cfg["chat_template"] = self.chat_template
        (d / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        """The tokenizer of a model path: a GGUF file (its metadata), a genzoo run directory or an HF directory."""
        p = Path(path)
        if p.suffix == ".gguf" and p.is_file():
            from .interop.gguf import gguf_tokenizer

            return gguf_tokenizer(p)
        from .rundir import resolve_checkpoint_dir

        return cls.from_dir(resolve_checkpoint_dir(p))

    @classmethod
    def from_dir(cls, directory: str | os.PathLike) -> "Tokenizer":
        d = Path(directory)
        cfg = {}
        cfg_file = d / "tokenizer_config.json"
        if cfg_file.exists():
            try:
                cfg = json.loads(cfg_file.read_text())
            except json.JSONDecodeError as e:
                raise CheckpointError(f"{cfg_file}: not valid JSON ({e})") from None
        tok = _read_tokenizer(d, cfg)
        specials = {f"{n}_token": _content(cfg.get(f"{n}_token")) for n in SPECIAL_NAMES if n not in ("eos", "pad")}
        eos = _content(cfg.get("eos_token")) or EOS
        out = cls(tok, eos, _content(cfg.get("pad_token")), chat_template=_chat_template(d, cfg), **specials)
        out.config = cfg if cfg_file.exists() else None
        return out


def _read_tokenizer(d: Path, cfg: dict) -> _HFTokenizer:
    """tokenizer.json; else the `tokenizers` library's byte-level BPE from vocab.json + merges.txt, or its BERT
    WordPiece from vocab.txt, set up as transformers sets them up from the same files and tokenizer_config.json."""
    from tokenizers.implementations import BertWordPieceTokenizer, ByteLevelBPETokenizer

    file, vocab_json, merges, vocab_txt = (d / n for n in ("tokenizer.json", "vocab.json", "merges.txt", "vocab.txt"))
    try:
        if file.exists():
            return _HFTokenizer.from_file(str(file))
        if vocab_json.exists() and merges.exists():
            tok = ByteLevelBPETokenizer(str(vocab_json), str(merges),
                                        add_prefix_space=bool(cfg.get("add_prefix_space", False)))._tokenizer
            tok.post_processor = None
            bos, eos = _content(cfg.get("bos_token")), _content(cfg.get("eos_token"))
            if str(cfg.get("tokenizer_class", "")).startswith(("Roberta", "Bart")) and bos and eos:
                tok.post_processor = processors.RobertaProcessing((eos, tok.token_to_id(eos)),
                                                                  (bos, tok.token_to_id(bos)))
            _add_specials(tok, cfg)
            return tok
        if vocab_txt.exists():
            lower = cfg.get("do_lower_case", True)
            tok = BertWordPieceTokenizer(str(vocab_txt), lowercase=lower, strip_accents=cfg.get("strip_accents"),
                                         handle_chinese_chars=cfg.get("tokenize_chinese_chars", True))._tokenizer
            _add_specials(tok, cfg)
            return tok
    except Exception as e:
        raise CheckpointError(f"{d}: cannot read the tokenizer ({e})") from None
    raise CheckpointError(f"{d}: no tokenizer: looked for tokenizer.json, vocab.json + merges.txt, vocab.txt")


def _add_specials(tok: _HFTokenizer, cfg: dict) -> None:
    """The special tokens tokenizer_config.json names are matched whole, never split (as transformers)."""
    names = [_content(cfg.get(f"{n}_token")) for n in SPECIAL_NAMES]
    tok.add_special_tokens([t for t in names if t and tok.token_to_id(t) is not None])


def _chat_template(d: Path, cfg: dict) -> str | None:
    """chat_template.jinja (what transformers >= 4.50 writes), else tokenizer_config.json's chat_template: a string,
    or a list of named templates (the one named "default")."""
    jinja = d / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text()
    template = cfg.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        return named.get("default")
    return template


def train_bpe(texts, vocab_size: int, min_frequency: int = 2, special_tokens: tuple[str, ...] = ()) -> Tokenizer:
    """A byte-level BPE with `vocab_size` entries (256 bytes + merges + the end-of-text token + specials)."""
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
    return Tokenizer(tok, EOS, "[PAD]" if "[PAD]" in special_tokens else None)


def train_sentencepiece_bpe(texts, vocab_size: int, min_frequency: int = 2,
                            special_tokens: tuple[str, ...] = ()) -> Tokenizer:
    """A SentencePiece-style BPE as Llama and Mistral ship it (Kudo & Richardson 2018): spaces become "▁" and
    start a piece (Metaspace; no dummy prefix, so decoding gives the text back exactly), characters outside the
    vocabulary fall back to their UTF-8 bytes "<0x00>".."<0xFF>".
    `vocab_size` entries: the end-of-text token and specials, the 256 byte tokens, then characters and merges."""
    tok = _HFTokenizer(models.BPE(byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")  # lossless: no dummy prefix
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    specials = [EOS, *special_tokens]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=max(1, vocab_size - len(byte_tokens)), min_frequency=min_frequency,
                                  special_tokens=specials, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    data = json.loads(tok.to_str())  # the byte tokens join the model's own vocabulary (not added tokens)
    learned = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {t: i for i, t in enumerate(specials)}
    for t in byte_tokens + [t for t, _ in learned if t not in vocab]:
        vocab.setdefault(t, len(vocab))
    data["model"]["vocab"] = vocab
    for added in data.get("added_tokens", []):
        added["id"] = vocab[added["content"]]
    return Tokenizer(_HFTokenizer.from_str(json.dumps(data)), EOS, "[PAD]" if "[PAD]" in special_tokens else None)


TOKENIZER_TRAINERS = {"byte-bpe": train_bpe, "sentencepiece-bpe": train_sentencepiece_bpe}  # data.tokenizer
