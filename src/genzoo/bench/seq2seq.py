"""`genzoo bench seq2seq`: T5 greedy generation throughput, genzoo vs `transformers`, same weights (a t5-small
shaped v1.1 model), batch 8 of 64-token inputs, 64 new tokens. Beam search is not implemented yet."""

from __future__ import annotations

import torch

from . import BENCHMARKS
from .common import compare, hf_twin


@BENCHMARKS.register("seq2seq")
def run(batch: int = 8, src_len: int = 64, new: int = 64, repeats: int = 3) -> dict:
    import genzoo

    torch.manual_seed(0)
    ours = genzoo.build("t5-v1.1", n_layers=4, n_decoder_layers=4, vocab_size=8192).eval()
    ref = hf_twin(ours, "T5ForConditionalGeneration")
    ids = torch.randint(2, 8192, (batch, src_len))
    eos = -1  # no early stop: every row makes `new` tokens
    a = ours.generate(ids, max_new_tokens=new, eos_token_id=eos)
    b = ref.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, num_beams=1)
    same = torch.equal(a, b)
    t = compare({"genzoo": lambda: ours.generate(ids, max_new_tokens=new, eos_token_id=eos),
                 "transformers": lambda: ref.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                                                      num_beams=1)}, repeats=repeats)
    tps = {k: batch * new / v for k, v in t.items()}
    ratio = tps["genzoo"] / tps["transformers"]
    print(f"seq2seq: t5-v1.1 4+4 layers ({sum(p.numel() for p in ours.parameters()) / 1e6:.1f}M parameters), "
          f"batch {batch}, {src_len} source tokens, {new} new tokens, {torch.get_num_threads()} threads")
    print(f"  greedy: genzoo {tps['genzoo']:8.1f} tok/s | transformers {tps['transformers']:8.1f} tok/s | "
          f"ratio {ratio:.2f}x | identical tokens: {same}")
    return {"greedy": {**{f"{k}_tok_s": v for k, v in tps.items()}, "ratio": ratio, "identical": same}}
