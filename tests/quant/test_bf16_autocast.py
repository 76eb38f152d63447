"""bf16 autocast (fp32 master weights, what `precision: auto` runs where the CPU has bf16) keeps greedy decoding:
on the trained tiny GPT-2 of tests/quant/conftest.py, the greedy next token under bf16 autocast equals fp32's at
>= 99% of held-out positions and at >= 99% of the decisions along fp32's own greedy generations (the same prefix
for both, so one flip does not carry into the tokens after it). Free generation can still part at a near-tie: each
row that differs must part at a step where fp32's two best logits are closer than twice the largest bf16 logit error
measured on the held-out text (an Intel Xeon with AMX parted 2 rows of 16, at margins of 0.005 and 0.009)."""

import torch

from genzoo.precision import autocast


def test_bf16_autocast_greedy_agrees_with_fp32(trained):
    _, model, blocks = trained
    with torch.no_grad():
        ref = model(blocks).logits  # (16, T, V)
        with autocast("cpu", torch.bfloat16):
            low = model(blocks).logits.float()
    rate = (ref.argmax(-1) == low.argmax(-1)).float().mean().item()
    assert rate >= 0.99, f"greedy next token under bf16 autocast equals fp32's at {rate:.2%} of positions"
    error = (low - ref).abs().max().item()  # the largest bf16 logit error on held-out text

    prompts = blocks[:, :8]
    with torch.no_grad():
        fp32 = model.generate(prompts, max_new_tokens=24)  # (16, 32)
        path = model(fp32).logits  # fp32's logits along its own generations
        with autocast("cpu", torch.bfloat16):
            bf16 = model.generate(prompts, max_new_tokens=24)
            decisions = model(fp32).logits.argmax(-1)  # bf16's choice after each of fp32's prefixes
    agree = (decisions[:, 7:-1] == fp32[:, 8:]).float().mean().item()
    same = (fp32[:, 8:] == bf16[:, 8:]).float().mean().item()
    print(f"bf16 autocast: {agree:.2%} of greedy decisions along fp32's generations equal fp32's; free generation "
          f"{same:.2%} of new tokens, {int((fp32 == bf16).all(-1).sum())}/{len(prompts)} rows identical; largest "
          f"logit error {error:.3f}")
    assert agree >= 0.99, f"bf16 autocast's greedy decisions equal fp32's at {agree:.2%} of generated steps"
    for row in range(len(prompts)):
        parted = (fp32[row] != bf16[row]).nonzero()
        if len(parted):
            i = int(parted[0])
            top = path[row, i - 1].topk(2).values
            margin = float(top[0] - top[1])
            assert margin < 2 * error, f"row {row} parts at step {i} where fp32's margin {margin:.3f} exceeds " \
                                       f"twice the largest bf16 logit error ({error:.3f}): not a near-tie"
