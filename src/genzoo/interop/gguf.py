"""GGUF files (llama.cpp's single-file format: metadata + possibly quantised tensors) read through the `gguf` library.

`load_gguf(path)` builds the model from the metadata (`general.architecture` chooses a registered `GGUFArch`, which
writes the config as the Hugging Face config.json of the same model and names each GGUF tensor by its Hugging Face
name), dequantises every tensor with `gguf.quants.dequantize` (Q4_0, Q4_1, Q8_0, the K-quants, ... -> fp32; then the
dtype asked for), undoes llama.cpp's reordering of the q/k rows (its rotary layout), and hands the tensors to the
architecture's checkpoint format (`interop.FORMATS`), so the same strict key check and meta-device assignment as for
a safetensors directory apply. `gguf_tokenizer(path)` builds the tokenizer from the metadata (vocabulary, merges,
control tokens, special token ids) and keeps its chat template. Both follow transformers' GGUF reader
(`from_pretrained(dir, gguf_file=...)`), the reference the tests compare with.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError
from ..registry import Registry
from .formats import KeyMap

GGUF_ARCHS: Registry = Registry("GGUF architecture")


def read_gguf(path: Path):
    """A `gguf.GGUFReader` of the file (memory-mapped); a file that is not GGUF is a CheckpointError naming it.
    The reader is kept for the file as it is now (path, size, mtime): loading a model and then its tokenizer parses
    the metadata (~150k vocabulary and merge strings for a 49k vocabulary) once."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such GGUF file")
    st = path.stat()
    return _reader(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _reader(path: str, size: int, mtime: int):
    try:
        from gguf import GGUFReader
    except ImportError:
        raise CheckpointError(f"{path}: reading GGUF needs the `gguf` package (pip install gguf)") from None
    try:
        return GGUFReader(path)
    except Exception as e:  # bad magic, truncated header or tensor data
        raise CheckpointError(f"{path}: not a readable GGUF file ({type(e).__name__}: {e})") from None


def metadata(reader, where: Path | str = "") -> dict:
    """Every metadata key -> its value (numbers, strings, lists); a field the gguf library cannot decode is a
    CheckpointError naming it."""
    out = {}
    for k, f in reader.fields.items():
        try:
            out[k] = f.contents()
        except Exception as e:  # a field whose declared type does not match its bytes
            raise CheckpointError(f"{where}: GGUF metadata field {k!r} cannot be decoded ({type(e).__name__}: "
                                  f"{e})") from None
    return out


# ---------------------------------------------------------------- metadata schema
# GGML tensor types that hold integers (the others are floating point, quantised or not)
_INT_KINDS = {"I8": torch.int8, "I16": torch.int16, "I32": torch.int32, "I64": torch.int64}


def _bad_field(where, key: str, value, allowed: str):
    from ..errors import ConfigError

    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return ConfigError(f"{where}: GGUF metadata field {key}={shown} is invalid: {allowed}")


def meta_int(meta: dict, key: str, where, *, default=None, top: int | None = None) -> int:
    """The integer metadata field `key` (required unless a default is given), in 1..top (default MAX_SIZE)."""
    from .schema import MAX_SIZE

    top = top or MAX_SIZE
    if key not in meta:
        if default is None:
            raise CheckpointError(f"{where}: GGUF metadata lacks the field {key!r}, which genzoo reads")
        return default
    v = meta[key]
    if not (isinstance(v, int) and not isinstance(v, bool) and 0 < v <= top):
        raise _bad_field(where, key, v, f"must be an integer in 1..{top}")
    return v


def meta_float(meta: dict, key: str, where, *, default: float | None = None) -> float:
    """The floating-point metadata field `key` (required unless a default is given): finite and > 0."""
    import math

    if key not in meta:
        if default is None:
            raise CheckpointError(f"{where}: GGUF metadata lacks the field {key!r}, which genzoo reads")
        return default
    v = meta[key]
    if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
        raise _bad_field(where, key, v, "must be a finite number > 0")
    return float(v)


def meta_token_id(meta: dict, key: str, where, vocab: int, *, inside: bool):
    """A token id field (None when absent): an integer >= 0; inside: one the model embeds, below the vocabulary."""
    v = meta.get(key)
    if v is None:
        return None
    if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
        raise _bad_field(where, key, v, "must be a token id (an integer >= 0)")
    if inside and v >= vocab:
        raise _bad_field(where, key, v, f"must be a token id below the vocabulary size {vocab}")
    return v


def unpermute_qk(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp stores q/k rows per head as (2, Dh/2) interleaved for its rotary kernel; back to Hugging Face's
    (Dh/2, 2) order (transformers' `_reverse_permute_weights`). w (H * Dh, D)."""
    half = w.shape[0] // n_heads // 2
    return w.reshape(n_heads, half, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)  # (H, Dh/2, 2, D) -> (H*Dh, D)


class GGUFArch:
    """An architecture's GGUF layout: `model_type` (the checkpoint format that reads the converted tensors), the
    GGUF <-> Hugging Face tensor names (`keys`: pairs (HF name, GGUF name)), the config, and per-tensor fixes."""

    model_type = ""
    keys: KeyMap

    def hf_config(self, meta: dict, tensor_names: set[str], where: Path) -> dict:
        raise NotImplementedError

    def fix(self, hf_name: str, w: np.ndarray, hf: dict) -> np.ndarray:
        return w


@GGUF_ARCHS.register("llama")
class LlamaGGUF(GGUFArch):
    """Llama-architecture GGUF files (Llama, SmolLM2, ...), read as LlamaForCausalLM."""

    model_type = "llama"
    keys = KeyMap([
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.layers.{i}.input_layernorm.weight", "blk.{i}.attn_norm.weight"),
        ("model.layers.{i}.self_attn.q_proj.{p}", "blk.{i}.attn_q.{p}"),
        ("model.layers.{i}.self_attn.k_proj.{p}", "blk.{i}.attn_k.{p}"),
        ("model.layers.{i}.self_attn.v_proj.{p}", "blk.{i}.attn_v.{p}"),
        ("model.layers.{i}.self_attn.o_proj.{p}", "blk.{i}.attn_output.{p}"),
        ("model.layers.{i}.post_attention_layernorm.weight", "blk.{i}.ffn_norm.weight"),
        ("model.layers.{i}.mlp.gate_proj.weight", "blk.{i}.ffn_gate.weight"),
        ("model.layers.{i}.mlp.up_proj.weight", "blk.{i}.ffn_up.weight"),
        ("model.layers.{i}.mlp.down_proj.weight", "blk.{i}.ffn_down.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ])

    def hf_config(self, meta: dict, tensor_names: set[str], where: Path) -> dict:
        from .schema import MAX_LAYERS

        a = meta["general.architecture"]
        if "rope_freqs.weight" in tensor_names:
            raise CheckpointError(f"{where}: per-frequency rope factors (rope_freqs, Llama 3.1 scaling) are not "
                                  "supported in GGUF files")
        scaling = meta.get(f"{a}.rope.scaling.type", "none")
        if scaling not in ("none", "linear"):
            raise CheckpointError(f"{where}: {a}.rope.scaling.type={scaling!r} is not supported; supported: none, "
                                  "linear")
        # every field read: type and range (a per-layer list of head counts is refused as not an integer), then
        # divisibility, before the config is built
        heads = meta_int(meta, f"{a}.attention.head_count", where)
        kv_heads = meta_int(meta, f"{a}.attention.head_count_kv", where, default=heads)
        d = meta_int(meta, f"{a}.embedding_length", where)
        if heads % kv_heads:
            raise _bad_field(where, f"{a}.attention.head_count_kv", kv_heads,
                             f"must divide {a}.attention.head_count={heads}")
        if f"{a}.attention.key_length" not in meta and d % heads:
            raise _bad_field(where, f"{a}.embedding_length", d,
                             f"must be divisible by {a}.attention.head_count={heads} (no {a}.attention.key_length)")
        head_dim = meta_int(meta, f"{a}.attention.key_length", where, default=d // heads)
        if head_dim % 2:
            raise _bad_field(where, f"{a}.attention.key_length", head_dim, "must be even (rotary positions rotate "
                             "pairs of dimensions)")
        tokens = meta.get("tokenizer.ggml.tokens") or []
        if not isinstance(tokens, list):
            raise _bad_field(where, "tokenizer.ggml.tokens", tokens, "must be a list of strings")
        if f"{a}.vocab_size" not in meta and not tokens:
            raise CheckpointError(f"{where}: GGUF metadata names no vocabulary size ({a}.vocab_size or "
                                  "tokenizer.ggml.tokens)")
        vocab = meta_int(meta, f"{a}.vocab_size", where, default=len(tokens))
        rope = {"rope_type": "default", "rope_theta": meta_float(meta, f"{a}.rope.freq_base", where, default=10000.0)}
        if scaling == "linear":
            rope.update(rope_type="linear", factor=meta_float(meta, f"{a}.rope.scaling.factor", where))
        return {
            "model_type": "llama", "architectures": ["LlamaForCausalLM"],
            "vocab_size": vocab,
            "max_position_embeddings": meta_int(meta, f"{a}.context_length", where, default=2048),
            "hidden_size": d, "intermediate_size": meta_int(meta, f"{a}.feed_forward_length", where),
            "num_hidden_layers": meta_int(meta, f"{a}.block_count", where, top=MAX_LAYERS),
            "num_attention_heads": heads, "num_key_value_heads": kv_heads, "head_dim": head_dim,
            "rms_norm_eps": meta_float(meta, f"{a}.attention.layer_norm_rms_epsilon", where, default=1e-5),
            "rope_parameters": rope, "hidden_act": "silu",
            "attention_bias": "blk.0.attn_q.bias" in tensor_names,
            "tie_word_embeddings": "output.weight" not in tensor_names,
            "bos_token_id": meta_token_id(meta, "tokenizer.ggml.bos_token_id", where, vocab, inside=False),
            "eos_token_id": meta_token_id(meta, "tokenizer.ggml.eos_token_id", where, vocab, inside=False),
            "pad_token_id": meta_token_id(meta, "tokenizer.ggml.padding_token_id", where, vocab, inside=True),
        }

    def fix(self, hf_name: str, w: np.ndarray, hf: dict) -> np.ndarray:
        if hf_name.endswith("q_proj.weight"):
            return unpermute_qk(w, hf["num_attention_heads"])
        if hf_name.endswith("k_proj.weight"):
            return unpermute_qk(w, hf["num_key_value_heads"])
        return w


def arch_of(meta: dict, where: Path) -> GGUFArch:
    name = meta.get("general.architecture")
    if name not in GGUF_ARCHS:
        raise CheckpointError(f"{where}: GGUF architecture {name!r} is not supported; supported: "
                              f"{', '.join(GGUF_ARCHS.names())}")
    return GGUF_ARCHS.get(name)()


def load_gguf(path: str | os.PathLike, *, dtype: torch.dtype | None = None, device: str | torch.device = "cpu",
              allow_nonfinite: bool = False):
    """The model in a GGUF file, dequantised (fp32, or `dtype`), in eval mode. The same checks as an HF directory
    (`interop.load`), in the same order: the metadata fields read (type, range, divisibility), the model's size
    against the memory available, then every tensor's name, shape and kind (integer tensor types in place of
    floating-point ones) before a single tensor is dequantised, then NaN / Inf in the dequantised values (refused
    unless allow_nonfinite=True)."""
    from gguf.quants import dequantize

    from . import build_empty, check_state, config_from_file
    from ..config import GENRES
    from .files import nonfinite_entries, nonfinite_error
    from .formats import FORMATS
    from .meta import assign_weights
    from .schema import fits_in_memory

    path = Path(path)
    reader = read_gguf(path)
    meta = metadata(reader, path)
    arch = arch_of(meta, path)
    hf = arch.hf_config(meta, {t.name for t in reader.tensors}, path)
    fmt = FORMATS.get(arch.model_type)()
    config = config_from_file(fmt, hf, path)  # the HF schema check of the converted fields, errors named
    # dequantised tensors are memory of their own (no file mapping serves them): no spare
    fits_in_memory(lambda: GENRES.get(config.genre)(config), device=device, dtype=dtype, where=f"{path}: ")
    model = build_empty(config, path)
    # names, shapes and kinds first, on shape-only tensors: a hostile tensor is refused before it is dequantised
    shapes, unknown = {}, []
    for t in reader.tensors:
        name = arch.keys.to_genzoo(t.name)
        if name is None:
            unknown.append(t.name)
            continue
        kind = _INT_KINDS.get(t.tensor_type.name, torch.float32)
        shapes[name] = torch.empty(tuple(int(n) for n in reversed(t.shape.tolist())), dtype=kind, device="meta")
    state, unexpected = fmt.state_from_hf(shapes, config)
    check_state(model, state, unexpected + unknown, path)
    tensors, bad = {}, []
    for t in reader.tensors:
        name = arch.keys.to_genzoo(t.name)
        try:
            w = dequantize(t.data, t.tensor_type)  # (out, in) fp32, or the stored float type
        except (NotImplementedError, ValueError) as e:
            raise CheckpointError(f"{path}: tensor {t.name}: {e}") from None
        w = np.ascontiguousarray(arch.fix(name, w, hf))
        w = w if w.flags.writeable else w.copy()  # an unquantised tensor is a view of the read-only mapping
        w = torch.from_numpy(w).to(torch.float32)
        if not allow_nonfinite:
            bad += nonfinite_entries({t.name: w})  # NaN / Inf in the dequantised values, named by GGUF name
        tensors[name] = w.to(dtype or torch.float32)  # one tensor in both dtypes at a time
    if bad:
        raise nonfinite_error(path, bad)
    state, unexpected = fmt.state_from_hf(tensors, config)
    state = check_state(model, state, unexpected, path)
    assign_weights(model, state, model.tied_parameters(), dtype=dtype, device=device, where=path)
    if dtype is not None:
        model.to(dtype)
    return model.to(device).eval()


def gguf_tokenizer(path: str | os.PathLike):
    """The tokenizer described by a GGUF file's metadata, as transformers builds it: a byte-level BPE
    (`tokenizer.ggml.model` = "gpt2") from the vocabulary and merges, control tokens matched whole as special tokens,
    user-defined ones as added tokens, a BOS prepended when `add_bos_token` says so; with the special tokens and
    `tokenizer.chat_template`."""
    from tokenizers import AddedToken, Tokenizer as HFTokenizer, decoders, models, pre_tokenizers, processors

    from ..tokenizers import Tokenizer

    path = Path(path)
    meta = metadata(read_gguf(path), path)
    kind = meta.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise CheckpointError(f"{path}: tokenizer.ggml.model={kind!r} is not supported; supported: 'gpt2' "
                              "(byte-level BPE)")
    tokens = meta.get("tokenizer.ggml.tokens")
    if not (isinstance(tokens, list) and tokens and all(isinstance(t, str) for t in tokens)):
        raise _bad_field(path, "tokenizer.ggml.tokens", tokens, "must be a non-empty list of strings")
    types = meta.get("tokenizer.ggml.token_type") or []
    if not (isinstance(types, list) and all(isinstance(k, int) and not isinstance(k, bool) for k in types)):
        raise _bad_field(path, "tokenizer.ggml.token_type", types, "must be a list of integers (token kinds)")
    merges = meta.get("tokenizer.ggml.merges") or []
    if not (isinstance(merges, list) and all(isinstance(m, str) and " " in m for m in merges)):
        raise _bad_field(path, "tokenizer.ggml.merges", merges, "must be a list of strings 'left right'")
    merges = [tuple(m.split(" ", 1)) for m in merges]
    try:
        tok = HFTokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges, continuing_subword_prefix="",
                                     end_of_word_suffix="", fuse_unk=False))
    except Exception as e:  # a merge of tokens the vocabulary lacks
        raise CheckpointError(f"{path}: the GGUF tokenizer metadata is inconsistent ({e})") from None
    template = meta.get("tokenizer.chat_template")
    if template is not None and not isinstance(template, str):
        raise _bad_field(path, "tokenizer.chat_template", template, "must be a string (a Jinja template)")
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = set(pre_tokenizers.ByteLevel.alphabet())
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t, k in zip(tokens, types)
                            if k == 3 and set(t) <= alphabet])  # 3: control
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t, k in zip(tokens, types) if k == 4])

    def token(key):
        i = meta.get(f"tokenizer.ggml.{key}_token_id")
        return tokens[i] if i is not None and 0 <= i < len(tokens) else None

    bos = token("bos")
    if meta.get("tokenizer.ggml.add_bos_token") and bos is not None:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, tokens.index(bos))])
    return Tokenizer(tok, token("eos"), token("padding"), chat_template=meta.get("tokenizer.chat_template"),
                     bos_token=bos, unk_token=token("unknown"))
