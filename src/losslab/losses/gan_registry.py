"""The GAN registry: CLI name -> :class:`GANLoss`, a plain dict literal.

Each entry pairs a discriminator and a generator loss from
:mod:`losslab.losses.gan` with what the training step needs to know: what the
critic outputs, whether it is an autoencoder, which penalty or clipping to
apply, and the optimiser/hyperparameter defaults of the paper it comes from.
Penalties live in :mod:`losslab.losses.penalties`.

``defaults`` keys common to every loss: ``optimizer`` ("adam" | "rmsprop"),
``lr_g``, ``lr_d``, ``betas`` (Adam's (beta1, beta2); unused by RMSprop),
``n_critic`` (critic updates per generator update) and ``critic_norm``
("batch" | "layer" | "none": normalisation inside conv critics; never "batch"
with a gradient penalty, since the penalty is per sample). Loss-specific keys:
``clip`` (wgan), ``gp_lambda`` (wgan-gp, dragan), ``dragan_c`` (dragan),
``margin``, ``pt_weight``, ``pt_variant``, ``energy`` (ebgan), ``gamma``, ``lambda_k``,
``energy`` (began), ``r1_gamma`` and ``r2_gamma`` (every loss that declares the zero-centred
penalties in ``penalty`` ("r1", "r2"): the BCE family minimax, ns, dragan, r1, rpgan, r3gan; 0 switches
a penalty off). Copy ``defaults`` before changing it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import Tensor

from losslab.losses import gan
from losslab.losses.penalties import ZERO_CENTRED


@dataclass(frozen=True)
class GANLoss:
    """One GAN objective: the two pure losses and how to train with them.

    Attributes
    ----------
    name : str
        CLI name (the key in :data:`GAN_LOSSES`).
    d_loss, g_loss : callable
        Keyword-only pure functions returning scalar tensors (see
        :mod:`losslab.losses.gan`).
    output : str
        What the critic returns: "logit" | "score" | "critic" | "energy".
    critic : str
        "discriminator" (one value per sample) | "autoencoder" (reconstruction, code).
    penalty : str, tuple of str, or None
        None | "gp" (WGAN-GP) | "dragan", or a tuple of such names; each is an
        entry of :data:`losslab.train.gan.PENALTIES` (its function and weight key).
    clip : bool
        Clip the critic's weights after each critic update (WGAN).
    defaults : dict
        Optimiser and loss hyperparameters (keys listed in the module docstring).
    summary : str
        One line for ``losslab list``.
    source : str
        "Author et al. YEAR, arXiv:XXXX.XXXXX, Eq. N".
    d_hparams, g_hparams : tuple of str
        Hyperparameters (keys of ``defaults``) passed by name to ``d_loss`` /
        ``g_loss`` besides the critic outputs (EBGAN: ``margin``; ``pt_weight``).
    g_takes_code : bool
        ``g_loss`` also takes ``code_fake``, the autoencoder critic's code of
        the generated batch (EBGAN's pulling-away term).
    g_needs_real : bool
        ``g_loss`` also takes the critic's outputs on a fresh real batch
        (``d_real`` / ``e_real``; relativistic losses), drawn after the
        generator's z and treated as a constant.
    equilibrium : bool
        BEGAN's equilibrium: ``d_loss`` takes ``k``, the state carries a
        :class:`~losslab.losses.penalties.BEGANEquilibrium` (``gamma``,
        ``lambda_k``) updated after each generator update.
    (``penalty`` may name the zero-centred penalties "r1" (real samples) and "r2"
    (generated ones), each weighted by ``<name>_gamma`` of ``defaults``, 0: off;
    the step adds ``gamma / 2`` times the squared gradient norm. Only discriminator critics.)
    search_space : dict
        What ``losslab compare --search`` tunes (:mod:`losslab.search`):
        ``{key: (kind, lo, hi)}`` with kind "log" (log-uniform float), "float"
        or "int" (uniform, bounds included); a key is a ``loss.*`` config field,
        or ``"lr"``: ``lr_g`` and ``lr_d`` set to the same value.

    The critic outputs reach the losses as ``e_real`` / ``e_fake`` when
    ``output == "energy"``, else as ``d_real`` / ``d_fake``; the training step
    (:mod:`losslab.train.gan`) reads only these declarations, never the name.
    """

    name: str
    d_loss: Callable[..., Tensor]
    g_loss: Callable[..., Tensor]
    output: str
    critic: str
    penalty: str | tuple[str, ...] | None
    clip: bool
    defaults: dict = field(hash=False)
    summary: str
    source: str
    d_hparams: tuple[str, ...] = ()
    g_hparams: tuple[str, ...] = ()
    g_takes_code: bool = False
    g_needs_real: bool = False
    equilibrium: bool = False
    search_space: dict = field(default_factory=dict, hash=False)

    @property
    def grad_penalties(self) -> tuple[str, ...]:
        """The zero-centred penalties among ``penalty`` ("r1", "r2"), each weighted by ``<name>_gamma``."""
        names = (self.penalty,) if isinstance(self.penalty, str) else tuple(self.penalty or ())
        return tuple(p for p in names if p in ZERO_CENTRED)

    def __post_init__(self) -> None:
        for p in self.grad_penalties:
            if f"{p}_gamma" not in self.defaults or self.critic != "discriminator":
                raise ValueError(f"{self.name}: penalty {p!r} needs {p}_gamma in defaults and a discriminator critic")


# DCGAN's optimiser settings (Radford et al. 2016, arXiv:1511.06434, Sec. 4:
# Adam, lr 2e-4, beta1 0.5; beta2 is Adam's default 0.999), one D step per G
# step, batch norm in the critic. Used where a paper gives no settings of its own.
_DCGAN = {"optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999), "n_critic": 1, "critic_norm": "batch"}

# Tuning ranges of --search, from the large-scale equal-budget study of Lucic et
# al. 2018 ("Are GANs Created Equal?", arXiv:1711.10337, Sec. 5 and its
# hyperparameter table): learning rate log-uniform in [1e-5, 1e-2], Adam's beta1
# in [0, 1] (here [0, 0.9]: Adam needs beta1 < 1, and 0.9 is its default),
# n_disc in [1, 5] and the gradient-penalty weight log-uniform in [0.1, 100].
# One learning rate for both players, as there.
_LR = ("log", 1e-5, 1e-2)
_ADAM_SPACE = {"lr": _LR, "beta1": ("float", 0.0, 0.9), "n_critic": ("int", 1, 5)}
_GP_SPACE = {**_ADAM_SPACE, "gp_lambda": ("log", 0.1, 100.0)}
# The zero-centred penalties' weight gamma: log-uniform over the range the papers use, from R3GAN's
# CIFAR-10 start 0.05 (Huang et al. 2024) past Mescheder et al.'s 10 (arXiv:1801.04406, Sec. 5;
# section number unchecked).
_GAMMA = ("log", 0.01, 100.0)

# The BCE-family losses accept R1 and R2 (loss.r1_gamma, loss.r2_gamma), off unless set.
_ZC_OFF = {"r1_gamma": 0.0, "r2_gamma": 0.0}

GAN_LOSSES: dict[str, GANLoss] = {
    "minimax": GANLoss(
        name="minimax",
        d_loss=gan.minimax_d_loss,
        g_loss=gan.minimax_g_loss,
        output="logit",
        critic="discriminator",
        penalty=("r1", "r2"),
        clip=False,
        defaults={**_DCGAN, **_ZC_OFF},  # DCGAN settings (see _DCGAN); R1/R2 off
        summary="original saturating minimax game: G minimises E log(1 - D(G(z)))",
        source="Goodfellow et al. 2014, arXiv:1406.2661, Eq. 1",
        search_space=_ADAM_SPACE,
    ),
    "ns": GANLoss(
        name="ns",
        d_loss=gan.ns_d_loss,
        g_loss=gan.ns_g_loss,
        output="logit",
        critic="discriminator",
        penalty=("r1", "r2"),
        clip=False,
        defaults={**_DCGAN, **_ZC_OFF},  # DCGAN settings; DCGAN itself trains with this loss; R1/R2 off
        summary="non-saturating GAN: G minimises -E log D(G(z)) (the -log D trick)",
        source="Goodfellow et al. 2014, arXiv:1406.2661, Sec. 3",
        search_space=_ADAM_SPACE,
    ),
    "wgan": GANLoss(
        name="wgan",
        d_loss=gan.wasserstein_d_loss,
        g_loss=gan.wasserstein_g_loss,
        output="critic",
        critic="discriminator",
        penalty=None,
        clip=True,
        # Arjovsky et al. Algorithm 1: RMSprop, alpha = 5e-5, c = 0.01, n_critic = 5
        # (betas unused by RMSprop); the paper's DCGAN critic keeps batch norm.
        defaults={
            "optimizer": "rmsprop",
            "lr_g": 5e-5,
            "lr_d": 5e-5,
            "betas": (0.5, 0.999),
            "n_critic": 5,
            "critic_norm": "batch",
            "clip": 0.01,
        },
        summary="Wasserstein GAN: critic estimates W1, Lipschitz via weight clipping",
        source="Arjovsky et al. 2017, arXiv:1701.07875, Algorithm 1",
        search_space={"lr": _LR, "n_critic": ("int", 1, 5)},  # RMSprop: no betas
    ),
    "wgan-gp": GANLoss(
        name="wgan-gp",
        d_loss=gan.wasserstein_d_loss,
        g_loss=gan.wasserstein_g_loss,
        output="critic",
        critic="discriminator",
        penalty="gp",
        clip=False,
        # Gulrajani et al. Algorithm 1: lambda = 10, n_critic = 5, Adam alpha = 1e-4,
        # beta1 = 0, beta2 = 0.9; layer norm instead of batch norm (Sec. 4).
        defaults={
            "optimizer": "adam",
            "lr_g": 1e-4,
            "lr_d": 1e-4,
            "betas": (0.0, 0.9),
            "n_critic": 5,
            "critic_norm": "layer",
            "gp_lambda": 10.0,
        },
        summary="WGAN with a per-sample gradient penalty at random interpolates",
        source="Gulrajani et al. 2017, arXiv:1704.00028, Eq. 3, Algorithm 1",
        search_space=_GP_SPACE,
    ),
    "lsgan": GANLoss(
        name="lsgan",
        d_loss=gan.lsgan_d_loss,
        g_loss=gan.lsgan_g_loss,
        output="score",
        critic="discriminator",
        penalty=None,
        clip=False,
        defaults={**_DCGAN},  # DCGAN settings (Mao et al. also use Adam with beta1 = 0.5)
        summary="least-squares GAN with 0-1 coding (a=0, b=1, c=1)",
        source="Mao et al. 2017, arXiv:1611.04076, Eq. 2",
        search_space=_ADAM_SPACE,
    ),
    "hinge": GANLoss(
        name="hinge",
        d_loss=gan.hinge_d_loss,
        g_loss=gan.hinge_g_loss,
        output="logit",
        critic="discriminator",
        penalty=None,
        clip=False,
        # DCGAN settings (lr 2e-4, betas (0.5, 0.999), one D step: one of the
        # settings Miyato et al. sweep in their Table 1); no spectral norm here.
        defaults={**_DCGAN},
        summary="hinge loss: D margin at +-1, G maximises the raw discriminator output",
        source="Lim & Ye 2017, arXiv:1705.02894; Miyato et al. 2018, arXiv:1802.05957",
        search_space=_ADAM_SPACE,
    ),
    "dragan": GANLoss(
        name="dragan",
        d_loss=gan.ns_d_loss,
        g_loss=gan.ns_g_loss,
        output="logit",
        critic="discriminator",
        penalty=("dragan", "r1", "r2"),
        clip=False,
        # DCGAN optimiser settings; lambda = 10 (Kodali et al. Sec. 4) and
        # c = 0.5 (authors' reference code); per-sample penalty -> layer norm.
        defaults={**_DCGAN, "critic_norm": "layer", "gp_lambda": 10.0, "dragan_c": 0.5, **_ZC_OFF},
        summary="non-saturating GAN with a gradient penalty around perturbed real data",
        source="Kodali et al. 2017, arXiv:1705.07215, Sec. 4",
        search_space=_GP_SPACE,
    ),
    "r1": GANLoss(
        name="r1",
        d_loss=gan.ns_d_loss,
        g_loss=gan.ns_g_loss,
        output="logit",
        critic="discriminator",
        penalty=("r1", "r2"),
        clip=False,
        # Mescheder et al.'s reference configuration (LMescheder/GAN_stability configs/default.yaml):
        # RMSprop, lr 1e-4 for both players, one D step, reg_param gamma = 10 on real data only;
        # no normalisation in the critic (the penalty is per sample). betas are unused by RMSprop.
        defaults={"optimizer": "rmsprop", "lr_g": 1e-4, "lr_d": 1e-4, "betas": (0.5, 0.999), "n_critic": 1,
                  "critic_norm": "none", "r1_gamma": 10.0, "r2_gamma": 0.0},
        summary="non-saturating GAN with the R1 penalty gamma/2 E||grad D(x)||^2 on real data",
        source="Mescheder et al. 2018, arXiv:1801.04406, Sec. 4.1",
        search_space={"lr": _LR, "n_critic": ("int", 1, 5), "r1_gamma": _GAMMA},  # RMSprop: no betas
    ),
    "rpgan": GANLoss(
        name="rpgan",
        d_loss=gan.rpgan_d_loss,
        g_loss=gan.rpgan_g_loss,
        output="logit",
        critic="discriminator",
        penalty=("r1", "r2"),
        clip=False,
        # Jolicoeur-Martineau's experiments use the DCGAN setup (Adam lr 2e-4, beta1 0.5, one D step).
        defaults={**_DCGAN, **_ZC_OFF},
        summary="relativistic paired GAN: D and G compare each real logit with a fake one",
        source="Jolicoeur-Martineau 2018, arXiv:1807.00734, Sec. 4",
        g_needs_real=True,
        search_space=_ADAM_SPACE,
    ),
    "r3gan": GANLoss(
        name="r3gan",
        d_loss=gan.rpgan_d_loss,
        g_loss=gan.rpgan_g_loss,
        output="logit",
        critic="discriminator",
        penalty=("r1", "r2"),
        clip=False,
        # Huang et al.'s CIFAR-10 preset at the start of its schedules (brownvc/R3GAN train.py): Adam
        # lr 2e-4, betas (0, 0.9), gamma 0.05 for R1 and R2 alike (the schedules, which decay lr to 5e-5
        # and gamma tenfold, are left out); no normalisation layers.
        defaults={"optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.0, 0.9), "n_critic": 1,
                  "critic_norm": "none", "r1_gamma": 0.05, "r2_gamma": 0.05},
        summary="R3GAN: relativistic pairing (RpGAN) with the R1 and R2 penalties",
        source="Huang et al. 2024, arXiv:2501.05441, Sec. 2; Jolicoeur-Martineau 2018, arXiv:1807.00734",
        g_needs_real=True,
        search_space={**_ADAM_SPACE, "r1_gamma": _GAMMA, "r2_gamma": _GAMMA},
    ),
    "ebgan": GANLoss(
        name="ebgan",
        d_loss=gan.ebgan_d_loss,
        g_loss=gan.ebgan_g_loss,
        output="energy",
        critic="autoencoder",
        penalty=None,
        clip=False,
        # DCGAN optimiser settings; pt_weight = 0.1 and the MSE energy as in Zhao
        # et al. (Sec. 2.3-2.4). The paper grid-searches the margin; 1.0 is our
        # choice for per-element mean-squared energies of data in [-1, 1].
        # pt_variant "global_l1" is a widely copied bug of the term, kept to study it.
        defaults={**_DCGAN, "margin": 1.0, "pt_weight": 0.1, "pt_variant": "paper", "energy": "mse"},
        summary="energy-based GAN: autoencoder critic, margin loss, pulling-away term",
        source="Zhao et al. 2017, arXiv:1609.03126, Eqs. 1-2, Eq. 6",
        d_hparams=("margin",),
        g_hparams=("pt_weight", "pt_variant"),
        g_takes_code=True,
        search_space=_ADAM_SPACE,
    ),
    "began": GANLoss(
        name="began",
        d_loss=gan.began_d_loss,
        g_loss=gan.began_g_loss,
        output="energy",
        critic="autoencoder",
        penalty=None,
        clip=False,
        # Berthelot et al.: Adam lr 1e-4, gamma in [0.3, 0.7], lambda_k = 0.001,
        # L1 energy (eta = 1), no batch norm; beta1 = 0.5 as in DCGAN.
        defaults={
            "optimizer": "adam",
            "lr_g": 1e-4,
            "lr_d": 1e-4,
            "betas": (0.5, 0.999),
            "n_critic": 1,
            "critic_norm": "none",
            "gamma": 0.5,
            "lambda_k": 1e-3,
            "energy": "l1",
        },
        summary="boundary-equilibrium GAN: autoencoder critic balanced by k_t",
        source="Berthelot et al. 2017, arXiv:1703.10717, Eq. 4",
        equilibrium=True,
        search_space={**_ADAM_SPACE, "gamma": ("float", 0.3, 0.7)},  # gamma in [0.3, 0.7]: Berthelot et al.
    ),
}

GAN_LOSS_NAMES: tuple[str, ...] = tuple(GAN_LOSSES)
