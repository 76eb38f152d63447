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


QUANTIZE = ("int8", "int8-weight", "int4-weight", "bf16")  # genzoo.quant schemes that need no calibration


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

    sets = list(args.set or [])
    if args.data:  # the user's data and checkpoint: absolute, so that a resume from elsewhere finds them
        sets.append(f"data.source={os.path.abspath(args.data)}")
    if args.init:
        sets.append(f"init={os.path.abspath(args.init)}")
    if args.out:
        out = args.out
    else:  # the default directory is named by the recipe
        from .train import load_recipe

        out = os.path.join("runs", load_recipe(args.recipe, sets).name or args.recipe)
    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun rank 0 writes (and holds the lock)
    # refused at once (not a run, in use by another run), before the training code is even imported
    with claim_run(out, args.resume) if main_rank else contextlib.nullcontext():
        from .train import load_recipe, train

        recipe = load_recipe(args.recipe, sets)
        if args.no_progress:
            recipe.progress = False
        result = train(recipe, out, resume=args.resume, steps=args.steps, force=args.force)
    if main_rank:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k not in ("run", "step", "skipped"))
        print(f"trained {result['step']} steps ({metrics}); run directory: {result['run']}")
    return 0


def cmd_fuse(args) -> int:
    from .fuse import fuse
    from .train import load_recipe

    recipe = load_recipe(args.target, args.set or [])
    if args.no_progress:
        recipe.progress = False
    out = args.out or os.path.join("runs", "fuse-" + args.target)
    result = fuse(args.source, recipe, out, steps=args.steps, resume=args.resume, text=args.text)
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k not in ("run", "step", "skipped"))
    print(f"fused {len(args.source)} sources into {args.target}: {result['step']} steps ({metrics}); "
          f"run directory: {result['run']} (precomputed distributions: {os.path.join(out, 'topk')})")
    return 0


def cmd_generate(args) -> int:
    import torch

    import genzoo
    from .streamers import TextStreamer
    from .tokenizers import Tokenizer

    model = genzoo.load(args.dir)
    if hasattr(model, "generate_point_cloud"):  # a Point-E run: text -> view -> point cloud
        if args.prompt is None:
            raise ArgumentError("genzoo generate: a Point-E run needs --prompt TEXT")
        return generate_points(model, args)
    if not hasattr(model, "generate"):  # images (GAN, diffusion) or table rows, not text
        if hasattr(model, "sample") or hasattr(model, "sample_table"):
            return _generate_samples(model, args)
        raise ArgumentError(f"genzoo generate: {args.dir} holds a {type(model).__name__}, which does not generate")
    if args.prompt is None:
        raise ArgumentError("genzoo generate: --prompt is required for a text model")
    if args.quantize:
        model = genzoo.quantize(model, args.quantize)
    tok = Tokenizer.load(args.dir)
    if args.retrieve:  # retrieval-augmented: the index's top-k passages go into the prompt
        args.prompt = retrieved_prompt(args, tok, model.config.max_positions - (args.max_new_tokens or 64))
    ids = tok.encode(args.prompt)
    if not ids:
        raise ArgumentError("genzoo generate: --prompt encodes to no tokens")
    prompt = torch.tensor([ids] * (args.num_samples or 1))
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
    if args.repetition_penalty != 1.0 or args.min_new_tokens or args.stop:
        extra.update(repetition_penalty=args.repetition_penalty, min_new_tokens=args.min_new_tokens)
        if args.stop:
            extra.update(stop=args.stop, tokenizer=tok)
    causal = hasattr(model, "make_cache")
    stream = (args.num_samples or 1) == 1 and args.num_beams == 1 and not args.no_stream
    if stream:  # print tokens as they come (a causal LM echoes the prompt first)
        extra["streamer"] = TextStreamer(tok, skip_prompt=not causal)
    out = model.generate(
        prompt, max_new_tokens=new_tokens(args.max_new_tokens, len(ids), model.config),
        do_sample=sample, temperature=args.temperature if sample else 1.0, top_k=args.top_k, top_p=args.top_p,
        eos_token_id=tok.eos_id, seed=args.seed, **extra,
    )
    if not stream:
        for i, row in enumerate(out.tolist()):
            if (args.num_samples or 1) > 1:
                print(f"--- sample {i + 1} ---")
            print(tok.decode(row))
    return 0


def _generate_samples(model, args) -> int:
    """A table generator writes --rows synthetic rows to --out (.csv or .parquet); an image generator writes a grid
    of --num-samples images (of class --class) to --out (.png)."""
    import torch

    g = torch.Generator().manual_seed(args.seed)
    if hasattr(model, "sample_table"):
        if args.rows is None or args.rows < 1:
            raise ArgumentError("genzoo generate: a table generator needs --rows N (a positive number of rows)")
        out = args.out or "synthetic.csv"
        if not out.endswith((".csv", ".parquet")):
            raise ArgumentError(f"genzoo generate: --out {out!r}: write a table to a .csv or .parquet file")
        from .models.tabular.copies import FILE, TrainingRows

        # rows equal to a training row are redrawn (the run's training-rows.safetensors); --allow-copies keeps them
        known = None if args.allow_copies and not os.path.isfile(os.path.join(args.dir, FILE)) else \
            TrainingRows.load(args.dir)
        df = model.sample_table(args.rows, generator=g, exclude=None if args.allow_copies else known)
        tmp = f"{out}.tmp"  # written whole, then renamed into place
        df.to_csv(tmp, index=False) if out.endswith(".csv") else df.to_parquet(tmp, index=False)
        os.replace(tmp, out)
        c = df.attrs["copies"]
        if c["checked"]:
            copies = (f"none copies a training row ({c['first_draw']} of the first draw did: redrawn, "
                      f"{c['redrawn']} rows in {c['rounds']} round(s))" if c["first_draw"] else
                      "none copies a training row")
        elif known is not None:
            copies = f"{int(known.copies(df, model.schema).sum())} copy a training row (kept: --allow-copies)"
        else:
            copies = "not checked for copies of training rows (--allow-copies)"
        print(f"wrote {len(df)} synthetic rows ({len(df.columns)} columns) to {out}; {copies}")
        return 0
    n = args.num_samples or 16
    n_classes = getattr(model.config, "n_classes", 0)
    if args.cls is None and n_classes:
        labels = torch.arange(n) % n_classes
    elif args.cls is not None:
        labels = torch.full((n,), args.cls)
    else:
        labels = None
    images = model.sample(labels, generator=g) if labels is not None else model.sample(n=n, generator=g)
    out = args.out or "samples.png"
    if not out.endswith(".png"):
        raise ArgumentError(f"genzoo generate: --out {out!r}: images are written as a .png grid")
    from .figures import image_grid

    what = f"class {args.cls}" if args.cls is not None else "every class in turn" if labels is not None else "samples"
    image_grid(images.cpu(), out, ncol=min(n, 10), title=f"{type(model).__name__}: {what}")
    print(f"wrote {n} images ({what}) to {out}")
    return 0


def generate_points(model, args) -> int:
    """genzoo generate POINTE_RUN --prompt TEXT --out CLOUD.ply: the cloud (.ply), the view and the cloud from three
    angles (PNGs beside it), the words of the prompt no training caption has, and the seconds of each stage."""
    from pathlib import Path

    from .models.pointe.files import cloud_figure, view_figure, write_ply

    if not args.out or not args.out.endswith(".ply"):
        raise ArgumentError(f"genzoo generate: a Point-E run writes a point cloud: give --out FILE.ply "
                            f"(got {args.out!r})")
    r = model.generate_point_cloud(args.prompt, guidance_scale=args.guidance_scale, seed=args.seed,
                                   image_steps=args.image_steps, point_steps=args.point_steps,
                                   upsample_steps=args.upsample_steps, route=args.route)
    out = Path(args.out)
    write_ply(r.clouds[0], out)
    view_png, cloud_png = out.with_suffix(".view.png"), out.with_suffix(".cloud.png")
    view_figure(r.views[0], view_png, args.prompt)
    cloud_figure(r.clouds[0], cloud_png, f"{args.prompt} ({r.clouds.shape[2]} points)")
    if r.unseen[0]:
        print(f"genzoo: words no training caption has (generated anyway): {', '.join(r.unseen[0])}",
              file=sys.stderr)
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in r.seconds.items())
    print(f"wrote {out} ({r.clouds.shape[2]} points), {view_png}, {cloud_png}; {stages}, "
          f"total {sum(r.seconds.values()):.2f} s")
    return 0


def retrieved_prompt(args, tok, budget: int) -> str:
    """--retrieve INDEX: the prompt with the top -k passages (--template), lowest-ranked dropped until the prompt
    leaves room for --max-new-tokens in the model's context."""
    from .index import Retriever
    from .index.commands import parse_where
    from .index.retriever import TEMPLATE

    template = args.template or TEMPLATE
    if template.startswith("@"):
        template = open(template[1:], encoding="utf-8").read()
    r = Retriever.open(args.retrieve, k=args.retrieve_k, where=parse_where(args.where),
                       template=template.replace("\\n", "\n"))
    prompt = r.prompt(args.prompt, fits=lambda text: len(tok.encode(text)) <= max(budget, 1))
    print(f"genzoo: retrieved {len(r.used)} passage(s) from {args.retrieve}: "
          + ", ".join(f"{h.id}#{h.chunk} ({h.score:.3f})" for h in r.used), file=sys.stderr)
    return prompt


def cmd_index(args) -> int:
    return args.index_fn(args)


def cmd_chat(args) -> int:
    import torch

    import genzoo
    from .streamers import TextStreamer
    from .tokenizers import Tokenizer

    model = genzoo.load(args.path)
    tok = Tokenizer.load(args.path)
    if not hasattr(model, "make_cache"):
        raise ArgumentError(f"genzoo chat: {args.path} holds a {type(model).__name__}, not a causal LM")
    if tok.chat_template is None:
        raise ArgumentError(f"genzoo chat: {args.path} has no chat template (tokenizer_config.json 'chat_template', "
                            "chat_template.jinja or GGUF 'tokenizer.chat_template')")
    eos = [i for i in (tok.eos_id, model.config.eos_token_id) if i is not None]
    messages = [{"role": "system", "content": args.system}] if args.system else []
    interactive = not args.message and sys.stdin.isatty()
    for text in args.message or _user_lines(interactive):
        if text == "/reset":
            messages = messages[:1] if args.system else []
            continue
        messages.append({"role": "user", "content": text})
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        room = model.config.max_positions - len(ids)
        if room < 1:
            raise ArgumentError(f"genzoo chat: the conversation is {len(ids)} tokens, the model's limit is "
                                f"{model.config.max_positions}; start a new one (/reset)")
        streamer = TextStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        sample = args.temperature > 0
        model.generate(torch.tensor([ids]), max_new_tokens=min(args.max_new_tokens, room), do_sample=sample,
                       temperature=args.temperature if sample else 1.0, top_k=args.top_k, top_p=args.top_p,
                       repetition_penalty=args.repetition_penalty, eos_token_id=sorted(set(eos)), seed=args.seed,
                       streamer=streamer)
        messages.append({"role": "assistant", "content": streamer.text.strip()})
    return 0


def _user_lines(interactive: bool):
    """The user's messages: typed lines (with a prompt) or stdin's lines; /exit ends, /reset starts over."""
    while True:
        try:
            line = input("> ") if interactive else sys.stdin.readline()
        except EOFError:
            return
        if not interactive and not line:
            return
        line = line.strip()
        if line in ("/exit", "/quit"):
            return
        if line:
            yield line


def cmd_embed(args) -> int:
    import json

    import genzoo
    from .tokenizers import Tokenizer

    model = genzoo.load(args.dir)
    if not hasattr(model, "encode"):
        raise ArgumentError(f"genzoo embed: {args.dir} holds a {type(model).__name__}, not an encoder")
    if args.pooling:
        model.config.pooling = args.pooling
    emb = model.encode(args.text, Tokenizer.load(args.dir), normalize=False if args.no_normalize else None)
    norms = emb.norm(dim=-1)
    sims = (emb / norms[:, None].clamp(min=1e-12)) @ (emb / norms[:, None].clamp(min=1e-12)).t()
    if args.format == "jsonl":  # one JSON object per text, nothing else on stdout
        for text, row, cos in zip(args.text, emb.tolist(), sims.tolist()):
            print(json.dumps({"text": text, "embedding": [round(v, 6) for v in row],
                              "cosine": [round(v, 6) for v in cos]}))
        return 0
    width = max(len(t) for t in args.text[:50])
    width = min(max(width, 4), 40)
    print(f"{'#':>3}  {'text':{width}}  {'dim':>4}  {'norm':>7}  first values")
    for i, (text, row) in enumerate(zip(args.text, emb.tolist())):
        short = text if len(text) <= width else text[: width - 3] + "..."
        print(f"{i:>3}  {short:{width}}  {len(row):>4}  {norms[i]:7.4f}  " + " ".join(f"{v:+.4f}" for v in row[:4]))
    if len(args.text) > 1:
        print("\ncosine similarity")
        print("     " + " ".join(f"{j:>7}" for j in range(len(args.text))))
        for i in range(len(args.text)):
            print(f"{i:>3}  " + " ".join(f"{v:+7.4f}" for v in sims[i].tolist()))
    return 0


def cmd_serve(args) -> int:
    try:
        from .serve import ServeSettings, create_app, load_served, run
    except ImportError as e:
        raise ArgumentError(f"genzoo serve needs the server stack ({e.name} is missing): pip install 'genzoo[serve]'")
    import torch

    key = args.api_key or os.environ.get("GENZOO_API_KEY") or None
    settings = ServeSettings(host=args.host, port=args.port, api_key=key, model_name=args.model_name,
                             cors_origins=args.cors_origin or [], max_batch=args.max_batch, max_queue=args.max_queue,
                             max_context=args.max_context, max_tokens=args.max_tokens,
                             max_body_bytes=args.max_body_bytes)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(args.dtype)
    if args.threads is not None:
        if args.threads < 1:
            raise ArgumentError(f"genzoo serve: --threads {args.threads} must be a positive integer")
        torch.set_num_threads(args.threads)
    served = load_served(args.path, name=args.model_name, index=args.index, device=args.device, dtype=dtype)
    where = f"http://{args.host}:{args.port}"
    print(f"genzoo: serving {served.name!r} ({served.kind}: {', '.join(served.capabilities)}) at {where} "
          f"(web page: {where}/, API key {'required' if key else 'not set'})", file=sys.stderr)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not key:
        print(f"genzoo: warning: listening on {args.host} without --api-key: anyone who reaches this port can use "
              "the model", file=sys.stderr)
    run(create_app(served, settings), host=args.host, port=args.port)
    return 0


def cmd_ner(args) -> int:
    import json

    import genzoo
    from .rundir import resolve_checkpoint_dir

    directory = resolve_checkpoint_dir(args.dir)
    model = genzoo.load(directory)
    if not hasattr(model, "batch_predict_entities"):
        raise ArgumentError(f"genzoo ner: {directory} holds a {type(model).__name__}, not a GLiNER model")
    results = model.batch_predict_entities(args.text, args.label, threshold=args.threshold, flat_ner=not args.nested,
                                           multi_label=args.multi_label, label_order=args.label_order)
    for i, ents in enumerate(results):
        for e in ents:
            print(json.dumps({"text_index": i, **e}, ensure_ascii=False))
        if ents.windows > 1:
            print(f"genzoo ner: text {i} has {ents.words} words, more than max_len={model.config.max_len}: read in "
                  f"{ents.windows} overlapping windows", file=sys.stderr)
    return 0


def cmd_eval(args) -> int:
    from .train import evaluate_run

    if args.data:
        from .train.evaluate import evaluate_file

        r = evaluate_file(args.dir, args.data, block_size=args.block_size, text_column=args.text_column,
                          glob=args.glob)
        print(f"{r.pop('dir')} on {args.data}: " + ", ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
        return 0
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

    fn = EXPERIMENTS.get(args.name)
    extra = {}
    if args.steps is not None:
        if "steps" not in inspect.signature(fn).parameters:
            raise ArgumentError(f"genzoo experiment: --steps: experiment {args.name!r} has no training length to set")
        if args.steps <= 0:
            raise ArgumentError(f"genzoo experiment: --steps {args.steps} must be a positive integer")
        extra["steps"] = args.steps
    fn(out=args.out or os.path.join("runs", "experiments", args.name), **extra)
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
    from . import __version__

    p = Parser(prog="genzoo", description="The models of generative AI from one set of parts.")
    p.add_argument("--version", action="version", version=f"genzoo {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    s = sub.add_parser("list", help="architectures, presets, recipes, experiments, benchmarks")
    s.set_defaults(fn=cmd_list)

    s = sub.add_parser("train", help="train a recipe")
    s.add_argument("recipe", help="a recipe name (see `genzoo list`) or the path of a recipe YAML file")
    s.add_argument("--out", help="run directory (default: runs/RECIPE)")
    s.add_argument("--steps", type=positive_int, help="number of optimizer steps (overrides the recipe)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set lr=1e-3 --set model.n_layers=6 (repeatable)")
    s.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    s.add_argument("--force", action="store_true",
                   help="resume even though the recipe changes what is trained (model, data, seed, batch size)")
    s.add_argument("--data", metavar="PATH", help="train on your own data: a folder of text files (data.glob), a "
                   ".txt, or a .jsonl / .parquet / .csv table (columns: data.text_column, ...; tabular recipes: "
                   "--set data.target=COLUMN); sets data.source")
    s.add_argument("--init", metavar="DIR", help="fine-tune: start from this Hugging Face directory or genzoo run "
                   "(its weights and tokenizer); add --set lora.r=8 to train LoRA adapters only")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("fuse", help="FuseLLM: train a target LM on the fused distributions of source LMs")
    s.add_argument("--source", action="append", required=True, metavar="DIR",
                   help="a source causal LM: a run or Hugging Face directory with its tokenizer.json (repeatable)")
    s.add_argument("--target", required=True, metavar="RECIPE", help="the target's recipe, of task 'fuse' "
                   "(e.g. fusellm-target)")
    s.add_argument("--out", help="run directory (default runs/fuse-RECIPE); the distributions go to OUT/topk")
    s.add_argument("--text", metavar="PATH", help="fuse on this text file, or the .txt/.md/.rst/.py files under "
                   "this directory, instead of the recipe's corpus (validation stays on the corpus's held-out split)")
    s.add_argument("--steps", type=positive_int, help="number of optimizer steps (overrides the recipe)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set fuse.method=avg-ce --set fuse.lam=0.8 (repeatable)")
    s.add_argument("--resume", action="store_true", help="continue the training from OUT's latest checkpoint "
                   "(the precomputation always continues where it stopped)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.set_defaults(fn=cmd_fuse)

    s = sub.add_parser("generate", help="generate text from a run or Hugging Face directory, or a GGUF file; "
                       "images (GAN, diffusion), table rows, or a point cloud (.ply) from a Point-E run")
    s.add_argument("dir", help="a run directory, a Hugging Face-format model directory or a .gguf file")
    s.add_argument("--prompt", help="the text to continue (text models)")
    s.add_argument("--max-new-tokens", type=positive_int, default=None,
                   help="at most this many new tokens (default: 64, or what the model's positions leave)")
    s.add_argument("--temperature", type=temperature, default=0.8, help="0 for greedy decoding")
    s.add_argument("--top-k", type=positive_int, default=None)
    s.add_argument("--top-p", type=probability, default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--num-samples", type=positive_int, default=None,
                   help="texts to sample (default 1); images (default 16)")
    s.add_argument("--class", dest="cls", type=int, default=None,
                   help="image generators (GAN, diffusion): the class of every image (default: the classes in turn)")
    s.add_argument("--rows", type=positive_int, default=None, help="table generators: the number of synthetic rows")
    s.add_argument("--allow-copies", action="store_true",
                   help="table generators: keep synthetic rows equal to a training row (default: redraw them, up to "
                        "10 rounds, from the run's training-rows.safetensors; an error if copies remain)")
    s.add_argument("--out", help="table generators: a .csv / .parquet file (default synthetic.csv); image "
                   "generators: a .png grid (default samples.png); Point-E runs: the point cloud FILE.ply (PNGs of "
                   "the view and of the cloud go beside it)")
    s.add_argument("--num-beams", type=positive_int, default=1,
                   help="beam search with this many beams (seq2seq models)")
    s.add_argument("--length-penalty", type=float, default=1.0,
                   help="beam search: a finished hypothesis scores sum(log p) / length ** this")
    s.add_argument("--compile", action="store_true",
                   help="decode through torch.compile (causal LMs): a one-off compilation, then a faster step")
    s.add_argument("--retrieve", metavar="INDEX", help="put the top -k passages of this genzoo index into the prompt")
    s.add_argument("-k", "--retrieve-k", type=positive_int, default=3, help="--retrieve: passages (default 3)")
    s.add_argument("--where", action="append", metavar="KEY=VALUE", help="--retrieve: metadata filter (repeatable)")
    s.add_argument("--template", help="--retrieve: the prompt template with {passages} and {prompt} "
                   "(default '{passages}\\n{prompt}'; @FILE reads it from a file)")
    s.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeating tokens")
    s.add_argument("--min-new-tokens", type=int, default=0, help="no end-of-text before this many new tokens")
    s.add_argument("--stop", action="append", metavar="TEXT", help="stop once this text is generated (repeatable)")
    s.add_argument("--no-stream", action="store_true", help="print the text at the end, not as it is generated")
    s.add_argument("--quantize", choices=QUANTIZE,
                   help="decode with a quantized copy: int8 (int8 activations and weights), int8-weight, int4-weight "
                        "(weight-only; torchao) or bf16")
    s.add_argument("--guidance-scale", type=float, default=3.0, help="Point-E runs: classifier-free guidance scale")
    s.add_argument("--image-steps", type=positive_int, default=25, help="Point-E runs: text-to-image DDIM steps")
    s.add_argument("--point-steps", type=positive_int, default=32, help="Point-E runs: coarse cloud Karras/Heun steps")
    s.add_argument("--upsample-steps", type=positive_int, default=16, help="Point-E runs: upsampler Karras/Heun steps")
    s.add_argument("--route", choices=("image", "text"), default="image", help="Point-E runs: text -> view -> "
                   "points (image, Point-E) or the text-conditioned point model (text, the baseline)")
    s.set_defaults(fn=cmd_generate)

    s = sub.add_parser("chat", help="chat with a causal LM through its chat template (HF directory or GGUF file)")
    s.add_argument("path", help="a model directory with a chat template, or a .gguf file")
    s.add_argument("--message", action="append", metavar="TEXT",
                   help="a user message (repeatable: a conversation); without it, read messages from stdin")
    s.add_argument("--system", help="a system message")
    s.add_argument("--max-new-tokens", type=positive_int, default=256)
    s.add_argument("--temperature", type=temperature, default=0.0, help="0 (default): greedy decoding")
    s.add_argument("--top-k", type=positive_int, default=None)
    s.add_argument("--top-p", type=probability, default=None)
    s.add_argument("--repetition-penalty", type=float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=cmd_chat)

    s = sub.add_parser("embed", help="sentence embeddings from an encoder (run or Hugging Face directory)")
    s.add_argument("dir", help="an encoder directory, e.g. the all-MiniLM-L6-v2 checkpoint")
    s.add_argument("--text", action="append", required=True, help="a text to embed (repeatable)")
    s.add_argument("--pooling", choices=["cls", "mean", "max", "weighted-mean", "last-token", "mean-sqrt-len"],
                   help="override the model's pooling (default: the directory's, e.g. its 1_Pooling/config.json)")
    s.add_argument("--no-normalize", action="store_true", help="do not L2-normalise the embeddings")
    s.add_argument("--format", choices=["jsonl", "table"], default="jsonl",
                   help="jsonl (default): one JSON object per text with its embedding and cosine similarities; "
                        "table: a readable summary and the cosine matrix")
    s.set_defaults(fn=cmd_embed)

    s = sub.add_parser("ner", help="named entities of any type with a GLiNER model (JSON lines)")
    s.add_argument("dir", help="a GLiNER directory (the gliner package's, or a gliner-nano run)")
    s.add_argument("--text", action="append", required=True, help="a text (repeatable)")
    s.add_argument("--label", action="append", required=True, help="an entity type, e.g. person (repeatable)")
    s.add_argument("--threshold", type=float, default=0.5, help="keep (span, type) pairs scored above this")
    s.add_argument("--nested", action="store_true", help="allow entities inside entities (flat_ner=False)")
    s.add_argument("--multi-label", action="store_true", help="allow several types for one span")
    s.add_argument("--label-order", choices=["given", "average"], default="given",
                   help="average: scores averaged over several label orders (independent of the order given)")
    s.set_defaults(fn=cmd_ner)

    s = sub.add_parser("index", help="a vector index of your texts: build, add, delete, query, info")
    from .index.commands import add_parsers as index_parsers

    index_parsers(s.add_subparsers(dest="index_command", required=True, parser_class=Parser))
    s.set_defaults(fn=cmd_index)

    s = sub.add_parser("serve", help="serve a model over HTTP (OpenAI-style API) with a web page to try it")
    s.add_argument("path", metavar="DIR_OR_RUN", help="a run or Hugging Face directory, a .gguf file, or a genzoo index")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on every API route (or set GENZOO_API_KEY)")
    s.add_argument("--model-name", help="the model id clients send (default: the directory's name)")
    s.add_argument("--index", metavar="INDEX", help="also serve this genzoo index at /v1/index/query")
    s.add_argument("--max-batch", type=int, default=8, help="requests decoded together (continuous batching)")
    s.add_argument("--max-queue", type=int, default=64, help="requests that may wait; more get 429")
    s.add_argument("--max-context", type=int, default=2048,
                   help="prompt + max_tokens per request, and the KV cache's length (at most the model's)")
    s.add_argument("--max-tokens", type=int, default=1024, help="the largest max_tokens a request may ask")
    s.add_argument("--max-body-bytes", type=int, default=2 * 1024 * 1024, help="larger request bodies get 413")
    s.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="allow browser pages from this origin (repeatable; default: none, CORS off)")
    s.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    s.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="load the weights in this dtype")
    s.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 can be faster for small "
                   "models on a busy machine)")
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("eval", help="validation metrics of a run directory (loss and perplexity, exact match, ...)")
    s.add_argument("dir")
    s.add_argument("--batches", type=positive_int, default=None, help="at most this many batches (default: all)")
    s.add_argument("--data", metavar="PATH", help="score your own text instead (a .txt, a folder, a .jsonl / "
                   ".parquet / .csv with --text-column): loss, perplexity, bits per byte")
    s.add_argument("--text-column", default="text", help="the text column of a --data table")
    s.add_argument("--glob", default="**/*.txt", help="the files of a --data folder")
    s.add_argument("--block-size", type=positive_int, default=None,
                   help="tokens per scored window (default: max_positions)")
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
    s.add_argument("--steps", type=positive_int,
                   help="training steps of each run (experiments that train; default: theirs)")
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
