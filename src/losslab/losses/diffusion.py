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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from losslab import schedules
from losslab.errors import unknown_choice

__all__ = ["DIFFUSION_LOSSES", "DiffusionLoss", "DiffusionObjective", "get_diffusion_loss"]


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


@dataclass(frozen=True)
class DiffusionLoss:
    """One diffusion objective as a comparable "loss" of losslab.

    Attributes
    ----------
    name : str
        CLI name (the key in :data:`DIFFUSION_LOSSES`).
    objective : {"eps", "x0", "v"}
        Network parametrisation and regression target.
    defaults : dict
        ``optimizer`` ("adam"), ``lr``, ``betas``, ``grad_clip`` (max global
        gradient norm), ``ema`` (decay of the weight average used for sampling,
        0 = none), ``schedule`` ("linear" | "cosine"), ``T``, ``sampler``
        ("ddim" | "ddpm"), ``sample_steps`` (network evaluations per sample;
        ``None`` = by data kind, see :mod:`losslab.train.diffusion`), ``eta``.
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
_HO = {
    "optimizer": "adam",
    "lr": 2e-4,
    "betas": (0.9, 0.999),
    "grad_clip": 1.0,
    "ema": 0.995,
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
}


def get_diffusion_loss(name: str) -> DiffusionLoss:
    """The :class:`DiffusionLoss` registered under ``name``.

    Raises
    ------
    UserError
        If ``name`` is unknown; the message lists the valid names.
    """
    try:
        return DIFFUSION_LOSSES[name]
    except (KeyError, TypeError):
        raise unknown_choice("loss", name, DIFFUSION_LOSSES) from None
