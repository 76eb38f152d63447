"""The training loop for language-model recipes: AdamW with warmup + cosine decay, gradient clipping
and accumulation, periodic validation, atomic checkpoints with exact resume, DDP/FSDP2 under torchrun.

A run directory holds:
  genzoo-run.json (the marker), .genzoo-run.lock (held while the run runs), recipe.yaml, data.json
  (corpus file list + hash), tokenizer.json, metrics.jsonl, loss.png, checkpoints/step-NNNNNNNN/
  (HF-format model + tokenizer + trainer_state.pt), and, once training ends, the final model at the
  top level (config.json, model.safetensors, tokenizer files), so the run directory itself loads
  with `genzoo.load` and with `transformers`' Auto classes. How a run claims, checks and exports
  into its directory is `train.runs`.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path

import torch
import yaml

from ..errors import CheckpointError, ConfigError, GenzooError, RunDirError
from ..interop import load_weights_into
from ..interop.schema import fits_in_memory
from ..rundir import claim_run, clean_partial, latest_checkpoint, read_marker, write_marker
from .checkpoint import load_trainer_state, rng_state, save_checkpoint, set_rng_state
from .distributed import Dist, autocast_dtype, setup, teardown, wrap
from .finetune import apply_lora
from .metrics import MetricsLog, plot_losses, read_records
from .optimizers import OptimizerSet
from .recipe import Recipe, recipe_from_dict
from .runs import check_resume, export_final, fresh_start, state_value, unchanged_on_error
from .tasks import TASKS


class TrainingError(GenzooError):
    """Training cannot go on (a non-finite loss, a resume with nothing to resume)."""


def lr_at(step: int, recipe: Recipe) -> float:
    """Multiplier of the base lr: linear warmup, then cosine decay to min_lr_ratio (Loshchilov & Hutter 2017)."""
    if step < recipe.warmup_steps:
        return (step + 1) / recipe.warmup_steps
    progress = min(1.0, (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps))
    return recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model, recipe: Recipe) -> torch.optim.Optimizer:
    """AdamW, weight decay on matrices only. recipe.lr_scales {module: factor} gives the parameters under a module
    (e.g. "encoder": a pretrained backbone) factor x lr."""
    if recipe.lr_scales:
        groups: dict = {}
        for name, p in model.named_parameters():
            if p.requires_grad:
                scale = next((f for m, f in recipe.lr_scales.items() if name == m or name.startswith(m + ".")), 1.0)
                wd = recipe.weight_decay if p.dim() >= 2 else 0.0
                groups.setdefault((wd, float(scale)), []).append(p)
        return torch.optim.AdamW([{"params": ps, "weight_decay": wd, "lr": recipe.lr * f}
                                  for (wd, f), ps in groups.items()], lr=recipe.lr, betas=(recipe.beta1, recipe.beta2))
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=recipe.lr, betas=(recipe.beta1, recipe.beta2))


def build_model(task):
    """The task's model; an allocation the size check could not foresee failing is a ConfigError."""
    try:
        return task.build_model()
    except (RuntimeError, MemoryError) as e:
        if isinstance(e, RuntimeError) and "alloc" not in str(e):
            raise
        raise ConfigError(f"the recipe's model does not fit in memory ({str(e)[:200]})") from None


def _fsdp(recipe: Recipe, d: Dist) -> bool:
    return recipe.fsdp and d.enabled


def writable_model(model, recipe: Recipe, d: Dist):
    """A plain module with the full weights, for writing files (rank 0; None on other ranks).
    Under FSDP2 the shards are gathered, a collective that every rank must enter."""
    if not _fsdp(recipe, d):
        return model if d.is_main else None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not d.is_main:
        return None
    plain = type(model)(model.config)
    plain.load_state_dict(full)
    return plain


def optimizer_state(model, opt, recipe: Recipe, d: Dist) -> dict:
    if not _fsdp(recipe, d):
        return opt.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(model, opt, state: dict, recipe: Recipe, d: Dist) -> None:
    if not _fsdp(recipe, d):
        opt.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, opt, state, options=StateDictOptions(full_state_dict=True))


def train(recipe: Recipe, out: str | os.PathLike, *, resume: bool = False, steps: int | None = None,
          force: bool = False) -> dict:
    """Run `recipe` into directory `out` (continuing its latest checkpoint with resume=True).

    `out` must be new, empty or a genzoo run; the run holds an exclusive lock on it until it ends (a second
    writer refuses at once, naming the holder). A resume compares the run's recipe.yaml with `recipe`: a change
    of what is trained (`runs.RESUME_REFUSES`: model, data, task, init, LoRA, seed, batch size) refuses unless
    force=True; other changes (lr, steps, intervals) are recorded in metrics.jsonl at the resume step. A refused
    start or resume leaves every file of the run as it was."""
    if steps is not None:
        if not (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1):
            raise ConfigError(f"steps={steps!r} is invalid: must be a positive integer")
        recipe.steps = steps
    d = setup(recipe.device)
    try:
        return _train(recipe, Path(out), resume, force, d)
    finally:
        teardown(d)


def _train(recipe: Recipe, run: Path, resume: bool, force: bool, d: Dist) -> dict:
    with contextlib.ExitStack() as stack:
        created = stack.enter_context(claim_run(run, resume)) if d.is_main else False
        d.barrier()
        return _locked_train(recipe, run, resume, force, d, created)


def _locked_train(recipe: Recipe, run: Path, resume: bool, force: bool, d: Dist, created: bool) -> dict:
    ckpt = latest_checkpoint(run)
    changes: dict[str, tuple] = {}
    if resume:
        if ckpt is None:
            raise TrainingError(f"--resume: no complete checkpoint in {run / 'checkpoints'}")
        changes = check_resume(run, recipe, force)
    elif ckpt is not None:
        raise TrainingError(f"{run} already has checkpoints; pass --resume to continue it or choose another --out")

    step, kept = 0, []
    # until training starts, a failure leaves the run's files as they were (a directory made here goes)
    with unchanged_on_error(run, enabled=d.is_main, remove=created):
        if d.is_main and not resume:
            fresh_start(run)
        d.barrier()
        amp = autocast_dtype(recipe.precision, d.device)  # bf16 asked for where the hardware has none: refused here
        torch.manual_seed(recipe.seed)  # the same initial weights on every rank
        task = TASKS.get(recipe.task)(recipe, run, d)
        fits_in_memory(task.build_model, device=d.device, factor=4, where="the recipe's model: ")  # + grads, AdamW
        model = apply_lora(build_model(task), recipe).to(d.device)  # lora.r > 0: adapters (peft) train alone
        if resume:
            state = load_trainer_state(ckpt)
            load_weights_into(model, ckpt)
            step = state_value(ckpt, lambda: int(state["step"]))
            if recipe.steps < step:
                raise RunDirError(f"{run}: steps={recipe.steps} is below the step of its checkpoint ({step}); "
                                  f"resume with steps >= {step}")
            state_value(ckpt, lambda: task.load_state_dict(state["data"]))
        wrapped = wrap(model, d, recipe.fsdp)
        own = task.make_optimizers(model)  # {name: optimiser} of a task that makes its own updates (a GAN), or None
        if own is not None and (d.enabled or recipe.nan_policy != "error"):
            raise ConfigError(f"task {recipe.task!r} makes its own updates: one process (no torchrun) and "
                              f"nan_policy='error' (got nan_policy={recipe.nan_policy!r})")
        opt = make_optimizer(model, recipe) if own is None else OptimizerSet(own)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, recipe)) if own is None else \
            opt.schedulers(lambda s: lr_at(s, recipe))
        if resume:
            state_value(ckpt, lambda: load_optimizer_state(model, opt, state["optimizer"], recipe, d))
            state_value(ckpt, lambda: sched.load_state_dict(state["scheduler"]))
            state_value(ckpt, lambda: set_rng_state(state["rng"]))
        if d.is_main:  # a damaged metrics.jsonl refuses the resume here, before any file changes
            kept = [r for r in read_records(run / "metrics.jsonl") if r["step"] <= step]
    log = None
    if d.is_main:  # every check has passed: from here on the run's files change
        if resume and read_marker(run) is None:  # a run made before markers
            write_marker(run, final=step if (run / "config.json").exists() else None)
        (run / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        clean_partial(run)  # only the lock holder: another live run's saves look the same
        log = MetricsLog(run / "metrics.jsonl", records=kept)
        if changes:
            log.write({"step": step, "recipe_change": {k: list(v) for k, v in changes.items()},
                       **({"forced": True} if force else {})})

    from tqdm.auto import tqdm

    bar = tqdm(total=recipe.steps, initial=step, disable=not (d.is_main and recipe.progress), unit="step",
               dynamic_ncols=True)
    skipped, last_val = 0, None
    if step == 0:  # where the run starts, for the loss curve
        first = task.validate(wrapped, amp)
        if log is not None:
            log.write({"step": 0, **first})
    while step < recipe.steps:
        t0 = time.perf_counter()
        wrapped.train()
        total = torch.zeros((), device=d.device)
        figures = {}  # what a task's own update reports besides its loss
        if own is not None:  # the task makes the whole update with its own optimisers
            figures = task.train_step(wrapped, own, amp)
            total += figures.pop("loss")
        else:
            for micro in range(recipe.grad_accum):
                batch = task.next_batch()
                sync = micro == recipe.grad_accum - 1 or not d.enabled or recipe.fsdp
                ctx = contextlib.nullcontext() if sync else wrapped.no_sync()
                with ctx:
                    loss = task.loss(wrapped, batch, amp) / recipe.grad_accum
                    loss.backward()
                total += loss.detach()
        loss_value = d.mean(total).item()
        if not math.isfinite(loss_value):
            if recipe.nan_policy == "error":
                raise TrainingError(
                    f"loss is {loss_value} at step {step + 1}; lower lr or set nan_policy=skip to skip such steps")
            opt.zero_grad(set_to_none=True)
            skipped += 1
            step += 1
            sched.step()
            bar.update(1)
            continue
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip) \
            if recipe.grad_clip > 0 and own is None else None
        lr = sched.get_last_lr()[0]
        if own is None:
            opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)
        rate = task.units_per_step() / (time.perf_counter() - t0)
        bar.set_postfix(loss=f"{loss_value:.4f}", **{f"{task.units}_s": f"{rate:,.0f}"})
        if log is not None and (step % recipe.log_every == 0 or step == recipe.steps):
            rec = {"step": step, "loss": loss_value, "lr": lr, f"{task.units}_per_s": rate, **figures}
            if grad_norm is not None:
                rec["grad_norm"] = float(grad_norm)
            log.write(rec)
        if step % recipe.eval_every == 0 or step == recipe.steps:
            last_val = task.validate(wrapped, amp)
            if log is not None:
                log.write({"step": step, **last_val})
                plot_losses(log.records(), run / "loss.png", f"{recipe.name or 'run'}: {run.name}",
                            getattr(task, "loss_label", "loss"))
            if d.is_main and recipe.progress:
                bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in last_val.items()))
        if step % recipe.save_every == 0 or step == recipe.steps:
            plain = writable_model(model, recipe, d)
            optim = optimizer_state(model, opt, recipe, d)
            if d.is_main:
                st = {"step": step, "data": task.state_dict(), "optimizer": optim, "scheduler": sched.state_dict(),
                      "rng": rng_state(), "skipped": skipped}
                save_checkpoint(run, step, plain, task.save_files, st, recipe.keep_checkpoints)
            d.barrier()
    bar.close()
    plain = writable_model(model, recipe, d)
    if d.is_main:
        export_final(run, plain, task.save_files, step)
    d.barrier()
    return {"run": str(run), "step": step, "skipped": skipped, **(last_val or {})}


def evaluate_run(path: str | os.PathLike, max_batches: int | None = None, batch_size: int = 16) -> dict:
    """Validation metrics of a run: for language models (or an HF directory) the loss and perplexity on the
    validation split of the standard-library corpus (or of the run's own data.source); for other tasks, the task's
    own validation."""
    import genzoo
    from ..data import stdlib_corpus
    from ..rundir import resolve_checkpoint_dir
    from ..tokenizers import Tokenizer
    from .data import token_stream
    from .tasks import lm_validation, validation_blocks

    if max_batches is not None and not (isinstance(max_batches, int) and max_batches >= 1):
        raise ConfigError(f"max_batches={max_batches!r} is invalid: a positive integer, or None for all")
    directory = resolve_checkpoint_dir(path)
    run = Path(path)
    recipe = None
    if (run / "recipe.yaml").exists():
        try:
            recipe = recipe_from_dict(yaml.safe_load((run / "recipe.yaml").read_text()))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError, TypeError) as e:
            raise CheckpointError(f"{run / 'recipe.yaml'}: not a readable recipe ({e})") from None
    if recipe is not None and recipe.task != "lm":  # other tasks: their own validation, on their own data
        recipe.progress = False
        task = TASKS.get(recipe.task)(recipe, run, Dist())
        return {"dir": str(directory), **task.validate(genzoo.load(directory), autocast_dtype(recipe.precision,
                                                                                               torch.device("cpu")))}
    model = genzoo.load(directory)
    tokenizer = Tokenizer.from_dir(directory)
    if recipe is None:
        recipe = Recipe(data={"block_size": min(128, model.config.max_positions)})
    if recipe.data.source is not None and (run / "data" / "val.bin").exists():  # the run's own held-out text
        from ..data.tokens import read_tokens

        val = read_tokens(run / "data", "val")
    else:
        corpus = stdlib_corpus(max_bytes=recipe.data.max_bytes, val_percent=recipe.data.val_percent)
        val = token_stream(tokenizer, corpus.read("val"))
    # default (None): the whole split
    recipe.batch_size, recipe.eval_batches = batch_size, sys.maxsize if max_batches is None else max_batches
    recipe.eval_batches = validation_blocks(val, recipe.data.block_size, recipe)[1]
    amp = autocast_dtype(recipe.precision, torch.device("cpu"))  # the recipe's precision (auto: bf16 where supported)
    return {"dir": str(directory), "batches": recipe.eval_batches, **lm_validation(model, val, recipe, Dist(), amp)}
