"""`genzoo serve`: the command's defaults (127.0.0.1:8000, no key, CORS off), its options reaching the app, the API
key from --api-key or GENZOO_API_KEY, a warning when it listens beyond this machine without a key, and one line on
stderr for bad arguments; then the app it builds answers over loopback."""

import httpx
import pytest

import genzoo.serve
from genzoo.cli import main
from genzoo.serve import BackgroundServer


@pytest.fixture
def started(monkeypatch):
    """What `genzoo serve` would run: (app, host, port), instead of running uvicorn in the foreground."""
    calls = []
    monkeypatch.setattr(genzoo.serve, "run", lambda app, host, port: calls.append((app, host, port)))
    monkeypatch.delenv("GENZOO_API_KEY", raising=False)
    return calls


def test_defaults_are_loopback_no_key_no_cors(started, llama_dir, capsys):
    assert main(["serve", str(llama_dir), "--threads", "1"]) == 0
    (app, host, port), = started
    s = app.state.settings
    assert (host, port, s.host, s.api_key, s.cors_origins) == ("127.0.0.1", 8000, "127.0.0.1", None, [])
    err = capsys.readouterr().err
    assert "http://127.0.0.1:8000" in err and "completions, chat" in err and "warning" not in err
    with BackgroundServer(app) as url:
        assert httpx.get(url + "/health").json()["status"] == "ok"
        assert httpx.get(url + "/v1/models").json()["data"][0]["id"] == llama_dir.name


def test_options_reach_the_app(started, llama_dir, capsys, monkeypatch):
    argv = ["serve", str(llama_dir), "--host", "0.0.0.0", "--port", "9123", "--model-name", "tiny", "--max-batch",
            "3", "--max-queue", "5", "--max-tokens", "7", "--max-context", "64", "--cors-origin", "http://a.example"]
    monkeypatch.setenv("GENZOO_API_KEY", "from-env")
    assert main(argv) == 0
    app, host, port = started[-1]
    s = app.state.settings
    assert (host, port, s.model_name, s.max_batch, s.max_queue, s.max_tokens, s.max_context) == (
        "0.0.0.0", 9123, "tiny", 3, 5, 7, 64)
    assert s.api_key == "from-env" and s.cors_origins == ["http://a.example"]
    assert "warning" not in capsys.readouterr().err  # a key is set
    with BackgroundServer(app) as url:
        assert httpx.get(url + "/v1/models").status_code == 401
        r = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer from-env"})
        assert r.json()["data"][0]["id"] == "tiny"
        r = httpx.post(url + "/v1/completions", json={"prompt": "x", "max_tokens": 8},
                       headers={"Authorization": "Bearer from-env"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"

    monkeypatch.delenv("GENZOO_API_KEY")
    assert main(["serve", str(llama_dir), "--host", "0.0.0.0"]) == 0
    assert "warning: listening on 0.0.0.0 without --api-key" in capsys.readouterr().err
    assert main(["serve", str(llama_dir), "--api-key", "k"]) == 0 and started[-1][0].state.settings.api_key == "k"


@pytest.mark.parametrize("argv, says", [
    (["--max-batch", "0"], "max_batch=0"),
    (["--port", "70000"], "port=70000"),
    (["--api-key", " "], "api_key is empty"),
    (["--threads", "0"], "--threads 0"),
    (["--port", "eight"], "--port"),
])
def test_bad_arguments_are_one_line(started, llama_dir, capsys, argv, says):
    assert main(["serve", str(llama_dir), *argv]) in (1, 2)
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err and not started


def test_nothing_to_serve_is_one_line(started, tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("genzoo: error:") and "missing" in err and "\n" not in err and not started
