"""`genzoo experiment outliers`: do softmax-off-by-one, clipped softmax and gated attention remove the activation
outliers that make 8-bit inference hard, without costing 32- or 16-bit quality?

Seed claims (E. Miller, "Attention Is Off By One", 2023; Bondarenko et al., "Quantizable Transformers: Removing
Outliers by Helping Attention Heads Do Nothing", 2023, arXiv 2306.12929): outliers appear where attention heads
learn to do nothing by attending to low-information tokens (whitespace, punctuation, the first token); letting a
head attend to nothing (softmax1: a 1 added to the denominator; clipped softmax, gamma < 0: exact zeros; a gate
on the head's output) removes them, cuts the kurtosis of the hidden states and the W8A8 quantization loss, and
leaves 32- and 16-bit perplexity unchanged.

Two genres trained on the standard-library corpus with the shared training loop, each in four arms with the same
steps, data and seed: an OPT-style decoder (pre-norm, ReLU, learned positions) and a BERT-style masked LM
(post-norm, GELU). Per arm: fp32, bf16 and simulated W8A8 validation perplexity (`genzoo.quantize`), the outlier
metrics (`quant.outliers.OutlierMeter`), where the largest activations sit, the attention on the first and on
delimiter tokens, and for the decoder real int8 / int4 inference's agreement with fp32.
Writes report.md, layers.png, perplexity.png, growth.png and results.json.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import EXPERIMENTS
from .results import target, targets_markdown, write_report, write_results

ARMS = {"vanilla": [], "softmax1": ["model.softmax=softmax1"], "clipped": ["model.softmax=clipped"],
        "gated": ["model.attn_gate=head"]}
GENRES = {  # recipe, task-specific model fields
    "decoder": ("gpt-nano", ["model.preset=gpt2", "model.activation=relu"]),  # OPT-style
    "encoder": ("bert-mlm", ["model.preset=bert", "model.activation=gelu"]),  # BERT-style
}
# Blocks of 32 tokens: clipped softmax (gamma = -0.03) zeroes every weight below 0.03 / 1.03, so a uniform row
# over more than 34 keys (attention at initialisation) would get no gradient at all; 32 keys stay just above.
SIZES = ["model.d_model=128", "model.n_layers=4", "model.n_heads=4", "model.d_ff=512", "data.vocab_size=2048",
         "data.block_size=32", "batch_size=16", "data.max_bytes=4000000", "model.checkpoint_format=genzoo",
         "eval_batches=4", "progress=false"]
SMALL = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.d_ff=64", "data.vocab_size=320",
         "data.block_size=32", "batch_size=4", "data.max_bytes=150000", "model.checkpoint_format=genzoo",
         "eval_batches=1", "progress=false", "warmup_steps=2"]
DELIMITER_KINDS = ("whitespace", "newline", "punctuation")


def recipe_for(genre: str, arm: str, steps: int, small: bool, sets: tuple[str, ...]):
    from ..train import load_recipe

    base, fields = GENRES[genre]
    save = max(1, steps // 4)  # checkpoints at 1/4, 2/4, 3/4 of the run and its end: the growth of the outliers
    extra = [*fields, *(SMALL if small else SIZES), *ARMS[arm], f"steps={steps}", f"save_every={save}",
             f"eval_every={steps}", "keep_checkpoints=5", *sets]
    return load_recipe(base, extra)


def train_arm(out: Path, genre: str, arm: str, steps: int, small: bool, sets) -> tuple[Path, float]:
    """Train one arm (continuing an interrupted run from its last checkpoint; nothing to do for a finished one);
    arms after the first reuse the vanilla run's tokenizer. -> (run directory, seconds spent)."""
    from ..rundir import latest_checkpoint, seed_run
    from ..train import train

    run = out / genre / arm
    if (run / "model.safetensors").exists():
        return run, 0.0
    first = out / genre / "vanilla" / "tokenizer.json"
    if arm != "vanilla" and first.exists() and not (run / "tokenizer.json").exists():
        seed_run(run, {"tokenizer.json": first})  # every arm shares the vanilla arm's vocabulary
    t = time.perf_counter()
    result = train(recipe_for(genre, arm, steps, small, sets), run, resume=latest_checkpoint(run) is not None)
    seconds = time.perf_counter() - t
    print(f"outliers: {genre}/{arm} trained {steps} steps in {seconds:.0f} s: {result}", flush=True)
    return run, seconds


class Data:
    """Held-out blocks of a genre (model inputs and labels), calibration blocks from the training split, and the
    kind of token at every position."""

    def __init__(self, run: Path, recipe, genre: str, batches: int, calibration: int):
        from ..data import stdlib_corpus
        from ..quant.outliers import token_kinds, vocabulary_kinds
        from ..tokenizers import Tokenizer
        from ..train.data import token_stream
        from ..train.mlm_task import mask_tokens

        tok = Tokenizer.from_dir(run)
        corpus = stdlib_corpus(max_bytes=recipe.data.max_bytes, val_percent=recipe.data.val_percent)
        b, t = recipe.batch_size, recipe.data.block_size
        span = t + 1 if genre == "decoder" else t
        val = token_stream(tok, corpus.read("val"))
        train = token_stream(tok, corpus.read("train"))[: (calibration * b + 1) * span]
        n = min(batches, val.numel() // (b * span))
        self.val = [val[i * b * span:(i + 1) * b * span].view(b, span) for i in range(n)]  # n x (B, span)
        self.calibration = [train[i * b * span:(i + 1) * b * span].view(b, span) for i in range(calibration)]
        vocab = vocabulary_kinds(tok)
        if genre == "decoder":  # inputs, next-token labels
            self.batches = [(x[:, :-1], x[:, 1:]) for x in self.val]
            self.calibration = [x[:, :-1] for x in self.calibration]
        else:  # masked inputs and their labels, masks drawn once (seeded)
            mask_id = tok.tok.token_to_id("[MASK]")
            g = torch.Generator().manual_seed(12345)
            self.batches = [mask_tokens(x, recipe.data.mask_prob, mask_id, tok.vocab_size, g) for x in self.val]
            self.calibration = [mask_tokens(x, recipe.data.mask_prob, mask_id, tok.vocab_size, g)[0]
                                for x in self.calibration]
        self.kinds = [token_kinds(x, vocab) for x, _ in self.batches]
        self.genre = genre


@torch.no_grad()
def perplexity(model, data: Data) -> float:
    """exp of the mean cross-entropy over the held-out batches (next token, or the masked tokens)."""
    total, n = 0.0, 0
    for x, y in data.batches:
        logits = model(x).logits.float()  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100, reduction="sum")
        total += float(loss)
        n += int((y != -100).sum())
    return math.exp(total / max(1, n))


@torch.no_grad()
def outlier_stats(model, data: Data) -> dict:
    from ..quant.outliers import OutlierMeter

    with OutlierMeter(model) as meter:
        for (x, _), kinds in zip(data.batches, data.kinds):
            meter.mark(kinds)
            model(x)
    s = meter.summary()
    kinds = s.get("outlier_kinds", {})
    s["outliers_at_delimiters"] = sum(kinds.get(k, 0.0) for k in DELIMITER_KINDS)
    s["outliers_at_delimiters_or_first"] = (s["outliers_at_delimiters"] + kinds.get("first", 0.0)
                                            + kinds.get("special", 0.0))
    for key in ("attn_first", "attn_delimiters", "attn_total"):
        vals = [layer[key] for layer in s["layers"] if key in layer]
        s[key] = sum(vals) / len(vals) if vals else None
    return s


@torch.no_grad()
def agreement(model, other, data: Data) -> float:
    """Fraction of held-out positions where the greedy (argmax) token of `other` equals `model`'s."""
    same = total = 0
    for x, _ in data.batches:
        same += int((model(x).logits.argmax(-1) == other(x).logits.argmax(-1)).sum())
        total += x.numel()
    return same / total


def evaluate(run: Path, data: Data) -> dict:
    import genzoo
    from ..quant import model_bytes

    model = genzoo.load(run)
    r = {"fp32_ppl": perplexity(model, data), "bf16_ppl": perplexity(genzoo.quantize(model, "bf16"), data)}
    r["w8a8_ppl"] = perplexity(genzoo.quantize(model, "w8a8", calibration=data.calibration), data)
    r["w8a8_increase"] = r["w8a8_ppl"] / r["fp32_ppl"] - 1.0
    r.update(outlier_stats(model, data))
    if data.genre == "decoder":  # real low-bit inference
        for scheme in ("int8", "int4-weight"):
            q = genzoo.quantize(model, scheme)
            r[f"{scheme}_agreement"] = agreement(model, q, data)
            r[f"{scheme}_bytes"] = model_bytes(q)
        r["fp32_bytes"] = model_bytes(model)
    return r


def growth(run: Path, data: Data) -> list[tuple[int, float, float]]:
    """(step, average kurtosis, max inf-norm) of every kept checkpoint of a run: how the outliers grow."""
    import genzoo
    from ..rundir import complete_checkpoints

    rows = []
    for path in complete_checkpoints(run):
        s = outlier_stats(genzoo.load(path), data)
        rows.append((int(path.name.split("-")[1]), s["avg_kurtosis"], s["max_inf_norm"]))
    return rows


def ratio(a: float, b: float) -> float | None:
    """a / b, or None where b <= 0 (no cut can be measured against nothing)."""
    return a / b if b > 0 else None


def make_targets(results: dict) -> dict:
    t = {}
    for genre, arms in results["genres"].items():
        van = arms["vanilla"]
        t[f"{genre}_vanilla_kurtosis"] = target(van["avg_kurtosis"], ">= 10")
        for arm in ("softmax1", "clipped", "gated"):
            a = arms[arm]
            t[f"{genre}_{arm}_kurtosis_cut"] = target(ratio(van["avg_kurtosis"], a["avg_kurtosis"]), ">= 2")
            t[f"{genre}_{arm}_w8a8_increase_cut"] = target(
                ratio(van["w8a8_increase"], a["w8a8_increase"]) if van["w8a8_increase"] > 0 else None, ">= 2")
            t[f"{genre}_{arm}_fp32_ppl_vs_vanilla"] = target(abs(a["fp32_ppl"] / van["fp32_ppl"] - 1), "<= 0.03")
            t[f"{genre}_{arm}_bf16_ppl_vs_vanilla"] = target(abs(a["bf16_ppl"] / van["bf16_ppl"] - 1), "<= 0.03")
        t[f"{genre}_vanilla_outliers_at_whitespace_punctuation"] = target(van["outliers_at_delimiters"], ">= 0.97")
        if genre == "decoder":
            for scheme in ("int8", "int4-weight"):
                t[f"decoder_vanilla_{scheme}_greedy_agreement"] = target(van[f"{scheme}_agreement"], ">= 0.9")
    return t


@EXPERIMENTS.register("outliers")
def run(out: str, steps: int = 2000, small: bool = False, batches: int = 8, calibration: int = 4,
        sets: tuple[str, ...] = ()) -> dict:
    from .outliers_report import plot, report

    t0, cpu0 = time.perf_counter(), time.process_time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"steps": steps, "small": small, "genres": {}, "growth": {}, "train_seconds": {}}
    for genre in GENRES:
        recipe, data, arms = recipe_for(genre, "vanilla", steps, small, sets), None, {}
        for arm in ARMS:  # each arm is evaluated as soon as it is trained; a rerun continues where it stopped
            run_dir, seconds = train_arm(out, genre, arm, steps, small, sets)
            cached = run_dir / "evaluation.json"
            if cached.exists():
                arms[arm] = json.loads(cached.read_text())
                continue
            data = data or Data(out / genre / "vanilla", recipe, genre, batches, calibration)
            arms[arm] = {**evaluate(run_dir, data), "train_seconds": seconds}
            cached.write_text(json.dumps(arms[arm], indent=1) + "\n")
            print(f"outliers: {genre}/{arm}: fp32 ppl {arms[arm]['fp32_ppl']:.2f}, W8A8 {arms[arm]['w8a8_ppl']:.2f}, "
                  f"kurtosis {arms[arm]['avg_kurtosis']:.2f}, max inf-norm {arms[arm]['max_inf_norm']:.1f}", flush=True)
        results["genres"][genre] = arms
        results["train_seconds"][genre] = sum(a["train_seconds"] for a in arms.values())
        data = data or Data(out / genre / "vanilla", recipe, genre, batches, calibration)
        results["growth"][genre] = growth(out / genre / "vanilla", data)
        results.setdefault("recipes", {})[genre] = {k: v for k, v in recipe.to_dict().items()
                                                     if k in ("model", "data", "steps", "batch_size", "lr")}
    targets = make_targets(results)
    seconds = time.perf_counter() - t0
    results["cpu_seconds"] = time.process_time() - cpu0  # CPU time of this process (all its threads)
    saved = write_results(out, results, targets, seconds)
    plot(results, out)
    write_report(out, report(saved, targets_markdown(targets)))
    print(f"wrote {out / 'report.md'}, figures and {out / 'results.json'} in {seconds:.0f} s")
    return saved
