"""A 97-token tokenizer for the tiny random models of `hf_models` (VOCAB = 97): 4 special tokens, 88 printable
characters and 5 merged pieces ("ab", "cd", "th", "the", "e "), so one token may hold several characters (stop
strings that overhang a token). Saved as tokenizer.json + tokenizer_config.json, the files transformers'
AutoTokenizer and genzoo's Tokenizer both read."""

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, processors

from .hf_models import VOCAB

SPECIALS = ["<pad>", "</s>", "<mask>", "<s>"]
CHARS = [chr(c) for c in range(32, 127) if chr(c) not in "`~^|\\{}"]
MERGES = [("a", "b"), ("c", "d"), ("t", "h"), ("th", "e"), ("e", " ")]


def char_tokenizer(directory, chat_template: str | None = None, wrap: bool = False, **config) -> Path:
    """wrap: every text becomes "<s> text </s>" (a post-processor, as CLIP's and T5's tokenizers add them)."""
    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS + ["".join(m) for m in MERGES])}
    assert len(vocab) == VOCAB
    tok = Tokenizer(models.BPE(vocab, MERGES))
    tok.add_special_tokens(SPECIALS)
    tok.decoder = decoders.Fuse()
    if wrap:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 3),
                                                                                                  ("</s>", 1)])
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tok.save(str(d / "tokenizer.json"))
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "<pad>", "eos_token": "</s>",
           "bos_token": "<s>", "mask_token": "<mask>", "unk_token": "<pad>", **config}
    if chat_template is not None:
        cfg["chat_template"] = chat_template
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    return d
