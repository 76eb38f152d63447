"""CLIP: contrastive image-text model (text transformer + ViT) built from the shared parts."""

from . import hf  # noqa: F401  (registers the clip checkpoint format)
from .config import CLIPConfig
from .model import CLIP, CLIPOutput, recall_at_k

__all__ = ["CLIP", "CLIPConfig", "CLIPOutput", "recall_at_k"]
