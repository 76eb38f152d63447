"""Tiny GGUF files for tests, written with the `gguf` package's own writer (`GGUFWriter`): a genzoo llama-tiny model's
weights under llama.cpp's tensor names and q/k row order, with its metadata, and ways to make them hostile (a
metadata field changed, removed or of another type; a tensor replaced)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import genzoo

DROP = "DROP"  # a metadata value that removes the field


def llama_metadata(config) -> dict:
    a = "llama"
    return {f"{a}.block_count": config.n_layers, f"{a}.embedding_length": config.d_model,
            f"{a}.feed_forward_length": config.d_ff, f"{a}.attention.head_count": config.n_heads,
            f"{a}.attention.head_count_kv": config.n_kv_heads, f"{a}.context_length": config.max_positions,
            f"{a}.vocab_size": config.vocab_size, f"{a}.rope.freq_base": float(config.rope_theta),
            f"{a}.attention.layer_norm_rms_epsilon": float(config.norm_eps)}


def permute_qk(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Hugging Face's q/k row order -> llama.cpp's (the inverse of `interop.gguf.unpermute_qk`). w (H * Dh, D)."""
    half = w.shape[0] // n_heads // 2
    return w.reshape(n_heads, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)  # (H, Dh/2, 2, D)


def gguf_tensors(model) -> dict[str, np.ndarray]:
    """The model's weights under GGUF names (fp32), q/k rows in llama.cpp's order."""
    from genzoo.interop import FORMATS
    from genzoo.interop.gguf import LlamaGGUF

    config = model.config
    hf = FORMATS.get("llama")().state_to_hf(model.state_dict(), config)
    out = {}
    for name, t in hf.items():
        w = t.detach().float().numpy().copy()
        if name.endswith("q_proj.weight"):
            w = permute_qk(w, config.n_heads)
        elif name.endswith("k_proj.weight"):
            w = permute_qk(w, config.n_kv_heads)
        out[LlamaGGUF.keys.to_hf(name)] = w
    return out


def _add(writer, key: str, value) -> None:
    from gguf import GGUFValueType

    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        (writer.add_int64 if value < 0 or value >= 2**32 else writer.add_uint32)(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    elif isinstance(value, list):
        writer.add_array(key, value)
    else:
        writer.add_key_value(key, value, GGUFValueType.STRING)


def write_gguf(path: Path, model=None, meta: dict | None = None, tensors: dict | None = None) -> Path:
    """Write `model` (default: a seeded llama-tiny with untied embeddings) as a GGUF file. meta: fields to change
    (DROP removes one); tensors: GGUF name -> array to put in place of the model's (None removes it)."""
    if model is None:
        torch.manual_seed(0)
        model = genzoo.build("llama-tiny", tie_embeddings=False)
    from gguf import GGUFWriter

    fields = {**llama_metadata(model.config), **(meta or {})}
    arrays = {**gguf_tensors(model), **(tensors or {})}
    w = GGUFWriter(str(path), "llama")
    for k, v in fields.items():
        if v is not DROP:
            _add(w, k, v)
    for name, a in arrays.items():
        if a is not None:
            w.add_tensor(name, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)
