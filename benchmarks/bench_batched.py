"""Batched seeds against seeds trained one after another: model updates per second.

For each loss and each K, the same K seeds of ring8 (vector preset, batch 256)
are stepped

  * sequentially: one solo step of each of the K states in turn (what K jobs
    in one worker do), and
  * batched: one member step of the K seeds (``fam.members`` / ``fam.step_members``, K updates),

alternating the two measurements ``--repeats`` times and keeping the best of
each. Printed: model updates per second (generator / denoiser updates summed
over the K seeds) and the ratio batched / sequential (goal: >= 2 for K = 3 and
9 on one core). Where the ratio is below 1 the default (``train.batch_seeds``
on) would be slower; the table says so.

Usage:  .venv/bin/python benchmarks/bench_batched.py [--seconds 3] [--threads 1]
        [--losses ns,wgan-gp,ddpm] [--k 3,9] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from losslab import config as C
from losslab.data import load_dataset
from losslab.losses import GAN_LOSSES
from losslab.train import diffusion, gan


def _rate(fn, seconds: float) -> float:
    """Calls of ``fn`` per second over about ``seconds`` (after one warm-up call)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement (split over repeats)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--losses", default="ns,wgan-gp,ddpm")
    ap.add_argument("--k", default="3,9", help="numbers of seeds")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset("ring8")
    cfg = C.resolve("vector", sets=[f"train.batch_size={args.batch_size}", "train.device=cpu"])
    bs = args.batch_size
    print(f"torch {torch.__version__}, {args.threads} thread(s), ring8, batch {bs}, "
          f"{args.seconds:.0f} s per measurement, best of {args.repeats}")
    print(f"{'loss':<9} {'K':>3} {'sequential upd/s':>17} {'batched upd/s':>14} {'batched/seq':>12}")
    for loss in args.losses.split(","):
        mod = gan if loss in GAN_LOSSES else diffusion
        for k in (int(v) for v in args.k.split(",")):
            solos = [mod.init_state(cfg, ds, loss, s) for s in range(k)]
            batch = mod.members([mod.init_state(cfg, ds, loss, s) for s in range(k)])

            def sequential():
                for st in solos:
                    mod.step(st, ds, bs)

            seq, bat = [], []
            for _ in range(args.repeats):
                seq.append(k * _rate(sequential, args.seconds / args.repeats))
                bat.append(k * _rate(lambda: mod.step_members(batch, ds, bs), args.seconds / args.repeats))
            s, b = max(seq), max(bat)
            note = "" if b >= s else "  (slower: the default would lose here)"
            print(f"{loss:<9} {k:>3} {s:17.1f} {b:14.1f} {b / s:12.2f}{note}")


if __name__ == "__main__":
    main()
