"""Step functions: one update of a model family, spelled out in the paper's order.

The loop (:mod:`losslab.train.loop`) knows nothing about GANs; it calls a
family's ``step`` function. :func:`adversarial_step` is Algorithm 1 of the
WGAN paper (Arjovsky et al. 2017, arXiv:1701.07875) generalised over losses:

1. ``n_critic`` critic updates, each on a fresh real batch and fresh z, with
   the loss's gradient penalty (WGAN-GP, DRAGAN) and weight clipping (WGAN);
2. one generator update;
3. for BEGAN, the equilibrium variable k_t update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from losslab.losses import GANLoss
from losslab.losses.gan import reconstruction_energy
from losslab.losses.penalties import (
    BEGANEquilibrium,
    clip_weights_,
    dragan_penalty,
    gradient_penalty,
    pulling_away_term,
)


class Diverged(RuntimeError):
    """A loss or a parameter became NaN/inf at generator update ``step``."""

    def __init__(self, step: int, what: str):
        super().__init__(f"{what} is not finite at generator update {step}")
        self.step = step


@dataclass
class GANState:
    """Everything a GAN run carries between steps (and saves in a checkpoint)."""

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    loss: GANLoss
    hp: dict[str, Any]
    rng: torch.Generator
    z_dim: int
    began: BEGANEquilibrium | None = None
    g_updates: int = 0
    d_updates: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def make_optimizer(params, hp: dict[str, Any], lr: float) -> torch.optim.Optimizer:
    """Adam (with the loss's betas) or RMSprop (WGAN, Arjovsky et al. 2017, Sec. 4)."""
    if hp["optimizer"] == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, foreach=True)
    return torch.optim.Adam(params, lr=lr, betas=tuple(hp.get("betas", (0.5, 0.999))), foreach=True)


def grad_stats(module: nn.Module) -> tuple[float, float]:
    """L2 norm and mean over all parameter gradients of ``module`` (0, 0 if none).

    The norm is the global one, sqrt(sum_i ||g_i||^2); the mean is
    sum of all entries / number of entries. Together they diagnose vanishing
    gradients: a norm that falls by orders of magnitude while D wins.
    """
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return 0.0, 0.0
    norms = torch.stack([torch.linalg.vector_norm(g.detach()) for g in grads])
    total = sum(g.detach().sum() for g in grads)
    count = sum(g.numel() for g in grads)
    return float(torch.linalg.vector_norm(norms)), float(total) / count


def _critic_outputs(state: GANState, x: Tensor) -> tuple[Tensor, Tensor | None]:
    """Per-sample critic output (N,) and, for autoencoder critics, the code (N, c).

    Autoencoder critics (EBGAN, BEGAN) output an energy: the per-sample
    reconstruction error |x - D(x)|^p, p = 2 (EBGAN) or 1 (BEGAN).
    """
    if state.loss.critic == "autoencoder":
        recon, code = state.D(x)
        return reconstruction_energy(x, recon, state.hp["energy"]), code
    return state.D(x).reshape(-1), None


def _d_loss(state: GANState, out_real: Tensor, out_fake: Tensor) -> Tensor:
    name, hp = state.loss.name, state.hp
    if name == "ebgan":
        return state.loss.d_loss(e_real=out_real, e_fake=out_fake, margin=hp["margin"])
    if name == "began":
        return state.loss.d_loss(e_real=out_real, e_fake=out_fake, k=state.began.k)
    return state.loss.d_loss(d_real=out_real, d_fake=out_fake)


def _g_loss(state: GANState, out_fake: Tensor, code_fake: Tensor | None) -> Tensor:
    name, hp = state.loss.name, state.hp
    if name == "ebgan":
        return state.loss.g_loss(e_fake=out_fake, code_fake=code_fake, pt_weight=hp["pt_weight"])
    if name == "began":
        return state.loss.g_loss(e_fake=out_fake)
    return state.loss.g_loss(d_fake=out_fake)


def _accuracy(output: str, real: Tensor, fake: Tensor) -> float:
    """Real-vs-fake accuracy of the critic at its natural threshold.

    logits: 0; LSGAN scores (targets 0/1): 0.5; critic values and energies have
    no fixed threshold, so the midpoint of the two batch means is used (for
    energies, low means real).
    """
    if output == "logit":
        thr = 0.0
    elif output == "score":
        thr = 0.5
    else:
        thr = float(real.mean() + fake.mean()) / 2
    if output == "energy":
        correct = (real < thr).float().sum() + (fake >= thr).float().sum()
    else:
        correct = (real > thr).float().sum() + (fake <= thr).float().sum()
    return float(correct) / (real.numel() + fake.numel())


def _check_finite(value: Tensor, what: str, step: int) -> None:
    if not bool(torch.isfinite(value)):
        raise Diverged(step, what)


def adversarial_step(state: GANState, data, batch_size: int, *, record: bool = False) -> dict[str, float]:
    """One generator update preceded by ``n_critic`` critic updates.

    Args:
        state: the run's :class:`GANState` (modified in place).
        data: a :class:`losslab.data.Dataset` (``sample(n, generator)``).
        batch_size: samples per batch for both players.
        record: compute the diagnostics (gradient norms, accuracies); off on
            steps that are not logged, to save time.

    Returns:
        Diagnostics of this step (empty unless ``record``): see
        docs/ARCHITECTURE.md for the keys.

    Raises:
        Diverged: a loss became NaN/inf.
    """
    G, D, hp, loss = state.G, state.D, state.hp, state.loss
    step = state.g_updates + 1
    G.train()
    D.train()
    log: dict[str, float] = {}

    # 1. Critic: n_critic updates (Arjovsky et al. 2017, Algorithm 1, lines 2-8).
    for _ in range(hp["n_critic"]):
        x = data.sample(batch_size, state.rng)
        z = torch.randn(batch_size, state.z_dim, generator=state.rng)
        with torch.no_grad():
            x_fake = G(z)
        out_real, _ = _critic_outputs(state, x)
        out_fake, _ = _critic_outputs(state, x_fake)
        d_loss = _d_loss(state, out_real, out_fake)
        penalty = None
        if loss.penalty == "gp":  # Gulrajani et al. 2017, Eq. 3 / Algorithm 1, lines 6-7
            penalty = gradient_penalty(D, x, x_fake, generator=state.rng)
        elif loss.penalty == "dragan":  # Kodali et al. 2017, Sec. 4 and their reference code
            penalty = dragan_penalty(D, x, generator=state.rng, c=hp["dragan_c"])
        total = d_loss if penalty is None else d_loss + hp["gp_lambda"] * penalty
        _check_finite(total, "critic loss", step)
        state.opt_d.zero_grad(set_to_none=True)
        total.backward()
        state.opt_d.step()
        if loss.clip:  # Algorithm 1, line 7: w <- clip(w, -c, c)
            clip_weights_(D, hp["clip"])
        state.d_updates += 1

    if record:
        d_norm, d_mean = grad_stats(D)
        log.update(d_loss=float(d_loss.detach()), d_grad_norm=d_norm, d_grad_mean=d_mean)
        if penalty is not None:
            log["penalty"] = float(penalty.detach())
        r, f = out_real.detach(), out_fake.detach()
        log.update(d_real=float(r.mean()), d_fake=float(f.mean()), d_acc=_accuracy(loss.output, r, f))
        if loss.output == "logit":
            log.update(p_real=float(torch.sigmoid(r).mean()), p_fake=float(torch.sigmoid(f).mean()))
        if loss.output == "critic":
            log["w_estimate"] = float(r.mean() - f.mean())  # the critic's W1 estimate

    # 2. Generator: one update (Algorithm 1, lines 9-11).
    z = torch.randn(batch_size, state.z_dim, generator=state.rng)
    x_fake = G(z)
    out_fake, code_fake = _critic_outputs(state, x_fake)
    g_loss = _g_loss(state, out_fake, code_fake)
    _check_finite(g_loss, "generator loss", step)
    state.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    if record:
        g_norm, g_mean = grad_stats(G)
        log.update(g_loss=float(g_loss.detach()), g_grad_norm=g_norm, g_grad_mean=g_mean)
    state.opt_g.step()
    state.g_updates += 1

    # 3. BEGAN: k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1)
    #    (Berthelot et al. 2017, Sec. 3.4), on this step's energies.
    if state.began is not None:
        e_real, e_fake = float(out_real.detach().mean()), float(out_fake.detach().mean())
        state.began.update(e_real, e_fake)
        if record:
            log.update(k=state.began.k, m_global=state.began.convergence(e_real, e_fake))
    return log
