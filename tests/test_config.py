from __future__ import annotations

import pytest

from losslab import config as C
from losslab.errors import UserError


def test_set_is_type_checked():
    cfg = C.resolve("vector", sets=["train.steps=300", "loss.lr_d=1e-4", "loss.optimizer=rmsprop"])
    assert cfg.train.steps == 300 and isinstance(cfg.train.steps, int)
    assert cfg.loss.lr_d == pytest.approx(1e-4, rel=0, abs=0)
    assert cfg.loss.optimizer == "rmsprop"


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("train.steps=abc", "expected int"),
        ("train.steps=2.5", "expected int"),
        ("loss.lr_d=fast", "expected float"),
        ("train.nope=1", "unknown key train.nope"),
        ("bogus.steps=1", "unknown section"),
        ("steps=1", "malformed --set"),
        ("train.steps", "malformed --set"),
        ("train.steps=0", "must be an integer >= 1"),
        ("loss.optimizer=sgd", "one of adam, rmsprop"),
    ],
)
def test_bad_set_is_one_clear_error(item, fragment):
    with pytest.raises(UserError, match=fragment):
        C.resolve("vector", sets=[item])


def test_resolution_order(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[train]\nsteps = 77\nbatch_size = 32\n")
    cfg = C.resolve("image", config_file=str(f), sets=["train.batch_size=16"])
    # preset (image: z_dim 62) < file (steps 77) < --set (batch 16)
    assert (cfg.model.z_dim, cfg.train.steps, cfg.train.batch_size) == (62, 77, 16)


def test_loss_hparams_override_only_what_the_loss_has():
    defaults = {"optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999), "n_critic": 1}
    over = C.LossConfig(lr_d=1e-3, beta2=0.9, margin=3.0)
    hp = C.loss_hparams(defaults, over)
    assert hp["lr_d"] == 1e-3 and hp["lr_g"] == 2e-4
    assert hp["betas"] == (0.5, 0.9)
    assert "margin" not in hp  # a hinge-style loss has no margin: untouched
    assert C.loss_hparams({**defaults, "margin": 1.0}, over)["margin"] == 3.0


def test_lr_scale_multiplies_each_losses_own_rates_and_explicit_rates_win():
    defaults = {"optimizer": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5, "n_critic": 5}
    hp = C.loss_hparams(defaults, C.LossConfig(lr_scale=4.0))
    assert (hp["lr_g"], hp["lr_d"], hp["optimizer"]) == (2e-4, 2e-4, "rmsprop")
    hp = C.loss_hparams(defaults, C.LossConfig(lr_scale=4.0, lr_d=1e-3))
    assert (hp["lr_g"], hp["lr_d"]) == (2e-4, 1e-3)
    assert C.resolve("vector").loss.lr_scale == 5.0 and C.resolve("image").loss.lr_scale is None
    with pytest.raises(UserError, match="loss.lr_scale = 0.0: must be a finite number > 0"):
        C.resolve("vector", sets=["loss.lr_scale=0"])
