"""scikit-learn's bundled handwritten digits (8x8 greyscale, 1,797 images), split per class into train and
held-out images, with captions drawn from templates. Two disjoint template sets: the ones training sees,
and the ones kept for zero-shot evaluation."""

from __future__ import annotations

import torch

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TRAIN_TEMPLATES = [
    "{}", "the digit {}", "a handwritten {}", "an image of the number {}", "a picture of a {}",
    "the number {} written by hand", "{} written in ink", "a scanned digit: {}", "this is a {}",
    "a small grey {}", "digit {}", "a hand-drawn {}",
]
# never seen in training: the zero-shot templates
HELD_OUT_TEMPLATES = [
    "a photo of the digit {}", "a drawing of the number {}", "handwriting that shows {}", "the numeral {}",
    "a low resolution image of a {}", "someone wrote {}", "a blurry {}", "an 8 by 8 picture of {}",
]


def class_forms(label: int) -> list[str]:
    """The ways a caption names a class: the number word and the numeral."""
    return [WORDS[label], str(label)]


def load_digits_split(val_percent: float = 20.0, seed: int = 0):
    """(train_images, train_labels, val_images, val_labels); images (N, 1, 8, 8) scaled to [-1, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.tensor(d.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # 0..16 -> -1..1
    labels = torch.tensor(d.target, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    train_idx, val_idx = [], []
    for c in range(10):  # the same fraction of every class is held out
        idx = (labels == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_val = round(len(idx) * val_percent / 100)
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    tr, va = torch.cat(train_idx).sort().values, torch.cat(val_idx).sort().values
    return images[tr], labels[tr], images[va], labels[va]


def all_train_captions() -> list[str]:
    return [t.format(f) for t in TRAIN_TEMPLATES for c in range(10) for f in class_forms(c)]
