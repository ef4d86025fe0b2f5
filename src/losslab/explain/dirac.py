"""The Dirac-GAN: the closed-form toy that shows which GAN losses converge, for every loss of the registry.

Mescheder et al. 2018 ("Which Training Methods for GANs do actually Converge?",
arXiv:1801.04406, Sec. 2, section number unchecked): the data are a Dirac at 0, the generator a Dirac at
``theta``, the critic linear, ``D(x) = psi * x``. The unique equilibrium is
``(theta, psi) = (0, 0)``. Sign convention here: ``D`` is high on real data (as in
:mod:`losslab.losses.gan`), so ``psi`` is the paper's ``-psi``; the paper's field
``(-psi f'(psi theta), theta f'(psi theta))`` becomes
``(psi f'(-psi theta), -theta f'(-psi theta))``, with the same eigenvalues.

Everything is computed from the registry's own loss functions and penalties
with autograd, in float64: the critic's loss ``L_D(theta, psi)`` (with its
penalty: WGAN-GP's and DRAGAN's ``(||grad D|| - 1)^2``, R1, R2) and the
generator's ``L_G(theta, psi)`` are evaluated on a real batch ``x = 0`` and a fake
batch ``G = theta`` of one sample each, and

* :func:`vector_field` is ``v(theta, psi) = (-dL_G/dtheta, -dL_D/dpsi)`` (both players
  descend their own loss);
* :func:`analyse` is the Jacobian of ``v`` at the equilibrium
  (``torch.autograd.functional.jacobian``) and its eigenvalues, or, where the field
  jumps at ``psi = 0`` (the ``|psi|`` of WGAN-GP and DRAGAN), the one-sided Jacobians;
* :func:`simulate` is alternating gradient descent as losslab's step does it
  (``n_critic`` critic steps, weight clipping after each, then one generator step),
  with each player's step proportional to the loss's own learning rate.

A linear critic has ``grad_x D = psi`` everywhere, so the random points of the
WGAN-GP and DRAGAN penalties do not matter: every penalty is exact here.
Autoencoder critics (ebgan, began) have no linear form: :func:`applies` is false.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from losslab.errors import UserError
from losslab.losses.gan_registry import GAN_LOSSES
from losslab.losses.penalties import ZERO_CENTRED, dragan_penalty, gradient_penalty, squared_gradient_norm

DTYPE = torch.float64
DELTA = 1e-6  # the one-sided limits psi -> 0+ and 0-
MAX_STEP = 0.2  # the step of Mescheder et al.'s Dirac-GAN notebook (LMescheder/GAN_stability), the largest used
STEPS = 1000  # generator updates per simulated trajectory


def applies(name: str) -> bool:
    """True for a registered GAN loss with a one-value-per-sample critic (not ebgan, began).

    Raises
    ------
    UserError
        If ``name`` is not a GAN loss.
    """
    if name not in GAN_LOSSES:
        raise UserError(f"{name!r} is not a GAN loss: the Dirac-GAN needs one of {', '.join(GAN_LOSSES)}")
    return GAN_LOSSES[name].critic == "discriminator"


def _hp(name: str, hp: dict[str, Any] | None) -> dict[str, Any]:
    if not applies(name):
        raise UserError(f"{name}: its autoencoder critic has no linear form D(x) = psi x; the Dirac-GAN does not apply")
    return dict(GAN_LOSSES[name].defaults) if hp is None else hp


def losses(name: str, theta: Tensor, psi: Tensor, *, hp: dict[str, Any] | None = None,
           which: str = "both") -> tuple[Tensor | None, Tensor | None]:
    """The critic's and the generator's loss of the Dirac-GAN at ``(theta, psi)``, from the registry's functions.

    Parameters
    ----------
    name : str
        A GAN loss whose critic is a discriminator.
    theta, psi : Tensor, 0-dim, float64
        Generator position and critic slope (may require grad).
    hp : dict, optional
        Hyperparameters (default: the loss's own ``defaults``).
    which : str
        "both", "d" or "g": the other one is returned as None (a cheaper step).

    Returns
    -------
    (Tensor, Tensor)
        ``L_D`` (with the loss's penalties, weighted as the step weights them) and ``L_G``.
    """
    spec, hp = GAN_LOSSES[name], _hp(name, hp)

    def critic(x: Tensor) -> Tensor:  # D(x) = psi x, (N, 1) -> (N,)
        return psi * x.reshape(x.shape[0], -1)[:, 0]

    real = torch.zeros(1, 1, dtype=DTYPE)  # the data: a Dirac at 0
    fake = theta.reshape(1, 1)  # the generator: a Dirac at theta
    d_real, d_fake = critic(real), critic(fake)
    g_kw = {k: hp[k] for k in spec.g_hparams}
    if spec.g_needs_real:
        g_kw["d_real"] = d_real
    l_g = spec.g_loss(d_fake=d_fake, **g_kw) if which != "d" else None
    if which == "g":
        return None, l_g
    l_d = spec.d_loss(d_real=d_real, d_fake=d_fake, **{k: hp[k] for k in spec.d_hparams})
    # the penalty's random points do not matter for a linear critic: grad_x D = psi everywhere
    for p in (spec.penalty,) if isinstance(spec.penalty, str) else tuple(spec.penalty or ()):
        if p == "gp":
            l_d = l_d + hp["gp_lambda"] * gradient_penalty(critic, real, fake,
                                                           generator=torch.Generator().manual_seed(0))
        elif p == "dragan":
            l_d = l_d + hp["gp_lambda"] * dragan_penalty(critic, real, generator=torch.Generator().manual_seed(0),
                                                         c=hp["dragan_c"])
        elif p in ZERO_CENTRED and hp[f"{p}_gamma"]:
            on = real if ZERO_CENTRED[p] == "real" else fake
            l_d = l_d + hp[f"{p}_gamma"] / 2 * squared_gradient_norm(critic, on)
    return l_d, l_g


def _v(name: str, theta: Tensor, psi: Tensor, hp: dict[str, Any], create_graph: bool) -> Tensor:
    """``(-dL_G/dtheta, -dL_D/dpsi)`` as a (2,) tensor; theta and psi must require grad."""
    l_d, l_g = losses(name, theta, psi, hp=hp)
    (g_theta,) = torch.autograd.grad(l_g, theta, create_graph=create_graph, retain_graph=True)
    (g_psi,) = torch.autograd.grad(l_d, psi, create_graph=create_graph)
    return -torch.stack([g_theta, g_psi])


def _v_one(name: str, theta: float, psi: float, hp: dict[str, Any], i: int) -> float:
    """Component ``i`` of the field (0: ``-dL_G/dtheta``, 1: ``-dL_D/dpsi``), one gradient only."""
    a, b = _leaf(theta), _leaf(psi)
    l_d, l_g = losses(name, a, b, hp=hp, which="g" if i == 0 else "d")
    (g,) = torch.autograd.grad(l_g, a) if i == 0 else torch.autograd.grad(l_d, b)
    return -float(g)


def _leaf(x: float) -> Tensor:
    return torch.tensor(float(x), dtype=DTYPE, requires_grad=True)


def vector_field(name: str, theta, psi, *, hp: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The gradient vector field ``v = (-dL_G/dtheta, -dL_D/dpsi)`` at each point of ``theta``, ``psi``.

    Parameters
    ----------
    name : str
        A GAN loss with a discriminator critic.
    theta, psi : array_like, same shape
        Points of the (theta, psi) plane.
    hp : dict, optional
        Hyperparameters (default: the loss's own).

    Returns
    -------
    (ndarray, ndarray)
        ``v_theta`` and ``v_psi``, each of the input's shape (float64). Weight clipping
        (wgan) is a projection after the step, not part of the field.

    Raises
    ------
    UserError
        If the Dirac-GAN does not apply to ``name``.
    """
    hp = _hp(name, hp)
    th, ps = np.broadcast_arrays(np.asarray(theta, dtype=float), np.asarray(psi, dtype=float))
    out = np.array([_v(name, _leaf(a), _leaf(b), hp, False).detach().numpy() for a, b in zip(th.ravel(), ps.ravel())])
    return out[:, 0].reshape(th.shape), out[:, 1].reshape(th.shape)


def jacobian(name: str, theta: float = 0.0, psi: float = 0.0, *, hp: dict[str, Any] | None = None) -> np.ndarray:
    """The Jacobian ``dv/d(theta, psi)`` at a point, (2, 2): row i is ``v_i``, column j the variable j.

    Computed with ``torch.autograd.functional.jacobian`` through the autograd field.
    """
    hp = _hp(name, hp)
    th, ps = torch.tensor(float(theta), dtype=DTYPE), torch.tensor(float(psi), dtype=DTYPE)
    j_th, j_ps = torch.autograd.functional.jacobian(lambda a, b: _v(name, a, b, hp, True), (th, ps))
    return torch.stack([j_th, j_ps], dim=1).numpy()


@dataclass(frozen=True)
class Analysis:
    """What the linearisation at the equilibrium (0, 0) says.

    Attributes
    ----------
    name : str
    eigenvalues : tuple of complex
        Of the Jacobian at (0, 0), or, where the field jumps there, of the one-sided
        Jacobian at ``psi = 0+`` (then ``eigenvalues_minus`` holds ``psi = 0-``'s).
    eigenvalues_minus : tuple of complex or None
    jump : float
        ``max ||v(0, +-DELTA)||``: 0 for a field continuous at the equilibrium.
    verdict : str
        "converges" | "circles" | "diverges" | "undecided" (zero eigenvalues) |
        "jumps" (no Jacobian: the field is discontinuous at the equilibrium).
    """

    name: str
    eigenvalues: tuple[complex, complex]
    eigenvalues_minus: tuple[complex, complex] | None
    jump: float
    verdict: str

    def eigen_text(self) -> str:
        """The eigenvalues in words, e.g. ``-0.025, -9.975`` or ``0 +- 0.5i``."""
        def fmt(ev) -> str:
            a, b = sorted(ev, key=lambda z: (z.imag, z.real))
            if abs(a.imag) > 1e-9:
                return f"{_num(a.real)} +- {_num(abs(a.imag))}i"
            return f"{_num(a.real)}, {_num(b.real)}"
        if self.eigenvalues_minus is None:
            return fmt(self.eigenvalues)
        return f"psi -> 0+: {fmt(self.eigenvalues)}; psi -> 0-: {fmt(self.eigenvalues_minus)}"


def _num(x: float) -> str:
    x = 0.0 if abs(x) < 1e-9 else x
    return f"{x:.4g}"


def _eig(j: np.ndarray) -> tuple[complex, complex]:
    ev = np.linalg.eigvals(j)
    return complex(ev[0]), complex(ev[1])


def analyse(name: str, *, hp: dict[str, Any] | None = None) -> Analysis:
    """The Jacobian's eigenvalues at the equilibrium (0, 0) and what they predict (locally, small steps).

    Rules: the field jumps at ``psi = 0`` (``jump > 1e-3``) -> "jumps"; every eigenvalue
    with real part < -1e-9 -> "converges"; one > 1e-9 -> "diverges"; both zero ->
    "undecided"; else (purely imaginary) -> "circles".

    Raises
    ------
    UserError
        If the Dirac-GAN does not apply to ``name``.
    """
    if hp is None:
        return _analyse_own(name)
    return _analyse(name, hp)


@lru_cache(maxsize=None)
def _analyse_own(name: str) -> Analysis:
    """:func:`analyse` with the loss's own hyperparameters, computed once per process."""
    return _analyse(name, _hp(name, None))


def _analyse(name: str, hp: dict[str, Any]) -> Analysis:
    jump = max(float(np.hypot(*vector_field(name, 0.0, s, hp=hp))) for s in (DELTA, -DELTA))
    if jump > 1e-3:
        return Analysis(name, _eig(jacobian(name, 0.0, DELTA, hp=hp)), _eig(jacobian(name, 0.0, -DELTA, hp=hp)),
                        jump, "jumps")
    ev = _eig(jacobian(name, hp=hp))
    re = max(z.real for z in ev)
    if re < -1e-9:
        verdict = "converges"
    elif re > 1e-9:
        verdict = "diverges"
    elif max(abs(z) for z in ev) < 1e-9:
        verdict = "undecided"
    else:
        verdict = "circles"
    return Analysis(name, ev, None, jump, verdict)


def _spectral_radius(a: Analysis) -> float:
    return max(abs(z) for z in a.eigenvalues + (a.eigenvalues_minus or ()))


def simulate(name: str, *, theta0: float = 1.0, psi0: float = 1.0, steps: int | None = None,
             hp: dict[str, Any] | None = None) -> dict[str, Any]:
    """Alternating gradient descent on the Dirac-GAN, as losslab's step trains.

    Each generator update is ``n_critic`` critic steps ``psi -= h_d dL_D/dpsi`` (each
    followed by weight clipping ``psi = clip(psi, -c, c)`` for wgan), then one generator
    step ``theta -= h_g dL_G/dtheta`` on the updated critic (the paper's alternating
    gradient descent, Fig. 3, with the critic first). The steps keep the loss's own
    learning rates' ratio: ``h_g = s lr_g``, ``h_d = s lr_d``, with one time-lapse factor
    ``s`` so that the larger step is ``min(0.2, 1 / rho)``, ``rho`` the spectral radius
    of the Jacobian at the equilibrium (0.2 is the step of the paper's notebook; the
    bound keeps a stiff penalty's step stable: ``h rho <= 1``). Plain gradient descent, as in the paper,
    not the loss's Adam or RMSprop.

    Parameters
    ----------
    name : str
        A GAN loss with a discriminator critic.
    theta0, psi0 : float
        Start (the paper's notebook starts at (1, 1)).
    steps : int, optional
        Generator updates (default :data:`STEPS`).
    hp : dict, optional
        Hyperparameters (default: the loss's own).

    Returns
    -------
    dict
        ``theta``, ``psi``: (steps + 1,) arrays after each generator update;
        ``h_g``, ``h_d``, ``n_critic``, ``scale`` (s), ``time`` (steps * h_g);
        ``verdict`` (:func:`trajectory_verdict`) and ``distance`` (start, end).
    """
    steps = STEPS if steps is None else steps
    if hp is None:
        return dict(_simulate_own(name, float(theta0), float(psi0), int(steps)))
    return _simulate(name, float(theta0), float(psi0), int(steps), hp)


@lru_cache(maxsize=32)
def _simulate_own(name: str, theta0: float, psi0: float, steps: int) -> dict[str, Any]:
    """:func:`simulate` with the loss's own hyperparameters, computed once per process (arrays read-only)."""
    out = _simulate(name, theta0, psi0, steps, _hp(name, None))
    out["theta"].flags.writeable = out["psi"].flags.writeable = False
    return out


def _simulate(name: str, theta0: float, psi0: float, steps: int, hp: dict[str, Any]) -> dict[str, Any]:
    spec = GAN_LOSSES[name]
    rho = max(_spectral_radius(analyse(name, hp=hp)), 1e-12)
    scale = min(MAX_STEP, 1.0 / rho) / max(hp["lr_g"], hp["lr_d"])
    h_g, h_d, n_critic = scale * hp["lr_g"], scale * hp["lr_d"], int(hp["n_critic"])
    theta, psi = float(theta0), float(psi0)
    thetas, psis = [theta], [psi]
    for _ in range(steps):
        for _ in range(n_critic):
            psi += h_d * _v_one(name, theta, psi, hp, 1)
            if spec.clip:
                psi = min(max(psi, -hp["clip"]), hp["clip"])
        theta += h_g * _v_one(name, theta, psi, hp, 0)
        thetas.append(theta)
        psis.append(psi)
        if not (math.isfinite(theta) and math.isfinite(psi)) or abs(theta) + abs(psi) > 1e6:
            break
    th, ps = np.array(thetas), np.array(psis)
    return {"theta": th, "psi": ps, "h_g": h_g, "h_d": h_d, "n_critic": n_critic, "scale": scale,
            "time": (len(th) - 1) * h_g, "verdict": trajectory_verdict(th, ps),
            "distance": (float(np.hypot(th[0], ps[0])), float(np.hypot(th[-1], ps[-1])))}


def trajectory_verdict(theta: np.ndarray, psi: np.ndarray) -> str:
    """"diverges" | "converges" | "creeps" | "stalls" | "circles" from a trajectory's distance ``d`` to (0, 0).

    Non-finite, or ``d_end > 2 d_0``: diverges. ``d_end < 1e-3 d_0``: converges. The last 10% of
    the updates moved less than ``1e-3 d_0``: stalls (stopped away from the equilibrium).
    ``d_end < 0.2 d_0``: converges if the second half shrank ``d`` at least twofold
    (``d_end < 0.5 d_mid``, as exponential convergence does), creeps (towards it, slower
    than exponentially) if it shrank by more than 5%, else circles on a small orbit.
    Otherwise circles.
    """
    d = np.hypot(theta, psi)
    if not np.all(np.isfinite(d)) or d[-1] > 2 * d[0]:
        return "diverges"
    if d[-1] < 1e-3 * d[0]:
        return "converges"
    tail = max(len(d) // 10, 1)
    if np.hypot(np.diff(theta[-tail - 1:]), np.diff(psi[-tail - 1:])).sum() < 1e-3 * d[0]:
        return "stalls"
    if d[-1] < 0.2 * d[0]:
        ratio = d[-1] / max(d[len(d) // 2], 1e-300)
        return "converges" if ratio < 0.5 else "creeps" if ratio < 0.95 else "circles"
    return "circles"


__all__ = ["Analysis", "analyse", "applies", "jacobian", "losses", "simulate", "trajectory_verdict", "vector_field"]
