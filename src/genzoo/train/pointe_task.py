"""Task "pointe": the whole Point-E system on procedural shapes (`data.shapes`), in two stages of one run.

1. The first `pointe.clip_steps` steps train CLIP (contrastive loss) on views and their captions.
2. The rest train every diffusion model at once on CLIP's frozen features: text -> view (the image model),
   view -> coarse cloud (base), view + coarse -> more points (upsampler) and text -> coarse (the baseline). Their
   losses are summed; each model's weights get gradients only from its own loss, so this is training them side by
   side. CLIP gets no gradient in this stage (its features are computed under no_grad), so it stays as stage 1
   left it.

The stage is a function of the data position, so a resumed run continues in the right stage. Views are rendered
once per object; clouds (fresh surface samples) and captions are drawn per batch from the position's seed.
Validation: CLIP's zero-shot shape / colour accuracy on held-out views (prompts "a {colour} {shape}") and each
diffusion loss on held-out objects (fixed noise and timesteps).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch

from ..errors import ConfigError
from ..modes import evaluating
from ..registry import nearest
from ..tokenizers import train_bpe
from .data import run_tokenizer
from .distributed import Dist
from .recipe import Recipe
from .tasks import TASKS, ExampleTask, autocast, build_from_recipe


@dataclass
class PointETraining:
    objects: int = 4000  # training objects (each with one view; clouds and captions drawn per batch)
    val_objects: int = 200
    clip_steps: int = 300  # stage 1: CLIP alone; then the diffusion models on its frozen features
    render_points: int = 2048  # surface points splatted per view

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
                raise ConfigError(f"recipe field pointe.{f.name}={v!r} is invalid: a positive integer")

    @classmethod
    def from_dict(cls, data: dict) -> "PointETraining":
        names = [f.name for f in fields(cls)]
        for k in data:
            if k not in names:
                raise ConfigError(f"unknown key pointe.{k}{nearest(k, names)}; keys: {', '.join(names)}")
        return cls(**data)


def caption_tokenizer(run: Path, vocab_size: int, d: Dist):
    from ..data.shape_captions import all_captions

    return run_tokenizer(run, d, lambda: train_bpe(all_captions(), vocab_size, min_frequency=1))


@TASKS.register("pointe")
class PointETask(ExampleTask):
    units = "objects"
    loss_label = "CLIP contrastive loss, then the sum of the diffusion losses"

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        from ..data.shape_set import ShapeSet

        if d.world_size > 1:
            raise ConfigError("task 'pointe' trains in one process (its stages call the model's parts directly)")
        if recipe.data.corpus not in ("stdlib", "shapes"):  # "stdlib" is the recipe default: the field is unused
            raise ConfigError(f"task 'pointe' trains on data.corpus='shapes', got {recipe.data.corpus!r}")
        self.opts = PointETraining.from_dict(recipe.pointe)
        from ..config import PRESETS

        model = dict(recipe.model)
        size = PRESETS.get(model.pop("preset")).make(**model).image_size  # the preset's, or the override
        self.train_set = ShapeSet(self.opts.objects, recipe.seed, size, self.opts.render_points)
        self.val_set = ShapeSet(self.opts.val_objects, recipe.seed + 1, size, self.opts.render_points)
        self.tokenizer = caption_tokenizer(run, recipe.data.vocab_size, d)
        self.fine_points = None  # set by build_model from the model's config

    def build_model(self):
        eos = self.tokenizer.eos_id
        model = build_from_recipe(self.recipe, vocab_size=self.tokenizer.vocab_size, eos_token_id=eos,
                                  pad_token_id=eos, max_text_len=self.recipe.data.block_size)
        model.tokenizer = self.tokenizer
        self.fine_points = model.config.fine_points
        return model

    def stage(self, position: int) -> str:
        step = position // (self.global_batch * self.recipe.grad_accum)
        return "clip" if step < self.opts.clip_steps else "diffusion"

    def next_batch(self):
        stage = self.stage(self.position)
        batch, mine, start = self.take(len(self.train_set))
        idx = batch[mine]
        seed = self.recipe.seed * 7919 + start
        captions = self.train_set.captions(idx, seed)
        model_ids = self._tokenize(captions)
        dev = self.d.device
        views = self.train_set.views[idx].to(dev)
        clouds = self.train_set.clouds(idx, self.fine_points, seed + 1).to(dev) if stage == "diffusion" else None
        return stage, model_ids.to(dev), views, clouds, seed

    def _tokenize(self, texts: list[str]) -> torch.Tensor:
        from ..models.pointe.model import tokenize_prompts

        eos = self.tokenizer.eos_id
        return tokenize_prompts(self.tokenizer, texts, self.recipe.data.block_size, eos, eos)

    def loss(self, model, batch, amp):
        stage, ids, views, clouds, seed = batch
        net = getattr(model, "module", model)
        with autocast(views.device, amp):
            if stage == "clip":
                return net.clip_loss(ids, views)
            return net.diffusion_losses(ids, views, clouds, torch.Generator().manual_seed(seed))["loss"]

    @torch.no_grad()
    def validate(self, model, amp):
        from ..data.shapes import COLOUR_NAMES, SHAPE_NAMES

        dev = self.d.device
        idx = torch.arange(len(self.val_set))
        views = self.val_set.views.to(dev)
        captions = self.val_set.captions(idx, 0)
        ids = self._tokenize(captions).to(dev)
        with evaluating(model) as net:
            out = {"val_clip_loss": net.clip_loss(ids, views).item()}
            combos = [(s, c) for s in range(len(SHAPE_NAMES)) for c in range(len(COLOUR_NAMES))]
            prompts = [f"a {COLOUR_NAMES[c]} {SHAPE_NAMES[s]}" for s, c in combos]
            text = net.clip.encode_text(self._tokenize(prompts).to(dev))
            best = (net.clip.encode_image(views) @ text.t()).argmax(-1).cpu()  # (N,)
            objs = self.val_set.objects
            out["zero_shot_shape_acc"] = (torch.tensor([combos[i][0] for i in best]) == objs.shape).float().mean().item()
            out["zero_shot_colour_acc"] = (torch.tensor([combos[i][1] for i in best]) == objs.colour).float().mean().item()
            clouds = self.val_set.clouds(idx, self.fine_points, 0).to(dev)
            losses = net.diffusion_losses(ids, views, clouds, torch.Generator().manual_seed(0))
            out.update({f"val_{k}": v.item() for k, v in losses.items() if k != "loss"})
        return out

    def save_files(self, directory):
        self.tokenizer.save(directory)
