"""The catalogue of careless and hostile inputs (issue 17), by family:

    hostile-files   corrupt, crafted or malicious weight files and shard indexes
    bad-configs     config.json fields of the wrong type, range, divisibility or size
    bad-api         Python API calls with bad values (build, forward, generate, load, train)
    bad-cli         `genzoo` commands with bad values, bad output paths, directories that are not runs
    runs            resume, lock and recipe-comparison cases on a real (tiny) run
    interrupted     what a kill leaves behind: torn metrics, a half-done export, partial checkpoints

Each case sets itself up in its own directory and returns an `Action` (harness.py). `python -m tests.hardening`
runs them all and prints the counts; tests/hardening/test_hostile.py asserts that every one is clean.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import struct
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import genzoo
from genzoo.errors import CheckpointError, ConfigError, InputError

from .harness import LOCK, Case, api, cli, sets

CASES: list[Case] = []


def case(family, name, error=None, match=None, status=1):
    def deco(make):
        CASES.append(Case(family, name, make, error or genzoo.GenzooError, match, status))
        return make

    return deco


def add(family, name, make, error=None, match=None, status=1):
    case(family, name, error, match, status)(make)


# ---------------------------------------------------------------- hostile files
def st_bytes(header, data: bytes = b"", length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def with_weights(content, name="model.safetensors"):
    """A case: a copy of the tiny llama directory whose weight file is `content` (bytes, or a callable(dir))."""
    def make(ws, tmp):
        d = ws.copy_of(ws.model_dir("llama"), tmp / "m")
        if callable(content):
            content(d)
        else:
            (d / name).write_bytes(content)
        return api(lambda: genzoo.load(d), protect=[d])

    return make


ENTRY = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
HEADERS = {
    "truncated file": lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-64]),
    "empty file": b"",
    "7 bytes": b"\x01" * 7,
    "header length past the end": st_bytes({}, length=10**6),
    "header length 2**63": st_bytes({}, length=2**63),
    "header not JSON": st_bytes(b"{not json"),
    "header a JSON array": st_bytes([1, 2]),
    "header not UTF-8": st_bytes(b"\xff\xfe{}"),
    "entry without data_offsets": st_bytes({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8),
    "offsets as strings": st_bytes({"a": {"dtype": "F32", "shape": [2], "data_offsets": ["0", "8"]}}, b"\0" * 8),
    "offsets reversed": st_bytes({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8),
    "offsets of three numbers": st_bytes({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4, 8]}}, b"\0" * 8),
    "negative offset": st_bytes({"a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}, b"\0" * 8),
    "unknown dtype": st_bytes({"a": {**ENTRY, "dtype": "F128"}}, b"\0" * 8),
    "dtype not a string": st_bytes({"a": {**ENTRY, "dtype": 4}}, b"\0" * 8),
    "negative dimension": st_bytes({"a": {**ENTRY, "shape": [-2]}}, b"\0" * 8),
    "shape of strings": st_bytes({"a": {**ENTRY, "shape": ["2"]}}, b"\0" * 8),
    "shape too large for its bytes": st_bytes({"a": {**ENTRY, "shape": [2**40]}}, b"\0" * 8),
    "entry not an object": st_bytes({"a": [0, 8]}, b"\0" * 8),
    "overlapping tensors": st_bytes({"a": ENTRY, "b": {**ENTRY, "data_offsets": [4, 12]}}, b"\0" * 12),
    "metadata not strings": st_bytes({"__metadata__": {"format": 1}, "a": ENTRY}, b"\0" * 8),
    "metadata a list": st_bytes({"__metadata__": ["x"], "a": ENTRY}, b"\0" * 8),
    "tensors past the end": st_bytes({"a": {**ENTRY, "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8),
    "deeply nested header": st_bytes(b"[" * 100000 + b"]" * 100000),
}
for _name, _content in HEADERS.items():
    add("hostile-files", f"safetensors: {_name}", with_weights(_content), CheckpointError)


def _weights_dir(d):
    (d / "model.safetensors").unlink()
    (d / "model.safetensors").mkdir()


def _weights_link(d):
    (d / "model.safetensors").unlink()
    (d / "model.safetensors").symlink_to("/etc/passwd")


def _weights_dangling(d):
    (d / "model.safetensors").unlink()
    (d / "model.safetensors").symlink_to(d / "nowhere")


add("hostile-files", "model.safetensors is a directory", with_weights(_weights_dir), CheckpointError)
add("hostile-files", "model.safetensors links to /etc/passwd", with_weights(_weights_link), CheckpointError)
add("hostile-files", "model.safetensors is a dangling link", with_weights(_weights_dangling), CheckpointError)


def sharded(edit):
    """A case: the tiny llama directory saved in shards, then `edit(dir, index dict)` -> index (or bytes)."""
    def make(ws, tmp):
        d = tmp / "m"
        genzoo.save(genzoo.load(ws.model_dir("llama")), d, max_shard_bytes=20000)
        index_file = d / "model.safetensors.index.json"
        out = edit(d, json.loads(index_file.read_text()))
        index_file.write_bytes(out if isinstance(out, bytes) else json.dumps(out).encode())
        return api(lambda: genzoo.load(d), protect=[d])

    return make


def _first(index):
    return next(iter(index["weight_map"]))


INDEXES = {
    "no weight_map": lambda d, i: {"metadata": {}},
    "weight_map a list": lambda d, i: {"weight_map": list(i["weight_map"])},
    "shard name a number": lambda d, i: {"weight_map": {**i["weight_map"], _first(i): 7}},
    "shard name empty": lambda d, i: {"weight_map": {**i["weight_map"], _first(i): ""}},
    "shard outside the directory": lambda d, i: {"weight_map": {**i["weight_map"], _first(i): "../x.safetensors"}},
    "absolute shard path": lambda d, i: {"weight_map": {**i["weight_map"], _first(i): "/etc/passwd"}},
    "missing shard file": lambda d, i: {"weight_map": {**i["weight_map"], _first(i): "model-9-of-9.safetensors"}},
    "shard that is a directory": lambda d, i: ((d / "sub.safetensors").mkdir(),
                                               {"weight_map": {**i["weight_map"], _first(i): "sub.safetensors"}})[1],
    "index not JSON": lambda d, i: b"{weight_map",
    "index a JSON string": lambda d, i: b'"weights"',
    "key absent from its shard": lambda d, i: {"weight_map": {**i["weight_map"], "extra.weight":
                                                              i["weight_map"][_first(i)]}},
}
for _name, _edit in INDEXES.items():
    add("hostile-files", f"shard index: {_name}", sharded(_edit), CheckpointError)


class Payload:
    """Unpickling this runs `fn(*args)`: with weights_only=False it would create the marker file."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def pickle_case(kind):
    def make(ws, tmp):
        d = ws.copy_of(ws.model_dir("llama"), tmp / "m")
        state = load_file(d / "model.safetensors")
        (d / "model.safetensors").unlink()
        marker = str(ws.payload_marker)
        payloads = {
            "os.system": Payload(os.system, (f"touch {marker}",)),
            "exec": Payload(exec, (f"open({marker!r}, 'w').close()",)),
            "eval": Payload(eval, (f"open({marker!r}, 'w')",)),
            "subprocess": Payload(__import__("subprocess").call, (["touch", marker],)),
        }
        if kind == "legacy format":
            with open(d / "pytorch_model.bin", "wb") as f:
                pickle.dump({**state, "x": payloads["os.system"]}, f)
        elif kind == "inside a tensor dict (zip)":
            torch.save({**state, "x": payloads["exec"]}, d / "pytorch_model.bin")
        elif kind == "not a dict":
            torch.save(list(state.values()), d / "pytorch_model.bin")
        elif kind == "garbage bytes":
            (d / "pytorch_model.bin").write_bytes(os.urandom(4096))
        elif kind == "non-string keys":
            torch.save({i: v for i, v in enumerate(state.values())}, d / "pytorch_model.bin")
        else:
            torch.save(payloads[kind], d / "pytorch_model.bin")
        return api(lambda: genzoo.load(d), protect=[d])

    return make


for _kind in ("os.system", "exec", "eval", "subprocess", "legacy format", "inside a tensor dict (zip)", "not a dict",
              "garbage bytes", "non-string keys"):
    add("hostile-files", f"pickle: {_kind}", pickle_case(_kind), CheckpointError)


def tensor_edit(edit, allow_nonfinite=False, ok=False):
    """A case: the tiny llama directory with its tensors changed by edit(state) (safetensors)."""
    def make(ws, tmp):
        d = ws.copy_of(ws.model_dir("llama"), tmp / "m")
        state = dict(load_file(d / "model.safetensors"))
        edit(state)
        save_file(state, str(d / "model.safetensors"))
        kw = {"allow_nonfinite": True} if allow_nonfinite else {}
        return api(lambda: genzoo.load(d, **kw), protect=[d], ok=ok)

    return make


def _poison(value, dtype=None):
    def edit(state):
        k = "model.layers.0.self_attn.q_proj.weight"
        t = state[k].clone().to(dtype or state[k].dtype)
        t.view(-1)[5] = value
        state[k] = t

    return edit


def _as(dtype, key="model.layers.0.mlp.up_proj.weight"):
    def edit(state):
        state[key] = state[key].to(dtype)

    return edit


TENSORS = {
    "a NaN weight": (_poison(float("nan")), r"non-finite"),
    "an Inf weight": (_poison(float("inf")), r"non-finite"),
    "a -Inf weight in bf16": (_poison(float("-inf"), torch.bfloat16), r"non-finite"),
    "a NaN weight in fp16": (_poison(float("nan"), torch.float16), r"non-finite"),
    "an int tensor in place of a float one": (_as(torch.int32), r"mis-typed.*int32"),
    "a bool tensor in place of a float one": (_as(torch.bool), r"mis-typed"),
    "an int64 embedding": (_as(torch.int64, "model.embed_tokens.weight"), r"mis-typed"),
    "a tensor missing": (lambda s: s.pop("model.norm.weight"), r"missing"),
    "an unexpected tensor": (lambda s: s.__setitem__("model.extra", torch.zeros(2)), r"unexpected"),
    "a mis-shaped tensor": (lambda s: s.__setitem__("model.norm.weight", torch.zeros(3)), r"mis-shaped"),
}
for _name, (_edit, _match) in TENSORS.items():
    add("hostile-files", f"weights: {_name}", tensor_edit(_edit), CheckpointError, _match)
add("hostile-files", "weights: NaN accepted with allow_nonfinite=True (control)",
    tensor_edit(_poison(float("nan")), allow_nonfinite=True, ok=True))


# ---------------------------------------------------------------- bad configs
def config_edit(fmt, edit):
    """A case: a saved tiny model of format `fmt` with its config.json changed by edit(dict) (-> dict or bytes)."""
    def make(ws, tmp):
        d = ws.copy_of(ws.model_dir(fmt), tmp / "m")
        cfg = json.loads((d / "config.json").read_text())
        out = edit(cfg)
        out = cfg if out is None else out
        (d / "config.json").write_bytes(out if isinstance(out, bytes) else json.dumps(out).encode())
        return api(lambda: genzoo.load(d), protect=[d])

    return make


def setk(key, value):
    def edit(cfg):
        *path, last = key.split(".")
        node = cfg
        for p in path:
            node = node[p]
        node[last] = value

    return edit


def delk(key):
    def edit(cfg):
        cfg.pop(key)

    return edit


def _config_dir(ws, tmp):
    d = ws.copy_of(ws.model_dir("llama"), tmp / "m")
    (d / "config.json").unlink()
    (d / "config.json").mkdir()
    return api(lambda: genzoo.load(d), protect=[d])


add("bad-configs", "config.json is a directory", _config_dir, CheckpointError)
CONFIGS = [
    ("llama", "not JSON", lambda c: b"{model_type", CheckpointError, None),
    ("llama", "a JSON array", lambda c: b"[]", CheckpointError, None),
    ("llama", "NaN literal where a size goes", lambda c: json.dumps({**c, "hidden_size": float("nan")}).encode(),
     ConfigError, "hidden_size"),
    ("llama", "auto_map", setk("auto_map", {"AutoModel": "evil.Model"}), CheckpointError, "auto_map"),
    ("llama", "trust_remote_code", setk("trust_remote_code", True), CheckpointError, "trust_remote_code"),
    ("llama", "unknown model_type", setk("model_type", "llamaa"), CheckpointError, "not supported"),
    ("llama", "no model_type", delk("model_type"), CheckpointError, "model_type"),
    ("llama", "model_type a list", setk("model_type", ["llama"]), ConfigError, "model_type"),
    ("llama", "missing hidden_size", delk("hidden_size"), ConfigError, "hidden_size"),
    ("llama", "missing vocab_size", delk("vocab_size"), ConfigError, "vocab_size"),
    ("llama", "zero heads", setk("num_attention_heads", 0), ConfigError, "num_attention_heads=0"),
    ("llama", "negative layers", setk("num_hidden_layers", -2), ConfigError, "num_hidden_layers"),
    ("llama", "a size as a string", setk("hidden_size", "64"), ConfigError, "hidden_size='64'"),
    ("llama", "a size as a float", setk("intermediate_size", 128.0), ConfigError, "intermediate_size"),
    ("llama", "a size as true", setk("vocab_size", True), ConfigError, "vocab_size"),
    ("llama", "vocab 10**12", setk("vocab_size", 10**12), ConfigError, "needs|vocab"),
    ("llama", "max positions 10**12", setk("max_position_embeddings", 10**12), ConfigError, "needs|max_position"),
    ("llama", "hidden size 2**40", setk("hidden_size", 2**40), ConfigError, "needs|hidden_size"),
    ("llama", "10**6 layers", setk("num_hidden_layers", 10**6), ConfigError, "num_hidden_layers"),
    ("gpt2", "hidden not divisible by heads", setk("n_embd", 66), ConfigError, "divisible"),
    ("llama", "kv heads not dividing heads", setk("num_key_value_heads", 3), ConfigError, "n_kv_heads"),
    ("llama", "negative norm eps", setk("rms_norm_eps", -1e-5), ConfigError, "rms_norm_eps"),
    ("llama", "norm eps a string", setk("rms_norm_eps", "1e-5"), ConfigError, "rms_norm_eps"),
    ("llama", "rope theta inf", lambda c: json.dumps({**c, "rope_theta": float("inf"),
                                                     "rope_parameters": None}).encode(), ConfigError, "rope_theta"),
    ("llama", "tie_word_embeddings a string", setk("tie_word_embeddings", "yes"), ConfigError,
     "tie_word_embeddings"),
    ("llama", "pad id beyond the vocabulary", setk("pad_token_id", 10**6), ConfigError, "pad_token_id"),
    ("llama", "negative eos id", setk("eos_token_id", -1), ConfigError, "eos_token_id"),
    ("llama", "rope_scaling a string", lambda c: {**c, "rope_parameters": None, "rope_scaling": "linear"},
     ConfigError, "rope_scaling"),
    ("llama", "unknown rope type", setk("rope_parameters.rope_type", "yarn"), CheckpointError, "rope_type"),
    ("llama", "unknown activation", setk("hidden_act", "swishy"), CheckpointError, "hidden_act|activation"),
    ("llama", "head_dim odd for rope", lambda c: {**c, "head_dim": 15}, ConfigError, "head_dim"),
    ("gpt2", "zero heads", setk("n_head", 0), ConfigError, "n_head"),
    ("gpt2", "missing n_embd", delk("n_embd"), ConfigError, "n_embd"),
    ("gpt2", "n_positions a string", setk("n_positions", "128"), ConfigError, "n_positions"),
    ("gpt2", "unknown activation", setk("activation_function", "gelu_fast2"), CheckpointError, "activation"),
    ("gpt2", "dropout 1.5", setk("resid_pdrop", 1.5), ConfigError, "resid_pdrop"),
    ("bert", "negative intermediate size", setk("intermediate_size", -1), ConfigError, "intermediate_size"),
    ("bert", "type_vocab_size a string", setk("type_vocab_size", "2"), ConfigError, "type_vocab_size"),
    ("bert", "pad id beyond the vocabulary", setk("pad_token_id", 10**6), ConfigError, "pad_token_id"),
    ("t5", "zero d_kv", setk("d_kv", 0), ConfigError, "d_kv"),
    ("t5", "missing num_heads", delk("num_heads"), ConfigError, "num_heads"),
    ("t5", "feed_forward_proj a number", setk("feed_forward_proj", 3), ConfigError, "feed_forward_proj"),
    ("clip", "text_config a list", setk("text_config", [1]), ConfigError, "text_config"),
    ("clip", "zero patch size", setk("vision_config.patch_size", 0), ConfigError, "patch_size"),
    ("clip", "image size a string", setk("vision_config.image_size", "8"), ConfigError, "image_size"),
    ("genzoo", "genzoo_config a string", setk("genzoo_config", "x"), ConfigError, "genzoo_config"),
    ("genzoo", "unknown genre", setk("genre", "decodr"), ConfigError, "genre"),
    ("genzoo", "a size as a string", setk("genzoo_config.d_model", "64"), ConfigError, "d_model"),
    ("genzoo", "no genzoo_config", delk("genzoo_config"), CheckpointError, "genzoo_config"),
    ("genzoo", "unknown field", setk("genzoo_config.n_layer", 2), ConfigError, "n_layer"),
]
for _fmt, _name, _edit, _error, _match in CONFIGS:
    add("bad-configs", f"{_fmt} config.json: {_name}", config_edit(_fmt, _edit), _error, _match)


# ---------------------------------------------------------------- bad API inputs
def call(fn, **kw):
    return lambda ws, tmp: api(fn, **kw)


def _model(preset="llama-tiny"):
    torch.manual_seed(0)
    return genzoo.build(preset)


IDS = torch.zeros(1, 4, dtype=torch.long)
API = [
    ("build: unknown preset", lambda: genzoo.build("lama-tiny"), ConfigError, "did you mean"),
    ("build: zero heads", lambda: genzoo.build("gpt2-tiny", n_heads=0), ConfigError, "n_heads"),
    ("build: vocab as a string", lambda: genzoo.build("gpt2-tiny", vocab_size="512"), ConfigError, "vocab_size"),
    ("build: dropout 2", lambda: genzoo.build("gpt2-tiny", dropout=2.0), ConfigError, "dropout"),
    ("build: vocab 10**12", lambda: genzoo.build("gpt2-tiny", vocab_size=10**12), ConfigError, "needs"),
    ("build: max positions 10**11 (rope buffers)", lambda: genzoo.build("llama-tiny", max_positions=10**11),
     ConfigError, "needs"),
    ("build: pad id beyond the vocabulary", lambda: genzoo.build("bert-tiny", pad_token_id=10**6), ConfigError,
     "pad_token_id"),
    ("build: decoder pad id beyond the vocabulary", lambda: genzoo.build("llama-tiny", pad_token_id=512), ConfigError,
     "pad_token_id"),
    ("forward: empty batch", lambda: _model()(torch.zeros(0, 4, dtype=torch.long)), InputError, "batch size 0"),
    ("forward: empty sequence", lambda: _model()(torch.zeros(1, 0, dtype=torch.long)), InputError, "seq_len 0"),
    ("forward: id beyond the vocabulary", lambda: _model()(torch.tensor([[1, 512]])), InputError, "512"),
    ("forward: negative id", lambda: _model()(torch.tensor([[-1, 2]])), InputError, "-1"),
    ("forward: float ids", lambda: _model()(torch.zeros(1, 4)), InputError, "integer"),
    ("forward: 1-D ids", lambda: _model()(torch.zeros(4, dtype=torch.long)), InputError, "shape"),
    ("forward: a list, not a tensor", lambda: _model()([[1, 2]]), InputError, "tensor"),
    ("forward: too long", lambda: _model()(torch.zeros(1, 129, dtype=torch.long)), InputError, "max_positions"),
    ("forward: mask of another shape", lambda: _model()(IDS, attention_mask=torch.ones(1, 3)), InputError,
     "attention_mask"),
    ("forward: labels beyond the vocabulary", lambda: _model()(IDS, labels=torch.full((1, 4), 600)), InputError,
     "label 600"),
    ("forward: negative labels (not -100)", lambda: _model()(IDS, labels=torch.full((1, 4), -5)), InputError,
     "label -5"),
    ("forward: float labels", lambda: _model()(IDS, labels=torch.zeros(1, 4)), InputError, "labels"),
    ("forward: labels of another shape", lambda: _model()(IDS, labels=torch.zeros(1, 3, dtype=torch.long)),
     InputError, "labels"),
    ("forward: position ids out of range", lambda: _model()(IDS, position_ids=torch.tensor([[0, 1, 2, 500]])),
     InputError, "position_ids"),
    ("encoder: labels beyond the vocabulary", lambda: _model("bert-tiny")(IDS, labels=torch.full((1, 4), 10**4)),
     InputError, "label"),
    ("encoder: empty batch", lambda: _model("bert-tiny")(torch.zeros(0, 3, dtype=torch.long)), InputError, "batch"),
    ("seq2seq: labels beyond the vocabulary", lambda: _model("t5-tiny")(IDS, labels=torch.full((1, 3), 10**4)),
     InputError, "label"),
    ("generate: temperature -1", lambda: _model().generate(IDS, do_sample=True, temperature=-1.0), InputError,
     "temperature"),
    ("generate: temperature nan", lambda: _model().generate(IDS, do_sample=True, temperature=float("nan")),
     InputError, "temperature"),
    ("generate: temperature inf", lambda: _model().generate(IDS, do_sample=True, temperature=float("inf")),
     InputError, "temperature"),
    ("generate: temperature 0 with sampling", lambda: _model().generate(IDS, do_sample=True, temperature=0),
     InputError, "temperature"),
    ("generate: top_p 0", lambda: _model().generate(IDS, do_sample=True, top_p=0.0), InputError, "top_p"),
    ("generate: top_p nan", lambda: _model().generate(IDS, do_sample=True, top_p=float("nan")), InputError, "top_p"),
    ("generate: top_k 0", lambda: _model().generate(IDS, do_sample=True, top_k=0), InputError, "top_k"),
    ("generate: max_new_tokens 0", lambda: _model().generate(IDS, max_new_tokens=0), InputError, "max_new_tokens"),
    ("generate: max_new_tokens -5", lambda: _model().generate(IDS, max_new_tokens=-5), InputError, "max_new_tokens"),
    ("generate: max_new_tokens a string", lambda: _model().generate(IDS, max_new_tokens="8"), InputError,
     "max_new_tokens"),
    ("generate: prompt + new tokens past max positions",
     lambda: _model().generate(torch.zeros(1, 120, dtype=torch.long), max_new_tokens=20), InputError,
     r"prompt length 120 \+ max_new_tokens 20 = 140 exceeds max_positions=128"),
    ("generate: empty batch", lambda: _model().generate(torch.zeros(0, 3, dtype=torch.long)), InputError, "batch"),
    ("load: no such directory", lambda: genzoo.load("/no/such/dir"), CheckpointError, "no such directory"),
    ("load: a file", lambda: genzoo.load("/etc/hostname"), CheckpointError, "not a directory"),
    ("save: a format that cannot express the config",
     lambda: genzoo.save(genzoo.build("llama-tiny"), "/tmp/genzoo-unused", format="gpt2"), ConfigError, "gpt2"),
]
for _name, _fn, _error, _match in API:
    add("bad-api", _name, call(_fn), _error, _match)


def _empty_dir_load(ws, tmp):
    (tmp / "empty").mkdir()
    return api(lambda: genzoo.load(tmp / "empty"))


add("bad-api", "load: an empty directory", _empty_dir_load, CheckpointError, "config.json")


def _train_api(**kw):
    def make(ws, tmp):
        from genzoo.train import load_recipe, train

        recipe_sets = kw.pop("sets", [])

        def go():
            recipe = load_recipe("gpt-nano", [*[s for s in sets()[1::2]], *recipe_sets])
            return train(recipe, tmp / "run", **kw)

        return api(go)

    return make


add("bad-api", "train(steps=0)", _train_api(steps=0), ConfigError, "steps=0")
add("bad-api", "train(steps=-5)", _train_api(steps=-5), ConfigError, "steps=-5")
add("bad-api", "train(steps='3')", _train_api(steps="3"), ConfigError, "steps='3'")
add("bad-api", "train(steps=True)", _train_api(steps=True), ConfigError, "steps=True")
add("bad-api", "load_recipe: lr nan", call(lambda: __import__("genzoo.train", fromlist=["x"]).load_recipe(
    "gpt-nano", {"lr": float("nan")})), ConfigError, "lr=nan")
add("bad-api", "evaluate_run(max_batches=0)", lambda ws, tmp: api(
    lambda: __import__("genzoo.train", fromlist=["x"]).evaluate_run(ws.run(), max_batches=0)), ConfigError,
    "max_batches=0")


# ---------------------------------------------------------------- bad CLI values
def argv(*args, status=2, match=None, name=None):
    add("bad-cli", name or " ".join(args), lambda ws, tmp: cli(*args), status=status, match=match)


argv("train", "gpt-nano", "--steps", "0", match="positive integer, got 0")
argv("train", "gpt-nano", "--steps", "-5", match="positive integer, got -5")
argv("train", "gpt-nano", "--steps", "x", match="invalid int value")
argv("train", "gpt-nano", "--steps", "1.5", match="invalid int value")
argv("train", match="recipe", name="train without a recipe")
argv("train", "gpt-nanoo", status=1, match="did you mean 'gpt-nano'")
for _set, _match in [("lr=-1", "lr=-1"), ("lr=nan", "lr=nan"), ("lr=inf", "lr=inf"), ("lr=0", "lr=0"),
                     ("data.block_size=0", "block_size=0"), ("data.block_size=-3", "block_size=-3"),
                     ("data.vocab_size=1", "vocab_size=1"), ("data.vocab_size=100000000", "vocab_size"),
                     ("data.val_percent=0", "val_percent"), ("data.val_percent=100", "val_percent"),
                     ("data.max_bytes=0", "max_bytes"), ("data.mask_prob=1.5", "mask_prob"),
                     ("steps=0", "steps=0"), ("batch_size=-1", "batch_size=-1"), ("eval_every=0", "eval_every"),
                     ("warmup_steps=-1", "warmup_steps"), ("weight_decay=-0.1", "weight_decay"),
                     ("beta1=1.0", "beta1"), ("beta2=-0.5", "beta2"), ("grad_clip=-1", "grad_clip"),
                     ("min_lr_ratio=2", "min_lr_ratio"), ("seed=-1", "seed"), ("nan_policy=ignore", "nan_policy"),
                     ("precision=fp8", "precision"), ("model.n_heads=0", "n_heads"), ("model.d_model=65", "d_model"),
                     ("model.dropout=1.5", "dropout"), ("model.n_layer=3", "n_layer"), ("stepz=3", "stepz"),
                     ("lr", "key=value"), ("data.corpus=nonesuch", "corpus")]:
    add("bad-cli", f"train --set {_set}", lambda ws, tmp, s=_set: cli("train", "gpt-nano", "--out", tmp / "r",
                                                                      "--steps", "1", *sets(), "--set", s,
                                                                      protect=[tmp]),
        status=1, match=_match)
add("bad-cli", "train --set model.d_model=400000 (too large to allocate)",
    lambda ws, tmp: cli("train", "gpt-nano", "--out", tmp / "r", "--steps", "1",
                        *sets(["model.d_model=400000", "model.d_ff=64"])),
    status=1, match="needs|memory")
for _args, _match in [(["--temperature", "-1"], "temperature"), (["--temperature", "nan"], "temperature"),
                      (["--temperature", "inf"], "temperature"), (["--max-new-tokens", "0"], "max-new-tokens"),
                      (["--max-new-tokens", "-3"], "max-new-tokens"), (["--top-p", "2"], "top-p"),
                      (["--top-p", "0"], "top-p"), (["--top-k", "0"], "top-k"), (["--num-samples", "0"], "num-samples"),
                      (["--num-beams", "0"], "num-beams")]:
    add("bad-cli", f"generate {' '.join(_args)}", lambda ws, tmp, a=_args: cli("generate", ws.run(), "--prompt",
                                                                              "def ", *a), status=2, match=_match)
add("bad-cli", "generate: a prompt longer than the model's positions",
    lambda ws, tmp: cli("generate", ws.run(), "--prompt", "def f(x): return x\n" * 40, "--temperature", "0"),
    status=2, match=r"--prompt is \d+ tokens; the model takes at most 15")
add("bad-cli", "generate: prompt + --max-new-tokens past the positions",
    lambda ws, tmp: cli("generate", ws.run(), "--prompt", "def ", "--max-new-tokens", "100"), status=2,
    match=r"prompt \d+ \+ max_new_tokens 100 = \d+ exceeds max_positions=16")
add("bad-cli", "generate: an empty prompt", lambda ws, tmp: cli("generate", ws.run(), "--prompt", ""), status=2,
    match="no tokens")
add("bad-cli", "generate: no such directory", lambda ws, tmp: cli("generate", "/no/such/dir", "--prompt", "x"),
    match="no such directory")
add("bad-cli", "generate: a file", lambda ws, tmp: cli("generate", "/etc/hostname", "--prompt", "x"),
    match="not a directory")


def _bad_tokenizer(ws, tmp):
    d = ws.run_copy(tmp / "r")
    (d / "tokenizer.json").write_text("{")
    return cli("generate", d, "--prompt", "x", protect=[d])


add("bad-cli", "generate: a corrupt tokenizer.json", _bad_tokenizer, match="tokenizer")
add("bad-cli", "eval --batches 0", lambda ws, tmp: cli("eval", ws.run(), "--batches", "0"), status=2,
    match="batches")
add("bad-cli", "eval --batches -1", lambda ws, tmp: cli("eval", ws.run(), "--batches", "-1"), status=2,
    match="batches")
add("bad-cli", "eval: no such directory", lambda ws, tmp: cli("eval", "/no/such/dir"), match="no such directory")
add("bad-cli", "embed: a decoder", lambda ws, tmp: cli("embed", ws.run(), "--text", "x"), status=2,
    match="not an encoder")
argv("bench", "decod", status=1, match="did you mean 'decode'")
argv("experiment", "nonesuch", status=1, match="experiment")
argv("frobnicate", match="invalid choice")
argv("generate", match="required", name="generate without arguments")


def _out_is_file(ws, tmp):
    (tmp / "f").write_text("keep me")
    return cli("train", "gpt-nano", "--out", tmp / "f", "--steps", "1", *sets(), protect=[tmp])


def _out_under_file(ws, tmp):
    (tmp / "f").write_text("keep me")
    return cli("train", "gpt-nano", "--out", tmp / "f" / "run", "--steps", "1", *sets(), protect=[tmp])


def _out_read_only(ws, tmp):
    """A read-only filesystem, simulated (the tests may run as root, whom permissions do not stop)."""
    real = Path.mkdir

    def refuse(self, *a, **k):
        if str(self).startswith(str(tmp)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real(self, *a, **k)

    Path.mkdir = refuse
    return cli("train", "gpt-nano", "--out", tmp / "ro" / "run", "--steps", "1", *sets(), protect=[tmp],
               cleanup=lambda: setattr(Path, "mkdir", real))


add("bad-cli", "train --out: a file", _out_is_file, match="not a directory")
add("bad-cli", "train --out: under a file", _out_under_file, match="is a file")
add("bad-cli", "train --out: on a read-only filesystem", _out_read_only, match="read-only file system")


def _onto_model_dir(ws, tmp):
    d = ws.copy_of(ws.model_dir("gpt2"), tmp / "model")
    from genzoo.tokenizers import Tokenizer  # an HF model directory has its tokenizer beside the weights

    Tokenizer.from_dir(ws.run()).save(d)
    return cli("train", "gpt-nano", "--out", d, "--steps", "1", *sets(), protect=[d])


def _onto_documents(ws, tmp):
    d = tmp / "docs"
    d.mkdir()
    (d / "thesis.tex").write_text("years of work")
    return cli("train", "gpt-nano", "--out", d, "--steps", "1", *sets(), protect=[d])


def _resume_onto_model_dir(ws, tmp):
    d = ws.copy_of(ws.model_dir("llama"), tmp / "model")
    return cli("train", "gpt-nano", "--out", d, "--resume", "--steps", "1", *sets(), protect=[d])


def _resume_new_dir(ws, tmp):
    return cli("train", "gpt-nano", "--out", tmp / "new", "--resume", "--steps", "1", *sets(), protect=[tmp])


add("bad-cli", "train --out: an HF model directory (not a run)", _onto_model_dir, match="not a genzoo run directory")
add("bad-cli", "train --out: a directory of the user's files", _onto_documents, match="not a genzoo run directory")
add("bad-cli", "train --resume: an HF model directory", _resume_onto_model_dir, match="not a genzoo run directory")
add("bad-cli", "train --resume: a directory that does not exist", _resume_new_dir, match="not a genzoo run")


# ---------------------------------------------------------------- runs: resume, lock, recipe comparison
def resume(extra_sets=(), *args, edit=None, ok=False, warns=None):
    def make(ws, tmp):
        d = ws.run_copy(tmp / "run")
        if edit is not None:
            edit(d)
        steps = [] if "--steps" in args else ["--steps", "2"]  # the run's own: only the change asked for differs
        return cli("train", "gpt-nano", "--out", d, "--resume", *steps, *sets(["save_every=2", *extra_sets]), *args,
                   protect=[] if ok else [d], ok=ok, warns=warns)

    return make


add("runs", "resume changing the model size", resume(["model.d_model=48"]), match=r"model\.d_model 32 -> 48.*--force")
add("runs", "resume changing the seed", resume(["seed=7"]), match="seed 1337 -> 7")
add("runs", "resume changing the batch size", resume(["batch_size=8"]), match="batch_size 4 -> 8")
add("runs", "resume changing the data", resume(["data.max_bytes=70000"]), match="data.max_bytes")
add("runs", "resume changing the vocabulary, even with --force", resume(["data.vocab_size=320"], "--force"),
    match="data.vocab_size 300 -> 320.*tokenizer")
add("runs", "resume changing the model size with --force (weights do not fit)",
    resume(["model.d_model=48"], "--force"), match="does not match the model")
add("runs", "resume with --steps below the checkpoint", resume([], "--steps", "1"), match="steps=1 is below")
add("runs", "fresh start into a run with checkpoints", lambda ws, tmp: cli(
    "train", "gpt-nano", "--out", ws.run_copy(tmp / "run"), "--steps", "2", *sets(["save_every=2"]),
    protect=[tmp / "run"]), match="already has checkpoints")


HOLDER = """
import fcntl, json, os, socket, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o666)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": "now"}).encode(), 0)
print("locked", flush=True)
sys.stdin.read()
"""


def hold_lock(run: Path):
    """Another process holding `run`'s lock (as a live run does) -> (its pid, a function that ends it)."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(run / LOCK)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"

    def end():
        p.kill()
        p.wait()

    return p.pid, end


def _locked(ws, tmp):
    d = ws.run_copy(tmp / "run")
    pid, end = hold_lock(d)
    return cli("train", "gpt-nano", "--out", d, "--resume", "--steps", "4", *sets(["save_every=2"]), protect=[d],
               cleanup=end, match=f"in use by another genzoo run \\(pid {pid} ")


add("runs", "a second writer while a run holds the lock", _locked)


def _corrupt_state(d):
    (d / "checkpoints" / "step-00000002" / "trainer_state.pt").write_bytes(b"not a checkpoint")


def _corrupt_recipe(d):
    (d / "recipe.yaml").write_text("model: [unclosed")


add("runs", "resume from a corrupt trainer_state.pt", resume([], "--steps", "3", edit=_corrupt_state),
    match="trainer_state.pt")
add("runs", "resume with a corrupt recipe.yaml", resume([], "--steps", "3", edit=_corrupt_recipe),
    match="recipe.yaml.*--force")


# ---------------------------------------------------------------- interrupted writes
def _torn_metrics(d):
    with open(d / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "loss": 1.2')


def _torn_middle(d):
    lines = (d / "metrics.jsonl").read_text().splitlines()
    lines[1] = lines[1][:10]
    (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def _half_export(d):
    """What a kill during the final export leaves: the marker says no complete final model; a file is missing."""
    from genzoo.rundir import write_marker

    write_marker(d, final=None)
    (d / "model.safetensors").unlink()


add("interrupted", "resume after a torn last metrics line (dropped, warned)",
    resume([], "--steps", "3", edit=_torn_metrics, ok=True, warns="torn last line"))
add("interrupted", "resume after a damaged metrics line in the middle", resume([], "--steps", "3", edit=_torn_middle),
    match="line 2 is not a metrics record")


def _load_half_export(ws, tmp):
    d = ws.run_copy(tmp / "run")
    _half_export(d)
    return api(lambda: genzoo.load(d), protect=[d], ok=True, warns="final export did not complete")


add("interrupted", "load a run whose final export was interrupted (falls back, warned)", _load_half_export)
add("interrupted", "resume a run whose final export was interrupted (writes it again)",
    resume([], edit=_half_export, ok=True))


def _partial_ckpt(ws, tmp):
    d = ws.run_copy(tmp / "run")
    partial = d / "checkpoints" / ".step-00000004.tmp-0badc0de"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half")
    return api(lambda: genzoo.load(d), protect=[d], ok=True)


add("interrupted", "load a run with a partial checkpoint beside (ignored)", _partial_ckpt)


def _partial_while_locked(ws, tmp):
    """Another live run's save in progress survives a second start that is refused."""
    d = ws.run_copy(tmp / "run")
    partial = d / "checkpoints" / ".step-00000004.tmp-0badc0de"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"being written")
    pid, end = hold_lock(d)
    return cli("train", "gpt-nano", "--out", d, "--resume", "--steps", "4", *sets(["save_every=2"]), protect=[d],
               cleanup=end)


add("interrupted", "a refused second start leaves another run's partial save alone", _partial_while_locked,
    match="in use")


def _marker_corrupt(ws, tmp):
    d = ws.run_copy(tmp / "run")
    (d / "genzoo-run.json").write_text("{")
    return api(lambda: genzoo.load(d), protect=[d], ok=True, warns="final export did not complete")


add("interrupted", "load a run whose marker is torn (falls back, warned)", _marker_corrupt)


# ---------------------------------------------------------------- surfaces added since (GGUF, fuse, chat, --data)
def gguf(content):
    def make(ws, tmp):
        f = tmp / "m.gguf"
        if content is None:
            f.mkdir()
        else:
            f.write_bytes(content)
        return api(lambda: genzoo.load(f), protect=[tmp])

    return make


GGUFS = {"magic only": b"GGUF\x03\x00\x00\x00", "random bytes": bytes(range(256)) * 2, "empty": b"",
         "a directory named .gguf": None,
         "tensor count 2**63": b"GGUF\x03\x00\x00\x00" + (2**63).to_bytes(8, "little") + bytes(8)}
for _name, _content in GGUFS.items():
    add("hostile-files", f"gguf: {_name}", gguf(_content), CheckpointError)


def _fuse_onto_model_dir(ws, tmp):
    d = ws.copy_of(ws.model_dir("llama"), tmp / "model")
    return cli("fuse", "--source", ws.run(), "--target", "fusellm-target", "--out", d, "--steps", "1", protect=[d])


add("bad-cli", "fuse --out: an HF model directory (not a run)", _fuse_onto_model_dir,
    match="not a genzoo run directory")
argv("fuse", "--source", "x", "--target", "fusellm-target", "--steps", "0", match="positive integer, got 0")
for _args, _match in [(["--temperature", "-1"], "temperature"), (["--temperature", "nan"], "temperature"),
                      (["--max-new-tokens", "0"], "max-new-tokens"), (["--top-p", "1.5"], "top-p"),
                      (["--top-k", "0"], "top-k")]:
    add("bad-cli", f"chat {' '.join(_args)}", lambda ws, tmp, a=_args: cli("chat", ws.run(), "--message", "hi", *a),
        status=2, match=_match)
add("bad-cli", "generate --retrieve -k 0", lambda ws, tmp: cli("generate", ws.run(), "--prompt", "x", "-k", "0"),
    status=2, match="retrieve-k")
add("bad-cli", "train --data: no such file", lambda ws, tmp: cli(
    "train", "gpt-nano", "--out", tmp / "r", "--steps", "1", "--data", tmp / "nonesuch.txt", *sets(),
    protect=[tmp]), match="nonesuch")
add("bad-cli", "train --init: no such directory", lambda ws, tmp: cli(
    "train", "gpt-nano", "--out", tmp / "r", "--steps", "1", "--init", tmp / "nonesuch", *sets(), protect=[tmp]),
    match="nonesuch")
add("runs", "resume changing the tokenizer kind, even with --force",
    resume(["data.tokenizer=sentencepiece-bpe"], "--force"), match="data.tokenizer.*tokenizer")
add("runs", "resume changing the LoRA rank", resume(["lora.r=4"]), match=r"lora\.r 0 -> 4.*--force")


def diffusers_edit(edit, file="unet/config.json"):
    """A case: a tiny DDPM pipeline directory (diffusers layout) whose `file` JSON goes through `edit(dict)`."""
    def make(ws, tmp):
        def save(path):
            import torch

            torch.manual_seed(0)
            genzoo.save(genzoo.build("ddpm-unet2d-tiny"), path, format="diffusers")

        d = ws.copy_of(ws._once("model-diffusers", save), tmp / "m")
        cfg = d / file
        cfg.write_text(json.dumps(edit(json.loads(cfg.read_text()))))
        return api(lambda: genzoo.load(d), protect=[d])

    return make


for _key, _value, _match in [("block_out_channels", "abc", "block_out_channels"),
                             ("block_out_channels", [16, -32], "block_out_channels"),
                             ("block_out_channels", [], "block_out_channels"),
                             ("layers_per_block", 10**6, "layers_per_block"),
                             ("layers_per_block", 0, "layers_per_block"),
                             ("norm_num_groups", "4", "norm_num_groups"), ("in_channels", 0, "in_channels"),
                             ("down_block_types", [1, 2], "down_block_types"), ("norm_eps", float("nan"), "norm_eps"),
                             ("block_out_channels", [2**20, 2**21], "needs")]:
    add("bad-configs", f"diffusers unet: {_key}={_value!r}",
        diffusers_edit(lambda c, k=_key, v=_value: {**c, k: v}), ConfigError, _match)
for _key, _value in [("num_train_timesteps", "x"), ("beta_start", -1.0), ("beta_end", 2.0), ("clip_sample", "yes")]:
    add("bad-configs", f"diffusers scheduler: {_key}={_value!r}",
        diffusers_edit(lambda c, k=_key, v=_value: {**c, k: v}, "scheduler/scheduler_config.json"), ConfigError, _key)
add("bad-configs", "diffusers unet: config.json a JSON list", diffusers_edit(lambda c: [c]), ConfigError,
    "JSON object")


# ---------------------------------------------------------------- diffusers weights (the HF path's checks)
def diffusers_weights(edit, allow_nonfinite=False, ok=False):
    """A case: the tiny DDPM pipeline directory with its UNet tensors changed by edit(state)."""
    def make(ws, tmp):
        d = diffusers_edit(lambda c: c)(ws, tmp).protect[0]
        f = d / "unet" / "diffusion_pytorch_model.safetensors"
        state = dict(load_file(f))
        edit(state)
        save_file(state, str(f))
        kw = {"allow_nonfinite": True} if allow_nonfinite else {}
        return api(lambda: genzoo.load(d, **kw), protect=[d], ok=ok)

    return make


def _first_weight(state, suffix=".weight"):
    return next(k for k in sorted(state) if k.endswith(suffix) and state[k].is_floating_point()
                and state[k].dim() > 1)


def _poison_first(value):
    def edit(state):
        k = _first_weight(state)
        t = state[k].clone()
        t.view(-1)[3] = value
        state[k] = t

    return edit


for _name, _edit, _match in [
        ("a NaN weight", _poison_first(float("nan")), r"non-finite.*conv"),
        ("an Inf weight", _poison_first(float("inf")), r"non-finite"),
        ("an int tensor in place of a float one",
         lambda s: s.__setitem__(_first_weight(s), s[_first_weight(s)].to(torch.int32)), r"mis-typed.*int32"),
        ("a tensor missing", lambda s: s.pop(_first_weight(s)), r"missing"),
        ("a mis-shaped tensor", lambda s: s.__setitem__(_first_weight(s), torch.zeros(3)), r"mis-shaped")]:
    add("hostile-files", f"diffusers weights: {_name}", diffusers_weights(_edit), CheckpointError, _match)
add("hostile-files", "diffusers weights: NaN accepted with allow_nonfinite=True (control)",
    diffusers_weights(_poison_first(float("nan")), allow_nonfinite=True, ok=True))


# ---------------------------------------------------------------- GGUF files written by the gguf package's writer
def gguf_written(meta=None, tensors=None, allow_nonfinite=False, ok=False):
    """A case: a tiny llama GGUF file (tests/gguf_files.py) with metadata fields / tensors changed."""
    def make(ws, tmp):
        from tests.gguf_files import write_gguf

        f = write_gguf(tmp / "m.gguf", meta=meta, tensors=tensors(ws) if callable(tensors) else tensors)
        kw = {"allow_nonfinite": True} if allow_nonfinite else {}
        return api(lambda: genzoo.load(f, **kw), protect=[f], ok=ok)

    return make


def _gguf_tensor(name, make):
    def tensors(ws):
        import numpy as np

        from tests.gguf_files import gguf_tensors

        torch.manual_seed(0)
        arrays = gguf_tensors(genzoo.build("llama-tiny", tie_embeddings=False))
        return {name: make(arrays[name], np)}

    return tensors


def _nan_at(value):
    def make(a, np):
        a = a.copy()
        a.flat[7] = value
        return a

    return make


_L = "llama."
add("hostile-files", "gguf written: the tiny llama file loads (control)", gguf_written(ok=True))
for _key, _value, _match in [
        ("attention.head_count", 0, "head_count=0"), ("attention.head_count", "4", "head_count='4'"),
        ("attention.head_count", [4, 4], r"head_count=\[4, 4\]"), ("attention.head_count", 3, "head_count_kv.*divide"),
        ("attention.head_count_kv", 3, "head_count_kv=3.*must divide"), ("attention.head_count_kv", 0, "head_count_kv"),
        ("embedding_length", 0, "embedding_length"), ("embedding_length", 66, "embedding_length=66.*divisible"),
        ("attention.key_length", 15, "key_length=15.*even"), ("context_length", 0, "context_length=0"),
        ("context_length", -1, "context_length=-1"), ("vocab_size", 0, "vocab_size=0"),
        ("vocab_size", 10**12, r"1,000,000,000,000|vocab_size=1000000000000.*needs|needs"),
        ("vocab_size", 2**50, "vocab_size"), ("block_count", 10**6, "block_count=1000000"),
        ("feed_forward_length", 128.0, "feed_forward_length=128.0"), ("rope.freq_base", float("nan"), "freq_base"),
        ("attention.layer_norm_rms_epsilon", -1.0, "layer_norm_rms_epsilon")]:
    add("bad-configs", f"gguf metadata: {_key}={_value!r}", gguf_written(meta={_L + _key: _value}), ConfigError,
        _match)
for _key, _value, _match in [("tokenizer.ggml.padding_token_id", 10**6, "padding_token_id=1000000.*below"),
                             ("tokenizer.ggml.bos_token_id", -1, "bos_token_id=-1"),
                             ("tokenizer.ggml.tokens", "abc", "tokenizer.ggml.tokens")]:
    add("bad-configs", f"gguf metadata: {_key}={_value!r}", gguf_written(meta={_key: _value}), ConfigError, _match)
add("bad-configs", "gguf metadata: block_count missing", gguf_written(meta={_L + "block_count": "DROP"}),
    CheckpointError, "lacks the field 'llama.block_count'")
add("bad-configs", "gguf metadata: no vocabulary size", gguf_written(meta={_L + "vocab_size": "DROP"}),
    CheckpointError, "no vocabulary size")
for _name, _tensor, _make, _match in [
        ("a NaN weight", "blk.0.attn_q.weight", _nan_at(float("nan")), r"non-finite.*'blk\.0\.attn_q\.weight'"),
        ("an Inf weight", "token_embd.weight", _nan_at(float("inf")), r"non-finite.*'token_embd\.weight'"),
        ("an int tensor in place of a float one", "blk.0.ffn_up.weight", lambda a, np: a.astype(np.int32),
         r"mis-typed.*int32"),
        ("a mis-shaped tensor", "token_embd.weight", lambda a, np: np.zeros((513, 64), np.float32), "mis-shaped"),
        ("a tensor missing", "output_norm.weight", lambda a, np: None, "missing"),
        ("a tensor 8x too large for its config", "blk.0.ffn_down.weight",
         lambda a, np: np.zeros((64, 1024), np.float32), r"mis-shaped.*\(64, 1024\)")]:
    add("hostile-files", f"gguf written: {_name}", gguf_written(tensors=_gguf_tensor(_tensor, _make)),
        CheckpointError, _match)
add("hostile-files", "gguf written: an unknown tensor", gguf_written(tensors={"blk.0.evil.weight": __import__(
    "numpy").zeros(4, "float32")}), CheckpointError, r"unexpected.*blk\.0\.evil\.weight")
add("hostile-files", "gguf written: NaN accepted with allow_nonfinite=True (control)",
    gguf_written(tensors=_gguf_tensor("blk.0.attn_q.weight", _nan_at(float("nan"))), allow_nonfinite=True, ok=True))


def gguf_tokenizer_case(meta):
    """A case: the tokenizer of a tiny llama GGUF file whose tokenizer metadata is `meta` (gpt2 kind)."""
    def make(ws, tmp):
        from genzoo.tokenizers import Tokenizer
        from tests.gguf_files import write_gguf

        f = write_gguf(tmp / "m.gguf", meta={"tokenizer.ggml.model": "gpt2", **meta})
        return api(lambda: Tokenizer.load(f), protect=[f])

    return make


for _name, _meta, _match in [
        ("no tokens", {}, "tokenizer.ggml.tokens"),
        ("tokens a string", {"tokenizer.ggml.tokens": "abc"}, "tokenizer.ggml.tokens"),
        ("merges without a space", {"tokenizer.ggml.tokens": ["a", "b", "ab"], "tokenizer.ggml.merges": ["ab"]},
         "tokenizer.ggml.merges"),
        ("a merge of tokens the vocabulary lacks", {"tokenizer.ggml.tokens": ["a", "b"],
                                                    "tokenizer.ggml.merges": ["x y"]}, "inconsistent"),
        ("token types not integers", {"tokenizer.ggml.tokens": ["a"], "tokenizer.ggml.token_type": ["x"]},
         "token_type")]:
    add("hostile-files", f"gguf tokenizer: {_name}", gguf_tokenizer_case(_meta), genzoo.GenzooError, _match)
