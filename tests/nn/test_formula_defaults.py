"""Formulas used along a non-default axis or with their default arguments: softmax1 along any dim of a 4-D
tensor and the timestep embedding's defaults against diffusers' `get_timestep_embedding`. (Each was a surviving
mutant of `make mutation`.)"""

import pytest
import torch
from diffusers.models.embeddings import get_timestep_embedding

from genzoo.nn import softmax1
from genzoo.nn.positions import timestep_embedding


@pytest.mark.parametrize("dim", [0, 1, 2, 3, -1, -3])
def test_softmax1_along_any_dim_of_a_4d_tensor(dim):
    """exp(x_i) / (1 + sum_j exp(x_j)) along `dim` (Miller, "Attention is off by one", 2023)."""
    x = torch.randn(2, 3, 4, 5)
    want = x.exp() / (1 + x.exp().sum(dim=dim, keepdim=True))
    torch.testing.assert_close(softmax1(x, dim=dim), want, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dim", [32, 33])
def test_timestep_embedding_defaults_are_diffusers(dim):
    t = torch.tensor([0.0, 1.0, 17.0, 999.0, 0.5])
    torch.testing.assert_close(timestep_embedding(t, dim), get_timestep_embedding(t, dim), atol=0, rtol=0)
    got = timestep_embedding(t, dim, flip_sin_to_cos=True, freq_shift=0.0, max_period=100.0)
    want = get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0.0, max_period=100)
    torch.testing.assert_close(got, want, atol=0, rtol=0)
