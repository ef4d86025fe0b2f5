"""The Family protocol: one hyperparameter resolution per family, every --set key
applied or refused, no step that depends on a loss's name, and `losslab eval` on
a run of every family and seed."""

from __future__ import annotations

import dataclasses
import json
import types

import pytest
import torch

from losslab import config as C
from losslab import io, rundir
from losslab.data import load_dataset
from losslab.errors import UserError
from losslab.losses import REGISTRIES
from losslab.train import FAMILIES, LOOP_KEYS, check_overrides, contrastive, diffusion, gan
from losslab.train.loop import Family, train_run


@pytest.fixture(scope="module")
def ring8():
    return load_dataset("ring8")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


# ----------------------------------------------------------------------------- the protocol


def test_every_family_implements_the_protocol():
    members = [n for n in Family.__annotations__] + [n for n, v in vars(Family).items()
                                                      if callable(v) and not n.startswith("_")]
    assert {"NAME", "KEYS", "evaluate", "artifacts", "model_metrics", "hparams", "init_state", "step", "sample",
            "nfe", "state_dict", "load_state_dict"} <= set(members)
    assert set(FAMILIES) == set(REGISTRIES)
    for name, fam in FAMILIES.items():
        assert fam.NAME == name
        for m in members:
            v = getattr(fam, m)  # every member is declared, the optional ones as None
            assert v is None or m in ("NAME", "KEYS") or callable(v), (name, m)
    assert (gan.evaluate, diffusion.evaluate) == (None, None) and callable(contrastive.evaluate)
    assert gan.artifacts is None and callable(diffusion.artifacts) and callable(contrastive.artifacts)
    assert callable(gan.model_metrics) and diffusion.model_metrics is None and contrastive.model_metrics is None


# ----------------------------------------------------------------------------- learning rates, optimizers


def _lr(opt):
    return [g["lr"] for g in opt.param_groups]


def test_lr_d_and_lr_g_set_the_single_network_of_diffusion_and_contrastive(ring8, digits):
    for key in ("loss.lr_d", "loss.lr_g"):
        st = diffusion.init_state(C.resolve("vector", sets=[f"{key}=1e-3"]), ring8, "ddpm", 0)
        assert _lr(st.opt) == [1e-3]
        st = contrastive.init_state(C.resolve("image", sets=[f"{key}=1e-3"]), digits, "nt-xent", 0)
        assert _lr(st.opt) == [1e-3]
    # Without them: the loss's own lr x lr_scale (vector preset 5x); diffusion.lr wins over everything.
    assert _lr(diffusion.init_state(C.resolve("vector"), ring8, "ddpm", 0).opt) == [2e-4 * 5.0]
    cfg = C.resolve("vector", sets=["loss.lr_d=1e-3", "diffusion.lr=3e-4"])
    assert _lr(diffusion.init_state(cfg, ring8, "ddpm", 0).opt) == [3e-4]
    assert _lr(contrastive.init_state(C.resolve("image", sets=["loss.lr_scale=2"]), digits, "clip", 0).opt) == [2e-3]
    # Both set to the same value is fine; different values are an error for one network.
    assert _lr(diffusion.init_state(C.resolve("vector", sets=["loss.lr_d=1e-3", "loss.lr_g=1e-3"]), ring8,
                                    "ddpm", 0).opt) == [1e-3]
    bad = C.resolve("image", sets=["loss.lr_d=1e-3", "loss.lr_g=2e-3"])
    with pytest.raises(UserError, match="contrastive family trains a single network"):
        contrastive.init_state(bad, digits, "nt-xent", 0)
    with pytest.raises(UserError, match="diffusion family trains a single network"):
        check_overrides(bad, ["gan", "diffusion"], {"loss.lr_d", "loss.lr_g"})
    check_overrides(bad, ["gan"], {"loss.lr_d", "loss.lr_g"})  # two networks: two rates


def test_optimizer_and_betas_apply_to_every_family(ring8, digits):
    sets = ["loss.optimizer=rmsprop", "loss.lr_d=1e-3"]
    st = diffusion.init_state(C.resolve("vector", sets=sets), ring8, "ddpm", 0)
    assert isinstance(st.opt, torch.optim.RMSprop) and _lr(st.opt) == [1e-3]
    st = contrastive.init_state(C.resolve("image", sets=sets), digits, "supcon", 0)
    assert isinstance(st.opt, torch.optim.RMSprop)
    st = diffusion.init_state(C.resolve("vector", sets=["loss.beta1=0.5", "loss.beta2=0.99"]), ring8, "ddpm", 0)
    assert isinstance(st.opt, torch.optim.Adam) and st.opt.param_groups[0]["betas"] == (0.5, 0.99)
    st = gan.init_state(C.resolve("vector", sets=["loss.optimizer=rmsprop"]), ring8, "wgan-gp", 0)
    assert isinstance(st.opt_d, torch.optim.RMSprop) and isinstance(st.opt_g, torch.optim.RMSprop)


# ----------------------------------------------------------------------------- every key applied or refused

# A value for every loss.* and diffusion.* key that differs from some loss's default.
_VALUES = {"optimizer": "rmsprop", "lr_scale": 3.0, "lr_g": 0.0123, "lr_d": 0.0123, "beta1": 0.123, "beta2": 0.456,
           "n_critic": 7, "clip": 0.5, "gp_lambda": 3.0, "dragan_c": 0.7, "r1_gamma": 2.5, "r2_gamma": 3.5, "margin": 0.33, "pt_weight": 0.2, "pt_variant": "global_l1",
           "gamma": 0.4, "lambda_k": 0.01, "critic_norm": "layer", "temperature": 0.3, "mining": "batch-hard",
           "schedule": "cosine", "T": 50, "sampler": "ddpm", "sample_steps": 7, "eta": 0.5, "lr": 1e-3}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_keys_declare_exactly_the_loss_and_diffusion_keys_a_family_applies(family):
    """KEYS is the truth: a declared key changes the resolved hparams of some loss of the
    family, an undeclared one changes none (so it would be silently ignored)."""
    fam, data = FAMILIES[family], types.SimpleNamespace(kind="vector")
    for section in ("loss", "diffusion"):
        for f in dataclasses.fields(getattr(C.Config(), section)):
            key = f"{section}.{f.name}"
            changed = []
            for loss in REGISTRIES[family].values():
                cfg = C.Config()
                setattr(getattr(cfg, section), f.name, _VALUES[f.name])
                changed.append(fam.hparams(loss, cfg, data) != fam.hparams(loss, C.Config(), data))
            assert any(changed) == (key in fam.KEYS), key


def test_check_overrides_refuses_a_key_no_family_of_the_comparison_uses():
    cfg = C.Config()
    with pytest.raises(UserError) as e:
        check_overrides(cfg, ["diffusion"], C.explicit_keys(C.parse_set(["loss.n_critic=3"])))
    assert str(e.value) == "--set loss.n_critic: not used by the diffusion family (used by: gan)"
    with pytest.raises(UserError) as e:
        check_overrides(cfg, ["diffusion", "contrastive"], {"model.z_dim": "cfg.toml"})
    assert str(e.value) == "cfg.toml model.z_dim: not used by the diffusion or contrastive families (used by: gan)"
    with pytest.raises(UserError, match=r"--set diffusion.T: not used by the contrastive family \(used by: diffusion\)"):
        check_overrides(cfg, ["contrastive"], {"diffusion.T", "train.steps"})
    with pytest.raises(UserError, match="unknown model family"):
        check_overrides(cfg, ["flow"], set())
    # Used by one family of the comparison, or by the loop itself: accepted.
    check_overrides(cfg, ["gan", "diffusion"], {"loss.n_critic", "diffusion.T", "train.steps", "data.name"})
    check_overrides(cfg, ["contrastive"], {"loss.temperature", "loss.lr_d"} | LOOP_KEYS)


def test_explicit_keys_are_the_keys_the_user_wrote(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[train]\nsteps = 3\n[loss]\nmargin = 2.0\n")
    sets = C.parse_set(["loss.n_critic=2", "train.steps=5"])
    assert C.explicit_keys(sets, C.load_toml(f), None) == {"loss.n_critic", "train.steps", "loss.margin"}
    assert C.explicit_keys() == set()


def test_loss_hparams_applies_no_key_the_loss_lacks():
    # The generic merge: keys the defaults have; beta1/2 only with betas; lr_scale on every rate.
    assert C.loss_hparams({"lr": 1.0}, C.LossConfig(n_critic=3, beta1=0.1, lr_scale=2.0, lr_d=5.0)) == {"lr": 2.0}
    assert C.loss_keys({"lr": 1.0, "betas": (0.9, 0.99), "margin": 1.0}) == {
        "loss.lr_scale", "loss.beta1", "loss.beta2", "loss.margin"}


# ----------------------------------------------------------------------------- no step reads a loss's name


@pytest.mark.parametrize("family,loss", [("gan", "ebgan"), ("gan", "began"), ("gan", "wgan-gp"),
                                         ("contrastive", "info-nce"), ("contrastive", "triplet"),
                                         ("contrastive", "supcon"), ("contrastive", "clip"), ("contrastive", "siglip")])
def test_a_renamed_loss_trains_exactly_as_the_original(family, loss, ring8, digits, monkeypatch):
    """The step dispatches on the loss's declarations: a copy under another name is the same loss."""
    registry = REGISTRIES[family]
    monkeypatch.setitem(registry, "renamed", dataclasses.replace(registry[loss], name="renamed"))
    fam, ds = FAMILIES[family], ring8 if family == "gan" else digits
    cfg = C.resolve(ds.kind, sets=["model.hidden=16"] if family == "gan" else [])
    logs = []
    for name in (loss, "renamed"):
        st = fam.init_state(cfg, ds, name, 0)
        logs.append([fam.step(st, ds, 16, record=True) for _ in range(2)])
    assert logs[0] == logs[1]


# ----------------------------------------------------------------------------- losslab eval on every family


def _run(tmp_path, ds, cfg, loss, seed=0):
    from losslab.compare import make_evaluator

    run = tmp_path / f"{loss}-{seed}"
    res = train_run(run, cfg, ds, loss=loss, seed=seed, family=rundir.plan([loss], 1)[0].family,
                    evaluate=make_evaluator(cfg, ds))
    assert res["status"] == "ok", res.get("error")
    return run, io.read_json(run / rundir.RESULT)


def _same(metrics, result):
    """The metrics as result.json would hold them (NaN/inf as null) equal the run's, exactly."""
    assert json.loads(io.dumps(metrics)) == result["metrics"]


def test_eval_reproduces_a_ddpm_run_from_its_samples_and_from_its_checkpoint(tmp_path, ring8):
    from losslab.evaluation import eval_run_dir

    cfg = C.resolve("vector", sets=["train.steps=20", "train.n_eval=300", "diffusion.sample_steps=10",
                                    "train.checkpoint_every=10"])
    run, res = _run(tmp_path, ring8, cfg, "ddpm", seed=1)
    out = eval_run_dir(run)
    assert (out["family"], out["loss"], out["seed"], out["notes"]) == ("diffusion", "ddpm", 1, [])
    _same(out["metrics"], res)
    (run / rundir.SAMPLES).unlink()
    out = eval_run_dir(run)
    assert "seed 1" in out["notes"][0]
    _same(out["metrics"], res)


def test_eval_reproduces_a_contrastive_run_from_its_checkpoint(tmp_path, digits):
    from losslab.evaluation import eval_run_dir, format_table

    cfg = C.resolve("image", sets=["data.name=digits", "train.steps=10", "train.batch_size=32"])
    run, res = _run(tmp_path, digits, cfg, "nt-xent")
    out = eval_run_dir(run)
    assert (out["family"], out["loss"], out["feature_net"]) == ("contrastive", "nt-xent", None)
    _same(out["metrics"], res)
    assert "linear_probe" in format_table(out)
    (run / rundir.CHECKPOINT).unlink()
    with pytest.raises(UserError, match="no checkpoint.safetensors"):
        eval_run_dir(run)


def test_eval_samples_a_gan_run_of_seed_2_with_its_own_seed(tmp_path, ring8):
    from losslab.evaluation import eval_run_dir

    cfg = C.resolve("vector", sets=["train.steps=10", "train.n_eval=300", "model.hidden=16"])
    run, res = _run(tmp_path, ring8, cfg, "ns", seed=2)
    with_samples = eval_run_dir(run)["metrics"]
    (run / rundir.SAMPLES).unlink()
    out = eval_run_dir(run)
    assert out["seed"] == 2 and "seed 2" in out["notes"][0]
    _same({k: v for k, v in out["metrics"].items() if not k.startswith("d_")}, res)
    assert {k: v for k, v in with_samples.items() if k.startswith("d_")} == \
        {k: v for k, v in out["metrics"].items() if k.startswith("d_")}
    # Sampling with seed 0 (the old bug) would draw other samples, hence other metrics.
    st = gan.init_state(cfg, ring8, "ns", 2)
    gan.load_state_dict(st, *rundir.load_checkpoint(run))
    assert not torch.equal(gan.sample(st, 300, seed=0), gan.sample(st, 300, seed=2))
