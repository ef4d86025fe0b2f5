"""The config keys a family declares are the keys it reads: recorded while every loss of every family trains.

``--set`` refuses a key that no family of a comparison declares
(:func:`losslab.train.check_overrides`), so a key read but undeclared cannot be
set (``model.arch``, ``train.precision`` were), and a key declared but never
read is accepted and does nothing. Each loss trains a tiny run through the
loop (:func:`losslab.train.loop.train_run`) with every attribute read of the
config's sections recorded; the union over a family's losses must equal its
declared ``KEYS`` (less the loop's own ``LOOP_KEYS``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json

import pytest
import torch

from losslab import config as C
from losslab import rundir
from losslab.cli import main
from losslab.data import load_dataset
from losslab.losses import REGISTRIES
from losslab.train import loop
from losslab.train.loop import FAMILIES, LOOP_KEYS, train_run

DATA = {"gan": "ring8", "diffusion": "ring8", "ebm": "ring8", "contrastive": "digits"}
"""Where each family's tiny runs train (contrastive losses need labelled images)."""

NOT_READ_BY_THE_LOOP = {"data.name", "data.data_dir", "data.image_size", "data.n_train", "train.batch_seeds"}
"""LOOP_KEYS read before a run starts (loading the data; batching the seeds, losslab.compare), not inside it."""


class Recorder:
    def __init__(self):
        self.reads: set[str] = set()
        self.on = True

    @contextlib.contextmanager
    def paused(self):
        self.on, was = False, self.on
        try:
            yield
        finally:
            self.on = was


def recording_config(cfg: C.Config, rec: Recorder) -> C.Config:
    """``cfg`` whose sections are subclasses of their dataclasses that record every field read as ``section.key``."""
    out = C.Config()
    for section in C.SECTIONS:
        obj = getattr(cfg, section)
        names = {f.name for f in dataclasses.fields(obj)}

        def get(self, name, _section=section, _names=names, _base=type(obj)):
            if name in _names and rec.on:
                rec.reads.add(f"{_section}.{name}")
            return _base.__getattribute__(self, name)

        sub = type(f"Recording{type(obj).__name__}", (type(obj),), {"__getattribute__": get})
        setattr(out, section, sub(**{n: getattr(obj, n) for n in names}))
    return out


@pytest.fixture(scope="module")
def reads(tmp_path_factory, single_thread):
    """``{family: {loss: keys read}}`` from one tiny run of every loss (3 updates, 2 curve points)."""
    root = tmp_path_factory.mktemp("keys")
    rec = Recorder()
    out: dict[str, dict[str, set[str]]] = {}
    with pytest.MonkeyPatch.context() as mp:
        # config.json is every field by design (what the run was asked): not a read of the training.
        def run_config(cfg, **kw):
            with rec.paused():
                return rundir.run_config(cfg, **kw)

        mp.setattr(loop, "run_config", run_config)
        for family, registry in REGISTRIES.items():
            ds = load_dataset(DATA[family])
            for loss in registry:
                cfg = C.resolve(ds.kind, sets=["train.steps=2", "train.n_eval=64", "train.curve_n=32",
                                               "train.curve_points=1", "train.batch_size=16",
                                               "train.checkpoint_every=2", "train.log_every=1"])
                rec.reads, rec.on = set(), True
                res = train_run(root / family / loss, recording_config(cfg, rec), ds, loss=loss, seed=0,
                                family=family, evaluate=lambda d, x: {})
                assert res["status"] == "ok", (loss, res.get("error"))
                assert res["hparams"]["steps"] == 2 and res["hparams"]["batch_size"] == 16  # the verdict reads it
                out.setdefault(family, {})[loss] = set(rec.reads)
    return out


@pytest.mark.parametrize("family", list(REGISTRIES))
def test_a_family_reads_exactly_the_keys_it_declares(family, reads):
    read = set().union(*reads[family].values())
    undeclared = read - LOOP_KEYS - FAMILIES[family].KEYS
    assert not undeclared, f"{family} reads keys it does not declare: {sorted(undeclared)}"
    unread = FAMILIES[family].KEYS - read
    assert not unread, f"{family} declares keys it never reads: {sorted(unread)}"


def test_the_loop_reads_its_own_keys(reads):
    read = set().union(*(r for fam in reads.values() for r in fam.values()))
    assert LOOP_KEYS - NOT_READ_BY_THE_LOOP <= read, sorted(LOOP_KEYS - NOT_READ_BY_THE_LOOP - read)
    assert NOT_READ_BY_THE_LOOP <= LOOP_KEYS


def test_a_loss_reads_only_the_loss_keys_it_has(reads):
    # loss_hparams reads the loss.* fields the loss has and no other (so the recording means something).
    assert "loss.margin" in reads["gan"]["ebgan"] and "loss.margin" not in reads["gan"]["wgan"]
    assert "loss.n_critic" not in reads["diffusion"]["ddpm"]


@pytest.mark.parametrize("key, value", [("model.arch", "infogan"), ("train.precision", "bf16")])
def test_keys_the_gan_family_reads_are_accepted_from_the_cli(key, value, capsys):
    main(["compare", "--losses", "ns", "--set", f"{key}={value}", "--dry-run"])  # refused before: exit 2
    section, name = key.split(".")
    assert json.loads(capsys.readouterr().out)["config"][section][name] == value


def test_model_arch_infogan_builds_the_infogan_networks(single_thread):
    # Chen et al. 2016 (arXiv:1606.03657) App. C.1: G opens with FC(z -> 1024); for ebgan the critic is an
    # autoencoder, so the 1024-wide layer is in G only; dcgan (the default) has none.
    from losslab.train import gan

    ds = load_dataset("digits")
    widths = {}
    for arch in ("dcgan", "infogan"):
        cfg = C.resolve("image", sets=[f"model.arch={arch}"])
        state = gan.init_state(cfg, ds, "ebgan", 0)
        widths[arch] = [m.out_features for m in state.G.modules() if isinstance(m, torch.nn.Linear)]
    assert widths["infogan"][0] == 1024 and widths["infogan"][1] == 128 * (8 // 4) ** 2
    assert 1024 not in widths["dcgan"]
