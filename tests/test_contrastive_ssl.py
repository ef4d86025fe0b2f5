"""SigLIP, Barlow Twins and VICReg against numpy transcriptions of the papers' pseudocode; the collapse
diagnostics against closed forms; the learned SigLIP scalars in the family."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from losslab.config import Config
from losslab.data import load_dataset
from losslab.losses import contrastive as L
from losslab.losses.contrastive_ssl import barlow_twins_loss, collapse_stats, siglip_loss, vicreg_loss
from losslab.train import contrastive as fam


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _pair(n=12, d=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)


def _np(t):
    return t.detach().numpy()


def _siglip_algorithm_1(img_emb, txt_emb, t_prime, b):
    """Zhai et al. 2023, Algorithm 1, transcribed into numpy."""
    n = img_emb.shape[0]
    t = np.exp(t_prime)
    zimg = img_emb / np.linalg.norm(img_emb, axis=1, keepdims=True)
    ztxt = txt_emb / np.linalg.norm(txt_emb, axis=1, keepdims=True)
    logits = zimg @ ztxt.T * t + b
    labels = 2 * np.eye(n) - np.ones(n)
    return -np.sum(-np.logaddexp(0, -(labels * logits))) / n  # log_sigmoid(z) = -log(1 + exp(-z))


def _barlow_algorithm_1(z_a, z_b, lambd):
    """Zbontar et al. 2021, Algorithm 1, transcribed into numpy (std: unbiased, as torch's .std(0))."""
    n, d = z_a.shape
    z_a_norm = (z_a - z_a.mean(0)) / z_a.std(0, ddof=1)
    z_b_norm = (z_b - z_b.mean(0)) / z_b.std(0, ddof=1)
    c = z_a_norm.T @ z_b_norm / n
    c_diff = (c - np.eye(d)) ** 2
    off = ~np.eye(d, dtype=bool)
    c_diff[off] *= lambd
    return c_diff.sum()


def _vicreg_eqs(z_a, z_b, lam, mu, nu, gamma=1.0, eps=1e-4):
    """Bardes et al. 2022, Eqs. 1-6 in numpy (s as Algorithm 1's mean squared error over entries)."""
    n, d = z_a.shape

    def v(z):
        return np.mean(np.maximum(0.0, gamma - np.sqrt(z.var(axis=0, ddof=1) + eps)))

    def c(z):
        cov = np.cov(z.T)  # (d, d), divides by n - 1
        return (cov[~np.eye(d, dtype=bool)] ** 2).sum() / d

    s = np.mean((z_a - z_b) ** 2)
    return lam * s + mu * (v(z_a) + v(z_b)) + nu * (c(z_a) + c(z_b))


@pytest.mark.parametrize("t_prime,b", [(math.log(10.0), -10.0), (0.3, 1.5)])
def test_siglip_matches_algorithm_1(t_prime, b):
    x, y = _pair()
    got = siglip_loss(x=x, y=y, t_prime=torch.tensor(t_prime, dtype=torch.float64), bias=torch.tensor(b))
    assert_allclose(float(got), _siglip_algorithm_1(_np(x), _np(y), t_prime, b), rtol=1e-12)


def test_siglip_gradients_reach_the_temperature_and_bias():
    x, y = _pair()
    tp = torch.tensor(math.log(10.0), dtype=torch.float64, requires_grad=True)
    b = torch.tensor(-10.0, dtype=torch.float64, requires_grad=True)
    siglip_loss(x=x, y=y, t_prime=tp, bias=b).backward()
    h = 1e-6  # central finite differences of the numpy reference
    for p, f in ((tp, lambda v: _siglip_algorithm_1(_np(x), _np(y), v, -10.0)),
                 (b, lambda v: _siglip_algorithm_1(_np(x), _np(y), math.log(10.0), v))):
        v0 = float(p.detach())
        assert_allclose(float(p.grad), (f(v0 + h) - f(v0 - h)) / (2 * h), rtol=1e-5)
    # At b = -10 the n^2 - n negatives cost almost nothing: the loss is the n positives' -log sigmoid(10 cos - 10)
    # divided by n, at least softplus(0) = log 2 each: the bias starts the model at "every pair is negative".
    x, y = _pair(n=64, d=16)
    loss = siglip_loss(x=x, y=x, t_prime=math.log(10.0), bias=-10.0)  # identical views: cos = 1 on the diagonal
    assert_allclose(float(loss), math.log(2.0) + 63 * float(torch.nn.functional.softplus(
        10 * (x / x.norm(dim=1, keepdim=True)) @ (x / x.norm(dim=1, keepdim=True)).T - 10).fill_diagonal_(0).sum()
        / 63 / 64), rtol=1e-9)


@pytest.mark.parametrize("lambd", [5e-3, 0.5])
def test_barlow_twins_matches_algorithm_1(lambd):
    x, y = _pair(n=20, d=6)
    assert_allclose(float(barlow_twins_loss(z1=x, z2=y, lambd=lambd)), _barlow_algorithm_1(_np(x), _np(y), lambd),
                    rtol=1e-12)


def test_barlow_twins_of_identical_decorrelated_views():
    # Identical views with centred orthogonal columns: C is diagonal with C_ii = (N - 1) / N (Algorithm 1
    # standardises with the unbiased std, then divides by N), so the loss is D / N^2, not 0.
    a = np.random.default_rng(0).standard_normal((40, 5))
    z, _ = np.linalg.qr(a - a.mean(0))  # columns in the centred subspace: zero mean, orthonormal
    z = torch.from_numpy(z)
    assert_allclose(float(barlow_twins_loss(z1=z, z2=z)), 5 / 40**2, rtol=1e-9)


@pytest.mark.parametrize("coeffs", [(25.0, 25.0, 1.0), (1.0, 3.0, 0.5)])
def test_vicreg_matches_the_equations(coeffs):
    x, y = _pair(n=20, d=6)
    x = 0.3 * x  # std below gamma: the variance hinge is active
    got = vicreg_loss(z1=x, z2=y, inv_coeff=coeffs[0], var_coeff=coeffs[1], cov_coeff=coeffs[2])
    assert_allclose(float(got), _vicreg_eqs(_np(x), _np(y), *coeffs), rtol=1e-12)


def test_vicreg_on_a_collapsed_embedding_is_the_variance_hinge():
    z = torch.ones(16, 8, dtype=torch.float64)  # every sample the same point: std 0, covariance 0
    assert_allclose(float(vicreg_loss(z1=z, z2=z)), 25.0 * 2 * (1 - math.sqrt(1e-4)), rtol=1e-12)


def test_collapse_stats_closed_forms():
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(4000, 8, generator=g, dtype=torch.float64) * 3.0
    s = collapse_stats(spread)
    assert_allclose(s["z_std"], 3.0, rtol=0.03)
    assert_allclose(s["z_std_unit"], 1.0, rtol=0.03)  # unit vectors uniform on the sphere: std 1/sqrt(d)
    assert s["z_corr_offdiag"] < 0.002 and s["z_cov_offdiag"] < 81 * 7 * 0.002
    line = torch.randn(500, 1, generator=g, dtype=torch.float64) * torch.arange(1, 9, dtype=torch.float64)
    s = collapse_stats(line)  # all dimensions proportional: dimensional collapse
    assert_allclose(s["z_corr_offdiag"], 1.0, rtol=1e-9)
    point = torch.ones(10, 8, dtype=torch.float64)
    s = collapse_stats(point)
    assert s["z_std"] == 0.0 and s["z_std_unit"] == 0.0 and s["z_cov_offdiag"] == 0.0


def test_registry_entries():
    sig = L.CONTRASTIVE_LOSSES["siglip"]
    assert sig.learnable == (("t_prime", "t_prime_init"), ("bias", "bias_init"))
    assert_allclose(sig.defaults["t_prime_init"], math.log(10.0)) and sig.defaults["bias_init"] == -10.0
    assert L.CONTRASTIVE_LOSSES["barlow-twins"].defaults["lambd"] == 5e-3
    v = L.CONTRASTIVE_LOSSES["vicreg"].defaults
    assert (v["inv_coeff"], v["var_coeff"], v["cov_coeff"], v["std_target"], v["eps"]) == (25.0, 25.0, 1.0, 1.0, 1e-4)
    for name in ("siglip", "barlow-twins", "vicreg"):
        assert L.CONTRASTIVE_LOSSES[name].search_space == {"lr": ("log", 1e-4, 1e-2)}


def test_siglip_learns_its_scalars_and_logs_them_with_the_collapse_diagnostics():
    ds = load_dataset("digits")
    cfg = Config()
    state = fam.init_state(cfg, ds, "siglip", 0)
    learned = state.model["learned"]()
    before = {k: float(v.detach()) for k, v in learned.items()}
    assert_allclose([float(learned["t_prime"].detach()), float(learned["bias"].detach())], [math.log(10.0), -10.0],
                    rtol=1e-6)
    log = fam.step(state, ds, 32, record=True)
    assert log["learned_bias"] == pytest.approx(-10.0) and "z_std" in log and "z_corr_offdiag" in log
    for _ in range(3):
        fam.step(state, ds, 32)
    after = {k: float(v.detach()) for k, v in state.model["learned"]().items()}
    assert after["bias"] != before["bias"] and after["t_prime"] != before["t_prime"]  # trained with the encoder
    tensors, meta = fam.state_dict(state)  # the scalars travel with the checkpoint
    other = fam.init_state(cfg, ds, "siglip", 5)
    fam.load_state_dict(other, {k: v.clone() for k, v in tensors.items()}, meta)
    assert float(other.model["learned"]()["bias"].detach()) == after["bias"]
