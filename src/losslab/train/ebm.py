"""The energy-based model (EBM) family: its state, its step, its hyperparameters.

One network, the energy ``E(x)``, whose Boltzmann density ``exp(-E(x)) / Z``
is fitted to the data (:mod:`losslab.losses.ebm`) and sampled by Langevin
dynamics (:mod:`losslab.langevin`). The loop (:mod:`losslab.train.loop`) calls
it through the :class:`~losslab.train.loop.Family` protocol.

Budget: one energy update counts as one ``g_updates``; ``d_updates`` stays 0.
An ``ebm-cd`` update also runs ``langevin_steps`` Langevin steps (each a
forward and a backward pass of the energy) to draw its negatives, so at an
equal number of updates it costs more wall time than ``ebm-dsm``; the report
shows wall seconds beside the budget.

Scale: as in :mod:`losslab.train.diffusion`, **vectors are standardised per
dimension** with the training rows' mean and std, and samples are mapped back
to data units; images stay in [-1, 1]. Every Langevin state is clamped to a
box: [-1, 1] for images, the training rows' per-dimension range widened by
:data:`BOX_MARGIN` of its width for vectors (in standardised units). Fresh
chains start from uniform noise on that box.

Sampling for evaluation (:func:`sample`): chains from **fresh uniform noise**
(never from the replay buffer) of ``sample_steps`` Langevin steps (default
200, more than a training chain), with the training chain's step size and
noise scale; ``nfe = sample_steps`` network evaluations (forward + backward)
per sample. Starting from noise is the fairer test: buffer entries were
refined by many earlier updates and would hide a model that only samples well
from its own history.

Networks (:func:`losslab.models.energy.build_energy`): an MLP energy of width
``max(model.hidden, 128)`` (:data:`MIN_VECTOR_WIDTH`) and ``model.layers``
SiLU layers for vectors; a small conv energy for images.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from losslab import io, rundir
from losslab.config import Config, EBMConfig, loss_hparams, loss_keys
from losslab.langevin import ReplayBuffer, energy_grad, langevin_sample, uniform_box
from losslab.losses.ebm import EBM_LOSSES, EBMLoss, cd_loss, dsm_loss, get_ebm_loss
from losslab.models.energy import build_energy
from losslab.train.common import (
    Diverged,
    grad_stats,
    load_state,
    make_optimizer,
    on_device,
    resolve_device,
    save_state,
    seeded_generator,
)
from losslab.train.members import Members, loop_step
from losslab.train.snapshot import samples_snapshot
from losslab.train.common import single_network_lr

NAME = "ebm"

KEYS: frozenset[str] = frozenset(
    {"model.hidden", "model.layers", "train.n_eval", "loss.lr_g", "loss.lr_d"}
    | {f"ebm.{f.name}" for f in dataclasses.fields(EBMConfig)}
    | set().union(*(loss_keys(loss.defaults) for loss in EBM_LOSSES.values()))
)
"""The config keys this family reads besides the loop's (``model.hidden``/``layers``: vectors only)."""

evaluate = None  # measured on its samples (losslab.metrics)
model_metrics = None  # nothing beyond the samples' metrics

MIN_VECTOR_WIDTH = 128
"""Smallest MLP width for vectors (as the diffusion family's denoiser)."""

BOX_MARGIN = 0.1
"""Vectors: the Langevin box is the data's range widened by this fraction of its width on each side."""

DIAG_STEPS = 20
"""ebm-dsm: Langevin steps of the diagnostic chain run on logged steps (its own generator)."""

DIAG_CHAINS = 256
"""ebm-dsm: chains of the diagnostic chain."""

GAP_LIMIT = 50.0
"""|E(x-) - E(x+)| above this (energy units) in the last logged quarter: "energy gap exploding"."""

BOUND_LIMIT = 0.2
"""Share of negative-sample coordinates on the clamp box above this: "samples saturating at the clamp bounds"."""


@dataclass
class EBMState:
    """Everything an EBM run carries between steps (and saves in a checkpoint).

    Attributes
    ----------
    net : nn.Module
        The energy ``E(x) -> (N,)``.
    opt : torch.optim.Optimizer
    loss : EBMLoss
    hp : dict
        Resolved hyperparameters (:func:`hparams`).
    rng : torch.Generator
        Data batches, noise, Langevin noise and buffer draws of training, on ``device``.
    kind : str
        "vector" | "image".
    shape : tuple of int
    shift, scale : Tensor
        ``x_net = (x - shift) / scale``, shape ``(1, *shape)``.
    lo, hi : Tensor
        The Langevin box in network units, ``(1, *shape)``.
    buffer : ReplayBuffer or None
        ebm-cd's replay buffer (None for ebm-dsm).
    device : torch.device
        Where the network, the scaling, the box, the buffer and ``rng`` live
        (``train.device``); samples come back on the CPU.
    """

    net: nn.Module
    opt: torch.optim.Optimizer
    loss: EBMLoss
    hp: dict[str, Any]
    rng: torch.Generator
    kind: str
    shape: tuple[int, ...]
    shift: Tensor
    scale: Tensor
    lo: Tensor
    hi: Tensor
    buffer: ReplayBuffer | None = None
    g_updates: int = 0
    d_updates: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    device: torch.device = torch.device("cpu")


def hparams(loss: EBMLoss, cfg: Config, dataset) -> dict[str, Any]:
    """The run's hyperparameters: the loss's ``defaults`` (on images with its ``image_defaults``
    in their place) overridden by the config.

    Learning rate: ``ebm.lr`` > ``loss.lr_g`` / ``loss.lr_d`` > the loss's
    ``lr`` x ``loss.lr_scale``. ``loss.optimizer``, ``loss.beta1``,
    ``loss.beta2`` apply; every set ``ebm.*`` field replaces the loss's value
    where the loss has that key (``alpha``, ``buffer_size``, ``reinit`` and
    ``langevin_steps`` belong to ebm-cd, ``sigma`` to ebm-dsm).

    Raises:
        UserError: ``loss.lr_g`` and ``loss.lr_d`` set to different values.
    """
    defaults = {**loss.defaults, **(loss.image_defaults if getattr(dataset, "kind", None) == "image" else {})}
    hp = loss_hparams(defaults, cfg.loss)
    lr = single_network_lr(cfg.loss, NAME)
    if lr is not None:
        hp["lr"] = lr
    for f in dataclasses.fields(cfg.ebm):
        v = getattr(cfg.ebm, f.name)
        if v is not None and (f.name in hp):
            hp[f.name] = v
    return hp


def init_state(cfg: Config, dataset, loss_name: str, seed: int) -> EBMState:
    """Energy network, optimizer, data scaling, replay buffer and RNG of one (loss, seed) run.

    The seed fixes the initial weights (``torch.manual_seed``) and the training
    stream (:func:`~losslab.train.common.seeded_generator`), which also fills
    the replay buffer with its initial uniform noise.

    Everything lives on ``cfg.train.device``; the initial weights and the data
    scaling are computed on the CPU, then moved.

    Raises:
        UserError: unknown loss; a data shape the energies do not support; a device this machine lacks.
    """
    device = resolve_device(getattr(cfg.train, "device", "cpu"))
    loss = get_ebm_loss(loss_name)
    hp = hparams(loss, cfg, dataset)
    shape = tuple(int(s) for s in dataset.shape)
    torch.manual_seed(seed)
    net = build_energy(shape, hidden=max(cfg.model.hidden, MIN_VECTOR_WIDTH), layers=cfg.model.layers)
    if dataset.kind == "vector":
        train = dataset.train.to(torch.float32)
        shift = train.mean(dim=0, keepdim=True)
        scale = train.std(dim=0, keepdim=True).clamp_min(1e-8)
        z = (train - shift) / scale
        lo, hi = z.min(dim=0, keepdim=True).values, z.max(dim=0, keepdim=True).values
        lo, hi = lo - BOX_MARGIN * (hi - lo), hi + BOX_MARGIN * (hi - lo)
    else:
        shift, scale = torch.zeros(1, *shape), torch.ones(1, *shape)
        lo, hi = -torch.ones(1, *shape), torch.ones(1, *shape)
    net = net.to(device)
    shift, scale, lo, hi = (v.to(device) for v in (shift, scale, lo, hi))
    rng = seeded_generator(seed, device)
    buffer = None
    if loss.objective == "cd":
        buffer = ReplayBuffer(int(hp["buffer_size"]), lo, hi, float(hp["reinit"]), rng)
    opt = make_optimizer(net.parameters(), hp, hp["lr"])
    return EBMState(net=net, opt=opt, loss=loss, hp=hp, rng=rng, kind=dataset.kind, shape=shape,
                    shift=shift, scale=scale, lo=lo, hi=hi, buffer=buffer, device=device)


def _to_net(state: EBMState, x: Tensor) -> Tensor:
    return (x - state.shift) / state.scale


def _to_data(state: EBMState, x: Tensor) -> Tensor:
    return x * state.scale + state.shift


def _chain(state: EBMState, x0: Tensor, steps: int, generator: torch.Generator):
    hp = state.hp
    return langevin_sample(state.net, x0, steps=steps, step_size=float(hp["step_size"]),
                           noise_scale=float(hp["noise_scale"]), generator=generator, clamp=(state.lo, state.hi))


def step(state: EBMState, data, batch_size: int, *, record: bool = False) -> dict[str, float]:
    """One energy update.

    ebm-cd (Du & Mordatch 2019, arXiv:1903.08689, Sec. 3):
      1. x+ ~ data; chain starts from the replay buffer (5% fresh uniform noise);
      2. ``langevin_steps`` ULA steps give the negatives x-, written back to the buffer;
      3. gradient step on :func:`~losslab.losses.ebm.cd_loss` with x- detached.

    ebm-dsm (Vincent 2011, J_DSM):
      1. x ~ data, eps ~ N(0, I), x~ = x + sigma eps;
      2. gradient step on :func:`~losslab.losses.ebm.dsm_loss` of the score
         ``-grad_x E(x~)`` (built with ``create_graph``).

    The global gradient norm is clipped at ``grad_clip`` (0: no clip).

    Returns:
        Empty unless ``record``: ``g_loss``, ``g_grad_norm``, ``g_grad_mean``
        (before clipping), ``e_pos`` (mean energy of the data batch), ``e_neg``
        (mean energy of the negatives: ebm-cd's chains; for ebm-dsm a diagnostic
        chain of :data:`DIAG_STEPS` steps from uniform noise with its own
        generator, so logging does not change training), ``energy_gap`` =
        ``e_neg - e_pos``, ``chain_e_first`` / ``chain_e_last`` (mean energy at
        the chain's first and last state), ``at_bounds`` (share of the
        negatives' coordinates on the clamp box), and for ebm-cd
        ``fresh_share`` (share of chains started from fresh noise).

    Raises:
        Diverged: the loss is NaN/inf.
    """
    net, hp = state.net, state.hp
    step_no = state.g_updates + 1
    data = on_device(data, state.device)
    x_pos = _to_net(state, data.sample(batch_size, state.rng).to(torch.float32))
    log: dict[str, float] = {}
    if state.loss.objective == "cd":
        x0, slots, fresh = state.buffer.draw(batch_size, state.rng)  # 1.
        chain = _chain(state, x0, int(hp["langevin_steps"]), state.rng)  # 2.
        state.buffer.push(chain.x, slots)
        e_pos, e_neg = net(x_pos), net(chain.x)  # 3. chain.x carries no graph: negatives detached
        loss = cd_loss(e_pos=e_pos, e_neg=e_neg, alpha=float(hp["alpha"]))
        if record:
            log.update(fresh_share=float(fresh.float().mean()))
    else:
        sigma = float(hp["sigma"])
        eps = torch.randn(x_pos.shape, generator=state.rng, device=state.rng.device).to(x_pos.device)
        x_noisy = (x_pos + sigma * eps).requires_grad_(True)  # 1.
        _, g = energy_grad(net, x_noisy, create_graph=True)  # 2.
        loss = dsm_loss(score=-g, x_noisy=x_noisy, x_clean=x_pos, sigma=sigma)
    if not bool(torch.isfinite(loss)):
        raise Diverged(step_no, "energy loss")
    state.opt.zero_grad(set_to_none=True)
    loss.backward()
    if record:
        norm, mean = grad_stats(net)
        log.update(g_loss=float(loss.detach()), g_grad_norm=norm, g_grad_mean=mean)
        if state.loss.objective == "dsm":
            gen = torch.Generator().manual_seed(step_no)
            n = min(DIAG_CHAINS, batch_size)
            chain = _chain(state, uniform_box(n, state.lo, state.hi, gen), DIAG_STEPS, gen)
            with torch.no_grad():
                e_pos = net(x_pos)
            e_neg = chain.e_last
        e_pos_m, e_neg_m = float(e_pos.detach().mean()), float(e_neg.detach().mean())
        log.update(e_pos=e_pos_m, e_neg=e_neg_m, energy_gap=e_neg_m - e_pos_m,
                   chain_e_first=float(chain.e_first.mean()), chain_e_last=float(chain.e_last.mean()),
                   at_bounds=chain.at_bounds)
    if hp.get("grad_clip"):
        nn.utils.clip_grad_norm_(net.parameters(), hp["grad_clip"])
    state.opt.step()
    state.g_updates += 1
    return log


def members(states: Sequence[Any], *, stack: bool | None = None) -> Members:
    """The runs ``states`` (one loss) as one :class:`~losslab.train.members.Members`. This family's networks
    do not stack (``stack`` is ignored): :func:`step_members` runs :func:`step` member by member, each on
    its own state and stream."""
    return Members(states)


step_members = loop_step(step)
"""One update of every active member: :func:`step`, member after member (:func:`losslab.train.members.loop_step`)."""


def nfe(state: EBMState) -> int:
    """Network evaluations (each a forward and a backward pass) per generated sample: ``sample_steps``."""
    return int(state.hp["sample_steps"])


def sample(state: EBMState, n: int, *, seed: int = 0, batch: int = 500) -> Tensor:
    """``n`` samples ``(n, *shape)`` in data units (images in [-1, 1]), on the CPU.

    Each is a Langevin chain of :func:`nfe` steps from fresh uniform noise on the
    box (not from the replay buffer), drawn by a CPU generator seeded with
    ``seed`` (the chains run on ``state.device``), in batches of ``batch``.
    """
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch):
        x0 = uniform_box(min(batch, n - i), state.lo, state.hi, g)
        out.append(_chain(state, x0, nfe(state), g).x)
    return _to_data(state, torch.cat(out)).cpu()


def _quarter(rows: Sequence[dict], key: str) -> list[float]:
    vals = [float(r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(float(r[key]))]
    return vals[-max(1, len(vals) // 4):] if vals else []


def failure_signatures(rows: Sequence[dict]) -> list[str]:
    """The EBM failure signatures found in a run's logged rows (``metrics.jsonl``), as named sentences.

    * ``"energy gap exploding"``: the mean ``|energy_gap|`` over the last quarter
      of the logged rows exceeds :data:`GAP_LIMIT`: the energy separates data
      from its negatives without bound (the regulariser lost, or the sampler
      stopped reaching the data; Du & Mordatch 2019, Sec. 3, regularisation);
    * ``"samples saturating at the clamp bounds"``: the mean ``at_bounds`` over
      the last quarter exceeds :data:`BOUND_LIMIT`: the chains run into the box,
      the energy decreases outwards.

    Args:
        rows: dicts with ``energy_gap`` and ``at_bounds`` (rows without them are skipped).

    Returns:
        One sentence per signature found, starting with its name; ``[]`` for none.
    """
    out = []
    gap = _quarter(rows, "energy_gap")
    if gap:
        m = sum(abs(v) for v in gap) / len(gap)
        if m > GAP_LIMIT:
            out.append(f"energy gap exploding: mean |E(x-) - E(x+)| = {m:.3g} over the last quarter "
                       f"(> {GAP_LIMIT:g})")
    bounds = _quarter(rows, "at_bounds")
    if bounds:
        m = sum(bounds) / len(bounds)
        if m > BOUND_LIMIT:
            out.append(f"samples saturating at the clamp bounds: {100 * m:.0f}% of the negatives' coordinates "
                       f"on the box over the last quarter (> {100 * BOUND_LIMIT:.0f}%)")
    return out


def artifacts(state: EBMState, dataset, run_dir: str | Path) -> None:
    """Write ``run_dir/ebm.json``: the sampler that made the evaluated samples, and the failure signatures.

    Keys: ``objective``, ``sample_init`` ("uniform noise on the box"),
    ``sample_steps`` (= ``nfe``), ``step_size``, ``noise_scale``,
    ``langevin_steps`` (ebm-cd's training chains, else null) and
    ``failure_signatures`` (:func:`failure_signatures` of ``metrics.jsonl``).
    """
    hp = state.hp
    io.atomic_write_json(Path(run_dir) / "ebm.json", {
        "objective": state.loss.objective, "sample_init": "uniform noise on the box", "sample_steps": nfe(state),
        "step_size": hp["step_size"], "noise_scale": hp["noise_scale"], "langevin_steps": hp.get("langevin_steps"),
        "failure_signatures": failure_signatures(rundir.read_metrics(run_dir)),
    })


_BOX = ("shift", "scale", "lo", "hi")


def state_dict(state: EBMState) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(tensors, JSON metadata) that restore the run exactly: weights, optimizer, RNG, scaling, replay buffer."""
    tensors = {k: getattr(state, k) for k in _BOX}
    if state.buffer is not None:
        tensors["buffer"] = state.buffer.x
    return save_state(state, {"net": state.net}, {"opt": state.opt}, tensors=tensors, meta={"family": NAME})


def load_state_dict(state: EBMState, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Restore what :func:`state_dict` saved into a state built by :func:`init_state`."""
    load_state(state, {"net": state.net}, {"opt": state.opt}, tensors, meta)
    for k in _BOX:
        setattr(state, k, tensors[k].to(state.device, copy=True))
    if state.buffer is not None:
        state.buffer.x = tensors["buffer"].to(state.device, copy=True)
        state.buffer.lo, state.buffer.hi = state.lo, state.hi


def snapshot(state, dataset, *, seed: int) -> dict[str, Any]:
    """The model now, for the report's "How each loss learned": samples only
    (:func:`losslab.train.snapshot.samples_snapshot`: generated points or 16 images from ``seed``)."""
    return samples_snapshot(sample, state, dataset, seed=seed)
