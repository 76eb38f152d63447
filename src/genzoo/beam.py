"""Beam search (deterministic), with the scoring, length penalty and stopping rules of `transformers`.

Each of the B inputs keeps K running hypotheses ("beams") and a list of K finished ones. At every step
(Sutskever et al. 2014; Wu et al. 2016 sec. 7 for the length penalty):

1. the running beams' accumulated log-probabilities are extended by every token: (B, K * V) candidates;
2. the best 2K candidates are kept (2K so that K survive even when K of them end in eos), in the order
   `torch.topk` gives;
3. a candidate that ends in eos, or reaches the length limit, is offered to the finished list with the score
   `sum log p / n ** length_penalty` (n = generated tokens, the eos included); the best K non-finished
   candidates become the running beams;
4. the search stops when every input's finished list cannot be beaten any more (`early_stopping=True`: as soon
   as it holds K hypotheses; False: when the best running beam, scored at its current length, is no better than
   the worst finished one), or at the length limit.

This is the vectorised algorithm of `transformers` >= 4.50 (`GenerationMixin._beam_search`): same candidate
order, same -1e9 masking, same tie-breaking, so the chosen tokens are identical. The model is reached through
two callbacks, so any causal or seq2seq model with a reorderable KV cache can use it.
"""

from __future__ import annotations

from typing import Callable

import torch

from .errors import InputError

NEG = -1.0e9  # what transformers adds to rule a candidate out


def check_beams(num_beams: int, length_penalty: float, early_stopping, do_sample: bool) -> None:
    if not (isinstance(num_beams, int) and num_beams >= 1):
        raise InputError(f"num_beams must be a positive integer, got {num_beams!r}")
    if not isinstance(length_penalty, (int, float)):
        raise InputError(f"length_penalty must be a number, got {length_penalty!r}")
    if early_stopping not in (True, False):
        raise InputError(f"early_stopping must be True or False, got {early_stopping!r}")
    if num_beams > 1 and do_sample:
        raise InputError("beam sampling (num_beams > 1 with do_sample=True) is not supported; use one or the other")


def _gather(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t (B, N, ...) gathered along dim 1 by idx (B, M) -> (B, M, ...)."""
    while idx.dim() < t.dim():
        idx = idx.unsqueeze(-1)
    return torch.take_along_dim(t, idx, dim=1)


def beam_search(
    step: Callable[[torch.Tensor], torch.Tensor],
    reorder: Callable[[torch.Tensor], None],
    prompt: torch.Tensor,
    num_beams: int,
    max_new_tokens: int,
    eos: torch.Tensor,
    fill: int,
    length_penalty: float = 1.0,
    early_stopping: bool = False,
    first_logits: torch.Tensor | None = None,
    num_return_sequences: int = 1,
) -> torch.Tensor:
    """Run beam search; return the best `num_return_sequences` hypotheses per input, best first,
    (B * num_return_sequences, P + N) with N <= max_new_tokens (shorter ones filled with `fill`).

    step(tokens (B*K,)) -> logits (B*K, V) for the next position, each row continuing its beam's cache;
    reorder(index (B*K,)) makes row r of every cache a copy of row index[r] (beams that survive, duplicated);
    prompt (B, P): the tokens every beam starts with (the decoder start token for seq2seq);
    eos (E,): token ids that end a hypothesis; fill: the id that pads hypotheses shorter than the longest;
    first_logits (B*K, V): the logits after the prompt, if the caller has computed them (a prefill).
    """
    b, p = prompt.shape
    k, device = num_beams, prompt.device
    total = p + max_new_tokens
    keep = max(2, 1 + len(eos)) * k  # candidates kept per step
    top_k_mask = torch.arange(keep, device=device) < k  # only the K best candidates may finish

    running = torch.full((b, k, total), fill, dtype=torch.long, device=device)
    running[:, :, :p] = prompt[:, None]
    finished_seqs = running.clone()
    running_scores = torch.zeros(b, k, device=device)
    running_scores[:, 1:] = NEG  # all beams start equal: extend only the first at the first step
    finished_scores = torch.full((b, k), NEG, device=device)
    finished_len = torch.zeros(b, k, dtype=torch.long, device=device)  # generated tokens of each finished one
    is_finished = torch.zeros(b, k, dtype=torch.bool, device=device)
    improvable = torch.ones(b, 1, dtype=torch.bool, device=device)
    offset = torch.arange(b, device=device)[:, None] * k  # (B, 1) beam -> row of the flat (B*K) batch

    cur = p
    logits = first_logits if first_logits is not None else step(running[:, :, p - 1].reshape(-1))
    while True:
        logp = torch.log_softmax(logits.float(), dim=-1)  # (B*K, V)
        v = logp.shape[-1]
        logp = (logp.view(b, k, v) + running_scores[:, :, None]).view(b, k * v)
        top_scores, top_idx = torch.topk(logp, keep)  # (B, 2K)
        src = top_idx // v  # (B, 2K) the beam each candidate extends
        cand = _gather(running, src)  # (B, 2K, total)
        cand[:, :, cur] = top_idx % v
        hits = torch.isin(cand[:, :, cur], eos) | (cur + 1 >= total)  # (B, 2K) ends here

        # the K best unfinished candidates run on
        run_scores = top_scores + hits.float() * NEG
        nxt = torch.topk(run_scores, k).indices  # (B, K)
        running, running_scores, parent = _gather(cand, nxt), _gather(run_scores, nxt), _gather(src, nxt)

        # finished candidates among the K best enter the finished list if they beat what it holds
        just = hits & top_k_mask[None]
        scored = top_scores / ((cur + 1 - p) ** length_penalty)
        scored = scored + (is_finished.all(-1, keepdim=True) & early_stopping).float() * NEG
        scored = scored + (~improvable).float() * NEG
        scored = scored + (~just) * NEG
        merged_scores = torch.cat([finished_scores, scored], dim=1)  # (B, 3K)
        best = torch.topk(merged_scores, k).indices
        finished_seqs = _gather(torch.cat([finished_seqs, cand], dim=1), best)
        finished_scores = _gather(merged_scores, best)
        finished_len = _gather(torch.cat([finished_len, torch.full_like(scored, cur + 1 - p, dtype=torch.long)], 1),
                               best)
        is_finished = _gather(torch.cat([is_finished, just], dim=1), best)

        cur += 1
        # can a running beam still beat the worst finished one? (transformers' default, early_stopping=False,
        # scores the best running beam at its current length)
        best_running = running_scores[:, :1] / ((cur - p) ** length_penalty)  # (B, 1)
        worst = torch.where(is_finished, finished_scores.min(dim=1, keepdim=True).values, NEG)  # (B, K)
        improvable = improvable & (best_running > worst).any(-1, keepdim=True)
        if not (bool(improvable.any()) and not (bool(is_finished.all()) and early_stopping) and not bool(hits.all())):
            break
        reorder((parent + offset).reshape(-1))
        logits = step(running[:, :, cur - 1].reshape(-1))

    n = num_return_sequences
    length = p + int(finished_len[:, :n].max())
    return finished_seqs[:, :n, :length].reshape(b * n, length)  # (B * n, P + N): input i's best n, in order
