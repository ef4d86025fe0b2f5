"""Every loss registry, keyed by the model family that trains its losses.

The registries themselves live beside their losses: :mod:`losslab.losses.gan_registry` (GAN),
:mod:`losslab.losses.diffusion`, :mod:`losslab.losses.contrastive`, :mod:`losslab.losses.ebm`.
"""

from __future__ import annotations

from losslab.errors import UserError, unknown_choice
from losslab.losses.contrastive import CONTRASTIVE_LOSSES
from losslab.losses.diffusion import DIFFUSION_LOSSES
from losslab.losses.ebm import EBM_LOSSES
from losslab.losses.families import FAMILY_SPECS, FamilySpec, get_spec
from losslab.losses.gan_registry import GAN_LOSS_NAMES, GAN_LOSSES, GANLoss
from losslab.losses.variants import base_name


def get_gan_loss(name: str) -> GANLoss:
    """The :class:`GANLoss` registered under ``name``.

    Parameters
    ----------
    name : str
        One of :data:`GAN_LOSS_NAMES`.

    Returns
    -------
    GANLoss

    Raises
    ------
    UserError
        If ``name`` is unknown; the message lists the valid names.
    """
    try:
        return GAN_LOSSES[base_name(name)]
    except (KeyError, TypeError):
        raise unknown_loss(name, GAN_LOSSES) from None


# Every registry, keyed by the model family that trains its losses. Loss names


# Every registry, keyed by the model family that trains its losses. Loss names
# are unique across registries, so `--losses ns,ddpm` can mix families in one
# comparison table.
REGISTRIES: dict[str, dict] = {name: spec.registry for name, spec in FAMILY_SPECS.items()}
"""A view of :data:`losslab.losses.families.FAMILY_SPECS`: family -> its registry."""


# Names people use for losses that are registered under another name (or several): the error for
# one of them says which registered names are meant; nothing is expanded silently.
ALIASES: dict[str, tuple[tuple[str, ...], str]] = {
    "bce": (("minimax", "ns"), "bce is not a GAN loss name: the BCE GAN losses are minimax (the saturating "
                               "original) and ns (non-saturating, the -log D trick)"),
    "gan": (("minimax", "ns"), "the original GAN's BCE losses are minimax and ns"),
    "vanilla": (("minimax", "ns"), "the original GAN's BCE losses are minimax and ns"),
    "wasserstein": (("wgan", "wgan-gp"), "the Wasserstein GAN losses are wgan (weight clipping) and wgan-gp "
                                         "(gradient penalty)"),
    "wgangp": (("wgan-gp",), "the gradient-penalty WGAN is wgan-gp"),
    "ls": (("lsgan",), "the least-squares GAN is lsgan"),
    "least-squares": (("lsgan",), "the least-squares GAN is lsgan"),
    "simclr": (("nt-xent",), "SimCLR's loss is nt-xent"),
    "ntxent": (("nt-xent",), "SimCLR's loss is nt-xent"),
    "infonce": (("info-nce",), "InfoNCE is info-nce"),
    "ddim": (("ddpm",), "ddpm trains the denoiser and samples with DDIM"),
    "rectified-flow": (("flow-matching",), "rectified flow is flow-matching on the straight path"),
    "flow": (("flow-matching",), "the flow-matching loss is flow-matching"),
    "barlow": (("barlow-twins",), "Barlow Twins is barlow-twins"),
    "barlowtwins": (("barlow-twins",), "Barlow Twins is barlow-twins"),
}


def unknown_loss(name: str, choices) -> UserError:
    """``UserError`` for an unknown loss: the valid names, led by what an alias (:data:`ALIASES`) means.

    E.g. ``unknown_loss("wasserstein", ...)`` says "the Wasserstein GAN losses are wgan (weight clipping)
    and wgan-gp (gradient penalty); use --losses wgan,wgan-gp" before the list of names.
    """
    err = unknown_choice("loss", name, choices)
    alias = ALIASES.get(str(name).strip().lower()) if isinstance(name, str) else None
    if alias is None:
        return err
    names, why = alias
    return UserError(f"unknown loss {name!r}: {why}; use --losses {','.join(names)}. "
                     + str(err).split("; ", 1)[1].capitalize())


def family_of(name: str) -> str:
    """The model family whose registry holds loss ``name`` (a candidate label ``LOSS[...]``: its ``LOSS``,
    :mod:`losslab.losses.variants`).

    Raises
    ------
    UserError
        If no registry has ``name``; the message lists every trainable loss,
        led by the registered names an alias means (``bce``: minimax and ns).
    """
    base = base_name(name)
    for family, registry in REGISTRIES.items():
        if base in registry:
            return family
    raise unknown_loss(base, [n for r in REGISTRIES.values() for n in r])


__all__ = ["ALIASES", "CONTRASTIVE_LOSSES", "DIFFUSION_LOSSES", "EBM_LOSSES", "FAMILY_SPECS", "FamilySpec", "GAN_LOSSES", "GAN_LOSS_NAMES", "GANLoss", "REGISTRIES",
           "family_of", "get_gan_loss", "get_spec", "unknown_loss"]
