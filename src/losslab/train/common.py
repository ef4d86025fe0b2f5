"""What every model family shares: divergence, gradient statistics, optimizers,
seeded generators and the generic save / restore of a run's state.

Nothing here knows about GANs, diffusion or contrastive learning; the family
modules (:mod:`losslab.train.gan`, :mod:`losslab.train.diffusion`,
:mod:`losslab.train.contrastive`) build on it.
"""

from __future__ import annotations

from typing import Any

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


def seeded_generator(seed: int) -> torch.Generator:
    """The training stream of run ``seed``: batches, latent codes, timesteps, noise, augmentations.

    Seeded with ``10_007 * seed + 1`` so that it differs from the stream that
    ``torch.manual_seed(seed)`` gives the initial weights, and from the
    sampling generators (seeded with ``seed`` itself).
    """
    return torch.Generator().manual_seed(10_007 * seed + 1)


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
