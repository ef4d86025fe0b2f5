"""Continuous-time generative objectives: flow matching (rectified flow) and EDM.

Both train the denoising networks of the diffusion family
(``net(x, time) -> (N, ...)``, :mod:`losslab.models.denoiser`) and answer the
calls of :class:`losslab.losses.diffusion.DiffusionObjective` (see that
module), so the family's step and sampler treat them like the DDPM
objectives. Each returns the **per-sample** loss ``(N,)``: the weighted
squared error averaged over the sample's elements.

Flow matching (Lipman et al. 2023, arXiv:2210.02747, Eqs. 20-23 with
sigma_min = 0; Liu et al. 2023, arXiv:2209.03003, Eq. 1, "rectified flow";
equation numbers unchecked against the papers):

* **convention**: ``x0`` is the **data** and ``x1 ~ N(0, I)`` the **noise**, as
  in losslab's DDPM notation (t grows with the noise) and Esser et al. 2024
  (arXiv:2403.03206, Sec. 2); Lipman et al. and Liu et al. name them the
  other way round (their t is our 1 - t). The path is the straight line
  ``x_t = (1 - t) x0 + t x1``, ``t ~ U(0, 1)``;
* target: the velocity along it, ``u = x1 - x0``; loss ``||v_theta(x_t, t) - u||^2``;
* sampling: integrate ``dx/dt = v_theta(x, t)`` from t = 1 (noise) to t = 0
  (data) with Euler or Heun steps (:func:`losslab.schedules.ode_sample`).

EDM (Karras et al. 2022, arXiv:2206.00364, Table 1, "Ours" column, table number
unchecked against the paper; the formulas below match the authors' code,
NVlabs/edm ``training/loss.py: EDMLoss`` and
``training/networks.py: EDMPrecond``):

* ``sigma``: ``ln sigma ~ N(P_mean, P_std^2)``, P_mean = -1.2, P_std = 1.2;
* ``D(x; sigma) = c_skip x + c_out F(c_in x; c_noise)`` with
  ``c_skip = sd^2 / (sigma^2 + sd^2)``, ``c_out = sigma sd / sqrt(sigma^2 + sd^2)``,
  ``c_in = 1 / sqrt(sigma^2 + sd^2)``, ``c_noise = ln(sigma) / 4`` (sd = sigma_data);
* loss ``lambda(sigma) ||D(x0 + sigma n; sigma) - x0||^2`` with
  ``lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2`` (= 1 / c_out^2, so the
  network's effective target has unit variance at every sigma);
* sampling: the deterministic Heun sampler of Algorithm 1 (S_churn = 0) on the
  noise levels of Eq. 5 (sigma_min 0.002, sigma_max 80, rho 7).

Networks see time through a sinusoidal embedding built for DDPM's timestep
indices 0..999 (:func:`losslab.models.denoiser.timestep_embedding`). Flow
matching shows the network ``1000 t`` and EDM ``1000 c_noise``
(:data:`TIME_SCALE`): the same range, so the embedding resolves them as finely
as DDPM's timesteps. (NVlabs/edm feeds ``c_noise`` unscaled to a positional
embedding of its own; this scale is losslab's.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from losslab import schedules
from losslab.errors import UserError

__all__ = ["EDMObjective", "FlowMatchingObjective", "TIME_SCALE", "edm_precond", "flow_optimal_velocity",
           "sample_noise"]

TIME_SCALE = 1000.0
"""What the network is told: ``TIME_SCALE * t`` (flow matching), ``TIME_SCALE * c_noise`` (EDM)."""


def sample_noise(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Standard normal of ``shape``, drawn on the generator's device (``like``'s without one), moved to
    ``like``'s device in its dtype."""
    where = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=where).to(like.device)


def _bc(values: Tensor, x: Tensor) -> Tensor:
    """(N,) coefficients as (N, 1, ..., 1) in x's dtype and device."""
    return values.to(x.device, x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def _clip(x: Tensor, clip) -> Tensor:
    return x if clip is None else torch.maximum(torch.minimum(x, torch.as_tensor(clip[1], dtype=x.dtype,
                                                                                   device=x.device)),
                                                torch.as_tensor(clip[0], dtype=x.dtype, device=x.device))


def _check_ode(sampler: str, steps: int, what: str, correct_last: bool) -> None:
    if sampler not in schedules.ODE_SAMPLERS:
        raise UserError(f"sampler {sampler!r} does not sample {what}; choose "
                        f"{' or '.join(schedules.ODE_SAMPLERS)} (an ODE solver)")
    schedules.ode_steps(steps, sampler, correct_last=correct_last)


# ----------------------------------------------------------------------------- flow matching


def flow_optimal_velocity(x: Tensor, t: Tensor | float, mu: float, s: float) -> Tensor:
    """The minimiser of the flow-matching loss for 1-D Gaussian data, in closed form.

    With data ``x0 ~ N(mu, s^2)``, noise ``x1 ~ N(0, 1)`` independent and
    ``x_t = (1 - t) x0 + t x1``, the regression target's conditional mean is
    ``v*(x, t) = E[x1 - x0 | x_t = x] = -mu + (t - (1 - t) s^2) / V (x - (1 - t) mu)``
    with ``V = (1 - t)^2 s^2 + t^2`` (Gaussian conditioning: ``Cov(x1 - x0, x_t) = t - (1 - t) s^2``).
    Its ODE carries N(0, 1) at t = 1 to N(mu, s^2) at t = 0.

    Parameters
    ----------
    x : tensor
        Points.
    t : tensor or float in [0, 1]
    mu, s : float
        Data mean and standard deviation (s > 0).
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    var = (1 - t) ** 2 * s**2 + t**2
    return -mu + (t - (1 - t) * s**2) / var * (x - (1 - t) * mu)


@dataclass
class FlowMatchingObjective:
    """Flow matching on the straight path (rectified flow): ``obj(net, x0, generator=g) -> (N,)``.

    ``x0`` is data, ``x1 ~ N(0, I)`` noise, ``x_t = (1 - t) x0 + t x1``,
    ``t ~ U(0, 1)``; the network ``net(x_t, TIME_SCALE t)`` regresses
    ``u = x1 - x0`` (Lipman et al. 2023, arXiv:2210.02747, Eq. 23 with
    sigma_min = 0 and t -> 1 - t; Liu et al. 2023, arXiv:2209.03003, Eq. 1; equation numbers
    unchecked).
    """

    objective: str = "flow"
    level_name = "t"

    def sample_t(self, n: int, generator: torch.Generator | None = None, device="cpu") -> Tensor:
        """``n`` times uniform on [0, 1), (n,) float32, drawn on the generator's device."""
        where = generator.device if generator is not None else torch.device(device)
        return torch.rand(n, generator=generator, device=where)

    def interpolate(self, x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(x_t, u)``: the point on the straight path and the velocity target ``x1 - x0``."""
        tt = _bc(t, x0)
        return (1 - tt) * x0 + tt * x1, x1 - x0

    def net_velocity(self, net: nn.Module, x: Tensor, t: Tensor) -> Tensor:
        """``v_theta(x, t) = net(x, TIME_SCALE t)``; ``t`` (N,)."""
        return net(x, TIME_SCALE * t.to(x.device, torch.float32))

    def __call__(self, net: nn.Module, x0: Tensor, *, t: Tensor | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
        """Per-sample flow-matching loss ``mean_elements (v_theta(x_t, t) - (x1 - x0))^2``, (N,).

        Parameters
        ----------
        net : nn.Module
            ``net(x (N, ...), time (N,)) -> (N, ...)``.
        x0 : (N, ...) tensor
            Data (network units).
        t : (N,) tensor, optional
            Times in [0, 1]; default :meth:`sample_t` from ``generator``.
        generator : torch.Generator, optional
            Draws t (if not given), then the noise x1.
        """
        n = x0.shape[0]
        if t is None:
            t = self.sample_t(n, generator, x0.device)
        return self.members(lambda x, tt: net(x[0], tt[0])[None], x0[None], t=t[None], generators=[generator])[0]

    def members(self, net, x0: Tensor, *, t: Tensor, generators: list) -> Tensor:
        """Per-sample losses of M runs at once (the member axis of :mod:`losslab.train.members`).

        ``net(x (M, N, ...), time (M, N)) -> (M, N, ...)``; ``x0`` (M, N, ...); ``t`` (M, N) times;
        member k draws its noise x1 from ``generators[k]`` (as its solo run does). Returns (M, N).
        """
        m, n = x0.shape[:2]
        x1 = torch.stack([sample_noise(x0.shape[1:], g, x0) for g in generators])
        t = t.to(x0.device)
        tt = t.to(x0.dtype).reshape(m, n, *([1] * (x0.dim() - 2)))
        x_t, u = (1 - tt) * x0 + tt * x1, x1 - x0
        out = net(x_t, TIME_SCALE * t.to(torch.float32))
        return (out - u).pow(2).reshape(m, n, -1).mean(dim=2)

    # -- diagnostics

    def bucket(self, t: Tensor, k: int) -> Tensor:
        """``floor(k t)`` clamped to ``k - 1``, (N,) int64."""
        return (t * k).floor().long().clamp(0, k - 1)

    def bucket_edges(self, k: int) -> Tensor:
        return torch.linspace(0.0, 1.0, k + 1, dtype=torch.float64)

    def bucket_draw(self, b: int, k: int, n: int, generator: torch.Generator) -> Tensor:
        """``n`` times uniform on ``[b / k, (b + 1) / k)`` (CPU generator)."""
        return (b + torch.rand(n, generator=generator)) / k

    def bucket_labels(self, k: int) -> list[str]:
        e = self.bucket_edges(k).tolist()
        return [f"{lo:.1f}-{hi:.1f}" for lo, hi in zip(e[:-1], e[1:])]

    def strip_levels(self) -> Tensor:
        return torch.tensor([0.0, 0.02, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0], dtype=torch.float64)

    def perturb(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        return self.interpolate(x0, eps, t.to(torch.float64))[0]

    def level_label(self, t: float, clean: str) -> str:
        t = float(t)
        return clean if t <= 0.0 else ("x_1 (noise)" if t >= 1.0 else f"t={t:.2f}")

    def describe(self) -> str:
        return "straight path x_t = (1 - t) x0 + t x1, t ~ U(0, 1)"

    # -- sampling

    def check(self, sampler: str, steps: int) -> None:
        _check_ode(sampler, steps, "a flow-matching model", True)

    def nfe(self, sampler: str, steps: int) -> int:
        """Network evaluations per sample of :meth:`sample` with this budget (:func:`~losslab.schedules.ode_nfe`;
        Heun corrects every step, the last one too: ``2 N <= steps``)."""
        return schedules.ode_nfe(schedules.ode_steps(steps, sampler, correct_last=True), sampler, correct_last=True)

    @torch.no_grad()
    def sample(self, net, shape: tuple[int, ...], *, sampler: str = "euler", steps: int = 100, eta: float = 0.0,
               generator: torch.Generator | None = None, clip=None, trajectory: bool = False, device=None,
               x_start: Tensor | None = None):
        """Integrate the learned ODE from ``x1 ~ N(0, I)`` at t = 1 to t = 0.

        ``steps`` is the budget of network evaluations per sample (NFE);
        :func:`~losslab.schedules.ode_steps` turns it into solver steps on the
        uniform grid :func:`~losslab.schedules.flow_times` (Euler: ``steps``;
        Heun: ``steps // 2``, each corrected, the last one too). The output (not the
        intermediate states) is clipped to ``clip`` when given. ``eta`` is unused;
        ``x_start`` replaces the drawn starting noise.
        """
        dev = torch.device(device) if device is not None else next(net.parameters()).device
        where = generator.device if generator is not None else dev
        x = torch.randn(shape, generator=generator, device=where).to(dev) if x_start is None else x_start.to(dev)
        times = schedules.flow_times(schedules.ode_steps(steps, sampler, correct_last=True))
        n = shape[0]

        def velocity(x: Tensor, t: float) -> Tensor:
            return self.net_velocity(net, x, torch.full((n,), t, device=dev))

        out = schedules.ode_sample(velocity, times, x, method=sampler, correct_last=True, trajectory=trajectory)
        if trajectory:
            x, ts, xs = out
            return _clip(x, clip), ts, torch.cat([xs[:-1], _clip(x, clip)[None]])
        return _clip(out, clip)


# ----------------------------------------------------------------------------- EDM


def edm_precond(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """EDM's preconditioning (Karras et al. 2022, arXiv:2206.00364, Table 1, "Ours";
    table number unchecked, formulas as NVlabs/edm training/networks.py EDMPrecond).

    Parameters
    ----------
    sigma : tensor, > 0
        Noise levels (any shape).
    sigma_data : float
        Standard deviation of the data (> 0).

    Returns
    -------
    c_skip, c_out, c_in, c_noise : tensors of sigma's shape and dtype
        ``sd^2 / (sigma^2 + sd^2)``, ``sigma sd / sqrt(sigma^2 + sd^2)``,
        ``1 / sqrt(sigma^2 + sd^2)``, ``ln(sigma) / 4``.
    """
    sd2 = sigma_data**2
    r = (sigma**2 + sd2).sqrt()
    return sd2 / (sigma**2 + sd2), sigma * sigma_data / r, 1.0 / r, sigma.log() / 4


@dataclass
class EDMObjective:
    """EDM's preconditioned denoiser loss: ``obj(net, x0, generator=g) -> (N,)``.

    Attributes
    ----------
    sigma_data : float
        Data standard deviation (Table 1: 0.5 for images in [-1, 1]; losslab's
        standardised vectors have 1).
    p_mean, p_std : float
        ``ln sigma ~ N(p_mean, p_std^2)`` in training (Table 1: -1.2, 1.2).
    sigma_min, sigma_max, rho : float
        The sampler's noise levels (Eq. 5; Table 1: 0.002, 80, 7).
    """

    sigma_data: float = 0.5
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    objective: str = "edm"
    level_name = "sigma"

    def __post_init__(self) -> None:
        if not (self.sigma_data > 0 and self.p_std > 0 and 0 < self.sigma_min <= self.sigma_max and self.rho > 0):
            raise UserError("EDM needs sigma_data > 0, P_std > 0, 0 < sigma_min <= sigma_max and rho > 0")

    def sample_t(self, n: int, generator: torch.Generator | None = None, device="cpu") -> Tensor:
        """``n`` noise levels ``sigma = exp(P_mean + P_std z)``, ``z ~ N(0, 1)``, (n,) float32."""
        where = generator.device if generator is not None else torch.device(device)
        return (torch.randn(n, generator=generator, device=where) * self.p_std + self.p_mean).exp()

    def weight(self, sigma: Tensor) -> Tensor:
        """``lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2`` (Table 1)."""
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def denoise(self, net: nn.Module, x: Tensor, sigma: Tensor) -> Tensor:
        """``D(x; sigma) = c_skip x + c_out F(c_in x; TIME_SCALE c_noise)``; ``sigma`` (N,).
        The coefficients are computed in float64, then cast to x's dtype."""
        c_skip, c_out, c_in, c_noise = edm_precond(sigma.to(x.device, torch.float64), self.sigma_data)
        f = net(_bc(c_in, x) * x, (TIME_SCALE * c_noise).to(torch.float32))
        return _bc(c_skip, x) * x + _bc(c_out, x) * f

    def __call__(self, net: nn.Module, x0: Tensor, *, t: Tensor | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
        """Per-sample EDM loss ``mean_elements lambda(sigma) (D(x0 + sigma n; sigma) - x0)^2``, (N,).

        Parameters
        ----------
        net : nn.Module
            The raw network F: ``net(x (N, ...), time (N,)) -> (N, ...)``.
        x0 : (N, ...) tensor
            Data (network units).
        t : (N,) tensor, optional
            Noise levels sigma > 0; default :meth:`sample_t` from ``generator``.
        generator : torch.Generator, optional
            Draws sigma (if not given), then the noise n.
        """
        n = x0.shape[0]
        if t is None:
            t = self.sample_t(n, generator, x0.device)
        return self.members(lambda x, tt: net(x[0], tt[0])[None], x0[None], t=t[None], generators=[generator])[0]

    def members(self, net, x0: Tensor, *, t: Tensor, generators: list) -> Tensor:
        """Per-sample losses of M runs at once (the member axis of :mod:`losslab.train.members`).

        ``net(x (M, N, ...), time (M, N)) -> (M, N, ...)`` is the raw network F; ``x0`` (M, N, ...);
        ``t`` (M, N) noise levels sigma; member k draws its noise from ``generators[k]``. Returns (M, N).
        """
        m, n = x0.shape[:2]
        noise = torch.stack([sample_noise(x0.shape[1:], g, x0) for g in generators])
        sigma = t.to(x0.device, torch.float64)
        c_skip, c_out, c_in, c_noise = edm_precond(sigma, self.sigma_data)  # (M, N) float64

        def bc(v: Tensor) -> Tensor:
            return v.to(x0.dtype).reshape(m, n, *([1] * (x0.dim() - 2)))

        x = x0 + bc(sigma) * noise
        d = bc(c_skip) * x + bc(c_out) * net(bc(c_in) * x, (TIME_SCALE * c_noise).to(torch.float32))
        return self.weight(sigma).to(x0.dtype) * (d - x0).pow(2).reshape(m, n, -1).mean(dim=2)

    # -- diagnostics: buckets are deciles of the training distribution of sigma

    def _unit(self, sigma: Tensor) -> Tensor:
        return torch.special.ndtr((sigma.to(torch.float64).log() - self.p_mean) / self.p_std)

    def bucket(self, t: Tensor, k: int) -> Tensor:
        """``floor(k Phi((ln sigma - P_mean) / P_std))`` clamped to ``k - 1``: equal-probability buckets."""
        return (self._unit(t) * k).floor().long().clamp(0, k - 1).to(t.device)

    def bucket_edges(self, k: int) -> Tensor:
        """(k + 1,) float64 sigma quantiles of the training distribution (0 and inf at the ends)."""
        u = torch.linspace(0.0, 1.0, k + 1, dtype=torch.float64)
        return (self.p_mean + self.p_std * torch.special.ndtri(u)).exp()

    def bucket_draw(self, b: int, k: int, n: int, generator: torch.Generator) -> Tensor:
        """``n`` sigmas drawn from the training distribution restricted to bucket ``b`` (CPU generator)."""
        u = ((b + torch.rand(n, generator=generator, dtype=torch.float64)) / k).clamp(1e-12, 1 - 1e-12)
        return (self.p_mean + self.p_std * torch.special.ndtri(u)).exp().to(torch.float32)

    def bucket_labels(self, k: int) -> list[str]:
        e = self.bucket_edges(k).tolist()
        return [f"{lo:.2g}-{hi:.2g}" for lo, hi in zip(e[:-1], e[1:])]

    def strip_levels(self) -> Tensor:
        return torch.tensor([0.0, 0.02, 0.1, 0.3, 1.0, 3.0, 10.0, self.sigma_max], dtype=torch.float64)

    def perturb(self, x0: Tensor, sigma: Tensor, eps: Tensor) -> Tensor:
        return x0 + _bc(sigma.to(torch.float64), x0) * eps

    display_note = "states shown as x / sqrt(1 + sigma^2 / sigma_data^2), the scale the network sees"

    def display_scale(self, sigma: Tensor) -> Tensor:
        """``1 / sqrt(1 + sigma^2 / sd^2)`` (= sd c_in): the report draws the states at unit scale
        (raw, the noise at sigma_max = 80 hides everything else)."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        return 1.0 / (1.0 + sigma**2 / self.sigma_data**2).sqrt()

    def level_label(self, sigma: float, clean: str) -> str:
        sigma = float(sigma)
        return clean if sigma <= 0.0 else f"sigma={sigma:.3g}"

    def describe(self) -> str:
        return (f"ln sigma ~ N({self.p_mean:g}, {self.p_std:g}^2), sigma_data {self.sigma_data:g}, "
                f"sampling sigma {self.sigma_max:g} -> {self.sigma_min:g}, rho {self.rho:g}")

    # -- sampling

    def check(self, sampler: str, steps: int) -> None:
        _check_ode(sampler, steps, "an EDM model", False)

    def nfe(self, sampler: str, steps: int) -> int:
        """Network evaluations per sample of :meth:`sample` with this budget (:func:`~losslab.schedules.ode_nfe`)."""
        return schedules.ode_nfe(schedules.ode_steps(steps, sampler), sampler)

    @torch.no_grad()
    def sample(self, net, shape: tuple[int, ...], *, sampler: str = "heun", steps: int = 100, eta: float = 0.0,
               generator: torch.Generator | None = None, clip=None, trajectory: bool = False, device=None,
               x_start: Tensor | None = None):
        """EDM's deterministic sampler (Karras et al. 2022, Algorithm 1, S_churn = 0).

        ``x_0 ~ N(0, sigma_max^2 I)``; the probability-flow ODE
        ``dx/dsigma = (x - D(x; sigma)) / sigma`` (Eq. 3 with sigma(t) = t, s(t) = 1)
        solved on :func:`~losslab.schedules.edm_sigmas` with the solver steps
        that fit ``steps`` network evaluations (:func:`~losslab.schedules.ode_steps`;
        Heun: ``2 N - 1``). The output is clipped to ``clip`` when given. ``eta`` is unused;
        ``x_start`` (standard normal, scaled by sigma_max here) replaces the drawn noise.
        """
        dev = torch.device(device) if device is not None else next(net.parameters()).device
        where = generator.device if generator is not None else dev
        sigmas = schedules.edm_sigmas(schedules.ode_steps(steps, sampler), self.sigma_min, self.sigma_max, self.rho)
        x = (torch.randn(shape, generator=generator, device=where).to(dev) if x_start is None
             else x_start.to(dev)) * float(sigmas[0])
        n = shape[0]

        def velocity(x: Tensor, sigma: float) -> Tensor:
            return (x - self.denoise(net, x, torch.full((n,), sigma, device=dev))) / sigma

        out = schedules.ode_sample(velocity, sigmas, x, method=sampler, trajectory=trajectory)
        if trajectory:
            x, ts, xs = out
            return _clip(x, clip), ts, torch.cat([xs[:-1], _clip(x, clip)[None]])
        return _clip(out, clip)
