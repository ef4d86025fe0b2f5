"""Shared fixtures: where the real MNIST files are, and an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The real MNIST/Fashion-MNIST IDX files: $LOSSLAB_DATA, else ../shared/data beside the repo."""
    env = os.environ.get("LOSSLAB_DATA")
    for p in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if (p / "mnist" / "train-images-idx3-ubyte.gz").exists():
            return p
    return None


@pytest.fixture
def mnist_dir() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("MNIST files not found (set LOSSLAB_DATA)")
    return d


@pytest.fixture(scope="module")
def single_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP oversubscription when the 2 cores are busy."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs ``-n auto``) each worker gets its share of the cores for torch's
    intra-op threads, so the workers do not oversubscribe the machine."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own cache so no test reads a user's cache. Under pytest-xdist the workers
    share one (the run's base directory): a feature network is trained once, the others wait on its lock
    (losslab.metrics.features) and load it."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    monkeypatch.setenv("LOSSLAB_CACHE", str(base / "losslab-cache"))
