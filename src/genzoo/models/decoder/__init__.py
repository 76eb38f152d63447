"""Decoder-only genre: GPT-2, Llama, Mistral as presets of one DecoderConfig."""

from .config import DecoderConfig
from .model import DecoderLM
from . import hf  # noqa: F401  (registers the gpt2 / llama / mistral checkpoint formats)

__all__ = ["DecoderConfig", "DecoderLM"]
