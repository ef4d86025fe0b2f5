"""The member step's harness against a bare stacked step, and both against K solo steps.

For each loss and K, the same K seeds of ring8 (vector preset, batch 256, one
thread) are stepped by

  * ``bare``: a hand-written stacked update of the same maths (ensemble
    networks, one optimizer over the stacked weights, each seed's x / z / t /
    eps / penalty noise drawn from its own stream in the solo order, as parity
    needs), with no divergence check, no loss dispatch, no per-member
    hyperparameters, no autocast context;
  * ``members``: the family's ``step_members`` (what a batched comparison runs;
    diagnostics off, as on the steps that are not logged);
  * ``solo``: K solo steps one after another (``fam.step``: the same step at M = 1).

The three are measured in turn ``--repeats`` times (best of each kept), so the
ratios come from one run on one machine. Printed: updates per second summed over
the K seeds, ``overhead`` = bare / members - 1 (the harness's share; goal under
5%), and ``members/solo``.

Usage:  .venv/bin/python benchmarks/bench_members.py [--seconds 6] [--losses ns,wgan-gp,ddpm] [--k 3,9]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from losslab import config as C
from losslab import schedules
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


def bare_gan(ms, ds, bs: int, loss: str):
    """A bare stacked update of ns or wgan-gp (the maths of gan.step_members, nothing else)."""
    G, D = ms.modules["G"], ms.modules["D"]
    opt_d, opt_g = ms.opts["opt_d"][1][0], ms.opts["opt_g"][1][0]
    rngs, zd, hp = ms.rngs, ms.states[0].z_dim, ms.states[0].hp

    def step():
        for _ in range(hp["n_critic"]):
            x = torch.stack([ds.sample(bs, r) for r in rngs])
            z = torch.stack([torch.randn(bs, zd, generator=r) for r in rngs])
            with torch.no_grad():
                xf = G(z)
            dr, df = D(x), D(xf)
            if loss == "ns":
                total = F.softplus(-dr).mean(1) + F.softplus(df).mean(1)
            else:
                eps = torch.stack([torch.rand(bs, 1, generator=r) for r in rngs])
                xh = (eps * x + (1 - eps) * xf).requires_grad_(True)
                (g,) = torch.autograd.grad(D(xh).sum(), xh, create_graph=True)
                total = df.mean(1) - dr.mean(1) + hp["gp_lambda"] * (g.norm(2, dim=-1) - 1).pow(2).mean(1)
            opt_d.zero_grad(set_to_none=True)
            total.sum().backward()
            opt_d.step()
        z = torch.stack([torch.randn(bs, zd, generator=r) for r in rngs])
        D.requires_grad_(False)
        out = D(G(z))
        gl = F.softplus(-out).mean(1) if loss == "ns" else -out.mean(1)
        opt_g.zero_grad(set_to_none=True)
        gl.sum().backward()
        D.requires_grad_(True)
        opt_g.step()

    return step


def bare_diffusion(ms, ds, bs: int):
    """A bare stacked DDPM update (eps objective, per-member clipping, EMA)."""
    net, ema, opt = ms.modules["net"], ms.modules["ema"], ms.opts["opt"][1][0]
    s0, rngs, m = ms.states[0], ms.rngs, ms.m
    sched, hp = s0.objective.schedule, s0.hp
    shift, scale = torch.stack([s.shift for s in ms.states]), torch.stack([s.scale for s in ms.states])

    def step():
        x0 = (torch.stack([ds.sample(bs, r) for r in rngs]) - shift) / scale
        t = torch.stack([torch.randint(0, sched.T, (bs,), generator=r) for r in rngs])
        eps = torch.stack([torch.randn(x0.shape[1:], generator=r) for r in rngs])
        x_t = schedules.q_sample(sched, x0.flatten(0, 1), t.flatten(), eps.flatten(0, 1)).reshape(x0.shape)
        loss = (net(x_t, t) - eps).pow(2).mean(dim=(1, 2))
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        grads = [p.grad for p in net.parameters()]
        norms = sum(g.reshape(m, -1).pow(2).sum(1) for g in grads).sqrt()
        coef = (hp["grad_clip"] / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.reshape(m, *([1] * (g.dim() - 1))))
        opt.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.lerp_(p, 1 - hp["ema"])

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0, help="seconds per measurement (split over repeats)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--losses", default="ns,wgan-gp,ddpm")
    ap.add_argument("--k", default="3,9", help="numbers of seeds")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset("ring8")
    bs = args.batch_size
    cfg = C.resolve("vector", sets=[f"train.batch_size={bs}", "train.device=cpu"])
    print(f"torch {torch.__version__}, {args.threads} thread(s), ring8, batch {bs}, "
          f"{args.seconds:.0f} s per measurement, best of {args.repeats}")
    print(f"{'loss':<8} {'K':>3} {'bare upd/s':>11} {'members upd/s':>14} {'solo upd/s':>11} {'overhead':>9} "
          f"{'members/solo':>13}")
    for loss in args.losses.split(","):
        mod = gan if loss in GAN_LOSSES else diffusion
        for k in (int(v) for v in args.k.split(",")):
            ms = mod.members([mod.init_state(cfg, ds, loss, s) for s in range(k)])
            ms_bare = mod.members([mod.init_state(cfg, ds, loss, s) for s in range(k)])
            solos = [mod.init_state(cfg, ds, loss, s) for s in range(k)]
            bare = bare_gan(ms_bare, ds, bs, loss) if mod is gan else bare_diffusion(ms_bare, ds, bs)

            def members():
                mod.step_members(ms, ds, bs, record=False)

            def solo():
                for st in solos:
                    mod.step(st, ds, bs)

            rates: dict[str, list[float]] = {"bare": [], "members": [], "solo": []}
            for _ in range(args.repeats):
                for name, fn in (("bare", bare), ("members", members), ("solo", solo)):
                    rates[name].append(k * _rate(fn, args.seconds / args.repeats / 3))
            b, m, s = (max(rates[n]) for n in ("bare", "members", "solo"))
            print(f"{loss:<8} {k:>3} {b:11.1f} {m:14.1f} {s:11.1f} {100 * (b / m - 1):8.1f}% {m / s:13.2f}")


if __name__ == "__main__":
    main()
