"""Typed configuration: dataclasses, TOML presets and ``--set a.b=v`` overrides.

Resolution order (later wins):

1. the dataclass defaults below (the embedded default: small toy runs);
2. the preset for the data kind (``presets/vector.toml`` or ``presets/image.toml``);
3. a user TOML file (``--config FILE``);
4. ``--set section.key=value`` pairs, each checked against the field's type.

Loss hyperparameters (``loss.*``) default to ``None``, meaning "the loss's own
recommended default" (see :mod:`losslab.losses`); a value set here overrides
it for every loss that has that hyperparameter.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from losslab.errors import UserError
from losslab.io import check_file


@dataclass
class DataConfig:
    name: str = "ring8"
    data_dir: str | None = None
    image_size: int | None = None
    n_train: int | None = None


@dataclass
class ModelConfig:
    z_dim: int = 16
    hidden: int = 64
    layers: int = 3
    code_dim: int | None = None
    arch: str = "dcgan"
    """Image networks: "dcgan" (small DCGAN, the default) or "infogan" (losslab.models.conv)."""


@dataclass
class TrainConfig:
    steps: int = 1500
    """Generator updates per run: the equal budget of a comparison."""
    batch_size: int = 256
    log_every: int = 25
    checkpoint_every: int = 500
    n_eval: int = 2500
    """Generated samples drawn at the end for evaluation."""
    threads: int = 1
    """torch intra-op threads per run (compare runs one job per worker)."""
    curve_points: int = 8
    """Evaluations of the primary metric spread over each run's budget (the quality curve; 0: none)."""
    curve_n: int = 500
    """Generated samples per curve point (fewer than n_eval: a curve point must be cheap)."""
    budget_seconds: float | None = None
    """Equal wall clock instead of equal updates: training seconds per run (None: ``steps`` is the budget)."""
    device: str = "auto"
    """Where models, batches and random streams live: "auto" (a GPU when there is one), "cpu", "cuda",
    "cuda:N" or "mps". Each device has its own random streams: a seed reproduces on one device."""
    precision: str = "fp32"
    """"fp32", or "bf16": autocast of the forward passes (matrix products in bfloat16)."""
    batch_seeds: bool = True
    """Train the seeds of one loss as one batched ensemble where that is possible (vector data; see
    losslab.train.batched); false: one run after another."""


@dataclass
class LossConfig:
    """Overrides of the losses' own defaults; ``None`` keeps each loss's default.

    ``optimizer``, ``beta1``, ``beta2``, ``lr_scale``, ``lr_g`` and ``lr_d``
    apply to every family. The diffusion and contrastive families train a
    single network (denoiser; encoder): ``lr_g`` or ``lr_d`` sets its learning
    rate (setting both to different values for such a family is an error);
    for diffusion an explicit ``diffusion.lr`` wins over them. The other keys
    apply to the losses that have them (see :mod:`losslab.losses`); a key no
    family of a comparison uses is refused (:func:`losslab.train.check_overrides`).
    """

    optimizer: str | None = None
    """"adam" or "rmsprop"."""
    lr_scale: float | None = None
    """Multiplies each loss's own learning rates (an explicit lr_g/lr_d wins)."""
    lr_g: float | None = None
    """Generator learning rate; for single-network families, the network's."""
    lr_d: float | None = None
    """Critic learning rate; for single-network families, the network's."""
    beta1: float | None = None
    beta2: float | None = None
    n_critic: int | None = None
    clip: float | None = None
    gp_lambda: float | None = None
    dragan_c: float | None = None
    r1_gamma: float | None = None
    """Weight gamma of the R1 penalty gamma/2 E||grad D(x)||^2 on real samples (BCE-family GAN losses; 0: off)."""
    r2_gamma: float | None = None
    """Weight gamma of the R2 penalty on generated samples (BCE-family GAN losses; 0: off)."""
    margin: float | None = None
    pt_weight: float | None = None
    pt_variant: str | None = None
    """EBGAN's pulling-away term: "paper" (Zhao et al. Eq. 6) or "global_l1" (a reference collection's bug)."""
    gamma: float | None = None
    lambda_k: float | None = None
    critic_norm: str | None = None
    temperature: float | None = None
    """Contrastive losses' temperature tau (> 0)."""
    mining: str | None = None
    """Triplet negatives: "random" or "batch-hard"."""


@dataclass
class DiffusionConfig:
    """Overrides of the diffusion losses' defaults (``ddpm``, ``ddpm-x0``, ``ddpm-v``, ``flow-matching``, ``edm``);
    ``None`` keeps each loss's default (see :mod:`losslab.losses.diffusion`)."""

    schedule: str | None = None
    """Noise schedule: "linear" (Ho et al. 2020) or "cosine" (Nichol & Dhariwal 2021)."""
    T: int | None = None
    """Number of diffusion steps of the forward process."""
    sampler: str | None = None
    """Sampler for evaluation: "ddim" (Song et al. 2021) or "ddpm" (ancestral, Ho et al. Algorithm 2) for the
    DDPM losses; "euler" or "heun" (ODE solvers, Karras et al. 2022 Algorithm 1) for flow-matching and edm."""
    sample_steps: int | None = None
    """Network evaluations per generated sample, the NFE every diffusion loss shares (DDPM losses: 1..T;
    Heun takes the largest 2N - 1 (edm) or 2N (flow-matching) <= sample_steps)."""
    eta: float | None = None
    """DDIM stochasticity in [0, 1] (0: deterministic)."""
    lr: float | None = None
    """Learning rate of the denoiser (wins over loss.lr_g / loss.lr_d and loss.lr_scale)."""


@dataclass
class EBMConfig:
    """Overrides of the energy-based losses' defaults (``ebm-cd``, ``ebm-dsm``);
    ``None`` keeps each loss's default (see :mod:`losslab.losses.ebm`)."""

    langevin_steps: int | None = None
    """Langevin steps per training update (ebm-cd's negatives)."""
    step_size: float | None = None
    """Langevin step size s: x <- x - (s/2) grad E + noise_scale sqrt(s) eps."""
    noise_scale: float | None = None
    """Multiplies the Langevin noise (1: sample exp(-E); 0: gradient descent)."""
    sample_steps: int | None = None
    """Langevin steps per generated sample for evaluation, from fresh uniform noise."""
    alpha: float | None = None
    """Weight of the energy-magnitude regulariser of ebm-cd."""
    buffer_size: int | None = None
    """Replay buffer capacity of ebm-cd."""
    reinit: float | None = None
    """Share of ebm-cd chains started from fresh uniform noise instead of the buffer."""
    sigma: float | None = None
    """Noise standard deviation of ebm-dsm (standardised units for vectors, [-1, 1] pixels)."""
    lr: float | None = None
    """Learning rate of the energy (wins over loss.lr_g / loss.lr_d and loss.lr_scale)."""


# ----------------------------------------------------------------------------- domains


@dataclass(frozen=True)
class Domain:
    """The values a config field accepts (``None``, "the default", is always accepted).

    ``kind`` is "float" (a finite real number), "int", "choice", "bool" or "text";
    ``lo``/``hi`` bound numbers (``lo_open``/``hi_open``: strict bound); ``step``
    requires a multiple of it; ``choices`` lists the values of a choice field.
    """

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    step: int | None = None
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        """What is allowed, as the end of the sentence "must be ..."."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "text":
            return "text"
        if self.kind == "bool":
            return "true or false"
        what = "a finite number" if self.kind == "float" else "an integer"
        if self.lo is not None and self.hi is not None:
            left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            what += f" in {left}{self.lo:g}, {self.hi:g}{right}"
        elif self.lo is not None:
            what += f" {'>' if self.lo_open else '>='} {self.lo:g}"
        elif self.hi is not None:
            what += f" {'<' if self.hi_open else '<='} {self.hi:g}"
        if self.step is not None:
            what += f", a multiple of {self.step}"
        return what

    def accepts(self, value: Any) -> bool:
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "text":
            return isinstance(value, str)
        if self.kind == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            return False
        return self.step is None or value % self.step == 0


def _num(kind: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
         hi_open: bool = False, step: int | None = None) -> Domain:
    return Domain(kind, lo, hi, lo_open, hi_open, step)


def _choice(*choices: str) -> Domain:
    return Domain("choice", choices=choices)


POSITIVE = _num("float", 0.0, lo_open=True)  # a learning rate, a temperature
NONNEGATIVE = _num("float", 0.0)  # a weight or margin whose 0 switches the term off
COUNT = _num("int", 1)

DOMAINS: dict[str, Domain] = {
    # [data]
    "data.name": Domain("text"),
    "data.data_dir": Domain("text"),
    "data.image_size": _num("int", 4, step=4),  # the image models halve the side twice
    "data.n_train": COUNT,
    # [model]
    "model.z_dim": COUNT,
    "model.hidden": COUNT,
    "model.layers": COUNT,
    "model.code_dim": COUNT,
    "model.arch": _choice("dcgan", "infogan"),
    # [train]
    "train.steps": COUNT,
    "train.batch_size": COUNT,  # >= 2 where BatchNorm sees the batch: see compare.check_batch_size
    "train.log_every": COUNT,
    "train.checkpoint_every": COUNT,
    "train.n_eval": COUNT,
    "train.threads": COUNT,
    "train.curve_points": _num("int", 0),  # 0 switches the curve off
    "train.curve_n": _num("int", 2),
    "train.budget_seconds": POSITIVE,
    "train.device": Domain("text"),  # checked against this machine by losslab.train.common.resolve_device
    "train.precision": _choice("fp32", "bf16"),
    "train.batch_seeds": Domain("bool"),
    # [loss]
    "loss.optimizer": _choice("adam", "rmsprop"),
    "loss.lr_scale": POSITIVE,
    "loss.lr_g": POSITIVE,
    "loss.lr_d": POSITIVE,
    "loss.beta1": _num("float", 0.0, 1.0, hi_open=True),  # Adam needs beta < 1 (Kingma & Ba 2015, Alg. 1)
    "loss.beta2": _num("float", 0.0, 1.0, hi_open=True),
    "loss.n_critic": COUNT,
    "loss.clip": POSITIVE,  # WGAN weight clipping to [-c, c]: c = 0 zeroes every critic weight
    "loss.gp_lambda": NONNEGATIVE,
    "loss.dragan_c": NONNEGATIVE,  # 0: the penalty at the data points themselves
    "loss.r1_gamma": NONNEGATIVE,  # 0: no R1 penalty (Mescheder et al. 2018, Sec. 4.1)
    "loss.r2_gamma": NONNEGATIVE,  # 0: no R2 penalty
    "loss.margin": NONNEGATIVE,
    "loss.pt_weight": NONNEGATIVE,
    "loss.pt_variant": _choice("paper", "global_l1"),
    "loss.gamma": _num("float", 0.0, 1.0, lo_open=True),  # BEGAN diversity ratio (Berthelot et al. 2017, Eq. 4)
    "loss.lambda_k": NONNEGATIVE,  # 0: k stays at its start value
    "loss.critic_norm": _choice("batch", "layer", "none"),
    "loss.temperature": POSITIVE,
    "loss.mining": _choice("random", "batch-hard"),
    # [diffusion]
    "diffusion.schedule": _choice("linear", "cosine"),
    "diffusion.T": _num("int", 2),
    "diffusion.sampler": _choice("ddim", "ddpm", "euler", "heun"),  # each objective takes its own (init_state)
    "diffusion.sample_steps": COUNT,  # and <= diffusion.T (checked in validate)
    "diffusion.eta": _num("float", 0.0, 1.0),
    "diffusion.lr": POSITIVE,
    # [ebm]
    "ebm.langevin_steps": COUNT,
    "ebm.step_size": POSITIVE,
    "ebm.noise_scale": NONNEGATIVE,  # 0: noiseless gradient descent on the energy
    "ebm.sample_steps": COUNT,
    "ebm.alpha": NONNEGATIVE,
    "ebm.buffer_size": COUNT,
    "ebm.reinit": _num("float", 0.0, 1.0),
    "ebm.sigma": POSITIVE,
    "ebm.lr": POSITIVE,
}
"""Domain of every config field, keyed ``"section.key"`` (a test checks that none is missing)."""


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def check_value(key: str, value: Any) -> Any:
    """Check one config value against its :data:`DOMAINS` entry; ``None`` (the default) always passes.

    Returns
    -------
    The value.

    Raises
    ------
    UserError
        ``"loss.lr_d = inf: must be a finite number > 0"``: the key, the value and what is allowed.
    """
    dom = DOMAINS.get(key)
    if value is None or dom is None or dom.accepts(value):
        return value
    raise UserError(f"{key} = {_show(value)}: must be {dom.describe()}")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    ebm: EBMConfig = field(default_factory=EBMConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}


def _section_fields(section: str) -> dict[str, Any]:
    obj = getattr(Config(), section)
    hints = typing.get_type_hints(type(obj))
    return {f.name: hints[f.name] for f in dataclasses.fields(obj)}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (a string from the command line or a TOML value) to type ``tp``
    and check it against the field's domain (:data:`DOMAINS`) before anything uses it.

    Raises:
        UserError: a value of the wrong type, or outside the field's domain (a non-finite
            float, a learning rate <= 0, an unknown choice, ...), naming the key.
    """
    return check_value(key, _coerce_type(value, tp, key))


def _coerce_type(value: Any, tp: Any, key: str) -> Any:
    """Type conversion of :func:`_coerce` (no domain check)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        # "null" resets to the loss's default; "none" is a real value of critic_norm.
        if value is None or (isinstance(value, str) and value.lower() == "null"):
            return None
        return _coerce_type(value, args[0], key)
    if value is None:
        raise UserError(f"--set {key}: a value is required")
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            s = str(value).lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            if isinstance(value, str):
                f = float(value)
                if not f.is_integer():
                    raise ValueError
                return int(f)
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError  # a TOML table, list or date is not a name
            return str(value)
    except (TypeError, ValueError, OverflowError):
        name = getattr(tp, "__name__", str(tp))
        raise UserError(f"{key}: expected {name}, got {value!r}") from None
    return value


def apply_overrides(cfg: Config, values: dict[str, dict[str, Any]], source: str) -> Config:
    """Apply ``{section: {key: value}}`` to ``cfg`` with type checks.

    Raises:
        UserError: unknown section or key, or a value of the wrong type.
    """
    for section, kv in values.items():
        if section not in SECTIONS:
            raise UserError(f"{source}: unknown section {section!r}; choose from: {', '.join(SECTIONS)}")
        if not isinstance(kv, dict):
            raise UserError(f"{source}: [{section}] must be a table of key = value")
        fields = _section_fields(section)
        obj = getattr(cfg, section)
        for key, value in kv.items():
            if key not in fields:
                raise UserError(
                    f"{source}: unknown key {section}.{key}; choose from: "
                    + ", ".join(f"{section}.{k}" for k in fields)
                )
            setattr(obj, key, _coerce(value, fields[key], f"{section}.{key}"))
    return cfg


def parse_set(items: list[str] | None) -> dict[str, dict[str, str]]:
    """Parse ``["train.lr=1e-4", ...]`` into ``{"train": {"lr": "1e-4"}}``.

    Raises:
        UserError: an item that is not ``section.key=value``.
    """
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise UserError(f"malformed --set {item!r}; expected section.key=value, e.g. train.steps=2000")
        lhs, value = item.split("=", 1)
        section, key = lhs.strip().split(".", 1)
        if not section or not key:
            raise UserError(f"malformed --set {item!r}; expected section.key=value, e.g. train.steps=2000")
        out.setdefault(section, {})[key] = value.strip()
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file.

    Raises:
        UserError: missing, unreadable, not UTF-8 text, or invalid TOML (one line naming the file).
    """
    p = Path(path)
    if not p.exists():
        raise UserError(f"config file not found: {p}")
    check_file(p, "TOML file")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not UTF-8 text (byte {e.start}); TOML files must be UTF-8, save it as UTF-8") from None
    except OSError as e:
        raise UserError(f"{p}: cannot read the config file ({e.strerror or e})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{p}: invalid TOML ({e})") from None


@dataclass(frozen=True)
class Overrides:
    """The user's ``--config FILE`` and ``--set`` items, parsed once, remembering where each key came from.

    ``layers`` are ``(source, {section: {key: value}})`` in the order they apply
    (the file, then ``--set``; a later layer wins). Build it with :meth:`parse`;
    :func:`resolve` applies it, :meth:`sources` feeds
    :func:`losslab.train.check_overrides` (a preset's keys are defaults, not
    choices, and are never in it).
    """

    layers: tuple[tuple[str, dict[str, Any]], ...] = ()

    @classmethod
    def parse(cls, *, config_file: str | Path | None = None, sets: list[str] | None = None) -> "Overrides":
        """Read ``config_file`` (TOML) and parse ``sets`` (``section.key=value`` strings) once.

        Raises:
            UserError: an unreadable or invalid TOML file; a malformed ``--set`` item.
        """
        layers = [(str(config_file), load_toml(config_file))] if config_file else []
        layers.append(("--set", parse_set(sets)))
        return cls(tuple(layers))

    def only(self, section: str) -> "Overrides":
        """The same overrides restricted to ``section`` (``data.*`` must be known before the data load)."""
        return Overrides(tuple((src, {k: v for k, v in t.items() if k == section}) for src, t in self.layers))

    def apply(self, cfg: Config) -> Config:
        """Apply every layer to ``cfg`` in order, type- and domain-checked (:func:`apply_overrides`)."""
        for source, table in self.layers:
            apply_overrides(cfg, table, source)
        return cfg

    def sources(self) -> dict[str, str]:
        """``{"section.key": source}`` of every key set, the source being the layer that wins (``--set``
        over the file)."""
        out: dict[str, str] = {}
        for source, table in self.layers:
            out.update({k: source for k in explicit_keys(table)})
        return out


def preset(kind: str) -> dict[str, Any]:
    """The packaged preset for a data kind ("vector" or "image")."""
    text = resources.files("losslab").joinpath("presets", f"{kind}.toml").read_text()
    return tomllib.loads(text)


def resolve(
    kind: str,
    *,
    config_file: str | None = None,
    sets: list[str] | None = None,
    base: Config | None = None,
    overrides: Overrides | None = None,
) -> Config:
    """Build the config for data of ``kind``: defaults < preset < file < --set.

    ``overrides`` (parsed once, :class:`Overrides`) replaces ``config_file`` and ``sets``.
    """
    cfg = base or Config()
    apply_overrides(cfg, {k: v for k, v in preset(kind).items()}, f"preset {kind}.toml")
    (overrides or Overrides.parse(config_file=config_file, sets=sets)).apply(cfg)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Check every value of ``cfg`` against its domain (:data:`DOMAINS`) and the
    rules that tie two fields together; run before anything is written or trained.

    Cross-field rules: ``diffusion.sample_steps <= diffusion.T`` when both are set;
    ``train.batch_size >= 2`` when ``loss.critic_norm = "batch"`` (BatchNorm needs
    more than one sample per batch; :func:`losslab.compare.check_batch_size` covers the losses whose
    own default is BatchNorm).

    Raises:
        UserError: one line naming the key, the value and what is allowed.
    """
    for section in SECTIONS:
        obj = getattr(cfg, section)
        for f in dataclasses.fields(obj):
            check_value(f"{section}.{f.name}", getattr(obj, f.name))
    dc = cfg.diffusion
    if dc.sample_steps is not None and dc.T is not None and dc.sample_steps > dc.T:
        raise UserError(f"diffusion.sample_steps = {dc.sample_steps}: must be <= diffusion.T = {dc.T}")
    if cfg.loss.critic_norm == "batch" and cfg.train.batch_size < 2:
        raise UserError(
            f"train.batch_size = {cfg.train.batch_size}: must be >= 2 with loss.critic_norm = 'batch' "
            "(BatchNorm needs more than one sample per batch)"
        )


def loss_hparams(defaults: dict[str, Any], overrides: LossConfig) -> dict[str, Any]:
    """Merge a loss's own defaults with the user's ``loss.*`` overrides.

    An override applies only to hyperparameters the loss has (``margin`` does
    not touch WGAN); ``beta1``/``beta2`` replace the two entries of ``betas``;
    ``lr_scale`` multiplies each learning rate the loss has (``lr_g``, ``lr_d``,
    ``lr``) before an explicit ``lr_g``/``lr_d`` replaces it. This is the
    generic part of every family's resolution; a family's ``hparams``
    (:mod:`losslab.train`) adds what only it knows (a single network's ``lr``
    from ``lr_g``/``lr_d``, ``diffusion.*``). :func:`loss_keys` lists the
    ``loss.*`` keys this function can apply to given defaults.
    """
    hp = dict(defaults)
    applies = loss_keys(defaults)  # only these fields are read, so a recorded read is a real use
    if "loss.lr_scale" in applies and overrides.lr_scale is not None:
        for k in _LR_KEYS:
            if k in hp:
                hp[k] = hp[k] * overrides.lr_scale
    for f in dataclasses.fields(overrides):
        if f.name == "lr_scale" or f"loss.{f.name}" not in applies:
            continue
        v = getattr(overrides, f.name)
        if v is None:
            continue
        if f.name in ("beta1", "beta2"):
            if "betas" in hp:
                b = list(hp["betas"])
                b[0 if f.name == "beta1" else 1] = v
                hp["betas"] = tuple(b)
        elif f.name in hp:
            hp[f.name] = v
    if "betas" in hp:
        hp["betas"] = tuple(hp["betas"])
    return hp


_LR_KEYS = ("lr_g", "lr_d", "lr")


def loss_keys(defaults: dict[str, Any]) -> set[str]:
    """The ``loss.*`` config keys that :func:`loss_hparams` applies to a loss with these ``defaults``.

    ``loss.beta1``/``loss.beta2`` when it has ``betas``; ``loss.lr_scale`` when
    it has a learning rate; every other field of :class:`LossConfig` when it
    is a key of ``defaults``.
    """
    keys = {f"loss.{f.name}" for f in dataclasses.fields(LossConfig) if f.name in defaults}
    if "betas" in defaults:
        keys |= {"loss.beta1", "loss.beta2"}
    if any(k in defaults for k in _LR_KEYS):
        keys.add("loss.lr_scale")
    return keys


def explicit_keys(*tables: dict[str, Any] | None) -> set[str]:
    """The ``section.key`` names present in parsed override tables.

    Args:
        tables: ``{section: {key: value}}`` dicts, e.g. :func:`parse_set`'s
            result for ``--set`` and :func:`load_toml`'s for ``--config``
            (pass only what the user wrote: a preset's keys are defaults, not
            choices). ``None`` and non-table sections are skipped.

    Returns:
        e.g. ``{"loss.n_critic", "train.steps"}``.
    """
    return {f"{section}.{key}" for t in tables if t for section, kv in t.items() if isinstance(kv, dict)
            for key in kv}
