"""A static key/value cache: one preallocated (B, Hkv, T_max, Dh) buffer per layer, written in place.

Nothing is reallocated while decoding, so each step costs one forward. `length` is the number of
positions written so far (a Python int, shared by the batch); `key_valid` (B, T_max) marks which
cached positions are real tokens (False for left padding) and is None when the batch has no padding.
"""

from __future__ import annotations

import torch

from ..errors import InputError


class StaticKVCache:
    def __init__(
        self,
        n_layers: int,
        batch: int,
        n_kv_heads: int,
        max_len: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        key_valid: torch.Tensor | None = None,
    ):
        shape = (batch, n_kv_heads, max_len, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.max_len = max_len
        self.length = 0
        self.key_valid = None
        if key_valid is not None:  # (B, T_prompt) -> (B, T_max), generated positions are valid
            self.key_valid = torch.ones(batch, max_len, dtype=torch.bool, device=device)
            self.key_valid[:, : key_valid.shape[1]] = key_valid.bool()

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor, start: int):
        """Write k, v (B, Hkv, T, Dh) at [start, start + T); return the cached keys/values up to there."""
        end = start + k.shape[2]
        if end > self.max_len:
            raise InputError(f"KV cache holds {self.max_len} positions; writing up to {end}")
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]  # 2 x (B, Hkv, end, Dh)

    def reorder(self, index: torch.Tensor) -> None:
        """Beam search: row r of every layer becomes a copy of row index[r] (B,), up to the written length."""
        n = self.length
        for buf in (*self.k, *self.v):
            buf[:, :, :n] = buf[index, :, :n]
        if self.key_valid is not None:
            self.key_valid = self.key_valid[index]
