"""The GAN model family: its state, its unrolled step, its hyperparameters.

The loop (:mod:`losslab.train.loop`) knows nothing about GANs; it calls this
module through the :class:`~losslab.train.loop.Family` protocol.
:func:`step` is Algorithm 1 of the WGAN paper (Arjovsky et al. 2017,
arXiv:1701.07875) generalised over losses:

1. ``n_critic`` critic updates, each on a fresh real batch and fresh z, with
   the loss's gradient penalty (WGAN-GP, DRAGAN), its zero-centred penalties
   (R1 on the real batch, R2 on the fake one, weighted ``gamma / 2``) and weight
   clipping (WGAN);
2. one generator update on fresh z (and, for a relativistic loss, a fresh real batch);
3. with BEGAN's equilibrium, the k_t update from this step's energies.

What a loss needs is read from its declaration (:class:`~losslab.losses.GANLoss`:
``output``, ``critic``, ``penalty``, ``clip``, ``d_hparams``, ``g_hparams``,
``g_takes_code``, ``equilibrium``, ``g_needs_real``, ``grad_penalties``), never from its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from losslab.config import Config, loss_keys, loss_hparams
from losslab.losses import GAN_LOSSES, GANLoss, get_gan_loss
from losslab.losses.gan import reconstruction_energy
from losslab.losses.penalties import (
    ZERO_CENTRED,
    BEGANEquilibrium,
    clip_weights_,
    dragan_penalty,
    gradient_penalty,
    pulling_away_term,
    squared_gradient_norm,
)
from losslab.models import build_gan
from losslab.train.common import (
    Diverged,
    autocast,
    first_nonfinite,
    grad_stats,
    load_state,
    make_optimizer,
    on_device,
    resolve_device,
    save_state,
    seeded_generator,
)
from losslab.train.snapshot import draws_grid, grid_points, samples_snapshot

NAME = "gan"

KEYS: frozenset[str] = frozenset(
    {"model.z_dim", "model.hidden", "model.layers", "model.code_dim", "train.n_eval"}
    | set().union(*(loss_keys(loss.defaults) for loss in GAN_LOSSES.values()))
)
"""The config keys this family reads besides the loop's (see :data:`losslab.train.loop.LOOP_KEYS`)."""

evaluate = None  # measured on its samples (losslab.metrics), not by the family
artifacts = None  # no family-specific run file


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
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"
    g_updates: int = 0
    d_updates: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def hparams(loss: GANLoss, cfg: Config, dataset=None) -> dict[str, Any]:
    """The loss's ``defaults`` overridden by the ``loss.*`` keys it has (:func:`losslab.config.loss_hparams`)."""
    return loss_hparams(loss.defaults, cfg.loss)


def init_state(cfg: Config, dataset, loss_name: str, seed: int) -> GANState:
    """Networks, optimizers and RNG of one (loss, seed) run.

    The seed fixes the initial weights (``torch.manual_seed``, built on the CPU
    and then moved, so they are the same on every device) and the stream of
    data batches and latent codes (:func:`~losslab.train.common.seeded_generator`,
    a generator on ``cfg.train.device``).

    Raises:
        UserError: unknown loss; BEGAN hyperparameters out of range; a device
            this machine does not have.
    """
    device = resolve_device(getattr(cfg.train, "device", "cpu"))
    loss = get_gan_loss(loss_name)
    hp = hparams(loss, cfg, dataset)
    torch.manual_seed(seed)
    G, D = build_gan(
        tuple(dataset.shape),
        critic=loss.critic,
        z_dim=cfg.model.z_dim,
        hidden=cfg.model.hidden,
        layers=cfg.model.layers,
        critic_norm=hp.get("critic_norm", "none"),
        code_dim=cfg.model.code_dim,
        arch=cfg.model.arch,
    )
    G, D = G.to(device), D.to(device)
    rng = seeded_generator(seed, device)
    began = BEGANEquilibrium(gamma=hp["gamma"], lambda_k=hp["lambda_k"]) if loss.equilibrium else None
    return GANState(
        G=G,
        D=D,
        opt_g=make_optimizer(G.parameters(), hp, hp["lr_g"]),
        opt_d=make_optimizer(D.parameters(), hp, hp["lr_d"]),
        loss=loss,
        hp=hp,
        rng=rng,
        z_dim=cfg.model.z_dim,
        began=began,
        device=device,
        precision=getattr(cfg.train, "precision", None) or "fp32",
    )


# ----------------------------------------------------------------------------- the critic


def critic_outputs(state: GANState, x: Tensor) -> tuple[Tensor, Tensor | None]:
    """Per-sample critic output ``(N,)`` and, for autoencoder critics, the code ``(N, c)``.

    Discriminators return logits, scores or critic values (``loss.output``);
    autoencoder critics (EBGAN, BEGAN) an energy, the per-sample
    reconstruction error ``mean |x - D(x)|^p`` with p from ``hp["energy"]``
    (:func:`~losslab.losses.gan.reconstruction_energy`).
    """
    if state.loss.critic == "autoencoder":
        recon, code = state.D(x)
        return reconstruction_energy(x, recon.float(), state.hp["energy"]), code
    return state.D(x).reshape(-1).float(), None


def critic_accuracy(output: str, real: Tensor, fake: Tensor) -> float:
    """Real-vs-fake accuracy of the critic at its natural threshold, in [0, 1].

    Args:
        output: ``GANLoss.output``: "logit" (threshold 0), "score" (LSGAN's 0/1
            targets: 0.5), "critic" or "energy" (no fixed threshold: the midpoint
            of the two batch means; for energies, low means real).
        real, fake: ``(N,)`` and ``(M,)`` critic outputs.
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


@torch.no_grad()
def critic_metrics(state: GANState, real: Tensor, fake: Tensor, *, chunk_size: int = 1000) -> dict[str, float]:
    """The trained critic on held-out real and generated samples, in eval mode.

    Args:
        state: a restored :class:`GANState`.
        real: ``(N, *shape)`` held-out real samples.
        fake: ``(M, *shape)`` generated samples.
        chunk_size: rows per critic pass.

    Returns:
        ``d_accuracy`` (:func:`critic_accuracy`; 0.5: the critic is fooled),
        ``d_real_mean``, ``d_fake_mean`` (mean critic outputs: logits, scores,
        critic values or energies).
    """
    was_training = state.D.training
    state.D.eval()
    try:
        r = torch.cat([critic_outputs(state, c)[0].reshape(-1) for c in real.split(chunk_size)])
        f = torch.cat([critic_outputs(state, c)[0].reshape(-1) for c in fake.split(chunk_size)])
    finally:
        state.D.train(was_training)
    return {"d_accuracy": critic_accuracy(state.loss.output, r, f), "d_real_mean": float(r.mean()),
            "d_fake_mean": float(f.mean())}


def model_metrics(state: GANState, dataset, samples: Tensor, *, n: int, seed: int) -> dict[str, float]:
    """:func:`critic_metrics` on ``n`` reference rows of ``dataset`` (drawn with ``seed``) vs ``samples[:n]``."""
    real = dataset.reference(n, torch.Generator().manual_seed(seed))
    return critic_metrics(state, real.to(state.device), samples[:n].float().to(state.device))


# ----------------------------------------------------------------------------- the step


def _d_loss(state: GANState, out_real: Tensor, out_fake: Tensor) -> Tensor:
    loss = state.loss
    kw = {k: state.hp[k] for k in loss.d_hparams}
    if loss.equilibrium:
        kw["k"] = state.began.k
    if loss.output == "energy":
        return loss.d_loss(e_real=out_real, e_fake=out_fake, **kw)
    return loss.d_loss(d_real=out_real, d_fake=out_fake, **kw)


def _g_loss(state: GANState, out_fake: Tensor, code_fake: Tensor | None, out_real: Tensor | None = None) -> Tensor:
    loss = state.loss
    kw = {k: state.hp[k] for k in loss.g_hparams}
    if loss.g_takes_code:
        kw["code_fake"] = code_fake
    if loss.g_needs_real:  # relativistic pairing: G compares its fakes with real samples
        kw["d_real"] = out_real
    if loss.output == "energy":
        return loss.g_loss(e_fake=out_fake, **kw)
    return loss.g_loss(d_fake=out_fake, **kw)


def _draw_z(state: GANState, n: int) -> Tensor:
    """``n`` latent codes ``(n, z_dim)`` from the run's stream, on its device."""
    if state.device.type == "cpu":
        return torch.randn(n, state.z_dim, generator=state.rng)
    return torch.randn(n, state.z_dim, generator=state.rng, device=state.device)


def step(state: GANState, data, batch_size: int, *, record: bool = False) -> dict[str, float]:
    """One generator update preceded by ``n_critic`` critic updates.

    No wasted work: D's weights take no gradient in the generator update (the
    generator's gradients are the same: d g_loss / d theta_G does not depend
    on whether autograd also accumulates d g_loss / d theta_D); the losses are
    checked for NaN/inf once per generator update (one host synchronisation),
    not after every critic step; diagnostics are computed only when ``record``.

    Args:
        state: the run's :class:`GANState` (modified in place).
        data: a :class:`losslab.data.Dataset` (``sample(n, generator)``); moved
            to ``state.device`` when that is not the CPU.
        batch_size: samples per batch for both players.
        record: compute the diagnostics (gradient norms, accuracies); off on
            steps that are not logged, to save time.

    Returns:
        Diagnostics of this step (empty unless ``record``): see
        docs/ARCHITECTURE.md for the keys.

    Raises:
        Diverged: a loss became NaN/inf in this generator update; ``step`` is
            this update's number, ``d_updates`` counts the critic updates before
            the first non-finite loss (as if the run had stopped there).
    """
    G, D, hp, loss = state.G, state.D, state.hp, state.loss
    data = on_device(data, state.device)
    step_no = state.g_updates + 1
    d_updates0 = state.d_updates
    G.train()
    D.train()
    log: dict[str, float] = {}
    totals: list[Tensor] = []  # every loss of this update, checked once at the end

    # 1. Critic: n_critic updates (Arjovsky et al. 2017, Algorithm 1, lines 2-8).
    for _ in range(hp["n_critic"]):
        x = data.sample(batch_size, state.rng)
        z = _draw_z(state, batch_size)
        with autocast(state.device, state.precision):
            with torch.no_grad():
                x_fake = G(z).float()
            out_real, _ = critic_outputs(state, x)
            out_fake, _ = critic_outputs(state, x_fake)
        d_loss = _d_loss(state, out_real, out_fake)
        penalty = None
        if loss.penalty == "gp":  # Gulrajani et al. 2017, Eq. 3 / Algorithm 1, lines 6-7
            penalty = gradient_penalty(D, x, x_fake, generator=state.rng)
        elif loss.penalty == "dragan":  # Kodali et al. 2017, Sec. 4 and their reference code
            penalty = dragan_penalty(D, x, generator=state.rng, c=hp["dragan_c"])
        total = d_loss if penalty is None else d_loss + hp["gp_lambda"] * penalty
        for p in loss.grad_penalties:  # Mescheder et al. 2018, Sec. 4.1: gamma/2 E||grad D||^2, R1 real, R2 fake
            if hp[f"{p}_gamma"]:
                on = x if ZERO_CENTRED[p] == "real" else x_fake
                total = total + hp[f"{p}_gamma"] / 2 * squared_gradient_norm(lambda v: critic_outputs(state, v)[0], on)
        totals.append(total.detach())
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
        log.update(d_real=float(r.mean()), d_fake=float(f.mean()), d_acc=critic_accuracy(loss.output, r, f))
        if loss.output == "logit":
            log.update(p_real=float(torch.sigmoid(r).mean()), p_fake=float(torch.sigmoid(f).mean()))
        if loss.output == "critic":
            log["w_estimate"] = float(r.mean() - f.mean())  # the critic's W1 estimate
        if loss.output == "energy" and "margin" in hp:  # EBGAN: share of fakes the hinge ignores
            log["above_margin"] = float((f >= hp["margin"]).float().mean())
        if loss.clip:  # WGAN: share of critic weights at the bound +-c
            w = torch.cat([p.detach().abs().flatten() for p in D.parameters()])
            log["clip_share"] = float((w >= hp["clip"] * (1 - 1e-6)).float().mean())

    # 2. Generator: one update on fresh z (Algorithm 1, lines 9-11); D is a
    #    fixed function here, so its weights take no gradient.
    z = _draw_z(state, batch_size)
    out_real_g = None
    if loss.g_needs_real:  # a fresh real batch, paired with the fakes (RpGAN); no gradient flows through it
        x_real = data.sample(batch_size, state.rng)
        with torch.no_grad(), autocast(state.device, state.precision):
            out_real_g = critic_outputs(state, x_real)[0]
    D.requires_grad_(False)
    try:
        with autocast(state.device, state.precision):
            x_fake = G(z).float()
            out_fake, code_fake = critic_outputs(state, x_fake)
        g_loss = _g_loss(state, out_fake, code_fake, out_real_g)
        totals.append(g_loss.detach())
        state.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
    finally:
        D.requires_grad_(True)
    bad = first_nonfinite(totals)
    if bad is not None:
        n_critic = len(totals) - 1
        state.d_updates = d_updates0 + min(bad, n_critic)
        raise Diverged(step_no, "critic loss" if bad < n_critic else "generator loss")
    if record:
        g_norm, g_mean = grad_stats(G)
        log.update(g_loss=float(g_loss.detach()), g_grad_norm=g_norm, g_grad_mean=g_mean)
        if loss.g_takes_code and code_fake is not None:  # EBGAN-PT: pulling-away term of this batch's codes
            log["pt"] = float(pulling_away_term(code_fake.detach()))
    state.opt_g.step()
    state.g_updates += 1

    # 3. BEGAN: k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1)
    #    (Berthelot et al. 2017, Sec. 3.4), on this step's energies.
    if state.began is not None:
        e_real, e_fake = float(out_real.detach().mean()), float(out_fake.detach().mean())
        state.began.update(e_real, e_fake)
        if record:
            log.update(k=state.began.k, m_global=state.began.convergence(e_real, e_fake))
    return log


# ----------------------------------------------------------------------------- sampling, checkpoint


def nfe(state: GANState) -> int:
    """Network evaluations per generated sample: one generator pass."""
    return 1


@torch.no_grad()
def sample(state: GANState, n: int, *, seed: int = 0, batch: int = 1000) -> torch.Tensor:
    """``n`` generated samples (n, *shape) on the CPU, generator in eval mode, latent codes from ``seed``.

    The latent codes come from a CPU generator (then moved), so a trained model
    gives the same samples whatever device it runs on, up to float rounding.
    """
    state.G.eval()
    g = torch.Generator().manual_seed(seed)
    out = [state.G(torch.randn(min(batch, n - i), state.z_dim, generator=g).to(state.device)).float().cpu()
           for i in range(0, n, batch)]
    state.G.train()
    return torch.cat(out)


def _parts(state: GANState):
    return {"G": state.G, "D": state.D}, {"opt_g": state.opt_g, "opt_d": state.opt_d}


def state_dict(state: GANState) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors for safetensors, JSON metadata) that restore the run exactly (BEGAN: ``began_k``)."""
    modules, opts = _parts(state)
    return save_state(state, modules, opts, meta={"began_k": state.began.k if state.began is not None else None})


def load_state_dict(state: GANState, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore what :func:`state_dict` saved into a state built by :func:`init_state`."""
    modules, opts = _parts(state)
    load_state(state, modules, opts, tensors, meta)
    if state.began is not None and meta.get("began_k") is not None:
        state.began.k = float(meta["began_k"])


# ----------------------------------------------------------------------------- snapshots (the pictures of learning)


def snapshot(state: GANState, dataset, *, seed: int) -> dict[str, Any]:
    """The model now, for the report's "How each loss learned" (:mod:`losslab.train.snapshot`).

    Besides the samples-only keys (``images`` / ``fake``, ``real``, the grid):

    - ``critic``: the critic's raw output (``loss.output``: logits, scores,
      critic values or energies) on the grid: ``(GRID_1D,)`` in 1-D (the
      panel of Goodfellow et al. 2014, arXiv:1406.2661, Fig. 1) or
      ``(GRID_2D, GRID_2D)`` in 2-D (row i at ``grid_y[i]``, column j at
      ``grid_x[j]``);
    - ``push``: ``(SNAPSHOT_POINTS, d)`` ``-N * d g_loss / d x`` at the
      generated points ``x``: where the generator loss pushes each sample
      (the arrows of Google PAIR's GAN Lab); ``N`` undoes the batch mean, so
      it is the per-sample gradient (EBGAN's pulling-away term couples the
      samples: it is computed on this batch of ``SNAPSHOT_POINTS``).

    Both networks are evaluated in eval mode in float32 without autocast, and
    restored to their training modes; no parameter takes a gradient and the
    training stream is not touched (the latent codes come from ``seed``).
    """
    snap = samples_snapshot(sample, state, dataset, seed=seed)
    if not draws_grid(dataset):
        return snap
    was_g, was_d = state.G.training, state.D.training
    state.G.eval()
    state.D.eval()
    try:
        with torch.no_grad():
            grid = grid_points(snap).to(state.device)
            critic = torch.cat([critic_outputs(state, c)[0] for c in grid.split(1024)])
        shape = (len(snap["x"]),) if "x" in snap else (len(snap["grid_y"]), len(snap["grid_x"]))
        snap["critic"] = critic.reshape(shape).cpu().numpy()
        x = torch.from_numpy(snap["fake"]).to(state.device).requires_grad_(True)  # (N, d)
        out, code = critic_outputs(state, x)
        out_real = None
        if state.loss.g_needs_real:  # pair each point with a real one (the snapshot's, cycled)
            real = torch.from_numpy(snap["real"]).float().to(state.device)
            with torch.no_grad():
                out_real = critic_outputs(state, real[torch.arange(len(x)) % len(real)])[0]
        (grad,) = torch.autograd.grad(_g_loss(state, out, code, out_real), x)  # D's weights take no gradient
        snap["push"] = (-len(x) * grad).detach().cpu().numpy()
    finally:
        state.G.train(was_g)
        state.D.train(was_d)
    return snap
