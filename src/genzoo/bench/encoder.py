"""`genzoo bench encoder`: sequences/s of an encoder forward pass, genzoo vs `transformers`, same weights.
Two batches of 32: lengths spread evenly from 16 to 512 (about half of the padded batch is padding,
which genzoo skips by running unpadded), and 32 sequences of equal length."""

from __future__ import annotations

import torch

from . import BENCHMARKS
from .common import compare, hf_twin

PRESETS = {
    "bert": dict(d_model=256, n_layers=4, n_heads=4, d_ff=1024, vocab_size=8192),
    "modernbert": dict(d_model=256, n_layers=4, n_heads=4, d_ff=512, vocab_size=8192, local_window=128,
                       pad_token_id=0),
    "deberta-v2": dict(d_model=256, n_layers=4, n_heads=4, d_ff=1024, vocab_size=8192, position_buckets=256,
                       max_relative_positions=512),
}


@BENCHMARKS.register("encoder")
def run(batch: int = 32, max_len: int = 512, equal_len: int = 256, repeats: int = 3) -> dict:
    import genzoo

    results = {}
    for preset, overrides in PRESETS.items():
        torch.manual_seed(0)
        ours = genzoo.build(preset, **overrides).eval()
        ref = hf_twin(ours, "AutoModel")
        lengths = torch.linspace(16, max_len, batch).round().long()
        ids = torch.randint(5, ours.config.vocab_size, (batch, max_len))
        ragged = (torch.arange(max_len)[None] < lengths[:, None]).long()
        pad_frac = 1 - ragged.float().mean().item()
        print(f"encoder: {preset} ({sum(p.numel() for p in ours.parameters()) / 1e6:.1f}M parameters), batch {batch}, "
              f"{torch.get_num_threads()} threads")
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
            ratio = sps["genzoo"] / sps["transformers"]
            print(f"  {name:32s} genzoo {sps['genzoo']:7.1f} seq/s | transformers {sps['transformers']:7.1f} seq/s | "
                  f"ratio {ratio:.2f}x | max |diff| {diff:.1e}")
            results[f"{preset}: {name}"] = {**{f"{k}_seq_s": v for k, v in sps.items()}, "ratio": ratio}
    return results
