"""The Gato task (arXiv 2205.06175, sec. 2.3): one model trained on a mixture of text, digit captions and control
episodes (`data.mixture`), with the next-token loss masked to text and action tokens. `data.mixture` holds the
sampling weight of each task; a specialist is the same recipe with a single task.

Validation reports the masked loss of each task of the mixture on held-out data (standard-library files, digit
images and expert episodes never trained on) and their mixture-weighted mean (`val_loss`). Returns in the
environments and captioning accuracy are measured by `genzoo experiment gato` and `genzoo play`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import GENRES, PRESETS
from ..data import stdlib_corpus
from ..data.control import CONTROL, wide_start_tasks
from ..data.digits import load_digits_split
from ..data.mixture import (TEXT_TASKS, VAL_SEED, Mixture, TextStream, caption_stream, caption_texts, check_mixture,
                            control_stream, validation_windows)
from ..errors import ConfigError
from ..modes import evaluating
from ..tokenizers import train_bpe
from .data import run_tokenizer, token_stream
from .distributed import Dist
from .recipe import Recipe
from .tasks import TASKS, Task, autocast


def gato_tokenizer(run: Path, d: Dist, texts: list[str], vocab_size: int):
    """A byte-level BPE trained on the corpus and the captions, once per run (then read from run/tokenizer.json)."""
    captions = caption_texts(torch.arange(10).repeat(40), seed=0)
    return run_tokenizer(run, d, lambda: train_bpe(texts + captions, vocab_size))


def check_episodes(episodes: dict | None) -> dict[str, int]:
    """data.episodes: {control task: number of expert episodes}; unknown tasks or non-positive counts raise."""
    for name, n in (episodes or {}).items():
        CONTROL.get(name)  # ConfigError naming the control tasks
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"data.episodes.{name}={n!r} is invalid: a positive number of episodes")
    return dict(episodes or {})


def check_wide_start_share(shares: dict | None) -> dict[str, float]:
    """data.wide_start_share: {control task with a wide start: share in [0, 1]}; anything else raises."""
    for name, share in (shares or {}).items():
        task = CONTROL.get(name)  # ConfigError naming the control tasks
        if task.wide_start is None:
            raise ConfigError(f"data.wide_start_share.{name}: the task has no wide start; tasks with one: "
                              f"{', '.join(wide_start_tasks())}")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise ConfigError(f"data.wide_start_share.{name}={share!r} is invalid: a share in [0, 1]")
    return {k: float(v) for k, v in (shares or {}).items()}


@TASKS.register("gato")
class GatoTask(Task):
    units = "tok"

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        data = recipe.data
        if data.corpus != "gato":
            raise ConfigError(f"task 'gato' trains on data.corpus='gato' (its mixture), got {data.corpus!r}")
        self.weights = check_mixture(data.mixture)
        episodes = check_episodes(data.episodes)
        wide = check_wide_start_share(data.wide_start_share)
        corpus, train_texts = None, []
        if "text" in self.weights or not (run / "tokenizer.json").exists():  # the corpus only when it is needed
            corpus = stdlib_corpus(max_bytes=data.max_bytes, val_percent=data.val_percent)
            train_texts = corpus.read("train")
        self.tokenizer = gato_tokenizer(run, d, train_texts, data.vocab_size)
        overrides = {k: v for k, v in recipe.model.items() if k != "preset"}
        overrides.update(text_vocab_size=self.tokenizer.vocab_size, max_positions=data.block_size,
                         eos_token_id=self.tokenizer.eos_id)
        self.config = PRESETS.get(recipe.model["preset"]).make(**overrides)
        if self.config.genre != "gato":
            raise ConfigError(f"task 'gato' needs a gato preset, got {recipe.model['preset']!r} ({self.config.genre})")
        layout, block = self.config.layout, data.block_size
        train, val = {}, {}
        if "text" in self.weights:
            train["text"] = TextStream(token_stream(self.tokenizer, train_texts), layout)
            val["text"] = TextStream(token_stream(self.tokenizer, corpus.read("val")), layout)
        if "caption" in self.weights:
            tx, ty, vx, vy = load_digits_split(20.0)
            train["caption"] = caption_stream(tx, ty, self.tokenizer, layout, recipe.seed)
            val["caption"] = caption_stream(vx, vy, self.tokenizer, layout, 0)
        for name in self.weights:
            if name in TEXT_TASKS:
                continue
            n = episodes.get(name, CONTROL.get(name).train_episodes)
            train[name] = control_stream(name, range(n), layout, wide.get(name, 0.0))
            # validation: the default starts, the distribution the experiment evaluates on
            val[name] = control_stream(name, range(VAL_SEED, VAL_SEED + max(2, n // 10)), layout)
        self.mixture = Mixture(self.weights, train, block, seed=recipe.seed)
        n_val = recipe.eval_batches * recipe.batch_size
        self.val = {k: validation_windows(s, block, n_val) for k, s in val.items()}
        self.position = 0

    def build_model(self):
        return GENRES.get("gato")(self.config)

    def next_batch(self):
        b, world = self.recipe.batch_size, self.d.world_size
        tokens, _ = self.mixture.batch(self.position, b * world)
        self.position += 1
        return tokens.batch_slice(self.d.rank * b, (self.d.rank + 1) * b).to(self.d.device)  # this rank's rows

    def loss(self, model, batch, amp):
        with autocast(self.d.device, amp):
            return model(batch, return_loss=True, return_logits=False, check=False).loss

    @torch.no_grad()
    def validate(self, model, amp):
        """The masked loss of each task on its held-out windows, and their mixture-weighted mean."""
        out = {}
        b = self.recipe.batch_size
        with evaluating(model) as net:
            for name, windows in self.val.items():
                total, count = 0.0, 0
                for i in range(0, windows.ids.shape[0], b):
                    rows = windows.batch_slice(i, i + b).to(self.d.device)
                    with autocast(self.d.device, amp):
                        loss = net(rows, return_loss=True, return_logits=False, check=False,
                                   loss_reduction="token").loss  # a token mean, whatever the training reduction
                    n = int(rows.target[:, 1:].sum())
                    total, count = total + float(loss) * n, count + n
                out[f"{name}_loss"] = total / max(count, 1)
        out["val_loss"] = sum(self.weights[k] * out[f"{k}_loss"] for k in self.weights)
        return {"val_loss": out.pop("val_loss"), **out}

    def units_per_step(self):
        r = self.recipe
        return r.batch_size * r.grad_accum * self.d.world_size * r.data.block_size

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = int(state["position"])

    def save_files(self, directory):
        self.tokenizer.save(directory)
