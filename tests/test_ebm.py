"""Energy-based models: the Langevin sampler against a Gaussian, the DSM optimum in closed form,
the CD gradient against per-sample autograd, and the family in the loop (train, resume, eval)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from losslab import config as C
from losslab import io, rundir
from losslab.data import load_dataset
from losslab.errors import UserError
from losslab.langevin import ReplayBuffer, energy_grad, langevin_sample, ula_stationary_covariance
from losslab.losses import REGISTRIES, family_of
from losslab.losses.ebm import cd_loss, dsm_loss
from losslab.models.energy import build_energy
from losslab.train import ebm
from losslab.train.loop import train_run

MU = torch.tensor([1.0, -2.0], dtype=torch.float64)
A = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=torch.float64)  # precision; eigenvalues 0.74, 2.26


def _quadratic(x: torch.Tensor) -> torch.Tensor:
    d = x - MU
    return 0.5 * ((d @ A) * d).sum(dim=1)


def _chains(step_size: float, n: int = 4000, steps: int = 800) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x0 = MU + torch.randn(n, 2, generator=g, dtype=torch.float64)
    return langevin_sample(_quadratic, x0, steps=steps, step_size=step_size, generator=g).x


def _mc_tolerances(cov: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """4 standard errors of the sample mean and of each sample covariance entry (Gaussian)."""
    v = torch.diagonal(cov)
    se_mean = (v / n).sqrt()
    se_cov = ((v[:, None] * v[None, :] + cov ** 2) / n).sqrt()
    return 4 * se_mean, 4 * se_cov


# ----------------------------------------------------------------------------- the sampler


def test_langevin_reproduces_the_gaussian_of_a_quadratic_energy():
    """E = 0.5 (x - mu)^T A (x - mu): the Boltzmann density is N(mu, A^-1).

    4,000 independent chains of 800 steps, s = 0.02 (forgetting factor of the start
    (1 - s a_min / 2)^800 ~ 3e-3). Tolerances: the mean within 4 Monte Carlo standard
    errors of mu (ULA's mean is unbiased); the covariance within 4 standard errors of
    ULA's exact stationary covariance, and of A^-1 within that plus the discretisation
    bias ``A^-1 (s a_max / 4) / (1 - s a_max / 4)`` (~1.2% here)."""
    s, n = 0.02, 4000
    x = _chains(s, n)
    target = torch.linalg.inv(A)
    exact = ula_stationary_covariance(A, s)
    tol_mean, tol_cov = _mc_tolerances(exact, n)
    mean, cov = x.mean(0), torch.cov(x.T)
    assert bool(((mean - MU).abs() <= tol_mean).all()), (mean, MU, tol_mean)
    assert bool(((cov - exact).abs() <= tol_cov).all()), (cov, exact, tol_cov)
    a_max = float(torch.linalg.eigvalsh(A).max())
    bias = target.abs() * (s * a_max / 4) / (1 - s * a_max / 4)
    assert bool(((cov - target).abs() <= tol_cov + bias).all())


def test_ula_covariance_formula_and_the_bias_of_a_large_step():
    """At s = 0.8 the unadjusted chain's covariance is visibly wider than A^-1, exactly as
    ula_stationary_covariance says (so the tolerance above measures something)."""
    s, n = 0.8, 4000
    x = _chains(s, n, steps=400)
    exact = ula_stationary_covariance(A, s)
    _, tol_cov = _mc_tolerances(exact, n)
    cov = torch.cov(x.T)
    assert bool(((cov - exact).abs() <= tol_cov).all())
    assert float((torch.diagonal(cov) - torch.diagonal(torch.linalg.inv(A))).min()) > float(tol_cov.max())
    # scalar closed form: a = 2, s = 0.8 -> 1 / (2 (1 - 0.4)) = 5/6
    assert_close(ula_stationary_covariance(torch.tensor([[2.0]], dtype=torch.float64), 0.8),
                 torch.tensor([[5.0 / 6.0]], dtype=torch.float64))


def test_langevin_clamps_counts_and_refuses_bad_arguments():
    g = torch.Generator().manual_seed(1)
    ch = langevin_sample(lambda x: -10.0 * x.sum(1), torch.zeros(50, 2), steps=5, step_size=0.1, noise_scale=0.0, generator=g,
                         clamp=(-1.0, 1.0))
    assert ch.nfe == 5 and ch.at_bounds == 1.0 and bool((ch.x == 1.0).all())  # energy falls outwards
    assert not ch.x.requires_grad
    with pytest.raises(UserError):
        langevin_sample(_quadratic, torch.zeros(2, 2, dtype=torch.float64), steps=1, step_size=0.0)


def test_replay_buffer_reuses_95_percent_and_writes_back():
    g = torch.Generator().manual_seed(0)
    buf = ReplayBuffer(1000, -torch.ones(1, 2), torch.ones(1, 2), 0.05, g)
    buf.x.fill_(7.0)
    x0, slots, fresh = buf.draw(20000, g)
    share = float(fresh.float().mean())
    assert_close(share, 0.05, rtol=0, atol=4 * math.sqrt(0.05 * 0.95 / 20000))
    assert bool((x0[~fresh] == 7.0).all()) and bool((x0[fresh].abs() <= 1).all())
    buf.push(torch.full((3, 2), -3.0), torch.tensor([0, 5, 9]))
    assert bool((buf.x[[0, 5, 9]] == -3.0).all()) and float(buf.x[1, 0]) == 7.0


# ----------------------------------------------------------------------------- denoising score matching


S0, SIGMA, D = 0.7, 0.3, 2


def _dsm_at(c: torch.Tensor, m: torch.Tensor, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """DSM loss of the quadratic energy E(y) = 0.5 c ||y - m||^2 (score -c (y - m))."""
    xn = (x + SIGMA * eps).requires_grad_(True)
    _, grad = energy_grad(lambda y: 0.5 * c * ((y - m) ** 2).sum(1), xn, create_graph=True)
    return dsm_loss(score=-grad, x_noisy=xn, x_clean=x, sigma=SIGMA)


def test_dsm_is_minimised_by_the_score_of_the_noisy_gaussian():
    """x ~ N(mu, s0^2 I), x~ = x + sigma eps ~ N(mu, (s0^2 + sigma^2) I): the optimal energy
    gradient is (x~ - mu) / (s0^2 + sigma^2), i.e. c* = 1 / (s0^2 + sigma^2), m* = mu.

    The loss's gradient in (c, m) is a mean of 200,000 i.i.d. terms with O(1) spread, so it
    is 0 within ~4 / sqrt(N) ~ 0.01; in expectation dL/dc = sigma^2 d (c (s0^2 + sigma^2) - 1)
    (exact), checked at a perturbed c where it is far from 0."""
    g = torch.Generator().manual_seed(0)
    n, mu = 200_000, torch.tensor([0.5, -1.0], dtype=torch.float64)
    x = mu + S0 * torch.randn(n, D, generator=g, dtype=torch.float64)
    eps = torch.randn(n, D, generator=g, dtype=torch.float64)
    c_star = 1.0 / (S0 ** 2 + SIGMA ** 2)
    c = torch.tensor(c_star, dtype=torch.float64, requires_grad=True)
    m = mu.clone().requires_grad_(True)
    best = _dsm_at(c, m, x, eps)
    gc, gm = torch.autograd.grad(best, (c, m))
    assert_close(gc, torch.zeros((), dtype=torch.float64), rtol=0, atol=0.01)
    assert_close(gm, torch.zeros(D, dtype=torch.float64), rtol=0, atol=0.01)
    for dc, dm in ((0.8, 0.0), (1.25, 0.0), (1.0, 0.3), (1.0, -0.3)):
        worse = _dsm_at(torch.tensor(c_star * dc, dtype=torch.float64), mu + dm, x, eps)
        assert float(worse.detach()) > float(best.detach()) + 1e-3
    c2 = torch.tensor(1.25 * c_star, dtype=torch.float64, requires_grad=True)
    (gc2,) = torch.autograd.grad(_dsm_at(c2, mu, x, eps), c2)
    assert_close(gc2, torch.tensor(SIGMA ** 2 * D * 0.25, dtype=torch.float64), rtol=0.03, atol=0)


def test_dsm_with_sigma2_weight_is_the_eps_loss_of_ddpm():
    """sigma^2 * 0.5 ||s + (x~ - x) / sigma^2||^2 = 0.5 ||sigma s + eps||^2: eps_theta = -sigma s."""
    g = torch.Generator().manual_seed(3)
    x, eps, s = (torch.randn(16, 3, generator=g, dtype=torch.float64) for _ in range(3))
    xn = x + SIGMA * eps
    want = 0.5 * ((SIGMA * s + eps) ** 2).sum(1).mean()
    assert_close(dsm_loss(score=s, x_noisy=xn, x_clean=x, sigma=SIGMA), want)
    assert_close(dsm_loss(score=s, x_noisy=xn, x_clean=x, sigma=SIGMA, sigma2_weight=False), want / SIGMA ** 2)


# ----------------------------------------------------------------------------- contrastive divergence


def test_cd_gradient_is_the_maximum_likelihood_gradient_plus_the_regulariser():
    """grad of E(x+).mean - E(x-).mean + a (E+^2 + E-^2).mean with x- detached equals
    mean_i grad E(x+_i) (1 + 2a E+_i) - mean_j grad E(x-_j) (1 - 2a E-_j), built from
    per-sample autograd (an independent reference); the negatives get no gradient."""
    torch.manual_seed(0)
    net = build_energy((2,), hidden=16, layers=2).double()
    g = torch.Generator().manual_seed(1)
    x_pos = torch.randn(6, 2, generator=g, dtype=torch.float64)
    start = torch.randn(5, 2, generator=g, dtype=torch.float64)
    x_neg = langevin_sample(net, start, steps=3, step_size=0.01, generator=g).x
    assert not x_neg.requires_grad
    alpha = 0.3
    params = list(net.parameters())
    got = torch.autograd.grad(cd_loss(e_pos=net(x_pos), e_neg=net(x_neg), alpha=alpha), params)
    want = [torch.zeros_like(p) for p in params]
    for xs, sign in ((x_pos, 1.0), (x_neg, -1.0)):
        for x in xs:
            e = net(x[None])[0]
            grads = torch.autograd.grad(e, params)
            w = (sign + 2 * alpha * float(e.detach())) / len(xs)
            for acc, gr in zip(want, grads):
                acc += w * gr
    for a, b in zip(got, want):
        assert_close(a, b)


# ----------------------------------------------------------------------------- the family


def test_registry_and_family():
    assert family_of("ebm-cd") == family_of("ebm-dsm") == "ebm"
    assert set(REGISTRIES["ebm"]) == {"ebm-cd", "ebm-dsm"}
    cfg = C.resolve("vector", sets=["ebm.alpha=0.5", "ebm.sigma=0.2", "ebm.lr=1e-3"])
    ds = load_dataset("ring8")
    hp_cd, hp_dsm = (ebm.hparams(REGISTRIES["ebm"][n], cfg, ds) for n in ("ebm-cd", "ebm-dsm"))
    assert (hp_cd["alpha"], hp_cd["lr"], "sigma" in hp_cd) == (0.5, 1e-3, False)
    assert (hp_dsm["sigma"], "alpha" in hp_dsm) == (0.2, False)
    with pytest.raises(UserError, match="ebm.reinit"):
        C.resolve("vector", sets=["ebm.reinit=1.5"])


def test_image_defaults_replace_the_vector_ones_on_images_only():
    from types import SimpleNamespace

    image = SimpleNamespace(kind="image", shape=(1, 28, 28), name="mnist")
    vector = load_dataset("ring8")
    for name, loss in REGISTRIES["ebm"].items():
        assert loss.image_defaults, name  # images have their own Langevin step (docs/ebm.md)
        assert set(loss.image_defaults) <= set(loss.defaults), name  # replacements, never new keys
        hp_img = ebm.hparams(loss, C.resolve("image"), image)
        hp_vec = ebm.hparams(loss, C.resolve("image"), vector)  # the same config: only the data's kind differs
        for key, value in loss.image_defaults.items():
            assert hp_img[key] == value and hp_vec[key] == loss.defaults[key], (name, key)
        assert hp_img["step_size"] != hp_vec["step_size"]
        over = ebm.hparams(loss, C.resolve("image", sets=["ebm.step_size=0.5", "ebm.noise_scale=0.25"]), image)
        assert (over["step_size"], over["noise_scale"]) == (0.5, 0.25)  # the config still wins


def test_failure_signatures_are_named():
    calm = [{"energy_gap": 1.0, "at_bounds": 0.01}] * 8
    assert ebm.failure_signatures(calm) == []
    bad = calm + [{"energy_gap": 500.0, "at_bounds": 0.9}] * 4
    sig = ebm.failure_signatures(bad)
    assert [s.split(":")[0] for s in sig] == ["energy gap exploding", "samples saturating at the clamp bounds"]
    assert ebm.failure_signatures([{"step": 1}]) == []


def _cfg(kind: str, steps: int, *extra: str) -> C.Config:
    sets = [f"train.steps={steps}", "train.checkpoint_every=2", "train.log_every=1", "train.n_eval=200",
            "train.batch_size=32", "ebm.langevin_steps=5", "ebm.sample_steps=10", "ebm.buffer_size=100",
            "model.hidden=16", "model.layers=2", *extra]
    return C.resolve(kind, sets=sets)


@pytest.mark.parametrize("loss", ["ebm-cd", "ebm-dsm"])
@pytest.mark.parametrize("data", ["ring8", "digits"])
def test_trains_resumes_exactly_and_evaluates(loss, data, tmp_path, monkeypatch):
    """A run interrupted after update 3 (checkpoint at 2) and rerun ends with the same weights,
    replay buffer and samples as an uninterrupted run; losslab eval repeats its metrics."""
    from losslab.compare import make_evaluator
    from losslab.evaluation import eval_run_dir

    ds = load_dataset(data)
    cfg = _cfg(ds.kind, 4)
    ev = make_evaluator(cfg, ds) if ds.kind == "vector" else None  # images: no FID net in a unit test
    whole = train_run(tmp_path / "a", cfg, ds, loss=loss, seed=1, family="ebm", evaluate=ev)
    assert whole["status"] == "ok", whole.get("error")
    assert whole["sampling_nfe"] == 10 and whole["g_updates"] == 4 and whole["d_updates"] == 0
    rows = rundir.read_metrics(tmp_path / "a")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for key in ("g_loss", "e_pos", "e_neg", "energy_gap", "chain_e_first", "chain_e_last", "at_bounds",
                "g_grad_norm"):
        assert all(math.isfinite(r[key]) for r in rows), key
    assert ("fresh_share" in rows[0]) == (loss == "ebm-cd")
    info = io.read_json(tmp_path / "a" / "ebm.json")
    assert info["sample_steps"] == 10 and info["failure_signatures"] == []

    real_step = ebm.step

    def crash_at_4(state, *a, **k):
        if state.g_updates == 3:
            raise RuntimeError("interrupted")
        return real_step(state, *a, **k)

    monkeypatch.setattr(ebm, "step", crash_at_4)
    assert train_run(tmp_path / "b", cfg, ds, loss=loss, seed=1, family="ebm", evaluate=ev)["status"] == "failed"
    monkeypatch.setattr(ebm, "step", real_step)
    again = train_run(tmp_path / "b", cfg, ds, loss=loss, seed=1, family="ebm", evaluate=ev)
    assert again["status"] == "ok"
    assert_close(rundir.read_samples(tmp_path / "b"), rundir.read_samples(tmp_path / "a"), rtol=0, atol=0)
    ta, tb = rundir.load_checkpoint(tmp_path / "a")[0], rundir.load_checkpoint(tmp_path / "b")[0]
    assert ta.keys() == tb.keys() and (("buffer" in ta) == (loss == "ebm-cd"))
    for k in ta:
        assert_close(ta[k], tb[k], rtol=0, atol=0, msg=k)
    resumed = rundir.read_metrics(tmp_path / "b")
    assert len(resumed) == len(rows)  # zip below would hide lost trailing rows
    assert resumed == [{**r, "wall": rb["wall"]} for r, rb in zip(rows, resumed)]
    if ds.kind == "vector":
        out = eval_run_dir(tmp_path / "a")
        assert (out["family"], out["loss"], out["seed"]) == ("ebm", loss, 1)
        assert out["metrics"]["w1"] == whole["metrics"]["w1"]
        (tmp_path / "a" / rundir.SAMPLES).unlink()  # sampled again from the checkpoint with the run's seed
        assert eval_run_dir(tmp_path / "a")["metrics"]["w1"] == whole["metrics"]["w1"]
