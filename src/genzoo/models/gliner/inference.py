"""Text and label names in, entities out: `predict` behind `GLiNERModel.predict_entities` and
`batch_predict_entities`.

Equal to the `gliner` package for a text of at most `max_len` words and at most `max_types` labels (one encoder
pass each), and beyond it where the package cuts or depends on its input order:

- Long texts: a text longer than `max_len` words (or than the encoder's positions) runs as overlapping windows
  (`processing.windows`, 2 x max_width words shared); a span is taken from the window that owns its first word
  (`processing.owned`), then one greedy decoding runs over the whole text. Nothing is cut; the result says how many
  windows it took (`Entities.windows`).
- Many labels: more than `max_types` labels run in groups of `max_types` (one prompt each), decoded together.
- Label order: a type's score depends on the other labels and their order in the prompt. label_order="average"
  runs the prompt in `n_orders` orders chosen from the label names alone (sorted, reversed, seeded shuffles) and
  averages each (span, type) probability over them before thresholding: the result no longer depends on the order
  the labels are given in.
"""

from __future__ import annotations

import random
from numbers import Real

import torch

from ...errors import ConfigError, InputError
from .decoding import Candidate, greedy
from .processing import Row, collate, encode_row, owned, prompt_words, split_words, windows

LABEL_ORDERS = ("given", "average")


class Entities(list):
    """A list of entity dicts (the package's result) that also says how the text was read."""

    def __init__(self, items=(), windows: int = 1, label_groups: int = 1, words: int = 0):
        super().__init__(items)
        self.windows, self.label_groups, self.words = windows, label_groups, words


def check_labels(labels) -> list[str]:
    """The labels as a list without repeats (first occurrence kept, as the package does); InputError for none, an
    empty one or a non-string."""
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, (list, tuple)) or not labels:
        raise InputError(f"labels must be a non-empty list of entity type names, got {labels!r}")
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not label.strip():
            raise InputError(f"labels[{i}] = {label!r}: an entity type must be a non-empty string")
    return list(dict.fromkeys(labels))


def check_texts(texts) -> None:
    if not isinstance(texts, list) or not texts:
        raise InputError(f"texts must be a non-empty list of strings, got {type(texts).__name__}")
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise InputError(f"text {i} is {t!r}: expected a non-empty string")


def label_orders(group: list[int], names: list[str], how: str, n_orders: int, seed: int = 0) -> list[list[int]]:
    """The orders a label group is prompted in: the given one; for "average", n_orders orders that depend only on
    the group's label names, not on the order they came in (sorted, reversed, then seeded shuffles; fewer when the
    group has fewer distinct orders), so the averaged scores do not depend on it either."""
    if how == "given" or len(group) < 2:
        return [group]
    base = sorted(group, key=lambda i: names[i])
    orders, rng = [base, base[::-1]], random.Random(seed)
    for _ in range(20 * n_orders):
        if len(orders) >= n_orders:
            break
        p = rng.sample(base, len(base))
        if p not in orders:
            orders.append(p)
    return orders[:n_orders]


def predict(model, texts: list[str], labels, *, threshold: float = 0.5, flat_ner: bool = True,
            multi_label: bool = False, label_order: str = "given", n_orders: int = 4, batch_size: int = 32,
            overlap: int | None = None) -> list[Entities]:
    """Entities of each text: [{"start", "end" (character offsets, end exclusive), "text", "label", "score"}], kept
    by greedy decoding (`decoding.greedy`). threshold: a (span, type) is a candidate when its probability is above
    it. label_order: "given" (the package's behaviour) or "average" over `n_orders` label orders. batch_size:
    encoder rows per forward pass. overlap: words shared by consecutive windows (default 2 x max_width, at most
    max_len // 2)."""
    cfg, tok = model.config, model.tokenizer
    if tok is None:
        raise ConfigError("this GLiNER model has no tokenizer: load a directory with genzoo.load, or set "
                          "model.tokenizer = processing.GLiNERTokenizer.from_dir(DIR)")
    check_texts(texts)
    names = check_labels(labels)
    if isinstance(threshold, bool) or not isinstance(threshold, Real) or not 0 <= threshold <= 1:
        raise InputError(f"threshold={threshold!r} is invalid: a probability in [0, 1]")
    if label_order not in LABEL_ORDERS:
        raise InputError(f"label_order={label_order!r} is invalid: one of {LABEL_ORDERS}")
    if not isinstance(n_orders, int) or n_orders < 1 or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"n_orders={n_orders!r} and batch_size={batch_size!r} must be positive integers")
    if cfg.class_token_index < 0 or tok.token_id(cfg.ent_token) != cfg.class_token_index:
        raise ConfigError(f"class_token_index={cfg.class_token_index} is not the tokenizer's id of {cfg.ent_token!r} "
                          f"({tok.token_id(cfg.ent_token)})")
    overlap = min(2 * cfg.max_width, cfg.max_len // 2) if overlap is None else overlap
    if not isinstance(overlap, int) or overlap < 0:
        raise InputError(f"overlap={overlap!r} is invalid: words, an integer >= 0")
    max_tokens = min(cfg.encoder.max_positions, tok.max_length or cfg.encoder.max_positions)

    # groups of at most max_types labels (for "average", of the sorted names: independent of the given order)
    ordered = sorted(range(len(names)), key=names.__getitem__) if label_order == "average" else range(len(names))
    ordered = list(ordered)
    groups = [ordered[i:i + cfg.max_types] for i in range(0, len(names), cfg.max_types)]
    words = [split_words(t) for t in texts]
    rows, regions = [], {}  # regions: (text, group, window) -> (first owned word, end of owned words, window start)
    n_windows = [0] * len(texts)
    for t, ws in enumerate(words):
        w = [x[0] for x in ws]
        for g, group in enumerate(groups):
            prompt = prompt_words([names[i] for i in group], cfg.ent_token, cfg.sep_token)
            ids, word_ids = tok.encode(prompt + w)
            counts = [0] * len(w)
            for wid in word_ids:
                if wid is not None and wid >= len(prompt):
                    counts[wid - len(prompt)] += 1
            fixed = len(ids) - sum(counts)  # the prompt and special tokens
            if fixed >= max_tokens:
                raise InputError(f"the prompt of labels {[names[i] for i in group]} takes {fixed} sub-tokens; the "
                                 f"encoder reads at most {max_tokens}: use fewer or shorter labels")
            spans = windows(counts, cfg.max_len, max_tokens - fixed, overlap)
            n_windows[t] = max(n_windows[t], len(spans))
            for j, ((a, b), own) in enumerate(zip(spans, owned(spans))):
                regions[t, g, j] = (*own, a)
                for order in label_orders(group, names, label_order, n_orders):
                    p = prompt_words([names[i] for i in order], cfg.ent_token, cfg.sep_token)
                    rows.append((t, g, j, Row(t, order, a, b - a, *encode_row(tok, p, w[a:b]))))

    probs = run_rows(model, [r for *_, r in rows], batch_size)
    summed: dict = {}
    for (t, g, j, row), p in zip(rows, probs):  # p (n_words, K, C): types in prompt order
        order = torch.tensor([groups[g].index(i) for i in row.labels])
        canon = torch.empty_like(p)
        canon[..., order] = p
        acc = summed.setdefault((t, g, j), [torch.zeros_like(p), 0])
        acc[0] += canon
        acc[1] += 1

    candidates: list[list[Candidate]] = [[] for _ in texts]
    k = cfg.max_width
    for (t, g, j), (total, n) in summed.items():
        lo, hi, a = regions[t, g, j]
        p = total / n  # (n_words, K, C)
        for s, width, c in (p > threshold).nonzero().tolist():
            start = a + s
            if lo <= start < hi and width < k:
                candidates[t].append(Candidate(start, start + width, groups[g][c], p[s, width, c].item()))
    out = []
    for t, text in enumerate(texts):
        cands = sorted(candidates[t], key=lambda c: (c.start, c.end, c.label))
        kept = greedy(cands, flat_ner=flat_ner, multi_label=multi_label)
        ents = []
        for c in kept:
            start, end = words[t][c.start][1], words[t][c.end][2]
            ents.append({"start": start, "end": end, "text": text[start:end], "label": names[c.label],
                         "score": c.score})
        out.append(Entities(ents, windows=n_windows[t], label_groups=len(groups), words=len(words[t])))
    return out


@torch.no_grad()
def run_rows(model, rows: list[Row], batch_size: int) -> list[torch.Tensor]:
    """Each row's span probabilities (n_words, K, C), rows batched by length (padding is cheap: the encoder runs
    unpadded and only spans inside a text are computed)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad = model.tokenizer.pad_id
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].input_ids))
    out: list[torch.Tensor | None] = [None] * len(rows)
    try:
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            batch = {k: v.to(device) for k, v in collate([rows[r] for r in idx], pad).items()}
            logits = model(**batch).logits.float()  # (B, W, K, C)
            probs = torch.sigmoid(logits).cpu()
            for b, r in enumerate(idx):
                out[r] = probs[b, : rows[r].n_words, :, : len(rows[r].labels)]
    finally:
        model.train(was_training)
    return out
