"""The GAN model family: its state, its unrolled step, its hyperparameters.

The loop (:mod:`losslab.train.loop`) knows nothing about GANs; it calls this
module through the :class:`~losslab.train.loop.Family` protocol.
:func:`step_members` is Algorithm 1 of the WGAN paper (Arjovsky et al. 2017,
arXiv:1701.07875) generalised over losses, written once over a leading member
axis (:mod:`losslab.train.members`: the seeds of a batched comparison, or one
run: :func:`step` is M = 1):

1. ``n_critic`` critic updates, each on a fresh real batch and fresh z, with
   the loss's penalties (:data:`PENALTIES`: WGAN-GP, DRAGAN) and weight
   clipping (WGAN);
2. one generator update on fresh z (and, for relativistic losses, the critic
   on a fresh real batch);
3. with BEGAN's equilibrium, the k_t update from this step's energies.

What a loss needs is read from its declaration (:class:`~losslab.losses.GANLoss`:
``output``, ``critic``, ``penalty``, ``clip``, ``d_hparams``, ``g_hparams``,
``g_takes_code``, ``g_needs_real``, ``equilibrium``), never from its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from losslab.config import Config, loss_hparams
from losslab.losses import GANLoss, get_gan_loss
from losslab.losses.gan import reconstruction_energy
from losslab.losses.penalties import (
    BEGANEquilibrium,
    dragan_penalty_members,
    gradient_penalty_members,
    squared_gradient_norm_members,
    pulling_away_term,
)
from losslab.losses.families import FAMILY_SPECS
from losslab.models import build_gan
from losslab.models.ensemble import NotBatchable
from losslab.train.common import (
    Diverged,
    autocast,
    load_state,
    make_optimizer,
    on_device,
    resolve_device,
    save_state,
    seeded_generator,
)
from losslab.train.members import Members, per_member
from losslab.train.snapshot import draws_grid, grid_points, samples_snapshot

NAME = "gan"

KEYS: frozenset[str] = FAMILY_SPECS[NAME].keys
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


PENALTIES: dict[str, tuple[Callable[..., Tensor], str]] = {
    # Gulrajani et al. 2017, Eq. 3 / Algorithm 1, lines 6-7
    "gp": (lambda critic, x, x_fake, ms: gradient_penalty_members(critic, x, x_fake, generators=ms.rngs),
           "gp_lambda"),
    # Kodali et al. 2017, Sec. 4 and their reference code
    "dragan": (lambda critic, x, x_fake, ms: dragan_penalty_members(critic, x, generators=ms.rngs,
                                                                      c=ms.hp("dragan_c")), "gp_lambda"),
    # Mescheder et al. 2018, Sec. 4.1: gamma/2 E||grad D||^2 on the reals (R1) and on the fakes (R2);
    # the function returns half the squared norm so that the weight is gamma itself
    "r1": (lambda critic, x, x_fake, ms: 0.5 * squared_gradient_norm_members(critic, x), "r1_gamma"),
    "r2": (lambda critic, x, x_fake, ms: 0.5 * squared_gradient_norm_members(critic, x_fake), "r2_gamma"),
}
"""The critic penalties a :class:`~losslab.losses.GANLoss` can declare (``penalty``: a name or a tuple of
names): ``name -> (fn, weight key)``. ``fn(critic, x_real, x_fake, members) -> (M,)`` is the unweighted
penalty of each member (``critic`` maps ``(M, N, ...)`` to ``(M, N)``; random draws from ``members.rngs``);
the step adds ``hp[weight key] * penalty`` to the critic loss. A new penalty (e.g. R1 on the reals, R2 on
the fakes) is one entry here plus its maths in :mod:`losslab.losses.penalties`."""


def penalties_of(loss: GANLoss) -> tuple[str, ...]:
    """The penalties ``loss`` declares, in the order the step adds them (``GANLoss.penalty``: None, a name
    or a tuple of names)."""
    p = loss.penalty
    if not p:
        return ()
    return (p,) if isinstance(p, str) else tuple(p)


def _critic(ms: Members, x: Tensor) -> tuple[Tensor, Tensor | None]:
    """:func:`critic_outputs` over the member axis: ``x`` (M, N, ...) -> ``(M, N)`` outputs, codes ``(M, N, c)``."""
    s0 = ms.states[0]
    if s0.loss.critic == "autoencoder":
        recon, code = ms.modules["D"](x)
        e = reconstruction_energy(x.flatten(0, 1), recon.float().flatten(0, 1), ms.shared("energy"))
        return e.reshape(ms.m, -1), code
    return ms.modules["D"](x).reshape(ms.m, -1).float(), None


def _d_loss(ms: Members, out_real: Tensor, out_fake: Tensor) -> Tensor:
    """The declared critic loss of every member, ``(M,)``."""
    loss = ms.states[0].loss
    kw = {k: ms.hp(k) for k in loss.d_hparams}
    if loss.equilibrium:
        ks = [s.began.k for s in ms.states]
        kw["k"] = ks[0] if ms.m == 1 else torch.tensor(ks, device=ms.device)
    names = ("e_real", "e_fake") if loss.output == "energy" else ("d_real", "d_fake")
    return per_member(loss.d_loss, ms.m, dict(zip(names, (out_real, out_fake))), kw)


def _g_loss(ms: Members, out_fake: Tensor, code_fake: Tensor | None, out_real: Tensor | None) -> Tensor:
    """The declared generator loss of every member, ``(M,)`` (``code_fake`` when ``g_takes_code``, the
    critic's outputs on reals when ``g_needs_real``)."""
    loss = ms.states[0].loss
    kw = {k: ms.hp(k) for k in loss.g_hparams}
    energy = loss.output == "energy"
    tensors = {"e_fake" if energy else "d_fake": out_fake}
    if loss.g_takes_code:
        if code_fake is None:
            kw["code_fake"] = None
        else:
            tensors["code_fake"] = code_fake
    if loss.g_needs_real:
        tensors["e_real" if energy else "d_real"] = out_real
    return per_member(loss.g_loss, ms.m, tensors, kw)


def _draw_z(state: GANState, n: int, rng: torch.Generator) -> Tensor:
    """``n`` latent codes ``(n, z_dim)`` from the stream ``rng``, on its device."""
    if rng.device.type == "cpu":
        return torch.randn(n, state.z_dim, generator=rng)
    return torch.randn(n, state.z_dim, generator=rng, device=rng.device)


def members(states: Sequence[GANState], *, stack: bool | None = None) -> Members:
    """The runs ``states`` (one loss) as one :class:`~losslab.train.members.Members`: stacked MLPs when they
    can stack (default for M > 1), else each member's own networks.

    Raises:
        NotBatchable: the states train different losses, or differ in a setting that shapes the step.
        ValueError: the states are at different generator updates.
    """
    if len({id(s.loss) for s in states}) != 1 or len({s.precision for s in states}) != 1:
        raise NotBatchable("members must train one loss at one precision")
    return Members(states, _parts, stack=stack)


def stack_blocker(cfg: Config, dataset, loss_name: str) -> str | None:
    """None when the vector networks of M runs of ``loss_name`` stack into ensembles, else why not:
    a BatchNorm critic (statistics over the batch). The autoencoder critics of EBGAN and BEGAN stack
    (:class:`losslab.models.ensemble.EnsembleAutoencoder`)."""
    spec = get_gan_loss(loss_name)
    if hparams(spec, cfg).get("critic_norm", "none") == "batch":
        return "BatchNorm critic (statistics over the batch)"
    return None


def step(state: GANState, data, batch_size: int, *, record: bool = False) -> dict[str, float]:
    """One generator update of one run: :func:`step_members` with M = 1 (the run's own networks).

    Returns:
        The diagnostics of :func:`step_members` (empty unless ``record``).

    Raises:
        Diverged: a loss became NaN/inf in this generator update; ``step`` is
            this update's number, ``d_updates`` counts the critic updates before
            the first non-finite loss (as if the run had stopped there).
    """
    ms = state.extra.get("members")
    if ms is None or not ms.active[0] or ms.modules["G"].members[0] is not state.G \
            or ms.modules["D"].members[0] is not state.D:
        ms = state.extra["members"] = members([state], stack=False)
    logs, diverged = step_members(ms, data, batch_size, record=record)
    if diverged:
        raise diverged[0]
    return logs[0]


def step_members(ms: Members, data, batch_size: int, *, record: bool = False
                 ) -> tuple[list[dict[str, float]], dict[int, Diverged]]:
    """One generator update preceded by ``n_critic`` critic updates, for every active member.

    Algorithm 1 of the WGAN paper (Arjovsky et al. 2017, arXiv:1701.07875)
    generalised over losses, each member on its own stream. No wasted work: D's
    weights take no gradient in the generator update (the generator's
    gradients are the same); the losses are checked for NaN/inf once per
    generator update (one host sync), not after every critic step;
    diagnostics are computed only when ``record``. Under
    ``train.precision = "bf16"`` the networks' forward passes run in
    bfloat16 autocast; losses, penalties and updates in float32.

    Args:
        ms: the members (:func:`members`); their states are modified in place.
        data: a :class:`losslab.data.Dataset` (``sample(n, generator)``); moved
            to the members' device when that is not the CPU.
        batch_size: samples per batch for both players, per member.
        record: compute the diagnostics (gradient norms, accuracies); off on
            steps that are not logged, to save time.

    Returns:
        ``(logs, diverged)``: ``logs[k]`` member k's diagnostics (empty unless
        ``record`` and it is active; keys in docs/ARCHITECTURE.md),
        ``diverged`` the members whose loss became NaN/inf in this update, as
        :class:`~losslab.train.common.Diverged` (``step`` this update's
        number; the member's ``d_updates`` count the critic updates before its
        first non-finite loss, as if its run had stopped there).
    """
    s0 = ms.states[0]
    G, D, loss = ms.modules["G"], ms.modules["D"], s0.loss
    data = on_device(data, ms.device)
    step_no = s0.g_updates + 1
    d_updates0 = [s.d_updates for s in ms.states]
    n_critic = ms.shared("n_critic")
    G.train()
    D.train()
    logs: list[dict[str, float]] = [{} for _ in range(ms.m)]
    totals: list[Tensor] = []  # every loss of this update, (M,) each, checked once at the end

    def critic(x: Tensor) -> Tensor:
        return _critic(ms, x)[0]

    # 1. Critic: n_critic updates (Arjovsky et al. 2017, Algorithm 1, lines 2-8).
    for _ in range(n_critic):
        x = ms.draw(lambda r: data.sample(batch_size, r))  # (M, N, *shape)
        z = ms.draw(lambda r: _draw_z(s0, batch_size, r))  # (M, N, z_dim)
        with autocast(ms.device, s0.precision):
            with torch.no_grad():
                x_fake = G(z).float()
            out_real, _ = _critic(ms, x)  # (M, N)
            out_fake, _ = _critic(ms, x_fake)
        d_loss = _d_loss(ms, out_real, out_fake)  # (M,)
        penalty: dict[str, Tensor] = {}
        total = d_loss
        for name in penalties_of(loss):
            fn, weight = PENALTIES[name]
            if not isinstance(ms.hp(weight), Tensor) and ms.hp(weight) == 0:  # off for every member (R1/R2 of ns)
                continue
            penalty[name] = fn(critic, x, x_fake, ms)
            total = total + ms.hp(weight) * penalty[name]
        totals.append(total.detach())
        ms.zero_grad("opt_d")
        (total * ms.mask).sum().backward()  # summed: member k's gradient is its own
        ms.step("opt_d")
        if loss.clip:  # Algorithm 1, line 7: w <- clip(w, -c, c)
            ms.clamp_("D", ms.hp("clip"))
        for k, st in enumerate(ms.states):
            st.d_updates += ms.active[k]

    if record:
        _critic_logs(ms, logs, d_loss, penalty, out_real, out_fake)

    # 2. Generator: one update on fresh z (Algorithm 1, lines 9-11); D is a
    #    fixed function here, so its weights take no gradient.
    z = ms.draw(lambda r: _draw_z(s0, batch_size, r))
    x_g = ms.draw(lambda r: data.sample(batch_size, r)) if loss.g_needs_real else None
    D.requires_grad_(False)
    try:
        with autocast(ms.device, s0.precision):
            x_fake = G(z).float()
            g_out_fake, code_fake = _critic(ms, x_fake)
            g_out_real = None
            if x_g is not None:  # relativistic losses: the critic on reals, a constant for G
                with torch.no_grad():
                    g_out_real = critic(x_g)
        g_loss = _g_loss(ms, g_out_fake, code_fake, g_out_real)  # (M,)
        totals.append(g_loss.detach())
        ms.zero_grad("opt_g")
        (g_loss * ms.mask).sum().backward()
    finally:
        D.requires_grad_(True)
    diverged: dict[int, Diverged] = {}
    for k, bad in ms.check(totals).items():
        ms.states[k].d_updates = d_updates0[k] + min(bad, n_critic)
        diverged[k] = Diverged(step_no, "critic loss" if bad < n_critic else "generator loss")
        logs[k] = {}
    if record:
        g_norm, g_mean = ms.grad_stats("G")
        gl = g_loss.detach()
        for k in _active(ms):
            logs[k].update(g_loss=float(gl[k]), g_grad_norm=float(g_norm[k]), g_grad_mean=float(g_mean[k]))
            if loss.g_takes_code and code_fake is not None:  # EBGAN-PT: pulling-away term of this batch's codes
                logs[k]["pt"] = float(pulling_away_term(code_fake[k].detach()))
    ms.step("opt_g")
    for k in _active(ms):
        ms.states[k].g_updates += 1

    # 3. BEGAN: k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1)
    #    (Berthelot et al. 2017, Sec. 3.4), on this step's energies.
    if s0.began is not None:
        e_real = out_real.detach().mean(dim=1).tolist()
        e_fake = g_out_fake.detach().mean(dim=1).tolist()
        for k in _active(ms):
            began = ms.states[k].began
            began.update(e_real[k], e_fake[k])
            if record:
                logs[k].update(k=began.k, m_global=began.convergence(e_real[k], e_fake[k]))
    return logs, diverged


def _active(ms: Members) -> list[int]:
    return [k for k in range(ms.m) if ms.active[k]]


def _critic_logs(ms: Members, logs: list[dict[str, float]], d_loss: Tensor, penalty: dict[str, Tensor],
                 out_real: Tensor, out_fake: Tensor) -> None:
    """The critic's diagnostics of the last critic update, per member, into ``logs``."""
    loss = ms.states[0].loss
    d_norm, d_mean = ms.grad_stats("D")
    dl, r, f = d_loss.detach(), out_real.detach(), out_fake.detach()
    share = None
    if loss.clip:  # WGAN: share of critic weights at the bound +-c
        c = ms.hp("clip")
        ws = ms.flat("D", grads=False)
        c = ms.column(c, ws[0])
        at = sum((w.abs() >= c * (1 - 1e-6)).sum(dim=1) for w in ws)
        share = (at / sum(w.shape[1] for w in ws)).tolist()
    margin = ms.hp("margin") if loss.output == "energy" and "margin" in ms.states[0].hp else None
    for k in _active(ms):
        log = logs[k]
        log.update(d_loss=float(dl[k]), d_grad_norm=float(d_norm[k]), d_grad_mean=float(d_mean[k]))
        for name, p in penalty.items():
            log["penalty" if len(penalty) == 1 else f"penalty_{name}"] = float(p[k].detach())
        rk, fk = r[k], f[k]
        log.update(d_real=float(rk.mean()), d_fake=float(fk.mean()), d_acc=critic_accuracy(loss.output, rk, fk))
        if loss.output == "logit":
            log.update(p_real=float(torch.sigmoid(rk).mean()), p_fake=float(torch.sigmoid(fk).mean()))
        if loss.output == "critic":
            log["w_estimate"] = float(rk.mean() - fk.mean())  # the critic's W1 estimate
        if margin is not None:  # EBGAN: share of fakes the hinge ignores
            mk = float(margin[k]) if torch.is_tensor(margin) else margin
            log["above_margin"] = float((fk >= mk).float().mean())
        if share is not None:
            log["clip_share"] = float(share[k])


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
        real = None
        if state.loss.g_needs_real:  # the snapshot's reals, repeated to the fakes' number
            xr = torch.from_numpy(snap["real"]).to(state.device)
            with torch.no_grad():
                real = critic_outputs(state, xr[torch.arange(len(x)) % len(xr)])[0][None]
        g = _g_loss(members([state], stack=False), out[None], None if code is None else code[None], real)
        (grad,) = torch.autograd.grad(g.sum(), x)  # D's weights take no gradient
        snap["push"] = (-len(x) * grad).detach().cpu().numpy()
    finally:
        state.G.train(was_g)
        state.D.train(was_d)
    return snap
