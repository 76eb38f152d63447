"""Scale-out with `torch.distributed`: under `torchrun` (WORLD_SIZE > 1) the process group is gloo on
CPU and nccl on CUDA; the model is wrapped in DistributedDataParallel, or sharded with FSDP2
(`fully_shard`, each of the model's `shardable_blocks()` then the whole model) when asked. Only rank 0 writes files."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar over ranks (every rank gets it)."""
        if not self.enabled:
            return value
        v = value.detach().clone().to(self.device)
        dist.all_reduce(v, op=dist.ReduceOp.SUM)
        return v / self.world_size

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def setup(device: str = "auto") -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(device=pick_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank=rank, world_size=world, local_rank=local, device=dev)


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, d: Dist, fsdp: bool) -> nn.Module:
    """DDP (default) or FSDP2 under torchrun; the model itself on one process."""
    if not d.enabled:
        return model
    contiguous_parameters(model)
    if fsdp:
        from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

        for block in model.shardable_blocks():  # every genre declares its own, inner modules first
            fully_shard(block)
        fully_shard(model)
        for module, method in getattr(model, "sharded_methods", list)():  # e.g. T5's project_memory
            register_fsdp_forward_method(module, method)
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)


def contiguous_parameters(model: nn.Module) -> None:
    """Give each non-contiguous parameter a contiguous copy of its values, in place (the Parameter object, and so
    any tie, is kept). FSDP2 refuses non-contiguous parameters and DDP's gradient buckets expect dense ones; a
    model from `genzoo.load` can hold some (GPT-2's Conv1D weights are transposed views of the file)."""
    with torch.no_grad():
        for p in model.parameters():
            if not p.is_contiguous():
                p.data = p.data.contiguous()


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast only where the hardware supports it (`genzoo.precision`: CUDA with bf16, or a CPU with
    amx_bf16 / avx512_bf16); None means fp32."""
    from ..precision import resolve_precision

    return resolve_precision(precision, device)
