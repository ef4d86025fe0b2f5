"""Noise schedules, the forward process, its posterior and the samplers, against closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from losslab import schedules as S
from losslab.errors import UserError

F64 = torch.float64


# ----------------------------------------------------------------- schedules


def test_linear_schedule_hand_values():
    # Ho et al. 2020, Sec. 4: beta_1 = 1e-4 to beta_T = 0.02 linearly, T = 1000.
    sch = S.get_schedule("linear", 1000)
    betas = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(1000)]
    assert_close(sch.betas, torch.tensor(betas, dtype=F64), rtol=1e-12, atol=1e-15)
    assert_close(sch.alpha_bar[0].item(), 0.9999, rtol=1e-12, atol=0)
    assert_close(sch.alpha_bar[1].item(), 0.9999 * (1 - (1e-4 + 0.0199 / 999)), rtol=1e-12, atol=0)
    assert_close(sch.alpha_bar[-1].item(), math.prod(1 - b for b in betas), rtol=1e-9, atol=0)
    assert_close(sch.alpha_bar[-1].item(), 4.04e-5, rtol=5e-3, atol=0)  # the well-known alpha_bar_T ~ 4e-5
    assert_close(sch.alpha_bar_prev[0].item(), 1.0)
    assert_close(sch.alpha_bar_prev[1:], sch.alpha_bar[:-1])


def test_linear_schedule_scales_with_T():
    # improved-diffusion: betas scaled by 1000 / T, so T = 100 runs from 1e-3 to 0.2.
    b = S.linear_betas(100)
    assert_close(b[[0, -1]], torch.tensor([1e-3, 0.2], dtype=F64))
    with pytest.raises(UserError):
        S.linear_betas(10)  # beta_T = 2 > 1


def test_cosine_schedule_hand_values():
    # Nichol & Dhariwal 2021, Eq. 17: alpha_bar(t) = f(t) / f(0), f(t) = cos(((t/T + s)/(1 + s)) pi/2)^2.
    T, s = 1000, 0.008
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    sch = S.get_schedule("cosine", T)
    for t in (1, 10, 250, 500, 750, 900):  # paper time t = index t - 1
        assert_close(sch.alpha_bar[t - 1].item(), f(t) / f(0), rtol=1e-10, atol=1e-14)
    assert_close(sch.alpha_bar[499].item(), math.cos(0.508 / 1.008 * math.pi / 2) ** 2 / f(0), rtol=1e-10, atol=0)
    # The last beta would be 1 (alpha_bar(T) = 0); the paper clips it at 0.999.
    assert_close(sch.betas.max().item(), 0.999)
    assert_close(sch.betas[-1].item(), 0.999)
    assert bool((sch.alpha_bar[1:] < sch.alpha_bar[:-1]).all())


def test_unknown_schedule_and_bad_T():
    with pytest.raises(UserError, match="cosine, linear"):
        S.get_schedule("quadratic", 100)
    with pytest.raises(UserError):
        S.get_schedule("cosine", 1)


def test_ddim_timesteps():
    ts = S.ddim_timesteps(1000, 50)
    assert len(ts) == 50 and int(ts[0]) == 0 and int(ts[-1]) == 999
    assert bool((ts[1:] > ts[:-1]).all())
    assert_close(S.ddim_timesteps(10, 10), torch.arange(10))
    for bad in (0, 1001):
        with pytest.raises(UserError, match="sample_steps"):
            S.ddim_timesteps(1000, bad)


def test_respace_keeps_alpha_bar():
    sch = S.get_schedule("linear", 1000)
    keep = S.ddim_timesteps(1000, 20)
    r = S.respace(sch, keep)
    assert_close(r.alpha_bar, sch.alpha_bar[keep])
    assert_close(S.alpha_bar(r.betas), sch.alpha_bar[keep], rtol=1e-10, atol=0)
    assert_close(r.timesteps, keep)


# ----------------------------------------------------------------- forward process


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_q_sample_moments_match_eq4(name):
    # q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    sch = S.get_schedule(name, 1000)
    g = torch.Generator().manual_seed(0)
    n = 100_000
    x0 = torch.tensor([2.0, -1.0, 0.5], dtype=F64).expand(n, 3)
    for t in (0, 100, 500, 999):
        tt = torch.full((n,), t)
        xt = S.q_sample(sch, x0, tt, torch.randn(n, 3, generator=g, dtype=F64))
        ab = sch.alpha_bar[t]
        se = math.sqrt((1 - ab) / n)
        assert_close(xt.mean(0), ab.sqrt() * x0[0], rtol=0, atol=5 * se)
        assert_close(xt.var(0), (1 - ab).expand(3), rtol=0.03, atol=1e-12)


def test_q_sample_equals_the_markov_chain():
    # Applying q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t) (Eq. 2) t times
    # gives the closed form of Eq. 4.
    sch = S.get_schedule("linear", 200)
    g = torch.Generator().manual_seed(1)
    n, x0 = 50_000, 1.5
    x = torch.full((n,), x0, dtype=F64)
    for t in range(150):
        b = sch.betas[t]
        x = (1 - b).sqrt() * x + b.sqrt() * torch.randn(n, generator=g, dtype=F64)
    ab = sch.alpha_bar[149]
    assert_close(x.mean(), ab.sqrt() * x0, rtol=0, atol=5 * math.sqrt((1 - ab) / n))
    assert_close(x.var(), 1 - ab, rtol=0.03, atol=0)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_posterior_matches_bayes_rule(name):
    # q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0): product of two Gaussians
    # N(x_t; sqrt(a_t) x_{t-1}, b_t) and N(x_{t-1}; sqrt(ab_{t-1}) x_0, 1 - ab_{t-1}).
    sch = S.get_schedule(name, 1000)
    t = torch.tensor([1, 5, 100, 500, 998])
    x0 = torch.tensor([[0.3], [-1.0], [2.0], [0.0], [1.0]], dtype=F64)
    xt = torch.tensor([[0.1], [0.7], [-0.4], [1.3], [-2.0]], dtype=F64)
    mean, var = S.posterior_mean_variance(sch, x0, xt, t)
    b = sch.betas[t][:, None]
    a = 1 - b
    ab_prev = sch.alpha_bar[t - 1][:, None]
    precision = a / b + 1 / (1 - ab_prev)
    want_var = 1 / precision
    want_mean = want_var * (a.sqrt() * xt / b + ab_prev.sqrt() * x0 / (1 - ab_prev))
    assert_close(var, want_var, rtol=1e-9, atol=0)
    assert_close(mean, want_mean, rtol=1e-9, atol=1e-12)


def test_posterior_at_first_step_is_x0():
    sch = S.get_schedule("linear", 1000)
    x0 = torch.tensor([[0.25, -0.5]], dtype=F64)
    mean, var = S.posterior_mean_variance(sch, x0, torch.tensor([[3.0, 3.0]], dtype=F64), torch.tensor([0]))
    assert_close(mean, x0)
    assert_close(var, torch.zeros(1, 1, dtype=F64))


@pytest.mark.parametrize("objective", S.OBJECTIVES)
def test_targets_and_predictions_invert_each_other(objective):
    # A network that outputs the exact target recovers the exact (eps, x0) from x_t.
    sch = S.get_schedule("cosine", 1000)
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(6, 2, generator=g, dtype=F64)
    eps = torch.randn(6, 2, generator=g, dtype=F64)
    t = torch.tensor([0, 10, 200, 500, 900, 990])
    xt = S.q_sample(sch, x0, t, eps)
    out = S.target(objective, x0, eps, sch.alpha_bar[t][:, None])
    eps_hat, x0_hat = S.predict_eps_x0(sch, objective, out, xt, t)
    assert_close(eps_hat, eps, rtol=1e-7, atol=1e-7)
    assert_close(x0_hat, x0, rtol=1e-7, atol=1e-7)


def test_v_target_definition():
    # Salimans & Ho 2022: v = alpha eps - sigma x, with alpha^2 + sigma^2 = 1; ||v|| ties to x0, eps.
    ab = torch.tensor([[0.36]], dtype=F64)  # alpha = 0.6, sigma = 0.8
    v = S.target("v", torch.tensor([[1.0]], dtype=F64), torch.tensor([[2.0]], dtype=F64), ab)
    assert_close(v, torch.tensor([[0.6 * 2.0 - 0.8 * 1.0]], dtype=F64))
    with pytest.raises(UserError, match="eps, v, x0"):
        S.target("score", v, v, ab)


# ----------------------------------------------------------------- samplers


def _exact_point_mass(sch: S.Schedule, c: float, objective: str):
    """Network with the exact output for data that is a point mass at c."""

    def net(x, t):
        ab = sch.alpha_bar[t].to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        eps = (x - ab.sqrt() * c) / (1 - ab).sqrt()
        return S.target(objective, torch.full_like(x, c), eps, ab)

    return net


@pytest.mark.parametrize("objective", S.OBJECTIVES)
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_samplers_reach_a_point_mass(objective, name):
    sch = S.get_schedule(name, 1000)
    net = _exact_point_mass(sch, 0.7, objective)
    g = torch.Generator().manual_seed(3)
    want = torch.full((64, 2), 0.7, dtype=F64)
    x = S.ddpm_sample(net, sch, (64, 2), objective=objective, steps=100, generator=g)
    assert_close(x.to(F64), want, rtol=0, atol=1e-4)
    for eta in (0.0, 0.5, 1.0):
        x = S.ddim_sample(net, sch, (64, 2), objective=objective, steps=20, eta=eta, generator=g)
        assert_close(x.to(F64), want, rtol=0, atol=1e-4)


def test_ddim_with_zero_noise_prediction_closed_form():
    # eps_hat = 0 -> x0_hat = x_t / sqrt(ab_t) and x_prev = sqrt(ab_prev) x0_hat: the chain
    # telescopes to x_T / sqrt(alpha_bar at the first sampled step, t = T - 1).
    sch = S.get_schedule("linear", 1000)
    x_T = torch.tensor([[-1.0, 0.5], [2.0, 0.0]], dtype=F64)
    x = S.ddim_sample(lambda x, t: torch.zeros_like(x), sch, x_T.shape, steps=37, x_T=x_T)
    assert_close(x, x_T / sch.alpha_bar[-1].sqrt(), rtol=1e-9, atol=0)


def test_x0_prediction_constant_network_returns_the_constant():
    sch = S.get_schedule("cosine", 1000)
    for sampler in (S.ddim_sample, S.ddpm_sample):
        x = sampler(lambda x, t: torch.full_like(x, -0.3), sch, (5, 3), objective="x0", steps=10,
                    generator=torch.Generator().manual_seed(0))
        assert_close(x, torch.full((5, 3), -0.3))


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_ddim_on_gaussian_data_follows_the_probability_flow(name):
    # Data N(mu, s^2): the exact eps is sqrt(1 - ab) (x_t - sqrt(ab) mu) / (ab s^2 + 1 - ab).
    # The deterministic DDIM chain is the probability-flow ODE, which maps the z-score of
    # x_T under q(x_T) = N(sqrt(ab_T) mu, ab_T s^2 + 1 - ab_T) to the same z-score of N(mu, s^2).
    mu, s = 1.5, 0.5
    sch = S.get_schedule(name, 1000)

    def net(x, t):
        ab = sch.alpha_bar[t].to(x.dtype)[:, None]
        return (1 - ab).sqrt() * (x - ab.sqrt() * mu) / (ab * s * s + 1 - ab)

    x_T = torch.tensor([[-1.5], [0.0], [1.0], [2.0]], dtype=F64)
    x = S.ddim_sample(net, sch, x_T.shape, steps=1000, x_T=x_T)
    abT = sch.alpha_bar[-1]
    want = mu + s * (x_T - abT.sqrt() * mu) / (abT * s * s + 1 - abT).sqrt()
    assert_close(x, want, rtol=5e-3, atol=5e-3)  # DDIM is first order: ~0.3% at 1000 steps


def test_ddpm_on_gaussian_data_matches_its_moments():
    mu, s = -1.0, 0.5
    sch = S.get_schedule("linear", 1000)

    def net(x, t):
        ab = sch.alpha_bar[t].to(x.dtype)[:, None]
        return (1 - ab).sqrt() * (x - ab.sqrt() * mu) / (ab * s * s + 1 - ab)

    n = 10_000
    x = S.ddpm_sample(net, sch, (n, 1), generator=torch.Generator().manual_seed(4))
    assert_close(x.mean().item(), mu, rtol=0, atol=5 * s / math.sqrt(n))
    # sigma_t^2 = beta_tilde leaves out Var[x0 | x_t] at each step: ~1% too narrow here.
    assert_close(x.std().item(), s, rtol=0.03, atol=0)


def test_ddpm_equals_algorithm_2_line_by_line():
    # Ho et al. 2020, Algorithm 2 with sigma_t^2 = beta_tilde_t, written out literally.
    sch = S.get_schedule("linear", 100)

    def net(x, t):
        return torch.tanh(x) * (t[:, None].to(x.dtype) + 1) / 100

    shape = (8, 3)
    got = S.ddpm_sample(net, sch, shape, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    x = torch.randn(shape, generator=g)
    for t in reversed(range(100)):
        z = torch.randn(shape, generator=g) if t > 0 else torch.zeros(shape)
        beta, ab = sch.betas[t].item(), sch.alpha_bar[t].item()
        ab_prev = sch.alpha_bar[t - 1].item() if t > 0 else 1.0
        sigma = math.sqrt((1 - ab_prev) / (1 - ab) * beta)
        eps = net(x, torch.full((shape[0],), t))
        x = (x - beta / math.sqrt(1 - ab) * eps) / math.sqrt(1 - beta) + sigma * z
    assert_close(got, x, rtol=1e-4, atol=1e-4)


def test_ddim_eta_one_is_ddpm_on_the_respaced_schedule():
    sch = S.get_schedule("cosine", 1000)

    def net(x, t):
        return 0.3 * torch.sin(x) + t[:, None] / 2000

    a = S.ddim_sample(net, sch, (16, 2), steps=25, eta=1.0, generator=torch.Generator().manual_seed(6))
    b = S.ddpm_sample(net, sch, (16, 2), steps=25, generator=torch.Generator().manual_seed(6))
    assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_trajectory_and_clipping():
    sch = S.get_schedule("linear", 1000)
    net = lambda x, t: torch.zeros_like(x)  # noqa: E731  x0_hat = x_t / sqrt(ab): far outside [-1, 1]
    for sampler in (S.ddim_sample, S.ddpm_sample):
        x, ts, xs = sampler(net, sch, (4, 1, 4, 4), steps=10, clip=(-1.0, 1.0), trajectory=True,
                            generator=torch.Generator().manual_seed(7))
        assert ts[0] == 1000 and ts[-1] == -1 and len(ts) == 11
        assert xs.shape == (11, 4, 1, 4, 4)
        assert_close(xs[-1], x)
        assert float(x.abs().max()) <= 1.0


def test_bad_eta():
    with pytest.raises(UserError, match="eta"):
        S.ddim_sample(lambda x, t: x, S.get_schedule("linear", 100), (1, 1), steps=5, eta=1.5)


def test_schedules_match_diffusers():
    diffusers = pytest.importorskip("diffusers")
    lin = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    assert_close(S.get_schedule("linear").alpha_bar.float(), lin.alphas_cumprod.float(), rtol=1e-5, atol=1e-7)
    cos = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    assert_close(S.get_schedule("cosine").alpha_bar.float(), cos.alphas_cumprod.float(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(("prediction", "objective"), [("epsilon", "eps"), ("sample", "x0"), ("v_prediction", "v")])
@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_ddim_matches_diffusers(prediction, objective, eta):
    # With every timestep kept (steps = T) diffusers' DDIMScheduler visits the same times;
    # it draws the eta-noise from the same generator in the same order.
    diffusers = pytest.importorskip("diffusers")
    T = 50
    net = lambda x, t: 0.3 * torch.sin(x) + t[:, None].float() / 200  # noqa: E731
    ref = diffusers.DDIMScheduler(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2", clip_sample=False,
                                  set_alpha_to_one=True, prediction_type=prediction)
    ref.set_timesteps(T)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 2, generator=g)
    for t in ref.timesteps:
        x = ref.step(net(x, torch.full((8,), int(t))), t, x, eta=eta, generator=g).prev_sample
    ours = S.ddim_sample(net, S.get_schedule("cosine", T), (8, 2), objective=objective, steps=T, eta=eta,
                         generator=torch.Generator().manual_seed(0))
    assert_close(ours, x, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("prediction", "objective"), [("epsilon", "eps"), ("sample", "x0"), ("v_prediction", "v")])
def test_ancestral_step_matches_diffusers(prediction, objective):
    # One step of Algorithm 2 (sigma^2 = beta_tilde: diffusers' "fixed_small") from x_t.
    diffusers = pytest.importorskip("diffusers")
    T = 100
    sch = S.get_schedule("linear", T)  # T = 100: betas 1e-3 .. 0.2
    ref = diffusers.DDPMScheduler(num_train_timesteps=T, beta_start=1e-3, beta_end=0.2, beta_schedule="linear",
                                  variance_type="fixed_small", clip_sample=False, prediction_type=prediction)
    ref.set_timesteps(T)
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(1))
    for t in (99, 50, 1, 0):
        tt = torch.full((8,), t)
        out = 0.3 * torch.sin(x) + t / 200
        want = ref.step(out, t, x, generator=torch.Generator().manual_seed(5)).prev_sample
        _, x0_hat = S.predict_eps_x0(sch, objective, out, x, tt)
        mean, var = S.posterior_mean_variance(sch, x0_hat, x, tt)
        z = torch.randn(8, 2, generator=torch.Generator().manual_seed(5))
        assert_close(mean + var.sqrt() * z if t > 0 else mean, want, rtol=1e-4, atol=2e-5)
