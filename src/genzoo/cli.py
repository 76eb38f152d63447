"""The `genzoo` command. Every error is one line on stderr and a non-zero exit status."""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
import warnings


class ArgumentError(Exception):
    """A usage error: a bad argument or a value out of range (exit status 2)."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump, exit status 2
        raise ArgumentError(f"{self.prog}: {message}")


# argument types: a bad value is a usage error naming the argument (argparse adds "argument --x: ")
def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0 (0: greedy decoding), got {text}")
    return value


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def new_tokens(requested: int | None, prompt: int, config, default: int = 64) -> int:
    """How many tokens `generate` may add to a prompt of `prompt` tokens: `requested` when the model's positions
    hold it (otherwise a usage error naming the prompt length and the limit); by default 64, or what is left."""
    limit = getattr(config, "max_positions", None)
    if limit is None:
        return requested or default
    seq2seq = getattr(config, "genre", "") == "seq2seq"  # the prompt is the encoder's input, the output the decoder's
    if prompt > limit or (prompt == limit and not seq2seq):
        most = limit if seq2seq else limit - 1  # a causal LM needs a position left for the first new token
        raise ArgumentError(f"genzoo generate: --prompt is {prompt} tokens; the model takes at most {most} "
                            f"(max_positions={limit}{'' if seq2seq else ', one position left for a new token'})")
    room = limit - 1 if seq2seq else limit - prompt
    if requested is None:
        return min(default, room)
    if requested > room:
        what = f"the decoder's {limit} positions hold the start token + {room}" if seq2seq else \
            f"prompt {prompt} + max_new_tokens {requested} = {prompt + requested} exceeds max_positions={limit}"
        raise ArgumentError(f"genzoo generate: --max-new-tokens {requested}: {what}; use --max-new-tokens {room} "
                            "or less")
    return requested


def cmd_list(args) -> int:
    from . import PRESETS
    from .bench import BENCHMARKS
    from .interop import FORMATS
    from .train.recipe import load_recipe, recipe_names

    print("architectures (checkpoint formats read by genzoo.load):")
    print("  " + ", ".join(FORMATS.names()))
    print("presets (genzoo.build):")
    print("  " + ", ".join(PRESETS.names()))
    print("recipes (genzoo train):")
    for name in recipe_names():
        print(f"  {name:16s} {load_recipe(name).description}")
    print("experiments (genzoo experiment):")
    from .experiments import EXPERIMENTS

    print("  " + (", ".join(EXPERIMENTS.names()) or "(none yet)"))
    print("benchmarks (genzoo bench):")
    print("  " + ", ".join(BENCHMARKS.names()))
    return 0


def cmd_train(args) -> int:
    import contextlib

    from .rundir import claim_run

    out = args.out or os.path.join("runs", args.recipe)
    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun rank 0 writes (and holds the lock)
    # refused at once (not a run, in use by another run), before the training code is even imported
    with claim_run(out, args.resume) if main_rank else contextlib.nullcontext():
        from .train import load_recipe, train

        recipe = load_recipe(args.recipe, args.set or [])
        if args.no_progress:
            recipe.progress = False
        result = train(recipe, out, resume=args.resume, steps=args.steps, force=args.force)
    if main_rank:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k not in ("run", "step", "skipped"))
        print(f"trained {result['step']} steps ({metrics}); run directory: {result['run']}")
    return 0


def cmd_generate(args) -> int:
    import torch

    import genzoo
    from .rundir import resolve_checkpoint_dir
    from .tokenizers import Tokenizer

    directory = resolve_checkpoint_dir(args.dir)
    model = genzoo.load(directory)
    tok = Tokenizer.from_dir(directory)
    ids = tok.encode(args.prompt)
    if not ids:
        raise ArgumentError("genzoo generate: --prompt encodes to no tokens")
    prompt = torch.tensor([ids] * args.num_samples)
    sample = args.temperature > 0
    extra = {}
    if args.num_beams > 1:
        if "num_beams" not in inspect.signature(model.generate).parameters:
            raise ArgumentError(f"genzoo generate: --num-beams: {type(model).__name__} has no beam search "
                                "(seq2seq models do)")
        if sample:
            raise ArgumentError("genzoo generate: --num-beams needs greedy scoring: add --temperature 0")
        extra = dict(num_beams=args.num_beams, length_penalty=args.length_penalty)
    if args.compile:
        if "compile" not in inspect.signature(model.generate).parameters:
            raise ArgumentError(f"genzoo generate: --compile: {type(model).__name__}.generate has no compiled "
                                "decoding step (causal LMs do)")
        extra["compile"] = True
    out = model.generate(
        prompt, max_new_tokens=new_tokens(args.max_new_tokens, len(ids), model.config),
        do_sample=sample, temperature=args.temperature if sample else 1.0, top_k=args.top_k, top_p=args.top_p,
        eos_token_id=tok.eos_id, seed=args.seed, **extra,
    )
    for i, row in enumerate(out.tolist()):
        if args.num_samples > 1:
            print(f"--- sample {i + 1} ---")
        print(tok.decode(row))
    return 0


def cmd_embed(args) -> int:
    import json

    import genzoo
    from .rundir import resolve_checkpoint_dir
    from .tokenizers import Tokenizer

    directory = resolve_checkpoint_dir(args.dir)
    model = genzoo.load(directory)
    if not hasattr(model, "encode"):
        raise ArgumentError(f"genzoo embed: {directory} holds a {type(model).__name__}, not an encoder")
    if args.pooling:
        model.config.pooling = args.pooling
    emb = model.encode(args.text, Tokenizer.from_dir(directory), normalize=not args.no_normalize)
    for text, row in zip(args.text, emb.tolist()):
        print(json.dumps({"text": text, "embedding": [round(v, 6) for v in row]}))
    if len(args.text) > 1:
        sims = emb @ emb.t()
        for i in range(len(args.text)):
            print("cosine " + " ".join(f"{v:+.4f}" for v in sims[i].tolist()))
    return 0


def cmd_eval(args) -> int:
    from .train import evaluate_run

    r = evaluate_run(args.dir, max_batches=args.batches)
    if "val_ppl" in r:
        print(f"{r['dir']}: validation loss {r['val_loss']:.4f}, perplexity {r['val_ppl']:.2f} ({r['batches']} batches)")
    else:
        print(f"{r['dir']}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.items() if k != "dir"))
    return 0


def cmd_bench(args) -> int:
    from .bench import BENCHMARKS

    BENCHMARKS.get(args.name)()
    return 0


def cmd_experiment(args) -> int:
    from .experiments import EXPERIMENTS

    EXPERIMENTS.get(args.name)(out=args.out or os.path.join("runs", "experiments", args.name))
    return 0


def build_parser() -> Parser:
    p = Parser(prog="genzoo", description="The models of generative AI from one set of parts.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    s = sub.add_parser("list", help="architectures, presets, recipes, experiments, benchmarks")
    s.set_defaults(fn=cmd_list)

    s = sub.add_parser("train", help="train a recipe")
    s.add_argument("recipe", help="a recipe name (see `genzoo list`)")
    s.add_argument("--out", help="run directory (default: runs/RECIPE)")
    s.add_argument("--steps", type=positive_int, help="number of optimizer steps (overrides the recipe)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set lr=1e-3 --set model.n_layers=6 (repeatable)")
    s.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    s.add_argument("--force", action="store_true",
                   help="resume even though the recipe changes what is trained (model, data, seed, batch size)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("generate", help="generate text from a run or Hugging Face directory")
    s.add_argument("dir", help="a run directory or a Hugging Face-format model directory")
    s.add_argument("--prompt", required=True)
    s.add_argument("--max-new-tokens", type=positive_int, default=None,
                   help="at most this many new tokens (default: 64, or what the model's positions leave)")
    s.add_argument("--temperature", type=temperature, default=0.8, help="0 for greedy decoding")
    s.add_argument("--top-k", type=positive_int, default=None)
    s.add_argument("--top-p", type=probability, default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--num-samples", type=positive_int, default=1)
    s.add_argument("--num-beams", type=positive_int, default=1,
                   help="beam search with this many beams (seq2seq models)")
    s.add_argument("--length-penalty", type=float, default=1.0,
                   help="beam search: a finished hypothesis scores sum(log p) / length ** this")
    s.add_argument("--compile", action="store_true",
                   help="decode through torch.compile (causal LMs): a one-off compilation, then a faster step")
    s.set_defaults(fn=cmd_generate)

    s = sub.add_parser("embed", help="sentence embeddings from an encoder (run or Hugging Face directory)")
    s.add_argument("dir", help="an encoder directory, e.g. the all-MiniLM-L6-v2 checkpoint")
    s.add_argument("--text", action="append", required=True, help="a text to embed (repeatable)")
    s.add_argument("--pooling", choices=["mean", "cls"], help="override the model's pooling")
    s.add_argument("--no-normalize", action="store_true", help="do not L2-normalise the embeddings")
    s.set_defaults(fn=cmd_embed)

    s = sub.add_parser("eval", help="validation metrics of a run directory (loss and perplexity, exact match, ...)")
    s.add_argument("dir")
    s.add_argument("--batches", type=positive_int, default=None, help="at most this many batches (default: all)")
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("bench", help="benchmark genzoo against the reference implementation")
    s.add_argument("name", help="a benchmark name (see `genzoo list`)")
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("experiment", help="run a paper's experiment; writes report.md, figures, results.json")
    s.add_argument("name", help="an experiment name (see `genzoo list`)")
    s.add_argument("--out", help="output directory (default runs/experiments/NAME)")
    s.set_defaults(fn=cmd_experiment)
    return p


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def os_error(e: OSError) -> str:
    """An OSError as one line naming the path: 'permission denied: /x/run' rather than '[Errno 13] ...'."""
    what = (e.strerror or str(e)).lower()
    paths = " -> ".join(str(p) for p in (e.filename, e.filename2) if p is not None)
    return f"{what}: {paths}" if paths else what


def _warning_line(message, category, filename, lineno, line=None) -> str:
    return f"genzoo: warning: {one_line(message)}\n"


def main(argv: list[str] | None = None) -> int:
    """Run the command. Every error is one line on stderr: exit status 2 for a usage error (a bad argument or
    value), 1 for the rest (a genzoo error, an OSError on a path); warnings are one line each too."""
    from .errors import GenzooError

    warnings.formatwarning = _warning_line
    try:
        args = build_parser().parse_args(argv)
        return args.fn(args)
    except ArgumentError as e:  # "genzoo train: argument --steps: ..." -> "genzoo train: error: argument --steps: ..."
        prog, _, message = one_line(e).partition(": ")
        print(f"{prog}: error: {message}" if message else f"genzoo: error: {prog}", file=sys.stderr)
        return 2
    except GenzooError as e:
        print(f"genzoo: error: {one_line(e)}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"genzoo: error: {one_line(os_error(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("genzoo: interrupted", file=sys.stderr)
        return 130
