"""`genzoo bench decode`: greedy decoding tokens/s, genzoo vs `transformers`, same Llama-style ~25M
model and weights; prompt 32 tokens, 128 new tokens, batch 1 and batch 8.

Each side runs twice, eager and compiled; every compilation happens in the untimed first run:
- genzoo: `generate()`, and `generate(compile=True)` (the decoding step through torch.compile);
- `transformers`: its default `generate` (dynamic cache, eager), and its static cache with its own torch.compile
  of the forward (`cache_implementation="static"` and a `CompileConfig` that allows the CPU).
The ratios divide by `transformers`' default generate unless named otherwise.

The roofline beside them: `common.linear_floor`, the step's matrix products alone through torch's `F.linear` (every
weight read once per step). A batch-1 step is memory-bound: no implementation on torch's matmul decodes faster than
`batch / floor` tokens/s on the machine, so the ratio to transformers can reach at most its ceiling / transformers'
rate; the bench prints that bound beside the measured ratios."""

from __future__ import annotations

import torch

from . import BENCHMARKS
from .common import compare, footer, header, hf_twin, linear_floor, rate, ratio, speedup


def _hf_compiled(ref, ids, new: int):
    """`transformers`' compiled decoding on this device, or None where this version cannot be asked for it."""
    import transformers

    config = transformers.CompileConfig()
    if not hasattr(config, "_compile_all_devices"):  # transformers compiles on CUDA/XPU only unless told
        return None
    config._compile_all_devices = True
    return lambda: ref.generate(ids, max_new_tokens=new, do_sample=False, eos_token_id=None, pad_token_id=0,
                                cache_implementation="static", compile_config=config)


@BENCHMARKS.register("decode")
def run(preset: str = "llama-25m", prompt: int = 32, new: int = 128, batches=(1, 8), repeats: int = 5) -> dict:
    import genzoo

    torch.manual_seed(0)
    ours = genzoo.build(preset).eval()
    ref = hf_twin(ours)
    n = sum(p.numel() for p in ours.parameters())
    header(f"decode: {preset} ({n / 1e6:.1f}M parameters), prompt {prompt}, {new} new tokens; tokens/s, median "
           f"[slowest-fastest] of {repeats} interleaved rounds")
    results = {}
    for b in batches:
        ids = torch.randint(0, ours.config.vocab_size, (b, prompt))
        runs = {
            "genzoo": lambda: ours.generate(ids, max_new_tokens=new),
            "genzoo_compiled": lambda: ours.generate(ids, max_new_tokens=new, compile=True),
            "transformers": lambda: ref.generate(ids, max_new_tokens=new, do_sample=False, eos_token_id=None,
                                                 pad_token_id=0),
        }
        hf_compiled = _hf_compiled(ref, ids, new)
        if hf_compiled is not None:
            runs["transformers_compiled"] = hf_compiled
        tokens = {k: f() for k, f in runs.items()}  # the compiled runs compile here
        same = {k: torch.equal(v, tokens["transformers"]) for k, v in tokens.items()}
        t = compare(runs, repeats=repeats, warmup=0)
        tps = {k: b * new / v for k, v in t.items()}
        ratios = {k: speedup(t[k], t["transformers"]) for k in ("genzoo", "genzoo_compiled")}
        print(f"  batch {b}: " + " | ".join(f"{k.replace('_', ' ')} {rate(v, b * new)}" for k, v in t.items()))
        print(f"    genzoo / transformers: eager {ratio(t['genzoo'], t['transformers'])}, compiled "
              f"{ratio(t['genzoo_compiled'], t['transformers'])}"
              + (f", compiled / transformers compiled {ratio(t['genzoo_compiled'], t['transformers_compiled'])}"
                 if hf_compiled is not None else ", transformers compiled: not available in this version")
              + f" | identical tokens: {all(same.values())}")
        floor = linear_floor(ours, b)
        ceiling = b / floor  # tokens/s
        share = {k: tps[k] / ceiling for k in tps}
        print(f"    roofline: the {sum(isinstance(m, torch.nn.Linear) for m in ours.modules())} linear layers alone "
              f"take {floor * 1e3:.2f} ms per step (F.linear) -> at most {ceiling:.1f} tokens/s, "
              f"{ceiling / tps['transformers']:.2f}x transformers' median; reached: "
              + ", ".join(f"{k.replace('_', ' ')} {v:.0%}" for k, v in share.items()))
        results[f"batch{b}"] = {**{f"{k}_tok_s": v for k, v in tps.items()}, "ratio": ratios["genzoo"][0],
                                "ratio_range": ratios["genzoo"][1:], "ratio_compiled": ratios["genzoo_compiled"][0],
                                "ratio_compiled_range": ratios["genzoo_compiled"][1:],
                                "identical": all(same.values()), "linear_floor_s": floor,
                                "ceiling_tok_s": ceiling, "ceiling_ratio": ceiling / tps["transformers"],
                                "share_of_ceiling": share}
    footer()
    return results
