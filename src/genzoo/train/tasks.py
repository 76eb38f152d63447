"""Tasks: what a recipe trains. A task owns its data (with a resumable position), builds its model,
computes its loss and its validation metrics, and writes its extra files (a tokenizer) next to the
weights. The training loop in `trainer.py` is shared by every task; a recipe names its task.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import GENRES, PRESETS
from ..data import PackedBlocks
from ..data.digits import load_digits_split
from ..errors import ConfigError
from ..modes import evaluating
from ..registry import Registry
from .distributed import Dist
from .recipe import Recipe

TASKS: Registry = Registry("task")


class Task:
    """The interface the trainer uses. `units` names what `units_per_step` counts (for throughput)."""

    units = "items"
    loss_label = "cross-entropy (nats/token)"  # the y axis of loss.png

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        self.recipe, self.run, self.d = recipe, run, d

    def build_model(self):
        raise NotImplementedError

    def next_batch(self):
        raise NotImplementedError

    def loss(self, model, batch, amp: torch.dtype | None) -> torch.Tensor:
        raise NotImplementedError

    def validate(self, model, amp: torch.dtype | None) -> dict:
        raise NotImplementedError

    def units_per_step(self) -> int:
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    def save_files(self, directory: Path) -> None:
        """Files saved beside the weights of every checkpoint (e.g. the tokenizer)."""

    def make_optimizers(self, model) -> dict[str, torch.optim.Optimizer] | None:
        """None: the loop's AdamW over every parameter, with `loss`. A task that makes its own updates (a GAN: D,
        then G) returns its optimisers by name; the loop then calls `train_step` each step, gives every optimiser
        the recipe's warmup + cosine schedule, and checkpoints and resumes them all."""
        return None

    def train_step(self, model, optimizers: dict[str, torch.optim.Optimizer], amp) -> dict[str, float]:
        """One whole update with the task's own optimisers (zero_grad, backward, step); -> the figures to log,
        "loss" among them."""
        raise NotImplementedError


class ExampleTask(Task):
    """A task drawing whole examples (image-caption pairs, source-target pairs) in a seeded order per epoch.
    A global batch is consecutive examples of that order; rank r takes its slice, so N ranks with batch b see
    what one process with batch N * b sees. `position` (examples consumed, globally) is the whole data state."""

    units = "examples"

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        self.global_batch = recipe.batch_size * d.world_size
        self.position = 0

    def take(self, n_examples: int) -> tuple[torch.Tensor, slice, int]:
        """-> (indices of the next global batch, this rank's slice of it, the position it started at)."""
        if n_examples < self.global_batch:
            raise ConfigError(f"{n_examples} training examples are fewer than one global batch ({self.global_batch})")
        per_epoch = (n_examples // self.global_batch) * self.global_batch
        epoch, offset = divmod(self.position, per_epoch)
        g = torch.Generator().manual_seed(self.recipe.seed * 1_000_003 + epoch)
        batch = torch.randperm(n_examples, generator=g)[offset: offset + self.global_batch]
        start, self.position = self.position, self.position + self.global_batch
        b = self.recipe.batch_size
        return batch, slice(self.d.rank * b, (self.d.rank + 1) * b), start

    def units_per_step(self):
        return self.global_batch * self.recipe.grad_accum

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = int(state["position"])

    def save_files(self, directory):
        self.tokenizer.save(directory)


class DigitsTask(ExampleTask):
    """An ExampleTask on scikit-learn's 8x8 digits (data.corpus must be "digits"): train_x, train_y, val_x,
    val_y, images (N, 1, 8, 8) in [-1, 1] and their labels, the same fraction of each class held out."""

    units = "img"

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        if recipe.data.corpus != "digits":
            raise ConfigError(f"task {recipe.task!r} trains on data.corpus='digits', got {recipe.data.corpus!r}")
        self.train_x, self.train_y, self.val_x, self.val_y = load_digits_split(recipe.data.val_percent)


def autocast(device: torch.device, amp: torch.dtype | None):
    return torch.autocast(device.type, dtype=amp) if amp else contextlib.nullcontext()


def build_from_recipe(recipe: Recipe, **fixed):
    """The recipe's model: its preset, its `model` overrides, then the fields the data fixes."""
    overrides = {k: v for k, v in recipe.model.items() if k != "preset"}
    overrides.update(fixed)
    config = PRESETS.get(recipe.model["preset"]).make(**overrides)
    return GENRES.get(config.genre)(config)


@TASKS.register("lm")
class LanguageModelling(Task):
    """Next-token prediction on the standard-library corpus (or the user's `data.source`), packed into fixed-length
    blocks; from a preset, or fine-tuning the decoder of `init`."""

    units = "tok"
    special_tokens: tuple[str, ...] = ()  # tokens the trained tokenizer reserves besides end-of-text
    init_genres: tuple[str, ...] = ("decoder",)  # what `init` may hold

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        from .data import prepare
        from .finetune import init_tokenizer

        self.tokenizer, train_tokens, self.val_tokens = prepare(recipe.data, run, d, self.special_tokens,
                                                                init_tokenizer(recipe, self.init_genres))
        self.data = self.make_data(train_tokens)

    def make_data(self, tokens: torch.Tensor) -> PackedBlocks:
        """Blocks of block_size + 1 tokens (inputs and shifted targets); each rank reads its own share."""
        r, d = self.recipe, self.d
        return PackedBlocks(tokens, r.data.block_size, batch_size=r.batch_size, rank=d.rank, world_size=d.world_size,
                            seed=r.seed)

    def build_model(self):
        if self.recipe.init is not None:
            from .finetune import init_model

            return check_block_size(init_model(self.recipe, self.init_genres), self.recipe)
        fixed = {"vocab_size": self.tokenizer.vocab_size, "bos_token_id": self.tokenizer.eos_id,
                 "eos_token_id": self.tokenizer.eos_id}
        if "max_positions" not in self.recipe.model:
            fixed["max_positions"] = self.recipe.data.block_size
        return check_block_size(build_from_recipe(self.recipe, **fixed), self.recipe)

    def next_batch(self):
        return self.data.next_batch().to(self.d.device)

    def loss(self, model, batch, amp):
        return lm_batch_loss(model, batch, amp)

    @torch.no_grad()
    def validate(self, model, amp):
        return lm_validation(model, self.val_tokens, self.recipe, self.d, amp)

    def units_per_step(self):
        r = self.recipe
        return r.batch_size * r.grad_accum * self.d.world_size * r.data.block_size

    def state_dict(self):
        return self.data.state_dict()

    def load_state_dict(self, state):
        self.data.load_state_dict(state)

    def save_files(self, directory):
        self.tokenizer.save(directory)


def check_block_size(model, recipe: Recipe, extra: int = 0):
    """The model, once its positions are known to cover data.block_size (+ extra)."""
    if model.config.max_positions < recipe.data.block_size + extra:
        raise ConfigError(f"model max_positions={model.config.max_positions} < data.block_size="
                          f"{recipe.data.block_size}{f' + {extra}' if extra else ''}; lower data.block_size")
    return model


def validation_blocks(tokens: torch.Tensor, block_size: int, recipe: Recipe, rank: int = 0,
                      world_size: int = 1) -> tuple[PackedBlocks, int]:
    """The validation stream as unshuffled blocks, and how many batches to score: at most eval_batches, with
    smaller batches for a small validation split."""
    blocks = (tokens.numel() - 1) // block_size
    batch = min(recipe.batch_size, blocks // world_size)
    if batch < 1:
        raise ConfigError(f"the validation split ({tokens.numel()} tokens) is shorter than one block per rank")
    data = PackedBlocks(tokens, block_size, batch_size=batch, rank=rank, world_size=world_size, shuffle=False)
    return data, min(recipe.eval_batches, data.n_blocks // data.global_batch)


def lm_batch_loss(model, batch: torch.Tensor, amp) -> torch.Tensor:
    """Next-token cross-entropy of a (B, T + 1) block batch (+ the router losses of a mixture of experts)."""
    x, y = batch[:, :-1], batch[:, 1:]  # (B, T), (B, T)
    with autocast(batch.device, amp):
        out = model(x, check=False)
    loss = F.cross_entropy(out.logits.flatten(0, 1).float(), y.flatten())  # logits (B, T, V)
    if out.router_loss is not None and model.training:  # mixture of experts: load balancing (+ z-loss)
        loss = loss + out.router_loss
    return loss


@torch.no_grad()
def lm_validation(model, tokens: torch.Tensor, recipe: Recipe, d: Dist, amp) -> dict:
    """Mean next-token loss over the first eval_batches blocks of the validation stream, and perplexity."""
    data, n = validation_blocks(tokens, recipe.data.block_size, recipe, d.rank, d.world_size)
    total = torch.zeros((), device=d.device)
    with evaluating(model) as net:
        for _ in range(n):
            total += lm_batch_loss(net, data.next_batch().to(d.device), amp)
    loss = d.mean(total / n).item()
    return {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0))}


def _register():
    from . import (  # noqa: F401
        caption_lm_task,
        clip_task,
        diffusion_task,
        early_fusion_task,
        fuse_task,
        fusion_task,
        gan_task,
        gato_task,
        gliner_task,
        late_fusion_task,
        meta_task,
        mlm_task,
        pairs_task,
        pointe_task,
        seq2seq_task,
        spae_task,
        tabular_task,
        vl_tasks,
        vq_task,
    )


_register()
