"""Gato's sequences (arXiv 2205.06175, sec. 2.1 "sequence ordering" and sec. 2.3 "training"): a flat run of
tokens of every kind, and the mask of the tokens the loss is taken on.

An agent timestep is its observation tokens, the separator `|`, then its action tokens; episodes follow one
another in timestep order. A caption is an image's patches, then its text. `Tokens` holds a sequence as parallel
tensors over the time axis (the last axis of `ids`), so slicing, packing and batching are tensor operations:

    ids      (..., T)     token id of lookup positions (text, values, separator); 0 at image positions
    kinds    (..., T)     tokens.TEXT / DISCRETE / CONTINUOUS / IMAGE / SEPARATOR
    patches  (..., T, F)  the normalised pixels of image positions, F = C * P * P (zeros elsewhere)
    rows     (..., T, 2)  an image patch's quantised row interval [from, to) (zeros elsewhere)
    cols     (..., T, 2)  its column interval
    local    (..., T)     the local observation position: the index of a token within its timestep's
                          observation (sec. 2.2, appendix C.3), -1 for tokens that are not observations
    target   (..., T)     the loss mask (sec. 2.3): True for text and action tokens, False for observations,
                          separators and image patches (context only)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from ...errors import InputError
from .tokens import (CONTINUOUS, DISCRETE, IMAGE, POSITION_BINS, SEPARATOR, TEXT, Vocab, normalise_patches,
                     patch_intervals, patchify)


@dataclass
class Tokens:
    ids: torch.Tensor
    kinds: torch.Tensor
    patches: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    local: torch.Tensor
    target: torch.Tensor

    def __len__(self) -> int:
        return self.ids.shape[-1]

    def _map(self, f) -> "Tokens":
        return Tokens(**{f_.name: f(getattr(self, f_.name)) for f_ in fields(self)})

    def window(self, start: int, stop: int) -> "Tokens":
        """Positions [start, stop) of the time axis."""
        return Tokens(ids=self.ids[..., start:stop], kinds=self.kinds[..., start:stop],
                      patches=self.patches[..., start:stop, :], rows=self.rows[..., start:stop, :],
                      cols=self.cols[..., start:stop, :], local=self.local[..., start:stop],
                      target=self.target[..., start:stop])

    def batch_slice(self, start: int, stop: int) -> "Tokens":
        """Rows [start, stop) of a batch (B, T)."""
        return self._map(lambda t: t[start:stop])

    def row(self, i: int) -> "Tokens":
        """Row i of a batch (B, T) -> (T,)."""
        return self._map(lambda t: t[i])

    def to(self, device) -> "Tokens":
        return self._map(lambda t: t.to(device))

    def expand(self, batch: int) -> "Tokens":
        """One unbatched sequence (T,) repeated as a batch (B, T)."""
        return self._map(lambda t: t.unsqueeze(0).expand(batch, *t.shape).contiguous())

    @property
    def patch_dim(self) -> int:
        return self.patches.shape[-1]

    @staticmethod
    def cat(parts: list["Tokens"]) -> "Tokens":
        """Concatenate along the time axis."""
        return Tokens(ids=torch.cat([p.ids for p in parts], -1), kinds=torch.cat([p.kinds for p in parts], -1),
                      patches=torch.cat([p.patches for p in parts], -2), rows=torch.cat([p.rows for p in parts], -2),
                      cols=torch.cat([p.cols for p in parts], -2), local=torch.cat([p.local for p in parts], -1),
                      target=torch.cat([p.target for p in parts], -1))

    @staticmethod
    def stack(rows: list["Tokens"]) -> "Tokens":
        """Sequences of one length (T,) -> a batch (B, T)."""
        return Tokens(**{f.name: torch.stack([getattr(r, f.name) for r in rows]) for f in fields(Tokens)})


@dataclass(frozen=True)
class Layout:
    """What a model's sequences are made with: its joint vocabulary, patch size, image channels and quantised
    patch positions (`GatoConfig.layout`)."""

    vocab: Vocab
    patch: int = 4
    channels: int = 1
    position_bins: int = POSITION_BINS

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patch * self.patch


def lookup_tokens(ids: torch.Tensor, kinds: torch.Tensor, target: torch.Tensor, patch_dim: int,
                  local: torch.Tensor | None = None) -> Tokens:
    """Tokens of the lookup kinds (text, values, separator): ids, kinds, target (..., T)."""
    shape = ids.shape
    return Tokens(ids=ids.long(), kinds=kinds.long(), patches=torch.zeros(*shape, patch_dim),
                  rows=torch.zeros(*shape, 2, dtype=torch.long), cols=torch.zeros(*shape, 2, dtype=torch.long),
                  local=torch.full(shape, -1, dtype=torch.long) if local is None else local.long(),
                  target=target.bool())


def text_tokens(ids, layout: Layout) -> Tokens:
    """Text ids (T,) -> tokens; text is always a target."""
    ids = layout.vocab.text(ids)
    return lookup_tokens(ids, torch.full_like(ids, TEXT), torch.ones_like(ids, dtype=torch.bool), layout.patch_dim)


def image_tokens(images: torch.Tensor, layout: Layout, low: float, high: float, local: bool) -> Tokens:
    """Images (B, C, H, W) with pixels in [low, high] -> (B, N) patch tokens in raster order, never targets.
    local: the patches are an agent's observation and carry local observation positions 0..N-1."""
    b, c, h, w = images.shape
    if c != layout.channels:
        raise InputError(f"images have {c} channels; the model's patches have {layout.channels}")
    p = normalise_patches(patchify(images, layout.patch), low, high, layout.patch).flatten(2)  # (B, N, C P P)
    n = p.shape[1]
    rows, cols = patch_intervals(h, w, layout.patch, layout.position_bins)  # (N, 2) each
    loc = torch.arange(n).expand(b, n) if local else torch.full((b, n), -1, dtype=torch.long)
    return Tokens(ids=torch.zeros(b, n, dtype=torch.long), kinds=torch.full((b, n), IMAGE, dtype=torch.long),
                  patches=p, rows=rows.expand(b, n, 2).clone(), cols=cols.expand(b, n, 2).clone(), local=loc,
                  target=torch.zeros(b, n, dtype=torch.bool))


@dataclass(frozen=True)
class ControlSpec:
    """How one control task is tokenised: its observation (a vector of continuous values, or an image) and its
    action (one discrete choice of `n_actions`, or `action_dims` continuous values in [low, high])."""

    name: str
    env_id: str
    observation: str  # "continuous" | "image"
    obs_shape: tuple
    action: str  # "discrete" | "continuous"
    n_actions: int = 0  # discrete
    action_dims: int = 1  # continuous: one token per dimension
    action_low: tuple = ()
    action_high: tuple = ()
    pixel_range: tuple = (0.0, 255.0)  # image observations: the pixel values read as [-1, 1]

    def __post_init__(self):
        if self.observation not in ("continuous", "image"):
            raise InputError(f"{self.name}: observation kind {self.observation!r}; known: continuous, image")
        if self.action not in ("discrete", "continuous"):
            raise InputError(f"{self.name}: action kind {self.action!r}; known: discrete, continuous")
        if self.observation == "image" and len(self.obs_shape) != 3:
            raise InputError(f"{self.name}: image observations have shape (C, H, W), got {self.obs_shape}")

    @property
    def action_tokens(self) -> int:
        return 1 if self.action == "discrete" else self.action_dims

    def obs_tokens(self, patch: int) -> int:
        if self.observation == "image":
            _, h, w = self.obs_shape
            return (h // patch) * (w // patch)
        return math.prod(self.obs_shape)

    def step_tokens(self, patch: int) -> int:
        """Tokens per timestep: observation, separator, action."""
        return self.obs_tokens(patch) + 1 + self.action_tokens

    # ---- checks (bad input names the task, the field, the value and what is allowed) ----
    def check_observations(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (N, *obs_shape) -> as a float tensor; another shape raises InputError."""
        obs = torch.as_tensor(obs)
        if tuple(obs.shape[1:]) != tuple(self.obs_shape):
            raise InputError(f"{self.name}: observation has shape {tuple(obs.shape[1:])}; the task spec "
                             f"({self.env_id}) expects {tuple(self.obs_shape)}")
        return obs.double() if self.observation == "continuous" else obs.float()

    def check_actions(self, actions) -> torch.Tensor:
        """actions (N,) for a discrete task or (N, action_dims) -> a tensor; outside the space raises InputError."""
        a = torch.as_tensor(actions)
        if self.action == "discrete":
            a = a.reshape(a.shape[0], -1) if a.dim() > 1 else a
            if a.dim() != 1:
                raise InputError(f"{self.name}: discrete actions have shape (N,), got {tuple(a.shape)}")
            if a.is_floating_point() and not bool((a == a.round()).all()):
                raise InputError(f"{self.name}: discrete actions must be integers, got {a[:4].tolist()}")
            a = a.long()
            bad = (a < 0) | (a >= self.n_actions)
            if bool(bad.any()):
                raise InputError(f"{self.name}: action {int(a[bad][0])} is outside the action space "
                                 f"Discrete({self.n_actions}) of {self.env_id} (integers 0..{self.n_actions - 1})")
            return a
        a = a.double().reshape(a.shape[0], -1)
        if a.shape[1] != self.action_dims:
            raise InputError(f"{self.name}: actions have {a.shape[1]} dimensions; {self.env_id} has "
                             f"{self.action_dims}")
        lo, hi = torch.tensor(self.action_low, dtype=torch.float64), torch.tensor(self.action_high, dtype=torch.float64)
        bad = ~torch.isfinite(a) | (a < lo - 1e-6) | (a > hi + 1e-6)
        if bool(bad.any()):
            i, j = bad.nonzero()[0].tolist()
            raise InputError(f"{self.name}: action value {float(a[i, j])} (dimension {j}) is outside the action "
                             f"space of {self.env_id}: [{self.action_low[j]}, {self.action_high[j]}]")
        return a


def observation_tokens(obs, spec: ControlSpec, layout: Layout) -> Tokens:
    """Observations (N, *obs_shape) -> (N, n_obs + 1): each observation's tokens then the separator `|`, what a
    policy sees before it acts. Continuous observations are flattened in row-major order (sec. 2.1), each value
    at its local observation position; images are cut into patches."""
    obs = spec.check_observations(obs)
    n, f = obs.shape[0], layout.patch_dim
    if spec.observation == "image":
        part = image_tokens(obs, layout, *spec.pixel_range, local=True)  # (N, n_obs)
    else:
        values = obs.reshape(n, -1)  # (N, n_obs), row-major
        k = values.shape[1]
        part = lookup_tokens(layout.vocab.continuous(values, f"{spec.name} observation"),
                             torch.full((n, k), CONTINUOUS), torch.zeros(n, k, dtype=torch.bool), f,
                             local=torch.arange(k).expand(n, k))
    sep = lookup_tokens(torch.full((n, 1), layout.vocab.separator), torch.full((n, 1), SEPARATOR),
                        torch.zeros(n, 1, dtype=torch.bool), f)
    return Tokens.cat([part, sep])


def action_tokens(actions, spec: ControlSpec, layout: Layout) -> Tokens:
    """Actions (N,) discrete or (N, action_dims) continuous -> (N, action_tokens) target tokens."""
    a = spec.check_actions(actions)
    if spec.action == "discrete":
        ids = layout.vocab.discrete(a[:, None], f"{spec.name} action")  # (N, 1)
        kind = DISCRETE
    else:
        ids = layout.vocab.continuous(a, f"{spec.name} action")  # (N, A)
        kind = CONTINUOUS
    return lookup_tokens(ids, torch.full_like(ids, kind), torch.ones_like(ids, dtype=torch.bool), layout.patch_dim)


def timestep_tokens(obs, actions, spec: ControlSpec, layout: Layout) -> Tokens:
    """Observations (N, *obs_shape) and their actions -> (N, step) tokens: observation, `|`, action."""
    return Tokens.cat([observation_tokens(obs, spec, layout), action_tokens(actions, spec, layout)])


def episode_tokens(observations, actions, spec: ControlSpec, layout: Layout) -> Tokens:
    """One episode's timesteps (N observations, N actions) -> a flat (N * step,) sequence in timestep order."""
    steps = timestep_tokens(observations, actions, spec, layout)  # (N, step)
    return steps._map(lambda t: t.reshape(-1, *t.shape[2:]))  # (N step, ...)


def decode_actions(ids: torch.Tensor, spec: ControlSpec, vocab: Vocab) -> torch.Tensor:
    """Action token ids (N, action_tokens) -> actions: (N,) integers, or (N, A) values clipped to the space."""
    if spec.action == "discrete":
        return vocab.discrete_values(ids[:, 0]).clamp(0, spec.n_actions - 1)
    values = vocab.continuous_values(ids)  # (N, A)
    lo, hi = torch.tensor(spec.action_low, dtype=torch.float64), torch.tensor(spec.action_high, dtype=torch.float64)
    return torch.maximum(torch.minimum(values, hi), lo)


def caption_tokens(images: torch.Tensor, texts: list[list[int]], layout: Layout, pixel_range: tuple,
                   eos: int) -> list[Tokens]:
    """Images (B, C, H, W) and their captions' text ids -> one sequence each: the image's patches, then the
    caption and end-of-text (the targets)."""
    img = image_tokens(images, layout, *pixel_range, local=False)  # (B, N)
    return [Tokens.cat([img.row(i), text_tokens(ids + [eos], layout)]) for i, ids in enumerate(texts)]


def loss_mask(tokens: Tokens) -> torch.Tensor:
    """Which next-token predictions the loss counts (sec. 2.3): position t predicts token t + 1, counted when that
    token is text or an action. -> (..., T - 1) bool."""
    return tokens.target[..., 1:]
