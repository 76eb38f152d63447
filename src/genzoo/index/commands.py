"""`genzoo index build | add | delete | query | info`: the command-line side of genzoo.index (cli.py parses)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import ConfigError, InputError


def parse_where(items: list[str] | None) -> dict | None:
    """["key=value", ...] -> {key: value}; a value that reads as a JSON number, boolean or null is one
    (year=2020 matches the number 2020; year='"2020"' the string)."""
    if not items:
        return None
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(f"--where {item!r} is invalid: KEY=VALUE")
        try:
            value = json.loads(raw)
            if isinstance(value, (list, dict)):
                value = raw
        except json.JSONDecodeError:
            value = raw
        out[key] = value
    return out


def parse_params(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not raw.lstrip("-").isdigit():
            raise ConfigError(f"--param {item!r} is invalid: KEY=INTEGER, e.g. ef_search=128")
        out[key] = int(raw)
    return out


def _source(args):
    from .sources import read_source

    return read_source(args.source, glob=args.glob, id_field=args.id_field, text_field=args.text_field)


def build(args) -> int:
    from ..interop.atomic import atomic_dir
    from .embedder import Embedder
    from .index import Index

    out = Path(args.out)
    if out.exists():
        raise ConfigError(f"{out} already exists; add to it with `genzoo index add`, or choose another --out")
    params = parse_params(args.param)
    docs = _source(args)  # bad input fails here, before the model is loaded
    embedder = Embedder.load(args.model, batch_size=args.batch_size)
    with atomic_dir(out) as tmp:  # a failed or killed build leaves no index behind
        idx = Index.create(tmp, embedder, backend=args.backend, kind=args.kind, chunk=args.chunk,
                           overlap=args.overlap, url=args.url, collection=args.collection, **params)
        stats = idx.add(docs, progress=not args.no_progress)
        recall = idx.measure_recall(k=10) if idx.manifest["kind"] != "flat" else None
        idx.close()
    print(f"built {out}: {stats['documents']} documents, {stats['chunks']} chunks of <= {args.chunk} tokens "
          f"(overlap {args.overlap}), model {args.model} (dim {embedder.dim}), {args.backend} {args.kind}; "
          f"{stats['chunks_per_second']:.1f} chunks/s")
    if recall is not None:
        print(f"recall@10 of {args.kind} against exact search: {recall['recall']:.4f} ({recall['queries']} queries "
              "between stored vectors)")
    return 0


def add(args) -> int:
    from .index import Index

    docs = _source(args)
    with Index.open(args.index) as idx:
        idx.embedder.batch_size = args.batch_size
        stats = idx.add(docs, upsert=args.upsert, progress=not args.no_progress)
        n_docs, n_chunks = idx.backend.counts()
    verb = "upserted" if args.upsert else "added"
    print(f"{verb} {stats['documents']} documents ({stats['chunks']} chunks) to {args.index}; it holds {n_docs} "
          f"documents, {n_chunks} chunks")
    return 0


def delete(args) -> int:
    from .index import Index

    with Index.open(args.index) as idx:
        n = idx.delete(args.id)
    print(f"deleted {n} chunks of {len(args.id)} document id(s) from {args.index}")
    return 0


def query(args) -> int:
    from .embedder import Embedder
    from .index import Index

    embedder = Embedder.load(args.model) if args.model else None
    idx = Index.open(args.index, embedder=embedder, readonly=True)
    try:
        results = idx.query(args.text, k=args.k, where=parse_where(args.where), exact=args.exact)
    finally:
        idx.close()
    for text, hits in zip(args.text, results):
        for rank, h in enumerate(hits, 1):
            print(json.dumps({"query": text, "rank": rank, **h.to_dict()}, ensure_ascii=False))
    return 0


def info(args) -> int:
    from .index import Index

    idx = Index.open(args.index, readonly=True)
    try:
        json.dump(idx.info(), sys.stdout, indent=1)
        print()
    finally:
        idx.close()
    return 0


COMMANDS = {"build": build, "add": add, "delete": delete, "query": query, "info": info}


def add_parsers(sub) -> None:
    """The `genzoo index` subcommands, on an argparse subparsers object."""
    from .backend import BACKENDS
    from .embedder import DEFAULT_MODEL

    def source_args(s):
        s.add_argument("source", help="a folder of text files, a .jsonl / .csv (id, text, metadata columns) or a file")
        s.add_argument("--glob", default="*", help="folder sources: file names to take (default: all text files)")
        s.add_argument("--id-field", default="id", help=".jsonl / .csv: the id column")
        s.add_argument("--text-field", default="text", help=".jsonl / .csv: the text column")
        s.add_argument("--batch-size", type=int, default=64, help="chunks per embedding batch")
        s.add_argument("--no-progress", action="store_true", help="no progress bar")

    s = sub.add_parser("build", help="a new index from a folder, .jsonl or .csv")
    source_args(s)
    s.add_argument("--out", required=True, help="the index directory to create")
    s.add_argument("--model", default=DEFAULT_MODEL, help=f"an encoder directory or {DEFAULT_MODEL!r} (default)")
    s.add_argument("--chunk", type=int, default=256, help="tokens per chunk (default 256)")
    s.add_argument("--overlap", type=int, default=32, help="tokens shared by consecutive chunks (default 32)")
    s.add_argument("--backend", default="faiss", choices=BACKENDS.names(), help="faiss (embedded, default) or qdrant")
    s.add_argument("--kind", default="flat", help="flat (exact, default), hnsw or ivf (approximate; faiss); "
                   "flat or hnsw (qdrant)")
    s.add_argument("--param", action="append", metavar="KEY=INT",
                   help="kind parameter: M, ef_construction, ef_search (hnsw); nlist, nprobe (ivf)")
    s.add_argument("--url", help="qdrant: a server URL (default: local mode inside the index directory)")
    s.add_argument("--collection", help="qdrant: the collection name (default genzoo)")
    s.set_defaults(index_fn=build)

    s = sub.add_parser("add", help="add documents to an index (--upsert replaces documents with the same id)")
    s.add_argument("index")
    source_args(s)
    s.add_argument("--upsert", action="store_true", help="replace documents whose id is in the index")
    s.set_defaults(index_fn=add)

    s = sub.add_parser("delete", help="remove documents by id")
    s.add_argument("index")
    s.add_argument("--id", action="append", required=True, help="a document id (repeatable)")
    s.set_defaults(index_fn=delete)

    s = sub.add_parser("query", help="the top-k chunks for a text, as JSON lines")
    s.add_argument("index")
    s.add_argument("--text", action="append", required=True, help="a query text (repeatable)")
    s.add_argument("-k", type=int, default=5, help="results per query (default 5)")
    s.add_argument("--where", action="append", metavar="KEY=VALUE", help="metadata filter (repeatable: all hold)")
    s.add_argument("--exact", action="store_true", help="exact search even on an approximate index")
    s.add_argument("--model", help="the query model (default: the index's own); another model is refused")
    s.set_defaults(index_fn=query)

    s = sub.add_parser("info", help="the index's model, backend, counts and files, as JSON")
    s.add_argument("index")
    s.set_defaults(index_fn=info)
