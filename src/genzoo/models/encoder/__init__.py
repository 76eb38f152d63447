"""Encoder-only genre: BERT as a preset of one EncoderConfig."""

from . import hf  # noqa: F401  (registers the bert checkpoint format)
from .config import EncoderConfig
from .model import EncoderModel, EncoderOutput

__all__ = ["EncoderConfig", "EncoderModel", "EncoderOutput"]
