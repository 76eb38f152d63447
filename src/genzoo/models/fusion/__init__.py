"""Multimodal fusion: several modalities in one model (not to be confused with `genzoo.fuse`, FuseLLM, which fuses
the knowledge of several language models into one).

- `early`: early fusion (Gemini-style): one decoder over interleaved text and VQ image tokens (`sequence`).
- `late`: late fusion: a frozen image encoder and a frozen LM joined by a trained bridge (LLaVA prefix, Flamingo
  gated cross-attention).
- `meta_transformer`: Meta-Transformer: modality tokenizers (`modalities`) -> a frozen shared encoder -> task heads.
"""

from .config import EarlyFusionConfig, LateFusionConfig, MetaTransformerConfig
from .early import EarlyFusionLM
from .late import LateFusion
from .meta_transformer import MetaTransformer
from .sequence import ImageGrammar, JointVocab, Segment, build, check_interleaved, images_in

__all__ = ["EarlyFusionConfig", "EarlyFusionLM", "ImageGrammar", "JointVocab", "LateFusion", "LateFusionConfig",
           "MetaTransformer", "MetaTransformerConfig", "Segment", "build", "check_interleaved", "images_in"]
