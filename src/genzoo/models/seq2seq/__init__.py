"""Encoder-decoder genre: T5 and T5 v1.1 as presets of one Seq2SeqConfig."""

from . import hf  # noqa: F401  (registers the t5 checkpoint format)
from .config import Seq2SeqConfig
from .model import Seq2SeqLM, Seq2SeqOutput

__all__ = ["Seq2SeqConfig", "Seq2SeqLM", "Seq2SeqOutput"]
