"""GAN parts against their formulas: shapes, the three losses, the WGAN-GP and R1 penalties on critics whose input
gradient is known, the projection discriminator, spectral norm, the EMA update, save/load, and bad input."""

import pytest
import torch
import torch.nn.functional as F

import genzoo
from genzoo import ConfigError, InputError
from genzoo.models.gan import GAN_LOSSES, gradient_penalty, r1_penalty


@pytest.mark.parametrize("size,base", [(8, 2), (16, 2), (16, 4)])
def test_shapes(size, base):
    m = genzoo.build("gan-tiny", image_size=size, base_size=base)
    y = torch.tensor([0, 3, 9])
    images = m(y).images
    assert images.shape == (3, 1, size, size) and images.abs().max() <= 1
    assert m.discriminator(images, y).shape == (3,)
    assert m.sample(y).shape == (3, 1, size, size)
    uncond = genzoo.build("gan-tiny", n_classes=0)
    assert uncond.sample(n=5).shape == (5, 1, 8, 8)


def test_losses_equal_their_formulas():
    r, f = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-3.0, 0.2, 1.5])
    ns = GAN_LOSSES.get("non-saturating")
    bce = F.binary_cross_entropy_with_logits
    torch.testing.assert_close(ns.d(r, f), bce(r, torch.ones(3)) + bce(f, torch.zeros(3)))
    torch.testing.assert_close(ns.g(f), -torch.log(torch.sigmoid(f)).mean())
    hinge = GAN_LOSSES.get("hinge")
    # relu(1 - r) = [0, 2, 0.5]; relu(1 + f) = [0, 1.2, 2.5]
    torch.testing.assert_close(hinge.d(r, f), torch.tensor((2.5 + 3.7) / 3))
    torch.testing.assert_close(hinge.g(f), -f.mean())
    w = GAN_LOSSES.get("wgan-gp")
    torch.testing.assert_close(w.d(r, f), f.mean() - r.mean())
    assert w.gradient_penalty and not ns.gradient_penalty and not hinge.gradient_penalty


def test_gradient_penalties_on_known_critics():
    x, fake = torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)
    w = torch.randn(1, 1, 8, 8, requires_grad=True)
    linear = lambda v: (v * w).flatten(1).sum(1)  # grad_x = w everywhere  # noqa: E731
    gp = gradient_penalty(linear, x, fake)
    torch.testing.assert_close(gp, (w.norm() - 1).detach() ** 2)
    gp.backward()  # the penalty trains the critic: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    torch.testing.assert_close(w.grad, (2 * (w.norm() - 1) * w / w.norm()).detach())
    r1, logits = r1_penalty(lambda v: 0.5 * v.pow(2).flatten(1).sum(1), x, gamma=4.0)  # grad_x = x
    torch.testing.assert_close(r1, 2.0 * x.pow(2).flatten(1).sum(1).mean())
    torch.testing.assert_close(logits, 0.5 * x.pow(2).flatten(1).sum(1))


def test_projection_discriminator():
    m = genzoo.build("gan-tiny").eval()
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([1, 1, 7, 0])
    d = m.discriminator
    phi = d.body(x)
    want = d.psi(phi).squeeze(1) + (d.classes.weight[y] * phi).sum(1)
    torch.testing.assert_close(d(x, y), want)


def test_spectral_norm_bounds_each_layer():
    m = genzoo.build("gan-tiny", spectral_norm=True, d_norm="none")
    x, y = torch.randn(16, 1, 8, 8), torch.randint(10, (16,))
    for _ in range(30):  # power iteration runs one step per training forward
        m.discriminator(x, y)
    conv = m.discriminator.body[0]
    sigma = torch.linalg.matrix_norm(conv.weight.flatten(1).detach(), ord=2)
    assert abs(sigma.item() - 1) < 1e-3
    assert "parametrizations" in dict(conv.named_children())


def test_ema_update_and_sampling_uses_it():
    m = genzoo.build("gan-tiny", ema_decay=0.9)
    before = {k: v.clone() for k, v in m.generator_ema.state_dict().items()}
    assert all(torch.equal(before[k], v) for k, v in m.generator.state_dict().items())  # starts as G
    with torch.no_grad():
        for p in m.generator.parameters():
            p.add_(1.0)
    m.update_ema()
    for (k, e), p in zip(m.generator_ema.named_parameters(), m.generator.parameters()):
        torch.testing.assert_close(e, 0.9 * before[k] + 0.1 * p)
    y = torch.arange(10)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert not torch.equal(m.sample(y, generator=g()), m.sample(y, generator=g(), ema=False))


def test_one_training_step_of_each_loss_moves_the_right_network():
    for loss in ("non-saturating", "hinge", "wgan-gp"):
        m = genzoo.build("gan-tiny", loss=loss, r1_gamma=1.0 if loss == "hinge" else 0.0, d_norm="layer")
        x, y = torch.rand(8, 1, 8, 8) * 2 - 1, torch.randint(10, (8,))
        out = m.discriminator_loss(x, y)
        out.loss.backward()
        assert all(p.grad is None for p in m.generator.parameters())
        assert all(p.grad is not None for p in m.discriminator.parameters())
        assert (out.penalty is not None) == (loss != "non-saturating")
        m.zero_grad(set_to_none=True)
        m.generator_loss(y).loss.backward()
        assert all(p.grad is None for p in m.discriminator.parameters())
        assert all(p.requires_grad for p in m.discriminator.parameters())
        assert all(p.grad is not None for p in m.generator.parameters())


def test_save_load_round_trip(tmp_path):
    m = genzoo.build("gan-digits", g_channels=8, d_channels=8).eval()
    x, y = torch.randn(3, 1, 8, 8), torch.tensor([2, 4, 6])
    genzoo.save(m, tmp_path)
    back = genzoo.load(tmp_path)
    assert back.config == m.config
    mine, theirs = m.state_dict(), back.state_dict()
    assert mine.keys() == theirs.keys()
    for k in mine:  # every weight and buffer comes back bit for bit
        torch.testing.assert_close(theirs[k], mine[k], atol=0, rtol=0)
    # the outputs: equal up to float summation order (the loaded tensors' memory can take another kernel path)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    torch.testing.assert_close(back.sample(y, generator=g()), m.sample(y, generator=g()), atol=1e-6, rtol=0)
    torch.testing.assert_close(back.discriminator(x, y), m.discriminator(x, y), atol=1e-6, rtol=0)


def test_bad_input_and_config():
    m = genzoo.build("gan-tiny")
    with pytest.raises(InputError, match=r"class index out of range.*\[0, 9\].*12"):
        m.sample(torch.tensor([3, 12]))
    with pytest.raises(InputError, match="class-conditional"):
        m.sample(n=4)
    with pytest.raises(InputError, match=r"images must be \(B, 1, 8, 8\)"):
        m.discriminator_loss(torch.randn(2, 1, 7, 7), torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="unknown GAN loss 'hinje'.*did you mean 'hinge'"):
        genzoo.build("gan-tiny", loss="hinje")
    with pytest.raises(ConfigError, match="image_size=12"):
        genzoo.build("gan-tiny", image_size=12)
    with pytest.raises(ConfigError, match="ema_decay=1.0"):
        genzoo.build("gan-tiny", ema_decay=1.0)
