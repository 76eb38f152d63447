"""Gato (Reed et al., 2022, "A Generalist Agent", arXiv 2205.06175): one decoder-only transformer over a flat
sequence of text, image-patch, discrete- and continuous-value tokens.

    h = GatoEmbedding(tokens)                      (B, T, D)   sec. 2.2: lookup or patch ResNet, by token kind
    h = Stack(h)                                   (B, T, D)   the decoder genre's causal blocks and positions
    logits = lm_head(h)                            (B, T, V)   one head over the joint vocabulary
    loss = CE(logits[:, t], token[t + 1]) over the t where token t + 1 is text or an action   (sec. 2.3)

The transformer is built by the decoder genre (`decoder.model.make_block` from `GatoConfig.decoder()`); the
shared `Stack` takes the embeddings directly (its `embed` is None), so attention, positions, masks and the KV
cache are the shared parts'. Acting in an environment is `agent.GatoAgent`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...config import GENRES
from ...errors import InputError
from ...modes import evaluating
from ...nn import NORMS, StaticKVCache, Stack, make_positions, reset_gates
from ...outputs import CausalLMOutput
from ..decoder.model import make_block
from .config import GatoConfig
from .embedding import GatoEmbedding, sinusoidal_table
from .sequence import Tokens, loss_mask
from .targets import make_continuous_target
from .tokens import IMAGE, KIND_NAMES, SEPARATOR, TEXT


@GENRES.register("gato")
class Gato(Stack):
    """The causal `Stack` over Gato's embeddings, and one output head over the joint vocabulary."""

    config_class = GatoConfig

    def __init__(self, config: GatoConfig):
        dec = config.decoder()
        positions = make_positions(dec.position, causal=True, max_positions=dec.max_positions, dim=dec.d_model,
                                   head_dim=dec.head_dim, n_heads=dec.n_heads, theta=dec.rope_theta)
        super().__init__(
            [make_block(dec, positions) for _ in range(dec.n_layers)],
            embed=None,  # the caller (forward) embeds: lookups and patches, by token kind
            positions=positions,
            final_norm=NORMS.get(dec.norm)(dec.d_model, dec.norm_eps, dec.norm_bias),
            dropout=dec.dropout,
            causal=True,
        )
        self.config, self.vocab = config, config.vocab
        self.embedding = GatoEmbedding(config)
        self.target = make_continuous_target(config.continuous_target, config.vocab, config.continuous_target_args)
        self.lm_head = nn.Linear(dec.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embedding.tokens.weight
        self.reset_parameters()

    def tied_parameters(self) -> list[str]:
        return ["lm_head.weight"] if self.config.tie_embeddings else []

    def shardable_blocks(self) -> list[nn.Module]:
        return list(self.blocks)

    def reset_parameters(self) -> None:
        """Normal(0, init_std) weights of the transformer and the tables, zero biases, unit norms; residual output
        projections scaled by 1/sqrt(2 n_layers) (GPT-2, sec. 2.3). The patch ResNet's convolutions keep torch's
        init and its output projection is Normal(0, init_std) like the rest, so an image patch starts on the scale of
        the token and position embeddings (with torch's init it was 25 times larger and drowned the patch row /
        column positions); the continuous-value rows and the patch position tables as `config.value_init` says; the Fourier
        map of `lookup+fourier` at zero (values.py)."""
        std = self.config.init_std
        for name, p in self.named_parameters():
            if name.startswith("embedding.patches.") and not name.startswith("embedding.patches.proj."):
                continue  # the ResNet block's convolutions and group norms: torch's own initialisation
            if name.startswith("embedding.values."):  # W of `lookup+fourier` starts at 0: the paper's lookup, and
                nn.init.zeros_(p)  # the other parameters start as with `lookup` (no random number is drawn here)
            elif p.dim() == 1:
                nn.init.ones_(p) if name.endswith("norm.weight") else nn.init.zeros_(p)
            elif name.endswith(("o_proj.weight", "ffn.down.weight")):
                nn.init.normal_(p, std=std / math.sqrt(2 * self.config.n_layers))
            else:
                nn.init.normal_(p, std=std)
        if self.config.value_init == "sinusoidal":  # ordered bins start smooth (embedding.sinusoidal_table)
            v, d = self.vocab, self.config.d_model
            e = self.embedding
            with torch.no_grad():
                e.tokens.weight[v.continuous_offset:v.separator] = sinusoidal_table(v.bins, d, std)
                for table in (e.rows, e.cols):
                    table.weight.copy_(sinusoidal_table(self.config.position_bins, d, std))
        reset_gates(self)  # gates start open to their init value (the loop above zeroed their biases)

    # ---- input checks (before any compute) ----
    def check_inputs(self, t: Tokens, start: int = 0) -> None:
        cfg = self.config
        if not isinstance(t, Tokens):
            raise InputError(f"Gato takes a sequence.Tokens, got {type(t).__name__}")
        if t.ids.dim() != 2:
            raise InputError(f"tokens must be batched (batch, seq_len); ids have shape {tuple(t.ids.shape)}")
        b, n = t.ids.shape
        if n == 0:
            raise InputError("tokens have seq_len 0")
        for name in ("kinds", "local", "target"):
            if tuple(getattr(t, name).shape) != (b, n):
                raise InputError(f"tokens.{name} has shape {tuple(getattr(t, name).shape)}; expected {(b, n)}")
        for name, shape in (("patches", (b, n, cfg.patch_dim)), ("rows", (b, n, 2)), ("cols", (b, n, 2))):
            if tuple(getattr(t, name).shape) != shape:
                raise InputError(f"tokens.{name} has shape {tuple(getattr(t, name).shape)}; expected {shape} "
                                 f"(patch_dim = channels x patch_size^2 = {cfg.patch_dim})")
        if int(t.kinds.min()) < 0 or int(t.kinds.max()) > SEPARATOR:
            raise InputError(f"tokens.kinds must be in 0..{SEPARATOR} ({', '.join(KIND_NAMES)})")
        if start + n > cfg.max_positions:
            raise InputError(f"sequence length {start + n} exceeds the model's max_positions={cfg.max_positions}")
        ids = t.ids[t.kinds != IMAGE]
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= cfg.vocab_size):
            raise InputError(f"token id {int(ids.max()) if int(ids.max()) >= cfg.vocab_size else int(ids.min())} "
                             f"is out of range: the joint vocabulary has {cfg.vocab_size} ids")
        text = t.ids[t.kinds == TEXT]
        if text.numel() and int(text.max()) >= cfg.text_vocab_size:
            raise InputError(f"text token id {int(text.max())} is out of range [0, {cfg.text_vocab_size})")
        if int(t.local.max()) >= cfg.max_local_positions:
            raise InputError(f"local observation position {int(t.local.max())} is out of range: an observation has "
                             f"at most max_local_positions={cfg.max_local_positions} tokens")
        image = t.kinds == IMAGE
        for name in ("rows", "cols"):
            iv = getattr(t, name)[image]
            if iv.numel() and (int(iv.min()) < 0 or int(iv.max()) > cfg.position_bins
                               or bool((iv[:, 1] <= iv[:, 0]).any())):
                raise InputError(f"tokens.{name}: patch intervals must be [from, to) with 0 <= from < to <= "
                                 f"position_bins={cfg.position_bins}")

    def make_cache(self, batch: int, max_len: int | None = None) -> StaticKVCache:
        dec = self.config.decoder()
        w = self.lm_head.weight
        return StaticKVCache(dec.n_layers, batch, dec.n_kv_heads, max_len or dec.max_positions, dec.head_dim,
                             dtype=w.dtype, device=w.device)

    def forward(self, tokens: Tokens, cache: StaticKVCache | None = None, logits_to_keep: int = 0,
                return_loss: bool = False, return_logits: bool = True, check: bool = True,
                loss_reduction: str | None = None) -> CausalLMOutput:
        """tokens (B, T) -> logits (B, T, V) over the joint vocabulary.

        cache: a `StaticKVCache`; the T tokens are written at positions [cache.length, cache.length + T).
        logits_to_keep: logits of the last K positions only (0 = all).
        return_loss: the next-token loss over the positions whose next token is text or an action (`loss_mask`).
        return_logits: False (training) leaves `logits` None and runs the head only where the loss needs it (a
        control window has a target at 1 position in 5 or 6, the head is a third of this model's compute).
        loss_reduction: how the loss averages its targets (`loss_weights`; None: `config.loss_reduction`).
        """
        reduction = loss_reduction or self.config.loss_reduction
        start = cache.length if cache is not None else 0
        if check:
            self.check_inputs(tokens, start)
        h = self.embedding(tokens)  # (B, T, D)
        x = super().forward(h, cache=cache)  # (B, T, D)
        if not return_logits:
            if not return_loss:
                raise InputError("return_logits=False needs return_loss=True (else nothing would be returned)")
            mask = loss_mask(tokens)  # (B, T - 1)
            logits = self.lm_head(x[:, :-1][mask])  # (N, V): only the positions that predict a target
            ce = self.target(logits, tokens.ids[:, 1:][mask])  # (N,)
            weights = loss_weights(mask, reduction)[mask]  # (N,)
            return CausalLMOutput(logits=None, loss=(ce * weights).sum(), last_hidden_state=x)
        keep = x[:, -logits_to_keep:] if logits_to_keep else x
        logits = self.lm_head(keep)  # (B, T or K, V)
        loss = masked_loss(logits, tokens, target=self.target, reduction=reduction) \
            if return_loss and not logits_to_keep else None
        return CausalLMOutput(logits=logits, loss=loss, last_hidden_state=x)

    @torch.no_grad()
    def generate_text(self, prefix: Tokens, max_new_tokens: int, eos_token_id: int | None = None) -> torch.Tensor:
        """Greedy text after a prefix (B, P) of any kinds (an image's patches: captioning), through a KV cache;
        only text ids are candidates. -> new text ids (B, max_new_tokens); after end-of-text, eos repeats."""
        from .sequence import text_tokens

        if not (isinstance(max_new_tokens, int) and max_new_tokens > 0):
            raise InputError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        self.check_inputs(prefix)
        b = prefix.ids.shape[0]
        if len(prefix) + max_new_tokens > self.config.max_positions:
            raise InputError(f"prefix {len(prefix)} + max_new_tokens {max_new_tokens} exceeds max_positions="
                             f"{self.config.max_positions}")
        device = self.lm_head.weight.device
        cache = self.make_cache(b, len(prefix) + max_new_tokens)
        with evaluating(self) as net:
            logits = net(prefix.to(device), cache=cache, logits_to_keep=1, check=False).logits[:, -1]
            out, done = [], torch.zeros(b, dtype=torch.bool, device=device)
            for i in range(max_new_tokens):
                tok = logits[:, : self.config.text_vocab_size].argmax(-1)  # (B,)
                if eos_token_id is not None:
                    tok = tok.masked_fill(done, eos_token_id)
                    done |= tok == eos_token_id
                out.append(tok)
                if i + 1 < max_new_tokens and not bool(done.all()):
                    step = text_tokens(tok[:, None].cpu(), self.config.layout).to(device)  # (B, 1)
                    logits = net(step, cache=cache, check=False).logits[:, -1]
                elif i + 1 < max_new_tokens:
                    out += [tok] * (max_new_tokens - i - 1)
                    break
        return torch.stack(out, dim=1)  # (B, N)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def loss_weights(mask: torch.Tensor, reduction: str = "token") -> torch.Tensor:
    """The weight of each target position (B, T - 1) in a batch's loss; they sum to 1 over the targets.

    "token": 1 / (targets in the batch), the paper's eq. 2 (sec. 2.3) up to its constant: a window of text, whose
    every token is a target, weighs about as much as 4 to 6 control windows, which have a target in 1 position of 4
    (MountainCar) to 6 (CartPole, the grid world's 4 patches). "window": 1 / (targets in its window x windows with
    a target), the mean over windows of each window's mean, so that a task's share of the gradient is its share of
    the windows (`data.mixture`)."""
    mask = mask.float()
    if reduction == "token":
        return mask / mask.sum().clamp(min=1)
    if reduction == "window":
        per_row = mask.sum(1, keepdim=True)  # (B, 1)
        return mask / (per_row.clamp(min=1) * (per_row > 0).sum().clamp(min=1))
    raise InputError(f"loss reduction {reduction!r} is unknown: 'token' or 'window'")


def masked_loss(logits: torch.Tensor, tokens: Tokens, reduction: str = "token", target=None) -> torch.Tensor:
    """Cross-entropy of logits (B, T, V) against the next tokens, over the positions `loss_mask` marks
    (B, T - 1), averaged as `reduction` says ("token" or "window", `loss_weights`), or ("none") the (B, T - 1) losses
    with zeros elsewhere. target: what a continuous value is trained against (`targets.py`; None: the one-hot
    cross-entropy of every token)."""
    mask = loss_mask(tokens)  # (B, T - 1)
    flat, labels = logits[:, :-1].flatten(0, 1), tokens.ids[:, 1:].flatten()  # (B (T - 1), V), (B (T - 1),)
    ce = F.cross_entropy(flat.float(), labels, reduction="none") if target is None else target(flat, labels)
    ce = ce.view_as(mask) * mask  # (B, T - 1)
    if reduction == "none":
        return ce
    return (ce * loss_weights(mask, reduction)).sum()
