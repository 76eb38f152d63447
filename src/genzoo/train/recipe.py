"""Recipes: named training set-ups stored as data (YAML files in `genzoo/recipes/`), not as copies of
the training loop. `--set key=value` overrides any field (dotted keys reach into `model` and `data`);
values are parsed as YAML and must have the field's type."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from ..errors import ConfigError
from ..registry import nearest


@dataclass
class DataConfig:
    corpus: str = "stdlib"  # the embedded standard-library corpus
    max_bytes: int | None = None  # cap on source bytes read (None: all)
    val_percent: float = 5.0
    vocab_size: int = 2048  # byte-level BPE trained on the corpus
    tokenizer: str = "byte-bpe"  # genzoo.tokenizers.TOKENIZER_TRAINERS: "byte-bpe" (GPT-2) or "sentencepiece-bpe" (Llama)
    block_size: int = 128
    mask_prob: float = 0.15  # task "mlm": the fraction of tokens to predict (BERT 15%, ModernBERT 30%)
    neg_type_ratio: float = 1.0  # task "gliner": the share of a prompt's free type slots filled with batch negatives
    type_drop: float = 0.0  # task "gliner": the probability of dropping some of a sentence's entity types
    mixture: dict | None = None  # task "gato": {task: sampling weight} (data.mixture.task_names())
    episodes: dict | None = None  # task "gato": {control task: expert episodes trained on} (default: control.CONTROL)
    wide_start_share: dict | None = None  # task "gato": {control task: share of its training episodes started from
    # its wider initial states (control.ControlTask.wide_start)}; None / absent: the default starts only
    # the user's own data (genzoo.data.sources); None: the embedded corpus above
    source: str | None = None  # a folder, a .txt, or a .jsonl / .parquet / .csv table (tabular tasks: a table)
    glob: str = "**/*.txt"  # files of a source folder
    text_column: str = "text"  # lm / mlm: the text; clip: the caption
    input_column: str = "input"  # seq2seq: the input; pairs: the query
    target_column: str = "target"  # seq2seq: the target; pairs: the text the query retrieves
    image_column: str = "image"  # clip: an image file's path (relative to the table's folder)
    examples: int | None = None  # procedural corpora (task vq's "shapes"): how many to render (None: the default)
    paired_percent: float = 100.0  # early-/late-fusion: the share of training images seen with text (paired data)
    # tabular tasks (genzoo.data.tables; data.corpus names an embedded table when there is no source)
    target: str | None = None  # the column to predict (the embedded tables: "target")
    categorical: str = ""  # columns read as categories whatever their dtype (comma-separated)
    numeric: str = ""  # columns read as numbers (comma-separated)
    missing: str = "refuse"  # NaNs: "refuse" (an error naming the column) or "impute" (median / a '<missing>' value)


@dataclass
class LoraSettings:
    """LoRA adapters through `peft` (Hu et al., 2021, arXiv:2106.09685): W x + (alpha / r) B A x on the named
    projections, only A and B trained. r = 0: no adapters (full fine-tuning)."""

    r: int = 0
    alpha: float = 16.0
    dropout: float = 0.0
    targets: str = "q_proj,k_proj,v_proj,o_proj"  # module names (comma-separated) the adapters wrap


@dataclass
class Recipe:
    name: str = ""
    description: str = ""
    task: str = "lm"  # train.tasks.TASKS: "lm" (language modelling), "clip" (image-text contrastive)
    model: dict = field(default_factory=lambda: {"preset": "gpt2-tiny"})  # preset + config overrides
    data: DataConfig = field(default_factory=DataConfig)
    init: str | None = None  # start from this HF directory or genzoo run (its weights and tokenizer; `model` unused)
    lora: LoraSettings = field(default_factory=LoraSettings)
    steps: int = 200
    batch_size: int = 16  # per rank, per micro-step
    grad_accum: int = 1
    lr: float = 3e-3
    lr_scales: dict = field(default_factory=dict)  # {module name: factor}: that module's parameters train at factor x lr
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 20
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global grad norm (0: off)
    eval_every: int = 100
    eval_batches: int = 8
    save_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 1337
    nan_policy: str = "error"  # "error": stop naming the step; "skip": skip that update
    precision: str = "auto"  # "auto": bf16 autocast where the hardware supports it, else fp32; "fp32"; "bf16"
    device: str = "auto"  # "auto": cuda when present, else cpu
    fsdp: bool = False  # shard the model with FSDP2 (fully_shard) under torchrun
    progress: bool = True
    fuse: dict = field(default_factory=dict)  # task "fuse": genzoo.fuse.FuseConfig fields (sources' shards, method, lam)
    vl: dict = field(default_factory=dict)  # tasks "text-qa", "spae": genzoo.train.vl_tasks settings (frozen LM, CLIP)
    parts: dict = field(default_factory=dict)  # pretrained parts a task builds on: name -> run directory (fusion tasks)
    pointe: dict = field(default_factory=dict)  # task "pointe": train.pointe_task.PointETraining fields (objects, stages)

    def __post_init__(self):
        if isinstance(self.data, dict):
            self.data = _build(DataConfig, self.data, "data")
        if isinstance(self.lora, dict):
            self.lora = _build(LoraSettings, self.lora, "lora")
        if not (isinstance(self.lora.r, int) and self.lora.r >= 0):
            raise ConfigError(f"recipe field lora.r={self.lora.r!r} is invalid: an integer >= 0 (0: no adapters)")
        from ..tokenizers import TOKENIZER_TRAINERS

        if self.data.tokenizer not in TOKENIZER_TRAINERS:
            raise ConfigError(f"recipe field data.tokenizer={self.data.tokenizer!r} is invalid: one of "
                              f"{', '.join(TOKENIZER_TRAINERS)}")
        for f in ("steps", "batch_size", "grad_accum", "eval_every", "eval_batches", "save_every", "log_every",
                  "keep_checkpoints"):
            v = getattr(self, f)
            if not (isinstance(v, int) and v > 0):
                raise ConfigError(f"recipe field {f}={v!r} is invalid: must be a positive integer")
        if self.nan_policy not in ("error", "skip"):
            raise ConfigError(f"recipe field nan_policy={self.nan_policy!r} is invalid: 'error' or 'skip'")
        if not all(isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                   for k, v in self.lr_scales.items()):
            raise ConfigError(f"recipe field lr_scales={self.lr_scales!r} is invalid: {{module name: factor >= 0}}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"recipe field precision={self.precision!r} is invalid: 'auto', 'fp32' or 'bf16'")
        check_values(self)
        if not isinstance(self.model, dict) or "preset" not in self.model:
            raise ConfigError("recipe field model needs a 'preset'")
        from ..config import PRESETS

        # check the model fields now, before any data is read or compute is spent
        PRESETS.get(self.model["preset"]).make(**{k: v for k, v in self.model.items() if k != "preset"})
        if self.fuse or self.task == "fuse":
            from ..fuse.config import FuseConfig

            FuseConfig.from_dict(self.fuse)
        if self.pointe or self.task == "pointe":
            from .pointe_task import PointETraining

            PointETraining.from_dict(self.pointe)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# the smallest vocabulary a byte-level BPE can have: its 256 byte tokens and the end-of-text token
MIN_VOCAB = 257
MAX_VOCAB = 2**24


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_values(r: "Recipe") -> None:
    """The range of every recipe value, checked where the recipe is made (before any data is read or compute
    spent): ConfigError naming the field, its value and what is allowed."""
    def need(ok: bool, field: str, value, allowed: str) -> None:
        if not ok:
            raise ConfigError(f"recipe field {field}={value!r} is invalid: {allowed}")

    need(_number(r.lr) and r.lr > 0, "lr", r.lr, "must be a finite number > 0")
    for f, lo, hi in (("min_lr_ratio", 0, 1), ("beta1", 0, 1), ("beta2", 0, 1)):
        v = getattr(r, f)
        need(_number(v) and lo <= v <= hi and (f == "min_lr_ratio" or v < 1), f, v,
             f"must be in [{lo}, {hi}{']' if f == 'min_lr_ratio' else ')'}")
    for f in ("weight_decay", "grad_clip"):
        v = getattr(r, f)
        need(_number(v) and v >= 0, f, v, "must be a finite number >= 0")
    need(_integer(r.warmup_steps) and r.warmup_steps >= 0, "warmup_steps", r.warmup_steps, "must be an integer >= 0")
    need(_integer(r.seed) and 0 <= r.seed < 2**63, "seed", r.seed, "must be an integer in [0, 2**63)")
    d = r.data
    need(_integer(d.block_size) and d.block_size >= 1, "data.block_size", d.block_size, "must be a positive integer")
    need(_integer(d.vocab_size) and MIN_VOCAB <= d.vocab_size <= MAX_VOCAB, "data.vocab_size", d.vocab_size,
         f"must be an integer in {MIN_VOCAB}..{MAX_VOCAB} (a byte-level BPE has at least 256 byte tokens + "
         "end-of-text)")
    need(d.max_bytes is None or (_integer(d.max_bytes) and d.max_bytes > 0), "data.max_bytes", d.max_bytes,
         "must be null (all) or a positive integer")
    need(d.examples is None or (_integer(d.examples) and d.examples >= 2), "data.examples", d.examples,
         "must be null (the corpus's default) or an integer >= 2")
    need(_number(d.val_percent) and 0 < d.val_percent < 100, "data.val_percent", d.val_percent, "must be in (0, 100)")
    need(_number(d.mask_prob) and 0 < d.mask_prob < 1, "data.mask_prob", d.mask_prob, "must be in (0, 1)")


def type_name(hint) -> str:
    return str(hint).replace("<class '", "").replace("'>", "").replace("typing.", "")


def _type_ok(value, hint) -> bool:
    text = str(hint)
    if value is None:
        return "None" in text
    if isinstance(value, bool):
        return "bool" in text
    if isinstance(value, int):
        return "int" in text or "float" in text
    if isinstance(value, float):
        return "float" in text
    if isinstance(value, str):
        return "str" in text
    if isinstance(value, dict):
        return "dict" in text
    return False


def _build(cls, data: dict, where: str):
    hints = get_type_hints(cls)
    for k, v in data.items():
        if k not in hints:
            raise ConfigError(f"unknown key {where}.{k}{nearest(k, hints)}; keys: {', '.join(sorted(hints))}")
        if not _type_ok(v, hints[k]) and not dataclasses.is_dataclass(hints[k]):
            raise ConfigError(f"{where}.{k}={v!r} has the wrong type: expected {type_name(hints[k])}")
    return cls(**data)


def recipe_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("genzoo.recipes").iterdir() if p.name.endswith(".yaml"))


def is_recipe_file(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or os.sep in name or "/" in name


def load_recipe(name: str, overrides: list[str] | dict | None = None) -> Recipe:
    """A recipe by name (`genzoo list`) or the path of a YAML file written like the ones in genzoo/recipes/."""
    if is_recipe_file(name):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"recipe file {name!r}: no such file")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"recipe file {name!r} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"recipe file {name!r} must hold a mapping of recipe keys")
        data.setdefault("name", path.stem)
        return recipe_from_dict(data, overrides)
    names = recipe_names()
    if name not in names:
        raise ConfigError(f"unknown recipe {name!r}{nearest(name, names)}; recipes: {', '.join(names)}")
    data = yaml.safe_load(resources.files("genzoo.recipes").joinpath(f"{name}.yaml").read_text()) or {}
    data["name"] = name
    return recipe_from_dict(data, overrides)


def parse_sets(sets: list[str]) -> dict[str, Any]:
    out = {}
    for s in sets:
        if "=" not in s:
            raise ConfigError(f"--set {s!r}: expected key=value")
        k, v = s.split("=", 1)
        out[k.strip()] = parse_value(v)
    return out


def parse_value(text: str):
    """int, then float (so 3e-3 is a number, which YAML 1.1 would leave a string), then YAML, then str."""
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def recipe_from_dict(data: dict, overrides: list[str] | dict | None = None) -> Recipe:
    data = {**data, "model": dict(data.get("model", {})), "data": dict(data.get("data", {})),
            "lora": dict(data.get("lora") or {})}
    sets = parse_sets(overrides) if isinstance(overrides, list) else dict(overrides or {})
    hints = get_type_hints(Recipe)
    for key, value in sets.items():
        head, _, rest = key.partition(".")
        if head == "model" and rest:  # model.* is checked against the model config when it is built
            data["model"][rest] = value
        elif head == "fuse" and rest:  # fuse.* is checked by FuseConfig when the recipe is built
            data["fuse"] = {**data.get("fuse", {}), rest: value}
        elif head == "vl" and rest:  # vl.* is checked by the task that reads it
            data["vl"] = {**data.get("vl", {}), rest: value}
        elif head == "parts" and rest:  # parts.* is checked by the task that reads it
            data["parts"] = {**(data.get("parts") or {}), rest: value}
        elif head == "pointe" and rest:  # pointe.* is checked by PointETraining when the recipe is built
            data["pointe"] = {**data.get("pointe", {}), rest: value}
        elif head == "data" and rest:
            dh = get_type_hints(DataConfig)
            if rest not in dh:
                raise ConfigError(f"unknown --set key {key!r}{nearest(rest, dh)}; data keys: {', '.join(sorted(dh))}")
            if not _type_ok(value, dh[rest]):
                raise ConfigError(f"--set {key}={value!r} has the wrong type: expected {type_name(dh[rest])}")
            data["data"][rest] = value
        elif head == "lora" and rest:
            lh = get_type_hints(LoraSettings)
            if rest not in lh:
                raise ConfigError(f"unknown --set key {key!r}{nearest(rest, lh)}; lora keys: {', '.join(sorted(lh))}")
            if not _type_ok(value, lh[rest]):
                raise ConfigError(f"--set {key}={value!r} has the wrong type: expected {type_name(lh[rest])}")
            data["lora"][rest] = value
        elif key in hints and key not in ("model", "data", "name", "lora", "fuse", "vl", "parts", "pointe"):
            if not _type_ok(value, hints[key]):
                raise ConfigError(f"--set {key}={value!r} has the wrong type: expected {type_name(hints[key])}")
            data[key] = value
        else:
            choices = [k for k in hints if k not in ("model", "data", "name", "lora", "fuse", "vl", "parts", "pointe")] + \
                ["model.<field>", "data.<field>", "lora.<field>", "fuse.<field>", "vl.<field>", "parts.<name>",
                 "pointe.<field>"]
            raise ConfigError(f"unknown --set key {key!r}{nearest(key, choices)}; keys: {', '.join(choices)}")
    top = {k: v for k, v in data.items() if k not in ("data", "lora")}
    for k, v in top.items():
        if k not in hints:
            raise ConfigError(f"unknown recipe key {k!r}{nearest(k, hints)}")
        if k != "model" and not _type_ok(v, hints[k]):
            raise ConfigError(f"recipe key {k}={v!r} has the wrong type: expected {type_name(hints[k])}")
    return Recipe(**top, data=_build(DataConfig, data["data"], "data"), lora=_build(LoraSettings, data["lora"], "lora"))
