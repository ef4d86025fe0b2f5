"""Checkpoint helpers shared by the model families.

safetensors stores flat tensors only, so an optimizer's nested state dict is
split into tensors and JSON metadata (param groups, scalar state).
"""

from __future__ import annotations

from typing import Any

import torch


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
