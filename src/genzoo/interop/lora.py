"""Models with LoRA adapters (`peft.PeftModel` around a genzoo model). `save` writes the merged model as the
directory's checkpoint (what `genzoo.load` and transformers read) and the adapter, as `peft` saves it, in
`adapter/` (`peft.PeftModel.from_pretrained(genzoo.load(base), dir / "adapter")` puts it back on the base model,
`merge_and_unload()` merges it); `load_adapter` restores a saved adapter into a model that has the same adapters
(a resumed run)."""

from __future__ import annotations

import copy
from pathlib import Path

from ..errors import CheckpointError

ADAPTER = "adapter"


def is_lora(model) -> bool:
    return type(model).__module__.startswith("peft.")


def merged(model):
    """A plain model with the adapters merged into its weights (the adapted model is left as it is)."""
    return copy.deepcopy(model).merge_and_unload()


def save_adapter(model, directory: Path) -> None:
    model.save_pretrained(str(Path(directory) / ADAPTER))


def load_adapter(model, directory: Path) -> None:
    """Put the adapter weights saved in directory/adapter into `model` (the same adapters), strictly."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    file = Path(directory) / ADAPTER / "adapter_model.safetensors"
    if not file.exists():
        raise CheckpointError(f"{directory}: no {ADAPTER}/adapter_model.safetensors (was the run trained with LoRA?)")
    result = set_peft_model_state_dict(model, load_file(str(file)))
    bad = [k for k in result.unexpected_keys if "lora_" in k]
    missing = [k for k in result.missing_keys if "lora_" in k]
    if bad or missing:
        raise CheckpointError(f"{file}: adapter does not match the model; missing {missing[:10]}, "
                              f"unexpected {bad[:10]}")
