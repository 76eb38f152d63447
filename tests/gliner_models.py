"""Tiny random GLiNER checkpoints written by the `gliner` package itself: a tiny BERT or DeBERTa-v2 backbone
(`save_pretrained`, with a WordPiece or Unigram tokenizer), `GLiNERConfig(model_name=<that dir>, span_mode=
"markerV0")`, `GLiNER.from_config(..., local_files_only=True)`, `save_pretrained`."""

import json
import string
from pathlib import Path

import torch

# words of the test sentences; anything else is spelled with single-character pieces
WORDS = ("the a of and in at to is was on with from by for born lives works moved met john smith marie curie paris "
         "london berlin new york apple google city person company date year place organization founded visited "
         "tokyo munich warsaw 1867 2021 march mr dr prof").split()
UNICODE = list("éüßçñøåöä東京")


def bert_tokenizer(directory: Path) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    chars = list(string.ascii_lowercase + string.digits + string.punctuation) + UNICODE
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + chars + [f"##{c}" for c in chars]
    vocab = list(dict.fromkeys(vocab))
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    cfg = {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "unk_token": "[UNK]", "sep_token": "[SEP]",
           "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]", "model_max_length": 512}
    (directory / "tokenizer_config.json").write_text(json.dumps(cfg))


def deberta_tokenizer(directory: Path) -> None:
    import transformers as tf

    chars = list(string.ascii_letters + string.digits + string.punctuation) + UNICODE
    pieces = ["▁" + w for w in WORDS] + ["▁"] + chars
    vocab = [(t, 0.0) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")]
    vocab += [(p, -1.0 - 0.01 * i) for i, p in enumerate(dict.fromkeys(pieces))]
    tf.DebertaV2Tokenizer(vocab=vocab).save_pretrained(directory)


def backbone(arch: str, directory: Path, vocab_size: int) -> None:
    import transformers as tf

    common = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=48, max_position_embeddings=128, pad_token_id=0)
    if arch == "bert":
        model = tf.BertModel(tf.BertConfig(**common, type_vocab_size=2))
    else:
        model = tf.DebertaV2Model(tf.DebertaV2Config(**common, type_vocab_size=0, relative_attention=True,
                                                     position_buckets=8, max_relative_positions=32,
                                                     pos_att_type=["p2c", "c2p"], position_biased_input=False,
                                                     norm_rel_ebd="layer_norm", share_att_key=True))
    with torch.no_grad():  # random init gives near-equal states at every <<ENT>>; widen them so types differ
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(std=0.2)
    model.save_pretrained(directory)


def tiny_gliner(arch: str, root: Path, *, safetensors: bool = False, hidden_size: int = 48, max_len: int = 32,
                max_width: int = 4, **config):
    """(the package's model, the directory it saved itself to)."""
    from gliner import GLiNER, GLiNERConfig
    from tokenizers import Tokenizer

    base = root / f"{arch}-backbone"
    torch.manual_seed(0)
    (bert_tokenizer if arch == "bert" else deberta_tokenizer)(base)
    backbone(arch, base, Tokenizer.from_file(str(base / "tokenizer.json")).get_vocab_size())
    torch.manual_seed(0)
    cfg = GLiNERConfig(model_name=str(base), span_mode="markerV0", hidden_size=hidden_size, max_width=max_width,
                       max_len=max_len, dropout=0.0, **config)
    model = GLiNER.from_config(cfg, local_files_only=True)
    with torch.no_grad():  # widen the random scores so thresholds and greedy decoding have choices to make
        for name, p in model.model.named_parameters():
            if p.dim() > 1 and not name.startswith("token_rep_layer.bert_layer"):
                p.mul_(6.0 if name.startswith("prompt_rep_layer.3") else 1.5)
    out = root / f"{arch}-gliner"
    model.save_pretrained(out, safe_serialization=safetensors)
    return model.eval(), out


def wordpiece(directory: Path, texts) -> int:
    """A BERT-style WordPiece tokenizer trained on `texts` (most words one piece: short rows, fast tests)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(
        vocab_size=3000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2),
                                                                                             ("[SEP]", 3)])
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    cfg = {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "pad_token": "[PAD]", "unk_token": "[UNK]",
           "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]", "model_max_length": 512}
    (directory / "tokenizer_config.json").write_text(json.dumps(cfg))
    return tok.get_vocab_size()


def ner_backbone(directory: Path) -> Path:
    """A tiny random BERT (genzoo's bert-tiny) with a WordPiece tokenizer of the generated NER sentences, as a
    Hugging Face directory: a backbone for the gliner task that trains in seconds."""
    import genzoo
    from genzoo.data import ner

    texts = [s.text for s in ner.sentences(3000, 0, ner.SEEN + ner.HELD_OUT)] + list(ner.TEMPLATES)
    n = wordpiece(directory / "tok", texts)
    torch.manual_seed(0)
    genzoo.save(genzoo.build("bert-tiny", vocab_size=n), directory / "bert")
    for f in (directory / "tok").iterdir():
        (directory / "bert" / f.name).write_bytes(f.read_bytes())
    return directory / "bert"
