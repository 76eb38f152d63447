from ...registry import Registry
MODALITY_TOKENIZERS = Registry("modality")
