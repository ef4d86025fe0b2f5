"""Diffusion (DDPM) objectives, and the registry of diffusion "losses" losslab compares.

An objective is a tiny callable that owns its schedule and its noise sampling
and returns the **per-sample** loss ``(N,)``; the training step reduces it (as
in NVlabs/edm ``training/loss.py``). All three regress the network output on a
target with the unweighted squared error averaged over the sample's elements:

* ``eps``: ``|| eps - eps_theta(x_t, t) ||^2``, the "simple" loss
  (Ho et al. 2020, arXiv:2006.11239, Eq. 14);
* ``x0``: ``|| x_0 - x0_theta(x_t, t) ||^2`` (the x0 parametrisation Ho et al.
  compare against in Sec. 3.2 and Table 2);
* ``v``: ``|| v - v_theta(x_t, t) ||^2`` with
  ``v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0`` (Salimans & Ho 2022,
  arXiv:2202.00512, Sec. 4; equal to an x0 loss weighted by SNR + 1).

``t`` is uniform on ``0..T-1`` (Algorithm 1, line 3; 0-based, see
:mod:`losslab.schedules`).

Two continuous-time objectives train the same networks
(:mod:`losslab.losses.flow_edm`): ``flow`` (flow matching / rectified
flow, :class:`~losslab.losses.flow_edm.FlowMatchingObjective`) and
``edm`` (Karras et al. 2022, :class:`~losslab.losses.flow_edm.EDMObjective`).
Every objective answers the same calls, so the family's step and sampler
never ask which one it holds: ``sample_t``, ``__call__`` (the per-sample
loss), ``bucket`` / ``bucket_draw`` / ``bucket_labels`` (the per-noise-level
diagnostics), ``perturb`` / ``strip_levels`` / ``level_label`` (the report's
forward process), ``check`` / ``nfe`` / ``sample`` (the sampler) and
``describe``. :func:`make_objective` builds the one a loss names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from losslab import schedules
from losslab.errors import UserError, unknown_choice
from losslab.losses.flow_edm import EDMObjective, FlowMatchingObjective
from losslab.losses.variants import base_name

__all__ = ["DIFFUSION_LOSSES", "DiffusionLoss", "DiffusionObjective", "EDMObjective", "FlowMatchingObjective",
           "get_diffusion_loss", "make_objective"]


@dataclass
class DiffusionObjective:
    """Denoising objective: ``obj(net, x0, generator=g) -> (N,)`` per-sample losses.

    Attributes
    ----------
    schedule : Schedule
        The forward process (:func:`losslab.schedules.get_schedule`).
    objective : {"eps", "x0", "v"}
        What the network predicts.
    """

    schedule: schedules.Schedule
    objective: str

    def __post_init__(self) -> None:
        if self.objective not in schedules.OBJECTIVES:
            raise unknown_choice("objective", self.objective, schedules.OBJECTIVES)

    def sample_t(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` timesteps uniform on ``0..T-1``, (n,) int64 (Ho et al. Algorithm 1, line 3), on the
        schedule's device (drawn on the generator's device, then moved)."""
        where = generator.device if generator is not None else self.schedule.device
        return torch.randint(0, self.schedule.T, (n,), generator=generator, device=where).to(self.schedule.device)

    def __call__(
        self,
        net: nn.Module,
        x0: Tensor,
        *,
        t: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Per-sample loss of one training batch (Ho et al. 2020, Algorithm 1, lines 2-5).

        Parameters
        ----------
        net : nn.Module
            ``net(x_t (N, ...), t (N,) int64) -> (N, ...)``.
        x0 : (N, ...) tensor
            Clean training samples (in the scale the network works in).
        t : (N,) int64 tensor, optional
            Timesteps; default drawn with :meth:`sample_t` from ``generator``.
        generator : torch.Generator, optional
            Draws ``t`` (if not given), then ``eps``.

        Returns
        -------
        (N,) tensor
            Squared error to the target, averaged over each sample's elements.
        """
        n = x0.shape[0]
        if t is None:
            t = self.sample_t(n, generator)
        return self.members(lambda x, tt: net(x[0], tt[0])[None], x0[None], t=t[None], generators=[generator])[0]

    def members(
        self,
        net: nn.Module,
        x0: Tensor,
        *,
        t: Tensor,
        generators: list[torch.Generator | None],
    ) -> Tensor:
        """Per-sample losses of M runs at once (the member axis of :mod:`losslab.train.members`).

        Parameters
        ----------
        net : nn.Module
            ``net(x_t (M, N, ...), t (M, N) int64) -> (M, N, ...)``: member k's network on member k's batch.
        x0 : (M, N, ...) tensor
            Clean training samples of each member.
        t : (M, N) int64 tensor
            Timesteps.
        generators : list of M torch.Generator
            Member k draws its ``eps`` from ``generators[k]`` (as its solo run does).

        Returns
        -------
        (M, N) tensor
            Squared error to the target, averaged over each sample's elements (Ho et al. 2020, Eq. 14;
            Salimans & Ho 2022, Sec. 4 for ``v``).
        """
        m, n = x0.shape[:2]
        eps = torch.stack([torch.randn(x0.shape[1:], generator=g, dtype=x0.dtype,
                                       device=g.device if g is not None else x0.device)
                           for g in generators]).to(x0.device)  # drawn on each generator's device
        x0f, tf, epsf = x0.flatten(0, 1), t.flatten(), eps.flatten(0, 1)  # (M N, ...)
        x_t = schedules.q_sample(self.schedule, x0f, tf, epsf)  # Eq. 4
        ab = self.schedule.alpha_bar[tf].reshape(-1, *([1] * (x0.dim() - 2)))  # float64
        want = schedules.target(self.objective, x0f, epsf, ab).reshape(x0.shape)
        return (net(x_t.reshape(x0.shape), t) - want).pow(2).reshape(m, n, -1).mean(dim=2)

    # -- the noise level as the family's diagnostics and report see it (t: 0-based index)

    level_name = "t"

    def bucket(self, t: Tensor, k: int) -> Tensor:
        """Bucket ``0..k-1`` of each timestep: ``floor(t k / T)``, (N,) int64."""
        return torch.div(t * k, self.schedule.T, rounding_mode="floor")

    def bucket_edges(self, k: int) -> Tensor:
        """(k + 1,) int64: bucket b holds ``edges[b] <= t < edges[b + 1]``."""
        T = self.schedule.T
        return torch.div(torch.arange(k + 1) * T + k - 1, k, rounding_mode="floor")

    def bucket_draw(self, b: int, k: int, n: int, generator: torch.Generator) -> Tensor:
        """``n`` timesteps uniform inside bucket ``b`` of ``k``, drawn on the CPU generator, (n,) int64."""
        edges = self.bucket_edges(k)
        lo, hi = int(edges[b]), int(edges[b + 1])
        return torch.randint(lo, max(hi, lo + 1), (n,), generator=generator).to(self.schedule.device)

    def bucket_labels(self, k: int) -> list[str]:
        """The paper's 1-based timestep range of each bucket, e.g. "1-100"."""
        e = self.bucket_edges(k).tolist()
        return [f"{lo + 1}-{hi}" for lo, hi in zip(e[:-1], e[1:])]

    def strip_levels(self) -> Tensor:
        """The report's forward strip: -1 (the clean data), then 7 timesteps from T/50 to T - 1."""
        T = self.schedule.T
        return torch.unique(torch.tensor([-1, T // 50, T // 10, T // 5, 2 * T // 5, 3 * T // 5, 4 * T // 5, T - 1]))

    def perturb(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """``x_t`` of Eq. 4 (``x0`` itself where ``t < 0``)."""
        if bool((t < 0).all()):
            return x0
        return schedules.q_sample(self.schedule, x0, t, eps)

    def level_label(self, t: int | float, clean: str) -> str:
        """Panel title: ``clean`` for -1, "x_T (noise)" for T, else the paper's 1-based t."""
        t = int(t)
        return clean if t < 0 else ("x_T (noise)" if t >= self.schedule.T else f"t={t + 1}")

    def describe(self) -> str:
        return f"{self.schedule.name} schedule, T={self.schedule.T}"

    # -- sampling

    def check(self, sampler: str, steps: int) -> None:
        """Raise :class:`UserError` unless ``sampler`` is "ddim" or "ddpm" and ``steps`` in 1..T."""
        if sampler not in schedules.SAMPLERS:
            raise UserError(f"sampler {sampler!r} does not sample a {self.objective}-prediction model; choose "
                            f"{' or '.join(schedules.SAMPLERS)}")
        schedules.ddim_timesteps(self.schedule.T, steps)

    def nfe(self, sampler: str, steps: int) -> int:
        """Network evaluations per sample: ``steps``."""
        return int(steps)

    def sample(self, net, shape: tuple[int, ...], *, sampler: str, steps: int, eta: float = 0.0,
               generator: torch.Generator | None = None, clip=None, trajectory: bool = False, device=None):
        """:func:`~losslab.schedules.ddim_sample` (with ``eta``) or :func:`~losslab.schedules.ddpm_sample`
        (on the schedule's device; ``device`` is unused)."""
        kw = dict(objective=self.objective, steps=steps, generator=generator, clip=clip, trajectory=trajectory)
        if sampler == "ddpm":
            return schedules.ddpm_sample(net, self.schedule, shape, **kw)
        return schedules.ddim_sample(net, self.schedule, shape, eta=float(eta), **kw)


@dataclass(frozen=True)
class DiffusionLoss:
    """One diffusion objective as a comparable "loss" of losslab.

    Attributes
    ----------
    name : str
        CLI name (the key in :data:`DIFFUSION_LOSSES`).
    objective : {"eps", "x0", "v", "flow", "edm"}
        Network parametrisation and regression target (:func:`make_objective`).
    defaults : dict
        ``optimizer`` ("adam"), ``lr``, ``betas``, ``grad_clip`` (max global
        gradient norm), ``ema`` (decay of the weight average used for sampling,
        0 = none), ``sampler``, ``sample_steps`` (network evaluations per sample,
        the NFE; ``None`` = by data kind, see :mod:`losslab.train.diffusion`).
        DDPM objectives: ``schedule`` ("linear" | "cosine"), ``T``, sampler
        "ddim" | "ddpm", ``eta``. ``flow`` and ``edm``: sampler "euler" | "heun";
        ``edm`` also ``sigma_data`` (None: :data:`SIGMA_DATA` by data kind),
        ``p_mean``, ``p_std``, ``sigma_min``, ``sigma_max``, ``rho``.
    summary : str
        One line for ``losslab list``.
    source : str
        "Author et al. YEAR, arXiv:XXXX.XXXXX, Eq. N".
    search_space : dict
        What ``losslab compare --search`` tunes (see :class:`losslab.losses.GANLoss`).
    """

    name: str
    objective: str
    defaults: dict = field(hash=False)
    summary: str
    source: str
    search_space: dict = field(default_factory=dict, hash=False)


# Ho et al. 2020 (Sec. 4, App. B): Adam with lr 2e-4, batch 128, linear schedule
# T = 1000, gradient norm clipped at 1 (their code), EMA of the weights with
# decay 0.9999. A 0.9999 average needs ~10^4 updates to forget its
# initialisation; losslab budgets are 10^3 updates, so the decay here is 0.995
# (half-life ~140 updates). Sampling: DDIM (eta 0) with the steps chosen by
# data kind, affordable on a CPU.
_TRAIN = {
    "optimizer": "adam",
    "lr": 2e-4,
    "betas": (0.9, 0.999),
    "grad_clip": 1.0,
    "ema": 0.995,
}
_HO = {
    **_TRAIN,
    "schedule": "linear",
    "T": 1000,
    "sampler": "ddim",
    "sample_steps": None,
    "eta": 0.0,
}

# --search: the denoiser's learning rate, a decade either side of Ho et al.'s 2e-4
# (they use 2e-5 for their largest images: App. B).
_DIFFUSION_SPACE = {"lr": ("log", 2e-5, 2e-3)}

DIFFUSION_LOSSES: dict[str, DiffusionLoss] = {
    "ddpm": DiffusionLoss(
        name="ddpm",
        objective="eps",
        defaults={**_HO},
        summary="denoising diffusion, simple loss: predict the noise eps (DDIM sampling)",
        source="Ho et al. 2020, arXiv:2006.11239, Eq. 14, Algorithms 1-2",
        search_space=_DIFFUSION_SPACE,
    ),
    "ddpm-x0": DiffusionLoss(
        name="ddpm-x0",
        objective="x0",
        defaults={**_HO},
        summary="denoising diffusion predicting the clean sample x0",
        source="Ho et al. 2020, arXiv:2006.11239, Sec. 3.2 (x0 parametrisation)",
        search_space=_DIFFUSION_SPACE,
    ),
    "ddpm-v": DiffusionLoss(
        name="ddpm-v",
        objective="v",
        # Salimans & Ho pair v-prediction with the cosine schedule (Sec. 4, App. D).
        defaults={**_HO, "schedule": "cosine"},
        summary="denoising diffusion predicting the velocity v, cosine schedule",
        source="Salimans & Ho 2022, arXiv:2202.00512, Sec. 4",
        search_space=_DIFFUSION_SPACE,
    ),
    "flow-matching": DiffusionLoss(
        name="flow-matching",
        objective="flow",
        # The DDPM recipe (optimizer, EMA, clipping) so that only the objective and the
        # sampler differ; Euler steps on a uniform grid, NFE = sample_steps.
        defaults={**_TRAIN, "sampler": "euler", "sample_steps": None},
        summary="flow matching / rectified flow: regress the straight-path velocity x1 - x0 (Euler ODE sampling)",
        source="Lipman et al. 2023, arXiv:2210.02747, Eq. 23; Liu et al. 2023, arXiv:2209.03003, Eq. 1",
        search_space=_DIFFUSION_SPACE,
    ),
    "edm": DiffusionLoss(
        name="edm",
        objective="edm",
        # Table 1 of Karras et al. ("Ours"); sigma_data None = by data kind (SIGMA_DATA).
        defaults={**_TRAIN, "sampler": "heun", "sample_steps": None, "sigma_data": None, "p_mean": -1.2,
                  "p_std": 1.2, "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0},
        summary="EDM: preconditioned denoiser, log-normal sigma, lambda(sigma) weighting, Heun sampler",
        source="Karras et al. 2022, arXiv:2206.00364, Table 1, Algorithm 1",
        search_space=_DIFFUSION_SPACE,
    ),
}


SIGMA_DATA = {"vector": 1.0, "image": 0.5}
"""EDM's sigma_data by data kind: vectors are standardised per dimension (std 1); images in [-1, 1]
take Karras et al.'s 0.5 (Table 1)."""


def make_objective(loss: DiffusionLoss, hp: dict, *, kind: str, device: str | torch.device = "cpu"):
    """The objective a loss trains, built from its resolved hyperparameters ``hp``.

    ``eps`` / ``x0`` / ``v``: :class:`DiffusionObjective` on ``hp["schedule"]``
    with ``hp["T"]`` steps (on ``device``); ``flow``:
    :class:`FlowMatchingObjective`; ``edm``: :class:`EDMObjective` with
    ``hp["sigma_data"]`` (None: :data:`SIGMA_DATA` of ``kind``) and Table 1's
    other constants from ``hp``.

    Raises
    ------
    UserError
        Unknown objective, schedule, or EDM constants out of range.
    """
    if loss.objective in schedules.OBJECTIVES:
        schedule = schedules.get_schedule(hp["schedule"], hp["T"]).to(device)
        return DiffusionObjective(schedule, loss.objective)
    if loss.objective == "flow":
        return FlowMatchingObjective()
    if loss.objective == "edm":
        sd = hp.get("sigma_data")
        return EDMObjective(sigma_data=float(SIGMA_DATA[kind] if sd is None else sd), p_mean=float(hp["p_mean"]),
                            p_std=float(hp["p_std"]), sigma_min=float(hp["sigma_min"]),
                            sigma_max=float(hp["sigma_max"]), rho=float(hp["rho"]))
    raise unknown_choice("objective", loss.objective, (*schedules.OBJECTIVES, "flow", "edm"))


def get_diffusion_loss(name: str) -> DiffusionLoss:
    """The :class:`DiffusionLoss` registered under ``name``.

    Raises
    ------
    UserError
        If ``name`` is unknown; the message lists the valid names.
    """
    try:
        return DIFFUSION_LOSSES[base_name(name)]
    except (KeyError, TypeError):
        raise unknown_choice("loss", name, DIFFUSION_LOSSES) from None
