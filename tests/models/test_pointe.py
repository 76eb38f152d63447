"""Point-E: the point diffusion transformer is permutation equivariant, clouds round-trip through .ply, the system
saves and loads, generation runs end to end, and bad input (empty prompt, wrong cloud shape) is refused before any
compute while an unseen word still generates and is reported."""

import pytest
import torch

import genzoo
from genzoo.data.shape_captions import all_captions, contrastive, parse
from genzoo.data.shape_set import ShapeSet
from genzoo.data.shapes import SHAPE_NAMES, check_cloud, random_objects, surface, to_channels
from genzoo.errors import ConfigError, InputError
from genzoo.models.pointe import PointE
from genzoo.models.pointe.files import cloud_figure, read_ply, view_figure, write_ply
from genzoo.tokenizers import train_bpe


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = genzoo.build("pointe-tiny").eval()
    for stage in (m.base, m.upsampler, m.text_base):  # the output projection starts at zero: make it say something
        torch.nn.init.normal_(stage.denoiser.output_proj.weight, std=0.2)
    m.tokenizer = train_bpe(all_captions(), 300, min_frequency=1)
    return m


def _views_and_clouds(m, n=3, seed=0):
    s = ShapeSet(n, seed, m.config.image_size, render_points=256)
    return s, s.views, s.clouds(torch.arange(n), m.config.fine_points, seed)


def test_point_model_is_permutation_equivariant(model):
    g = torch.Generator().manual_seed(1)
    c = model.config
    _, views, cloud = _views_and_clouds(model)
    grid = model.image_grid(views)
    x, t = cloud[:, :, : c.points], torch.tensor([5, 50, 90])
    perm = torch.randperm(c.points, generator=g)
    out = model.base.denoiser(x, t, image=grid)
    assert out.shape == (3, 12, c.points) and out.abs().max() > 1e-3  # eps and variance values, not all zero
    torch.testing.assert_close(model.base.denoiser(x[:, :, perm], t, image=grid), out[:, :, perm], atol=1e-6, rtol=0)
    # the upsampler: equivariant in its new points, invariant to the order of the low-resolution cloud
    new = cloud[:, :, c.points:]
    up = model.upsampler.denoiser(new, t, image=grid, low_res=x)
    p2 = torch.randperm(new.shape[2], generator=g)
    torch.testing.assert_close(model.upsampler.denoiser(new[:, :, p2], t, image=grid, low_res=x[:, :, perm]),
                               up[:, :, p2], atol=1e-6, rtol=0)
    # and the timestep / condition matter (a check that could not fail otherwise)
    assert not torch.allclose(model.base.denoiser(x, t + 3, image=grid), out)
    assert not torch.allclose(model.base.denoiser(x, t, image=grid.flip(0)), out)


def test_point_model_is_pre_norm_shared_blocks_with_zero_output():
    m = genzoo.build("pointe-tiny")
    d = m.base.denoiser
    assert type(d).__mro__[1].__name__ == "Stack" and all(b.prenorm for b in d.blocks)
    assert d.output_proj.weight.abs().sum() == 0 and d.output_proj.bias.abs().sum() == 0
    assert type(d.positions).__name__ == "NoPositions"  # no positional encoding: the points are a set


def test_ply_round_trip(tmp_path):
    plyfile = pytest.importorskip("plyfile")
    g = torch.Generator().manual_seed(0)
    objs = random_objects(1, g)
    pts, _ = surface(objs, 100, g)
    cloud = to_channels(pts, objs.rgb)[0]  # (6, 100)
    path = write_ply(cloud, tmp_path / "c.ply")
    raw = plyfile.PlyData.read(str(path))["vertex"]  # a standard reader sees xyz floats and RGB bytes
    assert raw.count == 100 and raw["red"].dtype.name == "uint8" and raw["x"].dtype.name == "float32"
    back = read_ply(path)
    torch.testing.assert_close(back[:3], cloud[:3], atol=1e-6, rtol=0)
    torch.testing.assert_close(back[3:], cloud[3:], atol=2 / 255 + 1e-6, rtol=0)  # colours are bytes
    cloud_figure(back, tmp_path / "c.png", "a cloud")
    assert (tmp_path / "c.png").stat().st_size > 1000
    with pytest.raises(InputError, match=r"\(B, 6, N\)"):
        write_ply(torch.zeros(3, 100), tmp_path / "bad.ply")


def test_save_load_round_trip_keeps_weights_and_tokenizer(model, tmp_path):
    genzoo.save(model, tmp_path / "run")
    back = genzoo.load(tmp_path / "run")
    assert isinstance(back, PointE) and back.tokenizer is not None
    for (k, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), k
    assert back.tokenize(["a red cone"]).tolist() == model.tokenize(["a red cone"]).tolist()


def test_generate_end_to_end_and_unseen_words(model, tmp_path):
    r = model.generate_point_cloud(["a red cone", "a green zorblatt"], image_steps=2, point_steps=2,
                                   upsample_steps=2, seed=3)
    c = model.config
    assert r.views.shape == (2, 3, c.image_size, c.image_size) and r.coarse.shape == (2, 6, c.points)
    assert r.clouds.shape == (2, 6, c.fine_points) and torch.equal(r.clouds[:, :, : c.points], r.coarse)
    assert r.unseen == [[], ["zorblatt"]] and set(r.seconds) == {"text_to_image", "points", "upsample"}
    assert torch.isfinite(r.clouds).all() and r.clouds.abs().max() <= 1
    again = model.generate_point_cloud(["a red cone", "a green zorblatt"], image_steps=2, point_steps=2,
                                       upsample_steps=2, seed=3)
    assert torch.equal(again.clouds, r.clouds)  # seeded
    t = model.generate_point_cloud("a blue torus", route="text", image_steps=2, point_steps=2, upsample_steps=2)
    assert t.clouds.shape == (1, 6, c.fine_points)
    view_figure(r.views[0], tmp_path / "v.png", "a red cone")
    assert (tmp_path / "v.png").exists()


def test_bad_input_is_refused(model):
    for prompt in ("", "   "):
        with pytest.raises(InputError, match="non-empty"):
            model.generate_point_cloud(prompt)
    with pytest.raises(InputError, match="no prompts"):
        model.generate_point_cloud([])
    with pytest.raises(InputError, match="route"):
        model.generate_point_cloud("a red cone", route="mesh")
    c = model.config
    with pytest.raises(InputError, match=r"coarse must be \(B, 6, 16\)"):
        model.upsample(torch.zeros(1, 3, c.points), None)
    with pytest.raises(InputError, match=r"coarse must be \(B, 6, 16\)"):
        model.upsample(torch.zeros(1, 6, c.points + 1), None)
    ids = model.tokenize(["a red cone"])
    views = torch.zeros(1, 3, c.image_size, c.image_size)
    with pytest.raises(InputError, match=r"cloud must be \(B, 6, 64\)"):
        model.diffusion_losses(ids, views, torch.zeros(1, 6, 10))
    with pytest.raises(InputError, match="condition 'image' must be"):
        model.base.sample(1, "karras", 2, 1.0, image=torch.zeros(1, 4, 7))
    with pytest.raises(InputError, match="sampler"):
        model.base.sample(1, "euler", 2, 1.0, image=torch.zeros(1, c.grid_tokens, c.clip_width))
    with pytest.raises(InputError, match="unknown condition"):
        model.base.denoiser and model.base.check(None, {"image": torch.zeros(1, 4, c.clip_width),
                                                        "text": torch.zeros(1, 2, 3)}, 1)
    with pytest.raises(InputError):
        check_cloud(torch.zeros(2, 6))
    with pytest.raises(ConfigError, match="upsample_ratio"):
        genzoo.build("pointe-tiny", upsample_ratio=1)


def test_time_added_to_points_stays_equivariant_and_reads_the_timestep():
    """time_token=False (the recipe's choice): the timestep embedding is added to every point token, not prepended;
    the model stays permutation equivariant, and both the timestep and the condition change the output."""
    torch.manual_seed(0)
    m = genzoo.build("pointe-tiny", time_token=False).eval()
    d = m.base.denoiser
    torch.nn.init.normal_(d.output_proj.weight, std=0.2)
    g = torch.Generator().manual_seed(3)
    x, t = torch.randn(2, 6, m.config.points, generator=g), torch.tensor([7, 60])
    grid = torch.randn(2, m.config.grid_tokens, m.config.clip_width, generator=g)
    out = d(x, t, image=grid)
    perm = torch.randperm(m.config.points, generator=g)
    torch.testing.assert_close(d(x[:, :, perm], t, image=grid), out[:, :, perm], atol=1e-6, rtol=0)
    assert (d(x, t + 20, image=grid) - out).abs().max() > 1e-3
    assert (d(x, t, image=grid.flip(0)) - out).abs().max() > 1e-3


@pytest.mark.parametrize("sampler", ["karras", "ddim", "ddpm"])
def test_samplers_give_finite_clouds_in_range(model, sampler):
    c = model.config
    grid = torch.randn(2, c.grid_tokens, c.clip_width)
    x = model.base.sample(2, sampler, 3, 3.0, torch.Generator().manual_seed(0), image=grid)
    assert x.shape == (2, 6, c.points) and torch.isfinite(x).all() and x.abs().max() <= 1


def test_captions_parse_and_contrast():
    p = parse("a small blue torus lying on its side")
    assert (p.shape, p.colour, p.size, p.unseen) == ("torus", "blue", "small", [])
    others = contrastive("a red cone")
    assert "a red cube" in others and "a blue cone" in others and "a red cone" not in others
    assert parse("a red dodecahedron").unseen == ["dodecahedron"] and len(SHAPE_NAMES) >= 7


class _Oracle(torch.nn.Module):
    """The exact eps of a data distribution that is one cloud X (B, 6, N): eps = (x_t - sqrt(a) X s) / sqrt(1 - a),
    with X s the cloud in the stage's diffusion space (scales s)."""

    def __init__(self, cloud, scheduler, scales):
        super().__init__()
        from genzoo.models.pointe.config import PointDenoiserConfig

        self.cfg = PointDenoiserConfig(learn_sigma=False)
        self.conditions = torch.nn.ModuleDict()
        self.x0, self.ac = cloud * torch.tensor(scales).view(1, 6, 1), scheduler.alphas_cumprod
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # a parameter, so the stage has a device

    def forward(self, x_t, t):
        a = self.ac[t].view(-1, 1, 1)
        return (x_t - a.sqrt() * self.x0) / (1 - a).sqrt()


@pytest.mark.parametrize("sampler", ["karras", "ddim", "ddpm"])
def test_scaled_stage_diffuses_scaled_clouds_and_samples_them_back(sampler):
    """Input scaling (Chen 2023, arXiv 2301.10972): the stage noises x_0 * scales, and every sampler, run with the
    exact eps of a one-cloud distribution, returns that cloud in data units (the x_0 clip is per channel: the
    coordinates here reach 1.4 in diffusion space, beyond a [-1, 1] clip)."""
    from genzoo.models.diffusion.schedulers import DDPMScheduler
    from genzoo.models.pointe.diffusion import PointCloudDiffusion

    g = torch.Generator().manual_seed(0)
    cloud = torch.rand(2, 6, 16, generator=g) * 1.4 - 0.7  # (B, 6, N) in [-0.7, 0.7]
    sched = DDPMScheduler(num_train_timesteps=200, beta_schedule="cosine")
    scales = (2.0, 2.0, 2.0, 1.0, 1.0, 1.0)
    stage = PointCloudDiffusion(_Oracle(cloud, sched, scales), sched, 16, 0.0, (), scales=scales)
    out = stage.sample(2, sampler, 20, 1.0, torch.Generator().manual_seed(1), s_churn=0.0)
    torch.testing.assert_close(out, cloud, atol=2e-3, rtol=0)
    # unscaled, the same oracle's coordinates beyond 1 / 2 would be clipped: the scale is what the stage undoes
    assert stage.scales.flatten().tolist() == list(scales)

    # training: the loss is the eps error at x_t = sqrt(a) X s + sqrt(1 - a) eps, so the oracle's loss is 0
    loss = stage(cloud, generator=torch.Generator().manual_seed(2))
    assert loss["mse"] < 1e-10
    wrong = PointCloudDiffusion(_Oracle(cloud, sched, scales), sched, 16, 0.0, ())  # scale 1: not the oracle's
    assert wrong(cloud, generator=torch.Generator().manual_seed(2))["mse"] > 1e-3
    with pytest.raises(InputError, match="scales"):
        PointCloudDiffusion(_Oracle(cloud, sched, scales), sched, 16, 0.0, (), scales=(1.0, 0.0, 1, 1, 1, 1))
    # the system's config names the coordinate scale; every point stage gets it, colours stay at 1
    m = genzoo.build("pointe-tiny", xyz_scale=3.0)
    for stage in (m.base, m.upsampler, m.text_base):
        assert stage.scales.flatten().tolist() == [3.0, 3.0, 3.0, 1.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match="xyz_scale"):
        genzoo.build("pointe-tiny", xyz_scale=0)
