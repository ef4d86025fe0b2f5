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


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own cache so no test reads a user's cache."""
    cache = tmp_path_factory.getbasetemp() / "losslab-cache"
    monkeypatch.setenv("LOSSLAB_CACHE", str(cache))
