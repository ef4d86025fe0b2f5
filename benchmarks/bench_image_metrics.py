"""Time FID + KID + PRDC on N generated vs N real MNIST images (default N = 10,000), two ways.

* losslab: the classifier runs once per image set (``extract``); FID (torchmetrics'
  float64 sums on those features), KID (kernel matrices once, or subset by subset
  above 5,000 rows), PRDC (the ``prdc`` package) all reuse the features.
* torchmetrics' own path: ``FrechetInceptionDistance(feature=net)`` and
  ``KernelInceptionDistance(feature=net)`` each run the network over both sets
  themselves; torchmetrics has no PRDC, so that row is the ``prdc`` package on
  features extracted once (the same call losslab makes).

"Generated" images are MNIST training images with Gaussian pixel noise (std 0.3,
clipped), real ones the test split: the timings do not depend on what the
generator is. The numbers of both paths are printed too, so that they can be
checked against each other (KID differs only by its random subsets).

Usage:  .venv/bin/python benchmarks/bench_image_metrics.py [--n 10000] [--threads 2] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="generated and real images each (default 10000)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (default: the usual search)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")

    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    from losslab.data import load_dataset
    from losslab.metrics.features import extract, get_feature_net
    from losslab.metrics.fid import fid_from_features
    from losslab.metrics.images import KID_SUBSET_SIZE, KID_SUBSETS, PRDC_K, kid, prdc

    ds = load_dataset("mnist", data_dir=args.data_dir, download=False)
    net = get_feature_net(ds, progress=True)
    n = min(args.n, ds.test.shape[0])
    g = torch.Generator().manual_seed(0)
    real = ds.test[:n]
    fake = (ds.train[:n] + 0.3 * torch.randn(n, *ds.shape, generator=g)).clamp(-1, 1)
    size = min(KID_SUBSET_SIZE, n)

    # losslab: one feature pass per set, then every metric on the features.
    (f_real, _), t_feat_r = _timed(lambda: extract(net, real))
    (f_fake, _), t_feat_f = _timed(lambda: extract(net, fake))
    ours_fid, t_fid = _timed(lambda: fid_from_features(f_real, f_fake))
    (ours_kid, _), t_kid = _timed(lambda: kid(f_real, f_fake, subset_size=size))
    ours_prdc, t_prdc = _timed(lambda: prdc(f_real, f_fake))

    # torchmetrics: each metric object runs the network itself.
    def tm_fid():
        m = FrechetInceptionDistance(feature=net, normalize=True)
        with torch.no_grad():
            for part in real.split(1000):
                m.update(part, real=True)
            for part in fake.split(1000):
                m.update(part, real=False)
        return float(m.compute())

    def tm_kid():
        m = KernelInceptionDistance(feature=net, subsets=KID_SUBSETS, subset_size=size)
        with torch.no_grad():
            for part in real.split(1000):
                m.update(part, real=True)
            for part in fake.split(1000):
                m.update(part, real=False)
        return float(m.compute()[0])

    tm_fid_value, t_tm_fid = _timed(tm_fid)
    tm_kid_value, t_tm_kid = _timed(tm_kid)
    _, t_tm_prdc = _timed(lambda: prdc(f_real, f_fake))  # no PRDC in torchmetrics: the prdc package

    t_feat = t_feat_r + t_feat_f
    ours_total = t_feat + t_fid + t_kid + t_prdc
    tm_total = t_tm_fid + t_tm_kid + t_tm_prdc
    print(f"\nMNIST, {n} generated vs {n} real images, feature net {net.name}, "
          f"{args.threads} thread(s); KID {KID_SUBSETS} subsets of {size}, PRDC k={PRDC_K}\n")
    print(f"{'step':<28}{'losslab s':>11}{'torchmetrics s':>16}")
    print(f"{'features (both sets)':<28}{t_feat:>11.2f}{'(inside)':>16}")
    print(f"{'FID':<28}{t_fid:>11.2f}{t_tm_fid:>16.2f}")
    print(f"{'KID':<28}{t_kid:>11.2f}{t_tm_kid:>16.2f}")
    print(f"{'PRDC (prdc package)':<28}{t_prdc:>11.2f}{t_tm_prdc:>16.2f}")
    print(f"{'total':<28}{ours_total:>11.2f}{tm_total:>16.2f}   ratio {tm_total / ours_total:.2f}x")
    print(f"\nvalues: FID {ours_fid:.6g} (torchmetrics {tm_fid_value:.6g}), "
          f"KID {ours_kid:.6g} (torchmetrics {tm_kid_value:.6g}, other subsets), "
          + ", ".join(f"{k} {v:.4f}" for k, v in ours_prdc.items()))


if __name__ == "__main__":
    main()
