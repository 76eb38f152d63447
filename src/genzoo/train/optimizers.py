"""The optimisers of a task that makes its own updates (`Task.make_optimizers` / `Task.train_step`: a GAN steps D,
then G, each with its own Adam), seen by the training loop as one optimiser and one scheduler: a state dict per
name in the checkpoint, so that resume restores each of them exactly."""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import CheckpointError, ConfigError


class OptimizerSet:
    def __init__(self, optimizers: dict[str, torch.optim.Optimizer]):
        if not optimizers:
            raise ConfigError("a task's make_optimizers returned no optimiser")
        self.optimizers = optimizers

    def schedulers(self, lr_lambda: Callable[[int], float]) -> "SchedulerSet":
        """One LambdaLR per optimiser, each scaling that optimiser's own base learning rates by lr_lambda(step)."""
        return SchedulerSet({n: torch.optim.lr_scheduler.LambdaLR(o, lr_lambda) for n, o in self.optimizers.items()})

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers.values():
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {n: o.state_dict() for n, o in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        _check_names(state, self.optimizers, "optimizer")
        for n, o in self.optimizers.items():
            o.load_state_dict(state[n])


class SchedulerSet:
    def __init__(self, schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]):
        self.schedulers = schedulers

    def step(self) -> None:
        for s in self.schedulers.values():
            s.step()

    def get_last_lr(self) -> list[float]:
        """Every optimiser's learning rates, in the order of the names."""
        return [lr for s in self.schedulers.values() for lr in s.get_last_lr()]

    def state_dict(self) -> dict:
        return {n: s.state_dict() for n, s in self.schedulers.items()}

    def load_state_dict(self, state: dict) -> None:
        _check_names(state, self.schedulers, "scheduler")
        for n, s in self.schedulers.items():
            s.load_state_dict(state[n])


def _check_names(state: dict, mine: dict, what: str) -> None:
    if set(state) != set(mine):
        raise CheckpointError(f"the checkpoint's {what} states are {sorted(state)}, the task's {what}s are "
                              f"{sorted(mine)}: not the same task")
