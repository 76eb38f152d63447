"""`genzoo bench decode`: greedy decoding tokens/s, genzoo vs `transformers`, same Llama-style ~25M
model and weights; prompt 32 tokens, 128 new tokens, batch 1 and batch 8."""

from __future__ import annotations

import torch

from . import BENCHMARKS
from .common import compare, hf_twin


@BENCHMARKS.register("decode")
def run(preset: str = "llama-25m", prompt: int = 32, new: int = 128, batches=(1, 8), repeats: int = 3) -> dict:
    import genzoo

    torch.manual_seed(0)
    ours = genzoo.build(preset).eval()
    ref = hf_twin(ours)
    n = sum(p.numel() for p in ours.parameters())
    print(f"decode: {preset} ({n / 1e6:.1f}M parameters), prompt {prompt}, {new} new tokens, "
          f"{torch.get_num_threads()} threads")
    results = {}
    for b in batches:
        ids = torch.randint(0, ours.config.vocab_size, (b, prompt))
        a = ours.generate(ids, max_new_tokens=new)
        r = ref.generate(ids, max_new_tokens=new, do_sample=False, eos_token_id=None, pad_token_id=0)
        same = torch.equal(a, r)
        t = compare({
            "genzoo": lambda: ours.generate(ids, max_new_tokens=new),
            "transformers": lambda: ref.generate(ids, max_new_tokens=new, do_sample=False, eos_token_id=None,
                                                 pad_token_id=0),
        }, repeats=repeats)
        tps = {k: b * new / v for k, v in t.items()}
        ratio = tps["genzoo"] / tps["transformers"]
        print(f"  batch {b}: genzoo {tps['genzoo']:8.1f} tok/s | transformers {tps['transformers']:8.1f} tok/s | "
              f"ratio {ratio:.2f}x | identical tokens: {same}")
        results[f"batch{b}"] = {**{f"{k}_tok_s": v for k, v in tps.items()}, "ratio": ratio, "identical": same}
    return results
