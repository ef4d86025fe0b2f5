"""GAN losses and their registry: references, closed forms, gradients, stability."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from losslab.errors import UserError
from losslab.losses import GAN_LOSS_NAMES, GAN_LOSSES, GANLoss, get_gan_loss
from losslab.losses import gan
from losslab.losses.penalties import pulling_away_term


def _logits(n: int, seed: int, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, generator=g, dtype=torch.float64)


# --------------------------------------------------------------------------- BCE family


def test_minimax_d_loss_equals_bce_with_targets_one_and_zero():
    d_real, d_fake = _logits(16, 0), _logits(12, 1)
    expected = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + F.binary_cross_entropy_with_logits(
        d_fake, torch.zeros_like(d_fake)
    )
    assert_close(gan.minimax_d_loss(d_real=d_real, d_fake=d_fake), expected)
    assert gan.ns_d_loss is gan.minimax_d_loss


def test_minimax_d_loss_is_minus_value_function_of_eq1():
    d_real, d_fake = _logits(10, 2, 1.0), _logits(10, 3, 1.0)
    value = torch.log(torch.sigmoid(d_real)).mean() + torch.log(1 - torch.sigmoid(d_fake)).mean()
    assert_close(gan.minimax_d_loss(d_real=d_real, d_fake=d_fake), -value)
    # at D = 1/2 everywhere (logit 0) the loss is 2 log 2 (Goodfellow et al. Theorem 1: -log 4)
    zeros = torch.zeros(5, dtype=torch.float64)
    assert_close(gan.minimax_d_loss(d_real=zeros, d_fake=zeros), torch.tensor(2 * math.log(2), dtype=torch.float64))


def test_generator_losses_against_direct_formulas():
    d_fake = _logits(20, 4, 2.0)
    p = torch.sigmoid(d_fake)
    assert_close(gan.minimax_g_loss(d_fake=d_fake), torch.log(1 - p).mean())
    assert_close(gan.ns_g_loss(d_fake=d_fake), -torch.log(p).mean())
    assert_close(
        gan.ns_g_loss(d_fake=d_fake), F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    )


def _grad(loss_fn, d_fake: torch.Tensor) -> torch.Tensor:
    d = d_fake.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(d_fake=d), d)
    return g


def test_minimax_and_ns_generator_gradients_differ_when_d_rejects_fakes():
    n = 4
    d_fake = torch.full((n,), -10.0, dtype=torch.float64)  # D(G(z)) = sigmoid(-10) ~ 4.5e-5
    g_mm, g_ns = _grad(gan.minimax_g_loss, d_fake), _grad(gan.ns_g_loss, d_fake)
    s = torch.sigmoid(d_fake)
    assert_close(g_mm, -s / n)  # saturates: -> 0
    assert_close(g_ns, -(1 - s) / n)  # does not: -> -1/n
    assert_close(g_mm, torch.full_like(d_fake, 0.0), atol=2e-5, rtol=0)  # |g| = sigmoid(-10)/4 ~ 1.1e-5
    assert_close(g_ns, torch.full_like(d_fake, -1.0 / n), atol=2e-5, rtol=0)
    assert_close(g_ns / g_mm, torch.full_like(d_fake, math.exp(10.0)))  # (1 - s) / s = e^10
    # at logit 0 the two games give the same gradient -1/(2n)
    zero = torch.zeros(n, dtype=torch.float64)
    assert_close(_grad(gan.minimax_g_loss, zero), _grad(gan.ns_g_loss, zero))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logit_losses_are_finite_and_exact_at_logit_100(dtype):
    big = torch.full((3,), 100.0, dtype=dtype)
    # confident and right: loss ~ 0; confident and wrong: loss ~ 200 (softplus(100) = 100)
    assert_close(gan.minimax_d_loss(d_real=big, d_fake=-big), torch.tensor(0.0, dtype=dtype), atol=1e-6, rtol=0)
    assert_close(gan.minimax_d_loss(d_real=-big, d_fake=big), torch.tensor(200.0, dtype=dtype))
    assert_close(gan.ns_g_loss(d_fake=-big), torch.tensor(100.0, dtype=dtype))
    assert_close(gan.minimax_g_loss(d_fake=big), torch.tensor(-100.0, dtype=dtype))
    for fn in (gan.minimax_g_loss, gan.ns_g_loss, gan.hinge_g_loss):
        for x in (big, -big):
            assert torch.isfinite(fn(d_fake=x))
            assert torch.isfinite(_grad(fn, x)).all()
    d = torch.stack([big, -big]).requires_grad_(True)
    gan.minimax_d_loss(d_real=d[0], d_fake=d[1]).backward()
    assert torch.isfinite(d.grad).all()


# --------------------------------------------------------------------------- WGAN, LSGAN, hinge


def test_wasserstein_losses_are_mean_differences():
    d_real = torch.tensor([1.0, 2.0, 3.0, 6.0])  # mean 3
    d_fake = torch.tensor([-1.0, 0.5])  # mean -0.25
    assert_close(gan.wasserstein_d_loss(d_real=d_real, d_fake=d_fake), torch.tensor(-3.25))
    assert_close(gan.wasserstein_g_loss(d_fake=d_fake), torch.tensor(0.25))
    # shifting the critic by a constant leaves the D loss unchanged
    assert_close(
        gan.wasserstein_d_loss(d_real=d_real + 7, d_fake=d_fake + 7), gan.wasserstein_d_loss(d_real=d_real, d_fake=d_fake)
    )


def test_lsgan_against_mse_reference_and_closed_forms():
    d_real, d_fake = _logits(9, 5, 1.0), _logits(7, 6, 1.0)
    ref = 0.5 * F.mse_loss(d_real, torch.ones_like(d_real)) + 0.5 * F.mse_loss(d_fake, torch.zeros_like(d_fake))
    assert_close(gan.lsgan_d_loss(d_real=d_real, d_fake=d_fake), ref)
    assert_close(gan.lsgan_g_loss(d_fake=d_fake), 0.5 * F.mse_loss(d_fake, torch.ones_like(d_fake)))
    # optimum of D (D(x) = b, D(G(z)) = a) and of G (D(G(z)) = c) give 0
    ones, zeros = torch.ones(4), torch.zeros(4)
    assert_close(gan.lsgan_d_loss(d_real=ones, d_fake=zeros), torch.tensor(0.0))
    assert_close(gan.lsgan_g_loss(d_fake=ones), torch.tensor(0.0))
    # D = 1/2 everywhere: 1/2 * 1/4 + 1/2 * 1/4 = 1/4 (the paper's 1/2 factors)
    half = torch.full((4,), 0.5)
    assert_close(gan.lsgan_d_loss(d_real=half, d_fake=half), torch.tensor(0.25))
    assert_close(gan.lsgan_g_loss(d_fake=half), torch.tensor(0.125))
    # other codings: a=-1, b=1, c=0
    assert_close(gan.lsgan_d_loss(d_real=ones, d_fake=-ones, a=-1.0, b=1.0), torch.tensor(0.0))
    assert_close(gan.lsgan_g_loss(d_fake=zeros, c=0.0), torch.tensor(0.0))


def test_hinge_losses():
    assert_close(gan.hinge_d_loss(d_real=torch.ones(3), d_fake=-torch.ones(3)), torch.tensor(0.0))
    assert_close(gan.hinge_d_loss(d_real=torch.zeros(3), d_fake=torch.zeros(3)), torch.tensor(2.0))
    # beyond the margin nothing counts
    assert_close(gan.hinge_d_loss(d_real=torch.tensor([5.0, 1.5]), d_fake=torch.tensor([-4.0])), torch.tensor(0.0))
    d_real, d_fake = _logits(11, 7), _logits(13, 8)
    ref = torch.clamp(1 - d_real, min=0).mean() + torch.clamp(1 + d_fake, min=0).mean()
    assert_close(gan.hinge_d_loss(d_real=d_real, d_fake=d_fake), ref)
    assert_close(gan.hinge_g_loss(d_fake=d_fake), -d_fake.mean())


def test_losses_accept_n_by_1_critic_outputs():
    d_real, d_fake = _logits(6, 9), _logits(6, 10)
    for name in ("minimax", "wgan", "lsgan", "hinge"):
        loss = GAN_LOSSES[name]
        assert_close(
            loss.d_loss(d_real=d_real[:, None], d_fake=d_fake[:, None]), loss.d_loss(d_real=d_real, d_fake=d_fake)
        )


# --------------------------------------------------------------------------- energy based


@pytest.mark.parametrize("shape", [(5, 3), (4, 1, 6, 6), (3, 3, 4, 4)])
def test_reconstruction_energy_against_functional(shape):
    g = torch.Generator().manual_seed(1)
    x, recon = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    dims = tuple(range(1, len(shape)))
    assert_close(gan.reconstruction_energy(x, recon, "mse"), F.mse_loss(recon, x, reduction="none").mean(dim=dims))
    assert_close(gan.reconstruction_energy(x, recon, "l1"), F.l1_loss(recon, x, reduction="none").mean(dim=dims))
    assert gan.reconstruction_energy(x, recon, "mse").shape == (shape[0],)
    assert_close(gan.reconstruction_energy(x, x, "l1"), torch.zeros(shape[0]))


def test_reconstruction_energy_errors():
    x = torch.zeros(2, 3)
    with pytest.raises(UserError, match="choose from: l1, mse"):
        gan.reconstruction_energy(x, x, "l3")
    with pytest.raises(ValueError):
        gan.reconstruction_energy(x, torch.zeros(2, 4), "mse")


def test_ebgan_losses():
    e_real = torch.tensor([0.1, 0.3])  # mean 0.2
    e_fake = torch.tensor([0.5, 2.0, 0.0])  # relu(1 - e) = 0.5, 0, 1 -> mean 0.5
    assert_close(gan.ebgan_d_loss(e_real=e_real, e_fake=e_fake, margin=1.0), torch.tensor(0.7))
    # fakes above the margin are not pushed further
    assert_close(gan.ebgan_d_loss(e_real=e_real, e_fake=torch.tensor([3.0, 5.0]), margin=2.0), torch.tensor(0.2))
    assert_close(gan.ebgan_g_loss(e_fake=e_fake), e_fake.mean())
    code = torch.randn(5, 4, generator=torch.Generator().manual_seed(3))
    assert_close(
        gan.ebgan_g_loss(e_fake=e_fake, code_fake=code, pt_weight=0.1), e_fake.mean() + 0.1 * pulling_away_term(code)
    )
    # with identical codes the pulling-away term is 1
    same = torch.ones(4, 3)
    assert_close(gan.ebgan_g_loss(e_fake=e_fake, code_fake=same, pt_weight=0.3), e_fake.mean() + 0.3)


def test_began_losses_and_k_carries_no_gradient():
    e_real, e_fake = torch.tensor([1.0, 3.0]), torch.tensor([0.5, 1.5, 1.0])
    assert_close(gan.began_d_loss(e_real=e_real, e_fake=e_fake, k=0.25), torch.tensor(2.0 - 0.25))
    assert_close(gan.began_d_loss(e_real=e_real, e_fake=e_fake, k=0.0), e_real.mean())
    assert_close(gan.began_g_loss(e_fake=e_fake), torch.tensor(1.0))
    k = torch.tensor(0.5, requires_grad=True)
    e = e_fake.clone().requires_grad_(True)
    gan.began_d_loss(e_real=e_real, e_fake=e, k=k).backward()
    assert k.grad is None
    assert_close(e.grad, torch.full((3,), -0.5 / 3))


# --------------------------------------------------------------------------- registry


EXPECTED = {
    # name: (output, critic, penalty, clip)
    "minimax": ("logit", "discriminator", ("r1", "r2"), False),
    "ns": ("logit", "discriminator", ("r1", "r2"), False),
    "wgan": ("critic", "discriminator", None, True),
    "wgan-gp": ("critic", "discriminator", "gp", False),
    "lsgan": ("score", "discriminator", None, False),
    "hinge": ("logit", "discriminator", None, False),
    "dragan": ("logit", "discriminator", ("dragan", "r1", "r2"), False),
    "r1": ("logit", "discriminator", ("r1", "r2"), False),
    "rpgan": ("logit", "discriminator", ("r1", "r2"), False),
    "r3gan": ("logit", "discriminator", ("r1", "r2"), False),
    "ebgan": ("energy", "autoencoder", None, False),
    "began": ("energy", "autoencoder", None, False),
}


def test_registry_has_exactly_the_twelve_losses_with_their_fields():
    assert GAN_LOSS_NAMES == tuple(EXPECTED)
    assert set(GAN_LOSSES) == set(EXPECTED)
    for name, (output, critic, penalty, clip) in EXPECTED.items():
        loss = get_gan_loss(name)
        assert isinstance(loss, GANLoss) and loss.name == name
        assert (loss.output, loss.critic, loss.penalty, loss.clip) == (output, critic, penalty, clip)
    with pytest.raises(dataclasses.FrozenInstanceError):
        GAN_LOSSES["ns"].clip = True  # type: ignore[misc]


def test_unknown_loss_raises_user_error_listing_choices():
    with pytest.raises(UserError) as info:
        get_gan_loss("wgangp")
    message = str(info.value)
    assert "'wgangp'" in message and "\n" not in message
    for name in EXPECTED:
        assert name in message


def test_every_loss_cites_an_arxiv_id():
    for loss in GAN_LOSSES.values():
        assert "arXiv:" in loss.source
        assert "arXiv:" in loss.d_loss.__doc__ and "arXiv:" in loss.g_loss.__doc__
        assert loss.summary and "\n" not in loss.summary


def test_defaults_have_the_common_keys_and_paper_values():
    for name, loss in GAN_LOSSES.items():
        d = loss.defaults
        assert d["optimizer"] in ("adam", "rmsprop")
        assert d["lr_g"] > 0 and d["lr_d"] > 0
        assert isinstance(d["betas"], tuple) and len(d["betas"]) == 2
        assert all(isinstance(b, float) for b in d["betas"])
        assert isinstance(d["n_critic"], int) and d["n_critic"] >= 1
        assert d["critic_norm"] in ("batch", "layer", "none")
        if "gp_lambda" in d:  # wgan-gp, dragan: a per-sample penalty, lambda = 10
            assert d["critic_norm"] != "batch", name
            assert d["gp_lambda"] == 10.0
    wgan = GAN_LOSSES["wgan"].defaults
    assert (wgan["optimizer"], wgan["lr_g"], wgan["lr_d"], wgan["clip"], wgan["n_critic"]) == (
        "rmsprop",
        5e-5,
        5e-5,
        0.01,
        5,
    )
    gp = GAN_LOSSES["wgan-gp"].defaults
    assert (gp["optimizer"], gp["lr_d"], gp["betas"], gp["n_critic"]) == ("adam", 1e-4, (0.0, 0.9), 5)
    assert GAN_LOSSES["dragan"].defaults["dragan_c"] == 0.5
    eb = GAN_LOSSES["ebgan"].defaults
    assert eb["pt_weight"] == 0.1 and eb["energy"] == "mse" and eb["margin"] > 0
    be = GAN_LOSSES["began"].defaults
    assert (be["gamma"], be["lambda_k"], be["energy"]) == (0.5, 1e-3, "l1")
    # the dicts are not shared between entries
    assert len({id(loss.defaults) for loss in GAN_LOSSES.values()}) == len(GAN_LOSSES)


def test_every_registered_loss_runs_keyword_only_and_returns_a_scalar():
    d_real, d_fake = _logits(8, 11, 1.0), _logits(8, 12, 1.0)
    e_real, e_fake = d_real.abs(), d_fake.abs()
    for name, loss in GAN_LOSSES.items():
        if loss.output == "energy":
            extra = {"margin": loss.defaults["margin"]} if name == "ebgan" else {"k": 0.1}
            d_val = loss.d_loss(e_real=e_real, e_fake=e_fake, **extra)
            g_val = loss.g_loss(e_fake=e_fake)
        else:
            d_val = loss.d_loss(d_real=d_real, d_fake=d_fake)
            g_val = loss.g_loss(d_fake=d_fake, **({"d_real": d_real} if loss.g_needs_real else {}))
            with pytest.raises(TypeError):
                loss.d_loss(d_real, d_fake)
        assert d_val.shape == () and g_val.shape == ()
        assert np.isfinite(d_val.item()) and np.isfinite(g_val.item())


# --------------------------------------------------------------------------- relativistic pairing, R1/R2 declarations


def _softplus_np(t):
    return np.logaddexp(0.0, t)


def test_rpgan_losses_against_numpy_closed_forms():
    r = np.array([1.0, -2.0, 0.5, 30.0])
    f = np.array([0.0, 3.0, 0.5, -30.0])
    d = gan.rpgan_d_loss(d_real=torch.tensor(r, dtype=torch.float64), d_fake=torch.tensor(f, dtype=torch.float64))
    g = gan.rpgan_g_loss(d_real=torch.tensor(r, dtype=torch.float64), d_fake=torch.tensor(f, dtype=torch.float64))
    assert_close(d, torch.tensor(_softplus_np(f - r).mean(), dtype=torch.float64))
    assert_close(g, torch.tensor(_softplus_np(r - f).mean(), dtype=torch.float64))
    # equal logits: log 2 for both players
    z = torch.zeros(5, dtype=torch.float64)
    assert_close(gan.rpgan_d_loss(d_real=z, d_fake=z), torch.tensor(math.log(2.0), dtype=torch.float64))
    # (N, 1) outputs pair like (N,)
    assert_close(gan.rpgan_d_loss(d_real=torch.tensor(r).reshape(-1, 1), d_fake=torch.tensor(f).reshape(-1, 1)),
                 torch.tensor(_softplus_np(f - r).mean(), dtype=torch.float64))


def test_rpgan_pairs_row_by_row_not_all_pairs():
    r, f = torch.tensor([0.0, 10.0]), torch.tensor([10.0, 0.0])
    # paired: (f0 - r0, f1 - r1) = (10, -10); all pairs would include f0 - r1 = 0
    assert_close(gan.rpgan_d_loss(d_real=r, d_fake=f), (F.softplus(torch.tensor(10.0)) + F.softplus(torch.tensor(-10.0))) / 2)
    with pytest.raises(ValueError, match="as many real as fake"):
        gan.rpgan_d_loss(d_real=torch.zeros(3), d_fake=torch.zeros(4))
    with pytest.raises(ValueError, match="as many real as fake"):
        gan.rpgan_g_loss(d_real=torch.zeros(3), d_fake=torch.zeros(2))


def test_rpgan_generator_gradient_does_not_saturate():
    r = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64)
    f = torch.tensor([-40.0, 0.0, 5.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(gan.rpgan_g_loss(d_fake=f, d_real=r) * 3, f)
    assert_close(g, -torch.sigmoid(r - f.detach()))
    assert_close(g[0], torch.tensor(-1.0, dtype=torch.float64), rtol=1e-15, atol=0)


def test_relativistic_losses_declare_real_logits_and_zero_centred_penalties():
    needs_real = {n for n, loss in GAN_LOSSES.items() if loss.g_needs_real}
    assert needs_real == {"rpgan", "r3gan"}
    bce = {n for n, loss in GAN_LOSSES.items() if loss.grad_penalties}
    assert bce == {"minimax", "ns", "dragan", "r1", "rpgan", "r3gan"}
    for name in bce:
        d = GAN_LOSSES[name].defaults
        assert GAN_LOSSES[name].grad_penalties == ("r1", "r2")
        if d["r1_gamma"] or d["r2_gamma"]:  # on by default: a per-sample penalty, no batch norm
            assert d["critic_norm"] != "batch", name
    off = {n: (GAN_LOSSES[n].defaults["r1_gamma"], GAN_LOSSES[n].defaults["r2_gamma"]) for n in bce}
    assert off == {"minimax": (0.0, 0.0), "ns": (0.0, 0.0), "dragan": (0.0, 0.0), "rpgan": (0.0, 0.0),
                   "r1": (10.0, 0.0), "r3gan": (0.05, 0.05)}
    r1, r3 = GAN_LOSSES["r1"].defaults, GAN_LOSSES["r3gan"].defaults
    assert (r1["optimizer"], r1["lr_g"], r1["lr_d"], r1["n_critic"]) == ("rmsprop", 1e-4, 1e-4, 1)
    assert (r3["optimizer"], r3["lr_g"], r3["betas"], r3["critic_norm"]) == ("adam", 2e-4, (0.0, 0.9), "none")
    assert GAN_LOSSES["r3gan"].d_loss is gan.rpgan_d_loss and GAN_LOSSES["r1"].g_loss is gan.ns_g_loss
    assert {"r1_gamma", "r2_gamma"} <= set(GAN_LOSSES["r3gan"].search_space)
    assert GAN_LOSSES["r1"].search_space["r1_gamma"] == ("log", 0.01, 100.0)
    with pytest.raises(ValueError, match="r1_gamma"):
        dataclasses.replace(GAN_LOSSES["wgan"], name="x", penalty=("r1",))
