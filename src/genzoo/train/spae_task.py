"""Training SPAE (arXiv 2306.17842) on the digits under the shared loop. The codebook is the frozen LM's token
embedding table (`vl.lm`: a `text-qa` run or any decoder directory with the digit vocabulary), restricted to its
content words; with `model.semantic_weight > 0` the semantic loss pulls the coarse tokens toward the words a
frozen CLIP (`vl.clip`: a `clip-digits` run) finds most relevant to each training image, ranked among the words that
CLIP has read (`vl.semantic_words`, `data.digit_qa.SEMANTIC_WORDS`). Neither frozen model is
trained: they are loaded with `requires_grad=False` and only the codebook's copy (a buffer) enters SPAE.
Validation: PSNR per pyramid depth on held-out images, semantic precision of the coarse tokens, codebook usage."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.digit_qa import SEMANTIC_WORDS, content_words, related_words
from ..data.digits import TRAIN_TEMPLATES
from ..errors import ConfigError
from ..modes import evaluating
from ..tokenizers import Tokenizer
from .distributed import Dist
from .recipe import Recipe
from .tasks import TASKS, DigitsTask, autocast, build_from_recipe
from .vl_tasks import VLSettings


def semantic_precision(coarse_ids: torch.Tensor, labels: torch.Tensor, tokenizer: Tokenizer) -> float:
    """The fraction of images whose coarse-layer words (B, n) include a word naming their digit."""
    hits = 0
    for ids, c in zip(coarse_ids.tolist(), labels.tolist()):
        hits += bool({tokenizer.tok.id_to_token(i) for i in ids} & related_words(int(c)))
    return hits / max(1, len(labels))


def load_frozen(path: str):
    """A model directory loaded for use as a frozen part: eval mode, no gradients."""
    import genzoo

    return genzoo.load(path).requires_grad_(False)


@TASKS.register("spae")
class SPAETraining(DigitsTask):
    loss_label = "reconstruction + commitment (+ semantic) loss"

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        self.settings = s = VLSettings.of(recipe)
        if s.lm is None:
            raise ConfigError("task 'spae' needs vl.lm, the frozen language model whose token embeddings are the "
                              "codebook (--set vl.lm=DIR, a text-qa run)")
        self.lm = load_frozen(s.lm)
        self.tokenizer = Tokenizer.load(s.lm)
        self.words = content_words()
        ids = [self.tokenizer.tok.token_to_id(w) for w in self.words]
        missing = [w for w, i in zip(self.words, ids) if i is None]
        if missing:
            raise ConfigError(f"vl.lm={s.lm!r}: its tokenizer lacks the content words {missing[:5]}; train it with "
                              "task text-qa")
        self.allowed = torch.tensor(ids)
        overrides = {k: v for k, v in recipe.model.items() if k != "preset"}
        self.fixed = {"codebook_size": self.tokenizer.vocab_size, "codebook_dim": self.lm.config.d_model,
                      "image_size": 8, "channels": 1}
        from ..config import PRESETS

        self.config = PRESETS.get(recipe.model["preset"]).make(**{**overrides, **self.fixed})
        self.positives = None
        if self.config.semantic_weight > 0:
            if s.clip is None:
                raise ConfigError("model.semantic_weight > 0 needs vl.clip, the frozen CLIP that scores the words "
                                  "(--set vl.clip=DIR, a clip-digits run), or set model.semantic_weight=0")
            self.positives = self.relevant_words(s.clip, s.semantic_top_k, SEMANTIC_WORDS.get(s.semantic_words)())

    @torch.no_grad()
    def relevant_words(self, clip_dir: str, k: int, words: list[str]) -> torch.Tensor:
        """K_I for every training image (N, k): the k of `words` (content words) CLIP scores highest (SPAE
        sec. 3.2)."""
        from ..models.vl.spae import clip_relevance
        from .clip_task import tokenize

        if not set(words) <= set(self.words) or not 0 < k <= len(words):
            raise ConfigError(f"vl.semantic_words gives {len(words)} words; they must be content words (SPAE's "
                              f"codebook), at least vl.semantic_top_k={k} of them")
        clip, tok = load_frozen(clip_dir), Tokenizer.load(clip_dir)
        relevance = clip_relevance(clip, lambda t: tokenize(tok, t, clip.config.max_positions), self.train_x,
                                   words, TRAIN_TEMPLATES)  # (N, W)
        ids = torch.tensor([self.tokenizer.tok.token_to_id(w) for w in words])
        return ids[relevance.topk(k, dim=-1).indices]  # (N, k) token ids

    def build_model(self):
        model = build_from_recipe(self.recipe, **self.fixed)
        model.set_codebook(self.lm.embed.weight, self.allowed.tolist())
        return model

    def next_batch(self):
        batch, mine, _ = self.take(len(self.train_x))
        idx = batch[mine]
        dev = self.d.device
        pos = None if self.positives is None else self.positives[idx].to(dev)
        return self.train_x[idx].to(dev), pos

    def loss(self, model, batch, amp):
        x, pos = batch
        with autocast(x.device, amp):
            return model(x, pos).loss

    @torch.no_grad()
    def validate(self, model, amp):
        from ..models.vl.spae import psnr

        x, y = self.val_x.to(self.d.device), self.val_y
        with evaluating(model) as net:
            net = getattr(net, "module", net)
            out = net(x)
            first = net.config.layer_sizes[0]
            metrics = {"val_loss": out.reconstruction_loss.item()}
            for depth, r in enumerate(out.reconstructions, 1):
                metrics[f"psnr_depth{depth}"] = psnr(r, x)
            metrics["semantic_precision"] = semantic_precision(out.token_ids[:, :first].cpu(), y, self.tokenizer)
            metrics["codebook_used"] = out.token_ids.unique().numel()
        return metrics

    def save_files(self, directory):
        self.tokenizer.save(directory)
