"""Running a model in eval mode for a while (validation, generation) and putting it back as it was."""

from __future__ import annotations

import contextlib

from torch import nn


@contextlib.contextmanager
def evaluating(model: nn.Module):
    """Yields the model, unwrapped from DistributedDataParallel, in eval mode; its mode is restored after."""
    net = getattr(model, "module", model)
    was = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was)
