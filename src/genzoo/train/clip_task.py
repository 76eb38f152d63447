"""The image-text contrastive task (CLIP) on scikit-learn's digits: each image is paired with a caption
drawn from the training templates (the class as a number word or a numeral). Validation reports the
contrastive loss on held-out images and zero-shot accuracy with templates never seen in training."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.digits import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES, WORDS, all_train_captions, class_forms
from ..errors import ConfigError
from ..models.clip.loss import clip_loss
from ..modes import evaluating
from ..tokenizers import Tokenizer, pad_rows, train_bpe
from .data import run_tokenizer
from .distributed import Dist
from .recipe import Recipe
from .tasks import TASKS, DigitsTask, autocast, build_from_recipe


def caption_tokenizer(run: Path, vocab_size: int, d: Dist) -> Tokenizer:
    return run_tokenizer(run, d, lambda: train_bpe(all_train_captions() * 4, vocab_size, min_frequency=1))


def tokenize(tok: Tokenizer, texts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids ending with the end-of-text token (B, T) and their attention mask (B, T) (a CLIP tokenizer
    that appends the end-of-text token itself keeps one)."""
    eos = tok.eos_id
    rows = [ids[:-1] if ids and ids[-1] == eos else ids for ids in tok.encode_batch(texts)]
    return pad_rows([ids[: max_len - 1] + [eos] for ids in rows], tok.pad_id if tok.pad_token else eos)


@TASKS.register("clip")
def clip_task(recipe: Recipe, run: Path, d: Dist):
    """CLIP on the user's image-caption table (data.source, `clip_pairs`) or on the built-in digits."""
    if recipe.data.source is not None:
        from .clip_pairs import ImageCaptionPairs

        return ImageCaptionPairs(recipe, run, d)
    if recipe.init is not None:
        raise ConfigError("task 'clip' with init fine-tunes on your image-caption table: give data.source (--data)")
    return ImageTextContrastive(recipe, run, d)


class ImageTextContrastive(DigitsTask):
    loss_label = "contrastive cross-entropy (nats/pair)"
    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        self.tokenizer = caption_tokenizer(run, recipe.data.vocab_size, d)

    def build_model(self):
        eos = self.tokenizer.eos_id
        return build_from_recipe(self.recipe, vocab_size=self.tokenizer.vocab_size,
                                 max_positions=self.recipe.data.block_size, eos_token_id=eos, pad_token_id=eos,
                                 image_size=8, channels=1)

    def captions(self, labels: torch.Tensor, g: torch.Generator) -> list[str]:
        t = torch.randint(len(TRAIN_TEMPLATES), (len(labels),), generator=g)
        f = torch.randint(2, (len(labels),), generator=g)
        return [TRAIN_TEMPLATES[i].format(class_forms(int(c))[j]) for i, c, j in zip(t, labels, f)]

    def next_batch(self):
        batch, mine, start = self.take(len(self.train_x))
        # captions are drawn for the global batch, whatever the number of ranks, then sliced
        captions = self.captions(self.train_y[batch], torch.Generator().manual_seed(self.recipe.seed * 7919 + start))
        idx, captions = batch[mine], captions[mine]
        ids, mask = tokenize(self.tokenizer, captions, self.recipe.data.block_size)
        dev = self.d.device
        return ids.to(dev), mask.to(dev), self.train_x[idx].to(dev)

    def loss(self, model, batch, amp):
        ids, mask, pixels = batch
        with autocast(pixels.device, amp):
            return model(ids, pixels, attention_mask=mask, return_loss=True).loss

    @torch.no_grad()
    def validate(self, model, amp):
        """Contrastive loss on the held-out images (captions from the training templates, fixed seed) and
        zero-shot accuracy with the held-out templates (prompt ensemble)."""
        g = torch.Generator().manual_seed(0)
        x, y = self.val_x.to(self.d.device), self.val_y
        ids, mask = tokenize(self.tokenizer, self.captions(y, g), self.recipe.data.block_size)
        with evaluating(model) as net:
            image = net.encode_image(x)
            text = net.encode_text(ids.to(x.device), mask.to(x.device))
            loss = clip_loss(image, text, net.scale(), distributed=False).item()
            pred, _ = net.classify(x, WORDS, HELD_OUT_TEMPLATES, self.tokenize)
        return {"val_loss": loss, "zero_shot_acc": (pred.cpu() == y).float().mean().item()}

    def tokenize(self, texts):
        ids, mask = tokenize(self.tokenizer, texts, self.recipe.data.block_size)
        return ids.to(self.d.device), mask.to(self.d.device)
