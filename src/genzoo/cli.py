"""The `genzoo` command. Every error is one line on stderr and a non-zero exit status."""

from __future__ import annotations

import argparse
import inspect
import os
import sys


class ArgumentError(Exception):
    pass


QUANTIZE = ("int8", "int8-weight", "int4-weight", "bf16")  # genzoo.quant schemes that need no calibration


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

    sets = list(args.set or [])
    if args.data:  # the user's data and checkpoint: absolute, so that a resume from elsewhere finds them
        sets.append(f"data.source={os.path.abspath(args.data)}")
    if args.init:
        sets.append(f"init={os.path.abspath(args.init)}")
    recipe = load_recipe(args.recipe, sets)
    if args.no_progress:
        recipe.progress = False
    out = args.out or os.path.join("runs", recipe.name or args.recipe)
    result = train(recipe, out, resume=args.resume, steps=args.steps)
    if int(os.environ.get("RANK", "0")) == 0:
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
        return generate_points(model, args)
    if args.quantize:
        model = genzoo.quantize(model, args.quantize)
    tok = Tokenizer.load(args.dir)
    if args.retrieve:  # retrieval-augmented: the index's top-k passages go into the prompt
        args.prompt = retrieved_prompt(args, tok, model.config.max_positions - args.max_new_tokens)
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
    if args.repetition_penalty != 1.0 or args.min_new_tokens or args.stop:
        extra.update(repetition_penalty=args.repetition_penalty, min_new_tokens=args.min_new_tokens)
        if args.stop:
            extra.update(stop=args.stop, tokenizer=tok)
    causal = hasattr(model, "make_cache")
    stream = args.num_samples == 1 and args.num_beams == 1 and not args.no_stream
    if stream:  # print tokens as they come (a causal LM echoes the prompt first)
        extra["streamer"] = TextStreamer(tok, skip_prompt=not causal)
    out = model.generate(
        prompt, max_new_tokens=min(args.max_new_tokens, model.config.max_positions - len(ids)),
        do_sample=sample, temperature=args.temperature if sample else 1.0, top_k=args.top_k, top_p=args.top_p,
        eos_token_id=tok.eos_id, seed=args.seed, **extra,
    )
    if not stream:
        for i, row in enumerate(out.tolist()):
            if args.num_samples > 1:
                print(f"--- sample {i + 1} ---")
            print(tok.decode(row))
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
    s.add_argument("--steps", type=int, help="number of optimizer steps (overrides the recipe)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set lr=1e-3 --set model.n_layers=6 (repeatable)")
    s.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    s.add_argument("--data", metavar="PATH", help="train on your own data: a folder of text files (data.glob), a "
                   ".txt, or a .jsonl / .parquet / .csv table (columns: data.text_column, ...); sets data.source")
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
    s.add_argument("--steps", type=int, help="number of optimizer steps (overrides the recipe)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set fuse.method=avg-ce --set fuse.lam=0.8 (repeatable)")
    s.add_argument("--resume", action="store_true", help="continue the training from OUT's latest checkpoint "
                   "(the precomputation always continues where it stopped)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.set_defaults(fn=cmd_fuse)

    s = sub.add_parser("generate", help="generate text from a run or Hugging Face directory, or a GGUF file; "
                       "a point cloud (.ply) from a Point-E run")
    s.add_argument("dir", help="a run directory, a Hugging Face-format model directory or a .gguf file")
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
    s.add_argument("--retrieve", metavar="INDEX", help="put the top -k passages of this genzoo index into the prompt")
    s.add_argument("-k", "--retrieve-k", type=int, default=3, help="--retrieve: passages (default 3)")
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
    s.add_argument("--out", metavar="FILE.ply", help="Point-E runs: the point cloud to write (PNGs of the view and "
                   "of the cloud go beside it)")
    s.add_argument("--guidance-scale", type=float, default=3.0, help="Point-E runs: classifier-free guidance scale")
    s.add_argument("--image-steps", type=int, default=25, help="Point-E runs: text-to-image DDIM steps")
    s.add_argument("--point-steps", type=int, default=32, help="Point-E runs: coarse cloud Karras/Heun steps")
    s.add_argument("--upsample-steps", type=int, default=16, help="Point-E runs: upsampler Karras/Heun steps")
    s.add_argument("--route", choices=("image", "text"), default="image", help="Point-E runs: text -> view -> "
                   "points (image, Point-E) or the text-conditioned point model (text, the baseline)")
    s.set_defaults(fn=cmd_generate)

    s = sub.add_parser("chat", help="chat with a causal LM through its chat template (HF directory or GGUF file)")
    s.add_argument("path", help="a model directory with a chat template, or a .gguf file")
    s.add_argument("--message", action="append", metavar="TEXT",
                   help="a user message (repeatable: a conversation); without it, read messages from stdin")
    s.add_argument("--system", help="a system message")
    s.add_argument("--max-new-tokens", type=int, default=256)
    s.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy decoding")
    s.add_argument("--top-k", type=int, default=None)
    s.add_argument("--top-p", type=float, default=None)
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
    s.add_argument("--batches", type=int, default=None, help="at most this many batches (default: all)")
    s.add_argument("--data", metavar="PATH", help="score your own text instead (a .txt, a folder, a .jsonl / "
                   ".parquet / .csv with --text-column): loss, perplexity, bits per byte")
    s.add_argument("--text-column", default="text", help="the text column of a --data table")
    s.add_argument("--glob", default="**/*.txt", help="the files of a --data folder")
    s.add_argument("--block-size", type=int, default=None, help="tokens per scored window (default: max_positions)")
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("bench", help="benchmark genzoo against the reference implementation")
    s.add_argument("name", help="a benchmark name (see `genzoo list`)")
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("experiment", help="run a paper's experiment; writes report.md, figures, results.json")
    s.add_argument("name", help="an experiment name (see `genzoo list`)")
    s.add_argument("--out", help="output directory (default runs/experiments/NAME)")
    s.add_argument("--steps", type=int, help="training steps of each run (experiments that train; default: theirs)")
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
