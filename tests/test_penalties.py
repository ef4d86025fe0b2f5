"""Gradient penalties, weight clipping, the pulling-away term and BEGAN's k_t."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from losslab.errors import UserError
from losslab.losses.penalties import (
    r1_penalty,
    r2_penalty,
    squared_gradient_norm,
    BEGANEquilibrium,
    clip_weights_,
    dragan_penalty,
    gradient_penalty,
    pulling_away_term,
    pulling_away_term_global_l1,
)

SHAPES = [(6, 5), (4, 1, 5, 5), (3, 3, 4, 4)]


class LinearCritic(nn.Module):
    """f(x)_i = sum(w * x_i): gradient w.r.t. each sample is w, norm ||w||."""

    def __init__(self, shape: tuple[int, ...], seed: int = 0, keepdim: bool = False):
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape, generator=torch.Generator().manual_seed(seed)))
        self.keepdim = keepdim
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        out = (self.w * x).flatten(1).sum(1)
        return out[:, None] if self.keepdim else out


class TanhCritic(nn.Module):
    """A nonlinear per-sample critic on any (N, ...) input."""

    def __init__(self, shape: tuple[int, ...], hidden: int = 7, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        d = int(np.prod(shape))
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x).squeeze(1)


def _data(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g) + 1.0


# --------------------------------------------------------------------------- WGAN-GP


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("keepdim", [False, True])
def test_gradient_penalty_of_linear_critic_is_closed_form(shape, keepdim):
    critic = LinearCritic(shape[1:], keepdim=keepdim)
    real, fake = _data(shape)
    gp = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(1))
    w_norm = critic.w.detach().norm()
    assert_close(gp, (w_norm - 1) ** 2)
    # d GP / d w = 2 (||w|| - 1) w / ||w||: the penalty backpropagates into the critic
    gp.backward()
    assert_close(critic.w.grad, 2 * (w_norm - 1) * critic.w.detach() / w_norm)


@pytest.mark.parametrize("shape", SHAPES)
def test_gradient_penalty_matches_a_per_sample_autograd_loop(shape):
    critic = TanhCritic(shape[1:])
    real, fake = _data(shape, seed=2)
    gp = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(5))
    # the same eps: one U[0, 1] draw per sample from an identically seeded generator
    eps = torch.rand((shape[0],) + (1,) * (len(shape) - 1), generator=torch.Generator().manual_seed(5))
    x_hat = eps * real + (1 - eps) * fake
    terms = []
    for i in range(shape[0]):
        xi = x_hat[i : i + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(critic(xi).sum(), xi)
        terms.append((g.norm() - 1) ** 2)
    assert_close(gp, torch.stack(terms).mean())


def test_gradient_penalty_norm_is_per_sample_not_per_batch():
    # critic f(x) = 2 * sum(x_i): per-sample norm 2 * sqrt(d) with d = 1 -> (2 - 1)^2 = 1,
    # while a norm over the whole batch gradient would give (2 sqrt(N) - 1)^2 = 9 for N = 4
    critic = lambda x: 2.0 * x.flatten(1).sum(1)  # noqa: E731
    real, fake = _data((4, 1))
    assert_close(gradient_penalty(critic, real, fake), torch.tensor(1.0))


@pytest.mark.parametrize("shape", SHAPES)
def test_gradient_penalty_interpolates_with_one_eps_per_sample(shape):
    critic = LinearCritic(shape[1:])
    real, fake = _data(shape, seed=3)
    gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(0))
    (x_hat,) = critic.inputs
    n = shape[0]
    # x_hat - fake = eps_i * (real - fake): the ratio is the same for every element of a sample
    ratio = ((x_hat - fake) / (real - fake)).reshape(n, -1)
    assert_close(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-4, atol=1e-4)
    eps = ratio[:, 0]
    assert ((eps >= 0) & (eps <= 1)).all()
    assert eps.unique().numel() == n


def test_gradient_penalty_does_not_reach_the_generator():
    gen_param = nn.Parameter(torch.ones(1))
    real = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    fake = gen_param * torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    critic = TanhCritic((3,))
    gradient_penalty(critic, real, fake).backward()
    assert gen_param.grad is None
    # every parameter that shapes grad_x f gets a gradient (the output bias does not)
    first, last = critic.net[1], critic.net[3]
    for p in (first.weight, first.bias, last.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_gradient_penalty_errors():
    critic = LinearCritic((3,))
    with pytest.raises(ValueError, match="shape"):
        gradient_penalty(critic, torch.zeros(4, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="one value per sample"):
        gradient_penalty(lambda x: x, torch.zeros(4, 3), torch.ones(4, 3))


# --------------------------------------------------------------------------- DRAGAN


@pytest.mark.parametrize("shape", SHAPES)
def test_dragan_penalty_linear_critic_and_perturbation_of_reference_code(shape):
    critic = LinearCritic(shape[1:], seed=4)
    real, _ = _data(shape, seed=6)
    c = 0.5
    pen = dragan_penalty(critic, real, generator=torch.Generator().manual_seed(9), c=c)
    assert_close(pen, (critic.w.detach().norm() - 1) ** 2)
    # x_hat = x + alpha_i * c * std(x) * u, u ~ U[0,1] elementwise, std over the whole
    # batch with ddof=0 (numpy.std, as in the authors' code), alpha_i ~ U[0,1] per sample
    g = torch.Generator().manual_seed(9)
    u = torch.rand(shape, generator=g)
    alpha = torch.rand((shape[0],) + (1,) * (len(shape) - 1), generator=g)
    std = float(np.std(real.numpy()))
    expected = real + alpha * (c * std * u)
    (x_hat,) = critic.inputs
    assert_close(x_hat, expected)


def test_dragan_penalty_matches_per_sample_loop_for_nonlinear_critic():
    shape = (5, 2, 3, 3)
    critic = TanhCritic(shape[1:], seed=1)
    real, _ = _data(shape, seed=7)
    pen = dragan_penalty(critic, real, generator=torch.Generator().manual_seed(2), c=0.5)
    g = torch.Generator().manual_seed(2)
    u = torch.rand(shape, generator=g)
    alpha = torch.rand((shape[0], 1, 1, 1), generator=g)
    x_hat = real + alpha * 0.5 * float(np.std(real.numpy())) * u
    terms = []
    for i in range(shape[0]):
        xi = x_hat[i : i + 1].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(xi).sum(), xi)
        terms.append((grad.norm() - 1) ** 2)
    assert_close(pen, torch.stack(terms).mean())


# --------------------------------------------------------------------------- weight clipping


def test_clip_weights_clamps_every_parameter_in_place():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.linspace(-0.05, 0.05, p.numel()).reshape(p.shape))
    before = [p.detach().clone() for p in net.parameters()]
    ids = [id(p) for p in net.parameters()]
    assert clip_weights_(net, 0.01) is None
    for p, b in zip(net.parameters(), before):
        assert_close(p.detach(), b.clamp(-0.01, 0.01))
        assert p.detach().abs().max().item() == pytest.approx(0.01)
    assert [id(p) for p in net.parameters()] == ids
    with pytest.raises(UserError):
        clip_weights_(net, 0.0)


# --------------------------------------------------------------------------- pulling-away term


def _pt_double_loop(s: np.ndarray) -> float:
    n = s.shape[0]
    total = 0.0
    for i, j in itertools.permutations(range(n), 2):
        total += (s[i] @ s[j] / (np.linalg.norm(s[i]) * np.linalg.norm(s[j]))) ** 2
    return total / (n * (n - 1))


def test_pulling_away_term_against_a_double_loop():
    code = torch.randn(7, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert_close(pulling_away_term(code), torch.tensor(_pt_double_loop(code.numpy()), dtype=torch.float64))


def test_pulling_away_term_known_vectors_and_invariances():
    assert_close(pulling_away_term(torch.eye(4)), torch.tensor(0.0))  # orthogonal rows
    assert_close(pulling_away_term(torch.ones(5, 3)), torch.tensor(1.0))  # identical rows
    sixty = torch.tensor([[1.0, 0.0], [0.5, 3**0.5 / 2]])  # cos 60 deg = 1/2
    assert_close(pulling_away_term(sixty), torch.tensor(0.25))
    # e1, e2, (e1+e2)/sqrt2: cos^2 = 0, 1/2, 1/2 -> 2 * 1 / 6
    three = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert_close(pulling_away_term(three), torch.tensor(1.0 / 3.0))
    code = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    scales = torch.tensor([0.1, 2.0, -3.0, 10.0, 0.5, -1.0])[:, None]
    assert_close(pulling_away_term(code * scales), pulling_away_term(code))
    # trailing dims are flattened
    assert_close(pulling_away_term(code.reshape(6, 2, 2)), pulling_away_term(code))


def test_pulling_away_term_needs_two_rows():
    with pytest.raises(UserError, match="at least 2"):
        pulling_away_term(torch.ones(1, 4))


# --------------------------------------------------------------------------- the global-L1 variant (a known bug)


def _pt_global_l1_double_loop(s: np.ndarray) -> float:
    n, l1 = s.shape[0], np.abs(s).sum()
    total = sum((s[i] @ s[j] / l1**2) ** 2 for i in range(n) for j in range(n))
    return (total - n) / (n * (n - 1))


def test_global_l1_variant_against_a_double_loop_and_a_closed_form():
    code = torch.randn(7, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert_close(pulling_away_term_global_l1(code),
                 torch.tensor(_pt_global_l1_double_loop(code.numpy()), dtype=torch.float64))
    # S = a * ones(N, k): ||S||_1 = N k a, S_i.S_j / ||S||_1^2 = 1 / (N^2 k) for every (i, j), so
    # sum_ij (.)^2 = 1 / (N^2 k^2) and PT = (1 / (N^2 k^2) - N) / (N (N - 1)), whatever a.
    n, k = 64, 32
    want = (1 / (n**2 * k**2) - n) / (n * (n - 1))
    for a in (0.01, 1.0, 7.0):
        assert_close(pulling_away_term_global_l1(torch.full((n, k), a, dtype=torch.float64)),
                     torch.tensor(want, dtype=torch.float64))
    with pytest.raises(UserError, match="at least 2"):
        pulling_away_term_global_l1(torch.ones(1, 4))


@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
def test_global_l1_variant_sits_at_minus_one_over_n_minus_one_and_its_gradient_vanishes(scale):
    # The bound -1/(N-1) <= PT <= -1/(N-1) + 1/(N(N-1)) (docstring) and, for dense codes, much closer:
    # the first sum is of order (||S||_F / ||S||_1)^4 ~ 1/(N c)^2 = 2e-7 here, divided by N(N-1).
    n, c = 64, 32
    g = torch.Generator().manual_seed(3)
    code = (scale * torch.randn(n, c, generator=g, dtype=torch.float64)).requires_grad_(True)
    value = pulling_away_term_global_l1(code)
    (grad_l1,) = torch.autograd.grad(value, code)
    assert_close(value.detach(), torch.tensor(-1 / 63, dtype=torch.float64), rtol=0, atol=1e-9)
    assert -1 / 63 <= float(value.detach()) <= -1 / 63 + 1 / (64 * 63)
    paper_code = code.detach().clone().requires_grad_(True)
    (grad_paper,) = torch.autograd.grad(pulling_away_term(paper_code), paper_code)
    ratio = float(grad_l1.norm() / grad_paper.norm())
    # Both terms are scale-invariant, so both gradients scale as 1/scale and the ratio does not move:
    # ~3e-10 for these codes (the paper's term: norm ~ 0.0019 / scale).
    assert 1e-12 < ratio < 1e-7
    assert_close(grad_paper.norm() * scale, torch.tensor(0.0019, dtype=torch.float64), rtol=0.2, atol=0)
    # the autograd gradient of the variant is right (finite differences in float64)
    small = code.detach()[:6, :4].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(pulling_away_term_global_l1, (small,))


def test_ebgan_generator_loss_uses_the_chosen_variant():
    from losslab.losses.gan import ebgan_g_loss

    code = torch.randn(8, 5, generator=torch.Generator().manual_seed(2))
    e = torch.rand(8, generator=torch.Generator().manual_seed(4))
    assert_close(ebgan_g_loss(e_fake=e, code_fake=code, pt_weight=0.5),
                 e.mean() + 0.5 * pulling_away_term(code))
    assert_close(ebgan_g_loss(e_fake=e, code_fake=code, pt_weight=0.5, pt_variant="global_l1"),
                 e.mean() + 0.5 * pulling_away_term_global_l1(code))
    with pytest.raises(UserError, match="pulling-away variant 'l1'"):
        ebgan_g_loss(e_fake=e, code_fake=code, pt_variant="l1")


# --------------------------------------------------------------------------- BEGAN


def test_began_k_update_closed_form_and_clipping():
    eq = BEGANEquilibrium(gamma=0.5, lambda_k=0.1, k0=0.2)
    # k = 0.2 + 0.1 * (0.5 * 2 - 0.4) = 0.26
    assert eq.update(2.0, 0.4) == pytest.approx(0.26, rel=1e-12)
    assert eq.k == pytest.approx(0.26, rel=1e-12)
    assert eq.update(torch.tensor([1.0, 3.0]), torch.tensor(0.4)) == pytest.approx(0.32, rel=1e-7)
    assert eq.update(100.0, 0.0) == 1.0  # clipped above
    assert eq.update(0.0, 100.0) == 0.0  # clipped below


def test_began_k_sequence_against_numpy_reference():
    rng = np.random.default_rng(0)
    e_real, e_fake = rng.uniform(0, 2, 50), rng.uniform(0, 2, 50)
    eq = BEGANEquilibrium(gamma=0.4, lambda_k=0.05, k0=0.0)
    k, ks, ref = 0.0, [], []
    for r, f in zip(e_real, e_fake):
        k = float(np.clip(k + 0.05 * (0.4 * r - f), 0.0, 1.0))
        ref.append(k)
        ks.append(eq.update(r, f))
    np.testing.assert_allclose(ks, ref, rtol=1e-12, atol=1e-15)


def test_began_convergence_measure():
    eq = BEGANEquilibrium(gamma=0.5)
    assert eq.convergence(2.0, 0.4) == pytest.approx(2.6, rel=1e-12)  # 2 + |1 - 0.4|
    assert eq.convergence(2.0, 1.6) == pytest.approx(2.6, rel=1e-12)  # 2 + |1 - 1.6|
    assert eq.convergence(torch.tensor(1.0), torch.tensor(0.5)) == pytest.approx(1.0, rel=1e-12)


def test_began_rejects_bad_settings_and_non_finite_energies():
    for kwargs in ({"gamma": 0.0}, {"gamma": 1.5}, {"lambda_k": -1.0}, {"k0": 2.0}):
        with pytest.raises(UserError):
            BEGANEquilibrium(**kwargs)
    eq = BEGANEquilibrium(k0=0.3)
    with pytest.raises(FloatingPointError):
        eq.update(float("nan"), 0.1)
    assert eq.k == 0.3


# --------------------------------------------------------------------------- R1 / R2 (zero-centred)


@pytest.mark.parametrize("shape", [(7, 3), (5, 2, 4, 4)])
def test_zero_centred_penalty_of_linear_critic_is_the_squared_weight_norm(shape):
    torch.manual_seed(0)
    w = torch.randn(shape[1:])
    x = torch.randn(shape)
    critic = lambda v: (v * w).flatten(1).sum(1)  # noqa: E731  D(x) = <w, x>, gradient w everywhere
    assert_close(r1_penalty(critic, x), w.pow(2).sum())
    assert_close(r2_penalty(critic, x + 5.0), w.pow(2).sum())


def test_zero_centred_penalty_is_per_sample_against_a_loop():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(6, 3)
    per = []
    for xi in x:
        xi = xi.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(net(xi[None]).sum(), xi)
        per.append(g.pow(2).sum())
    assert_close(squared_gradient_norm(net, x), torch.stack(per).mean())
    # a quadratic critic D(x) = ||x||^2 / 2 has gradient x: the penalty is mean ||x||^2
    assert_close(squared_gradient_norm(lambda v: 0.5 * v.pow(2).sum(1), x), x.pow(2).sum(1).mean())


def test_zero_centred_penalty_reaches_the_critic_not_the_generator():
    lin = nn.Linear(2, 1)
    fake = torch.randn(4, 2, requires_grad=True)  # as if from G
    pen = r2_penalty(lin, fake)
    pen.backward()
    assert fake.grad is None  # detached inside: no gradient to the generator
    assert_close(lin.weight.grad, 2 * lin.weight.detach())  # d ||w||^2 / dw = 2 w
    with pytest.raises(ValueError, match="one value per sample"):
        squared_gradient_norm(lambda v: v, torch.randn(4, 2))


def test_loss_r1_gamma_is_accepted_where_a_compared_loss_reads_it(tmp_path, capsys):
    from losslab import cli

    out = tmp_path / "runs"
    argv = ["train", "--data", "ring8", "--steps", "2", "--set", "train.n_eval=100", "--set", "train.curve_points=0",
            "--out", str(out)]
    assert cli.main([*argv, "--loss", "ns", "--set", "loss.r1_gamma=2.5"]) in (0, None)
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    import json

    assert json.loads((run / "config.json").read_text())["loss"]["r1_gamma"] == 2.5
    capsys.readouterr()
    refused = tmp_path / "refused"
    with pytest.raises(SystemExit) as info:
        cli.main([*argv[:-1], str(refused), "--loss", "wgan", "--set", "loss.r1_gamma=2.5"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "loss.r1_gamma: no compared loss takes the R1 penalty" in err and len(err.strip().splitlines()) == 1
    assert not refused.exists()
    with pytest.raises(SystemExit) as info:
        cli.main([*argv[:-1], str(refused), "--loss", "r3gan", "--set", "loss.r2_gamma=-1"])
    assert info.value.code == 2 and not refused.exists()
