"""Vision through language with frozen language models: LENS (arXiv 2306.16410) describes images in text for a
frozen LM; SPAE (arXiv 2306.17842) turns images into words of a frozen LM's vocabulary and back. The image-prefixed
LM is LENS's captioner and the image-trained baseline; `incontext` holds the few-shot prompts."""

from .incontext import PromptWords, classification_prompt, generation_prompt
from .lens import LENS, Description, LENSConfig
from .prefix_lm import ImagePrefixLM, PrefixLMConfig
from .spae import SPAE, SPAEConfig, SPAEOutput, clip_relevance, psnr

__all__ = ["LENS", "Description", "ImagePrefixLM", "LENSConfig", "PrefixLMConfig", "PromptWords", "SPAE",
           "SPAEConfig", "SPAEOutput", "classification_prompt", "clip_relevance", "generation_prompt", "psnr"]
