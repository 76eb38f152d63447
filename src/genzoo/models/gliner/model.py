"""GLiNER (Zaratiana et al., 2023, arXiv 2311.08526): named entities of any type, read off a bidirectional encoder.

The encoder reads ``<<ENT>> type_1 <<ENT>> type_2 ... <<SEP>> word_1 word_2 ...`` (sec. 2.1, fig. 2):

    h      = encoder(prompt + words)                                   (B, T, De), unpadded on ragged batches
    q_c    = prompt_rep(h at the c-th <<ENT>>)                         (B, C, D)   entity types (sec. 2.2, eq. 1)
    x_i    = BiLSTM(h at the first sub-token of word i)                (B, W, D)   words
    s_ij   = span_rep(x, i, j), 1 <= j - i + 1 <= max_width            (B, W, K, D) spans (eq. 2, `span.py`)
    score  = s_ij . q_c, p = sigmoid(score)                            (B, W, K, C) (eq. 3)

`logits` lays the scores out as the `gliner` package does, over (start word, width - 1, type), -inf where a span
runs past its text; `MarkerV0.scores` computes them width by width without forming the span vectors.
Training minimises binary cross-entropy over (span, type) pairs (sec. 2.3), padding spans and types masked out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ...config import GENRES
from ...errors import InputError
from ..encoder.model import EncoderModel
from .config import GLiNERConfig
from .span import SPAN_REPS, projection


@dataclass
class GLiNEROutput:
    logits: torch.Tensor  # (B, W, K, C) span x type scores before the sigmoid; -inf where a span runs past its text
    loss: torch.Tensor | None = None
    span_mask: torch.Tensor | None = None  # (B, W, K) spans inside their text
    prompts_embedding: torch.Tensor | None = None  # (B, C, D) entity types after the prompt MLP
    prompts_embedding_mask: torch.Tensor | None = None  # (B, C)
    words_embedding: torch.Tensor | None = None  # (B, W, D) words after the BiLSTM
    mask: torch.Tensor | None = None  # (B, W) real words


@GENRES.register("gliner")
class GLiNERModel(nn.Module):
    """An encoder-genre backbone, a BiLSTM over its words, markerV0 spans and a prompt MLP for the entity types.
    `predict_entities` / `batch_predict_entities` (`inference.py`) take raw text and label names."""

    config_class = GLiNERConfig

    def __init__(self, config: GLiNERConfig):
        super().__init__()
        cfg = self.config = config
        d = cfg.hidden_size
        self.encoder = EncoderModel(cfg.encoder)
        self.projection = nn.Linear(cfg.encoder.d_model, d) if cfg.encoder.d_model != d else None
        self.rnn = nn.LSTM(d, d // 2, num_layers=cfg.num_rnn_layers, bidirectional=True, batch_first=True) \
            if cfg.num_rnn_layers else None
        self.span_rep = SPAN_REPS.get(cfg.span_mode)(d, cfg.max_width, cfg.dropout)
        self.prompt_rep = projection(d, d, cfg.dropout)
        self.tokenizer = None  # a `processing.GLiNERTokenizer`: set by genzoo.load, by training, or by hand

    def tied_parameters(self) -> list[str]:
        return []

    def shardable_blocks(self) -> list[nn.Module]:
        """The modules FSDP shards one by one (`train.distributed.wrap`): the encoder's blocks."""
        return list(self.encoder.blocks)

    # ---- the pieces of the forward pass ----
    def project(self, h: torch.Tensor) -> torch.Tensor:
        """Encoder states -> hidden_size (a per-position linear map, applied only where states are read)."""
        return self.projection(h) if self.projection is not None else h

    def entity_types(self, h, input_ids, attention_mask) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder state at each <<ENT>> token (or the token after it), in prompt order, through the prompt
        MLP -> (B, C, D) and their mask (B, C)."""
        is_ent = (input_ids == self.config.class_token_index) & attention_mask.bool()  # (B, T)
        counts = is_ent.sum(1)  # (B,)
        c = int(counts.max())
        rows, pos = is_ent.nonzero(as_tuple=True)  # row-major: each row's <<ENT>> tokens in order
        if not self.config.embed_ent_token:
            pos = pos + 1
        slot = torch.arange(len(rows), device=h.device) - (counts.cumsum(0) - counts)[rows]  # index within its row
        mask = torch.arange(c, device=h.device)[None] < counts[:, None]  # (B, C)
        types = h.new_zeros(h.shape[0], c, self.config.hidden_size)
        types[rows, slot] = self.project(h[rows, pos])
        return self.prompt_rep(types), mask

    def words(self, h, words_mask, text_lengths) -> tuple[torch.Tensor, torch.Tensor]:
        """The state of each word's first sub-token (words_mask: 1-based word index there, 0 elsewhere) through the
        BiLSTM -> (B, W, D) and the word mask (B, W)."""
        b = h.shape[0]
        w = int(text_lengths.max())
        rows, pos = (words_mask > 0).nonzero(as_tuple=True)
        x = h.new_zeros(b, w, self.config.hidden_size)
        x[rows, words_mask[rows, pos] - 1] = self.project(h[rows, pos])  # (B, W, D)
        mask = torch.arange(w, device=h.device)[None] < text_lengths[:, None]  # (B, W)
        if self.rnn is not None:
            packed = pack_padded_sequence(x, text_lengths.cpu(), batch_first=True, enforce_sorted=False)
            x = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=w)[0]  # (B, W, D)
        return x, mask

    def spans(self, text_lengths: torch.Tensor, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every span inside its text: (rows, starts, widths - 1), each (N,), row-major, then by start and width."""
        k = self.config.max_width
        start = torch.arange(w, device=text_lengths.device)[None, :, None]  # (1, W, 1)
        width = torch.arange(k, device=text_lengths.device)[None, None, :]  # (1, 1, K)
        inside = start + width < text_lengths[:, None, None]  # (B, W, K)
        return inside.nonzero(as_tuple=True)

    def check_inputs(self, input_ids, attention_mask, words_mask, text_lengths) -> None:
        b, t = input_ids.shape
        for name, m in (("attention_mask", attention_mask), ("words_mask", words_mask)):
            if tuple(m.shape) != (b, t):
                raise InputError(f"{name} has shape {tuple(m.shape)}; expected (batch, seq_len) = {(b, t)}")
        if tuple(text_lengths.shape) != (b,) or bool((text_lengths < 1).any()):
            raise InputError(f"text_lengths must be (batch,) = ({b},) word counts >= 1, got {text_lengths.tolist()}")
        if bool((words_mask.amax(1) > text_lengths).any()):
            raise InputError("words_mask names a word past its row's text_lengths")
        has_type = ((input_ids == self.config.class_token_index) & attention_mask.bool()).any(1)
        if not bool(has_type.all()):
            raise InputError(f"rows {(~has_type).nonzero().flatten().tolist()} have no {self.config.ent_token} "
                             f"token (id {self.config.class_token_index}): every row needs an entity type")

    def forward(self, input_ids, attention_mask, words_mask, text_lengths, labels=None) -> GLiNEROutput:
        """input_ids, attention_mask, words_mask (B, T); text_lengths (B,) words per row -> GLiNEROutput.
        labels (B, W, K, C) in {0, 1}: the loss, binary cross-entropy summed over real (span, type) pairs and
        averaged over the batch rows."""
        self.check_inputs(input_ids, attention_mask, words_mask, text_lengths)
        h = self.encoder(input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, De)
        types, type_mask = self.entity_types(h, input_ids, attention_mask)  # (B, C, D), (B, C)
        x, word_mask = self.words(h, words_mask, text_lengths)  # (B, W, D), (B, W)
        logits = self.span_rep.scores(x, types, text_lengths)  # (B, W, K, C), -inf past each text
        b, w, k, c = logits.shape
        rows, starts, widths = self.spans(text_lengths, w)  # 3 x (N,): the spans inside their text
        span_mask = torch.zeros(b, w, k, dtype=torch.bool, device=x.device)
        span_mask[rows, starts, widths] = True
        out = GLiNEROutput(logits, span_mask=span_mask, prompts_embedding=types, prompts_embedding_mask=type_mask,
                           words_embedding=x, mask=word_mask)
        if labels is not None:
            if labels.shape[:3] != (b, w, k) or labels.shape[3] < c:
                raise InputError(f"labels have shape {tuple(labels.shape)}; expected (B, W, K, C) = {(b, w, k, c)}")
            scores = logits[rows, starts, widths]  # (N, C)
            target = labels[rows, starts, widths, :c]  # (N, C)
            bce = F.binary_cross_entropy_with_logits(scores.float(), target.float(), reduction="none")
            out.loss = (bce * type_mask[rows]).sum() / b
        return out

    # ---- text in, entities out (inference.py) ----
    def predict_entities(self, text: str, labels, threshold: float = 0.5, flat_ner: bool = True,
                         multi_label: bool = False, **options):
        """Entities of `text` whose type is one of `labels`: [{"start", "end", "text", "label", "score"}] (character
        offsets), the `gliner` package's fields. See `inference.predict` for the options."""
        from .inference import predict

        return predict(self, [text], labels, threshold=threshold, flat_ner=flat_ner, multi_label=multi_label,
                       **options)[0]

    def batch_predict_entities(self, texts: list[str], labels, threshold: float = 0.5, flat_ner: bool = True,
                               multi_label: bool = False, **options):
        """`predict_entities` for many texts at once (one list of entities per text)."""
        from .inference import predict

        return predict(self, list(texts), labels, threshold=threshold, flat_ner=flat_ner, multi_label=multi_label,
                       **options)
