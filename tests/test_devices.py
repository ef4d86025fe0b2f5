"""Devices and precision: train.device resolution, generators on the tensor's device, bf16 autocast.

The device code runs here on the CPU with ``device="cpu"`` explicit; the CUDA
tests are skipped when no GPU is present.
"""

from __future__ import annotations

import pytest
import torch

from losslab import config as C
from losslab.cli import main
from losslab.data import load_dataset
from losslab.errors import UserError
from losslab.losses.penalties import dragan_penalty, gradient_penalty
from losslab.train import gan
from losslab.train.common import WORKER_INDEX_ENV, on_device, resolve_device, seeded_generator

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA GPU")


@pytest.fixture(scope="module")
def ring8():
    return load_dataset("ring8")


def tiny(*sets) -> C.Config:
    return C.resolve("vector", sets=["train.batch_size=32", "model.hidden=16", "model.layers=2", *sets])


def test_resolve_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("CPU ") == torch.device("cpu")
    want = torch.device("cuda:0") if CUDA else torch.device("cpu")
    if not CUDA and torch.backends.mps.is_available():
        want = torch.device("mps")
    assert resolve_device("auto") == want
    assert resolve_device(None) == want
    with pytest.raises(UserError, match="must be one of auto, cpu, cuda, cuda:N, mps"):
        resolve_device("tpu")


def test_a_missing_gpu_is_one_clear_error(monkeypatch):
    n = torch.cuda.device_count() if CUDA else 0
    with pytest.raises(UserError, match=f"train.device = 'cuda:{n}': this machine has"):
        resolve_device(f"cuda:{n}")
    if not CUDA:
        with pytest.raises(UserError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_cli_refuses_a_missing_device_before_any_work(tmp_path, capsys):
    n = torch.cuda.device_count() if CUDA else 0
    with pytest.raises(SystemExit) as e:
        main(["train", "--loss", "ns", "--steps", "1", "--device", f"cuda:{n}", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert len(err.strip().splitlines()) == 1 and f"cuda:{n}" in err
    assert not (tmp_path / "runs").exists()  # nothing was written


@needs_cuda
def test_workers_spread_over_gpus(monkeypatch):
    n = torch.cuda.device_count()
    for i in range(2 * n):
        monkeypatch.setenv(WORKER_INDEX_ENV, str(i))
        assert resolve_device("auto") == torch.device("cuda", i % n)
    assert resolve_device("cuda:0") == torch.device("cuda:0")


def test_penalties_accept_a_generator_on_the_tensors_device():
    g = torch.Generator(device="cpu").manual_seed(0)
    critic = torch.nn.Linear(3, 1)
    x, y = torch.randn(8, 3), torch.randn(8, 3)
    # The critic is linear: every per-sample gradient is its weight, whatever eps is.
    w = critic.weight.detach().norm()
    torch.testing.assert_close(gradient_penalty(critic, x, y, generator=g), (w - 1) ** 2)
    torch.testing.assert_close(dragan_penalty(critic, x, generator=g), (w - 1) ** 2)
    a = gradient_penalty(lambda t: t.pow(2).sum(1), x, y, generator=torch.Generator().manual_seed(1))
    b = gradient_penalty(lambda t: t.pow(2).sum(1), x, y, generator=torch.Generator().manual_seed(1))
    c = gradient_penalty(lambda t: t.pow(2).sum(1), x, y, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(a, c)


@needs_cuda
def test_penalties_on_cuda_with_cpu_and_cuda_generators():
    x, y = torch.randn(8, 3), torch.randn(8, 3)
    f = lambda t: t.pow(2).sum(1)  # noqa: E731
    cpu = gradient_penalty(f, x, y, generator=torch.Generator().manual_seed(1))
    moved = gradient_penalty(f, x.cuda(), y.cuda(), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(moved.cpu(), cpu)
    on_gpu = gradient_penalty(f, x.cuda(), y.cuda(), generator=torch.Generator(device="cuda").manual_seed(1))
    assert on_gpu.device.type == "cuda" and bool(torch.isfinite(on_gpu))


def test_gan_state_lives_on_the_configured_device(ring8):
    st = gan.init_state(tiny("train.device=cpu"), ring8, "wgan-gp", seed=0)
    assert st.device == torch.device("cpu") and st.rng.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in [*st.G.parameters(), *st.D.parameters()])
    assert on_device(ring8, torch.device("cpu")) is ring8
    # The stream is the documented one, on that device.
    want = torch.Generator().manual_seed(10_007 * 0 + 1)
    assert torch.equal(st.rng.get_state(), want.get_state())
    assert torch.equal(seeded_generator(0, "cpu").get_state(), want.get_state())


def test_bf16_autocast_trains_and_changes_the_numbers(ring8, single_thread):
    runs = {}
    for prec in ("fp32", "bf16"):
        st = gan.init_state(tiny("train.device=cpu", f"train.precision={prec}"), ring8, "ns", seed=0)
        logs = [gan.step(st, ring8, 32, record=True) for _ in range(3)]
        assert all(torch.isfinite(torch.tensor(lg["g_loss"])) for lg in logs)
        runs[prec] = logs[-1]["g_loss"]
    assert runs["bf16"] == pytest.approx(runs["fp32"], rel=0.05)  # same maths, bf16 rounding
    assert runs["bf16"] != runs["fp32"]  # autocast did run in bf16


@needs_cuda
def test_gan_trains_on_cuda_and_samples_come_back_to_the_cpu(ring8):
    st = gan.init_state(tiny("train.device=cuda"), ring8, "wgan-gp", seed=0)
    for _ in range(3):
        gan.step(st, ring8, 32, record=True)
    assert next(st.G.parameters()).device.type == "cuda" and st.rng.device.type == "cuda"
    x = gan.sample(st, 10, seed=0)
    assert x.device.type == "cpu" and x.shape == (10, 2)
    t, _ = gan.state_dict(st)
    st2 = gan.init_state(tiny("train.device=cuda"), ring8, "wgan-gp", seed=0)
    gan.load_state_dict(st2, t, gan.state_dict(st)[1])
    gan.step(st, ring8, 32)
    gan.step(st2, ring8, 32)
    for a, b in zip(st.G.parameters(), st2.G.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # resume is exact on the same device
