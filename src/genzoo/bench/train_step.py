"""`genzoo bench train-step`: training tokens/s (forward, backward, AdamW step), genzoo vs `transformers`, same
model and weights, in fp32 and, where the hardware has bf16 (`genzoo.precision`: AMX / avx512_bf16 CPU flags,
CUDA), in bf16 autocast with fp32 master weights (what `precision: auto` trains with); model FLOPs utilisation
against the measured matmul peak of the same precision.

Model FLOPs per token: 6 N (N = parameters in matmuls, including the LM head) + 12 L T d_attn for the
attention scores and weighted sum (Chowdhery et al., "PaLM", 2022, appendix B)."""

from __future__ import annotations

import torch

from . import BENCHMARKS
from ..precision import autocast, bf16_support
from .common import compare, footer, header, hf_twin, matmul_peak_flops, rate, ratio, speedup


def flops_per_token(model, seq_len: int) -> float:
    cfg = model.config
    n = sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and not name.startswith("embed."))
    if cfg.tie_embeddings:
        n += model.embed.weight.numel()  # the tied head is a matmul too
    return 6 * n + 12 * cfg.n_layers * seq_len * cfg.n_heads * cfg.head_dim


@BENCHMARKS.register("train-step")
def run(preset: str = "llama-25m", batch: int = 8, seq_len: int = 256, repeats: int = 5,
        precisions: tuple[str, ...] = ("fp32", "bf16")) -> dict:
    """precisions: those to run; bf16 is skipped (and said so) where the hardware has no bf16."""
    import genzoo

    torch.manual_seed(0)
    ours = genzoo.build(preset).train()
    ref = hf_twin(ours).train()
    ids = torch.randint(0, ours.config.vocab_size, (batch, seq_len))
    opts = {"genzoo": torch.optim.AdamW(ours.parameters(), lr=1e-4),
            "transformers": torch.optim.AdamW(ref.parameters(), lr=1e-4)}
    support = bf16_support("cpu")
    header(f"train-step: {preset}, batch {batch} x {seq_len} tokens, AdamW; tokens/s, median [slowest-fastest] of "
           f"{repeats} interleaved rounds; bf16 autocast {'available' if support.supported else 'not available'} "
           f"({support.reason})")

    def step(model, opt, dtype):
        def f():
            with autocast("cpu", dtype):
                loss = model(ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss
        return f

    # same weights, same batch: the first losses agree
    with torch.no_grad():
        l_ours, l_ref = ours(ids, labels=ids).loss, ref(ids, labels=ids).loss
    print(f"  first loss: genzoo {l_ours.item():.5f}, transformers {l_ref.item():.5f}")
    fpt = flops_per_token(ours, seq_len)
    tokens = batch * seq_len
    out = {}
    for precision in precisions:
        if precision == "bf16" and not support.supported:
            print(f"  bf16: skipped, {support.reason} (bf16 would be emulated through fp32)")
            continue
        dtype = torch.bfloat16 if precision == "bf16" else None
        t = compare({"genzoo": step(ours, opts["genzoo"], dtype),
                     "transformers": step(ref, opts["transformers"], dtype)}, repeats=repeats)
        peak = matmul_peak_flops(dtype=torch.bfloat16 if dtype else torch.float32)
        res = {"peak_flops": peak}
        for k, v in t.items():
            mfu = tokens / v * fpt / peak
            print(f"  {precision} {k:13s} {rate(v, tokens)} tok/s   MFU {100 * mfu:5.1f}% of the measured "
                  f"{precision} matmul peak ({peak / 1e9:.0f} GFLOP/s)")
            res[k] = {"tok_s": tokens / v, "mfu": mfu, "seconds": v.times}
        mid, lo, hi = speedup(t["genzoo"], t["transformers"])
        res["ratio"], res["ratio_range"] = mid, (lo, hi)
        print(f"  {precision} genzoo / transformers {ratio(t['genzoo'], t['transformers'])}")
        out[precision] = res
    if "fp32" in out and "bf16" in out:
        out["bf16_over_fp32"] = out["bf16"]["genzoo"]["tok_s"] / out["fp32"]["genzoo"]["tok_s"]
        print(f"  genzoo bf16 / genzoo fp32: {out['bf16_over_fp32']:.2f}x (medians)")
    out["ratio"] = out["fp32"]["ratio"] if "fp32" in out else None
    footer()
    return out
