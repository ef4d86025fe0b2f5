"""What every model family shares: divergence, gradient statistics, optimizers,
seeded generators and the generic save / restore of a run's state.

Nothing here knows about GANs, diffusion or contrastive learning; the family
modules (:mod:`losslab.train.gan`, :mod:`losslab.train.diffusion`,
:mod:`losslab.train.contrastive`) build on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from losslab.errors import UserError


class Diverged(RuntimeError):
    """A loss or a parameter became NaN/inf at generator update ``step``."""

    def __init__(self, step: int, what: str):
        super().__init__(f"{what} is not finite at generator update {step}")
        self.step = step


def check_finite(value: Tensor, what: str, step: int) -> None:
    """Raise :class:`Diverged` unless every entry of ``value`` is finite."""
    if not bool(torch.isfinite(value).all()):
        raise Diverged(step, what)


def seeded_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The training stream of run ``seed``: batches, latent codes, timesteps, noise, augmentations.

    Seeded with ``10_007 * seed + 1`` so that it differs from the stream that
    ``torch.manual_seed(seed)`` gives the initial weights, and from the
    sampling generators (seeded with ``seed`` itself). The generator lives on
    ``device``: a stream is reproducible on one device (CPU and CUDA streams of
    one seed differ).
    """
    return torch.Generator(device=torch.device(device)).manual_seed(10_007 * seed + 1)


# ----------------------------------------------------------------------------- devices and precision


WORKER_INDEX_ENV = "LOSSLAB_WORKER_INDEX"
"""Set by the local backend in each worker process (0, 1, ...): which GPU "auto" picks."""

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
"""What ``train.device`` accepts."""


def resolve_device(name: str | None) -> torch.device:
    """The torch device of ``train.device``, checked to exist before any work.

    Args:
        name: "auto" (the first CUDA GPU, else Apple's MPS, else the CPU),
            "cpu", "cuda", "cuda:N" or "mps"; None means "auto".

    Returns:
        A ``torch.device``. "auto" and "cuda" pick ``cuda:(i mod n)`` in
        worker i of the local backend (environment variable
        :data:`WORKER_INDEX_ENV`), ``cuda:0`` elsewhere; "cuda:N" is that GPU.

    Raises:
        UserError: an unknown name, or a device this machine does not have
            (one line: ``train.device = 'cuda:3': ...``).
    """
    name = "auto" if name is None else str(name).strip().lower()
    if name in ("auto", "cuda") and torch.cuda.is_available():
        # Workers of the local backend spread over the GPUs: worker i takes cuda:(i mod count).
        return torch.device("cuda", int(os.environ.get(WORKER_INDEX_ENV, "0")) % torch.cuda.device_count())
    if name == "auto":
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"train.device = {name!r}: must be one of {', '.join(DEVICE_CHOICES)}")
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = 0 if dev.index is None else dev.index
        if index >= n:
            have = f"{n} CUDA device(s)" if n else "no CUDA GPU"
            raise UserError(f"train.device = {name!r}: this machine has {have}; use train.device=cpu or auto")
        return torch.device("cuda", index)
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                  and torch.backends.mps.is_available()):
        raise UserError(f"train.device = {name!r}: MPS is not available here; use train.device=cpu or auto")
    return dev


def autocast(device: torch.device, precision: str | None):
    """Autocast context of ``train.precision`` for forward passes: bf16 on CUDA (and CPU when asked).

    ``"fp32"`` / None: a no-op context. ``"bf16"``: ``torch.autocast`` with
    bfloat16 on CUDA and CPU (matrix products in bf16, reductions and losses in
    float32); on MPS a no-op. Losses are computed on float32 outputs.
    """
    if precision != "bf16" or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


_ON_DEVICE: dict[tuple[int, str], Any] = {}


def on_device(dataset, device: torch.device):
    """``dataset`` for drawing *training batches* on ``device``; ``dataset`` itself on the CPU.

    The training rows move to the device. A toy's mixture sampler is rebuilt
    from its ``modes`` / ``mode_std`` / ``weights`` on the device; other data
    get a sampler drawing row indices on the generator's device (the same
    rule as :meth:`losslab.data.Dataset.sample`). Batches are thus drawn with a
    generator on that device. Use the result for ``sample`` only (its
    ``reference`` may differ). Cached per (dataset, device).

    Raises:
        UserError: a dataset with a custom sampler and no mixture description
            (cannot be sampled on another device).
    """
    if device.type == "cpu" or not hasattr(dataset, "train"):
        return dataset
    key = (id(dataset), str(device))
    hit = _ON_DEVICE.get(key)
    if hit is not None and hit[0] is dataset:
        return hit[1]
    changes: dict[str, Any] = {"train": dataset.train.to(device), "test": dataset.test.to(device)}
    if dataset.sampler is not None:
        if dataset.modes is None or dataset.weights is None or dataset.mode_std is None:
            raise UserError(f"data {dataset.name}: its sampler runs on the CPU only; use train.device=cpu")
        from losslab.data.toy import mixture_sampler

        changes.update(modes=dataset.modes.to(device), weights=dataset.weights.to(device))
        changes["sampler"] = mixture_sampler(changes["modes"], dataset.mode_std, changes["weights"])
    else:
        rows = changes["train"]

        def draw(n: int, generator: torch.Generator | None = None) -> Tensor:
            where = generator.device if generator is not None else rows.device
            return rows[torch.randint(len(rows), (n,), generator=generator, device=where).to(rows.device)]

        changes["sampler"] = draw
    moved = dataclasses.replace(dataset, **changes)
    _ON_DEVICE[key] = (dataset, moved)
    return moved


def make_optimizer(params, hp: dict[str, Any], lr: float, *, foreach: bool | None = True) -> torch.optim.Optimizer:
    """Adam (betas ``hp["betas"]``, default (0.5, 0.999)) or RMSprop (``hp["optimizer"] == "rmsprop"``).

    RMSprop is the WGAN paper's optimizer (Arjovsky et al. 2017, Sec. 4).
    ``foreach`` selects PyTorch's multi-tensor implementation (``None``: its
    default); it does not change the update rule, only the order of float
    operations, so each family keeps the one its results were made with.

    Raises:
        KeyError: ``hp`` has no ``"optimizer"``.
    """
    if hp["optimizer"] == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, foreach=foreach)
    return torch.optim.Adam(params, lr=lr, betas=tuple(hp.get("betas", (0.5, 0.999))), foreach=foreach)


def single_network_lr(lc, family: str) -> float | None:
    """The learning rate ``loss.lr_g`` / ``loss.lr_d`` set for a family that trains one network.

    Args:
        lc: the :class:`~losslab.config.LossConfig`.
        family: the family's name, for the message.

    Returns:
        The value set (either key), or None when neither is set.

    Raises:
        UserError: both are set, to different values.
    """
    if lc.lr_g is not None and lc.lr_d is not None and lc.lr_g != lc.lr_d:
        raise UserError(f"loss.lr_g={lc.lr_g:g} and loss.lr_d={lc.lr_d:g} differ, but the {family} family "
                        "trains a single network: set one of them")
    return lc.lr_g if lc.lr_g is not None else lc.lr_d


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


# ----------------------------------------------------------------------------- state save / restore
# safetensors stores flat tensors only, so an optimizer's nested state dict is
# split into tensors and JSON metadata (param groups, scalar state).


def flatten_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    """Split ``opt.state_dict()`` into tensors (for safetensors) and JSON metadata, keys under ``prefix``."""
    sd = opt.state_dict()
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}.state.{pid}.{k}"] = v.detach().clone().contiguous()
            else:
                meta.setdefault(f"{prefix}.scalars", {})[f"{pid}.{k}"] = v
    meta[f"{prefix}.param_groups"] = sd["param_groups"]


def unflatten_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    """Inverse of :func:`flatten_optimizer`: load the optimizer state saved under ``prefix``."""
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}.state."
    for key, v in tensors.items():
        if key.startswith(head):
            pid, name = key[len(head):].split(".", 1)
            state.setdefault(int(pid), {})[name] = v
    for key, v in meta.get(f"{prefix}.scalars", {}).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta[f"{prefix}.param_groups"]})


def save_state(
    state: Any,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    *,
    tensors: dict[str, Tensor] | None = None,
    meta: dict[str, Any] | None = None,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(tensors, JSON metadata) of a run state: modules, optimizers, ``state.rng``, update counts.

    Module weights go under ``"<name>.<key>"``, optimizer state under
    ``"<name>.state.<param>.<key>"``, the training generator under ``"rng"``;
    ``meta`` holds ``g_updates``, ``d_updates`` and the optimizers' param
    groups. ``tensors`` / ``meta`` add a family's own entries.
    """
    out_t: dict[str, Tensor] = {}
    out_m: dict[str, Any] = {"g_updates": state.g_updates, "d_updates": state.d_updates, **(meta or {})}
    for name, module in modules.items():
        for k, v in module.state_dict().items():
            out_t[f"{name}.{k}"] = v.detach().clone().contiguous()
    for name, opt in optimizers.items():
        flatten_optimizer(name, opt, out_t, out_m)
    out_t["rng"] = state.rng.get_state()
    for k, v in (tensors or {}).items():
        out_t[k] = v.detach().clone().contiguous()
    return out_t, out_m


def load_state(
    state: Any,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    tensors: dict[str, Tensor],
    meta: dict[str, Any],
) -> None:
    """Restore what :func:`save_state` saved into a state built by the family's ``init_state``.

    Raises:
        KeyError, RuntimeError: the tensors do not fit these modules (another configuration).
    """
    for name, module in modules.items():
        head = name + "."
        module.load_state_dict({k[len(head):]: v for k, v in tensors.items() if k.startswith(head)})
    for name, opt in optimizers.items():
        unflatten_optimizer(name, opt, tensors, meta)
    state.rng.set_state(tensors["rng"])
    state.g_updates = int(meta["g_updates"])
    state.d_updates = int(meta["d_updates"])
