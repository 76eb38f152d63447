"""FuseLLM (Wan et al. 2024, "Knowledge Fusion of Large Language Models", arXiv 2401.10491): a target LM is
trained on the fused next-token distributions of source LMs of other architectures and tokenizers.

  surface.py   token strings of any tokenizer family as the text they stand for
  align.py     MinED / exact token alignment (DTW on edit distance) and vocabulary mapping
  fusion.py    MinCE / AvgCE fusion and the target's loss
  sources.py   loading a source (a causal LM + tokenizer) and its top-k distributions
  chunks.py    the fusion text as sequences; shards.py the precomputed safetensors shards
  pipeline.py  `genzoo fuse`; the training task is `genzoo.train.fuse_task` (task "fuse")
"""

from .align import (ALIGNMENTS, aligned_source, alignment_cost, dtw_path, edit_distances, map_distributions,
                    vocab_map)
from .config import FuseConfig
from .fusion import FUSIONS, fused_distribution, fusion_loss
from .pipeline import fuse, prepare
from .shards import FusionShards, precompute

__all__ = ["ALIGNMENTS", "FUSIONS", "FuseConfig", "FusionShards", "aligned_source", "alignment_cost", "dtw_path",
           "edit_distances", "fuse", "fused_distribution", "fusion_loss", "map_distributions", "precompute", "prepare",
           "vocab_map"]
