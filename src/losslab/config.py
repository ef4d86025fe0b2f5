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
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from losslab.errors import UserError


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
    margin: float | None = None
    pt_weight: float | None = None
    gamma: float | None = None
    lambda_k: float | None = None
    critic_norm: str | None = None
    temperature: float | None = None
    """Contrastive losses' temperature tau (> 0)."""
    mining: str | None = None
    """Triplet negatives: "random" or "batch-hard"."""


@dataclass
class DiffusionConfig:
    """Overrides of the diffusion losses' defaults (``ddpm``, ``ddpm-x0``, ``ddpm-v``);
    ``None`` keeps each loss's default (see :mod:`losslab.losses.diffusion`)."""

    schedule: str | None = None
    """Noise schedule: "linear" (Ho et al. 2020) or "cosine" (Nichol & Dhariwal 2021)."""
    T: int | None = None
    """Number of diffusion steps of the forward process."""
    sampler: str | None = None
    """Sampler for evaluation: "ddim" (Song et al. 2021) or "ddpm" (ancestral, Ho et al. Algorithm 2)."""
    sample_steps: int | None = None
    """Network evaluations per generated sample (1..T)."""
    eta: float | None = None
    """DDIM stochasticity in [0, 1] (0: deterministic)."""
    lr: float | None = None
    """Learning rate of the denoiser (wins over loss.lr_g / loss.lr_d and loss.lr_scale)."""


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}


def _section_fields(section: str) -> dict[str, Any]:
    obj = getattr(Config(), section)
    hints = typing.get_type_hints(type(obj))
    return {f.name: hints[f.name] for f in dataclasses.fields(obj)}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (a string from the command line or a TOML value) to type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        # "null" resets to the loss's default; "none" is a real value of critic_norm.
        if value is None or (isinstance(value, str) and value.lower() == "null"):
            return None
        return _coerce(value, args[0], key)
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
            return str(value)
    except (TypeError, ValueError):
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
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p}")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{p}: invalid TOML ({e})") from None


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
) -> Config:
    """Build the config for data of ``kind``: defaults < preset < file < --set."""
    cfg = base or Config()
    apply_overrides(cfg, {k: v for k, v in preset(kind).items()}, f"preset {kind}.toml")
    if config_file:
        apply_overrides(cfg, load_toml(config_file), str(config_file))
    apply_overrides(cfg, parse_set(sets), "--set")
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Range checks that types alone do not catch.

    Raises:
        UserError: a value out of range.
    """
    t = cfg.train
    for name in ("steps", "batch_size", "log_every", "checkpoint_every", "n_eval", "threads"):
        if getattr(t, name) < 1:
            raise UserError(f"train.{name} must be >= 1, got {getattr(t, name)}")
    if cfg.model.z_dim < 1 or cfg.model.hidden < 1 or cfg.model.layers < 1:
        raise UserError("model.z_dim, model.hidden and model.layers must be >= 1")
    lc = cfg.loss
    if lc.optimizer is not None and lc.optimizer not in ("adam", "rmsprop"):
        raise UserError(f"loss.optimizer must be adam or rmsprop, got {lc.optimizer!r}")
    if lc.critic_norm is not None and lc.critic_norm not in ("batch", "layer", "none"):
        raise UserError(f"loss.critic_norm must be batch, layer or none, got {lc.critic_norm!r}")
    if lc.lr_scale is not None and not lc.lr_scale > 0:
        raise UserError(f"loss.lr_scale must be > 0, got {lc.lr_scale}")
    if lc.n_critic is not None and lc.n_critic < 1:
        raise UserError(f"loss.n_critic must be >= 1, got {lc.n_critic}")
    if lc.temperature is not None and not lc.temperature > 0:
        raise UserError(f"loss.temperature must be > 0, got {lc.temperature}")
    if lc.mining is not None and lc.mining not in ("random", "batch-hard"):
        raise UserError(f"loss.mining must be random or batch-hard, got {lc.mining!r}")
    dc = cfg.diffusion
    if dc.schedule is not None and dc.schedule not in ("linear", "cosine"):
        raise UserError(f"diffusion.schedule must be linear or cosine, got {dc.schedule!r}")
    if dc.sampler is not None and dc.sampler not in ("ddim", "ddpm"):
        raise UserError(f"diffusion.sampler must be ddim or ddpm, got {dc.sampler!r}")
    if dc.T is not None and dc.T < 2:
        raise UserError(f"diffusion.T must be >= 2, got {dc.T}")
    if dc.sample_steps is not None and not 1 <= dc.sample_steps <= (dc.T or dc.sample_steps):
        raise UserError(f"diffusion.sample_steps must be in 1..diffusion.T, got {dc.sample_steps}")
    if dc.eta is not None and not 0.0 <= dc.eta <= 1.0:
        raise UserError(f"diffusion.eta must be in [0, 1], got {dc.eta}")
    if dc.lr is not None and not dc.lr > 0:
        raise UserError(f"diffusion.lr must be > 0, got {dc.lr}")


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
    if overrides.lr_scale is not None:
        for k in _LR_KEYS:
            if k in hp:
                hp[k] = hp[k] * overrides.lr_scale
    for f in dataclasses.fields(overrides):
        v = getattr(overrides, f.name)
        if v is None or f.name == "lr_scale":
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
