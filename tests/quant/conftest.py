"""A tiny decoder trained on real text (the standard-library corpus, a byte-level BPE), shared by the quantization
tests: quantization is judged on a model whose predictions mean something, not on random weights."""

import pytest
import torch

import genzoo
from genzoo.data import stdlib_corpus
from genzoo.tokenizers import train_bpe
from genzoo.train.data import token_stream


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(run directory with model + tokenizer, model, held-out (B, T) token blocks)."""
    corpus = stdlib_corpus(max_bytes=150_000, val_percent=10.0)
    train_texts, val_texts = corpus.read("train"), corpus.read("val")
    tok = train_bpe(train_texts, 320)
    data, val = token_stream(tok, train_texts), token_stream(tok, val_texts)
    torch.manual_seed(0)
    model = genzoo.build("gpt2-tiny", vocab_size=tok.vocab_size, d_model=64, n_layers=2, n_heads=4, d_ff=256,
                         max_positions=64, bos_token_id=tok.eos_id, eos_token_id=tok.eos_id)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    t = 48
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-wide model gains nothing from a second thread, and a busy machine costs it much
    for _ in range(200):
        starts = torch.randint(0, data.numel() - t - 1, (16,), generator=g)
        x = torch.stack([data[s:s + t] for s in starts.tolist()])  # (16, T)
        loss = model(x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    model.eval()
    run = tmp_path_factory.mktemp("quant") / "run"
    genzoo.save(model, run, extra_files=tok.save)
    n = (val.numel() // t) * t
    blocks = val[:n].view(-1, t)[:16]  # (16, T) held-out text
    return run, model, blocks
