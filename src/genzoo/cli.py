"""The `genzoo` command. Every error is one line on stderr and a non-zero exit status."""

from __future__ import annotations

import argparse
import inspect
import os
import sys


class ArgumentError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump, exit status 2
        raise ArgumentError(f"{self.prog}: {message}")


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
    from .train import load_recipe, train

    recipe = load_recipe(args.recipe, args.set or [])
    if args.no_progress:
        recipe.progress = False
    out = args.out or os.path.join("runs", args.recipe)
    result = train(recipe, out, resume=args.resume, steps=args.steps)
    if int(os.environ.get("RANK", "0")) == 0:
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
        prompt, max_new_tokens=min(args.max_new_tokens, model.config.max_positions - len(ids)),
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


def cmd_play(args) -> int:
    import numpy as np

    import genzoo
    from .data.control import EVAL_SEED, run_episodes, task_for_env
    from .data.mixture import demonstration
    from .models.gato.agent import GatoAgent
    from .rundir import resolve_checkpoint_dir

    task = task_for_env(args.env)  # an unknown environment fails before the model is read
    if args.episodes < 1:
        raise ArgumentError(f"genzoo play: --episodes must be >= 1, got {args.episodes}")
    directory = resolve_checkpoint_dir(args.dir)
    model = genzoo.load(directory)
    if getattr(model.config, "genre", None) != "gato":
        raise ArgumentError(f"genzoo play: {directory} holds a {type(model).__name__}, not a Gato model")
    prompt = demonstration(task.spec.name, model.config.layout, model.config.max_positions // 4)
    agent = GatoAgent(model, task.spec, prompt, greedy=args.temperature == 0, temperature=args.temperature or 1.0,
                      generator=torch_generator(args.seed))
    agent.reset(args.episodes)
    returns, lengths, frames = run_episodes(task, agent.act, args.episodes, seed=args.seed + EVAL_SEED,
                                            render=args.max_frames if args.gif else 0)
    for i, (r, n) in enumerate(zip(returns, lengths)):
        print(f"episode {i + 1}: return {r:.2f} ({n} steps)")
    print(f"{task.spec.env_id}: mean return {np.mean(returns):.2f} over {args.episodes} episodes")
    if args.gif:
        from .figures import save_gif

        save_gif(frames, args.gif, fps=args.fps)
        print(f"wrote {args.gif} ({len(frames)} frames of episode 1)")
    return 0


def torch_generator(seed: int):
    import torch

    return torch.Generator().manual_seed(seed)


def build_parser() -> Parser:
    p = Parser(prog="genzoo", description="The models of generative AI from one set of parts.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    s = sub.add_parser("list", help="architectures, presets, recipes, experiments, benchmarks")
    s.set_defaults(fn=cmd_list)

    s = sub.add_parser("train", help="train a recipe")
    s.add_argument("recipe", help="a recipe name (see `genzoo list`)")
    s.add_argument("--out", help="run directory (default: runs/RECIPE)")
    s.add_argument("--steps", type=int, help="number of optimizer steps (overrides the recipe)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set lr=1e-3 --set model.n_layers=6 (repeatable)")
    s.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("generate", help="generate text from a run or Hugging Face directory")
    s.add_argument("dir", help="a run directory or a Hugging Face-format model directory")
    s.add_argument("--prompt", required=True)
    s.add_argument("--max-new-tokens", type=int, default=64)
    s.add_argument("--temperature", type=float, default=0.8, help="0 for greedy decoding")
    s.add_argument("--top-k", type=int, default=None)
    s.add_argument("--top-p", type=float, default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--num-samples", type=int, default=1)
    s.add_argument("--num-beams", type=int, default=1, help="beam search with this many beams (seq2seq models)")
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
    s.add_argument("--batches", type=int, default=None, help="at most this many batches (default: all)")
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("bench", help="benchmark genzoo against the reference implementation")
    s.add_argument("name", help="a benchmark name (see `genzoo list`)")
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("play", help="run a trained Gato policy in a gymnasium environment and print the returns")
    s.add_argument("dir", help="a Gato run directory (genzoo train gato-nano)")
    s.add_argument("--env", required=True, help="a gymnasium id: CartPole-v1, Pendulum-v1, MountainCar-v0, "
                                                "genzoo/GridWorld-v0")
    s.add_argument("--episodes", type=int, default=10)
    s.add_argument("--seed", type=int, default=0, help="episode i is reset with seed 1000000 + seed + i")
    s.add_argument("--temperature", type=float, default=0.0, help="0: greedy actions; > 0: sampled")
    s.add_argument("--gif", help="write the first episode as an animated GIF (environments that render RGB)")
    s.add_argument("--max-frames", type=int, default=500, help="at most this many GIF frames")
    s.add_argument("--fps", type=int, default=30, help="GIF frames per second")
    s.set_defaults(fn=cmd_play)

    s = sub.add_parser("experiment", help="run a paper's experiment; writes report.md, figures, results.json")
    s.add_argument("name", help="an experiment name (see `genzoo list`)")
    s.add_argument("--out", help="output directory (default runs/experiments/NAME)")
    s.set_defaults(fn=cmd_experiment)
    return p


def main(argv: list[str] | None = None) -> int:
    from .errors import GenzooError

    try:
        args = build_parser().parse_args(argv)
        return args.fn(args)
    except ArgumentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except GenzooError as e:
        print(f"genzoo: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("genzoo: interrupted", file=sys.stderr)
        return 130
