"""`genzoo bench encoder`: sequences/s of an encoder forward pass, genzoo vs `transformers`, same weights.
Two batches of 32: lengths spread evenly from 16 to 512 (about half of the padded batch is padding,
which genzoo skips by running unpadded), and 32 sequences of equal length."""

from __future__ import annotations

import torch

from . import BENCHMARKS
from .common import compare, footer, header, hf_twin, rate, ratio, speedup

PRESETS = {
    "bert": dict(d_model=256, n_layers=4, n_heads=4, d_ff=1024, vocab_size=8192),
    "modernbert": dict(d_model=256, n_layers=4, n_heads=4, d_ff=512, vocab_size=8192, local_window=128,
                       pad_token_id=0),
    "deberta-v2": dict(d_model=256, n_layers=4, n_heads=4, d_ff=1024, vocab_size=8192, position_buckets=256,
                       max_relative_positions=512),
}


@BENCHMARKS.register("encoder")
def run(batch: int = 32, max_len: int = 512, equal_len: int = 256, repeats: int = 5) -> dict:
    import genzoo

    header(f"encoder: batch {batch}, sequences/s, median [slowest-fastest] of {repeats} interleaved rounds")
    results = {}
    for preset, overrides in PRESETS.items():
        torch.manual_seed(0)
        ours = genzoo.build(preset, **overrides).eval()
        ref = hf_twin(ours, "AutoModel")
        lengths = torch.linspace(16, max_len, batch).round().long()
        ids = torch.randint(5, ours.config.vocab_size, (batch, max_len))
        ragged = (torch.arange(max_len)[None] < lengths[:, None]).long()
        pad_frac = 1 - ragged.float().mean().item()
        print(f"  {preset} ({sum(p.numel() for p in ours.parameters()) / 1e6:.1f}M parameters)")
        for name, ids_, mask in (
            (f"lengths 16..{max_len} ({100 * pad_frac:.0f}% padding)", ids * ragged, ragged),
            (f"equal length {equal_len}", ids[:, :equal_len], torch.ones(batch, equal_len, dtype=torch.long)),
        ):
            with torch.no_grad():
                a = ours(ids_, attention_mask=mask).last_hidden_state
                b = ref(input_ids=ids_, attention_mask=mask).last_hidden_state
                diff = (a - b)[mask.bool()].abs().max().item()
                t = compare({"genzoo": lambda: ours(ids_, attention_mask=mask),
                             "transformers": lambda: ref(input_ids=ids_, attention_mask=mask)}, repeats=repeats)
            sps = {k: batch / v for k, v in t.items()}
            mid, lo, hi = speedup(t["genzoo"], t["transformers"])
            print(f"    {name:32s} genzoo {rate(t['genzoo'], batch)} seq/s | transformers "
                  f"{rate(t['transformers'], batch)} seq/s | ratio {ratio(t['genzoo'], t['transformers'])} | "
                  f"max |diff| {diff:.1e}")
            results[f"{preset}: {name}"] = {**{f"{k}_seq_s": v for k, v in sps.items()}, "ratio": mid,
                                            "ratio_range": (lo, hi)}
    footer()
    return results
