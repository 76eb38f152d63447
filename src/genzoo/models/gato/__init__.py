"""Gato, the multi-domain decoder (arXiv 2205.06175): tokens, embedding, model, agent."""

from .config import GatoConfig
from .model import Gato, masked_loss
from .sequence import ControlSpec, Tokens
from .tokens import Vocab

__all__ = ["ControlSpec", "Gato", "GatoConfig", "Tokens", "Vocab", "masked_loss"]
