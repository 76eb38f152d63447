"""sentence-transformers directories (Reimers & Gurevych, 2019, arXiv:1908.10084): the encoder's checkpoint at the
top level, and beside it `modules.json` (the module chain: Transformer, Pooling, Normalize),
`sentence_bert_config.json` (`max_seq_length`, `do_lower_case`) and `1_Pooling/config.json` (the pooling mode).
Reading them sets the encoder config's `pooling`, `normalize`, `max_seq_length`, `lowercase`, so
`EncoderModel.encode` computes what `SentenceTransformer.encode` computes; writing them back lets
sentence-transformers load a directory `genzoo.save` wrote. A chain genzoo cannot compute (a Dense layer, several
pooling modes concatenated) is refused, never approximated."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ...errors import CheckpointError

MODULES = "modules.json"
SETTINGS = "sentence_bert_config.json"
ST = "sentence_transformers.models."
# 1_Pooling/config.json flag -> genzoo pooling name
MODES = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean", "pooling_mode_max_tokens": "max",
         "pooling_mode_mean_sqrt_len_tokens": "mean-sqrt-len", "pooling_mode_weightedmean_tokens": "weighted-mean",
         "pooling_mode_lasttoken": "last-token"}


def _json(file: Path) -> dict:
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{file}: cannot read ({e})") from None


def read_sentence_modules(config, directory: Path):
    """`config` with the settings of the sentence-transformers modules in `directory` (as it is without
    modules.json)."""
    directory = Path(directory)
    if not (directory / MODULES).exists():
        return config
    modules = _json(directory / MODULES)
    if not isinstance(modules, list):
        raise CheckpointError(f"{directory / MODULES}: expected a list of modules")
    changes = {"sentence_modules": True, "normalize": False}
    for m in modules:
        kind, path = str(m.get("type", "")).removeprefix(ST), m.get("path", "")
        if kind == "Transformer":
            if path not in ("", "."):
                raise CheckpointError(f"{directory / MODULES}: the Transformer module is in {path!r}; "
                                      f"load {directory / path} instead")
        elif kind == "Pooling":
            changes["pooling"] = pooling_mode(_json(directory / path / "config.json"), directory / path)
        elif kind == "Normalize":
            changes["normalize"] = True
        else:
            raise CheckpointError(f"{directory / MODULES}: sentence-transformers module {m.get('type')!r} is not "
                                  "supported (supported: Transformer, Pooling, Normalize)")
    if (directory / SETTINGS).exists():
        settings = _json(directory / SETTINGS)
        if settings.get("max_seq_length") is not None:
            changes["max_seq_length"] = min(int(settings["max_seq_length"]), config.max_positions)
        changes["lowercase"] = bool(settings.get("do_lower_case", False))
    return dataclasses.replace(config, **changes)


def pooling_mode(cfg: dict, where: Path) -> str:
    on = [name for flag, name in MODES.items() if cfg.get(flag)]
    if len(on) != 1:
        raise CheckpointError(f"{where / 'config.json'}: pooling modes {on or 'none'}; genzoo computes exactly one "
                              f"of {sorted(MODES.values())}")
    if not cfg.get("include_prompt", True):
        raise CheckpointError(f"{where / 'config.json'}: include_prompt=false is not supported")
    return on[0]


def write_sentence_modules(model, directory: Path) -> None:
    """The sentence-transformers files for `model`'s config (nothing unless config.sentence_modules)."""
    c, d = model.config, Path(directory)
    if not c.sentence_modules:
        return
    modules = [{"idx": 0, "name": "0", "path": "", "type": ST + "Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": ST + "Pooling"}]
    if c.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": ST + "Normalize"})
        (d / "2_Normalize").mkdir(exist_ok=True)
    (d / MODULES).write_text(json.dumps(modules, indent=2) + "\n")
    settings = {"max_seq_length": c.max_seq_length or c.max_positions, "do_lower_case": c.lowercase}
    (d / SETTINGS).write_text(json.dumps(settings, indent=2) + "\n")
    (d / "1_Pooling").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": c.d_model, **{flag: name == c.pooling for flag, name in MODES.items()},
               "include_prompt": True}
    (d / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n")
    (d / "config_sentence_transformers.json").write_text(json.dumps({"similarity_fn_name": "cosine"}, indent=2) + "\n")


class SentenceModules:
    """Mixed into the encoder checkpoint formats: `genzoo.load` / `genzoo.save` read and write the modules."""

    def read_extras(self, config, directory):
        return read_sentence_modules(config, directory)

    def write_extras(self, model, directory) -> None:
        write_sentence_modules(model, directory)
