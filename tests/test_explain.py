"""Explanations: every registered loss is explained; the numbers behind the figures are right; docs in sync."""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torch.testing import assert_close

from losslab import explain as E
from losslab.explain import dirac
from losslab.explain import figures as explain_figures
from losslab.errors import UserError
from losslab.losses import REGISTRIES, gan
from losslab.losses.classification import CLASSIFICATION_LOSSES
from losslab.losses.penalties import gradient_penalty

REPO = Path(__file__).resolve().parents[1]
ARXIV = re.compile(r"arXiv:\d{4}\.\d{4,5}")
YEAR = re.compile(r"\b(19|20)\d{2}\b")
DIFFUSION_NAMES = {"ddpm", "ddpm-x0", "ddpm-v"}  # explained before the lead registers the family


@pytest.fixture(autouse=True)
def _short_dirac_trajectories(monkeypatch):
    """A GAN loss's --plot adds a simulated Dirac-GAN trajectory; it is tested in test_dirac.py, keep it short here."""
    monkeypatch.setattr(dirac, "STEPS", 30)


def _all_registries() -> dict[str, dict]:
    return {**REGISTRIES, "classification": CLASSIFICATION_LOSSES}


def _f64(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# --------------------------------------------------------------------------- completeness


@pytest.mark.parametrize("family,name", [(f, n) for f, r in _all_registries().items() for n in r])
def test_every_registered_loss_has_a_complete_explanation(family, name):
    assert name in E.EXPLANATIONS, f"{family} loss {name!r} has no explanation in losslab/explain/texts_{family}.py"
    e = E.EXPLANATIONS[name]
    assert e.name == name and e.family == family
    for field in ("formula_text", "formula_latex", "derivation", "source", "compare_command"):
        assert getattr(e, field).strip(), f"{name}.{field} is empty"
    for field in ("used_by", "strengths", "weaknesses", "failure_modes"):
        items = getattr(e, field)
        assert isinstance(items, tuple) and items and all(isinstance(i, str) and i.strip() for i in items), field
    assert ARXIV.search(e.source) or YEAR.search(e.source), f"{name}: source needs an arXiv id or a year"
    # the explanation cites at least the papers the registry cites
    registry_ids = set(ARXIV.findall(_all_registries()[family][name].source))
    assert registry_ids <= set(ARXIV.findall(e.source)), (name, registry_ids)


def test_explained_names_belong_to_their_registries():
    registries = _all_registries()
    for e in E.EXPLANATIONS.values():
        assert e.family in E.FAMILY_PAGES
        if e.family in registries:
            assert e.name in registries[e.family], f"{e.name!r} is explained but not registered as {e.family}"
    diffusion = {n for n, e in E.EXPLANATIONS.items() if e.family == "diffusion"}
    assert diffusion == (set(registries["diffusion"]) if "diffusion" in registries else DIFFUSION_NAMES)


@pytest.mark.parametrize("name", list(E.EXPLANATIONS))
def test_explain_text_has_every_section(name):
    e = E.EXPLANATIONS[name]
    text = E.explain_text(name)
    for heading in ("FORMULA", "DERIVATION", "USED BY", "STRENGTHS", "WEAKNESSES", "FAILURE MODES", "SEE IT AT WORK"):
        assert f"\n{heading}\n" in text
    assert e.source in text and e.compare_command in text and f"--plot {name}.png" in text
    assert "`" not in text  # inline-math backticks are for Markdown only


@pytest.mark.parametrize("name", list(E.EXPLANATIONS))
def test_compare_command_runs_on_known_losses(name):
    from losslab.cli import build_parser

    e = E.EXPLANATIONS[name]
    argv = shlex.split(e.compare_command)
    if argv[0] == "python":  # a family without a trainer: a runnable example instead
        assert (REPO / argv[1]).is_file()
        return
    assert argv[:2] == ["losslab", "compare"]
    args = build_parser().parse_args(argv[1:])
    losses = args.losses.split(",")
    assert name in losses
    registry = _all_registries().get(e.family)
    if registry is not None:
        assert set(losses) <= set(registry)
    assert args.family in (None, e.family)  # --family is optional: the registry decides each loss's family


def test_unknown_names_are_user_errors():
    with pytest.raises(UserError, match="unknown loss 'nope'; choose from: .*wgan-gp"):
        E.explain_text("nope")
    with pytest.raises(UserError, match="unknown loss"):
        E.plot_loss("nope", "x.png")
    with pytest.raises(UserError, match="unknown family"):
        E.explain_markdown("nope")


# --------------------------------------------------------------------------- figures


def _one_name_per_figure() -> list[str]:
    seen: dict[str, str] = {}
    for name in E.EXPLANATIONS:
        seen.setdefault(E.figure_file(name), name)
    return list(seen.values())


@pytest.mark.parametrize("name", _one_name_per_figure())
def test_plot_loss_writes_a_decodable_png(name, tmp_path):
    out = E.plot_loss(name, tmp_path / "sub" / f"{name}.png")
    assert out == tmp_path / "sub" / f"{name}.png"
    with Image.open(out) as im:
        im.verify()
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] >= 500 and im.size[1] >= 200
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp file left behind


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_each_explanation_names_its_figure_and_a_key_names_one_figure():
    by_key: dict[str, E.LossFigure] = {}
    for name, e in E.EXPLANATIONS.items():
        assert isinstance(e.figure, E.LossFigure) and callable(e.figure.draw) and e.figure.caption.strip(), name
        assert by_key.setdefault(e.figure.key, e.figure) is e.figure, f"two figures share the key {e.figure.key!r}"
        assert E.figure_file(name) == e.figure.file_name == f"explain_{e.figure.key}.png"
        assert _squeeze(e.figure.caption) in _squeeze(E.explain_text(name))  # the terminal text is wrapped
    # losses share figures (minimax, ns and dragan show one); one file per figure; no figure is left unshown
    assert E.EXPLANATIONS["minimax"].figure is E.EXPLANATIONS["ns"].figure is E.EXPLANATIONS["dragan"].figure
    assert E.EXPLANATIONS["r1"].figure is E.EXPLANATIONS["ns"].figure
    assert E.EXPLANATIONS["rpgan"].figure is E.EXPLANATIONS["r3gan"].figure
    assert E.EXPLANATIONS["lsgan"].figure is not E.EXPLANATIONS["hinge"].figure
    assert len(by_key) == len(_one_name_per_figure())
    defined = {f.key for f in vars(explain_figures).values() if isinstance(f, E.LossFigure)}
    assert defined == set(by_key)


def test_families_have_one_figure_each_at_least():
    families = {e.family for e in E.EXPLANATIONS.values()}
    for family in families:
        assert any(E.EXPLANATIONS[n].family == family for n in _one_name_per_figure())


def test_plot_needs_a_png_name_and_explain_cli_writes_it(tmp_path):
    with pytest.raises(UserError, match=r"\.png"):
        E.plot_loss("ns", tmp_path / "ns.jpg")
    assert E.explain_cli("ns", None) == E.explain_text("ns")
    text = E.explain_cli("ns", str(tmp_path / "ns.png"))
    assert text.startswith(E.explain_text("ns")) and str(tmp_path / "ns.png") in text
    assert (tmp_path / "ns.png").stat().st_size > 0


# --------------------------------------------------------------------------- saturation: the numbers


def _logit_grad(loss_fn, logit: torch.Tensor) -> torch.Tensor:
    """Per-sample derivative of a GAN generator loss w.r.t. each logit (autograd)."""
    t = logit.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(d_fake=t) * len(t), t)  # undo the mean
    return g


def test_minimax_saturates_and_ns_does_not_wrt_the_logit():
    logit = _f64(-40.0, -20.0, -5.0, 0.0, 3.0)
    d = torch.sigmoid(logit)
    assert_close(_logit_grad(gan.minimax_g_loss, logit), -d)
    assert_close(_logit_grad(gan.ns_g_loss, logit), -(1 - d))
    # the limit D(G(z)) -> 0: minimax -> 0, ns -> -1
    far = _f64(-40.0)
    assert_close(_logit_grad(gan.minimax_g_loss, far), _f64(0.0), atol=1e-16, rtol=0)
    assert_close(_logit_grad(gan.ns_g_loss, far), _f64(-1.0), atol=0, rtol=1e-15)


def test_minimax_gradient_wrt_d_is_minus_one_but_the_sigmoid_kills_it():
    # d/dD log(1 - D) = -1 / (1 - D) -> -1 as D -> 0; times dD/dl = D (1 - D) it is -D -> 0
    D = _f64(1e-9, 1e-4, 0.3).requires_grad_(True)
    (g,) = torch.autograd.grad(torch.log(1 - D).sum(), D)
    assert_close(g, -1 / (1 - D.detach()))
    assert_close(g[0], torch.tensor(-1.0, dtype=torch.float64), rtol=1e-8, atol=0)
    dD = D.detach() * (1 - D.detach())
    assert_close(g * dD, _logit_grad(gan.minimax_g_loss, torch.logit(D.detach())))


def test_saturation_curves_are_the_closed_forms():
    p = np.array([1e-6, 1e-3, 0.2, 0.5, 0.99])
    c = E.saturation_curves(p)
    np.testing.assert_allclose(c["minimax_grad"], -p, rtol=1e-10)
    np.testing.assert_allclose(c["ns_grad"], -(1 - p), rtol=1e-10)
    np.testing.assert_allclose(c["minimax_loss"], np.log1p(-p), rtol=1e-10)
    np.testing.assert_allclose(c["ns_loss"], -np.log(p), rtol=1e-10)
    with pytest.raises(UserError):
        E.saturation_curves(np.array([0.0, 0.5]))


# --------------------------------------------------------------------------- the 1-D critic experiment


def test_optimal_bce_discriminator_gradient_closed_form_vs_autograd():
    sigma = 0.1
    d = np.array([0.02, 0.05, 0.1, 0.2, 0.35])
    closed = E.critic_1d_curves(d, sigma)["bce_grad"]
    for di, ci in zip(d, closed):
        x = torch.tensor(di, dtype=torch.float64, requires_grad=True)  # the fake point x = d
        p, q = torch.distributions.Normal(_f64(0.0), _f64(sigma)), torch.distributions.Normal(_f64(di), _f64(sigma))
        d_star = torch.sigmoid(p.log_prob(x) - q.log_prob(x))  # p / (p + q), Goodfellow et al. Prop. 1
        (g,) = torch.autograd.grad(d_star, x)
        assert_close(g.abs(), torch.tensor(ci, dtype=torch.float64), rtol=1e-10, atol=0)


def test_bce_gradient_vanishes_with_distance_while_the_w1_critic_keeps_slope_one():
    sigma = 0.1
    d = np.array([0.2, 0.5, 1.0, 2.0])
    c = E.critic_1d_curves(d, sigma)
    assert np.all(np.diff(c["bce_grad"]) < 0)
    np.testing.assert_allclose(c["bce_grad"][2:], 0.0, atol=1e-15, rtol=0)  # exp(-50) * 100 ~ 2e-20
    np.testing.assert_array_equal(c["wgan_grad"], 1.0)
    # the optimal W1 critic f(x) = -x: it attains W1 = d, and it has zero gradient penalty
    u = stats.norm.ppf((np.arange(2000) + 0.5) / 2000) * sigma  # quantiles of N(0, s^2)
    for di in d:
        w1 = stats.wasserstein_distance(u, u + di)
        np.testing.assert_allclose(w1, di, rtol=1e-12)
        np.testing.assert_allclose(np.mean(-u) - np.mean(-(u + di)), w1, rtol=1e-12)
    real = torch.tensor(u[:64], dtype=torch.float64).unsqueeze(1)
    gp = gradient_penalty(lambda x: -x.squeeze(1), real, real + 1.0, generator=torch.Generator().manual_seed(0))
    assert_close(gp, torch.tensor(0.0, dtype=torch.float64))
    np.testing.assert_allclose(c["w1"], d)


def test_js_curve_satisfies_goodfellow_theorem_1():
    # with the optimal discriminator, the minimax D loss equals 2 log 2 - 2 JS (losslab's own loss function)
    sigma, n = 0.1, 20000
    u = stats.norm.ppf((np.arange(n) + 0.5) / n) * sigma  # deterministic quantile sample of N(0, s^2)
    for d in (0.05, 0.15, 0.3):
        real, fake = torch.tensor(u), torch.tensor(u + d)
        loss = gan.minimax_d_loss(
            d_real=torch.tensor(E.optimal_discriminator_logit(real.numpy(), d, sigma)),
            d_fake=torch.tensor(E.optimal_discriminator_logit(fake.numpy(), d, sigma)),
        )
        js = E.critic_1d_curves(np.array([d]), sigma)["js"][0]
        assert_close(loss, torch.tensor(2 * math.log(2) - 2 * js, dtype=torch.float64), rtol=0, atol=2e-4)
    assert E.js_gaussians(0.0, 0.1) == 0.0
    np.testing.assert_allclose(E.js_gaussians(1.0, 0.01), math.log(2), rtol=1e-12)  # point-mass limit
    # small shifts: JS ~ delta^2 / 8 (a quarter of KL = delta^2 / 2)
    np.testing.assert_allclose(E.js_gaussians(0.001, 1.0), 0.001**2 / 8, rtol=1e-3)


# --------------------------------------------------------------------------- classification and diffusion figures


def test_binary_stability_curves_show_the_lost_gradient():
    c = E.binary_stability_curves(np.array([-30.0, -5.0, 0.0]))
    np.testing.assert_allclose(c["bce_grad"][0], 0.0, atol=0)  # clamped: sigmoid(-30) < 1e-7
    np.testing.assert_allclose(c["bce_loss"][0], -math.log(np.float32(1e-7)), rtol=1e-6)
    np.testing.assert_allclose(c["logits_grad"], 1 / (1 + np.exp([30.0, 5.0, 0.0])) - 1, rtol=1e-6)
    np.testing.assert_allclose(c["logits_loss"], np.logaddexp(0, [30.0, 5.0, 0.0]), rtol=1e-6)
    np.testing.assert_allclose(c["bce_grad"][1:], c["logits_grad"][1:], rtol=1e-5)


def test_focal_curves_reproduce_cross_entropy_at_gamma_0():
    p = np.array([0.1, 0.5, 0.9])
    c = E.focal_curves(p, gammas=(0.0, 2.0))
    np.testing.assert_allclose(c["loss_0.0"], -np.log(p), rtol=1e-12)
    np.testing.assert_allclose(c["loss_2.0"], -((1 - p) ** 2) * np.log(p), rtol=1e-12)


def test_diffusion_losses_are_one_x0_regression_with_snr_weights():
    g = torch.Generator().manual_seed(0)
    x0, eps, eps_hat = (torch.randn(6, 5, generator=g, dtype=torch.float64) for _ in range(3))
    for ab in (0.999, 0.5, 0.01):
        a, s = math.sqrt(ab), math.sqrt(1 - ab)
        snr = ab / (1 - ab)
        x_t = a * x0 + s * eps  # Ho et al. Eq. 4
        x0_hat = (x_t - s * eps_hat) / a  # the x0 that the eps prediction implies
        v, v_hat = a * eps - s * x0, a * eps_hat - s * x0_hat  # Salimans & Ho Sec. 4
        err_x0 = (x0 - x0_hat).pow(2).sum()
        w = E.diffusion_weight_curves(np.array([math.log(snr)]))
        assert_close((eps - eps_hat).pow(2).sum(), w["ddpm"][0] * err_x0)
        assert_close((v - v_hat).pow(2).sum(), w["ddpm-v"][0] * err_x0)
        assert_close(w["ddpm-x0"][0] * err_x0, err_x0)
        # the v derivation's inversions: x0 = a x_t - s v, eps = s x_t + a v
        assert_close(a * x_t - s * v, x0)
        assert_close(s * x_t + a * v, eps)


# --------------------------------------------------------------------------- docs


@pytest.mark.parametrize("family", sorted({e.family for e in E.EXPLANATIONS.values()}))
def test_docs_pages_are_generated_from_explain(family):
    page = REPO / "docs" / f"{family}.md"
    assert page.read_text() == E.explain_markdown(family), "run scripts/make_docs.py"
    for img in re.findall(r"\]\((img/[^)]+\.png)\)", page.read_text()):
        assert (REPO / "docs" / img).is_file(), img
    text = E.explain_markdown(family)
    for name, e in E.EXPLANATIONS.items():
        if e.family == family:
            assert f"\n## {name}\n" in text and e.formula_latex.split("\\\\")[0][:30] in text.replace("\n", "")


def test_scripts_compile():
    for path in [REPO / "scripts" / "make_docs.py", *sorted((REPO / "examples").glob("plot_*.py"))]:
        compile(path.read_text(), str(path), "exec")
    assert len(list((REPO / "examples").glob("plot_*.py"))) >= 3


def test_contrastive_curves_are_the_closed_forms():
    s = np.array([-0.9, -0.3, 0.0, 0.4, 0.95])
    c = E.softmax_contrastive_curves(s, (0.07, 1.0), batch=8)
    K = 14  # 2N - 2 negatives of NT-Xent at N = 8, all at cosine 0
    for tau in (0.07, 1.0):
        np.testing.assert_allclose(c[f"loss_{tau}"], np.logaddexp(0, np.log(K) - s / tau), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(c[f"grad_{tau}"], -(1 / tau) / (1 + np.exp(s / tau - np.log(K))),
                                   rtol=1e-9, atol=1e-13)
    d = np.array([0.1, 0.5, 0.9, 1.2, 1.9])
    m = E.margin_curves(d)
    np.testing.assert_allclose(m["contrastive_neg_loss"], np.maximum(0, 1 - d) ** 2 / 2, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(m["triplet_loss"], np.maximum(0, 0.49 - d**2 + 0.2), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(m["bce_pos_loss"], np.logaddexp(0, -(1 - d**2 / 2)), rtol=1e-10)
