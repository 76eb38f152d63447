"""GGUF metadata fields that llama.cpp treats as optional: their defaults, and a head size given by
`attention.key_length` rather than embedding_length / head_count (files written by the `gguf` package's writer)."""

import torch

import genzoo
from tests.gguf_files import DROP, write_gguf


def test_context_length_defaults_to_2048(tmp_path):
    f = write_gguf(tmp_path / "m.gguf", meta={"llama.context_length": DROP})
    assert genzoo.load(f).config.max_positions == 2048


def test_key_length_sets_a_head_size_the_width_does_not_divide(tmp_path):
    """embedding_length 66 is not a multiple of head_count 4: with attention.key_length 16 the file is valid (a
    head size independent of the width), and loads with the model's logits."""
    torch.manual_seed(0)
    model = genzoo.build("llama-tiny", d_model=66, head_dim=16, tie_embeddings=False).eval()
    f = write_gguf(tmp_path / "m.gguf", model=model, meta={"llama.attention.key_length": 16})
    loaded = genzoo.load(f).eval()
    assert loaded.config.head_dim == 16 and loaded.config.d_model == 66
    ids = torch.randint(0, model.config.vocab_size, (1, 7))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=1e-5)


def test_the_metadata_tokenizer_applies_the_merges_in_their_order(tmp_path):
    """tokenizer.ggml.tokens / merges make a byte-level BPE (as llama.cpp's "gpt2" model): the merges apply in rank
    order, "Ġ" stands for a space, the vocabulary's ids are the token list's indices."""
    from tokenizers.pre_tokenizers import ByteLevel

    from genzoo.interop.gguf import gguf_tokenizer

    tokens = sorted(ByteLevel.alphabet()) + ["he", "ll", "hell", "Ġhell"]
    meta = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.token_type": [1] * len(tokens), "tokenizer.ggml.merges": ["h e", "l l", "he ll"]}
    tok = gguf_tokenizer(write_gguf(tmp_path / "m.gguf", meta=meta))
    ids = tok.encode("hello hell", add_special_tokens=False)
    assert [tokens[i] for i in ids] == ["hell", "o", "Ġ", "hell"]  # no merge "Ġ hell": Ġhell is never formed
    assert tok.decode(ids) == "hello hell"
