"""Diffusion noise schedules, the forward process, its posterior and two samplers.

Pure tensor mathematics, no networks: a sampler receives the network as a
function ``model(x_t, t) -> output``. Notation and equations follow Ho et al.
2020, "Denoising Diffusion Probabilistic Models", arXiv:2006.11239:

* ``beta_t`` the noise added at step t, ``alpha_t = 1 - beta_t``,
  ``alpha_bar_t = prod_{s <= t} alpha_s``;
* forward process (Eq. 4): ``q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)``;
* posterior (Eqs. 6-7): ``q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde I)``.

Timesteps are **0-based** as in the authors' code: index ``t = 0..T-1`` is the
paper's ``t = 1..T``; ``alpha_bar`` of the (virtual) index ``-1`` is 1 (no noise).
Every schedule array is float64; functions return the dtype of ``x``.

Devices: a :class:`Schedule` lives on one device (:meth:`Schedule.to`); the
formulas and samplers compute on the schedule's device. A sampler's
``generator`` may live elsewhere: its draws are made on the generator's device
and moved (a CPU generator gives the same starting noise on every device).

The network's output is one of three parametrisations (``objective``):
``"eps"`` the noise (Ho et al. Eq. 11), ``"x0"`` the clean sample, ``"v"`` the
velocity ``v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0`` (Salimans & Ho
2022, arXiv:2202.00512, Sec. 4 and Appendix D). :func:`predict_eps_x0` turns any
of them into the pair (eps_hat, x0_hat) that the samplers use.

The continuous-time objectives (flow matching, EDM; :mod:`losslab.losses.diffusion`)
are sampled by ODE solvers: :func:`ode_sample` (Euler or Heun) on the grids
:func:`flow_times` and :func:`edm_sigmas`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from losslab.errors import UserError, unknown_choice

__all__ = [
    "OBJECTIVES",
    "ODE_SAMPLERS",
    "SAMPLERS",
    "SCHEDULES",
    "Schedule",
    "alpha_bar",
    "cosine_betas",
    "ddim_sample",
    "ddim_timesteps",
    "ddpm_sample",
    "edm_sigmas",
    "flow_times",
    "get_schedule",
    "linear_betas",
    "ode_nfe",
    "ode_sample",
    "ode_steps",
    "posterior_mean_variance",
    "predict_eps_x0",
    "q_sample",
    "respace",
    "target",
]

SCHEDULES = ("linear", "cosine")
SAMPLERS = ("ddim", "ddpm")
OBJECTIVES = ("eps", "x0", "v")

ModelFn = Callable[[Tensor, Tensor], Tensor]


# ----------------------------------------------------------------- schedules


def linear_betas(T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> Tensor:
    """Linear schedule ``beta_t`` from ``beta_1`` to ``beta_T`` (Ho et al. 2020, Sec. 4).

    For ``T != 1000`` both ends are scaled by ``1000 / T`` so that the schedule
    covers the same total noise (Nichol & Dhariwal 2021, arXiv:2102.09672,
    ``improved-diffusion``'s ``get_named_beta_schedule``); ``T = 1000`` gives
    exactly 1e-4 .. 0.02.

    Parameters
    ----------
    T : int
        Number of diffusion steps, >= 2.
    beta_1, beta_T : float
        First and last beta for T = 1000.

    Returns
    -------
    Tensor
        ``(T,)`` float64.

    Raises
    ------
    UserError
        If ``T < 2`` or a scaled beta leaves (0, 1).
    """
    _check_T(T)
    scale = 1000.0 / T
    b1, bT = beta_1 * scale, beta_T * scale
    if not (0.0 < b1 < 1.0 and 0.0 < bT < 1.0):
        raise UserError(f"linear schedule with T={T} gives betas outside (0, 1); use T >= 21")
    return torch.linspace(b1, bT, T, dtype=torch.float64)


def cosine_betas(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021, arXiv:2102.09672, Eq. 17).

    ``alpha_bar(t) = f(t) / f(0)`` with ``f(t) = cos(((t/T + s) / (1 + s)) pi/2)^2``,
    ``beta_t = 1 - alpha_bar(t) / alpha_bar(t-1)``, clipped to ``max_beta`` (the
    paper clips at 0.999 to avoid the singularity at t = T).

    Parameters
    ----------
    T : int
        Number of diffusion steps, >= 2.
    s : float
        Offset that keeps beta_1 from being vanishingly small.
    max_beta : float
        Upper clip of every beta.

    Returns
    -------
    Tensor
        ``(T,)`` float64.
    """
    _check_T(T)
    t = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    ab = f / f[0]  # (T + 1,), alpha_bar at paper times 0..T
    return (1.0 - ab[1:] / ab[:-1]).clamp(max=max_beta)


def alpha_bar(betas: Tensor) -> Tensor:
    """``alpha_bar_t = prod_{s <= t} (1 - beta_s)`` (Ho et al. 2020, notation above Eq. 4).

    Parameters
    ----------
    betas : (T,) tensor

    Returns
    -------
    (T,) tensor, same dtype, strictly decreasing for betas in (0, 1).
    """
    return torch.cumprod(1.0 - betas, dim=0)


def _check_T(T: int) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < 2:
        raise UserError(f"diffusion T must be an integer >= 2, got {T!r}")


@dataclass(frozen=True)
class Schedule:
    """A noise schedule: ``betas`` and the products the formulas need.

    Attributes
    ----------
    name : str
        "linear" | "cosine" (or "respaced" for a sub-sequence, see :func:`respace`).
    betas : (K,) float64 tensor
        ``beta`` of each step.
    alpha_bar : (K,) float64 tensor
        Cumulative products ``prod (1 - beta)``.
    timesteps : (K,) int64 tensor
        The original timestep index of each entry, what the network is told;
        ``arange(T)`` for a full schedule.
    """

    name: str
    betas: Tensor
    alpha_bar: Tensor
    timesteps: Tensor

    @property
    def T(self) -> int:
        """Number of steps of this schedule."""
        return int(self.betas.shape[0])

    @property
    def alpha_bar_prev(self) -> Tensor:
        """``alpha_bar_{t-1}`` (K,), with ``alpha_bar_{-1} = 1``."""
        return torch.cat([self.betas.new_ones(1), self.alpha_bar[:-1]])

    @property
    def device(self) -> torch.device:
        """Where the schedule's tensors live (and the samplers compute)."""
        return self.betas.device

    def to(self, device: str | torch.device) -> "Schedule":
        """The same schedule with its tensors on ``device`` (itself when already there).

        float64 stays float64, except on Apple's MPS, which has no float64:
        there the coefficients are float32.
        """
        device = torch.device(device)
        if device == self.device:
            return self
        dtype = torch.float32 if device.type == "mps" else self.betas.dtype
        return Schedule(self.name, self.betas.to(device, dtype), self.alpha_bar.to(device, dtype),
                        self.timesteps.to(device))


def get_schedule(name: str, T: int = 1000) -> Schedule:
    """The ``linear`` or ``cosine`` schedule with ``T`` steps.

    Raises
    ------
    UserError
        Unknown ``name`` or ``T < 2``.
    """
    if name == "linear":
        betas = linear_betas(T)
    elif name == "cosine":
        betas = cosine_betas(T)
    else:
        raise unknown_choice("schedule", name, SCHEDULES)
    return Schedule(name, betas, alpha_bar(betas), torch.arange(T))


def respace(schedule: Schedule, keep: Tensor) -> Schedule:
    """The schedule restricted to the timesteps ``keep`` (increasing indices).

    The new betas are ``1 - alpha_bar[k_i] / alpha_bar[k_{i-1}]`` so that every
    kept ``alpha_bar`` is unchanged (Nichol & Dhariwal 2021, arXiv:2102.09672,
    Sec. 4): ancestral sampling on it is DDPM with fewer steps.

    Parameters
    ----------
    schedule : Schedule
    keep : (K,) int64 tensor
        Strictly increasing indices into ``schedule``.
    """
    keep = torch.as_tensor(keep, dtype=torch.int64).to(schedule.device)
    ab = schedule.alpha_bar[keep]
    ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
    return Schedule("respaced", 1.0 - ab / ab_prev, ab, schedule.timesteps[keep])


def ddim_timesteps(T: int, steps: int) -> Tensor:
    """``steps`` evenly spaced timesteps of ``0..T-1``, increasing, including
    ``T - 1`` (the start of sampling) and, for ``steps >= 2``, 0 (the last
    denoising step).

    Song et al. 2021 (arXiv:2010.02502, Sec. 4.2 / App. D.2) use a linear
    sub-sequence tau; here ``round(linspace(0, T - 1, steps))``.

    Raises
    ------
    UserError
        If ``steps`` is not in ``1..T``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise UserError(f"sample_steps must be an integer in 1..{T} (T), got {steps!r}")
    if steps == 1:
        return torch.tensor([T - 1])
    return torch.unique(torch.linspace(0, T - 1, steps, dtype=torch.float64).round().long())


# ----------------------------------------------------------------- forward process


def _bc(values: Tensor, x: Tensor) -> Tensor:
    """``values`` (N,) as ``(N, 1, ..., 1)`` in x's dtype, to broadcast against ``x`` (N, ...).

    Coefficients are computed in float64 and cast only here: in float32,
    ``1 - alpha_bar`` near t = 0 loses 4 digits to cancellation.
    """
    return values.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def q_sample(schedule: Schedule, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    """Sample ``x_t ~ q(x_t | x_0)`` by reparametrisation (Ho et al. 2020, Eq. 4).

    ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``.

    Parameters
    ----------
    schedule : Schedule
    x0 : (N, ...) tensor
        Clean samples.
    t : (N,) int64 tensor
        0-based timestep index per sample.
    eps : (N, ...) tensor
        Standard normal noise of x0's shape.

    Returns
    -------
    (N, ...) tensor
    """
    ab = schedule.alpha_bar[t]
    return _bc(ab.sqrt(), x0) * x0 + _bc((1.0 - ab).sqrt(), x0) * eps


def posterior_mean_variance(schedule: Schedule, x0: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of ``q(x_{t-1} | x_t, x_0)`` (Ho et al. 2020, Eqs. 6-7).

    ``mu_tilde = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
    + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t``,
    ``beta_tilde = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t``.
    At ``t = 0`` the variance is 0 and the mean is ``x_0``.

    Parameters
    ----------
    schedule : Schedule
    x0, x_t : (N, ...) tensors
    t : (N,) int64 tensor
        0-based index of x_t's step.

    Returns
    -------
    mean : (N, ...) tensor
    variance : (N, 1, ..., 1) tensor (isotropic)
    """
    ab, ab_prev, beta = schedule.alpha_bar[t], schedule.alpha_bar_prev[t], schedule.betas[t]  # (N,) float64
    coef_x0 = ab_prev.sqrt() * beta / (1.0 - ab)
    coef_xt = (1.0 - beta).sqrt() * (1.0 - ab_prev) / (1.0 - ab)
    var = (1.0 - ab_prev) / (1.0 - ab) * beta
    return _bc(coef_x0, x0) * x0 + _bc(coef_xt, x_t) * x_t, _bc(var, x_t)


def target(objective: str, x0: Tensor, eps: Tensor, alpha_bar_t: Tensor) -> Tensor:
    """What a network with this ``objective`` is trained to output.

    ``eps``: the noise (Ho et al. 2020, Eq. 14); ``x0``: the clean sample;
    ``v``: ``sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0`` (Salimans & Ho 2022,
    arXiv:2202.00512, Sec. 4, with alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar)).

    Parameters
    ----------
    objective : {"eps", "x0", "v"}
    x0, eps : (N, ...) tensors
    alpha_bar_t : (N, 1, ..., 1) tensor, broadcastable to x0

    Raises
    ------
    UserError
        Unknown ``objective``.
    """
    if objective == "eps":
        return eps
    if objective == "x0":
        return x0
    if objective == "v":  # coefficients in alpha_bar_t's dtype (float64 from a Schedule), then cast
        return alpha_bar_t.sqrt().to(x0.dtype) * eps - (1.0 - alpha_bar_t).sqrt().to(x0.dtype) * x0
    raise unknown_choice("objective", objective, OBJECTIVES)


def predict_eps_x0(
    schedule: Schedule, objective: str, out: Tensor, x_t: Tensor, t: Tensor
) -> tuple[Tensor, Tensor]:
    """``(eps_hat, x0_hat)`` from a network output in any parametrisation.

    Inverts Eq. 4, ``x_t = sqrt(ab) x0 + sqrt(1 - ab) eps``:
    ``eps``: ``x0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab)`` (Ho et al. Eq. 15);
    ``x0``: ``eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)``;
    ``v``: ``x0 = sqrt(ab) x_t - sqrt(1 - ab) v``, ``eps = sqrt(1 - ab) x_t + sqrt(ab) v``
    (Salimans & Ho 2022, Sec. 4).

    Parameters
    ----------
    schedule : Schedule
    objective : {"eps", "x0", "v"}
    out, x_t : (N, ...) tensors
    t : (N,) int64 tensor, indices into ``schedule``

    Raises
    ------
    UserError
        Unknown ``objective``.
    """
    ab = schedule.alpha_bar[t]
    a, s = _bc(ab.sqrt(), x_t), _bc((1.0 - ab).sqrt(), x_t)  # alpha_t, sigma_t of Salimans & Ho
    if objective == "eps":
        return out, (x_t - s * out) / a
    if objective == "x0":
        return (x_t - a * out) / s, out
    if objective == "v":
        return s * x_t + a * out, a * x_t - s * out
    raise unknown_choice("objective", objective, OBJECTIVES)


# ----------------------------------------------------------------- samplers


def _denoise(
    model: ModelFn, schedule: Schedule, objective: str, x: Tensor, i: int, clip: tuple[float, float] | None
) -> tuple[Tensor, Tensor]:
    """Network call at schedule index ``i`` -> (eps_hat, x0_hat), x0_hat clipped if asked.

    With clipping, eps_hat is recomputed from the clipped x0_hat so that the
    two stay consistent with x_t (as in Song et al.'s and diffusers' DDIM).
    """
    n = x.shape[0]
    t_net = schedule.timesteps[i].expand(n)  # what the network was trained on
    t_idx = torch.full((n,), i, dtype=torch.int64, device=schedule.device)
    eps_hat, x0_hat = predict_eps_x0(schedule, objective, model(x, t_net), x, t_idx)
    if clip is not None:
        x0_hat = x0_hat.clamp(*clip)
        ab = schedule.alpha_bar[t_idx]
        eps_hat = (x - _bc(ab.sqrt(), x) * x0_hat) / _bc((1.0 - ab).sqrt(), x)
    return eps_hat, x0_hat


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Standard normal draws on the generator's device (``device`` without one), moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where).to(device)


def _start(shape: tuple[int, ...], generator: torch.Generator | None, x_T: Tensor | None,
           device: torch.device) -> Tensor:
    return _randn(shape, generator, device) if x_T is None else x_T.to(device, copy=True)


@torch.no_grad()
def ddpm_sample(
    model: ModelFn,
    schedule: Schedule,
    shape: tuple[int, ...],
    *,
    objective: str = "eps",
    steps: int | None = None,
    generator: torch.Generator | None = None,
    clip: tuple[float, float] | None = None,
    x_T: Tensor | None = None,
    trajectory: bool = False,
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """Ancestral sampling (Ho et al. 2020, Algorithm 2) through the posterior.

    From ``x_T ~ N(0, I)``, each step predicts ``x0_hat`` from the network and
    draws ``x_{t-1} ~ N(mu_tilde(x_t, x0_hat), beta_tilde)`` (Eqs. 6-7 with
    ``sigma_t^2 = beta_tilde_t``, one of the two choices of Sec. 3.2). Without
    clipping the mean equals Algorithm 2's
    ``(x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t)``; the last
    step adds no noise. With ``steps < T`` the schedule is respaced
    (:func:`respace`, Nichol & Dhariwal 2021, Sec. 4).

    Parameters
    ----------
    model : callable
        ``model(x_t (N, ...), t (N,) int64) -> (N, ...)`` output of ``objective``.
    schedule : Schedule
        The training schedule (full, T steps).
    shape : tuple of int
        ``(N, *sample_shape)``.
    objective : {"eps", "x0", "v"}
        What the model outputs.
    steps : int, optional
        Network evaluations per sample (NFE); default T.
    generator : torch.Generator, optional
        Draws x_T and the noise of each step, in that order, on its own device
        (then moved to the schedule's device, where the sampler computes).
    clip : (lo, hi), optional
        Clip x0_hat to this range at every step (images: (-1, 1)).
    x_T : tensor, optional
        Starting noise of ``shape`` instead of drawing it.
    trajectory : bool
        Also return the chain.

    Returns
    -------
    x0 : (N, ...) tensor
        The samples; or, with ``trajectory``, ``(x0, ts, xs)`` where ``ts``
        (steps + 1,) holds the timestep index of each state (T for x_T, -1 for
        the output) and ``xs`` (steps + 1, N, ...) the states x_T .. x_0.

    Raises
    ------
    UserError
        ``steps`` not in 1..T, unknown ``objective``.
    """
    steps = schedule.T if steps is None else steps
    sched = schedule if steps == schedule.T else respace(schedule, ddim_timesteps(schedule.T, steps))
    dev = schedule.device
    x = _start(shape, generator, x_T, dev)
    ts, xs = [schedule.T], [x]
    for i in reversed(range(sched.T)):
        _, x0_hat = _denoise(model, sched, objective, x, i, clip)
        mean, var = posterior_mean_variance(sched, x0_hat, x, torch.full((shape[0],), i, dtype=torch.int64,
                                                                         device=dev))
        x = mean + var.sqrt() * _randn(shape, generator, dev) if i > 0 else mean
        if trajectory:
            ts.append(int(sched.timesteps[i - 1]) if i > 0 else -1)
            xs.append(x)
    if trajectory:
        return x, torch.tensor(ts), torch.stack(xs)
    return x


@torch.no_grad()
def ddim_sample(
    model: ModelFn,
    schedule: Schedule,
    shape: tuple[int, ...],
    *,
    objective: str = "eps",
    steps: int = 50,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip: tuple[float, float] | None = None,
    x_T: Tensor | None = None,
    trajectory: bool = False,
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """DDIM sampling (Song et al. 2021, arXiv:2010.02502, Eq. 12 with Eq. 16).

    On a sub-sequence tau of ``steps`` timesteps (:func:`ddim_timesteps`):
    ``x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps_hat + sigma z``,
    ``sigma = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev)``.
    ``eta = 0`` is deterministic (the DDIM); ``eta = 1`` is ancestral DDPM on the
    respaced schedule (then it equals :func:`ddpm_sample` draw for draw). The
    last step returns ``x0_hat`` (``ab_prev = 1``).

    Parameters
    ----------
    model, schedule, shape, objective, generator, clip, x_T, trajectory
        As in :func:`ddpm_sample`.
    steps : int
        Network evaluations per sample (NFE), 1..T.
    eta : float
        Stochasticity in [0, 1].

    Returns
    -------
    As :func:`ddpm_sample`.

    Raises
    ------
    UserError
        ``steps`` not in 1..T, ``eta`` outside [0, 1], unknown ``objective``.
    """
    if not 0.0 <= float(eta) <= 1.0:
        raise UserError(f"DDIM eta must be in [0, 1], got {eta!r}")
    sched = respace(schedule, ddim_timesteps(schedule.T, steps))
    dev = schedule.device
    x = _start(shape, generator, x_T, dev)
    ts, xs = [schedule.T], [x]
    for i in reversed(range(sched.T)):
        eps_hat, x0_hat = _denoise(model, sched, objective, x, i, clip)
        ab = float(sched.alpha_bar[i])
        ab_prev = float(sched.alpha_bar_prev[i])
        sigma = eta * math.sqrt((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev))
        x = ab_prev**0.5 * x0_hat + max(1.0 - ab_prev - sigma**2, 0.0) ** 0.5 * eps_hat
        if sigma > 0.0:
            x = x + sigma * _randn(shape, generator, dev)
        if trajectory:
            ts.append(int(sched.timesteps[i - 1]) if i > 0 else -1)
            xs.append(x)
    if trajectory:
        return x, torch.tensor(ts), torch.stack(xs)
    return x


# ----------------------------------------------------------------- ODE samplers (flow matching, EDM)

ODE_SAMPLERS = ("euler", "heun")
"""Samplers of the continuous-time objectives (flow matching, EDM): ODE solvers."""

VelocityFn = Callable[[Tensor, float], Tensor]


def ode_steps(nfe: int, method: str, *, correct_last: bool = False) -> int:
    """Solver steps N that fit a budget of ``nfe`` network evaluations per sample.

    Euler: ``N = nfe`` (one evaluation per step). Heun without a correction on
    the last step (EDM): ``N = (nfe + 1) // 2``, costing ``2 N - 1``
    evaluations; with it (``correct_last``, flow matching): ``N = nfe // 2``,
    costing ``2 N`` (:func:`ode_nfe`). Heun uses ``nfe`` or ``nfe - 1``.

    Raises
    ------
    UserError
        ``nfe`` not a positive integer, or too small for one step; unknown ``method``.
    """
    if method not in ODE_SAMPLERS:
        raise unknown_choice("sampler", method, ODE_SAMPLERS)
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 1:
        raise UserError(f"sample_steps must be a positive integer, got {nfe!r}")
    if method == "euler":
        return nfe
    if correct_last and nfe < 2:
        raise UserError("sample_steps must be >= 2 for Heun's method (two network evaluations per step)")
    return nfe // 2 if correct_last else (nfe + 1) // 2


def ode_nfe(steps: int, method: str, *, correct_last: bool = False) -> int:
    """Network evaluations per sample of ``steps`` solver steps: Euler ``N``; Heun ``2 N``, or
    ``2 N - 1`` when the last step, which ends at t = 0, takes no second-order correction
    (Karras et al. 2022, arXiv:2206.00364, Algorithm 1, line 6, numbers unchecked; NVlabs/edm
    generate.py skips the correction at the last step; ``correct_last=False``)."""
    if method not in ODE_SAMPLERS:
        raise unknown_choice("sampler", method, ODE_SAMPLERS)
    if method == "euler":
        return steps
    return 2 * steps if correct_last else 2 * steps - 1


def edm_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Tensor:
    """The noise levels of EDM's sampler (Karras et al. 2022, arXiv:2206.00364, Eq. 5,
    equation number unchecked; the formula is NVlabs/edm generate.py's ``t_steps``).

    ``sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``
    for ``i = 0..N-1``, then ``sigma_N = 0``. ``N = 1`` gives ``[sigma_max, 0]``.

    Parameters
    ----------
    steps : int
        N >= 1.
    sigma_min, sigma_max : float
        0 < sigma_min <= sigma_max (the paper: 0.002 and 80).
    rho : float
        > 0 (the paper: 7).

    Returns
    -------
    (N + 1,) float64 tensor, decreasing, ending in 0.

    Raises
    ------
    UserError
        Values out of range.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserError(f"EDM sampler steps must be a positive integer, got {steps!r}")
    if not (0.0 < sigma_min <= sigma_max and rho > 0.0):
        raise UserError(f"EDM needs 0 < sigma_min <= sigma_max and rho > 0, got {sigma_min}, {sigma_max}, {rho}")
    i = torch.arange(steps, dtype=torch.float64)
    frac = i / max(steps - 1, 1)
    s = (sigma_max ** (1.0 / rho) + frac * (sigma_min ** (1.0 / rho) - sigma_max ** (1.0 / rho))) ** rho
    return torch.cat([s, s.new_zeros(1)])


def flow_times(steps: int) -> Tensor:
    """``steps + 1`` evenly spaced times from 1 (noise) to 0 (data), float64 (the Euler grid of
    flow matching, Lipman et al. 2023, arXiv:2210.02747, Sec. 6 (section number unchecked), with
    losslab's t -> 1 - t).

    Raises
    ------
    UserError
        ``steps`` not a positive integer.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserError(f"flow-matching sampler steps must be a positive integer, got {steps!r}")
    return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)


@torch.no_grad()
def ode_sample(
    velocity: VelocityFn,
    times: Tensor,
    x: Tensor,
    *,
    method: str = "heun",
    correct_last: bool = False,
    trajectory: bool = False,
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """Integrate ``dx/dt = velocity(x, t)`` from ``times[0]`` to ``times[-1]``.

    Euler: ``x_{i+1} = x_i + (t_{i+1} - t_i) d_i`` with ``d_i = velocity(x_i, t_i)``.
    Heun (Karras et al. 2022, arXiv:2206.00364: deterministic Heun, i.e. EDM's
    sampler with S_churn = 0; S_churn is a parameter of the stochastic sampler,
    Algorithm 2 per the authors' NVlabs/edm generate.py; algorithm numbers
    unchecked against the paper): the Euler step, then, unless
    ``t_{i+1} = 0`` and not ``correct_last``,
    ``x_{i+1} = x_i + (t_{i+1} - t_i) (d_i + velocity(x_{i+1}, t_{i+1})) / 2``.
    EDM's field ``(x - D) / sigma`` is undefined at sigma = 0, hence its
    Euler last step; flow matching's velocity is defined at t = 0, and a last
    Euler step would cost it the second order (``correct_last=True``). With
    N = ``len(times) - 1`` steps that is N (Euler), ``2 N - 1`` or ``2 N``
    (Heun) network evaluations (:func:`ode_nfe`).

    Parameters
    ----------
    velocity : callable
        ``velocity(x (N, ...), t: float) -> (N, ...)``, the ODE's right-hand side.
    times : (N + 1,) float64 tensor
        The time grid, in the direction of integration.
    x : (N, ...) tensor
        The state at ``times[0]`` (not modified).
    method : {"euler", "heun"}
    correct_last : bool
        Heun: correct the step that ends at t = 0 as well.
    trajectory : bool
        Also return the states.

    Returns
    -------
    x : (N, ...) tensor
        The state at ``times[-1]``; with ``trajectory``, ``(x, times, xs)`` with
        ``xs`` (len(times), N, ...) the states at every grid time.

    Raises
    ------
    UserError
        Unknown ``method``.
    """
    if method not in ODE_SAMPLERS:
        raise unknown_choice("sampler", method, ODE_SAMPLERS)
    ts = [float(t) for t in times]
    xs = [x]
    for t_cur, t_next in zip(ts[:-1], ts[1:]):
        d = velocity(x, t_cur)
        x_next = x + (t_next - t_cur) * d
        if method == "heun" and (t_next != 0.0 or correct_last):  # Algorithm 1, lines 6-8
            x_next = x + (t_next - t_cur) * 0.5 * (d + velocity(x_next, t_next))
        x = x_next
        if trajectory:
            xs.append(x)
    if trajectory:
        return x, times.clone(), torch.stack(xs)
    return x
