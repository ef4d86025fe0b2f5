"""Tests for losslab.models: shapes, closed-form parameter counts, invariants."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from losslab.errors import UserError
from losslab.models import build_gan, count_parameters
from losslab.models.conv import norm2d

NORMS = ("batch", "layer", "none")
CRITICS = ("discriminator", "autoencoder")
SHAPES = [(1,), (2,), (5,), (1, 8, 8), (1, 28, 28), (3, 32, 32)]


def _gan(shape, critic="discriminator", norm="none", z_dim=6, hidden=16, layers=3, code_dim=None, seed=0,
         arch="dcgan"):
    torch.manual_seed(seed)
    return build_gan(shape, critic=critic, z_dim=z_dim, hidden=hidden, layers=layers,
                     critic_norm=norm, code_dim=code_dim, arch=arch)


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("critic", CRITICS)
@pytest.mark.parametrize("norm", NORMS)
def test_output_shapes(shape, critic, norm):
    n = 3
    g, d = _gan(shape, critic, norm)
    assert g.z_dim == 6
    x = g(torch.randn(n, g.z_dim))
    assert x.shape == (n, *shape)
    assert x.dtype == torch.float32
    out = d(x)
    if critic == "discriminator":
        assert out.shape == (n,)
    else:
        recon, code = out
        assert recon.shape == x.shape
        expected_code = min(16, max(2, shape[0])) if len(shape) == 1 else 32
        assert code.shape == (n, expected_code)
        assert d.code_dim == expected_code


@pytest.mark.parametrize("shape", [(2,), (3, 8, 8)])
def test_autoencoder_code_dim_is_honoured(shape):
    g, d = _gan(shape, "autoencoder", code_dim=7)
    recon, code = d(torch.randn(4, *shape))
    assert recon.shape == (4, *shape)
    assert code.shape == (4, 7)


def test_torch_size_shape_is_accepted():
    g, _ = _gan(torch.Size([1, 8, 8]))
    assert g(torch.randn(2, 6)).shape == (2, 1, 8, 8)


# ---------------------------------------------------- parameter counts


def test_infogan_generator_parameter_count_mnist():
    # infoGAN MNIST G (arXiv:1606.03657, App. C.1), z_dim = 62, S = 28, S/4 = 7.
    z, flat = 62, 128 * 7 * 7                 # flat = 6272
    fc1 = z * 1024 + 1024                     # Linear(62, 1024)
    bn1 = 2 * 1024                            # BatchNorm1d(1024): gamma, beta
    fc2 = 1024 * flat + flat                  # Linear(1024, 6272)
    bn2 = 2 * flat                            # BatchNorm1d(6272)
    dc1 = 128 * 64 * 4 * 4 + 64               # ConvTranspose2d(128, 64, 4)
    bn3 = 2 * 64                              # BatchNorm2d(64)
    dc2 = 64 * 1 * 4 * 4 + 1                  # ConvTranspose2d(64, 1, 4)
    expected = fc1 + bn1 + fc2 + bn2 + dc1 + bn3 + dc2
    assert expected == 6_640_193
    g, _ = _gan((1, 28, 28), z_dim=62, arch="infogan")
    assert count_parameters(g) == expected


@pytest.mark.parametrize("norm", NORMS)
def test_infogan_discriminator_parameter_count_mnist(norm):
    flat = 128 * 7 * 7
    c1 = 1 * 64 * 4 * 4 + 64                  # Conv2d(1, 64, 4)
    c2 = 64 * 128 * 4 * 4 + 128               # Conv2d(64, 128, 4)
    fc1 = flat * 1024 + 1024                  # Linear(6272, 1024)
    fc2 = 1024 * 1 + 1                        # Linear(1024, 1)
    # BatchNorm2d(128) / GroupNorm(1, 128) and BatchNorm1d(1024) / LayerNorm(1024)
    # each carry one scale and one shift per channel or feature.
    norms = 0 if norm == "none" else 2 * 128 + 2 * 1024
    expected = c1 + c2 + fc1 + fc2 + norms
    assert expected == (6_556_865 if norm == "none" else 6_559_169)
    _, d = _gan((1, 28, 28), norm=norm, z_dim=62, arch="infogan")
    assert count_parameters(d) == expected


def test_conv_autoencoder_parameter_count():
    flat = 128 * 7 * 7
    enc = (1 * 64 * 16 + 64) + (64 * 128 * 16 + 128) + (flat * 32 + 32)
    dec = (32 * flat + flat) + (128 * 64 * 16 + 64) + (64 * 1 * 16 + 1)
    _, d = _gan((1, 28, 28), "autoencoder", "none", arch="infogan")
    assert count_parameters(d) == enc + dec


@pytest.mark.parametrize("norm", NORMS)
def test_mlp_parameter_counts(norm):
    z, dd, h, L = 4, 3, 16, 3
    g, d = _gan((dd,), norm=norm, z_dim=z, hidden=h, layers=L)
    assert count_parameters(g) == (z + 1) * h + (L - 1) * (h + 1) * h + (h + 1) * dd
    per_norm = 0 if norm == "none" else 2 * h  # BatchNorm1d / LayerNorm affine
    # the first hidden layer carries no norm
    assert count_parameters(d) == (dd + 1) * h + (L - 1) * ((h + 1) * h + per_norm) + (h + 1)


# ----------------------------------------------------------- invariants


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_image_generator_output_in_closed_interval(shape):
    g, _ = _gan(shape)
    z = torch.randn(16, g.z_dim)
    for mode in (g.train, g.eval):
        mode()
        x = g(z)
        assert x.min() >= -1.0 and x.max() <= 1.0
    # Blow up the last layer's weights: a tanh output stays in [-1, 1] and
    # reaches the bound up to float rounding; a linear output would not.
    last = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)][-1]
    with torch.no_grad():
        last.weight.mul_(1e4)
    x = g(z)
    assert x.min() >= -1.0 and x.max() <= 1.0
    torch.testing.assert_close(x.abs().max(), torch.tensor(1.0), atol=1e-6, rtol=0)


def _zero_biases(module):
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                m.bias.zero_()


def test_vector_generator_is_linear_at_output():
    # A ReLU network with zero biases and a linear output is positively
    # homogeneous, G(a z) = a G(z) for a > 0; a squashing output would break it.
    g, d = _gan((2,), norm="none", z_dim=3)
    _zero_biases(g)
    _zero_biases(d)
    z = torch.randn(8, 3)
    torch.testing.assert_close(g(7.0 * z), 7.0 * g(z))
    assert g(1e3 * z).abs().max() > 1.0     # unbounded: raw coordinates
    x = torch.randn(8, 2)
    torch.testing.assert_close(d(5.0 * x), 5.0 * d(x))  # LeakyReLU + linear critic output


def _first(out):
    return out if isinstance(out, torch.Tensor) else torch.cat([out[0].flatten(1), out[1]], 1)


@pytest.mark.parametrize("shape", [(2,), (3, 8, 8)])
@pytest.mark.parametrize("critic", CRITICS)
@pytest.mark.parametrize("norm", ["layer", "none"])
@pytest.mark.parametrize("train", [True, False])
def test_critic_is_per_sample_without_batch_norm(shape, critic, norm, train):
    # Required by the per-sample gradient penalty (WGAN-GP, arXiv:1704.00028, Sec. 4).
    _, d = _gan(shape, critic, norm)
    d.train(train)
    x = torch.randn(8, *shape)
    full = _first(d(x))
    torch.testing.assert_close(full[:1], _first(d(x[:1])))
    torch.testing.assert_close(full[3:5], _first(d(x[3:5])))
    # and a sample's gradient w.r.t. its own input does not see the others
    xg = x.clone().requires_grad_(True)
    (grad_full,) = torch.autograd.grad(_first(d(xg)).sum(), xg)
    x0 = x[:1].clone().requires_grad_(True)
    (grad_one,) = torch.autograd.grad(_first(d(x0)).sum(), x0)
    torch.testing.assert_close(grad_full[:1], grad_one)


@pytest.mark.parametrize("shape", [(2,), (3, 8, 8)])
@pytest.mark.parametrize("critic", CRITICS)
def test_batch_norm_critic_mixes_samples_in_train_mode(shape, critic):
    _, d = _gan(shape, critic, "batch")
    x = torch.randn(8, *shape)
    d.train()
    full, pair = _first(d(x))[:2], _first(d(x[:2]))
    assert not torch.allclose(full, pair, atol=1e-4, rtol=1e-3)
    d.eval()  # running statistics: per sample again
    torch.testing.assert_close(_first(d(x))[:2], _first(d(x[:2])))


def test_layer_norm_for_feature_maps_is_layer_norm_over_chw():
    # GroupNorm(1, C) with its initial affine map (1, 0) equals layer norm over (C, H, W).
    x = torch.randn(4, 128, 5, 5)
    torch.testing.assert_close(norm2d("layer", 128)(x), F.layer_norm(x, x.shape[1:]))


def test_conv_init_follows_reference():
    # N(0, 0.02) weights, zero biases (znxlwm/pytorch-generative-model-collections utils.py).
    _, d = _gan((1, 28, 28), arch="infogan")
    fc = d.fc[0]
    assert fc.weight.shape == (1024, 128 * 7 * 7)
    w = fc.weight.detach().double()
    torch.testing.assert_close(w.std(), torch.tensor(0.02, dtype=torch.float64), rtol=0.01, atol=0)
    torch.testing.assert_close(w.mean(), torch.tensor(0.0, dtype=torch.float64), atol=1e-4, rtol=0)
    for m in d.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            torch.testing.assert_close(m.bias, torch.zeros_like(m.bias), atol=0, rtol=0)


# --------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "shape",
    [(), (3, 4), (1, 8, 12), (1, 30, 30), (1, 2, 2), (1, 8, 8, 1), (0,), (-2,), (2.0,), "abc", (True,), 5],
)
def test_bad_shape_raises_user_error(shape):
    with pytest.raises(UserError):
        _gan(shape)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"critic": "vae"},
        {"norm": "instance"},
        {"z_dim": 0},
        {"hidden": 0},
        {"layers": 0},
        {"code_dim": 0},
        {"layers": 2.5},
    ],
)
def test_bad_options_raise_user_error(kwargs):
    with pytest.raises(UserError):
        _gan((2,), **kwargs)


def test_unknown_critic_message_lists_choices():
    with pytest.raises(UserError, match="autoencoder, discriminator"):
        _gan((1, 8, 8), critic="energy")


# ------------------------------------------------------- small DCGAN (default)


def test_dcgan_is_the_default_image_arch_and_infogan_stays_available():
    g, d = build_gan((1, 28, 28), z_dim=62, hidden=16, layers=3)
    assert type(g).__name__ == "DCGANGenerator" and type(d).__name__ == "DCGANDiscriminator"
    g, d = build_gan((1, 28, 28), z_dim=62, hidden=16, layers=3, arch="infogan")
    assert type(g).__name__ == "ConvGenerator" and type(d).__name__ == "ConvDiscriminator"


def test_dcgan_parameter_counts_mnist():
    # w = 32: G = FC(62 -> 64*7*7)-BN1d, ConvT(64 -> 32, 4)-BN2d, ConvT(32 -> 1, 4)
    flat = 64 * 7 * 7
    g_expected = (62 * flat + flat) + 2 * flat + (64 * 32 * 16 + 32) + 2 * 32 + (32 * 1 * 16 + 1)
    d_expected = (1 * 32 * 16 + 32) + (32 * 64 * 16 + 64) + (flat + 1)
    assert (g_expected, d_expected) == (237_217, 36_513)
    g, d = build_gan((1, 28, 28), z_dim=62, hidden=16, layers=3, arch="dcgan")
    assert count_parameters(g) == g_expected
    assert count_parameters(d) == d_expected
    total = g_expected + d_expected
    assert 100_000 <= total <= 500_000  # "a few hundred thousand" (infoGAN: 13.2M)


def test_dcgan_autoencoder_parameter_count():
    flat = 64 * 7 * 7
    enc = (1 * 32 * 16 + 32) + (32 * 64 * 16 + 64) + (flat * 32 + 32)
    dec = (32 * flat + flat) + (64 * 32 * 16 + 32) + (32 * 1 * 16 + 1)
    _, d = build_gan((1, 28, 28), critic="autoencoder", z_dim=62, hidden=16, layers=3)
    assert count_parameters(d) == enc + dec
    recon, code = d(torch.randn(3, 1, 28, 28))
    assert recon.shape == (3, 1, 28, 28) and code.shape == (3, 32)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (2, 12, 12)])
@pytest.mark.parametrize("arch", ["dcgan", "infogan"])
def test_image_generators_reach_but_never_pass_the_tanh_bounds(shape, arch):
    torch.manual_seed(0)
    g, d = build_gan(shape, z_dim=8, hidden=16, layers=3, arch=arch)
    last = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)][-1]
    with torch.no_grad():
        last.weight.mul_(1e4)  # saturate the tanh: a linear output would leave [-1, 1]
    x = g(torch.randn(16, 8))
    assert x.shape == (16, *shape)
    assert x.min() >= -1.0 and x.max() <= 1.0
    torch.testing.assert_close(x.abs().max(), torch.tensor(1.0), atol=1e-6, rtol=0)
    assert d(x).shape == (16,)


def test_unknown_arch_is_a_user_error_listing_choices():
    with pytest.raises(UserError, match="dcgan, infogan"):
        build_gan((1, 8, 8), z_dim=4, hidden=8, layers=2, arch="resnet")
