"""Diffusion family throughput: training steps per second and sampling time.

Two configurations, as the issue asks:
  * ring8: the MLP denoiser of the vector preset (width max(hidden, 128), 3 blocks),
    batch 256; sampling 2,500 samples;
  * MNIST-shaped images (1, 28, 28): the small U-Net, batch 64; sampling 1,000 samples.

Each figure is printed beside a reference measured in the same run on the same
network: for training, a plain forward/backward/Adam step on random inputs and
timesteps (no schedule, no noise sampling, no EMA, no clipping); for sampling,
the same number of plain forward passes (NFE x n samples, same batches). The
ratio losslab/reference shows the overhead of the diffusion machinery; the
absolute numbers depend on the machine.

Usage:  .venv/bin/python benchmarks/bench_diffusion.py [--seconds 3] [--threads 1] [--only ring8|mnist]
        [--losses ddpm,ddpm-v] [--sample-steps N]
"""

from __future__ import annotations

import argparse
import time

import torch

from losslab import config as C
from losslab.losses.diffusion import DIFFUSION_LOSSES
from losslab.train import diffusion


class _Synthetic:
    """Random images of MNIST's shape: throughput does not depend on pixel values."""

    name, kind, shape = "mnist-shaped", "image", (1, 28, 28)

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.train = torch.rand(2000, 1, 28, 28, generator=g) * 2 - 1
        self.test = self.train[:500]

    def sample(self, n, g):
        return self.train[torch.randint(len(self.train), (n,), generator=g)]

    def reference(self, n, g):
        return self.test[:n]


def _rate(fn, seconds: float) -> float:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _reference_step(state, ds, bs):
    """Plain forward/backward/Adam step of the same network on random (x, t)."""
    net, opt, g, T = state.net, state.opt, state.rng, state.objective.schedule.T

    def step():
        x = ds.sample(bs, g)
        t = torch.randint(0, T, (bs,), generator=g)
        loss = net(x, t).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


@torch.no_grad()
def _reference_forward(state, n: int, nfe: int, batch: int = 500) -> None:
    """``nfe`` plain forward passes over ``n`` random inputs, in the sampler's batches."""
    net = state.ema if state.ema is not None else state.net
    net.eval()
    for i in range(0, n, batch):
        x = torch.randn(min(batch, n - i), *state.shape)
        t = torch.full((len(x),), 500)
        for _ in range(nfe):
            net(x, t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=["ring8", "mnist"], default=None)
    ap.add_argument("--losses", default="ddpm")
    ap.add_argument("--sample-steps", type=int, default=None, help="default: the family's per-kind default")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.seconds:.0f} s per rate")
    for which, kind, bs, n in (("ring8", "vector", 256, 2500), ("mnist", "image", 64, 1000)):
        if args.only and which != args.only:
            continue
        if which == "ring8":
            from losslab.data import load_dataset

            ds = load_dataset("ring8")
        else:
            ds = _Synthetic()
        sets = [f"train.batch_size={bs}"]
        if args.sample_steps:
            sets.append(f"diffusion.sample_steps={args.sample_steps}")
        cfg = C.resolve(kind, sets=sets)
        ref_state = diffusion.init_state(cfg, ds, "ddpm", seed=0)
        nparams = sum(p.numel() for p in ref_state.net.parameters())
        ref = _rate(_reference_step(ref_state, ds, bs), args.seconds)
        nfe = diffusion.nfe(ref_state)
        ref_sample = _once(lambda: _reference_forward(ref_state, n, nfe))
        print(f"\n{which} ({type(ref_state.net).__name__}, {nparams:,} parameters), batch {bs}")
        print(f"  reference: plain fwd/bwd/Adam step {ref:8.1f} steps/s; "
              f"{nfe} x {n} plain forwards {ref_sample:6.2f} s")
        print(f"  {'loss':<8} {'steps/s':>8} {'ratio':>6}   {'sample ' + str(n) + ' (s)':>14} {'NFE':>4} {'ratio':>6}")
        for name in args.losses.split(","):
            if name not in DIFFUSION_LOSSES:
                raise SystemExit(f"unknown diffusion loss {name!r}")
            state = diffusion.init_state(cfg, ds, name, seed=0)
            rate = _rate(lambda: diffusion.step(state, ds, bs), args.seconds)
            secs = _once(lambda: diffusion.sample(state, n, seed=0))
            print(f"  {name:<8} {rate:8.1f} {rate / ref:6.2f}   {secs:14.2f} {diffusion.nfe(state):4d} "
                  f"{secs / ref_sample:6.2f}")


if __name__ == "__main__":
    main()
