"""The Dirac-GAN (Mescheder et al. 2018, arXiv:1801.04406, Sec. 2): the autograd field of each registered loss
against the paper's closed forms, the Jacobian's eigenvalues, the simulated alternating gradient descent, and
``losslab explain NAME --plot``.

Sign convention: D is high on real data, so our psi is the paper's -psi; with ``f(t) = -log(1 + exp(-t))``,
``f'(t) = sigmoid(-t)`` and ``f'(0) = 1/2``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from losslab import cli
from losslab.errors import UserError
from losslab.explain import dirac
from losslab.explain import explain_text
from losslab.explain.texts_gan import DIRAC_NOT_LINEAR
from losslab.losses import GAN_LOSSES

TH = np.array([-1.5, -0.3, 0.0, 0.7, 2.0, 1.2])
PS = np.array([0.4, -1.1, 0.9, 0.0, -0.6, 1.7])


def fp(t):
    """f'(t) for f(t) = -log(1 + exp(-t)): sigmoid(-t)."""
    return 1.0 / (1.0 + np.exp(t))


def _eig_sorted(ev):
    return np.array(sorted(ev, key=lambda z: (z.imag, z.real)))


def test_unregularised_gan_field_is_the_papers_closed_form():
    # minimax: v = (psi f'(-psi theta), -theta f'(-psi theta)), the paper's Eq. with psi -> -psi
    vt, vp = dirac.vector_field("minimax", TH, PS)
    np.testing.assert_allclose(vt, PS * fp(-PS * TH), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(vp, -TH * fp(-PS * TH), rtol=1e-12, atol=1e-14)
    # ns keeps the critic and changes the generator: v_theta = psi f'(psi theta) (the authors' NSGAN field)
    vt, vp = dirac.vector_field("ns", TH, PS)
    np.testing.assert_allclose(vt, PS * fp(PS * TH), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(vp, -TH * fp(-PS * TH), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,omega", [("minimax", 0.5), ("ns", 0.5), ("rpgan", 0.5), ("wgan", 1.0), ("hinge", 1.0)])
def test_unregularised_losses_have_purely_imaginary_eigenvalues(name, omega):
    a = dirac.analyse(name)
    np.testing.assert_allclose(_eig_sorted(a.eigenvalues), [-1j * omega, 1j * omega], atol=1e-10)
    assert a.verdict == "circles" and a.jump == pytest.approx(omega * dirac.DELTA, rel=1e-6)  # |v(0, +-delta)|
    j = dirac.jacobian(name)
    np.testing.assert_allclose(j, [[0.0, omega], [-omega, 0.0]], atol=1e-10)


def test_wgan_field_is_psi_minus_theta():
    vt, vp = dirac.vector_field("wgan", TH, PS)
    np.testing.assert_allclose(vt, PS, rtol=0, atol=1e-14)
    np.testing.assert_allclose(vp, -TH, rtol=0, atol=1e-14)


def test_wgan_gp_field_jumps_at_the_equilibrium():
    lam = GAN_LOSSES["wgan-gp"].defaults["gp_lambda"]
    ps = np.where(PS == 0.0, 0.3, PS)  # off the kink
    vt, vp = dirac.vector_field("wgan-gp", TH, ps)
    np.testing.assert_allclose(vt, ps, rtol=0, atol=1e-12)
    # L_D = psi theta + lambda (|psi| - 1)^2  ->  v_psi = -theta - 2 lambda (|psi| - 1) sign(psi)
    np.testing.assert_allclose(vp, -TH - 2 * lam * (np.abs(ps) - 1) * np.sign(ps), rtol=1e-12, atol=1e-12)
    a = dirac.analyse("wgan-gp")
    assert a.verdict == "jumps"
    assert a.jump == pytest.approx(2 * lam, rel=1e-4)  # |v(0, 0+)| = 2 lambda (1 - 0+)
    # the one-sided Jacobian [[0, 1], [-1, -2 lambda]] on both sides
    disc = math.sqrt(lam**2 - 1)
    np.testing.assert_allclose(_eig_sorted(a.eigenvalues), [-lam - disc, -lam + disc], rtol=1e-6)
    np.testing.assert_allclose(_eig_sorted(a.eigenvalues_minus), [-lam - disc, -lam + disc], rtol=1e-6)


@pytest.mark.parametrize("gamma", [10.0, 0.3])
def test_r1_eigenvalues_are_the_papers(gamma):
    hp = {**GAN_LOSSES["r1"].defaults, "r1_gamma": gamma}
    a = dirac.analyse("r1", hp=hp)
    root = np.sqrt(complex(gamma**2 / 4 - 0.25))
    np.testing.assert_allclose(_eig_sorted(a.eigenvalues), _eig_sorted([-gamma / 2 + root, -gamma / 2 - root]),
                               atol=1e-10)
    assert a.verdict == "converges"
    # the field: ns's plus -gamma psi in the critic's component
    vt, vp = dirac.vector_field("r1", TH, PS, hp=hp)
    np.testing.assert_allclose(vp, -TH * fp(-PS * TH) - gamma * PS, rtol=1e-12, atol=1e-12)


def test_r1_and_r2_each_add_gamma_psi_and_r3gan_has_both():
    base = GAN_LOSSES["rpgan"].defaults
    _, vp0 = dirac.vector_field("rpgan", TH, PS)
    for r1, r2, k in ((0.7, 0.0, 0.7), (0.0, 0.7, 0.7), (0.7, 0.7, 1.4)):
        _, vp = dirac.vector_field("rpgan", TH, PS, hp={**base, "r1_gamma": r1, "r2_gamma": r2})
        np.testing.assert_allclose(vp - vp0, -k * PS, rtol=1e-12, atol=1e-12)
    gamma = GAN_LOSSES["r3gan"].defaults["r1_gamma"]
    root = np.sqrt(complex(gamma**2 - 0.25))
    a = dirac.analyse("r3gan")
    np.testing.assert_allclose(_eig_sorted(a.eigenvalues), _eig_sorted([-gamma + root, -gamma - root]), atol=1e-10)
    assert a.verdict == "converges"


def test_lsgan_linearisation_is_nilpotent_and_its_generator_stalls():
    np.testing.assert_allclose(dirac.jacobian("lsgan"), [[0.0, 1.0], [0.0, 0.0]], atol=1e-12)
    assert dirac.analyse("lsgan").verdict == "undecided"
    sim = dirac.simulate("lsgan", steps=300)
    assert sim["verdict"] == "stalls" and sim["psi"][-1] == pytest.approx(0.0, abs=1e-4) and sim["theta"][-1] > 0.5


def test_simulation_is_alternating_gradient_descent_with_the_losses_own_steps():
    # wgan: 5 critic steps psi -= h (theta), each clipped to [-c, c], then theta += h psi
    sim = dirac.simulate("wgan", steps=6, theta0=0.3, psi0=0.005)
    h, c = sim["h_g"], GAN_LOSSES["wgan"].defaults["clip"]
    assert sim["h_d"] == h and sim["n_critic"] == 5 and h == pytest.approx(dirac.MAX_STEP)
    th, ps = 0.3, 0.005
    exp_th, exp_ps = [th], [ps]
    for _ in range(6):
        for _ in range(5):
            ps = min(max(ps - h * th, -c), c)
        th = th + h * ps
        exp_th.append(th)
        exp_ps.append(ps)
    np.testing.assert_allclose(sim["theta"], exp_th, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(sim["psi"], exp_ps, rtol=1e-12, atol=1e-15)
    # r1's stiff penalty bounds the step: h rho = 1; the ratio of the learning rates is kept
    r1 = dirac.simulate("r1", steps=1)
    rho = max(abs(z) for z in dirac.analyse("r1").eigenvalues)
    assert r1["h_d"] * rho == pytest.approx(1.0) and r1["h_g"] == r1["h_d"]


def test_trajectories_converge_only_with_zero_centred_penalties():
    hp = {**GAN_LOSSES["r1"].defaults, "r1_gamma": 1.0}
    assert dirac.simulate("r1", steps=200, hp=hp)["verdict"] == "converges"
    sim = dirac.simulate("minimax", steps=200)
    assert sim["verdict"] == "circles"
    a, b = sim["distance"]
    assert 0.5 * a < b < 2 * a


def test_trajectory_verdict_rules():
    t = np.arange(101.0)
    assert dirac.trajectory_verdict(np.exp(-0.1 * t), 0 * t) == "converges"
    assert dirac.trajectory_verdict(1 / np.sqrt(1 + t), 0 * t) == "creeps"
    assert dirac.trajectory_verdict(np.cos(t / 5), np.sin(t / 5)) == "circles"
    assert dirac.trajectory_verdict(np.exp(0.1 * t), 0 * t) == "diverges"
    assert dirac.trajectory_verdict(np.maximum(1 - t / 20, 0.5), 0 * t) == "stalls"


def test_autoencoder_critics_have_no_dirac_gan():
    for name in ("ebgan", "began"):
        assert not dirac.applies(name)
        with pytest.raises(UserError, match="autoencoder"):
            dirac.analyse(name)
        assert " ".join(DIRAC_NOT_LINEAR.split()) in " ".join(explain_text(name).split())
    with pytest.raises(UserError, match="not a GAN loss"):
        dirac.applies("ddpm")


def test_explain_plot_draws_the_dirac_gan_through_the_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dirac, "STEPS", 40)  # a short trajectory: the simulation itself is tested above
    out = tmp_path / "r1.png"
    assert cli.main(["explain", "r1", "--plot", str(out)]) in (0, None)
    text = capsys.readouterr().out
    assert "DIRAC-GAN" in text and "eigenvalues -9.975, -0.02506" in text
    assert "Dirac-GAN trajectory: " in text and "40 generator updates" in text
    with Image.open(out) as im:  # the loss's figure with the Dirac-GAN panels below it
        assert im.format == "PNG" and im.size[1] > 500
    assert [p.name for p in tmp_path.iterdir()] == ["r1.png"]
