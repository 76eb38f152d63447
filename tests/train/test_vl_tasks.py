"""The tasks behind LENS and SPAE under the shared loop (genzoo.train.vl_tasks, spae_task): SPAE training leaves
the frozen LM it reads bitwise unchanged and its codebook equal to the LM's embedding table, runs resume exactly,
and a recipe missing its frozen parts is refused with a clear error."""

import hashlib
import shutil

import pytest
import torch

import genzoo
from genzoo.data.digit_qa import SEMANTIC_WORDS, content_words, related_words, split_words, word_tokenizer
from genzoo.data.digits import all_train_captions
from genzoo.errors import ConfigError
from genzoo.train import load_recipe, train

TINY_SPAE = ["steps=4", "batch_size=16", "save_every=2", "eval_every=2", "keep_checkpoints=2", "progress=false",
             "model.d_model=32", "model.n_layers=1", "model.d_ff=64", "model.semantic_weight=0"]
TINY_LM = ["steps=4", "batch_size=4", "save_every=2", "eval_every=2", "eval_batches=1", "keep_checkpoints=2",
           "progress=false", "model.d_model=32", "model.n_layers=1", "model.d_ff=64", "model.n_heads=2",
           "model.n_kv_heads=2"]


@pytest.fixture(scope="module")
def frozen_lm(tmp_path_factory):
    """A decoder over the digit-QA word vocabulary, saved as a run directory (model + tokenizer)."""
    d = tmp_path_factory.mktemp("lm")
    tok = word_tokenizer()
    torch.manual_seed(0)
    genzoo.save(genzoo.build("llama-tiny", vocab_size=tok.vocab_size, d_model=16, n_layers=1), d)
    tok.save(d)
    return d


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resumed_equals_straight(recipe, sets, tmp_path):
    """Train 4 steps straight (a) and as if killed after the step-2 checkpoint then resumed (b)."""
    train(load_recipe(recipe, sets), tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step-00000004")
    for f in ("model.safetensors", "config.json"):
        (tmp_path / "b" / f).unlink()
    train(load_recipe(recipe, sets), tmp_path / "b", resume=True)
    a, b = genzoo.load(tmp_path / "a"), genzoo.load(tmp_path / "b")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=name)
    return a


@pytest.mark.slow
def test_spae_training_leaves_the_frozen_lm_unchanged_and_resumes_exactly(frozen_lm, tmp_path):
    before = sha(frozen_lm / "model.safetensors")
    spae = resumed_equals_straight("spae-digits", TINY_SPAE + [f"vl.lm={frozen_lm}"], tmp_path)
    assert sha(frozen_lm / "model.safetensors") == before  # bitwise
    lm = genzoo.load(frozen_lm)
    assert torch.equal(spae.codebook, lm.embed.weight)  # the codebook is the LM's table, untouched by training
    tok = word_tokenizer()
    assert {tok.tok.id_to_token(i) for i in spae.allowed.nonzero().squeeze(1).tolist()} == set(content_words())
    ids = spae.tokenize(torch.rand(8, 1, 8, 8) * 2 - 1)
    assert bool(spae.allowed[ids].all())


@pytest.mark.slow
def test_text_qa_resumes_exactly(tmp_path):
    lm = resumed_equals_straight("lens-lm", TINY_LM, tmp_path)
    assert lm.config.vocab_size == word_tokenizer().vocab_size


def test_missing_frozen_parts_are_refused(frozen_lm, tmp_path):
    with pytest.raises(ConfigError, match="needs vl.lm"):
        train(load_recipe("spae-digits", TINY_SPAE), tmp_path / "a")
    with pytest.raises(ConfigError, match="needs vl.clip"):
        train(load_recipe("spae-digits", TINY_SPAE + [f"vl.lm={frozen_lm}", "model.semantic_weight=1.0"]),
              tmp_path / "b")
    with pytest.raises(ConfigError, match="unknown semantic word set 'nope'"):
        train(load_recipe("spae-digits", TINY_SPAE + [f"vl.lm={frozen_lm}", "vl.semantic_words=nope"]), tmp_path / "d")
    with pytest.raises(ConfigError, match="vl.nope"):
        train(load_recipe("spae-digits", TINY_SPAE + [f"vl.lm={frozen_lm}", "vl.nope=1"]), tmp_path / "c")
    with pytest.raises(ConfigError, match="unknown in-context classification layout 'nope'"):
        train(load_recipe("lens-lm", TINY_LM + ["vl.layout=nope"]), tmp_path / "e")
    with pytest.raises(ConfigError, match="summing to <= 1"):
        train(load_recipe("lens-lm", TINY_LM + ["vl.copy=0.5", "vl.qa=0.6"]), tmp_path / "f")
    with pytest.raises(ConfigError, match="qa_attribute_right"):
        train(load_recipe("lens-lm", TINY_LM + ["vl.qa_attribute_right=1.5"]), tmp_path / "g")
    for name in ("copy_first", "classify_next"):
        for bad in ("-1", "2.5", "true"):
            with pytest.raises(ConfigError, match=rf"vl.{name}=.* must be a number of steps >= 0"):
                train(load_recipe("lens-lm", TINY_LM + [f"vl.{name}={bad}"]), tmp_path / "h")
    for bad in ("0", "2.5", "true"):
        with pytest.raises(ConfigError, match=r"vl.length_group=.* must be a number of global batches >= 1"):
            train(load_recipe("lens-lm", TINY_LM + [f"vl.length_group={bad}"]), tmp_path / "i")


def test_text_qa_copy_first_phase(tmp_path):
    """vl.copy_first: the training examples of the first steps (steps x global batch) are copy episodes only;
    vl.classify_next: those of the next steps classification episodes only; the later ones follow the mixture (QA,
    classification, copy, generation), and validation follows the mixture."""
    from genzoo.train.distributed import Dist
    from genzoo.train.vl_tasks import TextQA

    task = TextQA(load_recipe("lens-lm", TINY_LM + ["vl.copy_first=3", "vl.classify_next=2", "vl.copy=0.1",
                                                    "vl.qa=0.75", "vl.classify=0.125"]), tmp_path, Dist())
    g = task.global_batch
    first = {task.example(i, "train")[2] for i in range(3 * g)}
    assert {task.example(i, "train")[2] for i in range(3 * g, 5 * g)} == {"classify"}
    later = [task.example(i, "train")[2] for i in range(5 * g, 5 * g + 400)]
    val = [task.example(i, "val")[2] for i in range(400)]
    assert first == {"copy"}
    assert {"qa", "classify", "copy", "generate"} == set(later) == set(val)
    assert 0.65 < later.count("qa") / len(later) < 0.85  # vl.qa=0.75
    ids, targets, _ = task.example(0, "train")  # a copy episode: every word after the first saying is a target
    span = targets[0] - 1
    assert ids[1 + span:] == ids[1:1 + len(ids) - 1 - span] and targets == list(range(1 + span, len(ids)))


@pytest.mark.parametrize("group", [1, 3])
def test_text_qa_length_group(tmp_path, group):
    """vl.length_group: a batch holds examples of its own group of `length_group` global batches, sorted by length
    over the group; with 1 every batch holds exactly its own examples, in order of length."""
    from genzoo.tokenizers import pad_rows
    from genzoo.train.distributed import Dist
    from genzoo.train.vl_tasks import TextQA

    task = TextQA(load_recipe("lens-lm", TINY_LM + [f"vl.length_group={group}"]), tmp_path, Dist())
    g = task.global_batch
    for k in range(2):
        examples = sorted((task.example(i, "train")[0] for i in range(k * group * g, (k + 1) * group * g)), key=len)
        for j in range(group):
            want = pad_rows(examples[j * g:(j + 1) * g], task.words.bos)[0]
            assert torch.equal(task.next_batch()[0], want)


def test_text_qa_dense_targets():
    """collate marks the given target positions (image-first episodes, copy episodes) or the last n tokens."""
    from genzoo.train.vl_tasks import collate

    ids, mask, labels = collate([([0, 5, 6, 7, 8], [2, 4]), ([0, 9, 3], 1)], pad=0)
    assert labels.tolist() == [[-100, -100, 6, -100, 8], [-100, -100, 3, -100, -100]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]


def test_semantic_word_sets():
    """K_I is ranked among the words the frozen CLIP has read: for a clip-digits CLIP, the content words of its
    training captions, which name every digit by word and numeral."""
    words = SEMANTIC_WORDS.get("clip-captions")()
    seen = {w for caption in all_train_captions() for w in split_words(caption)}
    assert set(words) == seen & set(content_words()) and len(words) == len(set(words))
    assert all(related_words(c) <= set(words) for c in range(10))
    assert not {"apple", "week", "wise", "spider"} & set(words)  # never in a caption: CLIP cannot score them
    assert SEMANTIC_WORDS.get("content")() == content_words()

