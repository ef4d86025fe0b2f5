"""One spec per model family: what every other module looks a family up by.

A :class:`FamilySpec` names a family's loss registry, its own config section,
the config keys it reads, whether it trains one network, the modules that
train and explain it, its words in the verdict and the report, and its
primary and Pareto metrics where the family (not the data) fixes them. The
name-keyed tables elsewhere are views of :data:`FAMILY_SPECS`:
``losslab.losses.REGISTRIES``, ``losslab.train.loop.FAMILIES`` (the trainer
modules), ``losslab.report.families.FAMILIES`` (the report's wording) and the
explain pages (``losslab.explain.texts``).

Adding a loss to a family touches its registry entry and the maths; adding a
family touches one entry here, its registry module, its trainer module
(:class:`losslab.train.loop.Family`) and its explain texts.

The spec sits in the losses package (the lowest layer that knows the
registries) and imports the registry modules directly, so no import circle
forms: every module that needs a family imports this one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from losslab.config import Config, loss_keys
from losslab.errors import unknown_choice
from losslab.losses.contrastive import CONTRASTIVE_LOSSES
from losslab.losses.diffusion import DIFFUSION_LOSSES
from losslab.losses.ebm import EBM_LOSSES
from losslab.losses.gan_registry import GAN_LOSSES

__all__ = ["FAMILY_SPECS", "FamilySpec", "get_spec"]


@dataclass(frozen=True)
class FamilySpec:
    """What a model family is, in one place.

    Attributes:
        name: the family's name (``--family``, ``compare.json``'s ``family``).
        registry: loss name -> loss spec (a dict literal of its registry module).
        trainer: the module implementing :class:`losslab.train.loop.Family`.
        explain: the module of its ``losslab explain`` texts (``PAGE``, ``EXPLANATIONS``).
        section: its own config section (``[diffusion]``, ``[ebm]``), every field of
            which it reads; None without one.
        reads: the other ``section.key`` config keys it reads besides the loop's
            (``losslab.train.loop.LOOP_KEYS``) and the ``loss.*`` keys of its losses.
        single_network: it trains one network, whose learning rate ``loss.lr_g`` or
            ``loss.lr_d`` sets (both set and different: refused).
        network: what the budget trains ("generator", "denoiser", ...).
        second_player: updates of a second network trained beside it ("critic
            updates", counted in ``d_updates``), or None.
        generates: it draws samples and is measured on them; False: measured on
            the model itself (a representation).
        collapse: mode collapse is measured (modes / classes its samples cover).
        primary_metric: ``(name, higher_is_better)`` when the family fixes the
            ranking's metric; None: the data pick it (FID, W1, SWD).
        pareto_metrics: the Pareto front's key metrics when the family fixes
            them; None: the data pick them.
    """

    name: str
    registry: Mapping[str, Any] = field(repr=False)
    trainer: str
    explain: str
    section: str | None
    reads: frozenset[str]
    single_network: bool
    network: str
    second_player: str | None
    generates: bool
    collapse: bool
    primary_metric: tuple[str, bool] | None = None
    pareto_metrics: tuple[str, ...] | None = None

    @property
    def keys(self) -> frozenset[str]:
        """Every config key the family reads besides the loop's: :attr:`reads`, its section's fields,
        ``loss.lr_g``/``loss.lr_d`` for a single network, and each loss's ``loss.*`` keys
        (:func:`losslab.config.loss_keys`). ``tests/test_config_keys.py`` checks it against the reads
        of a tiny run of every loss."""
        keys = set(self.reads) | set().union(*(loss_keys(s.defaults) for s in self.registry.values()))
        if self.section is not None:
            keys |= {f"{self.section}.{f.name}" for f in dataclasses.fields(getattr(Config(), self.section))}
        if self.single_network:
            keys |= {"loss.lr_g", "loss.lr_d"}
        return frozenset(keys)


FAMILY_SPECS: dict[str, FamilySpec] = {
    "gan": FamilySpec(
        name="gan", registry=GAN_LOSSES, trainer="losslab.train.gan", explain="losslab.explain.texts_gan",
        section=None, single_network=False,
        reads=frozenset({"model.z_dim", "model.hidden", "model.layers", "model.code_dim", "model.arch",
                         "train.n_eval", "train.precision"}),
        network="generator", second_player="critic updates", generates=True, collapse=True),
    "diffusion": FamilySpec(
        name="diffusion", registry=DIFFUSION_LOSSES, trainer="losslab.train.diffusion",
        explain="losslab.explain.texts_diffusion", section="diffusion", single_network=True,
        reads=frozenset({"model.hidden", "model.layers", "train.n_eval", "train.precision"}),  # model.*: vectors only
        network="denoiser", second_player=None, generates=True, collapse=True),
    "contrastive": FamilySpec(
        name="contrastive", registry=CONTRASTIVE_LOSSES, trainer="losslab.train.contrastive",
        explain="losslab.explain.texts_contrastive", section=None, single_network=True, reads=frozenset(),
        network="encoder", second_player=None, generates=False, collapse=False,
        primary_metric=("linear_probe", True), pareto_metrics=("linear_probe", "knn")),
    "ebm": FamilySpec(
        name="ebm", registry=EBM_LOSSES, trainer="losslab.train.ebm", explain="losslab.explain.texts_ebm",
        section="ebm", single_network=True,
        reads=frozenset({"model.hidden", "model.layers", "train.n_eval"}),  # model.*: vector data only
        network="energy", second_player=None, generates=True, collapse=True),
}
"""Every model family, in registry order (the order of ``losslab list losses``)."""


def get_spec(name: str) -> FamilySpec:
    """The :class:`FamilySpec` called ``name``.

    Raises:
        UserError: an unknown family (one line listing the families).
    """
    try:
        return FAMILY_SPECS[name]
    except KeyError:
        raise unknown_choice("model family", name, FAMILY_SPECS) from None
