"""Data-parallel equivalence: two processes under torchrun (gloo, CPU) with per-rank batch b give the
same losses as one process with batch 2b (atol 1e-5); FSDP2 sharding gives them too, for every genre. Only
rank 0 writes files."""

import subprocess
import sys

import pytest
import torch

from .common import env, genzoo as run_genzoo, losses, sets

STEPS = 8


def torchrun(*args):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "genzoo", *args]
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"torchrun failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp2"])
def test_two_ranks_equal_one_process_with_double_batch(tmp_path, fsdp):
    common = ["--steps", str(STEPS), *sets([f"save_every={STEPS}", f"eval_every={STEPS}"])]
    run_genzoo("train", "gpt-nano", "--out", str(tmp_path / "one"), *common, "--set", "batch_size=8")
    torchrun("train", "gpt-nano", "--out", str(tmp_path / "two"), *common, "--set", "batch_size=4",
             "--set", f"fsdp={str(fsdp).lower()}")
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    for step in a:
        assert abs(a[step] - b[step]) <= 1e-5, (step, a[step], b[step])
    # rank 0 alone wrote: one metrics line per step, one checkpoint
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == STEPS + 2  # + val at 0 and end
    assert (tmp_path / "two" / "model.safetensors").exists()


def test_clip_loss_gathers_across_ranks(tmp_path):
    """The contrastive loss on 2 ranks x 16 equals one process with 32: features are gathered across ranks."""
    common = ["--steps", "4", "--set", "log_every=1", "--set", "progress=false", "--set", "eval_every=4",
              "--set", "save_every=4", "--set", "warmup_steps=2"]
    run_genzoo("train", "clip-digits", "--out", str(tmp_path / "one"), *common, "--set", "batch_size=32")
    torchrun("train", "clip-digits", "--out", str(tmp_path / "two"), *common, "--set", "batch_size=16")
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for step in a:
        assert abs(a[step] - b[step]) <= 1e-5, (step, a[step], b[step])


# ---------------------------------------------------------------- FSDP2 for every genre (direct, gloo)
# name -> (preset, overrides, loaded): each genre's tiny preset; "loaded" models come from genzoo.load (GPT-2's
# Conv1D weights are then transposed views of the memory-mapped file)
FSDP_CASES = {
    "decoder-gpt2": ("gpt2-tiny", {}, False),
    "decoder-gpt2-loaded": ("gpt2-tiny", {}, True),
    # the load-balancing loss of a batch is not the mean of its halves' (fractions multiply): off, to compare
    "decoder-mixtral": ("mixtral-tiny", {"router_aux_loss_coef": 0.0}, False),
    "encoder-bert": ("bert-tiny", {"mlm_head": True, "pooler": False}, False),
    "seq2seq-t5": ("t5-tiny", {}, False),
    "clip": ("clip-tiny", {}, False),
    "diffusion-unet": ("ddpm-tiny", {"cond_drop_prob": 0.0}, False),
    "diffusion-dit": ("dit-tiny", {"cond_drop_prob": 0.0}, False),
}
FSDP_BATCH = 4  # 2 rows per rank


def fsdp_batch(model) -> dict:
    """A fixed global batch for a model of any genre: the forward's keyword arguments, tensors split on dim 0."""
    g = torch.Generator().manual_seed(1)
    c, b = model.config, FSDP_BATCH
    if c.genre in ("decoder", "encoder", "seq2seq"):
        ids = torch.randint(0, c.vocab_size, (b, 12), generator=g)
        return {"input_ids": ids, "labels": ids.flip(1) if c.genre == "seq2seq" else ids}
    if c.genre == "clip":
        return {"input_ids": torch.randint(0, c.vocab_size, (b, 8), generator=g),
                "pixel_values": torch.randn(b, c.channels, c.image_size, c.image_size, generator=g), "return_loss": True}
    x = torch.randn(b, c.channels, c.image_size, c.image_size, generator=g)
    return {"pixel_values": x, "labels": torch.arange(b), "noise": torch.randn(x.shape, generator=g),
            "timesteps": torch.randint(0, c.num_train_timesteps, (b,), generator=g)}


def two_steps(model, batch: dict, mean=lambda x: x) -> list[float]:
    """The loss, one AdamW step, the loss again (mean: the mean over ranks of a per-rank loss)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for i in range(2):
        loss = model(**batch).loss
        losses.append(mean(loss.detach()).item())
        if i == 0:
            loss.backward()
            opt.step()
            opt.zero_grad()
    return losses


def fsdp_worker(rank: int, port: int, saved: str, out: str) -> None:
    import copy
    import json
    import os
    import traceback

    import torch.distributed as dist

    import genzoo
    from genzoo.train.distributed import Dist, wrap

    torch.set_num_threads(1)
    models, refs = {}, {}
    for name, (preset, kw, loaded) in FSDP_CASES.items():  # the unsharded reference, before any process group
        torch.manual_seed(0)
        models[name] = (genzoo.load(saved) if loaded else genzoo.build(preset, **kw)).train()
        refs[name] = two_steps(copy.deepcopy(models[name]), fsdp_batch(models[name]))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    d = Dist(rank=rank, world_size=2)
    results = {}
    for name, model in models.items():
        try:
            wrapped = wrap(model, d, fsdp=True)
            half = {k: v[rank * FSDP_BATCH // 2:(rank + 1) * FSDP_BATCH // 2] if isinstance(v, torch.Tensor) else v
                    for k, v in fsdp_batch(model).items()}
            results[name] = {"ref": refs[name], "fsdp": two_steps(wrapped, half, d.mean),
                             "sharded": sum(type(m).__name__.startswith("FSDP") for m in wrapped.modules())}
        except Exception:
            results[name] = {"error": traceback.format_exc()}
        dist.barrier()
    if rank == 0:
        with open(out, "w") as f:
            json.dump(results, f)
    dist.destroy_process_group()
    os._exit(0)  # skip interpreter teardown, where gloo's worker threads can abort the process (genzoo/__main__.py)


@pytest.fixture(scope="module")
def fsdp_results(tmp_path_factory):
    """Every genre sharded over 2 gloo processes, in one spawn (one start-up for all genres)."""
    import json
    import socket

    import torch.multiprocessing as mp

    import genzoo

    tmp = tmp_path_factory.mktemp("fsdp")
    torch.manual_seed(0)
    genzoo.save(genzoo.build("gpt2-tiny"), tmp / "gpt2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(fsdp_worker, args=(port, str(tmp / "gpt2"), str(tmp / "out.json")), nprocs=2, join=True)
    return json.loads((tmp / "out.json").read_text())




@pytest.mark.parametrize("name", FSDP_CASES)
def test_fsdp_shards_every_genre_and_equals_one_process(fsdp_results, name):
    """wrap(model, fsdp=True) shards each of the model's shardable_blocks() and the model; on 2 ranks with half
    the batch each, the loss and the loss after one AdamW step equal one process with the whole batch."""
    r = fsdp_results[name]
    assert "error" not in r, r.get("error")
    assert r["sharded"] >= 2  # the blocks and the model
    for ours, ref in zip(r["fsdp"], r["ref"]):
        assert abs(ours - ref) <= 1e-5, (name, r)
