"""Token surface forms: the text a vocabulary entry stands for, with the tokenizer family's markers turned back
into what they mark, so tokens of different tokenizers compare as strings (FuseLLM, arXiv 2401.10491, sec. 3.3).

  byte-level BPE (GPT-2):    "Ġdef" -> " def", "Ċ" -> "\\n"  (each symbol is one byte, Radford et al. 2019, sec. 2.2)
  SentencePiece (Llama):     "▁def" -> " def", "<0x0A>" -> "\\n"  (byte-fallback tokens are their byte)
  WordPiece (BERT):          "##ing" -> "ing"
A token holding part of a multi-byte UTF-8 character keeps the bytes it cannot decode as lone surrogates
(`errors="surrogateescape"`), which no text contains: two tokenizers that cut a character the same way give
the same surface, and no surface collides with a real string. The family is read from the tokenizer's decoder.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

from ..registry import Registry

SURFACES: Registry = Registry("token surface")  # family name -> token string -> surface text


@lru_cache(maxsize=1)
def byte_of_symbol() -> dict[str, int]:
    """GPT-2's reversible byte <-> printable-symbol table, inverted: symbol -> byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    symbols, n = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            symbols.append(256 + n)
            n += 1
    return {chr(s): b for b, s in zip(printable, symbols)}


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


@SURFACES.register("byte-level")
def byte_level(token: str) -> str:
    table = byte_of_symbol()
    if not all(c in table for c in token):  # an added token ("<|endoftext|>"): as written
        return token
    return _decode(bytes(table[c] for c in token))


_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@SURFACES.register("metaspace")
def metaspace(token: str) -> str:
    m = _BYTE_FALLBACK.fullmatch(token)
    if m:
        return _decode(bytes([int(m.group(1), 16)]))
    return token.replace("▁", " ")


@SURFACES.register("wordpiece")
def wordpiece(token: str) -> str:
    return token[2:] if token.startswith("##") and len(token) > 2 else token


@SURFACES.register("plain")
def plain(token: str) -> str:
    return token


def family(decoder: dict | None) -> str:
    """The surface family of a tokenizer.json `decoder` entry (a Sequence is searched for a known part)."""
    if not decoder:
        return "plain"
    kind = decoder.get("type")
    if kind == "ByteLevel":
        return "byte-level"
    if kind == "Metaspace" or (kind == "Replace" and decoder.get("pattern", {}).get("String") == "▁"):
        return "metaspace"
    if kind == "WordPiece":
        return "wordpiece"
    if kind == "Sequence":
        for part in decoder.get("decoders", []):
            f = family(part)
            if f != "plain":
                return f
    return "plain"


def surfaces(tokenizer) -> list[str]:
    """The surface text of every id of a `genzoo.tokenizers.Tokenizer` (index = token id)."""
    tok = tokenizer.tok
    to_surface = SURFACES.get(family(json.loads(tok.to_str()).get("decoder")))
    vocab = tok.get_vocab(with_added_tokens=True)
    out = [""] * max(tokenizer.vocab_size, max(vocab.values()) + 1)
    for token, i in vocab.items():
        out[i] = to_surface(token)
    return out


def special_ids(tokenizer) -> set[int]:
    """Ids of the tokenizer's special (added) tokens: never a mapping target."""
    return {i for i, t in tokenizer.tok.get_added_tokens_decoder().items() if t.special}
