"""Training throughput: generator updates per second for every GAN loss.

Two configurations, as the issue asks:
  * ring8 MLP (hidden 128, 3 layers, z 16), batch 512;
  * MNIST infoGAN (z 62), batch 64.

Each figure is printed beside a reference measured in the same run: a
hand-written non-saturating GAN step on the same networks (plain PyTorch, no
losslab step machinery). The ratio losslab/reference is what to watch; the
absolute numbers depend on the machine.

Usage:  .venv/bin/python benchmarks/bench_steps.py [--seconds 3] [--losses ns,wgan-gp] [--only ring8|mnist]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from losslab import config as C
from losslab.losses import GAN_LOSSES
from losslab.train import gan


class _Synthetic:
    """Random images of MNIST's shape: throughput does not depend on pixel values."""

    name, kind, shape = "mnist-shaped", "image", (1, 28, 28)

    def sample(self, n, g):
        return torch.rand(n, 1, 28, 28, generator=g) * 2 - 1


def _dataset(which: str):
    from losslab.data import load_dataset

    if which == "ring8":
        return load_dataset("ring8")
    try:
        return load_dataset("mnist", n_train=5000, download=False)
    except Exception:
        return _Synthetic()


def _time(fn, seconds: float) -> float:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def _reference_step(state, ds, bs):
    """A plain non-saturating GAN step written directly in PyTorch."""
    G, D, og, od, g = state.G, state.D, state.opt_g, state.opt_d, state.rng

    def step():
        x = ds.sample(bs, g)
        z = torch.randn(bs, state.z_dim, generator=g)
        with torch.no_grad():
            fake = G(z)
        d_loss = F.softplus(-D(x)).mean() + F.softplus(D(fake)).mean()
        od.zero_grad()
        d_loss.backward()
        od.step()
        z = torch.randn(bs, state.z_dim, generator=g)
        g_loss = F.softplus(-D(G(z))).mean()
        og.zero_grad()
        g_loss.backward()
        og.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--losses", default=",".join(GAN_LOSSES))
    ap.add_argument("--only", choices=["ring8", "mnist"], default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.seconds:.0f} s per measurement")
    for which, kind, bs in (("ring8", "vector", 512), ("mnist", "image", 64)):
        if args.only and which != args.only:
            continue
        ds = _dataset(which)
        cfg = C.resolve(kind, sets=[f"train.batch_size={bs}"])
        ref_state = gan.init_state(cfg, ds, "ns", seed=0)
        ref = _time(_reference_step(ref_state, ds, bs), args.seconds)
        print(f"\n{which} ({ds.name}), batch {bs}: reference hand-written ns step {ref:8.1f} G-updates/s")
        print(f"{'loss':<9} {'G-updates/s':>12} {'D-updates/s':>12} {'ratio to ref':>13}")
        for name in args.losses.split(","):
            state = gan.init_state(cfg, ds, name, seed=0)
            rate = _time(lambda: gan.step(state, ds, bs), args.seconds)
            nc = state.hp["n_critic"]
            print(f"{name:<9} {rate:12.1f} {rate * nc:12.1f} {rate / ref:13.2f}")


if __name__ == "__main__":
    main()
