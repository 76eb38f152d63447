"""The sources' aligned top-k distributions over the fusion text, computed once and stored as safetensors shards.

  DIR/manifest.json              what the shards were computed from (text, target tokenizer and source hashes,
                                 top_k, alignment, shard size) and the per-source vocabulary overlap
  DIR/tokenizer.json             the target tokenizer
  DIR/target/shard-NNNNN.safetensors   input_ids (n, L) int32 (0-padded), length (n,), chars (n,)
  DIR/src-Q/shard-NNNNN.safetensors    ids (n, L-1, k) int32, probs (n, L-1, k) float32, ce (n,) float32 (nats
                                 per character), aligned_exact / aligned_mined (n, L-1) uint8 (non-fallback)

Resumable: each shard is written to a temporary file and renamed, and a later call skips the shards that exist
(the manifest must match, or it refuses). Memory-bounded: one source model and one shard of sequences at a time;
readers take rows with `safe_open(...).get_slice`, never a whole file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError, ConfigError
from ..interop.atomic import file_mode
from .align import ALIGNMENTS, aligned_source, map_distributions, vocab_map
from .chunks import Chunk
from .sources import fingerprint, load_source, score

MANIFEST = "manifest.json"
# 2: DTW on the surfaces with their spaces stripped and FuseLLM's tie order (`align.py`); version-1 shards hold
# other alignments and are refused, so a stale directory is rebuilt, never silently mixed or trained on
VERSION = 2
STALE = ("{where} holds shards of manifest version {old}, written by an older token alignment (this genzoo writes "
         "version {new}: DTW on the token surfaces with the spaces stripped, FuseLLM's tie order); remove {where} "
         "(or choose another directory) and run `genzoo fuse` again to rebuild them")


def _shard(directory: Path, part: str, s: int) -> Path:
    return directory / part / f"shard-{s:05d}.safetensors"


def _write(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    os.chmod(tmp, file_mode())  # safetensors writes 0600; every other file of a run gets the umask's mode
    os.replace(tmp, path)


def _atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def text_hash(chunks: list[Chunk]) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c.text.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def precompute(sources: list[str | os.PathLike], tokenizer, chunks: list[Chunk], out: str | os.PathLike, *,
               top_k: int = 10, align: str = "mined", shard_size: int = 256, max_len: int | None = None,
               progress: bool = True) -> dict:
    """Score `chunks` with every source, align the distributions onto the target tokens, write the shards.
    tokenizer: the target's `genzoo.tokenizers.Tokenizer` (the chunks' ids are its tokens); max_len: the row
    length L (default: the longest chunk). Returns the manifest."""
    from tqdm.auto import tqdm

    from .surface import special_ids, surfaces

    ALIGNMENTS.get(align)
    if not sources:
        raise ConfigError("FuseLLM needs at least one source (--source DIR)")
    if not chunks:
        raise ConfigError("no sequences to precompute on")
    out = Path(out)
    L = max_len or max(len(c.ids) for c in chunks)
    target_surfaces, target_special = surfaces(tokenizer), special_ids(tokenizer)
    # every check before any compute: each source loads, is a causal LM, and shares token strings with the target
    loaded = []
    for path in sources:
        src = load_source(path)
        vm = vocab_map(src.surfaces, target_surfaces, src.special, target_special)
        if vm.overlap == 0:
            raise ConfigError(f"source {str(path)!r} shares no token string with the target vocabulary "
                              f"({len(src.surfaces)} vs {len(target_surfaces)} tokens): there is nothing to align")
        loaded.append((src.path.resolve(), vm))
        del src
    tok_json = tokenizer.tok.to_str()
    manifest = {
        "version": VERSION, "top_k": top_k, "align": align, "shard_size": shard_size, "max_len": L,
        "n_sequences": len(chunks), "n_shards": -(-len(chunks) // shard_size), "text_sha256": text_hash(chunks),
        "tokenizer_sha256": hashlib.sha256(tok_json.encode()).hexdigest(),
        "sources": [{"path": str(p), "sha256": fingerprint(p), "overlap": vm.overlap,
                     "vocab_size": len(vm.exact)} for p, vm in loaded],
    }
    _check_or_start(out, manifest)
    tokenizer.save(out)
    n_shards = manifest["n_shards"]
    for s in range(n_shards):
        path = _shard(out, "target", s)
        if path.exists():
            continue
        part = chunks[s * shard_size: (s + 1) * shard_size]
        ids = torch.zeros(len(part), L, dtype=torch.int32)
        for r, c in enumerate(part):
            ids[r, : len(c.ids)] = torch.tensor(c.ids[:L], dtype=torch.int32)
        length = torch.tensor([min(len(c.ids), L) for c in part], dtype=torch.int32)
        chars = torch.tensor([sum(len(target_surfaces[t]) for t in c.ids[1:L]) for c in part], dtype=torch.int32)
        _write(path, {"input_ids": ids, "length": length, "chars": chars})
    for q, (src_path, vm) in enumerate(loaded):
        todo = [s for s in range(n_shards) if not _shard(out, f"src-{q}", s).exists()]
        if not todo:
            continue
        src = load_source(src_path)
        for s in tqdm(todo, desc=f"source {q} ({src_path.name})", disable=not progress, unit="shard"):
            part = chunks[s * shard_size: (s + 1) * shard_size]
            _write(_shard(out, f"src-{q}", s), _source_shard(src, vm, part, L, top_k, align, target_surfaces))
        del src
    manifest["complete"] = True
    _atomic_json(out / MANIFEST, manifest)
    return manifest


def _source_shard(src, vm, part: list[Chunk], L: int, top_k: int, align: str, target_surfaces) -> dict:
    n = len(part)
    ids = torch.zeros(n, L - 1, top_k, dtype=torch.int32)
    probs = torch.zeros(n, L - 1, top_k)
    flags = {m: torch.zeros(n, L - 1, dtype=torch.uint8) for m in ("exact", "mined")}
    ce = torch.zeros(n)
    for r, (c, sc) in enumerate(zip(part, score(src, [c.text for c in part], top_k))):
        t_ids = torch.tensor(c.ids[:L], dtype=torch.long)
        partner = aligned_source([target_surfaces[t] for t in c.ids[:L]], [src.surfaces[t] for t in sc.ids])
        s_ids = torch.tensor(sc.ids, dtype=torch.long)
        for mode in ("exact", "mined"):
            d_ids, d_probs, ok = map_distributions(partner, t_ids, s_ids, sc.topk_ids, sc.topk_probs,
                                                   vm.get(mode), vm.get(mode))
            flags[mode][r, : len(ok)] = ok.to(torch.uint8)
            if mode == align:
                ids[r, : len(ok)] = d_ids.to(torch.int32)
                probs[r, : len(ok)] = d_probs
        ce[r] = sc.ce_per_char
    return {"ids": ids, "probs": probs, "ce": ce, "aligned_exact": flags["exact"], "aligned_mined": flags["mined"]}


def _check_or_start(out: Path, manifest: dict) -> None:
    file = out / MANIFEST
    if file.exists():
        old = json.loads(file.read_text())
        if old.get("version") != VERSION:
            raise ConfigError(STALE.format(where=out, old=old.get("version"), new=VERSION))
        old.pop("complete", None)
        diff = [k for k in manifest if old.get(k) != manifest[k]]
        if diff:
            raise ConfigError(f"{out} holds shards computed for other {', '.join(diff)}; choose another directory "
                              "(or remove it) to precompute for these")
        return
    out.mkdir(parents=True, exist_ok=True)
    _atomic_json(file, {**manifest, "complete": False})


class FusionShards:
    """Read rows of a complete precomputed directory: `rows([i, j, ...])` -> a dict of batched tensors."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        file = self.dir / MANIFEST
        if not file.exists():
            raise CheckpointError(f"{self.dir}: no {MANIFEST}; precompute the sources' distributions first "
                                  "(`genzoo fuse --source DIR ... --target RECIPE --out DIR`)")
        self.manifest = json.loads(file.read_text())
        if self.manifest.get("version") != VERSION:
            raise CheckpointError(STALE.format(where=self.dir, old=self.manifest.get("version"), new=VERSION))
        if not self.manifest.get("complete"):
            raise CheckpointError(f"{self.dir}: the precomputation is incomplete; run `genzoo fuse` again to finish it")
        self.n = self.manifest["n_sequences"]
        self.n_sources = len(self.manifest["sources"])
        self._open: dict[Path, object] = {}

    def get(self, part: str, name: str, rows: list[int]) -> torch.Tensor:
        """Rows of one stored tensor: part "target" or "src-Q", name as in the module docstring."""
        size = self.manifest["shard_size"]
        out = []
        for i in rows:
            if not 0 <= i < self.n:
                raise IndexError(f"row {i} is outside 0..{self.n - 1}")
            path = _shard(self.dir, part, i // size)
            if path not in self._open:
                if not path.exists():
                    raise CheckpointError(f"{path}: missing shard")
                self._open[path] = safe_open(str(path), framework="pt")
            r = i % size
            out.append(self._open[path].get_slice(name)[r: r + 1])
        return torch.cat(out)

    def rows(self, rows: list[int], sources: bool = True) -> dict[str, torch.Tensor]:
        """input_ids (B, L) int64, length (B,), chars (B,); with sources: ids, probs (B, S, L-1, k), ce (B, S)."""
        batch = {"input_ids": self.get("target", "input_ids", rows).long(),
                 "length": self.get("target", "length", rows).long(),
                 "chars": self.get("target", "chars", rows).long()}
        if sources:
            parts = [f"src-{q}" for q in range(self.n_sources)]
            batch["ids"] = torch.stack([self.get(p, "ids", rows) for p in parts], 1).long()
            batch["probs"] = torch.stack([self.get(p, "probs", rows) for p in parts], 1)
            batch["ce"] = torch.stack([self.get(p, "ce", rows) for p in parts], 1)
        return batch

    def alignment_rates(self) -> list[dict]:
        """Per source: the share of target positions (those that predict a token) with a non-fallback mapping,
        for the exact-match and the MinED alignment."""
        rates = []
        for q in range(self.n_sources):
            got = {"exact": 0, "mined": 0}
            total = 0
            for s in range(self.manifest["n_shards"]):
                with safe_open(str(_shard(self.dir, "target", s)), framework="pt") as f:
                    length = f.get_tensor("length").long()
                real = torch.arange(self.manifest["max_len"] - 1)[None, :] < (length - 1)[:, None]  # (n, L-1)
                total += int(real.sum())
                with safe_open(str(_shard(self.dir, f"src-{q}", s)), framework="pt") as f:
                    for m in got:
                        got[m] += int((f.get_tensor(f"aligned_{m}").bool() & real).sum())
            rates.append({m: v / max(total, 1) for m, v in got.items()} | {"positions": total})
        return rates
