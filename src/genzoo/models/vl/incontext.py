"""In-context prompts for a frozen language model that reads and writes image tokens as words (SPAE, Yu et al.
2023, arXiv 2306.17842, sec. 4: few-shot classification and conditional generation by in-context learning).

Both prompts list labelled examples, each "<label> is t1 t2 ... tL ." where t are the tokens of one image:
- classification asks "what is q1 ... qL ?" and the model's next token is the label it gives the query;
- generation ends with "<label> is" and the model writes L tokens, which an SPAE decoder turns into an image.

The language model learns to follow such prompts from text alone: `classification_episode` and
`generation_episode` draw episodes of random content words (a few "classes", each a distribution over a few words
per position, examples sampled from it with noise). It never sees an image token sequence in training.

Classification prompts come in registered layouts (`CLASSIFY_LAYOUTS`), each with its text-only training episodes:
"label-first" (the above, one answer per episode), "label-first-queries" (the same prompt; episodes end with several
answered queries) and Frozen's "image-first" ("t1 .. tL is <label> ."; every label the episode already showed is a
target). `copy_episode` (a span of words repeated) is a warm-up for the copying such prompts need.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ...errors import InputError
from ...registry import Registry


@dataclass(frozen=True)
class PromptWords:
    """The token ids a prompt is laid out with, and the end-of-text id that opens every sequence."""

    bos: int
    is_: int
    end: int  # "."
    what: int
    ask: int  # "?"

    @classmethod
    def of(cls, tokenizer) -> "PromptWords":
        ids = {w: tokenizer.tok.token_to_id(w) for w in ("is", ".", "what", "?")}
        missing = [w for w, i in ids.items() if i is None]
        if missing or tokenizer.eos_id is None:
            raise InputError(f"the tokenizer lacks the prompt words {missing or ['<end of text>']}")
        return cls(tokenizer.eos_id, ids["is"], ids["."], ids["what"], ids["?"])


def _examples(support: list[tuple[int, list[int]]], w: PromptWords) -> list[int]:
    out = [w.bos]
    for label, tokens in support:
        out += [label, w.is_, *tokens, w.end]
    return out


def classification_prompt(support: list[tuple[int, list[int]]], query: list[int], w: PromptWords,
                          layout: str = "label-first") -> list[int]:
    """support: (label id, image token ids) per example; query: the image token ids to label. The model's next
    token after the returned ids is its answer. `layout` names an entry of CLASSIFY_LAYOUTS."""
    if not support:
        raise InputError("an in-context classification prompt needs at least one labelled example")
    return CLASSIFY_LAYOUTS.get(layout).prompt(support, query, w)


def _label_first(support, query, w: PromptWords) -> list[int]:
    """"<label> is t1 .. tL ." per example, then "what is q1 .. qL ?"."""
    return _examples(support, w) + [w.what, w.is_, *query, w.ask]


def _image_first(support, query, w: PromptWords) -> list[int]:
    """Frozen's layout (Tsimpoukelli et al. 2021, arXiv 2106.13884, sec. 3 / fig. 3: image, then "This is a dax."),
    the one SPAE's few-shot classification follows: "t1 .. tL is <label> ." per example, then "q1 .. qL is". The
    answer then follows its evidence, as a copied continuation does (an induction head, Olsson et al. 2022)."""
    out = [w.bos]
    for label, tokens in support:
        out += [*tokens, w.is_, label, w.end]
    return out + [*query, w.is_]


def generation_prompt(support: list[tuple[int, list[int]]], label: int, w: PromptWords) -> list[int]:
    """The model continues the returned ids with the image tokens of `label`."""
    if not support:
        raise InputError("an in-context generation prompt needs at least one labelled example")
    return _examples(support, w) + [label, w.is_]


# ---- text-only training episodes (random words; no image involved) ----
def _classes(rng: random.Random, n: int, length: int, pool: list[int]) -> list[list[tuple[list[int], list[float]]]]:
    """n made-up classes: for each position, a few words with their probabilities."""
    classes = []
    for _ in range(n):
        proto = []
        for _ in range(length):
            words = rng.sample(pool, rng.randint(1, 4))
            weights = sorted((rng.random() + 0.05 for _ in words), reverse=True)
            proto.append((words, weights))
        classes.append(proto)
    return classes


def _episode_classes(rng: random.Random, pool: list[int], labels: list[int], max_way: int, max_shot: int,
                     lengths) -> tuple[int, int, float, list, list[int]]:
    """The draws an n-way k-shot episode starts with -> (n in 2..max_way, k in 1..max_shot, the noise of its
    samples, n made-up classes of one drawn length, their n label ids)."""
    n, k, length = rng.randint(2, max_way), rng.randint(1, max_shot), rng.choice(lengths)
    noise = rng.uniform(0.0, 0.3)
    return n, k, noise, _classes(rng, n, length, pool), rng.sample(labels, n)


def _sample(proto, rng: random.Random, pool: list[int], noise: float) -> list[int]:
    return [rng.choice(pool) if rng.random() < noise else rng.choices(words, weights)[0] for words, weights in proto]


def classification_episode(rng: random.Random, w: PromptWords, pool: list[int], labels: list[int],
                           max_way: int = 5, max_shot: int = 5, lengths=(1, 2, 3, 4, 5, 6)):
    """-> (prompt ids, answer ids): an n-way k-shot episode over random words; the answer is the query's label."""
    n, k, noise, classes, names = _episode_classes(rng, pool, labels, max_way, max_shot, lengths)
    support = [(names[c], _sample(classes[c], rng, pool, noise)) for c in range(n) for _ in range(k)]
    rng.shuffle(support)
    c = rng.randrange(n)
    return classification_prompt(support, _sample(classes[c], rng, pool, noise), w), [names[c]]


def queries_episode(rng: random.Random, w: PromptWords, pool: list[int], labels: list[int], max_way: int = 5,
                    max_shot: int = 5, lengths=(1, 2, 3, 5), queries=(2, 5)) -> tuple[list[int], list[int]]:
    """-> (ids, target positions): a label-first episode (as `classification_episode`) followed by several queries,
    each "what is q1 .. qL ? <label> ." with its label a target: several answers per episode instead of one
    (at most 251 tokens: the lens-lm fits 256)."""
    n, k, noise, classes, names = _episode_classes(rng, pool, labels, max_way, max_shot, lengths)
    support = [(names[c], _sample(classes[c], rng, pool, noise)) for c in range(n) for _ in range(k)]
    rng.shuffle(support)
    ids, targets = _examples(support, w), []
    for _ in range(rng.randint(*queries)):
        c = rng.randrange(n)
        ids += [w.what, w.is_, *_sample(classes[c], rng, pool, noise), w.ask]
        targets.append(len(ids))
        ids += [names[c], w.end]
    return ids, targets


def image_first_episode(rng: random.Random, w: PromptWords, pool: list[int], labels: list[int], max_way: int = 5,
                        max_shot: int = 5, lengths=(1, 2, 3, 5)) -> tuple[list[int], list[int]]:
    """-> (ids, target positions): an n-way k-shot episode over random words in the image-first layout, ending
    with a query and its label. Every label of an example whose class was already shown is a target (the prompt so
    far answers it), so one episode carries about k * n copying lessons instead of one: Frozen trains on captions
    and never on episodes; a small text-only LM needs this denser signal to form the copying circuit."""
    n, k, noise, classes, names = _episode_classes(rng, pool, labels, max_way, max_shot, lengths)
    order = [c for c in range(n) for _ in range(k)]
    rng.shuffle(order)
    order.append(rng.randrange(n))  # the query
    ids, targets, seen = [w.bos], [], set()
    for c in order:
        ids += [*_sample(classes[c], rng, pool, noise), w.is_]
        if c in seen:
            targets.append(len(ids))
        ids += [names[c], w.end]
        seen.add(c)
    return ids[:-1], targets  # the query's "." is not part of the episode


def copy_episode(rng: random.Random, w: PromptWords, pool: list[int], lengths=(4, 24), repeats=(2, 4)):
    """-> (ids, target positions): a span of random words said `repeats` times; every word after the first saying
    is a target. Pure copying, the task induction heads form on (Olsson et al. 2022, arXiv 2209.11895, sec. 3);
    a share of these from the start lets the in-context episodes build on a copying circuit."""
    span = [rng.choice(pool) for _ in range(rng.randint(*lengths))]
    times = rng.randint(*repeats)
    ids = [w.bos] + span * times
    return ids, list(range(1 + len(span), len(ids)))


def generation_episode(rng: random.Random, w: PromptWords, pool: list[int], labels: list[int], max_way: int = 3,
                       max_shot: int = 2, lengths=(5, 21)):
    """-> (prompt ids, target ids): examples of a few random classes, then one class's label; the target is a
    sample of that class followed by "."."""
    n, k, length = rng.randint(1, max_way), rng.randint(1, max_shot), rng.choice(lengths)
    noise = rng.uniform(0.0, 0.2)
    classes, names = _classes(rng, n, length, pool), rng.sample(labels, n)
    support = [(names[c], _sample(classes[c], rng, pool, noise)) for c in range(n) for _ in range(k)]
    rng.shuffle(support)
    c = rng.randrange(n)
    return generation_prompt(support, names[c], w), _sample(classes[c], rng, pool, 0.0) + [w.end]


# ---- the registered classification layouts: a prompt and its training episodes ----
@dataclass(frozen=True)
class Layout:
    """An in-context classification layout: its prompt, and the text-only training episodes written in it."""

    prompt: Callable  # (support, query ids, PromptWords) -> prompt ids
    episode: Callable  # (rng, PromptWords, pool, labels) -> (ids, target count at the end or target positions)


def _label_first_episode(rng, w, pool, labels) -> tuple[list[int], int]:
    prompt, target = classification_episode(rng, w, pool, labels)
    return prompt + target + [w.bos], len(target) + 1


CLASSIFY_LAYOUTS: Registry = Registry("in-context classification layout")
CLASSIFY_LAYOUTS.register("label-first")(Layout(_label_first, _label_first_episode))
CLASSIFY_LAYOUTS.register("label-first-queries")(Layout(_label_first, queries_episode))
CLASSIFY_LAYOUTS.register("image-first")(Layout(_image_first, image_first_episode))


# ---- running a frozen LM on such prompts ----
def _batch(prompts: list[list[int]], pad: int):
    import torch

    from ...tokenizers import pad_rows

    if not prompts:
        raise InputError("no prompts given")
    ids, mask = pad_rows(prompts, pad, side="left")
    return ids, mask, torch.tensor([len(p) for p in prompts])


def next_tokens(lm, prompts: list[list[int]], pad: int, batch_size: int = 64):
    """The frozen LM's greedy next token after each prompt (N,) (its in-context answer)."""
    import torch

    out = []
    for i in range(0, len(prompts), batch_size):
        ids, mask, _ = _batch(prompts[i: i + batch_size], pad)
        out.append(lm.generate(ids, attention_mask=mask, max_new_tokens=1)[:, -1])
    return torch.cat(out)


def next_token_among(lm, prompts: list[list[int]], candidates: list[list[int]], pad: int, batch_size: int = 64):
    """Closed-set answers: for each prompt, the one of its candidate token ids (e.g. the label words its examples
    use) that the frozen LM gives the highest next-token probability (N,). Chance is 1 / len(candidates)."""
    import torch

    from ...modes import evaluating

    if len(candidates) != len(prompts) or any(not c for c in candidates):
        raise InputError("next_token_among needs a non-empty list of candidate ids for every prompt")
    out = []
    with torch.inference_mode(), evaluating(lm):
        for i in range(0, len(prompts), batch_size):
            ids, mask, _ = _batch(prompts[i: i + batch_size], pad)  # left-padded: the last position is real
            pos = (mask.cumsum(-1) - 1).clamp(min=0)  # positions count real tokens, as in generate
            logits = lm(ids, attention_mask=mask, position_ids=pos).logits[:, -1]  # (B, V)
            for row, cand in zip(logits, candidates[i: i + batch_size]):
                c = torch.tensor(cand)
                out.append(c[row[c].argmax()])
    return torch.stack(out)


def generate_tokens(lm, prompts: list[list[int]], n_tokens: int, allowed, pad: int, batch_size: int = 32,
                    do_sample: bool = False, generator=None):
    """The frozen LM's continuation of each prompt by `n_tokens` tokens, each chosen among the `allowed` ids (V,)
    bool (an image tokenizer's vocabulary): greedy, or sampled. -> (N, n_tokens)."""
    import torch

    from ...modes import evaluating

    rows = []
    with torch.inference_mode(), evaluating(lm):
        for i in range(0, len(prompts), batch_size):
            ids, mask, lengths = _batch(prompts[i: i + batch_size], pad)
            b, t = ids.shape
            padded = bool((lengths < t).any())
            cache = lm.make_cache(b, t + n_tokens, key_valid=mask if padded else None)
            pos = (mask.cumsum(-1) - 1).clamp(min=0) if padded else None  # positions count real tokens
            logits = lm(ids, position_ids=pos, cache=cache, logits_to_keep=1).logits[:, -1]  # (B, V)
            nxt = pos[:, -1:] + 1 if padded else None
            new = []
            for _ in range(n_tokens):
                scores = logits.float().masked_fill(~allowed, float("-inf"))
                tok = torch.multinomial(scores.softmax(-1), 1, generator=generator)[:, 0] if do_sample \
                    else scores.argmax(-1)  # (B,)
                new.append(tok)
                logits = lm(tok[:, None], position_ids=nxt, cache=cache, logits_to_keep=1).logits[:, -1]
                if padded:
                    nxt = nxt + 1
            rows.append(torch.stack(new, 1))  # (B, n_tokens)
    return torch.cat(rows)
