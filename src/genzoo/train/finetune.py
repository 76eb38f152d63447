"""Fine-tuning: a run that starts from a checkpoint (`init`: a Hugging Face directory or a genzoo run) takes its
weights and its tokenizer instead of a preset and a freshly trained tokenizer; `lora.r > 0` trains LoRA adapters
(Hu et al., 2021, arXiv:2106.09685) through `peft` instead of every weight. The run directory then holds the merged
model at its top level (`genzoo.load`, transformers) and the adapter in `adapter/` (`peft.PeftModel.from_pretrained`
on the initial model), see `interop.lora`."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..config import GENRES
from ..errors import ConfigError
from .recipe import Recipe


def init_directory(recipe: Recipe):
    from ..rundir import resolve_checkpoint_dir

    return resolve_checkpoint_dir(recipe.init)


def init_genre(directory) -> tuple[str, str]:
    """(genre, model_type) of a checkpoint directory, from its config.json alone (no weights read)."""
    from ..interop import FORMATS
    from ..interop.files import read_config

    for name in FORMATS.names():
        if FORMATS.get(name).detect(directory):
            return "diffusion", name
    from ..interop import format_for

    hf = read_config(directory)
    return format_for(hf, directory / "config.json").config_from_hf(hf).genre, hf.get("model_type", "?")


def check_genre(recipe: Recipe, genres: tuple[str, ...], genre: str, what: str) -> None:
    if genre not in genres:
        raise ConfigError(f"init={recipe.init!r}: task {recipe.task!r} fine-tunes a {' or '.join(genres)} model; "
                          f"that directory holds a {genre} model ({what})")


def init_tokenizer(recipe: Recipe, genres: tuple[str, ...]):
    """The initial checkpoint's tokenizer (once its genre is known to be one of `genres`, before any data is read),
    or None when the run trains from a preset."""
    if recipe.init is None:
        return None
    from ..tokenizers import Tokenizer

    directory = init_directory(recipe)
    check_genre(recipe, genres, *init_genre(directory))
    return Tokenizer.from_dir(directory)


def init_model(recipe: Recipe, genres: tuple[str, ...], **changes):
    """The initial checkpoint's model, in training mode, with its own copy of every weight (a loaded model's tensors
    may be views of the checkpoint file). `changes`: config fields the task needs (a masked-LM head, say); the model
    is then rebuilt with them and given every weight that still fits, the new parts freshly initialised."""
    import genzoo

    directory = init_directory(recipe)
    model = genzoo.load(directory)
    check_genre(recipe, genres, model.config.genre, type(model).__name__)
    if "dropout" in recipe.model and hasattr(model.config, "dropout"):
        changes["dropout"] = recipe.model["dropout"]
    changes = {k: v for k, v in changes.items() if getattr(model.config, k) != v}
    if changes:
        config = dataclasses.replace(model.config, **changes)
        rebuilt = GENRES.get(config.genre)(config)
        state = {k: v for k, v in model.state_dict().items() if k in rebuilt.state_dict()
                 and rebuilt.state_dict()[k].shape == v.shape}
        rebuilt.load_state_dict(state, strict=False)
        if hasattr(model, "tokenizer"):
            rebuilt.tokenizer = model.tokenizer
        model = rebuilt
    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.clone()
    return model.train()


def apply_lora(model: nn.Module, recipe: Recipe) -> nn.Module:
    """`model` with LoRA adapters on the linear layers named by lora.targets (peft's `get_peft_model`: only the
    adapters train), or `model` itself when lora.r is 0."""
    cfg = recipe.lora
    if cfg.r == 0:
        return model
    if recipe.fsdp:
        raise ConfigError("lora.r > 0 with fsdp=true is not supported (train the adapters with DDP)")
    try:
        import peft
    except ImportError:
        raise ConfigError("lora.r > 0 needs peft: pip install 'genzoo[lora]'") from None
    targets = [t.strip() for t in cfg.targets.split(",") if t.strip()]
    linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
    unknown = [t for t in targets if t not in linear]
    if unknown or not targets:
        raise ConfigError(f"lora.targets={cfg.targets!r}: {unknown or 'nothing'} names no linear layer of the model; "
                          f"its linear layers: {', '.join(linear)}")
    lora = peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets)
    return peft.get_peft_model(model, lora)
