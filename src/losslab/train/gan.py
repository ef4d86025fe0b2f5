"""The GAN model family: build the state of one run, sample from it, save and restore it."""

from __future__ import annotations

from typing import Any

import torch

from losslab.config import Config, loss_hparams
from losslab.losses import get_gan_loss
from losslab.losses.penalties import BEGANEquilibrium
from losslab.models import build_gan
from losslab.train.checkpoint import flatten_optimizer, unflatten_optimizer
from losslab.train.steps import GANState, adversarial_step, make_optimizer

FAMILY = "gan"


def init_state(cfg: Config, dataset, loss_name: str, seed: int) -> GANState:
    """Networks, optimizers and RNG of one (loss, seed) run.

    The seed fixes the initial weights (``torch.manual_seed``) and the stream of
    data batches and latent codes (a dedicated ``torch.Generator``).
    """
    loss = get_gan_loss(loss_name)
    hp = loss_hparams(loss.defaults, cfg.loss)
    torch.manual_seed(seed)
    G, D = build_gan(
        tuple(dataset.shape),
        critic=loss.critic,
        z_dim=cfg.model.z_dim,
        hidden=cfg.model.hidden,
        layers=cfg.model.layers,
        critic_norm=hp.get("critic_norm", "none"),
        code_dim=cfg.model.code_dim,
    )
    rng = torch.Generator().manual_seed(10_007 * seed + 1)
    began = None
    if loss.name == "began":
        began = BEGANEquilibrium(gamma=hp["gamma"], lambda_k=hp["lambda_k"])
    return GANState(
        G=G,
        D=D,
        opt_g=make_optimizer(G.parameters(), hp, hp["lr_g"]),
        opt_d=make_optimizer(D.parameters(), hp, hp["lr_d"]),
        loss=loss,
        hp=hp,
        rng=rng,
        z_dim=cfg.model.z_dim,
        began=began,
    )


step = adversarial_step


def nfe(state: GANState) -> int:
    """Network evaluations per generated sample: one generator pass."""
    return 1


@torch.no_grad()
def sample(state: GANState, n: int, *, seed: int = 0, batch: int = 1000) -> torch.Tensor:
    """``n`` generated samples (n, *shape), generator in eval mode, fixed latent seed."""
    state.G.eval()
    g = torch.Generator().manual_seed(seed)
    out = [state.G(torch.randn(min(batch, n - i), state.z_dim, generator=g)) for i in range(0, n, batch)]
    state.G.train()
    return torch.cat(out)


def state_dict(state: GANState) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors for safetensors, JSON metadata) that restore the run exactly."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {
        "g_updates": state.g_updates,
        "d_updates": state.d_updates,
        "began_k": state.began.k if state.began is not None else None,
    }
    for name, module in (("G", state.G), ("D", state.D)):
        for k, v in module.state_dict().items():
            tensors[f"{name}.{k}"] = v.detach().clone().contiguous()
    flatten_optimizer("opt_g", state.opt_g, tensors, meta)
    flatten_optimizer("opt_d", state.opt_d, tensors, meta)
    tensors["rng"] = state.rng.get_state()
    return tensors, meta


def load_state_dict(state: GANState, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    for name, module in (("G", state.G), ("D", state.D)):
        sd = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
        module.load_state_dict(sd)
    unflatten_optimizer("opt_g", state.opt_g, tensors, meta)
    unflatten_optimizer("opt_d", state.opt_d, tensors, meta)
    state.rng.set_state(tensors["rng"])
    state.g_updates = int(meta["g_updates"])
    state.d_updates = int(meta["d_updates"])
    if state.began is not None and meta.get("began_k") is not None:
        state.began.k = float(meta["began_k"])
