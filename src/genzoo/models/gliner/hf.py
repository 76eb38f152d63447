"""The `gliner` package's checkpoint directory: gliner_config.json, pytorch_model.bin (read with weights_only) or
model.safetensors, and the backbone's tokenizer files with the GLiNER tokens added.

Read fully offline: the backbone's config is gliner_config.json's `encoder_config` (the package writes it), else a
config.json beside it, else the local directory `model_name` names; it is never fetched. The backbone's weights
are read by its own encoder format (bert, deberta-v2, modernbert) under the package's prefix. Options this
implementation does not have (another span mode, token-level models, bi-encoders, post-fusion, ...) are refused
naming the field. A save writes what `GLiNER.from_pretrained(dir, local_files_only=True)` loads: no missing or
unexpected keys, the backbone config inside gliner_config.json, the tokenizer beside it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...errors import CheckpointError, ConfigError
from ...interop.files import read_config
from ...interop.formats import FORMATS, CheckpointFormat, KeyMap
from .config import GLiNERConfig
from .processing import GLiNERTokenizer
from .span import SPAN_REPS

PREFIX = "token_rep_layer.bert_layer.model."  # the backbone's own keys follow
ENCODER_FORMATS = ("bert", "deberta-v2", "modernbert")
OUT = "span_rep_layer.span_rep_layer.out_project.0."  # the fused first layer of markerV0's out_project
# fields of gliner_config.json that select what genzoo does not implement: field -> (is it fine, what is allowed)
REFUSED = {
    "model_type": (lambda v: v in (None, "gliner_uni_encoder_span"), "a uni-encoder span model"),
    "span_mode": (lambda v: v in SPAN_REPS, f"one of {SPAN_REPS.names()}"),
    "subtoken_pooling": (lambda v: v in (None, "first"), "'first'"),
    "words_splitter_type": (lambda v: v in (None, "whitespace"), "'whitespace'"),
    "post_fusion_schema": (lambda v: not v, "none"),
    "fuse_layers": (lambda v: not v, "false"),
    "labels_encoder": (lambda v: v is None, "none (bi-encoder models are not supported)"),
    "labels_decoder": (lambda v: v is None, "none"),
    "relations_layer": (lambda v: v is None, "none"),
    "span_encoder_config": (lambda v: v is None, "none"),
    "precomputed_prompts_mode": (lambda v: not v, "off"),
}


def head_keys(config: GLiNERConfig) -> KeyMap:
    """genzoo <-> package names of everything but the backbone."""
    pairs = [("projection.{p}", "token_rep_layer.projection.{p}")]
    for part in ("project_start", "project_end"):
        pairs += [(f"span_rep.{part}.up.{{p}}", f"span_rep_layer.span_rep_layer.{part}.0.{{p}}"),
                  (f"span_rep.{part}.down.{{p}}", f"span_rep_layer.span_rep_layer.{part}.3.{{p}}")]
    pairs += [("span_rep.start_in.{p}", OUT + "start.{p}"), ("span_rep.end_in.weight", OUT + "end.weight"),
              ("span_rep.out.{p}", "span_rep_layer.span_rep_layer.out_project.3.{p}"),
              ("prompt_rep.up.{p}", "prompt_rep_layer.0.{p}"), ("prompt_rep.down.{p}", "prompt_rep_layer.3.{p}")]
    for layer in range(config.num_rnn_layers):
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            for way in ("", "_reverse"):
                pairs.append((f"rnn.{kind}_l{layer}{way}", f"rnn.lstm.{kind}_l{layer}{way}"))
    return KeyMap(pairs)


@FORMATS.register("gliner")
class GLiNERFormat(CheckpointFormat):
    model_type = "gliner"
    config_file = "gliner_config.json"

    def read_config(self, directory) -> dict:
        directory = Path(directory)
        cfg = read_config(directory, self.config_file)
        if not cfg.get("encoder_config"):
            name = cfg.get("model_name") or ""
            for source in (directory, Path(name) if name else None):
                if source is not None and (source / "config.json").is_file():
                    cfg["encoder_config"] = read_config(source)
                    break
            else:
                raise CheckpointError(
                    f"{directory / self.config_file}: no encoder_config, and neither {directory} nor model_name="
                    f"{name!r} holds the backbone's config.json; genzoo never fetches it from the Hub: copy the "
                    "backbone's config.json into the directory")
        return cfg

    def config_from_hf(self, hf: dict) -> GLiNERConfig:
        where = self.config_file
        for name, (ok, allowed) in REFUSED.items():
            if not ok(hf.get(name)):
                raise CheckpointError(f"{where}: {name}={hf.get(name)!r} is not supported; supported: {allowed}")
        enc = hf["encoder_config"]
        kind = enc.get("model_type") if isinstance(enc, dict) else None
        if kind not in ENCODER_FORMATS:
            raise CheckpointError(f"{where}: encoder_config model_type {kind!r} is not supported; supported: "
                                  f"{', '.join(ENCODER_FORMATS)}")
        # the package builds the backbone with AutoModel: the base model whatever `architectures` says
        encoder = FORMATS.get(kind)().config_from_hf({k: v for k, v in enc.items() if k != "architectures"})
        try:
            return GLiNERConfig(
                encoder=encoder, hidden_size=hf.get("hidden_size", 512), max_width=hf.get("max_width", 12),
                max_len=hf.get("max_len", 384), max_types=hf.get("max_types", 25), dropout=hf.get("dropout", 0.4),
                num_rnn_layers=hf.get("num_rnn_layers", 1), span_mode=hf.get("span_mode", "markerV0"),
                embed_ent_token=hf.get("embed_ent_token", True), class_token_index=hf.get("class_token_index", -1),
                ent_token=hf.get("ent_token", "<<ENT>>"), sep_token=hf.get("sep_token", "<<SEP>>"),
                model_name=hf.get("model_name") or "")
        except ConfigError as e:
            raise CheckpointError(f"{where}: {e}") from None

    def config_to_hf(self, c: GLiNERConfig) -> dict:
        kind = c.encoder.checkpoint_format
        if kind not in ENCODER_FORMATS:
            raise ConfigError(f"config field encoder.checkpoint_format={kind!r} cannot be written as a 'gliner' "
                              f"checkpoint (one of {ENCODER_FORMATS}); save with format='genzoo' instead")
        encoder = FORMATS.get(kind)().config_to_hf(c.encoder)
        return {
            "model_name": c.model_name, "name": "gliner", "max_width": c.max_width, "hidden_size": c.hidden_size,
            "dropout": c.dropout, "fine_tune": True, "subtoken_pooling": "first", "span_mode": c.span_mode,
            "post_fusion_schema": "", "num_post_fusion_layers": 1, "vocab_size": c.encoder.vocab_size,
            "max_neg_type_ratio": 1, "max_types": c.max_types, "max_len": c.max_len,
            "words_splitter_type": "whitespace", "num_rnn_layers": c.num_rnn_layers, "fuse_layers": False,
            "embed_ent_token": c.embed_ent_token, "class_token_index": c.class_token_index,
            "encoder_config": encoder, "span_encoder_config": None, "ent_token": c.ent_token,
            "sep_token": c.sep_token, "labels_encoder": None, "labels_decoder": None, "relations_layer": None,
        }

    def state_from_hf(self, tensors, config):
        backbone = {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}
        state, unexpected = FORMATS.get(config.encoder.checkpoint_format)().state_from_hf(backbone, config.encoder)
        state = {f"encoder.{k}": v for k, v in state.items()}
        unexpected = [PREFIX + k for k in unexpected]
        head = {k: v for k, v in tensors.items() if not k.startswith(PREFIX)}
        if OUT + "weight" in head:  # (4D, 2D) -> the start and end halves, (4D, D) each (views: no copy)
            head[OUT + "start.weight"], head[OUT + "end.weight"] = head.pop(OUT + "weight").chunk(2, dim=1)
        if OUT + "bias" in head:
            head[OUT + "start.bias"] = head.pop(OUT + "bias")
        rest, more = head_keys(config).rename_in(head)
        return {**state, **rest}, unexpected + more

    def state_to_hf(self, state, config):
        encoder = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        out = {PREFIX + k: v for k, v in
               FORMATS.get(config.encoder.checkpoint_format)().state_to_hf(encoder, config.encoder).items()}
        head = head_keys(config).rename_out({k: v for k, v in state.items() if not k.startswith("encoder.")})
        head[OUT + "weight"] = torch.cat([head.pop(OUT + "start.weight"), head.pop(OUT + "end.weight")], dim=1)
        head[OUT + "bias"] = head.pop(OUT + "start.bias")
        return {**out, **head}

    def read_files(self, model, directory) -> None:
        """The tokenizer beside the weights (none: predict_entities asks for one)."""
        directory = Path(directory)
        if not (directory / "tokenizer.json").exists():
            return
        tok = GLiNERTokenizer.from_dir(directory)
        cfg = model.config
        if tok.token_id(cfg.ent_token) != cfg.class_token_index:
            raise CheckpointError(f"{directory}: class_token_index={cfg.class_token_index} in {self.config_file}, but "
                                  f"the tokenizer gives {cfg.ent_token!r} the id {tok.token_id(cfg.ent_token)}")
        model.tokenizer = tok
