"""bf16 autocast (fp32 master weights, what `precision: auto` runs where the CPU has bf16) keeps greedy decoding:
on the trained tiny GPT-2 of tests/quant/conftest.py, the greedy next token under bf16 autocast equals fp32's at
>= 99% of held-out positions, and greedy generation from held-out prompts agrees at >= 99% of new tokens."""

import torch

from genzoo.precision import autocast


def test_bf16_autocast_greedy_agrees_with_fp32(trained):
    _, model, blocks = trained
    with torch.no_grad():
        want = model(blocks).logits.argmax(-1)  # (16, T)
        with autocast("cpu", torch.bfloat16):
            got = model(blocks).logits.argmax(-1)
    rate = (want == got).float().mean().item()
    assert rate >= 0.99, f"greedy next token under bf16 autocast equals fp32's at {rate:.2%} of positions"

    prompts = blocks[:, :8]
    fp32 = model.generate(prompts, max_new_tokens=24)
    with autocast("cpu", torch.bfloat16):
        bf16 = model.generate(prompts, max_new_tokens=24)
    same = (fp32[:, 8:] == bf16[:, 8:]).float().mean().item()
    print(f"bf16 autocast greedy generation: {same:.2%} of new tokens equal to fp32's, "
          f"{int((fp32 == bf16).all(-1).sum())}/{len(prompts)} rows identical")
    assert same >= 0.99, f"bf16 autocast greedy generation equals fp32's at {same:.2%} of new tokens"
