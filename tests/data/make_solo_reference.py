"""Record the solo runs that tests/test_members.py replays: ring8, 50 updates of ns, wgan-gp and ddpm.

Written once from the code *before* the member-axis step (issue 19), so the
test shows that a solo run (M = 1) of the new step reproduces the old solo
step: every parameter after 50 updates and the diagnostics logged at every
update. One torch thread, CPU, float32.

Usage:  PYTHONPATH=src python tests/data/make_solo_reference.py   (writes tests/data/solo_reference.npz)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from losslab import config as C
from losslab.data import load_dataset
from losslab.train.loop import get_family

LOSSES = {"ns": "gan", "wgan-gp": "gan", "ddpm": "diffusion"}
STEPS, SEED = 50, 0
STRIDE = {"ns": 1, "wgan-gp": 1, "ddpm": 8}
"""Every STRIDE-th entry of each flattened tensor is kept (the denoiser and its EMA have 10^5 weights each)."""
SETS = ["train.batch_size=64", "model.hidden=32", "model.layers=2", "train.device=cpu"]
OUT = Path(__file__).with_name("solo_reference.npz")


def record(loss: str, family: str, ds) -> tuple[dict[str, np.ndarray], list[dict]]:
    """The run's weights after ``STEPS`` updates (``"<loss>/<module>.<key>"``, flattened, every
    ``STRIDE[loss]``-th entry) and its log of every update."""
    cfg = C.resolve("vector", sets=SETS)
    fam = get_family(family)
    st = fam.init_state(cfg, ds, loss, SEED)
    logs = [fam.step(st, ds, cfg.train.batch_size, record=True) for _ in range(STEPS)]
    tensors, _ = fam.state_dict(st)
    weights = {f"{loss}/{k}": v.numpy().ravel()[::STRIDE[loss]] for k, v in tensors.items() if ".state." not in k and k != "rng"}
    return weights, logs


def main() -> None:
    torch.set_num_threads(1)
    ds = load_dataset("ring8")
    arrays: dict[str, np.ndarray] = {}
    logs: dict[str, list[dict]] = {}
    for loss, family in LOSSES.items():
        w, lg = record(loss, family, ds)
        arrays.update(w)
        logs[loss] = lg
    arrays["logs"] = np.array(json.dumps(logs))
    arrays["meta"] = np.array(json.dumps({"steps": STEPS, "seed": SEED, "stride": STRIDE, "sets": SETS, "torch": torch.__version__}))
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
