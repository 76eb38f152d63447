"""Activation functions by name (`ACTIVATIONS`): GELU (exact and tanh approximation, Hendrycks & Gimpel 2016),
ReLU, SiLU/Swish (Elfwing et al. 2017; Ramachandran et al. 2017) and CLIP's quick GELU, x * sigmoid(1.702 x)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..registry import Registry

ACTIVATIONS: Registry = Registry("activation")
ACTIVATIONS.register("gelu", F.gelu)
ACTIVATIONS.register("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"))
ACTIVATIONS.register("relu", F.relu)
ACTIVATIONS.register("silu", F.silu)
ACTIVATIONS.register("quick_gelu", lambda x: x * torch.sigmoid(1.702 * x))
