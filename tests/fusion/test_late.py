"""Late fusion: the frozen image tower and LM get no gradient and are unchanged after training (both bridges, and
with LoRA), Flamingo's gates start at 0 (the LM unchanged), the prefix's labels line up with the text, generation
with padded prompts, save/load, bad inputs."""

import pytest
import torch
import torch.nn.functional as F

import genzoo
from genzoo.errors import InputError
from genzoo.models.fusion import LateFusion
from genzoo.nn import GatedCrossBlock


def parts():
    clip = genzoo.build("clip-tiny", image_size=8, channels=1, patch_size=2, vision_d_model=16, vision_heads=2,
                        vision_d_ff=32, vision_layers=1)
    lm = genzoo.build("digit-lm", vocab_size=64, max_positions=48, d_model=32, n_layers=2, n_heads=2, d_ff=64)
    return clip.eval(), lm.eval()


def data(b=3, t=6):
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, 1, 8, 8, generator=g) * 2 - 1, torch.randint(1, 64, (b, t), generator=g)


@pytest.mark.parametrize("bridge", [dict(bridge="prefix"), dict(bridge="xattn", xattn_heads=2),
                                    dict(bridge="prefix", projector="linear", lora_r=2)])
def test_frozen_parts_get_no_gradient_and_do_not_change(bridge):
    clip, lm = parts()
    model = LateFusion.from_parts(clip, lm, **bridge).train()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trained = dict(model.bridge_parameters())
    assert trained and all(n.startswith(("projector", "lm.blocks")) for n in trained)
    assert not any(n.startswith("vision") for n in trained)
    if bridge.get("lora_r"):
        assert any("lora_" in n for n in trained) and not any(n.startswith("lm.blocks") and "lora_" not in n
                                                               for n in trained)
    before = {n: p.detach().clone() for n, p in trained.items()}
    opt = torch.optim.AdamW([p for p in trained.values()], lr=1e-2)
    pixels, ids = data()
    for _ in range(3):
        loss = model(pixels, ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        for n, p in model.named_parameters():
            if n in frozen:
                assert p.grad is None, n
        opt.step()
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), f"frozen {n} changed"
    assert any(not torch.equal(trained[n], before[n]) for n in trained)
    assert sum(p.numel() for p in trained.values()) < sum(p.numel() for p in model.parameters())


def test_gates_start_at_zero_so_the_lm_is_unchanged():
    clip, lm = parts()
    model = LateFusion.from_parts(clip, lm, bridge="xattn", xattn_heads=2).eval()
    assert all(isinstance(b, GatedCrossBlock) for b in model.lm.blocks)
    assert all(b.attn_gate.item() == 0 and b.ffn_gate.item() == 0 for b in model.lm.blocks)
    pixels, ids = data()
    with torch.no_grad():
        torch.testing.assert_close(model(pixels, ids).logits, lm(ids).logits, atol=1e-5, rtol=0)
        model.lm.blocks[0].attn_gate.fill_(0.5)
        assert not torch.allclose(model(pixels, ids).logits, lm(ids).logits, atol=1e-3)


def test_prefix_logits_and_loss_are_over_the_text():
    clip, lm = parts()
    model = LateFusion.from_parts(clip, lm).eval()
    pixels, ids = data()
    out = model(pixels, ids, labels=ids)
    assert model.n_prefix == 1 + 16
    assert out.logits.shape == (3, 6, 64)
    want = F.cross_entropy(out.logits[:, :-1].reshape(-1, 64), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, want)  # the image prefix carries no loss


def test_generate_with_padded_prompts_matches_one_by_one():
    clip, lm = parts()
    for bridge in ("prefix", "xattn"):
        model = LateFusion.from_parts(clip, lm, bridge=bridge, xattn_heads=2).eval()
        with torch.no_grad():
            for b in model.lm.blocks:
                if isinstance(b, GatedCrossBlock):
                    b.attn_gate.fill_(1.0)
        pixels, ids = data(2, 5)
        mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
        out = model.generate(pixels, ids, attention_mask=mask, max_new_tokens=4)
        assert out.shape == (2, 9)
        for i in range(2):
            real = ids[i][mask[i].bool()][None]
            one = model.generate(pixels[i:i + 1], real, max_new_tokens=4)
            assert torch.equal(one[0, -4:], out[i, -4:]), bridge


def test_save_and_load(tmp_path):
    clip, lm = parts()
    model = LateFusion.from_parts(clip, lm, bridge="xattn", xattn_heads=2).eval()
    with torch.no_grad():
        model.lm.blocks[1].ffn_gate.fill_(0.3)
    genzoo.save(model, tmp_path / "late")
    again = genzoo.load(tmp_path / "late").eval()
    pixels, ids = data()
    torch.testing.assert_close(again(pixels, ids).logits, model(pixels, ids).logits)
    assert [n for n, _ in again.bridge_parameters()] == [n for n, _ in model.bridge_parameters()]


def test_bad_inputs_are_input_errors():
    clip, lm = parts()
    model = LateFusion.from_parts(clip, lm)
    pixels, ids = data()
    with pytest.raises(InputError, match="pixel_values"):
        model(torch.zeros(3, 1, 16, 16), ids)  # an image of the wrong size
    with pytest.raises(InputError, match="one image per text"):
        model(pixels[:2], ids)
    with pytest.raises(InputError):
        model(pixels, torch.full((3, 4), 64))  # a token outside the LM's vocabulary
    with pytest.raises(genzoo.ConfigError, match="bridge"):
        LateFusion.from_parts(clip, lm, bridge="q-former")
