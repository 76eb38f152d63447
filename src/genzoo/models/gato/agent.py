"""Gato as a policy (arXiv 2205.06175, sec. 3 "Deployment", fig. 3): the context starts with a prompt (a
demonstration of the same task); each observation is tokenised and appended with the separator, then the action is
decoded one token at a time (one token per action dimension, as the environment's action spec says), each token fed
back before the next. The context holds at most the model's `max_positions` tokens: when the next timestep would
not fit, it is rebuilt as the prompt plus the most recent whole timesteps (half as many as fit, so that the
following timesteps go through the cache again).

A continuous action dimension is decoded as its expected value (`continuous="mean"`, the default): the sum of
each bin's probability times the bin's action value (its mu-law centre, clipped to the action space), then fed
back as the token of that value. The most likely bin (`continuous="mode"`) is a poor point estimate for a
1024-way distribution over an ordered range: a small policy spreads the mass of a value over many neighbouring
bins, and a bin that holds many labels on its own (the torque limit, where a clipped expert sits) wins the argmax
against a larger mass spread next to it. On Pendulum-v1 the mode chose the torque limit at the first step and then
again at every step (the generalist's return -1,390, random's -1,181); the mean of the same checkpoint returns -857
(normalised score -0.20 -> 0.32).

A `StaticKVCache` makes each step one forward over the new tokens (the previous action's last token, the new
observation and the separator) plus one single-token forward per further action dimension. B environments run
in lockstep (one row each), so every row has the same token layout and the cache stays rectangular.
"""

from __future__ import annotations

import contextlib

import torch

from ...errors import ConfigError, InputError
from ...modes import evaluating
from .sequence import ControlSpec, Tokens, decode_actions, lookup_tokens, observation_tokens
from .tokens import CONTINUOUS, DISCRETE

CONTINUOUS_DECODES = ("mean", "mode")


def expected_value_ids(scores: torch.Tensor, values: torch.Tensor, vocab) -> torch.Tensor:
    """Scores (B, bins) over the continuous-value tokens and each bin's action value (bins,) -> the token id (B,) of
    the expected value sum_i softmax(scores)_i values_i (mu-law encoded and discretised again)."""
    mean = scores.float().softmax(-1) @ values.to(scores.device, torch.float32)  # (B,)
    return vocab.continuous(mean.cpu()).to(scores.device)


class GatoAgent:
    def __init__(self, model, spec: ControlSpec, prompt: Tokens | None = None, *, greedy: bool = True,
                 temperature: float = 1.0, generator: torch.Generator | None = None, record: bool = False,
                 continuous: str = "mean"):
        """prompt: a demonstration (P,) put at the start of every context. greedy: a point estimate of the action
        (else a token sampled at `temperature`). continuous: the greedy point estimate of a continuous action
        dimension, "mean" (the expected value over the bins' values) or "mode" (the most likely bin); a discrete
        action is always its most likely token. record: keep the logits each action token was chosen from (tests)."""
        if continuous not in CONTINUOUS_DECODES:
            raise ConfigError(f"continuous={continuous!r} is not a decoding of continuous actions; known: "
                              f"{', '.join(CONTINUOUS_DECODES)}")
        self.model, self.spec, self.layout = model, spec, model.config.layout
        self.max_len = model.config.max_positions
        self.step_tokens = spec.step_tokens(self.layout.patch)
        if prompt is not None and len(prompt) + self.step_tokens > self.max_len:
            raise InputError(f"a prompt of {len(prompt)} tokens leaves no room for a timestep of {self.step_tokens} "
                             f"in the context of {self.max_len}")
        if spec.observation == "image" and spec.obs_shape[0] != self.layout.channels:
            raise InputError(f"{spec.name}: observations have {spec.obs_shape[0]} channels; the model's images "
                             f"have {self.layout.channels}")
        self.prompt = prompt
        self.greedy, self.temperature, self.generator = greedy, temperature, generator
        vocab = self.layout.vocab
        lo, n = ((vocab.discrete_offset, spec.n_actions) if spec.action == "discrete"
                 else (vocab.continuous_offset, vocab.bins))
        self.allowed = (lo, lo + n)  # the action's token ids [lo, hi)
        self.continuous = continuous
        if spec.action == "continuous":  # each bin's action value per dimension, clipped to the space (A, bins)
            centres = vocab.continuous_values(torch.arange(lo, lo + n))  # (bins,)
            self.values = torch.stack([centres.clamp(a, b) for a, b in zip(spec.action_low, spec.action_high)])
        self.record, self.logits = record, []
        self.reset(1)

    def reset(self, batch: int) -> None:
        """Start new episodes in `batch` environments."""
        self.batch = batch
        self.cache = None
        self.fed: Tokens | None = None  # the tokens the cache holds
        self.pending: Tokens | None = None  # the last action token, fed with the next observation
        self.history: list[Tokens] = []  # whole timesteps (B, step), most recent last
        self.logits = []

    @property
    def context(self) -> Tokens:
        """The agent's context: what the cache holds and the pending last action token (B, L)."""
        return self.fed if self.pending is None else Tokens.cat([self.fed, self.pending])

    def _choose(self, logits: torch.Tensor, dim: int) -> torch.Tensor:
        """logits (B, V) of action dimension `dim` -> token ids (B,) among the action's allowed ids."""
        lo, hi = self.allowed
        scores = logits[:, lo:hi].float()  # (B, n)
        if self.record:
            self.logits.append(logits.detach().clone())
        if self.greedy and self.spec.action == "continuous" and self.continuous == "mean":
            return expected_value_ids(scores, self.values[dim], self.layout.vocab)
        if self.greedy:
            return scores.argmax(-1) + lo
        probs = (scores / self.temperature).softmax(-1)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(1) + lo

    def _rebuild(self, obs_tokens: Tokens) -> Tokens:
        """A fresh context: the prompt, the most recent whole timesteps (half of what fits), the new observation."""
        room = self.max_len - (len(self.prompt) if self.prompt is not None else 0) - len(obs_tokens) \
            - (self.spec.action_tokens - 1)
        keep = max(0, room // self.step_tokens + 1) // 2  # half of what fits: the next rebuild is steps away
        parts = [] if self.prompt is None else [self.prompt.expand(self.batch)]
        parts += self.history[len(self.history) - keep:] if keep else []
        self.history = self.history[len(self.history) - keep:] if keep else []
        return Tokens.cat(parts + [obs_tokens])

    @torch.no_grad()
    def act(self, obs) -> torch.Tensor:
        """Observations (B, *obs_shape) -> actions: (B,) integers or (B, A) values inside the action space."""
        obs = torch.as_tensor(obs)
        if obs.shape[0] != self.batch:
            raise InputError(f"{self.spec.name}: {obs.shape[0]} observations for {self.batch} environments "
                             "(agent.reset(batch))")
        model = self.model
        device = model.lm_head.weight.device
        obs_tok = observation_tokens(obs, self.spec, self.layout)  # (B, n_obs + 1)
        with evaluating(model) if model.training else contextlib.nullcontext(model) as net:
            new = obs_tok if self.pending is None else Tokens.cat([self.pending, obs_tok])
            if self.cache is None or self.cache.length + len(new) + self.spec.action_tokens - 1 > self.max_len:
                new = self._rebuild(obs_tok)
                self.cache, self.fed = net.make_cache(self.batch, self.max_len), None
            self.fed = new if self.fed is None else Tokens.cat([self.fed, new])
            logits = net(new.to(device), cache=self.cache, logits_to_keep=1, check=False).logits[:, -1]  # (B, V)
            ids = []
            for j in range(self.spec.action_tokens):  # one token per action dimension
                tok = self._choose(logits, j)  # (B,)
                ids.append(tok)
                token = self._action_token(tok)  # (B, 1)
                if j < self.spec.action_tokens - 1:
                    self.fed = Tokens.cat([self.fed, token])
                    logits = net(token.to(device), cache=self.cache, check=False).logits[:, -1]
                else:
                    self.pending = token  # fed with the next observation
        ids = torch.stack(ids, dim=1).cpu()  # (B, A)
        self.history.append(Tokens.cat([obs_tok, self._action_token(ids)]))
        self.history = self.history[-(self.max_len // self.step_tokens + 1):]
        return decode_actions(ids, self.spec, self.layout.vocab)

    def _action_token(self, ids: torch.Tensor) -> Tokens:
        """Chosen action token ids (B,) or (B, k) -> their tokens: targets of the spec's action kind."""
        ids = ids.reshape(self.batch, -1).cpu()  # (B, k)
        kind = DISCRETE if self.spec.action == "discrete" else CONTINUOUS
        return lookup_tokens(ids, torch.full_like(ids, kind), torch.ones_like(ids, dtype=torch.bool),
                             self.layout.patch_dim)
