"""diffusers directories: a UNet2DModel (random weights, tiny config) saved as a DDPMPipeline is read by genzoo.load;
the denoiser output equals diffusers' (atol 1e-5, unconditional and class-conditional), and a 10-step sample with a
fixed generator equals DDPMPipeline's (1e-5) and DDIMPipeline's (5e-5: DDIM's x0 = (x - sqrt(1 - a) eps) / sqrt(a)
amplifies fp32 rounding at t = 999). genzoo.save(format="diffusers") writes a directory DDPMPipeline loads with
equal outputs; unsupported options are refused."""

import json

import pytest
import torch
from diffusers import DDIMPipeline, DDPMPipeline, DDPMScheduler, UNet2DModel

import genzoo
from genzoo import CheckpointError, ConfigError


def tiny_unet(classes=None, channels=3):
    torch.manual_seed(0)
    return UNet2DModel(sample_size=8, in_channels=channels, out_channels=channels, block_out_channels=(16, 32),
                       layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4, attention_head_dim=8,
                       num_class_embeds=classes).eval()


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddpm")
    DDPMPipeline(unet=tiny_unet(), scheduler=DDPMScheduler(num_train_timesteps=1000)).save_pretrained(d)
    return d


def images(pipe, n=2, steps=10):
    out = pipe(batch_size=n, generator=torch.Generator().manual_seed(0), num_inference_steps=steps, output_type="np")
    return torch.tensor(out.images).permute(0, 3, 1, 2)  # (B, C, H, W) in [0, 1]


@pytest.mark.parametrize("classes", [None, 5])
def test_denoiser_output_equals_unet2dmodel(tmp_path, classes):
    unet = tiny_unet(classes)
    unet.save_pretrained(tmp_path / "unet")  # a bare UNet2DModel directory, its scheduler beside it
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").save_pretrained(tmp_path / "scheduler")
    model = genzoo.load(tmp_path / "unet")
    assert model.config.denoiser == "unet2d" and model.config.beta_schedule == "squaredcos_cap_v2"
    x, t = torch.randn(3, 3, 8, 8), torch.tensor([999, 500, 0])
    labels = torch.tensor([0, 3, 4]) if classes else None
    with torch.no_grad():
        ref = unet(x, t, class_labels=labels).sample
        ours = model.denoiser(x, t, labels)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_ten_step_samples_equal_the_pipelines(pipeline_dir):
    model = genzoo.load(pipeline_dir)
    ours = model.sample(n=2, num_inference_steps=10, sampler="ddpm", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours / 2 + 0.5, images(DDPMPipeline.from_pretrained(pipeline_dir)), atol=1e-5, rtol=0)
    ours = model.sample(n=2, num_inference_steps=10, sampler="ddim", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours / 2 + 0.5, images(DDIMPipeline.from_pretrained(pipeline_dir)), atol=5e-5, rtol=0)


def test_save_as_diffusers_loads_in_ddpm_pipeline(tmp_path):
    model = genzoo.build("ddpm-unet2d-tiny", n_classes=0).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    genzoo.save(model, tmp_path / "out", format="diffusers")
    pipe = DDPMPipeline.from_pretrained(tmp_path / "out")
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([7, 70])
    with torch.no_grad():
        torch.testing.assert_close(pipe.unet(x, t).sample, model.denoiser(x, t, None), atol=1e-5, rtol=0)
    ours = model.sample(n=2, num_inference_steps=5, sampler="ddpm", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours / 2 + 0.5, images(pipe, steps=5), atol=1e-5, rtol=0)
    back = genzoo.load(tmp_path / "out")
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), model.state_dict().values()))


def test_unsupported_options_are_refused(tmp_path, pipeline_dir):
    with pytest.raises(ConfigError, match="denoiser='unet'.*diffusers"):
        genzoo.save(genzoo.build("ddpm-tiny"), tmp_path / "x", format="diffusers")
    cfg = json.loads((pipeline_dir / "unet" / "config.json").read_text())
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "config.json").write_text(json.dumps({**cfg, "time_embedding_type": "fourier"}))
    (tmp_path / "u" / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDPMScheduler"}))
    with pytest.raises(CheckpointError, match="time_embedding_type='fourier' is not supported"):
        genzoo.load(tmp_path / "u")
    (tmp_path / "u" / "scheduler_config.json").unlink()
    with pytest.raises(CheckpointError, match="no scheduler_config.json"):
        genzoo.load(tmp_path / "u")
