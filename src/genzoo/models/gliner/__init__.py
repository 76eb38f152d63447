"""GLiNER: span NER for any entity type on an encoder-genre backbone, equal to the `gliner` package."""

from . import hf  # noqa: F401  (registers the gliner checkpoint format)
from .config import GLiNERConfig
from .inference import Entities
from .model import GLiNERModel, GLiNEROutput
from .processing import GLiNERTokenizer, split_words

__all__ = ["Entities", "GLiNERConfig", "GLiNERModel", "GLiNEROutput", "GLiNERTokenizer", "split_words"]
