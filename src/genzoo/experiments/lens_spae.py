"""`genzoo experiment lens-spae`: vision through language with frozen language models, on scikit-learn's digits.

1. Train the parts (each a recipe under the shared loop): CLIP (`clip-digits`), the LM that only ever reads text
   (`lens-lm`), LENS's captioner (`lens-captioner`), the image-trained VQA baseline the LM's size
   (`lens-vqa-baseline`), and SPAE over the LM's frozen vocabulary with and without the semantic loss
   (`spae-digits`, `model.semantic_weight=0`).
2. LENS (arXiv 2306.16410): held-out images -> tags, attributes, captions -> the frozen LM answers 7 kinds of
   question; accuracy against the baseline on the same images and questions.
3. SPAE (arXiv 2306.17842): PSNR of the reconstruction from each pyramid depth; semantic precision of the coarse
   token (is it a word naming the digit?) with and without the semantic loss.
4. In-context use by the frozen LM: 5-way k-shot classification of SPAE token sequences (k = 1, 5; made-up label
   words); class-conditional generation: SPAE tokens written by the LM after examples of three classes, decoded by
   SPAE and read by the frozen digit classifier (`models.diffusion.judges`).
Writes report.md, reconstructions.png, words.png, generated.png, vqa.png and results.json.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch

from . import EXPERIMENTS

RUNS = {  # name -> (recipe, extra settings); {dir} is the experiment's output directory
    "clip": ("clip-digits", []),
    "lm": ("lens-lm", []),
    "captioner": ("lens-captioner", []),
    "baseline": ("lens-vqa-baseline", []),
    "spae": ("spae-digits", ["vl.lm={dir}/lm", "vl.clip={dir}/clip"]),
    "spae-nosem": ("spae-digits", ["vl.lm={dir}/lm", "model.semantic_weight=0"]),
}
SMALL = {  # the shrunken experiment of the test suite: a few steps of small models
    "clip": ["steps=4", "batch_size=32", "eval_every=4", "save_every=4"],
    "lm": ["steps=4", "batch_size=8", "eval_batches=1", "eval_every=4", "save_every=4", "model.d_model=32",
           "model.n_layers=1", "model.d_ff=64"],
    "captioner": ["steps=4", "batch_size=32", "eval_every=4", "save_every=4", "model.d_model=32",
                  "model.n_layers=1", "model.d_ff=64"],
    "baseline": ["steps=4", "batch_size=32", "eval_every=4", "save_every=4", "model.d_model=32",
                 "model.n_layers=1", "model.d_ff=64"],
    "spae": ["steps=4", "batch_size=32", "eval_every=4", "save_every=4", "model.d_model=32", "model.n_layers=1"],
    "spae-nosem": ["steps=4", "batch_size=32", "eval_every=4", "save_every=4", "model.d_model=32",
                   "model.n_layers=1"],
}
N_WAY = 5
SHOTS = (1, 5)
CLASSIFY_LAYERS = 2  # SPAE's coarse layers (1 + 4 tokens) describe an image for classification
GEN_WAY, GEN_SHOTS = 3, 2


FROZEN = ("clip", "lm", "captioner")  # the parts LENS and SPAE only read


def file_hash(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_parts(out: Path, steps: int | None, small: bool) -> tuple[dict[str, Path], dict]:
    """Train every part not already in `out` -> (run directories, facts: seconds per part trained now, the frozen
    parts' weight-file hashes, and whether those files are bitwise the same after the SPAE runs that read them;
    None when no SPAE run trained in this call, so nothing was observed)."""
    from ..train import load_recipe, train

    dirs, seconds, before = {}, {}, {}
    for name, (recipe, extra) in RUNS.items():
        d = out / name
        if name.startswith("spae") and not before:  # the frozen parts as the SPAE runs find them
            before = {k: file_hash(dirs[k] / "model.safetensors") for k in FROZEN}
        if not (d / "model.safetensors").exists():
            sets = ["progress=false", *[s.format(dir=out) for s in extra], *(SMALL[name] if small else [])]
            t = time.perf_counter()
            train(load_recipe(recipe, sets), d, steps=steps)
            seconds[name] = round(time.perf_counter() - t, 1)
        dirs[name] = d
    after = {k: file_hash(dirs[k] / "model.safetensors") for k in FROZEN}
    observed = any(k.startswith("spae") for k in seconds)
    return dirs, {"train_seconds_per_part": seconds, "frozen_file_sha256": after,
                  "frozen_files_unchanged_by_spae_training": before == after if observed else None}


def fingerprint(model) -> str:
    """A hash of every tensor of a model (parameters and buffers): equal iff bitwise equal."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def evaluate_lens(lens, baseline, tok, images, labels, batch: int = 120) -> dict:
    """LENS and the baseline on every image with every question."""
    from ..data.digit_qa import QUESTIONS
    from ..train.vl_tasks import caption_digits, vqa_prompt

    questions = [q for q, _ in QUESTIONS]
    lens_hits = {q: 0 for q in questions}
    base_hits = {q: 0 for q in questions}
    tag_hits = cap_hits = 0
    examples = []
    for i in range(0, len(images), batch):
        x, y = images[i: i + batch], labels[i: i + batch]
        answers, descriptions = lens.answer(x, [questions] * len(x))
        for c, row, desc in zip(y.tolist(), answers, descriptions):
            for (q, truth), a in zip(QUESTIONS, row):
                lens_hits[q] += a == truth(c)
            tag_hits += bool(caption_digits(desc.tags[0]) == {c})
            cap_hits += bool(caption_digits(desc.captions[0]) == {c})
            if len(examples) < 4:
                examples.append({"label": c, "prompt": lens.prompt(desc, questions[1]), "answer": row[1]})
        for q, truth in QUESTIONS:  # the baseline reads the image and the question
            ids = torch.tensor([tok.eos_id] + tok.encode(vqa_prompt(q)))[None].expand(len(x), -1)
            pred = baseline.generate(x, ids, max_new_tokens=1)[:, -1]
            base_hits[q] += sum(tok.decode([int(p)]).strip() == truth(c) for p, c in zip(pred, y.tolist()))
    n = len(labels)
    return {"lens_per_question": {q: v / n for q, v in lens_hits.items()},
            "baseline_per_question": {q: v / n for q, v in base_hits.items()},
            "lens_accuracy": sum(lens_hits.values()) / (n * len(questions)),
            "baseline_accuracy": sum(base_hits.values()) / (n * len(questions)),
            "tag_top1_names_digit": tag_hits / n, "beam_caption_names_digit": cap_hits / n,
            "prompt_examples": examples}


def evaluate_spae(spae, images, labels, tok) -> dict:
    from ..models.vl.spae import psnr
    from ..train.spae_task import semantic_precision

    with torch.no_grad():
        out = spae(images)
    first = spae.config.layer_sizes[0]
    ids = out.token_ids
    return {"psnr_per_depth": [psnr(r, images) for r in out.reconstructions],
            "semantic_precision": semantic_precision(ids[:, :first], labels, tok),
            "codebook_used": int(ids.unique().numel()), "codebook_allowed": int(spae.allowed.sum()),
            "only_vocabulary_ids": bool(spae.allowed[ids].all()),
            "coarse_words": sorted({tok.tok.id_to_token(int(i)) for i in ids[:, 0]})[:30]}


def episode_rng(seed: int, *key) -> random.Random:
    return random.Random("/".join(map(str, (seed, *key))))


def evaluate_icl(lm, spae, tok, images, labels, episodes: int, seed: int, layout: str = "label-first",
                 layers: int = CLASSIFY_LAYERS) -> dict:
    """5-way k-shot classification of SPAE tokens (the first `layers` layers) by the frozen LM, prompted in the
    `layout` its training episodes used (`models.vl.incontext.CLASSIFY_LAYOUTS`): accuracy per k among the prompt's
    5 label words (closed set, chance 20%), and of its open-ended greedy next token."""
    from ..data.digit_qa import LABEL_WORDS
    from ..models.vl.incontext import PromptWords, classification_prompt, next_token_among, next_tokens

    w = PromptWords.of(tok)
    n = sum(spae.config.layer_sizes[:layers])
    tokens = spae.tokenize(images)[:, :n].tolist()
    by_class = {c: (labels == c).nonzero().squeeze(1).tolist() for c in range(10)}
    label_ids = [tok.tok.token_to_id(x) for x in LABEL_WORDS]
    out = {}
    for k in SHOTS:
        prompts, answers, offered = [], [], []
        for e in range(episodes):
            rng = episode_rng(seed, "classify", k, e)
            classes = rng.sample(range(10), N_WAY)
            names = rng.sample(label_ids, N_WAY)
            support, query_c = [], rng.randrange(N_WAY)
            query = None
            for j, c in enumerate(classes):
                picks = rng.sample(by_class[c], k + (j == query_c))
                if j == query_c:
                    query = picks.pop()
                support += [(names[j], tokens[i]) for i in picks]
            rng.shuffle(support)
            prompts.append(classification_prompt(support, tokens[query], w, layout))
            answers.append(names[query_c])
            offered.append(names)
        answers = torch.tensor(answers)
        # closed set (the target; chance 1/N_WAY): the likeliest of the prompt's label words
        out[k] = (next_token_among(lm, prompts, offered, tok.pad_id) == answers).float().mean().item()
        # open-ended: the LM's greedy next token over its whole vocabulary
        out[f"{k}_open"] = (next_tokens(lm, prompts, tok.pad_id) == answers).float().mean().item()
    return out


def evaluate_generation(lm, spae, tok, images, labels, per_class: int, seed: int) -> dict:
    """Class-conditional generation: examples of GEN_WAY classes (GEN_SHOTS each, all pyramid layers), then the
    label of one of them; the LM writes its tokens (restricted to SPAE's vocabulary), SPAE decodes them, the frozen
    judge reads the digit."""
    from ..data.digit_qa import LABEL_WORDS
    from ..models.diffusion.judges import judge
    from ..models.vl.incontext import PromptWords, generate_tokens, generation_prompt

    w = PromptWords.of(tok)
    tokens = spae.tokenize(images).tolist()
    by_class = {c: (labels == c).nonzero().squeeze(1).tolist() for c in range(10)}
    label_ids = [tok.tok.token_to_id(x) for x in LABEL_WORDS]
    prompts, wanted, supports = [], [], []
    for c in range(10):
        for e in range(per_class):
            rng = episode_rng(seed, "generate", c, e)
            classes = [c] + rng.sample([d for d in range(10) if d != c], GEN_WAY - 1)
            names = rng.sample(label_ids, GEN_WAY)
            support = [(names[j], tokens[i]) for j, d in enumerate(classes) for i in rng.sample(by_class[d], GEN_SHOTS)]
            rng.shuffle(support)
            prompts.append(generation_prompt(support, names[0], w))
            wanted.append(c)
            supports.append([s for name, s in support if name == names[0]])
    new = generate_tokens(lm, prompts, spae.config.n_tokens, spae.allowed, tok.pad_id)
    generated = spae.decode_tokens(new)
    with torch.no_grad():
        read = judge("reward")(generated).argmax(-1)
        real = judge("reward")(spae.decode_tokens(torch.tensor(tokens))).argmax(-1)
    wanted = torch.tensor(wanted)
    copies = sum(row in s for row, s in zip(new.tolist(), supports))
    return {"accuracy": (read == wanted).float().mean().item(), "copy_rate": copies / len(wanted),
            "judge_on_reconstructions": (real == labels).float().mean().item(),
            "only_vocabulary_ids": bool(spae.allowed[new].all()), "images": generated, "wanted": wanted}


@EXPERIMENTS.register("lens-spae")
def run(out: str, steps: int | None = None, small: bool = False, episodes: int = 200, per_class: int = 10,
        seed: int = 0) -> dict:
    import genzoo
    from ..data.digit_qa import all_attributes, all_tags
    from ..data.digits import TRAIN_TEMPLATES, load_digits_split
    from ..models.vl import LENS
    from ..tokenizers import Tokenizer
    from ..train import load_recipe
    from ..train.clip_task import tokenize
    from .lens_spae_report import write_outputs

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dirs, facts = train_parts(out, steps, small)
    train_seconds = time.perf_counter() - t0
    clip, clip_tok = genzoo.load(dirs["clip"]), Tokenizer.load(dirs["clip"])
    lm, tok = genzoo.load(dirs["lm"]), Tokenizer.load(dirs["lm"])
    captioner, baseline = genzoo.load(dirs["captioner"]), genzoo.load(dirs["baseline"])
    spaes = {name: genzoo.load(dirs[name]) for name in ("spae", "spae-nosem")}
    frozen_before = {"lm": fingerprint(lm), "clip": fingerprint(clip), "captioner": fingerprint(captioner)}
    _, _, images, labels = load_digits_split()
    if small:
        images, labels = images[::4], labels[::4]
        episodes, per_class = min(episodes, 6), min(per_class, 1)

    lens = LENS(clip, lambda t: tokenize(clip_tok, t, clip.config.max_positions), captioner, lm, tok, all_tags(),
                all_attributes(), tag_templates=tuple(TRAIN_TEMPLATES))
    results = {"held_out_images": len(labels),
               "parameters": {k: sum(p.numel() for p in m.parameters()) for k, m in
                              (("lm", lm), ("baseline", baseline), ("captioner", captioner), ("clip", clip),
                               ("spae", spaes["spae"]))},
               "vqa": evaluate_lens(lens, baseline, tok, images, labels)}
    results["spae"] = {name: evaluate_spae(m, images, labels, tok) for name, m in spaes.items()}
    layout = load_recipe(str(dirs["lm"] / "recipe.yaml")).vl.get("layout", "label-first")  # as the LM was taught
    results["in_context_classification"] = {name: evaluate_icl(lm, m, tok, images, labels, episodes, seed, layout)
                                            for name, m in spaes.items()}
    results["in_context_layout"] = layout
    gen = evaluate_generation(lm, spaes["spae"], tok, images, labels, per_class, seed)
    results["generation"] = {k: v for k, v in gen.items() if k not in ("images", "wanted")}
    frozen_after = {"lm": fingerprint(lm), "clip": fingerprint(clip), "captioner": fingerprint(captioner)}
    results["frozen_unchanged"] = frozen_before == frozen_after and all(
        torch.equal(m.codebook, lm.embed.weight) for m in spaes.values()) and \
        facts["frozen_files_unchanged_by_spae_training"] is not False
    results["train_seconds"] = round(train_seconds, 1)
    results.update(facts)
    return write_outputs(out, results, spaes, tok, images, labels, gen, time.perf_counter() - t0)
