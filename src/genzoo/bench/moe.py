"""`genzoo bench moe`: a Mixtral-style sparse MoE decoder, genzoo vs `transformers`' Mixtral on the same
weights: forward pass (batch 8 x 256 tokens), training step (forward + backward + AdamW), and greedy
decoding at batch 1 (identical tokens checked)."""

from __future__ import annotations

import torch

from . import BENCHMARKS
from .common import compare, footer, header, hf_twin, rate, ratio, speedup

CONFIG = dict(d_model=256, n_layers=4, n_heads=8, n_kv_heads=4, d_ff=512, n_experts=8, experts_top_k=2,
              vocab_size=4096, max_positions=512)


@BENCHMARKS.register("moe")
def run(batch: int = 8, seq_len: int = 256, new_tokens: int = 64, repeats: int = 5) -> dict:
    import genzoo

    torch.manual_seed(0)
    ours = genzoo.build("mixtral-tiny", **CONFIG)
    ref = hf_twin(ours)
    n = sum(p.numel() for p in ours.parameters())
    header(f"moe: mixtral-style, {n / 1e6:.1f}M parameters, 8 experts top-2; tokens/s, median [slowest-fastest] of "
           f">= {repeats} interleaved rounds")
    ids = torch.randint(0, CONFIG["vocab_size"], (batch, seq_len))
    results = {}

    ours.eval(), ref.eval()
    with torch.no_grad():
        diff = (ours(ids).logits - ref(ids).logits).abs().max().item()
        t = compare({"genzoo": lambda: ours(ids), "transformers": lambda: ref(ids)}, repeats=repeats)
    results["forward"] = _line("forward", batch * seq_len, t, f"max |logit diff| {diff:.1e}")

    ours.train(), ref.train()
    opt_a = torch.optim.AdamW(ours.parameters(), lr=1e-5)
    opt_b = torch.optim.AdamW(ref.parameters(), lr=1e-5)

    def step(model, opt, **kw):
        def f():
            model(ids, labels=ids, **kw).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return f

    t = compare({"genzoo": step(ours, opt_a), "transformers": step(ref, opt_b, output_router_logits=True)},
                repeats=repeats)
    results["train_step"] = _line("train step", batch * seq_len, t, "with the load-balancing loss")

    ours.eval(), ref.eval()
    prompt = torch.randint(0, CONFIG["vocab_size"], (1, 32))
    same = torch.equal(ours.generate(prompt, max_new_tokens=new_tokens),
                       ref.generate(prompt, max_new_tokens=new_tokens, do_sample=False, eos_token_id=None,
                                    pad_token_id=0))
    t = compare({
        "genzoo": lambda: ours.generate(prompt, max_new_tokens=new_tokens),
        "transformers": lambda: ref.generate(prompt, max_new_tokens=new_tokens, do_sample=False, eos_token_id=None,
                                             pad_token_id=0),
    }, repeats=3 * repeats)  # a decoding run takes a fraction of a second: more repeats for a steadier median
    results["decode_b1"] = _line("decode b=1", new_tokens, t, f"identical tokens: {same}")
    results["decode_b1"]["identical"] = same
    footer()
    return results


def _line(name: str, tokens: int, t: dict, note: str) -> dict:
    tps = {k: tokens / v for k, v in t.items()}
    mid, lo, hi = speedup(t["genzoo"], t["transformers"])
    print(f"  {name:11s} genzoo {rate(t['genzoo'], tokens)} tok/s | transformers {rate(t['transformers'], tokens)} "
          f"tok/s | ratio {ratio(t['genzoo'], t['transformers'])} | {note}")
    return {**{f"{k}_tok_s": v for k, v in tps.items()}, "ratio": mid, "ratio_range": (lo, hi)}
