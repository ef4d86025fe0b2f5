"""Contrastive encoders: training throughput and linear-probe accuracy within a CPU budget.

For each loss, the small CNN encoder of :mod:`losslab.models.encoder` trains
for a fixed wall-clock budget (default 60 s, one torch thread) on MNIST (falls
back to scikit-learn's 8x8 digits when the MNIST files are missing), then is
evaluated exactly as a losslab run is (:func:`losslab.train.contrastive.evaluate`:
logistic-regression probe and 20-NN on at most 5,000 training / 2,000 test
images). Printed per loss: updates done, source images/s (images drawn from
the dataset; two-view losses push twice as many through the encoder),
linear-probe and kNN accuracy; and the two baselines measured in the same
evaluation (raw pixels, the untrained encoder).

Usage:
    .venv/bin/python benchmarks/bench_contrastive.py [--seconds 60] [--losses nt-xent,triplet,pairwise-bce]
        [--data mnist|fashion-mnist|digits] [--batch 64] [--n-train 20000] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import time

import torch

from losslab.config import Config
from losslab.data import load_dataset
from losslab.train import contrastive as fam


def _dataset(name: str, n_train: int, data_dir: str | None):
    if name == "digits":
        return load_dataset("digits")
    try:
        return load_dataset(name, data_dir=data_dir, n_train=n_train, download=False)
    except Exception as e:  # noqa: BLE001 - a benchmark falls back rather than stops
        print(f"({name} not available: {e}; using digits)")
        return load_dataset("digits")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="training wall-clock budget per loss")
    ap.add_argument("--losses", default="nt-xent,triplet,pairwise-bce")
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n-train", type=int, default=20_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    ds = _dataset(args.data, args.n_train, args.data_dir)
    print(f"data {ds.name} {tuple(ds.shape)}, {len(ds.train)} train / {len(ds.test)} test, batch {args.batch}, "
          f"{args.threads} thread(s), budget {args.seconds:.0f} s of training per loss")
    print(f"{'loss':14s} {'updates':>8s} {'img/s':>8s} {'probe':>7s} {'kNN':>7s} {'eval s':>7s}")
    base = None
    for name in args.losses.split(","):
        state = fam.init_state(Config(), ds, name, args.seed)
        for _ in range(2):  # warm-up (allocator, first-call overheads), not counted
            fam.step(state, ds, args.batch)
        n0, t0 = state.g_updates, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            fam.step(state, ds, args.batch)
        dt = time.perf_counter() - t0
        steps = state.g_updates - n0
        t1 = time.perf_counter()
        m = fam.evaluate(state, ds)
        t_eval = time.perf_counter() - t1
        extra = f"  zero-shot {m['zero_shot']:.3f}" if "zero_shot" in m else ""
        print(f"{name:14s} {steps:8d} {steps * args.batch / dt:8.0f} {m['linear_probe']:7.3f} "
              f"{m['knn']:7.3f} {t_eval:7.1f}{extra}")
        base = m
    if base is not None:
        print(f"{'raw pixels':14s} {'':8s} {'':8s} {base['linear_probe_pixels']:7.3f} {base['knn_pixels']:7.3f}")
        print(f"{'random encoder':14s} {'':8s} {'':8s} {base['linear_probe_random_encoder']:7.3f} "
              f"{base['knn_random_encoder']:7.3f}   (seed {args.seed}; chance {base['chance']:.3f})")


if __name__ == "__main__":
    main()
