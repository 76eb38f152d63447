"""genzoo: the models of generative AI from one set of parts.

    import genzoo
    model = genzoo.load("path/to/hf_dir")          # any supported architecture, eval mode
    genzoo.save(model, "out_dir")                   # transformers loads it with no missing keys
    model = genzoo.build("llama-tiny", n_layers=4)  # a preset with overrides, random weights
    chat = genzoo.pipeline("text-generation", "path/to/model.gguf")  # text in, text out
    fast = genzoo.quantize(model, "int8")           # a quantized copy (genzoo.quant)
"""

from __future__ import annotations

from .config import GENRES, PRESETS
from .errors import CheckpointError, ConfigError, GenzooError, InputError
from . import models  # noqa: F401  (registers genres, presets and checkpoint formats)
from .interop import load, save
from .pipeline import pipeline

__version__ = "0.1.0"


def quantize(model, scheme: str, **options):
    """A quantized copy of `model`: "w8a8" (simulated, needs calibration=), "int8", "int8-weight", "int4-weight",
    "bf16" (see `genzoo.quant`)."""
    from .quant import quantize as _quantize

    return _quantize(model, scheme, **options)


def build(preset: str, **overrides):
    """A randomly initialised model from a registered preset, with config fields overridden."""
    config = PRESETS.get(preset).make(**overrides)
    return GENRES.get(config.genre)(config)


__all__ = ["CheckpointError", "ConfigError", "GenzooError", "InputError", "build", "load", "pipeline", "quantize",
           "save", "__version__"]
