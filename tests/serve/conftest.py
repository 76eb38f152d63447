"""Shared fixtures of the `genzoo serve` tests: tiny random checkpoints saved as a user's would be (Hugging Face
directories with the 97-token tokenizer of tests/tiny_tokenizer.py), and servers on loopback ports."""

import contextlib

import pytest
import torch

from ..hf_models import tiny_bert, tiny_hf
from ..tiny_tokenizer import char_tokenizer

CHAT_TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
                 "{% if add_generation_prompt %}<s>assistant:{% endif %}")
KEY = "sk-genzoo-test"


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One torch thread: tiny models decode several times faster so on a busy 2-core machine (two threads spin
    against each other and the server's own threads)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_lm_dir(path, arch: str = "llama", seed: int = 0):
    torch.manual_seed(seed)
    tiny_hf(arch).save_pretrained(path)
    char_tokenizer(path, chat_template=CHAT_TEMPLATE)
    return path


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory):
    return tiny_lm_dir(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bert")
    torch.manual_seed(0)
    tiny_bert().save_pretrained(d)
    char_tokenizer(d, wrap=True)
    return d


@contextlib.contextmanager
def serving(served, **settings):
    """(url, app) of a server on a free loopback port; `served` is a path or a `Served`."""
    from genzoo.serve import BackgroundServer, ServeSettings, create_app, load_served

    if not hasattr(served, "capabilities"):
        served = load_served(served)
    app = create_app(served, ServeSettings(**settings))
    with BackgroundServer(app) as url:
        yield url, app


def collect(events):
    """The text and the finish of a scheduler request's events."""
    return "".join(v for k, v in events if k == "text"), events[-1]
