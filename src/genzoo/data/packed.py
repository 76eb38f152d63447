"""Fixed-length blocks packed from a token stream, in a seeded order, sharded across ranks, resumable.

The token stream (documents joined by an end-of-text token) is cut into blocks of block_size + 1
tokens (inputs and shifted targets). An epoch visits the blocks in a permutation drawn from
(seed, epoch). A global batch is `global_batch` consecutive blocks of that order, and rank r reads
its own slice of it, so N ranks with per-rank batch b see exactly what one process with batch N * b
sees. `position` (blocks consumed, globally) is the whole iterator state: resuming from it continues
the same sequence.
"""

from __future__ import annotations

import torch
from torch.utils.data import IterableDataset

from ..errors import ConfigError


class PackedBlocks(IterableDataset):
    def __init__(
        self,
        tokens: torch.Tensor,
        block_size: int,
        *,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        position: int = 0,
    ):
        n = (tokens.numel() - 1) // block_size
        if n < batch_size * world_size:
            raise ConfigError(
                f"the token stream ({tokens.numel()} tokens) makes {n} blocks of {block_size}; "
                f"one global batch needs {batch_size * world_size}"
            )
        self.tokens = tokens
        self.block_size, self.n_blocks = block_size, n
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.position = position

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def _order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n_blocks)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n_blocks, generator=g)

    def next_batch(self) -> torch.Tensor:
        """The next (batch_size, block_size + 1) batch for this rank; advances `position`."""
        per_epoch = (self.n_blocks // self.global_batch) * self.global_batch  # drop the ragged tail
        epoch, offset = divmod(self.position, per_epoch)
        ids = self._order(epoch)[offset + self.rank * self.batch_size: offset + (self.rank + 1) * self.batch_size]
        self.position += self.global_batch
        starts = ids * self.block_size
        idx = starts[:, None] + torch.arange(self.block_size + 1)  # (b, block_size + 1)
        return self.tokens[idx].long()  # token files are int32 memory maps (data.tokens)

    def __iter__(self):
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])
