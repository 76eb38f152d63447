"""`genzoo eval RUN --data FILE`: how well a model predicts the user's text. A causal LM is scored on every token
of the file (the text read as training reads it: documents joined by end-of-text, cut into windows of block_size
tokens, each scored from its start, no token counted twice): the mean next-token loss, perplexity = exp(loss), and
bits per byte = total loss / (ln 2 * UTF-8 bytes of the text), which does not depend on the tokenizer and so
compares models with different vocabularies. An encoder with a masked-LM head is scored on 15% of the tokens
masked with a fixed seed (the masked-token loss and its perplexity)."""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F

from ..errors import ConfigError


def text_tokens(path: str, tokenizer, column: str, glob: str) -> tuple[torch.Tensor, int]:
    """All the text of a source as one token stream (pieces joined by the end-of-text token), and its UTF-8 bytes."""
    from ..data import open_source

    source = open_source(path, glob)
    source.check_columns([column], ["text_column"])
    out: list[int] = []
    n_bytes, prev = 0, None
    eos = tokenizer.eos_id
    for piece in source.pieces(column):
        if prev is not None and eos is not None and not (piece.joined and prev == (piece.file, piece.index - 1)):
            out.append(eos)
        out.extend(tokenizer.encode(piece.text))
        n_bytes += len(piece.text.encode("utf-8"))
        prev = (piece.file, piece.index)
    if len(out) < 2:
        raise ConfigError(f"--data {path!r}: fewer than two tokens of text")
    return torch.tensor(out, dtype=torch.long), n_bytes


@torch.no_grad()
def causal_nll(model, tokens: torch.Tensor, block_size: int, batch_size: int) -> tuple[float, int]:
    """(summed next-token loss in nats, tokens predicted) over non-overlapping windows: window w holds tokens
    [w*B, w*B + B] and predicts tokens w*B+1 .. w*B+B, so every token but the first is predicted once."""
    starts = list(range(0, tokens.numel() - 1, block_size))
    total, count = 0.0, 0
    for i in range(0, len(starts), batch_size):
        rows = [tokens[s: s + block_size + 1] for s in starts[i:i + batch_size]]
        n = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), n, dtype=torch.long)
        mask = torch.zeros(len(rows), n, dtype=torch.long)
        for j, r in enumerate(rows):
            ids[j, : len(r)], mask[j, : len(r)] = r, 1
        logits = model(ids[:, :-1], attention_mask=mask[:, :-1]).logits.float()  # (B, T, V)
        target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        total += F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=-100, reduction="sum").item()
        count += int((target != -100).sum())
    return total, count


@torch.no_grad()
def masked_nll(model, tokenizer, tokens: torch.Tensor, block_size: int, batch_size: int) -> tuple[float, int]:
    from .mlm_task import mask_tokens

    mask_id = tokenizer.tok.token_to_id("[MASK]")
    if mask_id is None:
        raise ConfigError("genzoo eval --data: the encoder's tokenizer has no [MASK] token")
    n = tokens.numel() // block_size
    blocks = tokens[: n * block_size].view(n, block_size) if n else tokens[None]
    g = torch.Generator().manual_seed(0)
    total, count = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        inputs, labels = mask_tokens(blocks[i:i + batch_size], 0.15, mask_id, tokenizer.vocab_size, g)
        logits = model(inputs).logits.float()
        total += F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum").item()
        count += int((labels != -100).sum())
    return total, max(count, 1)


def evaluate_file(path: str | os.PathLike, data: str, *, block_size: int | None = None, batch_size: int = 8,
                  text_column: str = "text", glob: str = "**/*.txt") -> dict:
    """Loss, perplexity and bits per byte of the model at `path` (a run or HF directory) on the text of `data`."""
    import genzoo
    from ..rundir import resolve_checkpoint_dir
    from ..tokenizers import Tokenizer

    directory = resolve_checkpoint_dir(path)
    model = genzoo.load(directory)
    tokenizer = Tokenizer.from_dir(directory)
    tokens, n_bytes = text_tokens(data, tokenizer, text_column, glob)
    limit = model.config.max_positions
    block = min(block_size or limit, limit)
    if block_size is not None and block_size > limit:
        raise ConfigError(f"--block-size {block_size} is longer than the model's max_positions={limit}")
    genre = model.config.genre
    if genre == "decoder":
        total, count = causal_nll(model, tokens, block, batch_size)
        loss = total / count
        return {"dir": str(directory), "tokens": count, "bytes": n_bytes, "loss": loss,
                "ppl": math.exp(min(loss, 50.0)), "bits_per_byte": total / (math.log(2) * n_bytes)}
    if genre == "encoder" and getattr(model, "mlm", None) is not None:
        total, count = masked_nll(model, tokenizer, tokens, block, batch_size)
        loss = total / count
        return {"dir": str(directory), "masked_tokens": count, "mlm_loss": loss, "mlm_ppl": math.exp(min(loss, 50.0))}
    raise ConfigError(f"genzoo eval --data scores causal LMs and masked-LM encoders; {directory} holds a "
                      f"{type(model).__name__}")
