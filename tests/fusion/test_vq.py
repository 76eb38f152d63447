"""The VQ image tokenizer: encode/decode round trip, the straight-through gradient, EMA codebook updates, dead-code
restarts, save/load, a short training that raises PSNR, and its bad inputs."""

import pytest
import torch

import genzoo
from genzoo.data.digits import load_digits_split
from genzoo.errors import InputError
from genzoo.models.vq import VectorQuantizer, VQImageTokenizer, psnr


def tiny(**kw):
    return genzoo.build("vq-tiny", **kw)


def test_round_trip_shapes_and_consistency():
    model = tiny(downsample=1).eval()
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    codes = model.encode(x)
    assert codes.shape == (3, 4, 4) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < model.config.codebook_size
    out = model(x)
    assert torch.equal(out.indices, codes)  # forward and encode pick the same codes
    pixels = model.decode(codes)
    assert pixels.shape == x.shape and float(pixels.abs().max()) <= 1
    torch.testing.assert_close(pixels, out.reconstruction.clamp(-1, 1))  # decode(encode(x)) is the reconstruction


def test_quantizer_nearest_code_and_straight_through():
    q = VectorQuantizer(5, 3, decay=0.99).eval()
    z = torch.randn(7, 3, requires_grad=True)
    zq, idx, loss, _ = q(z)
    brute = torch.cdist(z.detach(), q.embed).argmin(1)
    assert torch.equal(idx, brute)
    torch.testing.assert_close(zq.detach(), q.embed[idx])
    zq.sum().backward()
    torch.testing.assert_close(z.grad, torch.ones_like(z))  # straight-through: dz_q/dz = identity


def test_ema_updates_codebook_and_restarts_dead_codes():
    q = VectorQuantizer(8, 2, decay=0.9, restart_threshold=1.0)
    assert not any(p.requires_grad for p in q.parameters())  # EMA: the codebook is a buffer
    q.cluster_size[3] = 0.0  # code 3 is dead
    before = q.embed.clone()
    z = torch.randn(64, 2) + 5.0  # far from every code
    q.train()(z)
    assert not torch.equal(q.embed, before)
    assert q.restarts >= 1
    assert (torch.cdist(q.embed[3:4], z).min() < 1e-5)  # restarted onto an encoder output of the batch
    q.eval()
    frozen = q.embed.clone()
    q(z)
    assert torch.equal(q.embed, frozen)  # no updates in eval mode


def test_gradient_reaches_encoder_and_decoder():
    model = tiny().train()
    model(torch.rand(4, 1, 8, 8) * 2 - 1).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.decoder.parameters())


def test_save_load_round_trip(tmp_path):
    model = tiny().train()
    model(torch.rand(16, 1, 8, 8) * 2 - 1)  # moves the EMA codebook
    model.eval()
    genzoo.save(model, tmp_path / "vq")
    again = genzoo.load(tmp_path / "vq")
    assert isinstance(again, VQImageTokenizer)
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    assert torch.equal(again.encode(x), model.encode(x))
    torch.testing.assert_close(again.decode(model.encode(x)), model.decode(model.encode(x)))


def test_short_training_raises_psnr():
    x, _, vx, _ = load_digits_split()
    model = tiny(hidden=16, codebook_size=32, code_dim=8)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        start = psnr(model.eval()(vx).reconstruction, vx)
    model.train()
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        batch = x[torch.randint(len(x), (64,), generator=g)]
        loss = model(batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = psnr(model.eval()(vx).reconstruction, vx)
    assert end > start + 3, (start, end)


@pytest.mark.parametrize("shape", [(2, 1, 16, 16), (2, 3, 8, 8), (1, 8, 8)])
def test_wrong_image_size_is_an_input_error(shape):
    with pytest.raises(InputError, match="shape"):
        tiny().encode(torch.zeros(shape))


def test_bad_codes_are_input_errors():
    model = tiny()
    with pytest.raises(InputError, match="out of range"):
        model.decode(torch.full((1, 4, 4), model.config.codebook_size))
    with pytest.raises(InputError, match="integer tensor"):
        model.decode(torch.zeros(1, 3, 3, dtype=torch.long))


def test_bad_config_is_a_config_error():
    with pytest.raises(genzoo.ConfigError, match="image_size"):
        tiny(image_size=6, downsample=2)


def test_quantizer_trains_under_bf16_autocast():
    """`precision: auto` is bf16 autocast on a bf16 CPU: the encoder's z arrives in bf16, the codebook statistics
    stay float32 (a bf16 z made the dead-code restart's index_put fail in `genzoo train vq-digits`)."""
    from genzoo.precision import autocast

    torch.manual_seed(0)
    q = VectorQuantizer(6, 4, decay=0.9, restart_threshold=1.0).train()
    q.cluster_size[2] = 0.0  # code 2 is dead: this step restarts it
    z = torch.randn(16, 4, requires_grad=True)
    with autocast("cpu", torch.bfloat16):
        zq, idx, loss, _ = q(z.to(torch.bfloat16))
    assert q.embed.dtype == q.embed_sum.dtype == torch.float32 and q.restarts > 0
    (zq.float().sum() + loss).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
