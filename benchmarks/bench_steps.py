"""Training throughput: generator updates per second for every GAN loss.

Two configurations, as the issue asks:
  * ring8 MLP (hidden 128, 3 layers, z 16), batch 512;
  * MNIST infoGAN (z 62), batch 64.

Each loss's figure is printed beside a *bare* step measured in the same run:
the same maths written directly in PyTorch on the same networks and
optimizers (n_critic critic updates with the loss's penalty and clipping, one
generator update with D's weights frozen) without losslab's step machinery
(diagnostics, divergence checks, dispatch). ``harness/bare`` is the overhead
to watch (goal: >= 0.95); ``vs ns-bare`` compares each loss with the
plainest step (its extra maths: penalties, n_critic, autoencoders). The
absolute numbers depend on the machine.

Usage:  .venv/bin/python benchmarks/bench_steps.py [--seconds 3] [--losses ns,wgan-gp] [--only ring8|mnist]
        [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from losslab import config as C
from losslab.losses import GAN_LOSSES
from losslab.losses.gan import reconstruction_energy
from losslab.losses.penalties import clip_weights_, dragan_penalty, gradient_penalty
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


def _bare_step(state, ds, bs):
    """The step's maths in plain PyTorch: critic updates (penalty, clipping), then G with D frozen."""
    G, D, og, od, g, hp, loss = state.G, state.D, state.opt_g, state.opt_d, state.rng, state.hp, state.loss
    d_kw = {k: hp[k] for k in loss.d_hparams}
    g_kw = {k: hp[k] for k in loss.g_hparams}
    ae = loss.critic == "autoencoder"

    def critic(x):
        if ae:
            recon, code = D(x)
            return reconstruction_energy(x, recon, hp["energy"]), code
        return D(x), None

    def step():
        for _ in range(hp["n_critic"]):
            x = ds.sample(bs, g)
            z = torch.randn(bs, state.z_dim, generator=g)
            with torch.no_grad():
                fake = G(z)
            r, f = critic(x)[0], critic(fake)[0]
            if loss.equilibrium:
                d_kw["k"] = state.began.k
            d_loss = (loss.d_loss(e_real=r, e_fake=f, **d_kw) if ae else loss.d_loss(d_real=r, d_fake=f, **d_kw))
            if loss.penalty == "gp":
                d_loss = d_loss + hp["gp_lambda"] * gradient_penalty(D, x, fake, generator=g)
            elif loss.penalty == "dragan":
                d_loss = d_loss + hp["gp_lambda"] * dragan_penalty(D, x, generator=g, c=hp["dragan_c"])
            od.zero_grad(set_to_none=True)
            d_loss.backward()
            od.step()
            if loss.clip:
                clip_weights_(D, hp["clip"])
        z = torch.randn(bs, state.z_dim, generator=g)
        D.requires_grad_(False)
        f, code = critic(G(z))
        if ae:
            kw = dict(g_kw, **({"code_fake": code} if loss.g_takes_code else {}))
            g_loss = loss.g_loss(e_fake=f, **kw)
        else:
            g_loss = loss.g_loss(d_fake=f, **g_kw)
        og.zero_grad(set_to_none=True)
        g_loss.backward()
        D.requires_grad_(True)
        og.step()
        if loss.equilibrium:
            state.began.update(float(r.detach().mean()), float(f.detach().mean()))

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--losses", default=",".join(GAN_LOSSES))
    ap.add_argument("--only", choices=["ring8", "mnist"], default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3, help="alternating measurements; the best is kept")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.seconds:.0f} s per measurement")
    for which, kind, bs in (("ring8", "vector", 512), ("mnist", "image", 64)):
        if args.only and which != args.only:
            continue
        ds = _dataset(which)
        cfg = C.resolve(kind, sets=[f"train.batch_size={bs}", "train.device=cpu"])
        print(f"\n{which} ({ds.name}), batch {bs}")
        print(f"{'loss':<9} {'G-updates/s':>12} {'D-updates/s':>12} {'bare G-upd/s':>13} {'harness/bare':>13} "
              f"{'vs ns-bare':>11}")
        ns_bare = None
        for name in ["ns"] + [n for n in args.losses.split(",") if n != "ns"]:
            bare_state = gan.init_state(cfg, ds, name, seed=0)
            state = gan.init_state(cfg, ds, name, seed=0)
            # Interleave the two measurements so that machine noise hits both alike.
            bare, rate = [], []
            for _ in range(args.repeats):
                bare.append(_time(_bare_step(bare_state, ds, bs), args.seconds / args.repeats))
                rate.append(_time(lambda: gan.step(state, ds, bs), args.seconds / args.repeats))
            b, r = max(bare), max(rate)
            ns_bare = ns_bare or b
            if name not in args.losses.split(","):
                continue
            nc = state.hp["n_critic"]
            print(f"{name:<9} {r:12.1f} {r * nc:12.1f} {b:13.1f} {r / b:13.2f} {r / ns_bare:11.2f}")

if __name__ == "__main__":
    main()
