"""Banded local attention (`nn.banded`) equals the dense windowed mask at T at least 8 windows long, with padding and
grouped-query heads, and the models' windowed layers take it (ModernBERT's local layers, Mistral's prefill)."""

import pytest
import torch
import torch.nn.functional as F

import genzoo
from genzoo.nn.attention import sdpa_attention
from genzoo.nn.banded import Band, banded_attention
from genzoo.nn.masks import BANDED_FROM, build_mask
from genzoo.nn.softmax import Standard


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("t", [128, 150])  # >= 8 windows (masks.BANDED_FROM); a multiple of the block and not
def test_banded_equals_dense_window(causal, t):
    g = torch.Generator().manual_seed(0)
    window = 16
    q = torch.randn(2, 4, t, 8, generator=g)
    k, v = torch.randn(2, 2, t, 8, generator=g), torch.randn(2, 2, t, 8, generator=g)
    key_valid = torch.ones(2, t, dtype=torch.bool)
    key_valid[1, :37] = False  # left padding in row 1 (rows of padding attend themselves)
    m = build_mask(t, t, 0, causal=causal, window=window, key_valid=key_valid)
    assert m.band is not None and m.mask is None  # long enough: kept banded, no T x T mask
    dense = m.dense(t, t, "cpu")
    ref = build_mask(t, t, 0, causal=causal, window=window, key_valid=key_valid, device="cpu")
    assert dense.shape == (2, 1, t, t)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=dense, scale=0.3, enable_gqa=True)
    got = sdpa_attention(q, k, v, m, Standard(), 0.3, 0.0)
    assert torch.allclose(got, want, atol=1e-5)
    # the dense mask a Band materialises is the one build_mask writes for short sequences
    q_pos, k_pos = torch.arange(t)[:, None], torch.arange(t)[None]
    band = ((k_pos > q_pos - window) & (k_pos <= q_pos)) if causal else ((k_pos - q_pos).abs() <= window // 2)
    assert torch.equal(ref.dense(t, t, "cpu"), (band[None, None] & key_valid[:, None, None]) | (k_pos == q_pos))


def test_banded_scores_are_linear_in_t():
    band = Band.for_window(128, causal=False)
    assert band.block_mask(8192, "cpu").numel() == 8192 * (128 + 128)  # T * (block + window), not T^2
    q = torch.randn(1, 2, 1000, 8)
    out = banded_attention(q, q[:, :1], q[:, :1], Band(left=3, right=0, block=64), scale=1.0)
    assert out.shape == (1, 2, 1000, 8)


@pytest.mark.parametrize("preset,hf_class", [("modernbert-tiny", "AutoModel"), ("mistral-tiny", "AutoModelForCausalLM")])
def test_windowed_models_match_transformers_on_the_banded_path(tmp_path, preset, hf_class):
    import transformers

    torch.manual_seed(0)
    ours = genzoo.build(preset).eval()
    genzoo.save(ours, tmp_path)
    ref = getattr(transformers, hf_class).from_pretrained(tmp_path).eval()
    window = ours.config.local_window if preset.startswith("modernbert") else ours.config.sliding_window
    t = BANDED_FROM * window
    assert t <= ours.config.max_positions  # the banded path, at the shortest length that takes it
    ids = torch.randint(5, ours.config.vocab_size, (2, t))
    mask = torch.ones(2, t, dtype=torch.long)
    if preset.startswith("modernbert"):
        mask[1, t - 23:] = 0  # ragged: the unpadded groups run banded too
    with torch.no_grad():
        a = ours(ids, attention_mask=mask)
        b = ref(input_ids=ids, attention_mask=mask)
    field = "last_hidden_state" if preset.startswith("modernbert") else "logits"
    keep = mask.bool()
    assert (getattr(a, field) - getattr(b, field))[keep].abs().max() < 1e-4
