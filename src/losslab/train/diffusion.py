"""The diffusion (DDPM) model family: its state, its step, its hyperparameters.

The loop (:mod:`losslab.train.loop`) calls it through the
:class:`~losslab.train.loop.Family` protocol; ``nfe`` is the sampler's network
evaluations per sample and ``artifacts`` writes the data of the report's
diffusion figure (``RUN/diffusion.npz``).

Budget: one denoiser update counts as one generator update (``g_updates``);
``d_updates`` stays 0. :func:`step` is Algorithm 1 of Ho et al. 2020
(arXiv:2006.11239): draw x_0, t, eps; take a gradient step on the objective.

Scale: the diffusion prior N(0, I) assumes data of unit scale. Images are in
[-1, 1] as trained. **Vectors are standardised per dimension** with the mean
and standard deviation of the training rows (a user CSV in any units works);
samples are mapped back to data units. At every sampling step the x0
prediction is clipped to the data's range: [-1, 1] for images (as in Ho et
al.'s code), the training rows' per-dimension range widened by
:data:`CLIP_MARGIN` for vectors (without it, eps-prediction on the cosine
schedule divides by sqrt(alpha_bar_T) ~ 1e-5 at the first step and fails).

Networks (:func:`losslab.models.denoiser.build_denoiser`): for vectors an MLP
of width ``max(cfg.model.hidden, 128)`` and ``cfg.model.layers`` blocks
(see :data:`MIN_VECTOR_WIDTH`). For images the small U-Net with widths
16/32/64 (:data:`UNET_BASE`); ``model.hidden`` does not apply to it.

Device: the family runs on ``train.device`` (:func:`~losslab.train.common.resolve_device`):
the denoiser, its EMA, the schedule's tensors, the data scaling and the
training stream (batches, timesteps, noise: a generator on that device). On
the CPU nothing differs from a CPU-only build. Samples are drawn from a CPU
generator seeded with the sample seed (so a trained model gives the same
samples on every device, up to float rounding) and returned on the CPU.

Sampling for evaluation: the loss's sampler (DDIM, eta 0, by default) with
``sample_steps`` network evaluations per sample, by default
:data:`DEFAULT_SAMPLE_STEPS` (vectors 100, images 25), using the exponential
moving average (EMA) of the weights (:func:`ema_decay`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from losslab import io, rundir
from losslab.config import Config, loss_hparams
from losslab.losses.diffusion import DiffusionLoss, DiffusionObjective, get_diffusion_loss, make_objective
from losslab.losses.families import FAMILY_SPECS
from losslab.models.denoiser import build_denoiser
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
    single_network_lr,
)
from losslab.train.members import Members
from losslab.train.snapshot import samples_snapshot

NAME = "diffusion"
FAMILY = NAME  # the name this module had before the Family protocol

KEYS: frozenset[str] = FAMILY_SPECS[NAME].keys
"""The config keys this family reads besides the loop's (see :data:`losslab.train.loop.LOOP_KEYS`).
``model.hidden`` applies to vector data only (images use the U-Net of :data:`UNET_BASE`)."""

evaluate = None  # measured on its samples (losslab.metrics), not by the family
model_metrics = None  # nothing beyond the samples' metrics

MIN_VECTOR_WIDTH = 128
"""Smallest MLP width for vectors. Measured on ring8 (batch 256, 1,500 updates,
seed 0, DDIM 100 steps): width 64 gives W1 0.33 (ddpm) / 0.11 (ddpm-v) and 7%
/ 65% of samples within 3 std of a mode; width 128 gives W1 0.22 / 0.09 and
21% / 73%, at about 1.5x the time per step."""

DEFAULT_SAMPLE_STEPS = {"vector": 100, "image": 25}
"""Network evaluations per sample when neither the loss nor the config sets them."""

N_BUCKETS = 10
"""Timestep buckets of the per-bucket losses (``loss_t0`` .. ``loss_t9``)."""

CLIP_MARGIN = 0.1
"""Vectors: x0 predictions are clipped to the data's box widened by this fraction of its width."""

UNET_BASE = 16
"""U-Net width at full resolution (images): ~30 MMAC per 28x28 forward pass."""


@dataclass
class DiffusionState:
    """Everything a diffusion run carries between steps (and saves in a checkpoint).

    Attributes
    ----------
    net : nn.Module
        The denoiser being trained.
    ema : nn.Module or None
        Exponential moving average of ``net``'s weights, used for sampling.
    opt : torch.optim.Optimizer
    loss : DiffusionLoss
    objective : DiffusionObjective, FlowMatchingObjective or EDMObjective
        Owns the noise levels, the noise sampling, the loss and the sampler
        (:func:`losslab.losses.diffusion.make_objective`).
    hp : dict
        Resolved hyperparameters (:func:`hparams`).
    rng : torch.Generator
        Data batches, timesteps and noise of training, on ``device``.
    kind : str
        "vector" | "image".
    shape : tuple of int
        Shape of one sample.
    shift, scale : Tensor
        ``x_net = (x - shift) / scale`` (vectors: per-dimension mean and std of
        the training rows; images: 0 and 1), shape ``(1, *shape)``.
    lo, hi : Tensor
        Box the x0 prediction is clipped to while sampling, in network units,
        ``(1, *shape)``: images [-1, 1]; vectors the training rows' per-dimension
        range widened by :data:`CLIP_MARGIN` of its width on each side.
    """

    net: nn.Module
    ema: nn.Module | None
    opt: torch.optim.Optimizer
    loss: DiffusionLoss
    objective: DiffusionObjective
    hp: dict[str, Any]
    rng: torch.Generator
    kind: str
    shape: tuple[int, ...]
    shift: Tensor
    scale: Tensor
    lo: Tensor
    hi: Tensor
    g_updates: int = 0
    d_updates: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"


def hparams(loss: DiffusionLoss, cfg: Config, dataset) -> dict[str, Any]:
    """The run's hyperparameters: the loss's ``defaults`` overridden by the config.

    Precedence of the learning rate: ``diffusion.lr`` > ``loss.lr_g`` /
    ``loss.lr_d`` (the denoiser is the family's one network) > the loss's
    ``lr`` x ``loss.lr_scale`` (the toy preset's 5x, as for the GAN losses).
    ``loss.optimizer``, ``loss.beta1``, ``loss.beta2`` apply
    (:func:`losslab.config.loss_hparams`); every set ``diffusion.*`` field
    replaces the loss's value; ``sample_steps = None`` becomes
    :data:`DEFAULT_SAMPLE_STEPS` of the data's kind.

    Raises:
        UserError: ``loss.lr_g`` and ``loss.lr_d`` set to different values.
    """
    hp = loss_hparams(loss.defaults, cfg.loss)
    lr = single_network_lr(cfg.loss, NAME)
    if lr is not None:
        hp["lr"] = lr
    for f in dataclasses.fields(cfg.diffusion):
        v = getattr(cfg.diffusion, f.name)
        if v is not None:
            hp[f.name] = v
    if hp.get("sample_steps") is None:
        hp["sample_steps"] = DEFAULT_SAMPLE_STEPS[dataset.kind]
    return hp


def init_state(cfg: Config, dataset, loss_name: str, seed: int) -> DiffusionState:
    """Denoiser, optimizer, schedule and RNG of one (loss, seed) run.

    The seed fixes the initial weights (``torch.manual_seed``) and the stream
    of data batches, timesteps and noise (a dedicated ``torch.Generator``).

    Everything lives on ``cfg.train.device``; the initial weights and the
    data scaling are computed on the CPU, then moved (the same on every device).

    Raises
    ------
    UserError
        Unknown loss, schedule, sampler; ``sample_steps`` not in 1..T; a data
        shape the denoisers do not support; a device this machine lacks.
    """
    device = resolve_device(getattr(cfg.train, "device", "cpu"))
    loss = get_diffusion_loss(loss_name)
    kind = dataset.kind
    hp = hparams(loss, cfg, dataset)
    objective = make_objective(loss, hp, kind=kind, device=device)
    objective.check(hp["sampler"], hp["sample_steps"])  # validate now, not after training
    shape = tuple(int(s) for s in dataset.shape)
    torch.manual_seed(seed)
    net = build_denoiser(
        shape, hidden=max(cfg.model.hidden, MIN_VECTOR_WIDTH), layers=cfg.model.layers, base=UNET_BASE
    )
    ema = None
    if hp.get("ema", 0.0) > 0.0:
        ema = copy.deepcopy(net).requires_grad_(False)
    if kind == "vector":
        train = dataset.train.to(torch.float32)
        shift = train.mean(dim=0, keepdim=True)
        scale = train.std(dim=0, keepdim=True).clamp_min(1e-8)
        z = (train - shift) / scale
        lo, hi = z.min(dim=0, keepdim=True).values, z.max(dim=0, keepdim=True).values
        lo, hi = lo - CLIP_MARGIN * (hi - lo), hi + CLIP_MARGIN * (hi - lo)
    else:
        shift, scale = torch.zeros(1, *shape), torch.ones(1, *shape)
        lo, hi = -torch.ones(1, *shape), torch.ones(1, *shape)
    net = net.to(device)
    ema = ema.to(device) if ema is not None else None
    shift, scale, lo, hi = (v.to(device) for v in (shift, scale, lo, hi))
    # foreach=None: PyTorch's default implementation, with which this family's results were made.
    opt = make_optimizer(net.parameters(), hp, hp["lr"], foreach=None)
    return DiffusionState(
        net=net,
        ema=ema,
        opt=opt,
        loss=loss,
        objective=objective,
        hp=hp,
        rng=seeded_generator(seed, device),
        kind=kind,
        shape=shape,
        shift=shift,
        scale=scale,
        lo=lo,
        hi=hi,
        device=device,
        precision=getattr(cfg.train, "precision", None) or "fp32",
    )


def _to_net(state: DiffusionState, x: Tensor) -> Tensor:
    return (x - state.shift) / state.scale


def _to_data(state: DiffusionState, x: Tensor) -> Tensor:
    return x * state.scale + state.shift


def _bucket_of(t: Tensor, T: int) -> Tensor:
    """Bucket ``0..N_BUCKETS-1`` of each timestep: ``floor(t * N_BUCKETS / T)``."""
    return torch.div(t * N_BUCKETS, T, rounding_mode="floor")


def ema_decay(decay: float, updates: int) -> float:
    """EMA decay after ``updates`` optimizer updates: ``min(decay, (1 + n) / (10 + n))``.

    The warm-up of TensorFlow's ``ExponentialMovingAverage(num_updates=n)`` (also
    the default of diffusers' ``EMAModel``): early averages forget the random
    initialisation quickly, so short runs sample from trained weights.
    """
    return min(decay, (1.0 + updates) / (10.0 + updates))


def members(states: Sequence[DiffusionState], *, stack: bool | None = None) -> Members:
    """The runs ``states`` (one loss) as one :class:`~losslab.train.members.Members`: stacked MLP
    denoisers (and EMAs) when they can stack (default for M > 1), else each member's own networks.

    Raises:
        NotBatchable: the states train different losses.
        ValueError: the states are at different updates.
    """
    if len({id(s.loss) for s in states}) != 1:
        raise NotBatchable("members must train one loss")
    return Members(states, _parts, stack=stack)


def stack_blocker(cfg: Config, dataset, loss_name: str) -> str | None:
    """None: the vector denoisers (MLPs) of M runs always stack into ensembles (images take no stack)."""
    get_diffusion_loss(loss_name)
    return None


def step(state: DiffusionState, data, batch_size: int, *, record: bool = False) -> dict[str, float]:
    """One denoiser update of one run: :func:`step_members` with M = 1 (the run's own networks).

    Raises:
        Diverged: the loss is NaN/inf.
    """
    ms = state.extra.get("members")
    if ms is None or not ms.active[0] or ms.modules["net"].members[0] is not state.net:
        ms = state.extra["members"] = members([state], stack=False)
    logs, diverged = step_members(ms, data, batch_size, record=record)
    if diverged:
        raise diverged[0]
    return logs[0]


def step_members(ms: Members, data, batch_size: int, *, record: bool = False
                 ) -> tuple[list[dict[str, float]], dict[int, Diverged]]:
    """One denoiser update of every active member (Ho et al. 2020, Algorithm 1).

    1. x_0 ~ data (standardised for vectors), t ~ U{0..T-1}, eps ~ N(0, I),
       each member from its own stream;
    2. gradient step on the batch mean of the objective's per-sample loss
       (:meth:`~losslab.losses.diffusion.DiffusionObjective.members`), each
       member's global gradient norm clipped at its ``grad_clip``;
    3. EMA of the weights: ``w_ema <- d w_ema + (1 - d) w``, ``d`` from :func:`ema_decay`.

    Args:
        ms: the members (:func:`members`); their states are modified in place.
        data: a :class:`losslab.data.Dataset` (``sample(n, generator)``); moved
            to the members' device when that is not the CPU.
        batch_size: samples per batch, per member.
        record: compute the diagnostics.

    Returns:
        ``(logs, diverged)``: ``logs[k]`` empty unless ``record``: ``g_loss``
        (batch-mean loss), ``g_grad_norm``, ``g_grad_mean`` (before clipping),
        ``loss_t0`` .. ``loss_t9`` (mean loss of the batch's samples in each
        timestep bucket; a bucket without samples is left out); ``diverged``
        the members whose loss is NaN/inf (:class:`~losslab.train.common.Diverged`).
    """
    s0 = ms.states[0]
    net, obj = ms.modules["net"], s0.objective
    step_no = s0.g_updates + 1
    net.train()
    data = on_device(data, ms.device)
    shift, scale = _member_box(ms)
    x0 = (ms.draw(lambda r: data.sample(batch_size, r)) - shift) / scale  # 1. (M, N, *shape)
    t = ms.draw(lambda r: obj.sample_t(batch_size, r))  # (M, N)
    with autocast(ms.device, s0.precision):  # train.precision = "bf16": the denoiser's matrix products
        per_sample = obj.members(net, x0, t=t, generators=ms.rngs).float()  # (M, N)
    loss = per_sample.mean(dim=1)  # (M,)
    ms.zero_grad("opt")  # 2.
    (loss * ms.mask).sum().backward()  # summed: member k's gradient is its own
    diverged = {k: Diverged(step_no, "diffusion loss") for k in ms.check([loss])}
    logs: list[dict[str, float]] = [{} for _ in range(ms.m)]
    if record:
        norm, mean = ms.grad_stats("net")
        buckets = obj.bucket(t, N_BUCKETS)
        ps, lo = per_sample.detach(), loss.detach()
        for k in range(ms.m):
            if not ms.active[k]:
                continue
            log = logs[k]
            log.update(g_loss=float(lo[k]), g_grad_norm=float(norm[k]), g_grad_mean=float(mean[k]))
            for b in range(N_BUCKETS):
                sel = buckets[k] == b
                if bool(sel.any()):
                    log[f"loss_t{b}"] = float(ps[k][sel].mean())
    clip = ms.hp("grad_clip") if "grad_clip" in s0.hp else None
    if torch.is_tensor(clip):  # members that differ; those that do not clip get an infinite bound
        ms.clip_grad_norm_("net", torch.where(clip > 0, clip, torch.full_like(clip, float("inf"))))
    elif clip:
        ms.clip_grad_norm_("net", clip)
    ms.step("opt")
    if "ema" in ms.modules:  # 3.
        ms.lerp_("ema", "net", 1.0 - ema_decay(ms.shared("ema"), s0.g_updates))
    for k, st in enumerate(ms.states):
        st.g_updates += ms.active[k]
    return logs, diverged


def _member_box(ms: Members) -> tuple[Tensor, Tensor]:
    """The members' data scaling, ``(M, 1, *shape)`` each (cached on ``ms``)."""
    box = getattr(ms, "_box", None)
    if box is None:
        box = ms._box = (torch.stack([s.shift for s in ms.states]), torch.stack([s.scale for s in ms.states]))
    return box


def nfe(state: DiffusionState) -> int:
    """Network evaluations per generated sample of the configured sampler: ``sample_steps`` for DDIM / DDPM
    and Euler; Heun takes the largest ``2 N - 1`` (edm) or ``2 N`` (flow-matching) ``<= sample_steps``
    (:func:`losslab.schedules.ode_steps`)."""
    return int(state.objective.nfe(state.hp["sampler"], state.hp["sample_steps"]))


def _sampler_net(state: DiffusionState) -> nn.Module:
    return state.ema if state.ema is not None else state.net


def _clip_range(state: DiffusionState) -> tuple[Tensor | float, Tensor | float] | None:
    if state.kind == "image":
        return (-1.0, 1.0)
    return (state.lo, state.hi)


def _run_sampler(state: DiffusionState, n: int, generator: torch.Generator, trajectory: bool = False):
    hp = state.hp
    return state.objective.sample(_sampler_net(state), (n, *state.shape), sampler=hp["sampler"],
                                  steps=hp["sample_steps"], eta=float(hp.get("eta", 0.0)), generator=generator,
                                  clip=_clip_range(state), trajectory=trajectory, device=state.device)


@torch.no_grad()
def sample(state: DiffusionState, n: int, *, seed: int = 0, batch: int = 500) -> Tensor:
    """``n`` generated samples ``(n, *shape)`` in data units (images in [-1, 1]), on the CPU.

    Runs the configured sampler with :func:`nfe` network evaluations per
    sample on the EMA weights (on ``state.device``), from noise drawn by a
    CPU generator seeded with ``seed``, in batches of ``batch``.
    """
    net = _sampler_net(state)
    was_training = net.training
    net.eval()
    g = torch.Generator().manual_seed(seed)
    out = [_run_sampler(state, min(batch, n - i), g) for i in range(0, n, batch)]
    net.train(was_training)
    return _to_data(state, torch.cat(out)).cpu()


@torch.no_grad()
def bucket_losses(state: DiffusionState, x0: Tensor, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Mean loss per timestep bucket on the clean samples ``x0`` (data units).

    For each of :data:`N_BUCKETS` buckets of the noise level (equal ranges of
    t for DDPM and flow matching, deciles of the training distribution of
    sigma for EDM: the objective's ``bucket_draw``), every sample gets a level
    drawn inside the bucket and fresh noise; the sampling network (EMA) is
    evaluated.

    Returns
    -------
    edges : (N_BUCKETS + 1,) tensor
        Bucket b holds ``edges[b] <= level < edges[b + 1]`` (DDPM: int64 timesteps).
    losses : (N_BUCKETS,) float64 tensor
    """
    net = _sampler_net(state)
    obj = state.objective
    g = torch.Generator().manual_seed(seed)
    x = _to_net(state, x0.to(state.device))
    out = []
    for b in range(N_BUCKETS):
        t = obj.bucket_draw(b, N_BUCKETS, len(x), g).to(state.device)
        out.append(float(obj(net, x, t=t, generator=g).mean()))
    return obj.bucket_edges(N_BUCKETS), torch.tensor(out, dtype=torch.float64)


def _shown(obj, states: Tensor, levels: Tensor) -> Tensor:
    """States (K, n, ...) in network units as the report draws them: times the objective's
    ``display_scale(levels)`` where it has one (EDM: its states grow to sigma_max = 80)."""
    scale = getattr(obj, "display_scale", None)
    if scale is None:
        return states
    return states * scale(levels).to(states.device, states.dtype).reshape(-1, *([1] * (states.dim() - 1)))


def artifacts(state: DiffusionState, dataset, run_dir: str | Path, *, seed: int = 0) -> None:
    """Write ``run_dir/diffusion.npz``: what the report's diffusion figure needs.

    Arrays (samples in data units, images in [-1, 1]):

    - ``forward_t`` (8,) noise levels of the objective (``strip_levels``; DDPM:
      int64 0-based timesteps, -1 = the clean data x_0, then 7 from T/50 to T - 1) and ``forward_x`` (8, k, *shape): q_sample of the same
      k held-out samples with the same noise at each t (k = 1,000 vectors, 8 images);
    - ``reverse_t`` (K,) and ``reverse_x`` (K, m, *shape): states of m generated
      samples along the sampling chain, from x_T (t = T) to the output (t = -1),
      at most 9 evenly spaced states (m = 1,000 vectors, 8 images);
    - ``bucket_edges`` (11,), ``bucket_loss`` (10,): :func:`bucket_losses` on a
      held-out batch (``dataset.reference``, 1,000 vectors / 256 images);
    - ``kind``, ``objective``, ``process`` (the objective's ``describe()``),
      ``level_name`` ("t" or "sigma"), ``sampler`` (str), ``nfe``, ``eta``,
      ``g_updates`` (scalars); DDPM objectives also ``schedule`` and ``T``;
    - ``state_note`` (str): how the states are scaled for display, "" when they
      are not (EDM: divided by ``sqrt(1 + sigma^2 / sigma_data^2)``, the network's view);
    - ``forward_label``, ``reverse_label``, ``bucket_label`` (str arrays): the
      panel and bar titles (flow matching's t runs 0 = data .. 1 = noise, EDM's
      levels are sigmas, its buckets deciles of the training sigmas).
    """
    g = torch.Generator().manual_seed(seed)
    big = state.kind == "vector"
    real = torch.as_tensor(dataset.reference(1000 if big else 256, g)).to(torch.float32)
    obj = state.objective
    with torch.no_grad():
        # Forward strip: x_t of the same real samples and the same eps at 8 noise levels.
        k = min(len(real), 1000 if big else 8)
        x0 = _to_net(state, real[:k].to(state.device))
        eps = torch.randn(x0.shape, generator=g).to(state.device)
        fwd_t = obj.strip_levels()
        fwd = torch.stack([obj.perturb(x0, torch.full((k,), t.item(), dtype=fwd_t.dtype, device=state.device), eps)
                           for t in fwd_t])  # (8, k, *shape)
        # Reverse trajectory of generated samples.
        net = _sampler_net(state)
        was_training = net.training
        net.eval()
        _, ts, xs = _run_sampler(state, 1000 if big else 8, g, trajectory=True)
        net.train(was_training)
        keep = torch.unique(torch.linspace(0, len(ts) - 1, min(9, len(ts))).round().long())
        edges, losses = bucket_losses(state, real, seed=seed)
    arrays = {
        "forward_t": fwd_t.numpy(),
        "forward_x": _to_data(state, _shown(obj, fwd, fwd_t)).cpu().numpy().astype(np.float32),
        "reverse_t": ts[keep].numpy(),
        "reverse_x": _to_data(state, _shown(obj, xs[keep], ts[keep])).cpu().numpy().astype(np.float32),
        "bucket_edges": edges.numpy(),
        "bucket_loss": losses.numpy(),
        "kind": np.array(state.kind),
        "objective": np.array(state.loss.objective),
        "process": np.array(obj.describe()),
        "state_note": np.array(getattr(obj, "display_note", "")),
        "level_name": np.array(obj.level_name),
        "forward_label": np.array([obj.level_label(t, "x_0 (data)") for t in fwd_t.tolist()]),
        "reverse_label": np.array([obj.level_label(t, "output x_0") for t in ts[keep].tolist()]),
        "bucket_label": np.array(obj.bucket_labels(N_BUCKETS)),
        "sampler": np.array(state.hp["sampler"]),
        "nfe": np.array(nfe(state)),
        "eta": np.array(float(state.hp.get("eta", 0.0))),
        "g_updates": np.array(state.g_updates),
    }
    if isinstance(obj, DiffusionObjective):
        arrays.update(schedule=np.array(state.hp["schedule"]), T=np.array(obj.schedule.T))
    io.atomic_write_bytes(Path(run_dir) / rundir.DIFFUSION_ARTIFACTS, io.npz_bytes(**arrays))


_BOX = ("shift", "scale", "lo", "hi")


def _parts(state: DiffusionState):
    modules = {"net": state.net, **({"ema": state.ema} if state.ema is not None else {})}
    return modules, {"opt": state.opt}


def state_dict(state: DiffusionState) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(tensors for safetensors, JSON metadata) that restore the run exactly (with the data scaling)."""
    modules, opts = _parts(state)
    return save_state(state, modules, opts, tensors={k: getattr(state, k) for k in _BOX}, meta={"family": NAME})


def load_state_dict(state: DiffusionState, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Restore what :func:`state_dict` saved into a state built by :func:`init_state`."""
    modules, opts = _parts(state)
    load_state(state, modules, opts, tensors, meta)
    for k in _BOX:
        setattr(state, k, tensors[k].to(state.device, copy=True))


def snapshot(state, dataset, *, seed: int) -> dict[str, Any]:
    """The model now, for the report's "How each loss learned": samples only
    (:func:`losslab.train.snapshot.samples_snapshot`: generated points or 16 images from ``seed``)."""
    return samples_snapshot(sample, state, dataset, seed=seed)
