"""The rows of a running batch in one static KV cache (`genzoo.nn.StaticKVCache`), so that requests join and
leave between decoding steps (continuous batching, Yu et al. 2022, Orca, OSDI '22: iteration-level scheduling).

Layout: row r of the cache holds one request; every row writes its next token at the same slot `length` (the
cache's shared write position), so a decoding step is one forward of (n, 1) tokens over rows [0, n). A request
whose prompt has p tokens joins with its prompt's keys and values right-aligned at [length - p, length); the
slots before its start are marked invalid (`key_valid`, the cache's left-padding mask), exactly as a left-padded
batch of `generate` holds a shorter prompt, and its positions count its own tokens only (position_ids =
slot - start). Rotary and learned positions therefore see what the request sees alone, and sliding windows and
ALiBi, which count slot distances, see the same distances (a row's tokens are contiguous slots).

    slot:   0   1   2   3   4   5   6   7  (length = 8)
    row 0:  a0  a1  a2  a3  a4  a5  a6  a7     started at 0
    row 1:  .   .   .   .   .   b0  b1  b2     joined with a 3-token prompt when length was 7
    row 2:  .   .   c0  c1  c2  c3  c4  c5

A prompt longer than `length` shifts every row right first; when `length` reaches the cache's end, every row
shifts left by the earliest start (`compact`). A finished row is replaced by the last row (`remove`), so the
running rows stay [0, n) and a step never computes an empty row.
"""

from __future__ import annotations

import copy

import torch

from ..nn import StaticKVCache


class Slots:
    def __init__(self, cache: StaticKVCache):
        self.cache = cache
        rows, t = cache.k[0].shape[0], cache.max_len
        self.valid = torch.zeros(rows, t, dtype=torch.bool, device=cache.k[0].device)  # (rows, T_max)
        self.start: list[int] = []  # per running row: its first slot
        self.rows = rows

    @property
    def n(self) -> int:
        return len(self.start)

    @property
    def length(self) -> int:
        return self.cache.length

    @property
    def max_len(self) -> int:
        return self.cache.max_len

    def view(self) -> StaticKVCache:
        """The cache of rows [0, n): the same memory (views), written in place by a forward; key_valid only when a
        row has invalid slots (otherwise the step takes the unpadded path that `generate` takes)."""
        n = self.n
        v = copy.copy(self.cache)
        v.k = [t[:n] for t in self.cache.k]  # L x (n, Hkv, T_max, Dh)
        v.v = [t[:n] for t in self.cache.v]
        v.key_valid = self.valid[:n] if any(self.start) else None  # (n, T_max)
        return v

    def positions(self) -> torch.Tensor | None:
        """(n, 1) the position of each row's next token (its own count), None when every row starts at 0."""
        if not any(self.start):
            return None
        start = torch.tensor(self.start, device=self.valid.device)
        return (self.length - start)[:, None]

    def reset(self, length: int) -> None:
        self.cache.length = length

    def place(self, src: StaticKVCache, src_row: int, p: int) -> int:
        """Copy the last p cached positions of row `src_row` of `src` (a prefilled prompt) to a new row ending at
        `length`; -> the new row's index."""
        r, end, t = self.n, self.length, src.length
        for dst, s in ((self.cache.k, src.k), (self.cache.v, src.v)):
            for layer in range(len(dst)):
                dst[layer][r, :, end - p:end] = s[layer][src_row, :, t - p:t]  # (Hkv, p, Dh)
        self.valid[r] = False
        self.valid[r, end - p:] = True
        self.start.append(end - p)
        return r

    def remove(self, r: int) -> None:
        """Free row r: the last row moves into it."""
        last = self.n - 1
        if r != last:
            end = self.length
            for bufs in (self.cache.k, self.cache.v):
                for b in bufs:
                    b[r, :, :end] = b[last, :, :end]  # (Hkv, end, Dh)
            self.valid[r] = self.valid[last]
            self.start[r] = self.start[last]
        self.start.pop()

    def shift(self, d: int) -> None:
        """Move every running row by d slots (d > 0: right, to make room for a longer prompt; d < 0: left)."""
        if d == 0:
            return
        n, end = self.n, self.length
        src, dst = (slice(0, end), slice(d, end + d)) if d > 0 else (slice(-d, end), slice(0, end + d))
        for bufs in (self.cache.k, self.cache.v):
            for b in bufs:
                b[:n, :, dst] = b[:n, :, src].clone()  # (n, Hkv, end - |d| or end, Dh)
        self.valid[:n, dst] = self.valid[:n, src].clone()
        if d > 0:
            self.valid[:n, :d] = False
        self.valid[:n, end + d:] = True
        self.start = [s + d for s in self.start]
        self.cache.length = end + d

    def compact(self) -> None:
        """Shift left by the earliest start, so the slots before it are reused."""
        if self.start:
            self.shift(-min(self.start))
