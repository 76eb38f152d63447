"""Tabular models: FT-Transformer (classification, regression) and TabDDPM (a generator of synthetic tables), on a
shared table codec (`TableSchema`: column types, quantile normalisation, categories, missing values)."""

from .config import FTTransformerConfig, TabDDPMConfig
from .copies import TrainingCopiesError, TrainingRows
from .ft_transformer import FeatureTokenizer, FTTransformer, TabularOutput
from .schema import Column, TableSchema
from .tab_ddpm import TabDDPM, TabDDPMOutput

__all__ = ["Column", "FTTransformer", "FTTransformerConfig", "FeatureTokenizer", "TabDDPM", "TabDDPMConfig", "TabDDPMOutput", "TableSchema",
           "TabularOutput", "TrainingCopiesError", "TrainingRows"]
