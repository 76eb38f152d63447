"""The encoder-decoder Transformer as T5 builds it (Raffel et al., 2020, sec. 2.1), two shared `Stack`s: pre-norm blocks with RMS
norms and no biases, no score scaling, a relative-position bias (computed by the first layer's bucket table,
shared by all layers of a stack; bidirectional in the encoder, causal in the decoder), cross-attention over the
encoder output, and, with tied embeddings, the decoder output scaled by d_model^-0.5 before the head.
"""

from __future__ import annotations

from dataclasses import dataclass


import torch
import torch.nn.functional as F
from torch import nn

from ...config import GENRES
from ...beam import beam_search, check_beams
from ...errors import InputError
from ...generate import Decoding, compiled_step, decode, drain, eos_ids, inference, iterate
from ...inputs import check_labels, check_token_ids
from ...modes import evaluating
from ...nn import (FFNS, Attention, Block, RMSNorm, StaticKVCache, Stack, make_gate, make_positions, make_softmax,
                   reset_gates)
from .config import Seq2SeqConfig


@dataclass
class Seq2SeqOutput:
    logits: torch.Tensor | None = None  # (B, T_dec, V)
    loss: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None  # decoder (or encoder, for an encoder-only model)
    encoder_last_hidden_state: torch.Tensor | None = None  # (B, T_enc, D)


def attention(cfg: Seq2SeqConfig, causal: bool) -> Attention:
    d, inner = cfg.d_model, cfg.n_heads * cfg.head_dim
    return Attention(nn.Linear(d, inner, bias=False), nn.Linear(d, inner, bias=False),
                     nn.Linear(d, inner, bias=False), nn.Linear(inner, d, bias=False), n_heads=cfg.n_heads,
                     n_kv_heads=cfg.n_heads, head_dim=cfg.head_dim, causal=causal, scale=1.0,
                     softmax=make_softmax(cfg.softmax, cfg.softmax_args), dropout=cfg.dropout,
                     backend=cfg.attn_backend, gate=make_gate(cfg.attn_gate, d, cfg.n_heads))


def make_stack(cfg: Seq2SeqConfig, embed: nn.Embedding, decoder: bool) -> Stack:
    """T5's encoder (bidirectional) or decoder (causal, with cross-attention) as the shared `Stack`: the bucketed
    relative bias is the stack's position part (one table per stack, the first layer's in transformers),
    dropout after the final norm too."""
    norm = lambda: RMSNorm(cfg.d_model, cfg.norm_eps)  # noqa: E731
    ffn = lambda: FFNS.get(cfg.ffn)(cfg.d_model, cfg.d_ff, cfg.activation, False)  # noqa: E731
    n = cfg.n_decoder_layers if decoder else cfg.n_layers
    cross = lambda: dict(cross_attn=attention(cfg, causal=False), cross_norm=norm()) if decoder else {}  # noqa: E731
    blocks = [Block(attention(cfg, causal=decoder), ffn(), norm(), norm(), **cross(), norm_position="pre",
                    dropout=cfg.dropout) for _ in range(n)]
    positions = make_positions("t5_relative", causal=decoder, n_heads=cfg.n_heads, buckets=cfg.relative_buckets,
                               max_distance=cfg.relative_max_distance)
    return Stack(blocks, embed=embed, positions=positions, final_norm=norm(), dropout=cfg.dropout,
                 output_dropout=True, causal=decoder)


@GENRES.register("seq2seq")
class Seq2SeqLM(nn.Module):
    config_class = Seq2SeqConfig

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = cfg = config
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.encoder = make_stack(cfg, self.shared, decoder=False)
        self.decoder = None if cfg.encoder_only else make_stack(cfg, self.shared, decoder=True)
        self.lm_head = None
        if not cfg.encoder_only:
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
            if cfg.tie_embeddings:
                self.lm_head.weight = self.shared.weight
        for name, p in self.named_parameters():
            nn.init.normal_(p, std=cfg.init_std) if p.dim() > 1 else nn.init.ones_(p)
        reset_gates(self)  # gates start open to their init value (the loop above set their biases to 1)

    def tied_parameters(self) -> list[str]:
        names = ["encoder.embed.weight"]
        if self.decoder is not None:
            names.append("decoder.embed.weight")
            if self.config.tie_embeddings:
                names.append("lm_head.weight")
        return names

    def shardable_blocks(self) -> list[nn.Module]:
        """The modules FSDP shards one by one (`train.distributed.wrap`), inner ones first: the encoder's blocks,
        and each decoder block's cross-attention (its `project_memory` runs outside the block's forward, once per
        sequence) before the block."""
        blocks = list(self.encoder.blocks)
        for b in self.decoder.blocks if self.decoder is not None else []:
            blocks += [b.cross_attn, b]
        return blocks

    def sharded_methods(self) -> list[tuple[nn.Module, str]]:
        """Methods other than forward that FSDP must gather parameters for (`register_fsdp_forward_method`)."""
        return [(b.cross_attn, "project_memory") for b in self.decoder.blocks] if self.decoder is not None else []

    def check_inputs(self, input_ids, attention_mask=None, name: str = "input_ids") -> None:
        check_token_ids(input_ids, self.config.vocab_size, self.config.max_positions, attention_mask, name=name)

    def shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        """Decoder inputs from labels: the start token, then the labels shifted right (-100 -> pad)."""
        start = torch.full_like(labels[:, :1], self.config.decoder_start_token_id)
        shifted = torch.cat([start, labels[:, :-1]], dim=1)
        return shifted.masked_fill(shifted == -100, self.config.pad_token_id)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        if self.config.scales_output:
            h = h * self.config.d_model**-0.5
        return self.lm_head(h)

    def forward(self, input_ids, attention_mask=None, decoder_input_ids=None, labels=None) -> Seq2SeqOutput:
        """input_ids (B, T) -> encoder states; with decoder_input_ids (or labels) -> logits (B, T_dec, V)."""
        self.check_inputs(input_ids, attention_mask)
        memory = self.encoder(input_ids, attention_mask=attention_mask)
        if self.decoder is None:
            return Seq2SeqOutput(last_hidden_state=memory, encoder_last_hidden_state=memory)
        if decoder_input_ids is None:
            if labels is None:
                raise InputError("give decoder_input_ids or labels for the decoder")
            check_labels(labels, tuple(labels.shape), self.config.vocab_size)
            decoder_input_ids = self.shift_right(labels)
        self.check_inputs(decoder_input_ids, name="decoder_input_ids")
        if labels is not None:
            check_labels(labels, decoder_input_ids.shape, self.config.vocab_size)
        valid = None if attention_mask is None or bool(attention_mask.all()) else attention_mask.bool()
        h = self.decoder(decoder_input_ids, memory_kv=self.decoder.project_memory(memory), memory_valid=valid)
        logits = self.logits(h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        return Seq2SeqOutput(logits=logits, loss=loss, last_hidden_state=h, encoder_last_hidden_state=memory)

    @inference
    def generate(self, input_ids, attention_mask=None, max_new_tokens: int = 20, do_sample: bool = False,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 eos_token_id: int | list[int] | None = None, seed: int | None = None,
                 generator: torch.Generator | None = None, num_beams: int = 1, length_penalty: float = 1.0,
                 early_stopping: bool = False, compile: bool = False, repetition_penalty: float = 1.0,
                 min_new_tokens: int = 0, num_return_sequences: int = 1, stop: str | list[str] | None = None,
                 tokenizer=None, streamer=None, pad_token_id: int | None = None) -> torch.Tensor:
        """Decoder tokens (B * num_return_sequences, 1 + N), starting with the decoder start token, as transformers
        returns them. The encoder runs once, cross-attention keys/values are projected once, self-attention uses the
        KV cache; the decoding loop is the causal LMs' (`generate.decode`, with the same options: repetition_penalty,
        min_new_tokens, stop + tokenizer, streamer, num_return_sequences). num_beams > 1: beam search
        (`genzoo.beam`), the best num_return_sequences hypotheses per input; length_penalty divides a finished
        hypothesis' log-probability by its length ** length_penalty. compile: the decoder step through torch.compile
        (`generate.compiled_step`)."""
        d = Decoding.make(max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k,
                          top_p=top_p, repetition_penalty=repetition_penalty, min_new_tokens=min_new_tokens,
                          num_return_sequences=num_return_sequences, eos_token_id=eos_token_id,
                          pad_token_id=pad_token_id, stop=stop, tokenizer=tokenizer, streamer=streamer, seed=seed,
                          generator=generator)
        check_beams(num_beams, length_penalty, early_stopping, do_sample)
        if num_beams > 1:
            if repetition_penalty != 1.0 or min_new_tokens or stop is not None or streamer is not None:
                raise InputError("beam search here takes no repetition_penalty, min_new_tokens, stop or streamer; "
                                 "use them with greedy or sampled decoding")
            d.check_return_sequences(num_beams)
            self.check_inputs(input_ids, attention_mask)
            with evaluating(self):
                memory_kv, valid = self._memory(input_ids, attention_mask)
                eos = eos_ids(self.config.eos_token_id if eos_token_id is None else eos_token_id, input_ids.device)
                return self._beam_search(memory_kv, valid, input_ids.shape[0], num_beams, max_new_tokens, eos,
                                         length_penalty, early_stopping, num_return_sequences)
        return drain(self.decoding(input_ids, attention_mask, d, compile))

    def stream(self, input_ids, attention_mask=None, compile: bool = False, **options):
        """The new decoder tokens (B,) one step at a time, as an iterator; options as `generate` without beams."""
        return iterate(self.decoding(input_ids, attention_mask, Decoding.make(**options), compile))

    def _memory(self, input_ids, attention_mask):
        """The encoder output projected to every decoder layer's cross-attention keys/values, and the valid mask."""
        memory = self.encoder(input_ids, attention_mask=attention_mask)
        valid = None if attention_mask is None or bool(attention_mask.all()) else attention_mask.bool()
        return self.decoder.project_memory(memory), valid

    def decoding(self, input_ids, attention_mask, d: Decoding, compile: bool = False):
        """Check the inputs (now), then return the decoding generator (`generate.decode`)."""
        d.check_return_sequences()
        self.check_inputs(input_ids, attention_mask)
        if d.num_return_sequences > 1:  # as transformers: each input repeated in place
            input_ids = input_ids.repeat_interleave(d.num_return_sequences, 0)
            attention_mask = None if attention_mask is None else attention_mask.repeat_interleave(
                d.num_return_sequences, 0)
        return self._decode(input_ids, attention_mask, d, compile)

    def _decode(self, input_ids, attention_mask, d: Decoding, compile: bool):
        cfg = self.config
        b, device = input_ids.shape[0], input_ids.device
        eos = eos_ids(cfg.eos_token_id if d.eos_token_id is None else d.eos_token_id, device)
        pad = cfg.pad_token_id if d.pad_token_id is None else d.pad_token_id
        with evaluating(self):
            memory_kv, valid = self._memory(input_ids, attention_mask)
            cache = StaticKVCache(cfg.n_decoder_layers, b, cfg.n_heads, d.max_new_tokens + 1, cfg.head_dim,
                                  dtype=memory_kv[0][0].dtype, device=device)
            decoder = compiled_step(self.decoder, b) if compile else self.decoder

            def step(tok):  # (B,) -> (B, V)
                return self.logits(decoder(tok[:, None], memory_kv=memory_kv, memory_valid=valid, cache=cache))[:, -1]

            out = torch.full((b, d.max_new_tokens + 1), pad, dtype=torch.long, device=device)
            out[:, 0] = cfg.decoder_start_token_id
            return (yield from decode(step, step(out[:, 0]), out, 1, d, eos, pad, d.rng(device)))

    def _beam_search(self, memory_kv, valid, b, k, max_new_tokens, eos, length_penalty, early_stopping,
                     num_return_sequences=1):
        """Every input's cross-attention keys/values repeated for its K beams, once; one decoder step per token."""
        cfg = self.config
        memory_kv = [(mk.repeat_interleave(k, 0), mv.repeat_interleave(k, 0)) for mk, mv in memory_kv]  # (B*K, ..)
        valid = None if valid is None else valid.repeat_interleave(k, 0)  # (B*K, Tm)
        cache = StaticKVCache(cfg.n_decoder_layers, b * k, cfg.n_heads, max_new_tokens + 1, cfg.head_dim,
                              dtype=memory_kv[0][0].dtype, device=memory_kv[0][0].device)
        step = lambda tok: self.logits(self.decoder(tok[:, None], memory_kv=memory_kv, memory_valid=valid,  # noqa: E731
                                                     cache=cache))[:, -1]
        prompt = torch.full((b, 1), cfg.decoder_start_token_id, dtype=torch.long, device=memory_kv[0][0].device)
        # transformers pads short hypotheses with the pad id, or with eos when the pad id is 0 (a falsy tensor)
        fill = cfg.pad_token_id or int(eos[0])
        return beam_search(step, cache.reorder, prompt, k, max_new_tokens, eos, fill, length_penalty,
                           early_stopping, num_return_sequences=num_return_sequences)
