"""Batched seeds: the K seeds of one loss trained together as one ensemble, in one worker.

For vector data a GAN's MLPs and a diffusion model's MLP denoiser are small:
a step of one seed is a handful of tiny matrix products whose cost is mostly
fixed overhead. :class:`SeedBatch` stacks the K seeds' networks into ensembles
(:mod:`losslab.models.ensemble`, weights ``(K, in, out)``, one ``baddbmm``
per layer) and runs the family's step for all K at once, with

- per-seed weights, initialised exactly as the solo run of that seed (the solo
  networks are built by the family's ``init_state`` and copied in);
- per-seed random streams: each seed's own ``torch.Generator`` draws its data
  batches, latent codes, timesteps and penalty noise in the solo run's order;
- per-seed losses, *summed* (not averaged) over seeds, so that seed k's
  gradient is its own; one optimizer over the stacked tensors equals K
  optimizers because Adam and RMSprop are elementwise (their step count is
  shared: all seeds step together); what mixes entries -- gradient norms for
  the logs and for diffusion's gradient clipping -- is computed per seed;
- per-seed divergence: the losses are checked once per generator update; a
  seed whose loss is NaN/inf is recorded as diverged at that update (the same
  update and ``d_updates`` its solo run reports), its slot is zeroed and
  masked out of the summed loss, and the others go on.

Every seed keeps its solo state (``init_state``'s), through which checkpoints,
resume, samples, metrics and results are written by the solo code into the
seed's own run directory, so ``losslab report``, ``eval`` and resume work
unchanged; a seed trained batched and the same seed trained alone agree to
float rounding (the batched matrix products sum in another order).

What is batched (:func:`batchable`): vector data; GAN losses with a
discriminator critic without BatchNorm (ns, minimax, lsgan, hinge, wgan-gp,
dragan, and wgan with ``critic_norm`` none or layer); the diffusion losses.
Autoencoder critics (ebgan, began), BatchNorm critics, images and the
contrastive family take the sequential path (one :func:`~losslab.train.loop.train_run`
per seed).

Quality curves are batched: at :func:`~losslab.train.loop.curve_steps` each
active seed's slot is copied to its solo state and measured there by
:func:`~losslab.train.loop.curve_point`, so a seed's curve equals its solo
run's (to float rounding). Time budgets (``train.budget_seconds``) are not:
they take the sequential path. A batched seed's cost is a share of shared
work, and what one second buys a seed would then depend on K (more seeds,
cheaper updates) and on whether its loss happens to batch (an autoencoder
critic does not), so losses would get unequal numbers of updates for the same
budget and a seed's result would depend on how many seeds ran beside it. The
time budget is equal wall clock *per run*, measured with the run alone on its
worker; step budgets (the default) gain the whole speed-up and lose nothing.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from losslab import rundir, schedules
from losslab.config import Config
from losslab.errors import UserError
from losslab.losses import DIFFUSION_LOSSES, GAN_LOSSES
from losslab.losses.penalties import clip_weights_
from losslab.models.ensemble import NotBatchable, ensemble_of, slot_pairs, slot_view
from losslab.train import diffusion, gan
from losslab.train.common import Diverged, make_optimizer, on_device
from losslab.train.loop import (curve_point, curve_steps, curve_summary, get_family, run_config, save_checkpoint,
                                train_run, try_resume)

__all__ = ["SeedBatch", "batchable", "train_batched"]


def batchable(cfg: Config, dataset, loss: str, family: str) -> str | None:
    """None when the seeds of ``loss`` can train as one ensemble, else why not (a short phrase).

    A time budget (``train.budget_seconds``) is never batched: it is equal
    wall clock per run, measured with the run alone (see the module's notes).

    Args:
        cfg: the resolved configuration (``train.batch_seeds``, ``train.budget_seconds``,
            ``loss.critic_norm``).
        dataset: the :class:`losslab.data.Dataset` (its ``kind``).
        loss, family: the loss and its family's name.
    """
    if not getattr(cfg.train, "batch_seeds", True):
        return "train.batch_seeds is off"
    if cfg.train.budget_seconds is not None:
        return "a time budget is measured per run (train.budget_seconds)"
    if dataset.kind != "vector":
        return "image data (convolutional networks)"
    if family == "gan":
        spec = GAN_LOSSES[loss]
        if spec.critic != "discriminator":
            return "autoencoder critic"
        hp = gan.hparams(spec, cfg)
        if hp.get("critic_norm", "none") == "batch":
            return "BatchNorm critic (statistics over the batch)"
        if spec.g_needs_real or any(hp[f"{p}_gamma"] for p in spec.grad_penalties):
            return "relativistic pairing or R1/R2 penalties (not batched yet)"
        return None
    if family == "diffusion" and loss in DIFFUSION_LOSSES:
        return None
    return f"the {family} family"


# ----------------------------------------------------------------------------- slots <-> solo states


def _opt_to_slot(eo: torch.optim.Optimizer, so: torch.optim.Optimizer, ens: nn.Module, solo: nn.Module,
                 k: int) -> None:
    for p, e, _ in slot_pairs(ens, solo, k):
        st = so.state.get(p)
        if not st:
            continue
        est = eo.state[e]
        for key, v in st.items():
            if torch.is_tensor(v) and v.dim() > 0 and v.shape == p.shape:
                if key not in est:
                    est[key] = torch.zeros_like(e)
                slot_view(est[key], k, p.shape).copy_(v)
            else:  # Adam's / RMSprop's step count: shared by all seeds (they step together)
                est[key] = v.clone() if torch.is_tensor(v) else v


def _slot_to_opt(eo: torch.optim.Optimizer, so: torch.optim.Optimizer, ens: nn.Module, solo: nn.Module,
                 k: int) -> None:
    for p, e, _ in slot_pairs(ens, solo, k):
        est = eo.state.get(e)
        if not est:
            continue
        so.state[p] = {key: (slot_view(v, k, p.shape).clone() if torch.is_tensor(v) and v.shape == e.shape
                             else (v.clone() if torch.is_tensor(v) else v)) for key, v in est.items()}


def _per_seed_grad_stats(module: nn.Module, k: int) -> tuple[Tensor, Tensor]:
    """Per-seed :func:`~losslab.train.common.grad_stats`: (K,) global L2 norms and (K,) means."""
    grads = [p.grad.detach().reshape(k, -1) for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(k), torch.zeros(k)
    sq = sum(g.pow(2).sum(dim=1) for g in grads)
    total = sum(g.sum(dim=1) for g in grads)
    count = sum(g.shape[1] for g in grads)
    return sq.sqrt(), total / count


class SeedBatch:
    """K solo states of one (family, loss) trained as one ensemble.

    Args:
        family: "gan" or "diffusion".
        states: K >= 1 states from the family's ``init_state`` (same config
            and loss, different seeds), all at the same ``g_updates``; they
            stay the seeds' solo views (their ``rng`` is used directly).

    Attributes:
        states: the solo states; :meth:`store` copies seed k's slot into
            ``states[k]`` (weights, optimizer state, update counts).
        active: (K,) bool list; False once a seed diverged.
        g_updates: generator updates done (all seeds).
        d_updates: (K,) critic updates per seed.

    Raises:
        NotBatchable: a network the ensemble cannot batch.
        ValueError: the states are at different ``g_updates``.
    """

    def __init__(self, family: str, states: Sequence[Any]) -> None:
        if len({s.g_updates for s in states}) != 1:
            raise ValueError("the states of a batch must be at the same generator update")
        self.family, self.states = family, list(states)
        self.k = len(states)
        s0 = states[0]
        self.device = s0.device if family == "gan" else next(s0.net.parameters()).device
        self.g_updates = s0.g_updates
        self.d_updates = [s.d_updates for s in states]
        self.active = [True] * self.k
        self.mask = torch.ones(self.k, device=self.device)
        if family == "gan":
            if s0.loss.critic != "discriminator":
                raise NotBatchable("autoencoder critics are trained seed by seed")
            hp = s0.hp
            self.modules = {"G": ensemble_of([s.G for s in states]), "D": ensemble_of([s.D for s in states])}
            self.opts = {"opt_g": ("G", make_optimizer(self.modules["G"].parameters(), hp, hp["lr_g"])),
                         "opt_d": ("D", make_optimizer(self.modules["D"].parameters(), hp, hp["lr_d"]))}
        elif family == "diffusion":
            self.modules = {"net": ensemble_of([s.net for s in states])}
            if s0.ema is not None:
                self.modules["ema"] = ensemble_of([s.ema for s in states]).requires_grad_(False)
            self.opts = {"opt": ("net", make_optimizer(self.modules["net"].parameters(), s0.hp, s0.hp["lr"],
                                                       foreach=None))}
            self.shift = torch.stack([s.shift for s in states])  # (K, 1, d)
            self.scale = torch.stack([s.scale for s in states])
        else:
            raise NotBatchable(f"the {family} family is trained seed by seed")
        for i in range(self.k):
            self.load(i)

    # -- slots

    def _solo_parts(self, i: int) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        s = self.states[i]
        if self.family == "gan":
            return {"G": s.G, "D": s.D}, {"opt_g": s.opt_g, "opt_d": s.opt_d}
        return {"net": s.net, **({"ema": s.ema} if s.ema is not None else {})}, {"opt": s.opt}

    @torch.no_grad()
    def load(self, i: int) -> None:
        """Copy ``states[i]`` (weights, optimizer state) into slot i."""
        mods, opts = self._solo_parts(i)
        for name, ens in self.modules.items():
            for p, _, view in slot_pairs(ens, mods[name], i):
                view.copy_(p)
        for name, (mod, eo) in self.opts.items():
            _opt_to_slot(eo, opts[name], self.modules[mod], mods[mod], i)

    @torch.no_grad()
    def store(self, i: int) -> None:
        """Copy slot i into ``states[i]``: weights, optimizer state, ``g_updates``, ``d_updates``."""
        mods, opts = self._solo_parts(i)
        for name, ens in self.modules.items():
            for p, _, view in slot_pairs(ens, mods[name], i):
                p.copy_(view)
        for name, (mod, eo) in self.opts.items():
            _slot_to_opt(eo, opts[name], self.modules[mod], mods[mod], i)
        self.states[i].g_updates = self.g_updates
        self.states[i].d_updates = self.d_updates[i]

    @torch.no_grad()
    def _retire(self, i: int) -> None:
        """Mask seed i out: zero its weights, gradients and optimizer state (no NaN is carried on)."""
        self.active[i] = False
        self.mask[i] = 0.0
        for ens in self.modules.values():
            for p in ens.parameters():
                p[i].zero_()
                if p.grad is not None:
                    p.grad[i].zero_()
        for _, eo in self.opts.values():
            for st in eo.state.values():
                for v in st.values():
                    if torch.is_tensor(v) and v.dim() > 0:
                        v[i].zero_()

    # -- the step

    def step(self, data, batch_size: int, *, record: bool = False) -> tuple[list[dict], dict[int, Diverged]]:
        """One generator (network) update of every active seed.

        Args:
            data: the :class:`losslab.data.Dataset`.
            batch_size: samples per batch per seed.
            record: compute each seed's diagnostics (the solo step's keys).

        Returns:
            ``(logs, diverged)``: ``logs[i]`` the diagnostics of seed i (empty
            unless ``record`` and seed i is active); ``diverged`` maps the
            seeds that diverged in this update to their :class:`Diverged`.
        """
        data = on_device(data, self.device)
        if self.family == "gan":
            return self._gan_step(data, batch_size, record)
        return self._diffusion_step(data, batch_size, record)

    def _check(self, totals: list[Tensor], names: list[str], d_updates0: list[int]) -> dict[int, Diverged]:
        """Seeds whose loss of this update is NaN/inf (one host sync); they are retired."""
        bad = ~torch.isfinite(torch.stack(totals))  # (n_losses, K)
        bad &= self.mask.bool()[None]
        if not bool(bad.any()):
            return {}
        out: dict[int, Diverged] = {}
        step_no = self.g_updates + 1
        for i in bad.any(dim=0).nonzero().flatten().tolist():
            first = int(bad[:, i].nonzero()[0, 0])
            out[i] = Diverged(step_no, names[first])
            if self.family == "gan":
                self.d_updates[i] = d_updates0[i] + min(first, len(totals) - 1)
            self._retire(i)
        return out

    def _gan_step(self, data, bs: int, record: bool) -> tuple[list[dict], dict[int, Diverged]]:
        G, D = self.modules["G"], self.modules["D"]
        opt_g, opt_d = self.opts["opt_g"][1], self.opts["opt_d"][1]
        s0 = self.states[0]
        hp, loss, dev, k = s0.hp, s0.loss, self.device, self.k
        rngs = [s.rng for s in self.states]
        d_kw = {n: hp[n] for n in loss.d_hparams}
        g_kw = {n: hp[n] for n in loss.g_hparams}
        d_vmap = torch.func.vmap(lambda r, f: loss.d_loss(d_real=r, d_fake=f, **d_kw))
        g_vmap = torch.func.vmap(lambda f: loss.g_loss(d_fake=f, **g_kw))
        d_updates0 = list(self.d_updates)
        totals: list[Tensor] = []
        G.train()
        D.train()

        # 1. Critic: n_critic updates; each seed draws x, z (and penalty noise) from its own stream.
        for _ in range(hp["n_critic"]):
            x = torch.stack([data.sample(bs, r) for r in rngs])  # (K, N, d)
            z = torch.stack([torch.randn(bs, G.z_dim, generator=r, device=dev) for r in rngs])  # (K, N, z)
            with torch.no_grad():
                x_fake = G(z)
            out_real, out_fake = D(x), D(x_fake)  # (K, N)
            d_loss = d_vmap(out_real, out_fake)  # (K,)
            penalty = None
            if loss.penalty == "gp":
                penalty = _gradient_penalty(D, x, x_fake, rngs)
            elif loss.penalty == "dragan":
                penalty = _dragan_penalty(D, x, rngs, hp["dragan_c"])
            total = d_loss if penalty is None else d_loss + hp["gp_lambda"] * penalty  # (K,)
            totals.append(total.detach())
            opt_d.zero_grad(set_to_none=True)
            (total * self.mask).sum().backward()  # summed: seed k's gradient is its own
            opt_d.step()
            if loss.clip:
                clip_weights_(D, hp["clip"])
            self.d_updates = [d + a for d, a in zip(self.d_updates, self.active)]

        logs: list[dict] = [{} for _ in range(k)]
        if record:
            d_norm, d_mean = _per_seed_grad_stats(D, k)
            r, f = out_real.detach(), out_fake.detach()
            for i in range(k):
                log = logs[i]
                log.update(d_loss=float(d_loss[i].detach()), d_grad_norm=float(d_norm[i]), d_grad_mean=float(d_mean[i]))
                if penalty is not None:
                    log["penalty"] = float(penalty[i].detach())
                log.update(d_real=float(r[i].mean()), d_fake=float(f[i].mean()),
                           d_acc=gan.critic_accuracy(loss.output, r[i], f[i]))
                if loss.output == "logit":
                    log.update(p_real=float(torch.sigmoid(r[i]).mean()), p_fake=float(torch.sigmoid(f[i]).mean()))
                if loss.output == "critic":
                    log["w_estimate"] = float(r[i].mean() - f[i].mean())

        # 2. Generator: one update on fresh z; D's weights take no gradient.
        z = torch.stack([torch.randn(bs, G.z_dim, generator=r, device=dev) for r in rngs])
        D.requires_grad_(False)
        try:
            g_loss = g_vmap(D(G(z)))  # (K,)
            totals.append(g_loss.detach())
            opt_g.zero_grad(set_to_none=True)
            (g_loss * self.mask).sum().backward()
        finally:
            D.requires_grad_(True)
        names = ["critic loss"] * hp["n_critic"] + ["generator loss"]
        diverged = self._check(totals, names, d_updates0)
        if record:
            g_norm, g_mean = _per_seed_grad_stats(G, k)
            for i in range(k):
                logs[i].update(g_loss=float(g_loss[i].detach()), g_grad_norm=float(g_norm[i]),
                               g_grad_mean=float(g_mean[i]))
        opt_g.step()  # a retired slot has zero gradients and state: it stays zero
        self.g_updates += 1
        for i in diverged:
            logs[i] = {}
        return logs, diverged

    def _diffusion_step(self, data, bs: int, record: bool) -> tuple[list[dict], dict[int, Diverged]]:
        net, opt = self.modules["net"], self.opts["opt"][1]
        s0 = self.states[0]
        obj, hp, k, dev = s0.objective, s0.hp, self.k, self.device
        sched = obj.schedule
        rngs = [s.rng for s in self.states]
        net.train()
        # 1. x_0, t, eps per seed, in the solo order (Ho et al. 2020, Algorithm 1, lines 2-4).
        x0 = (torch.stack([data.sample(bs, r) for r in rngs]) - self.shift) / self.scale  # (K, N, d)
        t = torch.stack([torch.randint(0, sched.T, (bs,), generator=r, device=r.device) for r in rngs])  # (K, N)
        eps = torch.stack([torch.randn(x0.shape[1:], generator=r, dtype=x0.dtype, device=r.device)
                           for r in rngs]).to(dev)
        t = t.to(dev)
        d = x0.shape[-1]
        x0f, tf, epsf = x0.reshape(k * bs, d), t.reshape(-1), eps.reshape(k * bs, d)
        x_t = schedules.q_sample(sched, x0f, tf, epsf)  # Eq. 4, (K N, d)
        ab = sched.alpha_bar[tf].reshape(-1, 1)  # float64
        want = schedules.target(obj.objective, x0f, epsf, ab).reshape(k, bs, d)
        per_sample = (net(x_t.reshape(k, bs, d), t) - want).pow(2).mean(dim=-1)  # (K, N)
        loss = per_sample.mean(dim=1)  # (K,)
        opt.zero_grad(set_to_none=True)
        (loss * self.mask).sum().backward()
        diverged = self._check([loss.detach()], ["diffusion loss"], self.d_updates)
        logs: list[dict] = [{} for _ in range(k)]
        if record:
            norm, mean = _per_seed_grad_stats(net, k)
            buckets = diffusion._bucket_of(t, sched.T)
            ps = per_sample.detach()
            for i in range(k):
                if not self.active[i]:
                    continue
                log = logs[i]
                log.update(g_loss=float(loss[i].detach()), g_grad_norm=float(norm[i]), g_grad_mean=float(mean[i]))
                for b in range(diffusion.N_BUCKETS):
                    sel = buckets[i] == b
                    if bool(sel.any()):
                        log[f"loss_t{b}"] = float(ps[i][sel].mean())
        # 2. Per-seed global-norm clipping (torch.nn.utils.clip_grad_norm_'s rule, seed by seed).
        if hp.get("grad_clip"):
            grads = [p.grad for p in net.parameters() if p.grad is not None]
            norms = sum(g.detach().reshape(k, -1).pow(2).sum(dim=1) for g in grads).sqrt()  # (K,)
            coef = (hp["grad_clip"] / (norms + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(coef.reshape(k, *([1] * (g.dim() - 1))))
        opt.step()
        # 3. EMA of the weights, one decay for all seeds (same update count).
        if "ema" in self.modules:
            decay = diffusion.ema_decay(hp["ema"], self.g_updates)
            with torch.no_grad():
                for pe, p in zip(self.modules["ema"].parameters(), net.parameters()):
                    pe.lerp_(p, 1.0 - decay)
        self.g_updates += 1
        return logs, diverged


def _gradient_penalty(D: nn.Module, x: Tensor, x_fake: Tensor, rngs: list[torch.Generator]) -> Tensor:
    """Per-seed WGAN-GP penalty ``mean_i (||grad D_k(x_hat_ki)|| - 1)^2``, (K,): the solo
    :func:`~losslab.losses.penalties.gradient_penalty` with each seed's ``eps`` from its own stream."""
    k, n = x.shape[:2]
    eps = torch.stack([torch.rand(n, 1, generator=r, dtype=x.dtype, device=r.device) for r in rngs]).to(x.device)
    x_hat = (eps * x.detach() + (1.0 - eps) * x_fake.detach()).requires_grad_(True)  # (K, N, d)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)  # (K, N, d)
    return (grad.norm(2, dim=-1) - 1.0).pow(2).mean(dim=1)


def _dragan_penalty(D: nn.Module, x: Tensor, rngs: list[torch.Generator], c: float) -> Tensor:
    """Per-seed DRAGAN penalty, (K,): :func:`~losslab.losses.penalties.dragan_penalty` seed by seed
    (u, then alpha, from each seed's stream; the batch std is per seed)."""
    k, n, d = x.shape
    x = x.detach()
    u, alpha = [], []
    for r in rngs:
        u.append(torch.rand(n, d, generator=r, dtype=x.dtype, device=r.device))
        alpha.append(torch.rand(n, 1, generator=r, dtype=x.dtype, device=r.device))
    u, alpha = torch.stack(u).to(x.device), torch.stack(alpha).to(x.device)
    std = x.reshape(k, -1).std(dim=1, correction=0).reshape(k, 1, 1)
    x_p = x + c * std * u
    x_hat = (x + alpha * (x_p - x)).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return (grad.norm(2, dim=-1) - 1.0).pow(2).mean(dim=1)


# ----------------------------------------------------------------------------- run directories


def train_batched(
    run_dirs: Sequence[str | Path],
    cfg: Config,
    dataset,
    *,
    loss: str,
    seeds: Sequence[int],
    family: str = "gan",
    evaluate: Callable[[Any, torch.Tensor], dict] | None = None,
    progress: Callable[[int], None] | None = None,
    curve_evaluate: Callable[[Any, torch.Tensor], dict] | None = None,
) -> list[dict[str, Any]]:
    """Train the seeds of one loss into their run directories, batched when possible.

    The run directories get exactly what :func:`~losslab.train.loop.train_run`
    writes (config.json, metrics.jsonl, curve.jsonl, checkpoints, samples,
    result.json with its ``curve``, ``curve_metric``, ``converged`` and
    ``budget``), each through the solo state of its seed. The quality curve
    is evaluated at the same updates as ``train_run``'s
    (:func:`~losslab.train.loop.curve_steps`), by
    :func:`~losslab.train.loop.curve_point` on the seed's solo state (its
    slot copied out first; the global torch RNG is restored around a point, so
    points never change the training). Falls back to one ``train_run`` per
    seed when :func:`batchable` says no, for a single seed, or when the seeds'
    checkpoints are at different updates.

    Clocks: the batch's training time (everything but the curve points and
    the final evaluations) is shared; each seed is charged 1/K of it.
    ``train_seconds`` of a seed is that share plus its own final evaluation,
    ``curve_seconds`` the time of its own curve points, ``wall_seconds`` their
    sum; a curve point's ``wall_seconds`` is the seed's ``train_seconds`` then.

    Args:
        run_dirs: one directory per seed.
        cfg, dataset, loss, family, evaluate, progress, curve_evaluate: as for ``train_run``.
        seeds: the seeds, in the order of ``run_dirs``.

    Returns:
        The K result dicts (also written to each ``result.json``).

    Raises:
        UserError: a run directory holds another configuration; a bad configuration.
    """
    run_dirs = [Path(r) for r in run_dirs]

    def sequential() -> list[dict[str, Any]]:
        return [train_run(rd, cfg, dataset, loss=loss, seed=s, family=family, evaluate=evaluate,
                          progress=progress, curve_evaluate=curve_evaluate) for rd, s in zip(run_dirs, seeds)]

    if len(seeds) < 2 or batchable(cfg, dataset, loss, family) is not None:
        return sequential()
    fam = get_family(family)
    torch.set_num_threads(cfg.train.threads)
    t0 = time.perf_counter()
    states, clock0, curves = [], [], []
    for rd, seed in zip(run_dirs, seeds):
        rd.mkdir(parents=True, exist_ok=True)
        rundir.write_config(rd, run_config(cfg, family=family, loss=loss, seed=seed, data_name=dataset.name))
        st = fam.init_state(cfg, dataset, loss, seed)
        clock0.append(try_resume(rd, fam, st))
        curves.append(rundir.read_curve(rd))
        states.append(st)
    try:
        batch = SeedBatch(family, states)
    except (NotBatchable, ValueError):
        return sequential()  # e.g. checkpoints at different updates: each resumes on its own
    if progress and batch.g_updates:
        progress(batch.g_updates * batch.k)
    k, tc = batch.k, cfg.train
    curve_eval = curve_evaluate or evaluate
    positions = curve_steps(tc.steps, tc.curve_points)
    results: list[dict[str, Any] | None] = [None] * k
    pending: list[list[dict]] = [[] for _ in range(k)]
    curve_spent = [0.0] * k  # each seed's curve seconds in this session
    t_train: list[float] = []  # the batch's training seconds of this session, once training ends

    def shared() -> float:
        """The batch's training seconds in this session (curve points excluded), all seeds together."""
        return t_train[0] if t_train else time.perf_counter() - t0 - sum(curve_spent)

    def clock(i: int, extra: float = 0.0) -> dict[str, float]:
        """Seed i's clocks: its 1/K share of the batch's training time, its own curve points, ``extra``."""
        share = shared() / k + extra
        return {"wall_seconds": clock0[i]["wall_seconds"] + share + curve_spent[i],
                "train_seconds": clock0[i]["train_seconds"] + share,
                "curve_seconds": clock0[i]["curve_seconds"] + curve_spent[i]}

    def base(i: int) -> dict[str, Any]:
        return {"loss": loss, "seed": seeds[i], "family": family, "status": "failed", "error": None,
                "metrics": {}, "g_updates": 0, "d_updates": 0, "wall_seconds": 0.0, "diverged_at": None,
                "budget": {"steps": tc.steps}}

    def finish(i: int, res: dict[str, Any], extra: float = 0.0) -> None:
        rundir.append_metrics(run_dirs[i], pending[i])
        pending[i] = []
        res.update(clock(i, extra))
        res.update(curve_summary(curves[i], dataset, family, tc))
        rundir.write_result(run_dirs[i], res)
        results[i] = res

    def add_point(i: int) -> None:
        """Seed i's curve point now (its slot is in ``states[i]``), as ``train_run``'s ``add_point``."""
        c = time.perf_counter()
        point = {"g_updates": batch.g_updates, "wall_seconds": clock(i)["train_seconds"],
                 **curve_point(fam, states[i], dataset, cfg, curve_eval, seed=seeds[i])}
        rundir.append_curve(run_dirs[i], [point])
        curves[i].append(point)
        curve_spent[i] += time.perf_counter() - c

    def point_due(i: int) -> bool:
        n = len(curves[i])
        return n < len(positions) and batch.g_updates >= positions[n]

    try:
        while batch.g_updates < tc.steps and any(batch.active):
            step_no = batch.g_updates + 1
            record = step_no == 1 or step_no % tc.log_every == 0 or step_no == tc.steps
            logs, diverged = batch.step(dataset, tc.batch_size, record=record)
            for i, e in diverged.items():
                finish(i, {**base(i), "status": "diverged", "error": str(e), "diverged_at": e.step,
                           "g_updates": step_no - 1, "d_updates": batch.d_updates[i]})
            active = [i for i in range(k) if batch.active[i]]
            if record:
                for i in active:
                    pending[i].append({"step": step_no, "d_updates": batch.d_updates[i], **logs[i],
                                       "wall": clock(i)["wall_seconds"]})
            if progress:
                progress(len(active))
            stored: set[int] = set()
            for i in active:
                if point_due(i):
                    batch.store(i)
                    stored.add(i)
                    add_point(i)
            if step_no % tc.checkpoint_every == 0 or step_no == tc.steps:
                for i in active:
                    if i not in stored:
                        batch.store(i)
                    rundir.append_metrics(run_dirs[i], pending[i])
                    pending[i] = []
                    save_checkpoint(run_dirs[i], fam, states[i], clock(i))
    except UserError:
        raise
    except Exception as e:  # a bug or a resource problem: every unfinished seed records it
        for i in range(k):
            if results[i] is None:
                batch.store(i)
                finish(i, {**base(i), "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=8),
                           "g_updates": batch.g_updates, "d_updates": batch.d_updates[i]})
        return results  # type: ignore[return-value]

    t_train.append(shared())
    # The end of every surviving seed, by the solo code on its solo state.
    for i in range(k):
        if results[i] is not None:
            continue
        batch.store(i)
        st, res = states[i], base(i)
        t1 = time.perf_counter()
        try:
            samples = fam.sample(st, tc.n_eval, seed=seeds[i])
            if not bool(torch.isfinite(samples).all()):
                raise Diverged(st.g_updates, "generated samples")
            rundir.write_samples(run_dirs[i], samples)
            if evaluate is not None:
                res["metrics"] = evaluate(dataset, samples)
            res["sampling_nfe"] = fam.nfe(st)
            if fam.artifacts is not None:
                fam.artifacts(st, dataset, run_dirs[i])
            res["status"] = "ok"
        except Diverged as e:
            res.update(status="diverged", error=str(e), diverged_at=e.step)
        except UserError:
            raise
        except Exception as e:
            res.update(error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
        res.update(g_updates=st.g_updates, d_updates=st.d_updates)
        finish(i, res, extra=time.perf_counter() - t1)
    return results  # type: ignore[return-value]
