"""`genzoo bench quant`: what low-bit inference buys on this machine. The same Llama-style ~25M model (random
weights) as fp32, bf16, int8 (int8 activations x int8 weights), int8 weight-only and int4 weight-only
(`genzoo.quantize`, torchao kernels): model bytes as stored, greedy decoding tokens/s at batch 1 (prompt 32,
`new` new tokens, static KV cache) and prefill tokens/s (batch 8 x 128 tokens, one forward), each as a ratio to
fp32. Eager execution; medians of interleaved repeats.

Quality is not measured here (random weights have no meaningful greedy tokens): the tests compare greedy tokens
with fp32 on a trained model, and `genzoo experiment outliers` on the trained arms.
"""

from __future__ import annotations

import torch

from . import BENCHMARKS
from .common import compare, machine

SCHEMES = ("fp32", "bf16", "int8", "int8-weight", "int4-weight")


@BENCHMARKS.register("quant")
def run(preset: str = "llama-25m", prompt: int = 32, new: int = 32, prefill: tuple[int, int] = (8, 128),
        repeats: int = 3, schemes: tuple[str, ...] = SCHEMES) -> dict:
    import genzoo
    from ..quant import model_bytes

    torch.manual_seed(0)
    base = genzoo.build(preset).eval()
    models = {s: genzoo.quantize(base, s) for s in schemes}
    n = sum(p.numel() for p in base.parameters())
    print(f"quant: {preset} ({n / 1e6:.1f}M parameters), decode batch 1: prompt {prompt} + {new} new tokens; "
          f"prefill {prefill[0]} x {prefill[1]} tokens; eager")
    print(f"machine: {machine()}")
    ids = torch.randint(0, base.config.vocab_size, (1, prompt))
    block = torch.randint(0, base.config.vocab_size, prefill)
    decode = compare({s: (lambda m=m: m.generate(ids, max_new_tokens=new)) for s, m in models.items()},
                     repeats=repeats)
    with torch.inference_mode():
        fill = compare({s: (lambda m=m: m(block)) for s, m in models.items()}, repeats=repeats)
    results = {}
    print(f"  {'scheme':12s} {'MB':>8s} {'x fp32':>7s} {'decode tok/s':>13s} {'x fp32':>7s} "
          f"{'prefill tok/s':>14s} {'x fp32':>7s}")
    for s in schemes:
        size, dec, pre = model_bytes(models[s]), new / decode[s], block.numel() / fill[s]
        results[s] = {"bytes": size, "decode_tok_s": dec, "prefill_tok_s": pre}
        ref = results.get("fp32", results[s])
        print(f"  {s:12s} {size / 1e6:8.2f} {size / ref['bytes']:6.2f}x {dec:13.1f} "
              f"{dec / ref['decode_tok_s']:6.2f}x {pre:14.1f} {pre / ref['prefill_tok_s']:6.2f}x")
    return results
