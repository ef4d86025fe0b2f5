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


# ----------------------------------------------------------------------------- the other families


def _images(n: int = 64, shape=(1, 8, 8), classes: int = 4):
    from losslab.data import Dataset

    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, *shape, generator=g) * 2 - 1
    y = torch.arange(n) % classes
    return Dataset(name="tiny-labelled", kind="image", shape=shape, train=x, test=x.flip(0),
                   train_labels=y, test_labels=y.flip(0), class_names=[str(k) for k in range(classes)])


FAMILY_RUNS = [("diffusion", "ddpm", "vector"), ("ebm", "ebm-cd", "vector"), ("ebm", "ebm-dsm", "vector"),
               ("contrastive", "nt-xent", "image"), ("contrastive", "clip", "image")]


def _family_cfg(kind: str, device: str) -> C.Config:
    sets = [f"train.device={device}", "train.batch_size=16", "model.hidden=16", "model.layers=2",
            "diffusion.sample_steps=5", "ebm.sample_steps=5", "ebm.langevin_steps=3", "ebm.buffer_size=64"]
    return C.resolve(kind, sets=sets)


def _family_data(kind: str, ring8):
    return ring8 if kind == "vector" else _images()


def _state_tensors(fam, st) -> list[torch.Tensor]:
    tensors, _ = fam.state_dict(st)
    return [v for k, v in tensors.items() if k != "rng"]


@pytest.mark.parametrize("family,loss,kind", FAMILY_RUNS)
def test_every_family_lives_on_the_configured_device_cpu(ring8, family, loss, kind, single_thread):
    from losslab.train.loop import get_family

    fam, ds = get_family(family), _family_data(kind, ring8)
    st = fam.init_state(_family_cfg(kind, "cpu"), ds, loss, seed=0)
    assert st.device == torch.device("cpu") and st.rng.device == torch.device("cpu")
    assert all(v.device.type == "cpu" for v in _state_tensors(fam, st))
    for _ in range(2):
        fam.step(st, ds, 16, record=True)
    assert st.g_updates == 2
    out = fam.sample(st, 10, seed=0)
    assert out.device.type == "cpu" and out.shape[0] == 10 and bool(torch.isfinite(out).all())
    if fam.evaluate is not None:
        assert 0.0 <= fam.evaluate(st, ds)["linear_probe"] <= 1.0
    # The documented stream, on that device: a fresh state's generator is seeded_generator(seed)
    # (ebm-cd's has filled the replay buffer with uniform noise from it).
    want = seeded_generator(3, "cpu")
    if loss == "ebm-cd":
        torch.rand((64, *ds.shape), generator=want)
    assert torch.equal(fam.init_state(_family_cfg(kind, "cpu"), ds, loss, seed=3).rng.get_state(), want.get_state())


def test_schedule_to_a_device_and_the_sampler_draw_rule():
    from losslab import schedules

    s = schedules.get_schedule("linear", 50)
    assert s.to("cpu") is s and s.device == torch.device("cpu")
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731  (eps-prediction 0: x0_hat = x_t / sqrt(ab))
    x, ts, xs = schedules.ddpm_sample(zero, s, (6, 2), steps=5, generator=torch.Generator().manual_seed(4),
                                      trajectory=True)
    # x_T is the generator's first draw, whatever device computes.
    torch.testing.assert_close(xs[0], torch.randn((6, 2), generator=torch.Generator().manual_seed(4)))
    with pytest.raises(AssertionError):
        torch.testing.assert_close(xs[0], torch.randn((6, 2), generator=torch.Generator().manual_seed(5)))


def test_augment_draws_from_the_generator_and_warps_on_the_images_device():
    from losslab.data.augment import augment

    x = _images(8).train
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator(device="cpu").manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(a, augment(x, torch.Generator().manual_seed(2)))


def test_device_keys_are_loop_keys():
    from losslab.train import check_overrides

    cfg = tiny("train.device=cpu", "train.batch_seeds=false")
    for fams in (["gan"], ["diffusion"], ["contrastive"], ["ebm"]):
        check_overrides(cfg, fams, {"train.device", "train.batch_seeds"})  # --set train.device=... is accepted


@needs_cuda
@pytest.mark.parametrize("family,loss,kind", FAMILY_RUNS)
def test_every_family_trains_on_cuda_and_returns_cpu_results(ring8, family, loss, kind):
    from losslab.train.loop import get_family

    fam, ds = get_family(family), _family_data(kind, ring8)
    st = fam.init_state(_family_cfg(kind, "cuda"), ds, loss, seed=0)
    assert st.rng.device.type == "cuda"
    assert all(v.device.type == "cuda" for v in _state_tensors(fam, st))
    logs = [fam.step(st, ds, 16, record=True) for _ in range(3)]
    assert st.g_updates == 3 and all(torch.isfinite(torch.tensor(lg["g_loss"])) for lg in logs)
    out = fam.sample(st, 10, seed=0)
    assert out.device.type == "cpu" and out.shape[0] == 10 and bool(torch.isfinite(out).all())
    if fam.evaluate is not None:
        m = fam.evaluate(st, ds)
        assert 0.0 <= m["linear_probe"] <= 1.0
    # Resume is exact on the same device.
    t, meta = fam.state_dict(st)
    st2 = fam.init_state(_family_cfg(kind, "cuda"), ds, loss, seed=0)
    fam.load_state_dict(st2, t, meta)
    fam.step(st, ds, 16)
    fam.step(st2, ds, 16)
    for a, b in zip(_state_tensors(fam, st), _state_tensors(fam, st2)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@needs_cuda
def test_trained_model_samples_alike_on_cpu_and_cuda(ring8):
    from losslab.train import diffusion

    cpu = diffusion.init_state(_family_cfg("vector", "cpu"), ring8, "ddpm", seed=0)
    for _ in range(3):
        diffusion.step(cpu, ring8, 16)
    gpu = diffusion.init_state(_family_cfg("vector", "cuda"), ring8, "ddpm", seed=0)
    t, meta = diffusion.state_dict(cpu)
    diffusion.load_state_dict(gpu, {k: v for k, v in t.items() if k != "rng"} | {"rng": gpu.rng.get_state()}, meta)
    # The starting noise comes from a CPU generator: the same samples up to float rounding.
    torch.testing.assert_close(diffusion.sample(gpu, 50, seed=1), diffusion.sample(cpu, 50, seed=1),
                               rtol=1e-3, atol=1e-4)


@needs_cuda
def test_feature_extraction_on_cuda_equals_cpu():
    from losslab.metrics.features import ClassifierNet, extract

    torch.manual_seed(0)
    net = ClassifierNet((1, 8, 8), 4, 16)
    x = _images(32).train
    f_cpu, z_cpu = extract(net, x, logits=True)
    f_gpu, z_gpu = extract(net.cuda(), x, logits=True)
    assert f_gpu.device.type == "cpu" and f_gpu.dtype == torch.float64
    torch.testing.assert_close(f_gpu, f_cpu, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(z_gpu, z_cpu, rtol=1e-4, atol=1e-5)


@needs_cuda
def test_batched_diffusion_seeds_train_on_cuda(ring8):
    from losslab.train import diffusion

    cfg = _family_cfg("vector", "cuda")
    batch = diffusion.members([diffusion.init_state(cfg, ring8, "ddpm", s) for s in (0, 1)])
    assert all(batch.stacked.values())
    for _ in range(3):
        logs, diverged = diffusion.step_members(batch, ring8, 16, record=True)
    assert diverged == {} and [st.g_updates for st in batch.states] == [3, 3] and all("g_loss" in lg for lg in logs)
