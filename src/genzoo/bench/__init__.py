"""Benchmarks: genzoo against the reference implementation on the same config and weights, in one
process, printed as a ratio. `genzoo bench NAME` runs one; `BENCHMARKS` lists them."""

from __future__ import annotations

from ..registry import Registry

BENCHMARKS: Registry = Registry("benchmark")


def _register():
    from . import decode, encoder, index, load, moe, quant, seq2seq, serve, train_step  # noqa: F401


_register()
