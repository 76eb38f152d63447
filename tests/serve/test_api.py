"""The HTTP API of `genzoo serve` on a loopback port (httpx): OpenAI's completion and chat shapes with streaming;
bad input gets the right 4xx naming the field and the server stays up; the API key, the body limit, CORS off
by default; 429 when the queue is full; a client that disconnects frees its row; each route only where the
model supports it."""

import asyncio
import base64
import io
import json
import time

import httpx
import numpy as np
import pytest
import torch

import genzoo
from genzoo.tokenizers import Tokenizer

from .conftest import KEY, serving

H = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def lm(llama_dir):
    with serving(llama_dir, api_key=KEY, max_batch=4, max_tokens=64, model_name="llama") as (url, app):
        yield url


def post(url, path, body, headers=H, **kw):
    return httpx.post(url + path, json=body, headers=headers, timeout=60, **kw)


def sse(url, path, body):
    """The parsed `data:` events of a streamed answer, and whether it ended with [DONE]."""
    events, done = [], False
    with httpx.stream("POST", url + path, json={**body, "stream": True}, headers=H, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                if line == "data: [DONE]":
                    done = True
                else:
                    events.append(json.loads(line[6:]))
    return events, done


def greedy(llama_dir, prompt, n, chat=False):
    model, tok = genzoo.load(llama_dir), Tokenizer.load(llama_dir)
    ids = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True) if chat else tok.encode(prompt)
    out = model.generate(torch.tensor([ids]), max_new_tokens=n, eos_token_id=1)[0, len(ids):].tolist()
    return tok.decode([t for t in out if t != 1], skip_special_tokens=True)


def test_completions_and_chat(lm, llama_dir):
    body = {"model": "llama", "prompt": "the cab", "max_tokens": 12, "temperature": 0}
    r = post(lm, "/v1/completions", body)
    assert r.status_code == 200, r.text
    out = r.json()
    text = out["choices"][0]["text"]
    assert out["object"] == "text_completion" and text == greedy(llama_dir, "the cab", 12)
    assert out["usage"]["completion_tokens"] == 12 and out["choices"][0]["finish_reason"] == "length"

    events, done = sse(lm, "/v1/completions", {**body, "stream_options": {"include_usage": True}})
    pieces = [e["choices"][0]["text"] for e in events if e["choices"]]
    assert done and len([p for p in pieces if p]) > 1 and "".join(pieces) == text  # token by token, same text
    assert events[-2]["choices"][0]["finish_reason"] == "length" and events[-1]["usage"]["completion_tokens"] == 12

    echo = post(lm, "/v1/completions", {**body, "echo": True}).json()["choices"][0]["text"]
    assert echo == "the cab" + text
    cut = text[3:5]  # a stop string inside the greedy text: the text ends before it
    stopped = post(lm, "/v1/completions", {**body, "stop": [cut, "never"]}).json()["choices"][0]
    assert stopped["text"] == text[:text.find(cut)] and stopped["finish_reason"] == "stop"
    ids = Tokenizer.load(llama_dir).encode("the cab")
    two = post(lm, "/v1/completions", {**body, "prompt": [ids, ids[:2]]}).json()["choices"]  # token ids
    assert [c["index"] for c in two] == [0, 1] and two[0]["text"] == text
    assert post(lm, "/v1/completions", {**body, "prompt": ["x", "the cab"]}).json()["choices"][1]["text"] == text
    sampled = {"prompt": "the cab", "max_tokens": 8, "temperature": 0.9, "top_k": 30, "n": 2, "seed": 5}
    a, b = (post(lm, "/v1/completions", sampled).json()["choices"] for _ in range(2))
    assert a == b and a[0]["text"] != a[1]["text"]  # seeded: reproducible; the n choices differ

    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]
    chat = {"messages": messages, "max_tokens": 10, "temperature": 0}
    r = post(lm, "/v1/chat/completions", chat)
    assert r.status_code == 200, r.text
    reply = r.json()["choices"][0]["message"]
    assert reply["role"] == "assistant" and reply["content"] == greedy(llama_dir, messages, 10, chat=True)
    pipe = genzoo.pipeline("text-generation", llama_dir)(messages, max_new_tokens=10)
    assert pipe[0]["generated_text"][-1]["content"] == reply["content"]
    events, done = sse(lm, "/v1/chat/completions", chat)
    assert done and events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == reply["content"]
    parts = {**chat, "messages": [messages[0], {"role": "user", "content": [{"type": "text", "text": "hi there"}]}]}
    assert post(lm, "/v1/chat/completions", parts).json()["choices"][0]["message"] == reply


BAD = [  # (what, method, path, headers, json or raw content, status, field named)
    ("wrong key", "POST", "/v1/completions", {"Authorization": "Bearer nope"}, {"prompt": "x"}, 401, None),
    ("no key", "POST", "/v1/completions", {}, {"prompt": "x"}, 401, None),
    ("no key, health", "GET", "/health", {}, None, 401, None),
    ("no key, models", "GET", "/v1/models", {}, None, 401, None),
    ("max_tokens type", "POST", "/v1/completions", H, {"prompt": "x", "max_tokens": "ten"}, 422, "max_tokens"),
    ("temperature type", "POST", "/v1/completions", H, {"prompt": "x", "temperature": "hot"}, 422, "temperature"),
    ("prompt type", "POST", "/v1/completions", H, {"prompt": 3}, 422, "prompt"),
    ("no prompt", "POST", "/v1/completions", H, {"max_tokens": 3}, 422, "prompt"),
    ("stream type", "POST", "/v1/completions", H, {"prompt": "x", "stream": "yes"}, 422, "stream"),
    ("top_p range", "POST", "/v1/completions", H, {"prompt": "x", "top_p": 1.5}, 422, "top_p"),
    ("negative max_tokens", "POST", "/v1/completions", H, {"prompt": "x", "max_tokens": -1}, 422, "max_tokens"),
    ("huge max_tokens", "POST", "/v1/completions", H, {"prompt": "x", "max_tokens": 10 ** 9}, 400, "max_tokens"),
    ("past the context", "POST", "/v1/completions", H, {"prompt": "xy" * 60, "max_tokens": 4}, 400, "prompt"),
    ("too many choices", "POST", "/v1/completions", H, {"prompt": "x", "n": 100}, 400, "n"),
    ("token id range", "POST", "/v1/completions", H, {"prompt": [5, 9999]}, 400, "prompt"),
    ("logprobs", "POST", "/v1/completions", H, {"prompt": "x", "logprobs": 2}, 400, "logprobs"),
    ("logit_bias key", "POST", "/v1/completions", H, {"prompt": "x", "logit_bias": {"a": 1}}, 400, "logit_bias"),
    ("empty stop", "POST", "/v1/completions", H, {"prompt": "x", "stop": [""]}, 400, "stop"),
    ("wrong model", "POST", "/v1/completions", H, {"model": "gpt-4", "prompt": "x"}, 404, "model"),
    ("messages type", "POST", "/v1/chat/completions", H, {"messages": "hi"}, 422, "messages"),
    ("empty messages", "POST", "/v1/chat/completions", H, {"messages": []}, 422, "messages"),
    ("no role", "POST", "/v1/chat/completions", H, {"messages": [{"content": "hi"}]}, 422, "messages[0].role"),
    ("unknown role", "POST", "/v1/chat/completions", H, {"messages": [{"role": "bot", "content": "hi"}]}, 422,
     "messages[0].role"),
    ("tools", "POST", "/v1/chat/completions", H,
     {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}, 400, "tools"),
    ("image part", "POST", "/v1/chat/completions", H,
     {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, 400,
     "messages[0].content"),
    ("invalid JSON", "POST", "/v1/completions", H, b'{"prompt": "x",', 400, None),
    ("no body", "POST", "/v1/completions", H, b"", 400, None),
    ("body not an object", "POST", "/v1/completions", H, [1, 2], 422, None),
    ("too large", "POST", "/v1/completions", H, b'{"prompt": "' + b"a" * (3 << 20) + b'"}', 413, None),
    ("embeddings of an LM", "POST", "/v1/embeddings", H, {"input": "x"}, 404, None),
    ("images of an LM", "POST", "/v1/images", H, {"n": 1}, 404, None),
    ("unknown route", "POST", "/v1/nothing", H, {}, 404, None),
    ("wrong method", "GET", "/v1/completions", H, None, 405, None),
]


@pytest.mark.parametrize("what, method, path, headers, body, status, field", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_the_right_4xx(lm, what, method, path, headers, body, status, field):
    kw = {"content": body, "headers": {**headers, "Content-Type": "application/json"}} if isinstance(body, bytes) \
        else {"json": body, "headers": headers}
    r = httpx.request(method, lm + path, timeout=60, **kw)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and err["type"]
    if field is not None:
        assert err["param"] == field and field.split("[")[0] in err["message"], err
    if status == 401:
        assert "API key" in err["message"] and r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(lm + "/health", headers=H).json()["status"] == "ok"  # still up


def test_the_page_needs_no_key_and_cors_is_off(lm):
    r = httpx.get(lm + "/")
    assert r.status_code == 200 and "<title>genzoo serve</title>" in r.text
    assert httpx.get(lm + "/static/app.js").status_code == 200
    r = httpx.get(lm + "/v1/models", headers={**H, "Origin": "http://elsewhere.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    info = r.json()["data"][0]
    assert info["id"] == "llama" and info["genzoo"]["capabilities"] == ["completions", "chat"]


def test_cors_when_asked(llama_dir):
    with serving(llama_dir, cors_origins=["http://ok.example"]) as (url, _):
        pre = httpx.options(url + "/v1/completions", headers={"Origin": "http://ok.example",
                                                               "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "http://ok.example"
        other = httpx.get(url + "/health", headers={"Origin": "http://elsewhere.example"})
        assert "access-control-allow-origin" not in other.headers


@pytest.fixture(scope="module")
def long_dir(tmp_path_factory):
    """A small random Llama (10M parameters, ~10 ms a token on one CPU thread) with a 4096-token context: a
    request that holds the only row for tens of seconds, far longer than the test needs it."""
    from ..tiny_tokenizer import char_tokenizer

    d = tmp_path_factory.mktemp("long")
    torch.manual_seed(0)
    genzoo.save(genzoo.build("llama-tiny", vocab_size=97, max_positions=4096, d_model=512, d_ff=1024,
                            n_layers=4, eos_token_id=1), d)
    char_tokenizer(d)
    return d


def test_full_queue_gets_429_and_disconnects_free_rows(long_dir):
    with serving(long_dir, max_batch=1, max_queue=1, max_tokens=4000, max_context=4096) as (url, app):
        sched = app.state.serve["scheduler"]
        long = {"prompt": "the cab", "max_tokens": 4000, "temperature": 0, "ignore_eos": True}
        with httpx.stream("POST", url + "/v1/completions", json={**long, "stream": True}, timeout=60) as r:
            lines = r.iter_lines()  # kept: leaving the loop would close httpx's stream (a disconnect)
            while not next(lines).startswith("data: "):
                pass  # the one row is decoding this request; this client now stops reading (the socket fills up)
            assert len(sched.rows) == 1 and not sched.pending

            async def first_waits():  # one request waits; its client stops waiting after 0.3 s
                async with httpx.AsyncClient(timeout=0.3) as http:
                    return await asyncio.gather(http.post(url + "/v1/completions", json=long),
                                                return_exceptions=True)

            gone = asyncio.run(first_waits())[0]
            assert isinstance(gone, httpx.ReadTimeout) and len(sched.rows) == 1
            deadline = time.monotonic() + 20
            while sched.pending and time.monotonic() < deadline:  # the server sees it and drops it
                time.sleep(0.05)
            assert not sched.pending and sched.stats.cancelled == 1
            busy = {**long, "max_tokens": 3}

            async def overload():  # one waits, the rest find the queue full
                async with httpx.AsyncClient(timeout=0.5) as http:
                    return await asyncio.gather(*(http.post(url + "/v1/completions", json=busy)
                                                  for _ in range(4)), return_exceptions=True)

            codes = [r.status_code if isinstance(r, httpx.Response) else "timeout" for r in asyncio.run(overload())]
            assert codes.count(429) == 3 and codes.count("timeout") == 1, codes
            deadline = time.monotonic() + 20
            while sched.pending and time.monotonic() < deadline:  # the one that waited is dropped too
                time.sleep(0.05)
            assert not sched.pending and sched.stats.cancelled == 2 and len(sched.rows) == 1
        # the stream's client has gone: its row is freed before the next step, and the server goes on
        deadline = time.monotonic() + 20
        while (sched.rows or sched.pending) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not sched.rows and not sched.pending and sched.stats.cancelled == 3
        assert sched.stats.tokens < 2000  # the 4000-token request stopped early
        # a whole answer being decoded (its tokens arriving all the time) whose client gives up frees its row too
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/v1/completions", json=long, timeout=1.0)
        deadline = time.monotonic() + 20
        while sched.rows and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not sched.rows and sched.stats.cancelled == 4 and sched.stats.tokens < 3000
        r = httpx.post(url + "/v1/completions", json={**long, "max_tokens": 3}, timeout=60)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3


def _png(array) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_embeddings_route(bert_dir):
    model, tok = genzoo.load(bert_dir), Tokenizer.load(bert_dir)
    texts = ["the cab", "a cab", "Hello there"]
    with serving(bert_dir) as (url, app):
        r = post(url, "/v1/embeddings", {"input": texts}, headers={})
        assert r.status_code == 200, r.text
        got = torch.tensor([d["embedding"] for d in r.json()["data"]])
        torch.testing.assert_close(got, model.encode(texts, tok), rtol=0, atol=1e-5)
        b64 = post(url, "/v1/embeddings", {"input": texts[0], "encoding_format": "base64"}, headers={}).json()
        vec = np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), dtype="<f4")
        torch.testing.assert_close(torch.from_numpy(vec.copy()), got[0], rtol=0, atol=1e-6)
        assert post(url, "/v1/embeddings", {"input": ""}, headers={}).status_code == 400
        assert post(url, "/v1/embeddings", {"input": "x", "dimensions": 7}, headers={}).json()["error"]["param"] == \
            "dimensions"
        r = post(url, "/v1/completions", {"prompt": "x"}, headers={})
        assert r.status_code == 404 and "cannot generate text" in r.json()["error"]["message"]

        async def together():  # concurrent requests share one encoder call when they wait together
            async with httpx.AsyncClient(timeout=60) as http:
                return await asyncio.gather(*(http.post(url + "/v1/embeddings", json={"input": [t] * 3})
                                              for t in texts * 4))

        rs = asyncio.run(together())
        assert all(r.status_code == 200 for r in rs)
        for r, t in zip(rs, texts * 4):
            torch.testing.assert_close(torch.tensor(r.json()["data"][2]["embedding"]), got[texts.index(t)],
                                       rtol=0, atol=1e-5)


def test_images_route(tmp_path):
    genzoo.save(genzoo.build("ddpm-tiny"), tmp_path)
    with serving(tmp_path) as (url, _):
        info = httpx.get(url + "/v1/models").json()["data"][0]["genzoo"]
        assert info["capabilities"] == ["images"]
        body = {"labels": [0, 3], "steps": 4, "seed": 1, "scale": 3}
        r = post(url, "/v1/images", body, headers={})
        assert r.status_code == 200, r.text
        from PIL import Image

        imgs = [Image.open(io.BytesIO(base64.b64decode(d["b64_json"]))) for d in r.json()["data"]]
        size = info["image_size"] * 3
        assert [im.size for im in imgs] == [(size, size)] * 2 and [d["label"] for d in r.json()["data"]] == [0, 3]
        assert post(url, "/v1/images", body, headers={}).json()["data"] == r.json()["data"]  # seeded
        for bad, field in [({"labels": [0], "n": 2}, "labels"), ({"labels": [99]}, "labels"),
                           ({"n": 1, "steps": 5000}, "steps"), ({"n": 100}, "n"), ({"n": 1, "steps": 0}, "steps")]:
            r = post(url, "/v1/images", bad, headers={})
            assert r.status_code in (400, 422) and r.json()["error"]["param"] == field, (bad, r.text)


def test_classify_route(tmp_path):
    import transformers as tf

    from ..hf_models import tiny_clip
    from ..tiny_tokenizer import char_tokenizer

    tiny_clip(eos_token_id=1, bos_token_id=3).save_pretrained(tmp_path)
    char_tokenizer(tmp_path, wrap=True)
    tf.CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}).save_pretrained(tmp_path)
    image = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    labels = ["cab", "the", "ab"]
    from PIL import Image

    want = genzoo.pipeline("zero-shot-image-classification", tmp_path)(Image.fromarray(image), labels)
    with serving(tmp_path) as (url, _):
        r = post(url, "/v1/classify", {"image": "data:image/png;base64," + _png(image), "labels": labels}, headers={})
        assert r.status_code == 200, r.text
        got = r.json()["labels"]
        assert [g["label"] for g in got] == [w["label"] for w in want]
        assert [g["score"] for g in got] == pytest.approx([w["score"] for w in want], abs=1e-6)
        for bad, field in [({"image": "%%%", "labels": labels}, "image"),
                           ({"image": base64.b64encode(b"not a picture").decode(), "labels": labels}, "image"),
                           ({"image": _png(image), "labels": []}, "labels"),
                           ({"image": _png(image), "labels": labels, "template": "no slot"}, "template")]:
            r = post(url, "/v1/classify", bad, headers={})
            assert r.status_code in (400, 422) and r.json()["error"]["param"] == field, (bad, r.text)


class StubNER(torch.nn.Module):
    """A stand-in for a span NER model (GLiNER's `predict_entities` contract: character offsets, label, score):
    every occurrence of a label's text is an entity of that label."""

    def predict_entities(self, text, labels, threshold=0.5, flat_ner=True, multi_label=False):
        out = []
        for label in labels:
            at = text.find(label)
            if at >= 0:
                out.append({"start": at, "end": at + len(label), "text": label, "label": label, "score": 0.9})
        return [e for e in out if e["score"] >= threshold]


def test_ner_route_by_capability():
    from genzoo.serve import Served

    served = Served("stub-ner", "", StubNER(), capabilities=["ner"])
    with serving(served) as (url, _):
        r = post(url, "/v1/ner", {"text": "Paris is in France", "labels": ["France", "Rome"]}, headers={})
        assert r.status_code == 200, r.text
        assert r.json()["entities"] == [{"start": 12, "end": 18, "text": "France", "label": "France", "score": 0.9}]
        assert post(url, "/v1/ner", {"text": "x", "labels": ["a"], "threshold": 0.95}, headers={}).json()[
            "entities"] == []
        assert post(url, "/v1/ner", {"text": "", "labels": ["a"]}, headers={}).json()["error"]["param"] == "text"
        assert post(url, "/v1/ner", {"text": "x", "labels": []}, headers={}).json()["error"]["param"] == "labels"
        assert post(url, "/v1/completions", {"prompt": "x"}, headers={}).status_code == 404


def test_index_route(tmp_path, bert_dir):
    from genzoo.index import Embedder, Index, read_source

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "cab.txt").write_text("the cab is yellow and the cab is fast")
    (docs / "sea.txt").write_text("Hello there, the sea is deep")
    (docs / "ab.txt").write_text("ab cd ab cd ab")
    model, tok = genzoo.load(bert_dir), Tokenizer.load(bert_dir)
    idx = Index.create(tmp_path / "docs.index", Embedder(model, tok, name=str(bert_dir)), chunk=16, overlap=2)
    idx.add(read_source(docs))
    want = [h.to_dict() for h in idx.query("a yellow cab", k=2)]
    idx.close()
    with serving(tmp_path / "docs.index") as (url, _):
        caps = httpx.get(url + "/v1/models").json()["data"][0]["genzoo"]["capabilities"]
        assert caps == ["embeddings", "index"]
        r = post(url, "/v1/index/query", {"query": "a yellow cab", "k": 2}, headers={})
        assert r.status_code == 200, r.text
        assert r.json()["data"][0]["hits"] == want
        emb = post(url, "/v1/embeddings", {"input": "the cab"}, headers={}).json()["data"][0]["embedding"]
        torch.testing.assert_close(torch.tensor(emb), model.encode(["the cab"], tok)[0], rtol=0, atol=1e-5)
        assert post(url, "/v1/index/query", {"query": "x", "k": 0}, headers={}).json()["error"]["param"] == "k"
        assert post(url, "/v1/index/query", {"query": " "}, headers={}).json()["error"]["param"] == "query"
    with serving(bert_dir) as (url, _):  # an encoder without --index
        r = post(url, "/v1/index/query", {"query": "x"}, headers={})
        assert r.status_code == 404 and "/v1/index/query" in r.json()["error"]["message"]
