"""Autoregressive generation: greedy, temperature, top-k, top-p, eos stop, batches of prompts of different
lengths (left padding), reproducible seeded sampling, an optional compiled decoding step.

One decoding loop (`decode`) serves causal LMs (`GenerationMixin.generate`) and encoder-decoders
(`Seq2SeqLM.generate`); only the step differs. For a causal LM the prompt is prefilled in one forward pass
that writes a static KV cache; each new token then costs one forward of a single position through that
cache. Returns what `transformers` returns for the same call: the prompt (the decoder start token for
seq2seq) followed by the new tokens, finished rows filled with the pad token, stopping early once every row
has produced eos.
"""

from __future__ import annotations

import functools

import torch

from .errors import InputError
from .modes import evaluating


def warp_logits(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Temperature, then top-k, then top-p (nucleus, Holtzman et al. 2020) filtering, in the order and
    with the tie rules of `transformers`' logits warpers. logits: (B, V) -> (B, V)."""
    if temperature != 1.0:
        logits = logits / temperature
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cum <= (1 - top_p)
        remove[..., -1] = False  # keep at least the most likely token
        logits = logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    return logits


def next_tokens(scores: torch.Tensor, finished: torch.Tensor, eos: torch.Tensor, pad: int, do_sample: bool,
                temperature: float, top_k: int | None, top_p: float | None, generator) -> torch.Tensor:
    """One decoding step: tokens (B,) from scores (B, V), greedy or sampled. Rows already finished get the pad
    token; rows that emit an eos token are marked in `finished` (in place)."""
    if do_sample:
        probs = warp_logits(scores, temperature, top_k, top_p).softmax(dim=-1)
        tok = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B,)
    else:
        tok = scores.argmax(dim=-1)  # (B,)
    if len(eos):
        tok = torch.where(finished, torch.full_like(tok, pad), tok)
        finished |= torch.isin(tok, eos)
    return tok


def check_sampling(temperature: float, top_k: int | None, top_p: float | None, max_new_tokens: int) -> None:
    if not (isinstance(max_new_tokens, int) and max_new_tokens > 0):
        raise InputError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if not (isinstance(temperature, (int, float)) and 0 < temperature < float("inf")):
        raise InputError(f"temperature must be > 0 and finite, got {temperature!r} (greedy: do_sample=False)")
    if top_k is not None and not (isinstance(top_k, int) and top_k > 0):
        raise InputError(f"top_k must be a positive integer or None, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise InputError(f"top_p must be in (0, 1], got {top_p!r}")


def eos_ids(eos_token_id: int | list[int] | None, device) -> torch.Tensor:
    """The stop tokens as a (K,) tensor (K = 0: no stop token)."""
    ids = [] if eos_token_id is None else [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    return torch.tensor(ids, dtype=torch.long, device=device)


def decode(step, logits: torch.Tensor, out: torch.Tensor, t: int, max_new_tokens: int, eos: torch.Tensor, pad: int,
           do_sample: bool, temperature: float, top_k: int | None, top_p: float | None, generator) -> torch.Tensor:
    """The decoding loop. logits (B, V): the scores for position t; out (B, t + max_new_tokens) holds the t tokens
    so far; step(tok (B,)) runs the model on the chosen tokens and returns the scores that follow (B, V).
    Returns out up to the last position written: every row finished (eos) or max_new_tokens reached."""
    finished = torch.zeros(out.shape[0], dtype=torch.bool, device=out.device)
    for i in range(max_new_tokens):
        tok = next_tokens(logits.float(), finished, eos, pad, do_sample, temperature, top_k, top_p, generator)
        out[:, t + i] = tok
        if (len(eos) and bool(finished.all())) or i == max_new_tokens - 1:
            return out[:, : t + i + 1]
        logits = step(tok)
    return out


def inference(fn):
    """Run `fn` under `torch.inference_mode` (no autograd bookkeeping: no version counters or view tracking per
    op, a visible share of a decoding step at batch 1) and clone the tensor it returns out of it, so callers get
    an ordinary tensor that a training step may use."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.inference_mode():
            out = fn(*args, **kwargs)
        return out.clone()

    return wrapper


def _call(model, *args, **kwargs):
    return model(*args, **kwargs)


@functools.cache
def compiled_step():
    """`model(...)` through torch.compile (inductor), shapes dynamic: one compilation serves every cache length of
    a model, and one more every batch size above 1; another model, dtype or device is a guard miss that compiles
    once more (up to torch._dynamo's cache size limit, 8 by default; past it the step runs eagerly, with torch's
    warning). Built on first use, so importing genzoo does not import the compiler."""
    return torch.compile(_call, dynamic=True)


class GenerationMixin:
    """Adds `generate` to a causal LM that has `check_inputs`, `make_cache` and a cache-aware forward."""

    @inference
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_token_id: int | list[int] | None = None,
        pad_token_id: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        compile: bool = False,
    ) -> torch.Tensor:
        """input_ids (B, T), left-padded where attention_mask (B, T) is 0 -> (B, T + N), N <= max_new_tokens.

        compile: run the single-token decoding step through torch.compile (`compiled_step`): elementwise ops
        fused into generated kernels, no Python between them. The first call with a model compiles it (tens of
        seconds on a 2-core CPU), later calls reuse it; the prompt's forward stays eager."""
        check_sampling(temperature, top_k, top_p, max_new_tokens)
        self.check_inputs(input_ids, attention_mask)
        b, t = input_ids.shape
        total = t + max_new_tokens
        if total > self.config.max_positions:
            raise InputError(
                f"prompt length {t} + max_new_tokens {max_new_tokens} = {total} exceeds "
                f"max_positions={self.config.max_positions}"
            )
        device = input_ids.device
        if do_sample and generator is None and seed is not None:
            generator = torch.Generator(device=device).manual_seed(seed)
        eos = eos_ids(eos_token_id, device)
        pad = pad_token_id if pad_token_id is not None else (int(eos[0]) if len(eos) else 0)

        padded = attention_mask is not None and not bool(attention_mask.all())
        position_ids = None
        if padded:  # positions count real tokens only: a padded row sees what it would see alone
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
        with evaluating(self):
            cache = self.make_cache(b, total, key_valid=attention_mask if padded else None)
            out = input_ids.new_empty(b, total)
            out[:, :t] = input_ids
            logits = self(input_ids, position_ids=position_ids, cache=cache, logits_to_keep=1, check=False).logits
            model = functools.partial(compiled_step(), self) if compile else self
            next_pos = position_ids[:, -1:] + 1 if padded else None  # (B, 1), advanced by each step

            def step(tok):  # (B,) -> (B, V)
                nonlocal next_pos
                logits = model(tok[:, None], position_ids=next_pos, cache=cache, logits_to_keep=1, check=False).logits
                if padded:
                    next_pos = next_pos + 1
                return logits[:, -1]

            return decode(step, logits[:, -1], out, t, max_new_tokens, eos, pad, do_sample, temperature, top_k,
                          top_p, generator)
