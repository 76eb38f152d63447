"""`genzoo bench train-step`: training tokens/s (forward, backward, AdamW step) in fp32, genzoo vs
`transformers`, same model and weights; model FLOPs utilisation against the measured matmul peak.

Model FLOPs per token: 6 N (N = parameters in matmuls, including the LM head) + 12 L T d_attn for the
attention scores and weighted sum (Chowdhery et al., "PaLM", 2022, appendix B)."""

from __future__ import annotations

import torch

from . import BENCHMARKS
from .common import compare, hf_twin, matmul_peak_flops


def flops_per_token(model, seq_len: int) -> float:
    cfg = model.config
    n = sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and not name.startswith("embed."))
    if cfg.tie_embeddings:
        n += model.embed.weight.numel()  # the tied head is a matmul too
    return 6 * n + 12 * cfg.n_layers * seq_len * cfg.n_heads * cfg.head_dim


@BENCHMARKS.register("train-step")
def run(preset: str = "llama-25m", batch: int = 8, seq_len: int = 256, repeats: int = 5) -> dict:
    import genzoo

    torch.manual_seed(0)
    ours = genzoo.build(preset).train()
    ref = hf_twin(ours).train()
    ids = torch.randint(0, ours.config.vocab_size, (batch, seq_len))
    opts = {"genzoo": torch.optim.AdamW(ours.parameters(), lr=1e-4),
            "transformers": torch.optim.AdamW(ref.parameters(), lr=1e-4)}

    def step(model, opt):
        def f():
            loss = model(ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss
        return f

    # same weights, same batch: the first losses agree
    with torch.no_grad():
        l_ours, l_ref = ours(ids, labels=ids).loss, ref(ids, labels=ids).loss
    t = compare({"genzoo": step(ours, opts["genzoo"]), "transformers": step(ref, opts["transformers"])},
                repeats=repeats)
    peak = matmul_peak_flops()
    fpt = flops_per_token(ours, seq_len)
    tokens = batch * seq_len
    print(f"train-step: {preset}, batch {batch} x {seq_len} tokens, fp32, {torch.get_num_threads()} threads; "
          f"loss genzoo {l_ours.item():.5f} vs transformers {l_ref.item():.5f}")
    out = {"peak_flops": peak}
    for k, v in t.items():
        mfu = tokens / v * fpt / peak
        print(f"  {k:13s} {tokens / v:9.1f} tok/s   MFU {100 * mfu:5.1f}% of measured fp32 matmul peak "
              f"({peak / 1e9:.0f} GFLOP/s)")
        out[k] = {"tok_s": tokens / v, "mfu": mfu}
    out["ratio"] = out["genzoo"]["tok_s"] / out["transformers"]["tok_s"]
    print(f"  ratio {out['ratio']:.2f}x")
    return out
