"""Time one GAN update on 28x28 images: small DCGAN vs infoGAN (ns loss, batch 64, one thread).

One update = one discriminator step on real + generated images, then one generator
step (non-saturating loss, Adam), as in ``losslab.train.gan`` with n_critic = 1.
Prints the seconds per update of each architecture and their ratio.

Usage: PYTHONPATH=src python benchmarks/bench_image_arch.py [--reps 30]
"""

from __future__ import annotations

import argparse
import time

import torch

from losslab.losses.gan import ns_d_loss, ns_g_loss
from losslab.models import build_gan, count_parameters


def time_updates(arch: str, reps: int, batch: int = 64, z_dim: int = 62) -> float:
    torch.manual_seed(0)
    g, d = build_gan((1, 28, 28), z_dim=z_dim, hidden=64, layers=3, arch=arch)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(batch, 1, 28, 28) * 2 - 1

    def update() -> None:
        fake = g(torch.randn(batch, z_dim))
        loss_d = ns_d_loss(d_real=d(real), d_fake=d(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = ns_g_loss(d_fake=d(g(torch.randn(batch, z_dim))))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    for _ in range(3):  # warm-up
        update()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        update()
        times.append(time.perf_counter() - t)
    times.sort()
    print(f"{arch:8s} G {count_parameters(g):>9,} D {count_parameters(d):>9,} params  "
          f"median {1e3 * times[len(times) // 2]:.1f} ms/update  ({1 / times[len(times) // 2]:.1f} updates/s)")
    return times[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    # Interleave the two so that a change in machine load hits both alike.
    t = {"dcgan": [], "infogan": []}
    for _ in range(3):
        for arch in t:
            t[arch].append(time_updates(arch, max(args.reps // 3, 1)))
    dc, info = min(t["dcgan"]), min(t["infogan"])
    print(f"infogan / dcgan time per update: {info / dc:.1f}x")


if __name__ == "__main__":
    main()
