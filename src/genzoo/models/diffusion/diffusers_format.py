"""diffusers directories: a `UNet2DModel` (config.json with `_class_name`, `diffusion_pytorch_model.safetensors`)
with its noise schedule (`scheduler_config.json`), alone or as the `unet/` and `scheduler/` of a pipeline directory
(`model_index.json`, what `DDPMPipeline` / `DDIMPipeline.from_pretrained` read). `genzoo.load` reads either into a
`DiffusionModel` with the `unet2d` denoiser; `genzoo.save(model, dir, format="diffusers")` writes a DDPMPipeline
directory. Options genzoo does not compute (other block types, Fourier time embeddings, other schedulers' spacings
or variances) are refused with their name, never approximated."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import save_file

from ...config import GENRES
from ...errors import CheckpointError
from ...interop.atomic import file_mode
from ...interop.files import read_pickle, read_safetensors
from ...interop.formats import FORMATS, CheckpointFormat, require
from ...interop.meta import assign_weights, empty_parameters
from ...interop.schema import check_diffusers_config, fits_in_memory
from .config import DiffusionConfig

WEIGHTS = "diffusion_pytorch_model.safetensors"
# genzoo module name fragment <-> diffusers'
RENAMES = [(".attn.q_proj.", ".to_q."), (".attn.k_proj.", ".to_k."), (".attn.v_proj.", ".to_v."),
           (".attn.o_proj.", ".to_out.0."), (".norm.", ".group_norm."), (".emb.", ".time_emb_proj."),
           (".skip.", ".conv_shortcut.")]
# UNet2DModel config values genzoo computes (key: allowed values); anything else is refused
FIXED = {"time_embedding_type": ("positional",), "act_fn": ("silu",), "resnet_time_scale_shift": ("default",),
         "downsample_type": ("conv",), "upsample_type": ("conv",), "center_input_sample": (False,),
         "add_attention": (True,), "attn_norm_num_groups": (None,), "mid_block_scale_factor": (1, 1.0),
         "downsample_padding": (1,), "class_embed_type": (None,), "mid_block_type": ("UNetMidBlock2D",),
         "time_embedding_dim": (None,), "dropout": (0.0, 0)}
SCHEDULER_FIXED = {"variance_type": ("fixed_small",), "timestep_spacing": ("leading",), "thresholding": (False,),
                   "trained_betas": (None,), "clip_sample_range": (1.0, 1), "steps_offset": (0,),
                   "rescale_betas_zero_snr": (False,)}


def to_diffusers(key: str) -> str:
    key = "." + key.removeprefix("denoiser.")
    for g, d in RENAMES:
        key = key.replace(g, d)
    return key[1:]


def to_genzoo(key: str) -> str:
    key = "." + key
    for g, d in RENAMES:
        key = key.replace(d, g)
    return "denoiser" + key


def _json(file: Path) -> dict:
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{file}: cannot read ({e})") from None


def _check(cfg: dict, fixed: dict, where: Path) -> None:
    for k, allowed in fixed.items():
        if k in cfg and cfg[k] not in allowed:
            raise CheckpointError(f"{where}: {k}={cfg[k]!r} is not supported (genzoo computes {allowed})")


def config_from_diffusers(unet: dict, sched: dict, where: Path) -> DiffusionConfig:
    _check(unet, FIXED, where / "config.json")
    _check(sched, SCHEDULER_FIXED, where / "scheduler_config.json")
    if unet.get("in_channels", 3) != unet.get("out_channels", 3):
        raise CheckpointError(f"{where / 'config.json'}: in_channels != out_channels is not supported")
    down, up = list(unet.get("down_block_types", ())), list(unet.get("up_block_types", ()))
    if any(t not in ("DownBlock2D", "AttnDownBlock2D") for t in down) or \
            [t.replace("Up", "Down") for t in reversed(up)] != down:
        raise CheckpointError(f"{where / 'config.json'}: block types {down} / {up} are not supported (DownBlock2D / "
                              "AttnDownBlock2D, mirrored by UpBlock2D / AttnUpBlock2D)")
    widths = list(unet["block_out_channels"])
    base = widths[0]
    if any(w % base for w in widths):
        raise CheckpointError(f"{where / 'config.json'}: block_out_channels {widths} must be multiples of the first")
    size = unet.get("sample_size")
    size = size[0] if isinstance(size, (list, tuple)) and len(set(size)) == 1 else size
    if not isinstance(size, int):
        raise CheckpointError(f"{where / 'config.json'}: sample_size {unet.get('sample_size')!r}: a square size needed")
    kind = sched.get("_class_name", "DDPMScheduler")
    if kind not in ("DDPMScheduler", "DDIMScheduler"):
        raise CheckpointError(f"{where / 'scheduler_config.json'}: {kind} is not supported (DDPMScheduler, "
                              "DDIMScheduler)")
    classes = unet.get("num_class_embeds")
    return DiffusionConfig(
        denoiser="unet2d", image_size=size, channels=unet.get("in_channels", 3),
        n_classes=classes - 1 if classes else 0, cond_drop_prob=0.0, base_channels=base,
        channel_mults=tuple(w // base for w in widths), n_res_blocks=unet.get("layers_per_block", 2),
        groups=unet.get("norm_num_groups", 32), norm_eps=unet.get("norm_eps", 1e-5),
        attention_levels=tuple(i for i, t in enumerate(down) if t.startswith("Attn")),
        attention_head_dim=unet.get("attention_head_dim") or widths[0],
        flip_sin_to_cos=unet.get("flip_sin_to_cos", True), freq_shift=unet.get("freq_shift", 0),
        num_train_timesteps=sched.get("num_train_timesteps", 1000), beta_schedule=sched.get("beta_schedule", "linear"),
        beta_start=sched.get("beta_start", 0.0001), beta_end=sched.get("beta_end", 0.02),
        prediction_type=sched.get("prediction_type", "epsilon"), clip_sample=sched.get("clip_sample", True),
        checkpoint_format="genzoo")


def unet_config(c: DiffusionConfig) -> dict:
    widths = [c.base_channels * m for m in c.channel_mults]
    down = ["AttnDownBlock2D" if i in c.attention_levels else "DownBlock2D" for i in range(len(widths))]
    return {"_class_name": "UNet2DModel", "sample_size": c.image_size, "in_channels": c.channels,
            "out_channels": c.channels, "block_out_channels": widths, "layers_per_block": c.n_res_blocks,
            "down_block_types": down, "up_block_types": [t.replace("Down", "Up") for t in reversed(down)],
            "mid_block_type": "UNetMidBlock2D", "attention_head_dim": c.attention_head_dim,
            "norm_num_groups": c.groups, "norm_eps": c.norm_eps, "flip_sin_to_cos": c.flip_sin_to_cos,
            "freq_shift": c.freq_shift, "time_embedding_type": "positional", "act_fn": "silu",
            "num_class_embeds": c.n_classes + 1 if c.n_classes else None, "class_embed_type": None,
            "center_input_sample": False, "downsample_padding": 1, "mid_block_scale_factor": 1, "dropout": 0.0}


def scheduler_config(c: DiffusionConfig) -> dict:
    return {"_class_name": "DDPMScheduler", "num_train_timesteps": c.num_train_timesteps,
            "beta_schedule": c.beta_schedule, "beta_start": c.beta_start, "beta_end": c.beta_end,
            "prediction_type": c.prediction_type, "clip_sample": c.clip_sample, "clip_sample_range": 1.0,
            "variance_type": "fixed_small", "timestep_spacing": "leading", "steps_offset": 0}


def unet_and_scheduler(directory: Path) -> tuple[Path, Path]:
    """(the UNet's folder, the scheduler config file) of a pipeline directory or a UNet2DModel directory."""
    if (directory / "model_index.json").exists():
        unet, sched = directory / "unet", directory / "scheduler" / "scheduler_config.json"
    else:
        unet = directory
        candidates = [directory / "scheduler_config.json", directory.parent / "scheduler" / "scheduler_config.json"]
        sched = next((f for f in candidates if f.exists()), candidates[0])
    if not (unet / "config.json").exists():
        raise CheckpointError(f"{unet}: no config.json (a UNet2DModel directory)")
    if not sched.exists():
        raise CheckpointError(f"{directory}: no scheduler_config.json beside the UNet (looked at "
                              f"{', '.join(str(c) for c in [sched])}); the noise schedule is part of the model")
    return unet, sched


@FORMATS.register("diffusers")
class DiffusersFormat(CheckpointFormat):
    model_type = "diffusers"
    writes_directory = True

    @classmethod
    def detect(cls, directory) -> bool:
        d = Path(directory)
        if (d / "model_index.json").exists():
            return True
        cfg = d / "config.json"
        if not cfg.is_file():  # missing or not a file: the generic loader names the problem
            return False
        with open(cfg, "rb") as f:
            return b'"_class_name"' in f.read(4096)

    def load_directory(self, directory, *, dtype=None, device="cpu", allow_nonfinite=False):
        from ...interop import check_state  # the HF path's strict check: keys, shapes, dtype kinds

        unet_dir, sched_file = unet_and_scheduler(Path(directory))
        unet = _json(unet_dir / "config.json")
        # types and ranges, before anything is built (the schedule's length is read from the scheduler's file)
        check_diffusers_config(unet, unet_dir / "config.json", unread=("num_train_timesteps",))
        if unet.get("_class_name") != "UNet2DModel":
            raise CheckpointError(f"{unet_dir / 'config.json'}: {unet.get('_class_name')!r} is not supported "
                                  "(UNet2DModel)")
        sched = _json(sched_file)
        check_diffusers_config(sched, sched_file)
        config = config_from_diffusers(unet, sched, unet_dir)
        fits_in_memory(lambda: GENRES.get("diffusion")(config), device=device, dtype=dtype,
                       spare=sum(f.stat().st_size for f in unet_dir.glob("*.safetensors") if f.is_file()),
                       where=f"{unet_dir}: ")
        with empty_parameters():
            model = GENRES.get("diffusion")(config)
        file = unet_dir / WEIGHTS
        pickled = unet_dir / "diffusion_pytorch_model.bin"
        # the same readers as an HF directory: header schema, NaN / Inf refused unless allow_nonfinite
        tensors = (read_safetensors(file, dtype, allow_nonfinite) if file.exists() or file.is_symlink()
                   else read_pickle(pickled, dtype, allow_nonfinite))
        state = check_state(model, {to_genzoo(k): v for k, v in tensors.items()}, [], unet_dir)
        assign_weights(model, state, [], dtype=dtype, device=device, where=unet_dir)
        return model.to(device).eval()

    def save_directory(self, model, directory) -> None:
        c, d = model.config, Path(directory)
        require(c, "denoiser", c.denoiser == "unet2d", "diffusers", "the unet2d denoiser (presets ddpm-unet2d*)")
        require(c, "softmax", c.softmax == "standard", "diffusers", "the standard softmax")
        require(c, "attn_gate", c.attn_gate == "none", "diffusers", "no attention gate")
        (d / "unet").mkdir()
        (d / "scheduler").mkdir()
        (d / "unet" / "config.json").write_text(json.dumps(unet_config(c), indent=2) + "\n")
        (d / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler_config(c), indent=2) + "\n")
        index = {"_class_name": "DDPMPipeline", "scheduler": ["diffusers", "DDPMScheduler"],
                 "unet": ["diffusers", "UNet2DModel"]}
        (d / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        tensors = {to_diffusers(k): v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(d / "unet" / WEIGHTS), metadata={"format": "pt"})
        os.chmod(d / "unet" / WEIGHTS, file_mode())  # safetensors writes 0600; the other files get the umask's
