"""Schema checks of what a checkpoint directory says about itself, made before anything is built or read:
the fields of config.json that genzoo's formats read (type and range), and the size of the model it describes
against the memory there is (`fits_in_memory`).

A field is checked where it is present (a format supplies its own default for an absent optional field; an
absent required field is named by `interop.load`). Divisibility (hidden size by heads, heads by key-value heads)
is checked by the config dataclasses when the format builds the config, as for `genzoo.build`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..errors import ConfigError

MAX_LAYERS = 4096  # far beyond any published model; a larger count is a corrupt or hostile file
MAX_SIZE = 2**40  # any other size: a value beyond it cannot describe a model that fits anywhere

# sizes and counts: a positive integer (None allowed where the format reads `or default`)
_POSITIVE = {
    "vocab_size", "n_embd", "n_positions", "n_head", "n_inner", "hidden_size", "num_attention_heads",
    "intermediate_size", "max_position_embeddings", "num_key_value_heads", "head_dim", "num_local_experts",
    "num_experts_per_tok", "d_model", "d_ff", "d_kv", "num_heads", "relative_attention_num_buckets",
    "relative_attention_max_distance", "projection_dim", "image_size", "patch_size", "num_channels",
    "global_attn_every_n_layers", "local_attention", "embedding_size", "sliding_window",
}
_LAYERS = {"n_layer", "num_hidden_layers", "num_layers", "num_decoder_layers"}
_NULLABLE = {"n_inner", "num_key_value_heads", "head_dim", "sliding_window", "num_decoder_layers",
             "max_relative_positions", "position_buckets"}
# -1 means "the default" for DeBERTa's relative positions
_MIN_MINUS_ONE = {"max_relative_positions", "position_buckets"}
_NON_NEGATIVE_INT = {"type_vocab_size"}
# finite floats, with their range
_FLOATS = {
    "layer_norm_epsilon": (0, None), "layer_norm_eps": (0, None), "rms_norm_eps": (0, None), "norm_eps": (0, None),
    "rope_theta": (0, None), "global_rope_theta": (0, None), "local_rope_theta": (0, None),
    "router_aux_loss_coef": (0, None), "router_jitter_noise": (0, None), "initializer_range": (0, None),
    "logit_scale_init_value": (None, None), "resid_pdrop": (0, 1), "embd_pdrop": (0, 1), "attn_pdrop": (0, 1),
    "attention_dropout": (0, 1), "hidden_dropout_prob": (0, 1), "attention_probs_dropout_prob": (0, 1),
    "dropout_rate": (0, 1),
}
_BOOLS = {"tie_word_embeddings", "attention_bias", "mlp_bias", "norm_bias", "classifier_bias", "decoder_bias",
          "relative_attention", "share_att_key", "position_biased_input", "scale_attn_weights",
          "scale_attn_by_inverse_layer_idx", "add_cross_attention", "scale_decoder_outputs"}
_TOKEN_IDS = {"bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"}
_INPUT_IDS = {"pad_token_id", "decoder_start_token_id"}  # ids the model embeds: must lie inside the vocabulary
_STRINGS = {"model_type", "activation_function", "hidden_act", "hidden_activation", "classifier_activation",
            "feed_forward_proj", "genre", "norm_rel_ebd"}
_DICTS = {"rope_parameters", "rope_scaling", "text_config", "vision_config", "genzoo_config"}
_NESTED = ("text_config", "vision_config")  # sub-configs read with the same field names


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _bad(file, where: str, key: str, value, allowed: str) -> ConfigError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return ConfigError(f"{file}: config field {where}{key}={shown} is invalid: {allowed}")


def check_hf_config(hf: dict, file: Path | str, where: str = "") -> None:
    """Raise ConfigError naming the file, the field, its value and what is allowed, for the first field of a
    config.json dict (and of its text/vision sub-configs) whose type or range is wrong."""
    for key, v in hf.items():
        if v is None and (key in _NULLABLE or key in _TOKEN_IDS or key in _DICTS):
            continue
        if key in _POSITIVE or key in _LAYERS:
            top = MAX_LAYERS if key in _LAYERS else MAX_SIZE
            if not (_is_int(v) and 0 < v <= top):
                raise _bad(file, where, key, v, f"must be an integer in 1..{top}")
        elif key in _MIN_MINUS_ONE:
            if not (_is_int(v) and -1 <= v <= MAX_SIZE):
                raise _bad(file, where, key, v, "must be an integer >= -1")
        elif key in _NON_NEGATIVE_INT:
            if not (_is_int(v) and 0 <= v <= MAX_SIZE):
                raise _bad(file, where, key, v, "must be an integer >= 0")
        elif key in _FLOATS:
            lo, hi = _FLOATS[key]
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (lo is None or v >= lo) and (hi is None or v < hi)
            if not ok:
                rng = "a finite number" + (f" >= {lo}" if lo is not None else "") + (f" and < {hi}" if hi else "")
                raise _bad(file, where, key, v, f"must be {rng}")
        elif key in _BOOLS:
            if not isinstance(v, bool):
                raise _bad(file, where, key, v, "must be true or false")
        elif key in _TOKEN_IDS:
            ids = v if isinstance(v, list) else [v]
            if not ids or not all(_is_int(i) and i >= 0 for i in ids):
                raise _bad(file, where, key, v, "must be a token id (an integer >= 0) or a list of them")
            vocab = hf.get("vocab_size")  # bos / eos beyond the vocabulary occur in real configs, unused
            if key in _INPUT_IDS and _is_int(vocab) and vocab > 0 and max(ids) >= vocab:
                raise _bad(file, where, key, v, f"must be a token id below vocab_size={vocab}")
        elif key in _STRINGS:
            if not isinstance(v, str):
                raise _bad(file, where, key, v, "must be a string")
        elif key in _DICTS:
            if not isinstance(v, dict):
                raise _bad(file, where, key, v, "must be a JSON object")
            if key in _NESTED:
                check_hf_config(v, file, f"{where}{key}.")



# diffusers' UNet2DModel config.json and scheduler_config.json: the fields genzoo's diffusers format reads
_DIFFUSERS_POSITIVE = {"in_channels", "out_channels", "norm_num_groups", "attention_head_dim", "num_train_timesteps"}
_DIFFUSERS_NULLABLE = {"attention_head_dim", "num_class_embeds"}
_DIFFUSERS_FLOATS = {"norm_eps": (0, None), "beta_start": (0, 1), "beta_end": (0, 1), "freq_shift": (None, None)}
_DIFFUSERS_BOOLS = {"flip_sin_to_cos", "clip_sample"}
_DIFFUSERS_STRINGS = {"_class_name", "beta_schedule", "prediction_type"}


def check_diffusers_config(cfg: dict, file: Path | str, unread: tuple[str, ...] = ()) -> None:
    """check_hf_config for a diffusers config.json / scheduler_config.json: ConfigError naming the file, the field,
    its value and what is allowed (block_out_channels: a list of sizes; layers_per_block at most MAX_LAYERS).
    unread: fields of this file genzoo does not read (a UNet's num_train_timesteps, null in real configs)."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{file}: must hold a JSON object, not {type(cfg).__name__}")
    for key, v in cfg.items():
        if key in unread or (v is None and key in _DIFFUSERS_NULLABLE):
            continue
        if key in _DIFFUSERS_POSITIVE or key == "num_class_embeds" or key == "layers_per_block":
            top = MAX_LAYERS if key == "layers_per_block" else MAX_SIZE
            if not (_is_int(v) and 0 < v <= top):
                raise _bad(file, "", key, v, f"must be an integer in 1..{top}")
        elif key in ("block_out_channels", "down_block_types", "up_block_types"):
            kind = "size" if key == "block_out_channels" else "block type"
            ok = isinstance(v, list) and v and all(
                (_is_int(w) and 0 < w <= MAX_SIZE) if kind == "size" else isinstance(w, str) for w in v)
            if not ok or len(v) > MAX_LAYERS:
                raise _bad(file, "", key, v, f"must be a non-empty list of {kind}s"
                           + (f" (integers in 1..{MAX_SIZE})" if kind == "size" else " (strings)"))
        elif key in _DIFFUSERS_FLOATS:
            lo, hi = _DIFFUSERS_FLOATS[key]
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (lo is None or v >= lo) and (hi is None or v < hi)
            if not ok:
                rng = "a finite number" + (f" >= {lo}" if lo is not None else "") + (f" and < {hi}" if hi else "")
                raise _bad(file, "", key, v, f"must be {rng}")
        elif key in _DIFFUSERS_BOOLS:
            if not isinstance(v, bool):
                raise _bad(file, "", key, v, "must be true or false")
        elif key in _DIFFUSERS_STRINGS:
            if not isinstance(v, str):
                raise _bad(file, "", key, v, "must be a string")

# ---------------------------------------------------------------- memory
def available_memory(device) -> int | None:
    """Bytes the device can still give: for the CPU, MemAvailable + SwapFree (bounded by a cgroup limit where
    one applies); for CUDA, the free device memory; None where genzoo cannot tell."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except Exception:  # no driver, or no such device: the real allocation reports it
            return None
    if device.type != "cpu":
        return None
    avail = None
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        avail = (int(info["MemAvailable"].split()[0]) + int(info.get("SwapFree", "0 kB").split()[0])) * 1024
    except (OSError, KeyError, ValueError):
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:  # a container's own limit (cgroup v2)
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            avail = min(avail, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return avail


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PB"


def fits_in_memory(build, *, device="cpu", dtype=None, factor: float = 1.0, spare: int = 0, where: str = "") -> None:
    """Call `build()` (-> a model) on the meta device (shapes only: no memory, no compute), count the bytes of its
    parameters (x factor: 4 for training with AdamW) and buffers in `dtype` (default: as built), and raise
    ConfigError when they exceed the memory `device` has available (+ spare: bytes a memory-mapped file serves).
    A model that cannot be built on the meta device is left to its real build."""
    import torch

    from ..errors import GenzooError

    import warnings

    try:  # the probe is thrown away: what its build warns about (a meta copy is a no-op, say) the real build says
        with torch.random.fork_rng(devices=[]), torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the real build draws the same numbers (fork_rng)
            probe = build()
    except GenzooError:
        raise
    except Exception:
        return
    size = (lambda t: torch.empty((), dtype=dtype).element_size()) if dtype is not None and dtype.is_floating_point \
        else (lambda t: t.element_size())
    params = {id(p): p for p in probe.parameters()}.values()
    n_params = sum(p.numel() for p in params)
    need = factor * sum(p.numel() * (size(p) if p.is_floating_point() else p.element_size()) for p in params)
    need += sum(b.numel() * b.element_size() for b in probe.buffers())
    avail = available_memory(device)
    if avail is not None and need > avail + spare:
        config = getattr(probe, "config", None)
        sizes = ", ".join(f"{k}={getattr(config, k)}" for k in ("vocab_size", "max_positions", "d_model", "n_layers",
                                                                "d_ff", "image_size") if hasattr(config, k))
        sizes = f" ({sizes})" if sizes else ""
        raise ConfigError(f"{where}the model{sizes} has {n_params:,} parameters and needs {human(need)}; "
                          f"{torch.device(device)} has {human(avail + spare)} available")
