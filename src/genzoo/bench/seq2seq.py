"""`genzoo bench seq2seq`: T5 generation throughput, greedy and 4-beam, genzoo vs `transformers`, same weights (a
t5-small shaped v1.1 model, 4+4 layers), batch 8 of 64-token inputs, 64 new tokens. No eos is ever produced on
either side, so every row makes exactly `new` tokens and the two sides do the same work. Greedy also runs genzoo's
`generate(compile=True)` (the decoder step through torch.compile; compiled in an untimed first run). Each mode prints
the roofline of its step (`common.linear_floor`)."""

from __future__ import annotations

import torch

from . import BENCHMARKS
from .common import compare, footer, header, hf_twin, linear_floor, rate, ratio, speedup


def once_per_generate(name: str) -> bool:
    """The linear layers a decoding step does not run: the encoder's, and cross-attention's keys and values (the
    encoder output is projected once per generate)."""
    return name.startswith("encoder.") or ".cross_attn.k_proj" in name or ".cross_attn.v_proj" in name


@BENCHMARKS.register("seq2seq")
def run(batch: int = 8, src_len: int = 64, new: int = 64, beams: int = 4, repeats: int = 5) -> dict:
    import genzoo

    torch.manual_seed(0)
    ours = genzoo.build("t5-v1.1", n_layers=4, n_decoder_layers=4, vocab_size=8192).eval()
    ref = hf_twin(ours, "T5ForConditionalGeneration")
    ref.generation_config.eos_token_id = None  # no eos: `new` tokens per row (genzoo: an id no token has)
    ids = torch.randint(2, 8192, (batch, src_len))
    header(f"seq2seq: t5-v1.1 4+4 layers ({sum(p.numel() for p in ours.parameters()) / 1e6:.1f}M parameters), "
           f"batch {batch}, {src_len} source tokens, {new} new tokens; output tokens/s, median [slowest-fastest] of "
           f"{repeats} interleaved rounds")
    results = {}
    for name, k in [("greedy", 1), (f"beam{beams}", beams)]:
        fns = {"genzoo": lambda k=k: ours.generate(ids, max_new_tokens=new, eos_token_id=-1, num_beams=k),
               "transformers": lambda k=k: ref.generate(ids, max_new_tokens=new, do_sample=False, num_beams=k)}
        if k == 1:  # the decoder step through torch.compile (greedy and sampling; beam search runs eager)
            fns["genzoo_compiled"] = lambda: ours.generate(ids, max_new_tokens=new, eos_token_id=-1, compile=True)
        tokens = {key: f() for key, f in fns.items()}  # the compiled run compiles here, untimed
        same = all(torch.equal(v, tokens["transformers"]) for v in tokens.values())
        t = compare(fns, repeats=repeats)
        tps = {key: batch * new / v for key, v in t.items()}  # output tokens per second
        mid, lo, hi = speedup(t["genzoo"], t["transformers"])
        print(f"  {name:7s}: genzoo {rate(t['genzoo'], batch * new)} tok/s | transformers "
              f"{rate(t['transformers'], batch * new)} tok/s | ratio {ratio(t['genzoo'], t['transformers'])} | "
              f"identical tokens: {same}")
        if "genzoo_compiled" in t:
            print(f"           genzoo compiled {rate(t['genzoo_compiled'], batch * new)} tok/s | ratio "
                  f"{ratio(t['genzoo_compiled'], t['transformers'])}")
        floor = linear_floor(ours, batch * k, skip=once_per_generate)  # one step of every row (and beam)
        ceiling = batch / floor  # output tokens/s: a step makes one token per row
        print(f"           roofline: the decoder's linear layers alone take {floor * 1e3:.2f} ms per step -> at most "
              f"{ceiling:.1f} tok/s, {ceiling / tps['transformers']:.2f}x transformers' median; reached: genzoo "
              f"{tps['genzoo'] / ceiling:.0%}, transformers {tps['transformers'] / ceiling:.0%}")
        results[name] = {**{f"{key}_tok_s": v for key, v in tps.items()}, "ratio": mid, "ratio_range": (lo, hi),
                         "identical": same, "linear_floor_s": floor, "ceiling_tok_s": ceiling,
                         "ceiling_ratio": ceiling / tps["transformers"]}
        if "genzoo_compiled" in t:
            results[name]["ratio_compiled"] = speedup(t["genzoo_compiled"], t["transformers"])[0]
    footer()
    return results
