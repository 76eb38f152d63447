"""The FuseLLM pipeline on tiny random-weight sources of three tokenizer families: precomputed shards (the
distributions sum to 1, the fallback is the next gold token, resumable, refused when the inputs differ), exact
resume of the target's training, `genzoo fuse` end to end, and the bad inputs the issue names."""

import json

import pytest
import torch
from safetensors import safe_open

import genzoo
from genzoo.cli import main
from genzoo.data.domains import domain_corpus
from genzoo.errors import ConfigError, InputError
from genzoo.fuse import FusionShards, precompute, prepare
from genzoo.fuse.chunks import make_chunks
from genzoo.tokenizers import Tokenizer, train_bpe, train_sentencepiece_bpe
from genzoo.train import load_recipe, train

pytestmark = pytest.mark.slow
TINY = dict(d_model=32, n_layers=1, n_heads=2, d_ff=64)
RECIPE = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.d_ff=64", "batch_size=4",
          "warmup_steps=1", "eval_batches=1", "data.max_bytes=6000", "data.vocab_size=300", "progress=false",
          "fuse.shard_size=8"]


def _source(directory, preset, tokenizer, **fields):
    model = genzoo.build(preset, vocab_size=tokenizer.vocab_size, **{**TINY, **fields})
    genzoo.save(model, directory)
    tokenizer.save(directory)
    return directory


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuse")
    torch.manual_seed(0)
    texts = [t[:2500] for t in domain_corpus("stdlib/text+net+num/fuse", max_bytes=6000).read("train")]
    target = train_bpe(texts, 300)
    sources = [_source(root / "bytes", "gpt2-tiny", train_bpe(texts, 257), max_positions=512),
               _source(root / "sp", "llama-tiny", train_sentencepiece_bpe(texts, 400), max_positions=512),
               _source(root / "bpe", "mistral-tiny", train_bpe(texts, 350), max_positions=512)]
    chunks = make_chunks(texts, target, 65, 256)
    topk = root / "topk"
    manifest = precompute(sources, target, chunks, topk, top_k=4, shard_size=8, max_len=65, progress=False)
    return {"root": root, "texts": texts, "target": target, "sources": sources, "chunks": chunks, "topk": topk,
            "manifest": manifest}


def test_shards_hold_distributions_that_sum_to_one(world):
    shards = FusionShards(world["topk"])
    assert shards.n == len(world["chunks"]) and shards.n_sources == 3 and world["manifest"]["complete"]
    rows = shards.rows(list(range(8)))  # the first shard
    b, s, t, k = rows["ids"].shape
    assert (s, t, k) == (3, 64, 4) and rows["input_ids"].shape == (b, 65)
    real = torch.arange(t)[None, :] < (rows["length"] - 1)[:, None]  # (b, t)
    dense = torch.zeros(b, s, t, 300).scatter_add_(-1, rows["ids"], rows["probs"])
    torch.testing.assert_close(dense.sum(-1)[real[:, None].expand(b, s, t)], torch.ones(int(real.sum()) * s))
    assert torch.isfinite(rows["ce"]).all() and (rows["ce"] > 0).all()
    with safe_open(str(world["topk"] / "src-0" / "shard-00000.safetensors"), "pt") as f:
        aligned = f.get_tensor("aligned_mined").bool()[: b]
    gold = rows["input_ids"][:, 1:]  # where the source was not used: one-hot on the next gold token
    fallback = ~aligned & real[: aligned.shape[0]]
    assert fallback.any()
    assert (dense[:, 0][fallback].argmax(-1) == gold[fallback]).all()
    for r in shards.alignment_rates():
        assert 0 < r["exact"] <= r["mined"] <= 1


def test_precompute_resumes_and_refuses_other_inputs(world):
    topk = world["topk"]
    shard = topk / "src-1" / "shard-00001.safetensors"
    before = shard.read_bytes()
    other = topk / "src-0" / "shard-00000.safetensors"
    stamp = other.stat().st_mtime_ns
    shard.unlink()
    precompute(world["sources"], world["target"], world["chunks"], topk, top_k=4, shard_size=8, max_len=65,
               progress=False)
    assert shard.read_bytes() == before and other.stat().st_mtime_ns == stamp  # only the missing shard
    with pytest.raises(ConfigError, match="top_k"):
        precompute(world["sources"], world["target"], world["chunks"], topk, top_k=5, shard_size=8, max_len=65)


def test_shards_of_an_older_alignment_are_refused(world, tmp_path):
    import shutil

    from genzoo.errors import CheckpointError
    from genzoo.fuse.shards import VERSION

    assert world["manifest"]["version"] == VERSION == 2
    stale = tmp_path / "topk"
    shutil.copytree(world["topk"], stale)
    manifest = json.loads((stale / "manifest.json").read_text())
    (stale / "manifest.json").write_text(json.dumps({**manifest, "version": 1}))
    with pytest.raises(CheckpointError, match=r"manifest version 1, written by an older token alignment.*remove"):
        FusionShards(stale)  # training refuses them
    before = (stale / "src-0" / "shard-00000.safetensors").read_bytes()
    with pytest.raises(ConfigError, match=r"manifest version 1.*version 2.*rebuild"):
        precompute(world["sources"], world["target"], world["chunks"], stale, top_k=4, shard_size=8, max_len=65,
                   progress=False)  # and so does resuming into them: nothing is mixed
    assert (stale / "src-0" / "shard-00000.safetensors").read_bytes() == before
    shutil.rmtree(stale)  # removed, they are rebuilt
    assert precompute(world["sources"], world["target"], world["chunks"], stale, top_k=4, shard_size=8, max_len=65,
                      progress=False)["version"] == 2
    assert FusionShards(stale).n == len(world["chunks"])


def test_target_training_resumes_exactly(world, tmp_path):
    import shutil

    sets = RECIPE + [f"fuse.shards={world['topk']}", "save_every=2", "eval_every=2", "keep_checkpoints=2", "steps=4"]
    train(load_recipe("fusellm-target", sets), tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # b: as if killed after its step-2 checkpoint
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step-00000004")
    for f in ("model.safetensors", "config.json"):
        (tmp_path / "b" / f).unlink()
    train(load_recipe("fusellm-target", sets), tmp_path / "b", resume=True)
    a, b = genzoo.load(tmp_path / "a"), genzoo.load(tmp_path / "b")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=name)
    log = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert any("val_bpc" in r for r in log)


def test_min_ce_and_clm_arms_train_differently(world, tmp_path):
    sets = RECIPE + [f"fuse.shards={world['topk']}", "steps=2", "save_every=2", "eval_every=2"]
    for method in ("none", "min-ce"):
        train(load_recipe("fusellm-target", sets + [f"fuse.method={method}"]), tmp_path / method)
    a, b = genzoo.load(tmp_path / "none"), genzoo.load(tmp_path / "min-ce")
    assert not torch.equal(a.lm_head.weight, b.lm_head.weight)


def test_genzoo_fuse_end_to_end(world, tmp_path, capsys):
    out = tmp_path / "run"
    (tmp_path / "text").mkdir()
    for i, t in enumerate(world["texts"][:3]):
        (tmp_path / "text" / f"doc{i}.py").write_text(t[:1500])
    args = ["fuse", *sum((["--source", str(s)] for s in world["sources"]), []), "--target", "fusellm-target",
            "--text", str(tmp_path / "text"), "--out", str(out), "--steps", "2", "--no-progress",
            *sum((["--set", s] for s in RECIPE), []),
            "--set", "save_every=2", "--set", "eval_every=2"]
    assert main(args) == 0
    assert "fused 3 sources" in capsys.readouterr().out
    manifest = json.loads((out / "topk" / "manifest.json").read_text())
    assert (out / "model.safetensors").exists() and manifest["complete"] and manifest["n_sequences"] >= 3
    assert Tokenizer.from_dir(out).vocab_size == 300


def test_a_source_that_is_not_a_causal_lm_is_refused(world, tmp_path, capsys):
    bert = genzoo.build("bert-tiny")
    genzoo.save(bert, tmp_path / "bert")
    world["target"].save(tmp_path / "bert")
    with pytest.raises(ConfigError, match="not a causal language model"):
        precompute([tmp_path / "bert"], world["target"], world["chunks"], tmp_path / "x")
    assert main(["fuse", "--source", str(tmp_path / "bert"), "--target", "fusellm-target", "--out",
                 str(tmp_path / "y"), "--no-progress", *sum((["--set", s] for s in RECIPE), [])]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a causal language model" in err[0]


def test_a_source_with_no_common_token_string_is_refused(world, tmp_path):
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers

    greek = {c: i for i, c in enumerate("αβγδεζηθικλμνξοπρστυφχψω")}  # no string of the target's vocabulary
    hf = HFTokenizer(models.WordLevel(greek, unk_token="α"))
    hf.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    _source(tmp_path / "greek", "llama-tiny", Tokenizer(hf, eos_token=None))
    with pytest.raises(ConfigError, match="shares no token string"):
        precompute([tmp_path / "greek"], world["target"], world["chunks"], tmp_path / "x")


def test_empty_text_is_refused(world, tmp_path, capsys):
    with pytest.raises(InputError, match="empty"):
        make_chunks(["", " \n\n "], world["target"], 65, 256)
    (tmp_path / "empty.txt").write_text(" \n\n")
    with pytest.raises(InputError, match="empty"):
        prepare(world["sources"], load_recipe("fusellm-target", RECIPE), tmp_path / "z",
                texts=[(tmp_path / "empty.txt").read_text()])
    assert main(["fuse", "--source", str(world["sources"][0]), "--target", "fusellm-target", "--text",
                 str(tmp_path / "empty.txt"), "--out", str(tmp_path / "y"), *sum((["--set", s] for s in RECIPE), [])]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the given text is empty" in err[0]
    with pytest.raises(ConfigError, match="task 'fuse'"):
        prepare(world["sources"], load_recipe("gpt-nano"), tmp_path / "w")


def test_a_hugging_face_source_scores_as_transformers_does(world, tmp_path):
    import transformers as tf

    from genzoo.fuse.sources import load_source, score

    tok = train_bpe(world["texts"], 320)
    cfg = tf.MistralConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, sliding_window=16)
    hf = tf.MistralForCausalLM(cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    tok.save(tmp_path / "hf")
    text = world["chunks"][0].text
    got = score(load_source(tmp_path / "hf"), [text], top_k=4)[0]
    ids = torch.tensor([tok.encode(text)])
    with torch.no_grad():
        logp = torch.log_softmax(hf(ids).logits[0].float(), -1)
    want_p, want_i = logp.topk(4, -1)
    torch.testing.assert_close(got.topk_probs, want_p.exp(), atol=1e-5, rtol=0)
    assert (got.topk_ids == want_i).all()
    torch.testing.assert_close(torch.tensor(got.nll), -logp[:-1].gather(1, ids[0, 1:, None]).sum(), atol=1e-4, rtol=0)
    manifest = precompute([tmp_path / "hf", world["sources"][0]], world["target"], world["chunks"][:8],
                          tmp_path / "topk", top_k=4, shard_size=8, max_len=65, progress=False)
    assert manifest["complete"] and manifest["sources"][0]["overlap"] > 0
