"""Flow matching and EDM: the formulas against closed forms, the ODE samplers, the NFE, the family."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from losslab import config as C
from losslab import schedules as S
from losslab.data import load_dataset
from losslab.errors import UserError
from losslab.losses.diffusion import DIFFUSION_LOSSES, make_objective
from losslab.losses.flow_edm import (
    TIME_SCALE,
    EDMObjective,
    FlowMatchingObjective,
    edm_precond,
    flow_optimal_velocity,
)
from losslab.report.diffusion import plot_diffusion
from losslab.train import diffusion as D


def _cfg(kind: str = "vector", *sets: str) -> C.Config:
    return C.resolve(kind, sets=["train.steps=4", "train.batch_size=32", "diffusion.sample_steps=5", *sets])


class _Oracle(nn.Module):
    """A network that is a closed-form function of (x, time); counts its evaluations (rows)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.w = nn.Parameter(torch.zeros(()))  # a device for the samplers
        self.calls = 0

    def forward(self, x, time):
        self.calls += 1
        return self.fn(x, time)


# ----------------------------------------------------------------------------- flow matching


@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_flow_matching_regression_recovers_the_gaussian_optimum(t):
    # x0 ~ N(mu, s^2) (data), x1 ~ N(0, 1): the least-squares fit of the target u on x_t at fixed t
    # is the closed-form conditional mean v*(x, t), which is affine in x.
    mu, s, n = 1.5, 0.5, 1_000_000  # standard errors of the fit <= 0.0034: the tolerance is 4 of them
    g = torch.Generator().manual_seed(0)
    x0 = mu + s * torch.randn(n, generator=g, dtype=torch.float64)
    x1 = torch.randn(n, generator=g, dtype=torch.float64)
    x_t, u = FlowMatchingObjective().interpolate(x0[:, None], x1[:, None], torch.full((n,), t, dtype=torch.float64))
    a = torch.stack([x_t[:, 0], torch.ones(n, dtype=torch.float64)], dim=1)
    slope, icpt = torch.linalg.lstsq(a, u[:, :1]).solution[:, 0].tolist()
    want_icpt = float(flow_optimal_velocity(torch.zeros((), dtype=torch.float64), t, mu, s))
    want_slope = float(flow_optimal_velocity(torch.ones((), dtype=torch.float64), t, mu, s)) - want_icpt
    np.testing.assert_allclose([slope, icpt], [want_slope, want_icpt], rtol=0, atol=0.014)


def test_flow_matching_loss_is_minimal_at_the_closed_form_field():
    # E||v*(x_t) - u||^2 at fixed t = Var(u) - Cov(u, x_t)^2 / Var(x_t); any other field costs more.
    mu, s, t, n = -0.7, 0.8, 0.35, 200_000
    obj = FlowMatchingObjective()
    x0 = (mu + s * torch.randn(n, 1, generator=torch.Generator().manual_seed(1))).to(torch.float64)
    tt = torch.full((n,), t)
    oracle = _Oracle(lambda x, time: flow_optimal_velocity(x, time[:, None].to(x.dtype) / TIME_SCALE, mu, s))
    best = float(obj(oracle, x0, t=tt, generator=torch.Generator().manual_seed(2)).mean())
    var_x = (1 - t) ** 2 * s**2 + t**2
    np.testing.assert_allclose(best, 1 + s**2 - (t - (1 - t) * s**2) ** 2 / var_x, rtol=0.02)
    for wrong in (lambda x, time: 1.1 * oracle.fn(x, time), lambda x, time: oracle.fn(x, time) + 0.1):
        worse = float(obj(_Oracle(wrong), x0, t=tt, generator=torch.Generator().manual_seed(2)).mean())
        assert worse > best + 1e-3


def test_flow_matching_call_matches_an_independent_computation():
    net = nn.Linear(3, 3)
    model = lambda x, time: net(x) * (1 + time[:, None] / TIME_SCALE)  # noqa: E731
    x0 = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    got = FlowMatchingObjective()(model, x0, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)  # the objective draws t, then the noise x1
    t = torch.rand(16, generator=g)
    x1 = torch.randn(16, 3, generator=g)
    x_t = (1 - t[:, None]) * x0 + t[:, None] * x1
    want = ((net(x_t) * (1 + t[:, None]) - (x1 - x0)) ** 2).mean(dim=1)
    assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_flow_ode_with_the_optimal_field_transports_noise_to_the_data(method):
    # In 1-D the flow of v* is the monotone map x1 -> mu + s x1 (N(0,1) to N(mu, s^2)).
    mu, s = 2.0, 0.3
    obj = FlowMatchingObjective()
    oracle = _Oracle(lambda x, time: flow_optimal_velocity(x, time[:, None] / TIME_SCALE, mu, s))
    x1 = torch.linspace(-2.5, 2.5, 11, dtype=torch.float64)[:, None]
    x = S.ode_sample(lambda x, t: oracle(x, torch.full((len(x),), TIME_SCALE * t, dtype=x.dtype)),
                     S.flow_times(S.ode_steps(400, method, correct_last=True)), x1, method=method, correct_last=True)
    assert_close(x, mu + s * x1, rtol=0, atol=6e-3 if method == "euler" else 2e-4)  # Euler: first order


def test_heun_beats_euler_at_equal_nfe_and_counts_its_evaluations():
    mu, s = 2.0, 0.3
    x1 = torch.linspace(-2.5, 2.5, 11, dtype=torch.float64)[:, None]
    errors = {}
    for method in ("euler", "heun"):
        oracle = _Oracle(lambda x, time: flow_optimal_velocity(x, time[:, None] / TIME_SCALE, mu, s))
        v = lambda x, t, o=oracle: o(x, torch.full((len(x),), TIME_SCALE * t, dtype=x.dtype))  # noqa: E731
        x = FlowMatchingObjective().sample(oracle, (11, 1), sampler=method, steps=10, x_start=x1)
        errors[method] = float((x - (mu + s * x1)).abs().max())
        assert oracle.calls == FlowMatchingObjective().nfe(method, 10) == 10
    assert errors["heun"] < 0.2 * errors["euler"]


def test_nfe_of_the_solvers():
    assert [S.ode_steps(k, "euler") for k in (1, 25, 100)] == [1, 25, 100]
    assert [S.ode_steps(k, "heun") for k in (1, 25, 100)] == [1, 13, 50]  # EDM: the last step is Euler
    assert [S.ode_nfe(S.ode_steps(k, "heun"), "heun") for k in (1, 25, 100)] == [1, 25, 99]
    fm = FlowMatchingObjective()  # flow matching: every step corrected
    assert [fm.nfe("heun", k) for k in (2, 25, 100)] == [2, 24, 100] and fm.nfe("euler", 25) == 25
    with pytest.raises(UserError):
        S.ode_steps(0, "heun")
    with pytest.raises(UserError, match="sampler"):
        S.ode_steps(5, "rk45")


# ----------------------------------------------------------------------------- EDM


def test_edm_preconditioning_matches_table_1():
    sd = 0.5
    sig = np.array([0.002, 0.05, 0.5, 1.0, 7.0, 80.0])
    got = [c.numpy() for c in edm_precond(torch.tensor(sig), sd)]
    want = [sd**2 / (sig**2 + sd**2), sig * sd / np.sqrt(sig**2 + sd**2), 1 / np.sqrt(sig**2 + sd**2),
            0.25 * np.log(sig)]
    for g_, w in zip(got, want):
        np.testing.assert_allclose(g_, w, rtol=1e-12)
    obj = EDMObjective(sigma_data=sd)
    lam = obj.weight(torch.tensor(sig)).numpy()
    np.testing.assert_allclose(lam, (sig**2 + sd**2) / (sig * sd) ** 2, rtol=1e-12)
    np.testing.assert_allclose(lam * got[1] ** 2, np.ones_like(sig), rtol=1e-12)  # effective target: unit weight


def test_edm_training_noise_is_log_normal():
    sig = EDMObjective().sample_t(200_000, torch.Generator().manual_seed(0))
    ln = sig.double().log()
    np.testing.assert_allclose([float(ln.mean()), float(ln.std())], [-1.2, 1.2], atol=0.01)


def test_edm_sigmas_follow_eq_5():
    s = S.edm_sigmas(18)
    i = np.arange(18)
    want = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    np.testing.assert_allclose(s[:-1].numpy(), want, rtol=1e-12)
    assert float(s[-1]) == 0.0 and float(s[0]) == pytest.approx(80.0) and float(s[-2]) == pytest.approx(0.002)


def _edm_oracle(obj: EDMObjective, denoiser):
    """The raw network F whose preconditioned D equals ``denoiser(x, sigma)``: F = (D - c_skip x) / c_out."""

    def f(x_in, time):
        sigma = torch.exp(4 * time.double() / TIME_SCALE)
        c_skip, c_out, c_in, _ = edm_precond(sigma, obj.sigma_data)
        x = x_in.double() / c_in[:, None]
        return ((denoiser(x, sigma[:, None]) - c_skip[:, None] * x) / c_out[:, None]).to(x_in.dtype)

    return _Oracle(f)


def test_edm_loss_is_zero_for_the_exact_denoiser_of_a_point_mass():
    obj = EDMObjective(sigma_data=1.0)
    c = 0.7
    x0 = torch.full((256, 2), c, dtype=torch.float64)
    loss = obj(_edm_oracle(obj, lambda x, sigma: torch.full_like(x, c)), x0, generator=torch.Generator().manual_seed(0))
    assert_close(loss, torch.zeros(256, dtype=torch.float64), rtol=0, atol=1e-9)


def test_edm_call_matches_an_independent_computation():
    obj = EDMObjective(sigma_data=0.5)
    zero = _Oracle(lambda x, time: torch.zeros_like(x))  # F = 0: D = c_skip x
    x0 = torch.randn(64, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got = obj(zero, x0, generator=torch.Generator().manual_seed(4)).numpy()
    g = torch.Generator().manual_seed(4)  # sigma first, then the noise
    sig = (torch.randn(64, generator=g) * 1.2 - 1.2).exp().double().numpy()[:, None]
    n = torch.randn(64, 3, generator=g, dtype=torch.float64).numpy()
    y = x0.numpy()
    d = 0.25 / (sig**2 + 0.25) * (y + sig * n)
    want = ((sig**2 + 0.25) / (sig * 0.5) ** 2 * (d - y) ** 2).mean(axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_edm_heun_sampler_with_the_ideal_denoiser_converges_at_second_order():
    # Data N(0, s^2): the ideal denoiser is D = s^2 / (s^2 + sigma^2) x and the probability-flow ODE
    # carries x(sigma_max) to x(0) = x(sigma_max) s / sqrt(s^2 + sigma_max^2).
    s = 0.8
    obj = EDMObjective(sigma_data=1.0)
    x_start = torch.linspace(-2, 2, 5, dtype=torch.float64)[:, None]
    exact = x_start * 80.0 * s / math.sqrt(s**2 + 80.0**2)
    err = {}
    for steps in (79, 319):  # N = 40 and 160 Heun steps
        oracle = _edm_oracle(obj, lambda x, sigma: s**2 / (s**2 + sigma**2) * x)
        out, ts, xs = obj.sample(oracle, (5, 1), sampler="heun", steps=steps, x_start=x_start, trajectory=True)
        n = (steps + 1) // 2
        assert oracle.calls == obj.nfe("heun", steps) == steps and len(ts) == n + 1 and xs.shape == (n + 1, 5, 1)
        # through the preconditioning, the same path as Algorithm 1 on the exact field (x - D) / sigma
        direct = S.ode_sample(lambda x, sg: x * sg / (s**2 + sg**2), S.edm_sigmas(n), x_start * 80.0)
        assert_close(out.double(), direct, rtol=1e-5, atol=1e-6)
        err[steps] = float((out.double() - exact).abs().max() / exact.abs().max())
    assert err[319] < 1e-3 and 10 < err[79] / err[319] < 25  # 4x the steps: ~16x smaller error


# ----------------------------------------------------------------------------- the family


def test_registry_and_objectives():
    fm, edm = DIFFUSION_LOSSES["flow-matching"], DIFFUSION_LOSSES["edm"]
    assert fm.defaults["sampler"] == "euler" and edm.defaults["sampler"] == "heun"
    assert fm.search_space == edm.search_space == {"lr": ("log", 2e-5, 2e-3)}
    assert isinstance(make_objective(fm, fm.defaults, kind="vector"), FlowMatchingObjective)
    o = make_objective(edm, edm.defaults, kind="image")
    assert isinstance(o, EDMObjective) and o.sigma_data == 0.5 and (o.p_mean, o.p_std, o.rho) == (-1.2, 1.2, 7.0)
    assert make_objective(edm, edm.defaults, kind="vector").sigma_data == 1.0  # standardised vectors


@pytest.mark.parametrize("loss,sampler", [("ddpm", "heun"), ("flow-matching", "ddim"), ("edm", "ddpm")])
def test_a_sampler_of_another_objective_is_refused(loss, sampler):
    with pytest.raises(UserError, match="sampler"):
        D.init_state(_cfg("vector", f"diffusion.sampler={sampler}"), load_dataset("ring8"), loss, seed=0)


@pytest.mark.parametrize("loss", ["flow-matching", "edm"])
def test_step_buckets_nfe_and_artifacts(tmp_path, loss):
    ds = load_dataset("ring8")
    st = D.init_state(_cfg("vector", "diffusion.sample_steps=7"), ds, loss, seed=0)
    log = D.step(st, ds, 256, record=True)
    buckets = [log[f"loss_t{b}"] for b in range(D.N_BUCKETS) if f"loss_t{b}" in log]
    assert len(buckets) >= 8 and all(math.isfinite(v) and v >= 0 for v in buckets)
    assert D.nfe(st) == 7  # Euler: 7 steps; Heun: 4 steps, 2 x 4 - 1 evaluations
    D.artifacts(st, ds, tmp_path)
    with np.load(tmp_path / "diffusion.npz", allow_pickle=False) as f:
        a = {k: f[k] for k in f.files}
    assert a["forward_x"].shape == (8, 1000, 2) and len(a["forward_label"]) == 8 and len(a["bucket_label"]) == 10
    assert np.isfinite(a["bucket_loss"]).all() and int(a["nfe"]) == 7 and "T" not in a
    assert str(a["forward_label"][0]) == "x_0 (data)" and str(a["reverse_label"][-1]) == "output x_0"
    assert plot_diffusion(tmp_path, tmp_path / "fig.png") is not None


@pytest.mark.parametrize("loss,sampler,nfe", [("flow-matching", "heun", 6), ("edm", "euler", 6), ("edm", "heun", 5)])
def test_cli_train_records_the_sampler_and_its_nfe(tmp_path, loss, sampler, nfe):
    from losslab.cli import main
    from losslab.io import read_json

    main(["train", "--loss", loss, "--data", "gaussian1d", "--steps", "2", "--out", str(tmp_path), "--quiet",
          "--set", f"diffusion.sampler={sampler}", "--set", "diffusion.sample_steps=6",
          "--set", "train.n_eval=50", "--set", "train.curve_points=0"])
    (run,) = tmp_path.iterdir()
    res = read_json(run / "result.json")
    assert res["status"] == "ok" and res["sampling_nfe"] == nfe  # Heun: 3 corrected steps / 3 steps, last Euler
    assert read_json(run / "config.json")["diffusion"]["sampler"] == sampler


def test_explain_weights_of_flow_matching_and_edm_on_the_x0_error():
    from losslab.explain import diffusion_weight_curves

    g = torch.Generator().manual_seed(0)
    x0, x1, v_hat = (torch.randn(6, 5, generator=g, dtype=torch.float64) for _ in range(3))
    for t in (0.05, 0.5, 0.95):
        x_t, u = FlowMatchingObjective().interpolate(x0, x1, torch.full((6,), t, dtype=torch.float64))
        x0_hat = x_t - t * v_hat  # the clean sample the velocity implies
        w = diffusion_weight_curves(np.array([2 * math.log((1 - t) / t)]))["flow-matching"][0]
        assert_close((v_hat - u).pow(2).sum(), w * (x0_hat - x0).pow(2).sum())
    obj = EDMObjective(sigma_data=0.5)
    for sigma in (0.01, 1.0, 30.0):  # lambda(sigma) on the denoiser's (= x0) error, SNR = 1 / sigma^2
        w = diffusion_weight_curves(np.array([-2 * math.log(sigma)]), sigma_data=0.5)["edm"][0]
        assert_close(float(obj.weight(torch.tensor(sigma, dtype=torch.float64))), w, rtol=1e-12, atol=0)


def test_edm_states_are_drawn_at_the_networks_scale(tmp_path):
    ds = load_dataset("ring8")
    st = D.init_state(_cfg("vector", "diffusion.sample_steps=5"), ds, "edm", seed=0)
    D.artifacts(st, ds, tmp_path)
    with np.load(tmp_path / "diffusion.npz", allow_pickle=False) as f:
        fwd, lv, note = f["forward_x"], f["forward_t"], str(f["state_note"])
    assert "sigma_data" in note and lv[-1] == 80.0
    # the strip's last state: x0 + 80 eps shown as (x0 + 80 eps) / sqrt(1 + 80^2) in network units
    z = (fwd[-1] - st.shift.numpy()) / st.scale.numpy()
    assert_allclose_ = np.testing.assert_allclose
    assert_allclose_(z.std(axis=0), 80.0 / math.sqrt(1 + 80.0**2), rtol=0.1)
