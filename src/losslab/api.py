"""The public Python API: run a comparison, read its results, evaluate samples, from a notebook.

Every function validates its input exactly as the command line does (the CLI
calls these same functions), so a bad argument raises
:class:`losslab.errors.UserError` with the one-line message the CLI would
print, before anything is written or trained.

>>> from losslab.api import compare, evaluate, results
>>> res = compare("ring8", losses=["ns", "wgan-gp"], seeds=2, steps=300, out="ring8-out")  # doctest: +SKIP
>>> res["recommendation"]["verdict"], res["recommendation"]["best_group"]                      # doctest: +SKIP
>>> results("ring8-out")["ranking"][0]["loss"]                                          # doctest: +SKIP
>>> evaluate("ring8-out/runs/ns/seed0")["metrics"]["w1"]                               # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from safetensors import SafetensorError, safe_open

from losslab import compare as cmp
from losslab import config as C
from losslab import evaluation as ev
from losslab import io
from losslab import race, rundir
from losslab.backends import default_workers
from losslab.data import Dataset, load_dataset
from losslab.errors import UserError, unknown_choice
from losslab.losses import REGISTRIES, family_of
from losslab.losses import variants
from losslab.losses.variants import base_name
from losslab.losses.penalties import ZERO_CENTRED
from losslab.memory import check_eval_n
from losslab.train import check_overrides as check_family_keys
from losslab.train.common import resolve_device

__all__ = ["Request", "check_overrides", "check_run_files", "compare", "evaluate", "prepare", "resolve_config",
           "results", "select_losses", "sets_from"]


def sets_from(sets: Mapping[str, Any] | Iterable[str] | None) -> list[str]:
    """``--set`` items from a mapping ``{"loss.lr_d": 1e-3}`` or an iterable of ``"loss.lr_d=1e-3"`` strings."""
    if sets is None:
        return []
    if isinstance(sets, Mapping):
        return [f"{k}={v}" for k, v in sets.items()]
    if isinstance(sets, str):
        return [sets]
    return [str(s) for s in sets]


def select_losses(losses: str | Iterable[str] = "all", family: str | None = None) -> list[str]:
    """Loss names of a comparison: ``"all"`` (every loss of ``family``, default gan), a comma list, or names.

    Raises:
        UserError: an unknown family or loss (with aliases answered, e.g. ``bce``),
            an empty list, or a loss of another family than ``family``.
    """
    if family is not None and family not in REGISTRIES:
        raise unknown_choice("family", family, REGISTRIES)
    if isinstance(losses, str):
        if losses.strip() == "all":
            return list(REGISTRIES[family or "gan"])
        names = variants.split_list(losses)  # commas inside LOSS[a=1,b=2] do not split
    else:
        names = [str(v).strip() for v in losses if str(v).strip()]
    if not names:
        raise UserError("--losses is empty; give comma-separated names or 'all'")
    for n in names:
        variants.parse(n)  # a malformed LOSS[...] or a train.* / data.* key: one line
        fam = family_of(n)  # UserError listing every trainable loss
        if family is not None and fam != family:
            raise UserError(f"loss {n!r} belongs to the {fam} family, not {family}; drop --family to mix families")
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Request:
    """A validated comparison request: what :func:`compare` trains."""

    cfg: C.Config
    dataset: Dataset
    losses: list[str]
    seeds: int
    seed_start: int = 0
    search: int | None = None
    race: race.Limits | None = None  # the seed schedule (losslab.race): a race, or a fixed design of `seeds`


def resolve_config(data: str | None = None, *, data_dir: str | None = None, config_file: str | None = None,
                   sets: list[str] | None = None, steps: int | None = None, device: str | None = None,
                   batch_seeds: bool | None = None,
                   overrides: C.Overrides | None = None) -> tuple[C.Config, Dataset]:
    """Config for ``data``: defaults < the data kind's preset < ``config_file`` < ``sets`` < the arguments.

    ``data`` None: the config file's (or ``--set``'s) ``data.name``, else ring8.

    ``device`` ("auto", "cpu", "cuda", "cuda:N", "mps") and ``batch_seeds`` set
    ``train.device`` and ``train.batch_seeds`` when given. ``overrides``
    (:class:`losslab.config.Overrides`, parsed once by the caller) replaces
    ``config_file`` and ``sets``.

    Raises:
        UserError: unknown data, a malformed or out-of-domain value, ``steps < 1``,
            a device this machine does not have.
    """
    ov = overrides or C.Overrides.parse(config_file=config_file, sets=sets)
    base = C.Config()
    ov.only("data").apply(base)  # data.* must be known before the data are loaded (image_size, n_train)
    # An explicit argument (--data, --data-dir) wins over the file and --set, as --steps does: the flag is
    # what was typed for this command, the file a default for many. The override is said, not silent.
    for key, value, flag in (("name", data, "--data"), ("data_dir", data_dir, "--data-dir")):
        if value is None:
            continue
        if getattr(base.data, key) != getattr(C.DataConfig(), key) and getattr(base.data, key) != value:
            warnings.warn(f"{flag} {value} overrides data.{key} = {getattr(base.data, key)!r} of "
                          f"{ov.sources().get(f'data.{key}', config_file or '--set')}", stacklevel=2)
        setattr(base.data, key, value)
    ds = load_dataset(base.data.name, data_dir=base.data.data_dir, image_size=base.data.image_size,
                      n_train=base.data.n_train)
    cfg = C.resolve(ds.kind, base=base, overrides=ov)
    cfg.data.name, cfg.data.data_dir = base.data.name, base.data.data_dir  # the arguments win (above)
    if getattr(ds, "default_n_eval", None) and "train.n_eval" not in ov.sources():
        cfg.train.n_eval = int(ds.default_n_eval)  # a protocol's sample count, e.g. Stacked MNIST's 26,000
    if steps is not None:
        if steps < 1:
            raise UserError(f"--steps must be >= 1, got {steps}")
        cfg.train.steps = steps
    if device is not None:
        cfg.train.device = device
    if batch_seeds is not None:
        cfg.train.batch_seeds = bool(batch_seeds)
    resolve_device(cfg.train.device)  # a device this machine lacks: one line, before any work
    return cfg, ds


def check_overrides(cfg: C.Config, losses: list[str], *, sets: list[str] | None = None,
                    config_file: str | None = None, overrides: C.Overrides | None = None) -> None:
    """Every key the user set (``sets``, ``config_file``; or ``overrides``, parsed once) must be read by a
    family of ``losses``.

    Raises:
        UserError: one line naming the key and the families that would read it.
    """
    ov = overrides or C.Overrides.parse(config_file=config_file, sets=sets)
    explicit = ov.sources()
    check_family_keys(cfg, [family_of(n) for n in losses], explicit)
    check_penalty_keys(losses, explicit)
    for n in losses:  # a candidate's own settings, LOSS[key=value] (losslab.losses.variants)
        own = {k: f"loss {n}:" for k in variants.parse(n)[1]}
        if own:
            check_family_keys(cfg, [family_of(n)], own)
            check_penalty_keys([n], own)
            cmp.cfg_of(cfg, n)  # unknown key or out-of-domain value


def check_penalty_keys(losses: list[str], explicit: Mapping[str, str]) -> None:
    """A zero-centred penalty's weight (``loss.r1_gamma``, ``loss.r2_gamma``) needs a compared loss that declares it.

    The family check lets any key some GAN loss reads through; these weights are declared per loss
    (``GANLoss.grad_penalties``), so ``--losses wgan --set loss.r1_gamma=1`` is refused rather than ignored.

    Raises:
        UserError: one line naming the key and the losses that take it.
    """
    gan = REGISTRIES["gan"]
    for key in sorted(explicit):
        penalty = key.removeprefix("loss.").removesuffix("_gamma")
        if not key.startswith("loss.") or not key.endswith("_gamma") or penalty not in ZERO_CENTRED:
            continue
        if any(penalty in gan[base_name(n)].grad_penalties for n in losses if base_name(n) in gan):
            continue
        takers = [n for n, spec in gan.items() if penalty in spec.grad_penalties]
        raise UserError(f"{explicit[key]} {key}: no compared loss takes the {penalty.upper()} penalty "
                        f"({', '.join(losses)}; it applies to: {', '.join(takers)})")


def prepare(data: str | None = None, *, losses: str | Iterable[str] = "all", family: str | None = None,
            seeds: int | None = None, steps: int | None = None,
            sets: Mapping[str, Any] | Iterable[str] | None = None,
            config_file: str | None = None, data_dir: str | None = None, metric: str | None = None,
            seed_start: int = 0, search: int | None = None, budget_seconds: float | None = None,
            device: str | None = None, batch_seeds: bool | None = None,
            equivalence: float | None = None) -> Request:
    """Validate a comparison without writing or training anything (the CLI's ``--dry-run``).

    ``seeds`` None races the losses (:data:`losslab.race.DEFAULT`: 5 seeds, then 3 more per block for the
    losses not shown worse, up to 11); an int is a fixed design of that many seeds per loss.
    ``equivalence`` is the margin (metric units) within which survivors are called equivalent
    (default: the metric's noise floor, see :func:`losslab.race.equivalence_margin`).

    Raises:
        UserError: anything the CLI refuses: unknown data, loss, family or metric;
            an override no family reads; an out-of-domain value; a loss that
            cannot train on the data.
    """
    names = select_losses(losses, family)
    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {seeds}")
    limits = (race.Limits(delta=equivalence) if seeds is None
              else race.fixed(seeds, delta=equivalence))
    race.check_limits(limits)
    if seed_start < 0:
        raise UserError(f"--seed-start must be >= 0, got {seed_start}")
    if search is not None and search < 1:
        raise UserError(f"--search must be >= 1, got {search}")
    if search is not None:
        from losslab import search as _search

        _search.check_losses(names)
    ov = C.Overrides.parse(config_file=config_file, sets=sets_from(sets))  # parsed once for both uses below
    cfg, ds = resolve_config(data, data_dir=data_dir, steps=steps, device=device, batch_seeds=batch_seeds,
                             overrides=ov)
    if budget_seconds is not None:
        if not 0 < budget_seconds < float("inf"):
            raise UserError(f"--budget-seconds must be a finite number > 0, got {budget_seconds}")
        cfg.train.budget_seconds = float(budget_seconds)
    check_overrides(cfg, names, overrides=ov)
    cmp.check_request(cfg, ds, names, metric=metric)
    return Request(cfg=cfg, dataset=ds, losses=names, seeds=limits.cap, seed_start=seed_start, search=search,
                   race=limits)


def compare(data: str | None = None, *, losses: str | Iterable[str] = "all", seeds: int | None = None,
            out: str | Path = "losslab-out", steps: int | None = None,
            sets: Mapping[str, Any] | Iterable[str] | None = None, config_file: str | None = None,
            data_dir: str | None = None, family: str | None = None, metric: str | None = None,
            workers: int | None = None, quiet: bool = True, report: bool = True,
            backend: str = "local", address: str | None = None, seed_start: int = 0,
            search: int | None = None, budget_seconds: float | None = None, device: str | None = None,
            batch_seeds: bool | None = None, equivalence: float | None = None,
            redo_changed: bool = False) -> dict[str, Any]:
    """Run ``losslab compare`` from Python: losses x seeds on ``data``, equal budget, then the verdict.

    Args:
        data: a built-in dataset (``losslab list data``) or a path (.csv, .npy, image folder).
        losses: ``"all"``, ``"ns,wgan-gp"`` or a list of names.
        seeds: seeds per loss (a fixed design); None (default) races the losses on paired seeds
        (:mod:`losslab.race`). equivalence: the equivalence margin (:func:`prepare`).
        out: the comparison directory (rerun to resume).
        steps: generator (network) updates per run. sets: overrides, ``{"loss.lr_d": 1e-3}``.
        workers: parallel runs (default: CPU cores, at most 8). report: also write report.md/html.
        seed_start: seeds are ``seed_start .. seed_start + seeds - 1``. search: Optuna trials per
        loss before the final runs (equal-budget tuning). budget_seconds: equal wall clock per run
        instead of equal updates. backend, address: "local" or "ray" (and the Ray cluster).
        redo_changed: ``out`` holds runs made from other data or settings: train them again
        (default: refuse, naming what changed).

    Returns:
        The content of ``out/results.json``: ``ranking``, ``recommendation``
        (``verdict``, ``best_group``, ``pairwise``, ``reasons``), ``runs``, ...

    Raises:
        UserError: as :func:`prepare`; ``out`` in use by another losslab process.
    """
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    req = prepare(data, losses=losses, family=family, seeds=seeds, steps=steps, sets=sets,
                  config_file=config_file, data_dir=data_dir, metric=metric, seed_start=seed_start,
                  search=search, budget_seconds=budget_seconds, device=device, batch_seeds=batch_seeds,
                  equivalence=equivalence)
    return cmp.run_compare(req.cfg, losses=req.losses, seeds=req.seeds, out=out, race_limits=req.race,
                           workers=workers or default_workers(), quiet=quiet, metric=metric, report=report,
                           backend=backend, address=address, seed_start=seed_start, search_trials=search,
                           redo_changed=redo_changed, checked=True)


def results(out: str | Path = "losslab-out") -> dict[str, Any]:
    """The results.json of the comparison in ``out``.

    Raises:
        UserError: no comparison there, or an unreadable results.json.
    """
    path = Path(out) / rundir.RESULTS
    if not path.is_file():
        raise UserError(f"no results in {out} ({rundir.RESULTS} missing); run losslab compare --out {out} first")
    res = rundir.read_json_file(path)
    if not isinstance(res, dict) or "ranking" not in res:
        raise UserError(f"{path} is not a losslab results file; rebuild it with: losslab report {out}")
    return res


def evaluate(run_dir: str | Path | None = None, *, samples: str | Path | None = None, data: str | None = None,
             data_dir: str | None = None, features: str = "classifier", n: int | None = None,
             full: bool = False, out: str | Path | None = None) -> dict[str, Any]:
    """``losslab eval``: re-evaluate a run directory of any family, or any generator's samples.

    Give either ``run_dir`` or ``samples`` with ``data`` (the dataset whose test split is the reference).

    Returns:
        ``{"metrics": {...}, "feature_net", "n_eval", "n_real", "notes", ...}``.

    Raises:
        UserError: both or neither of ``run_dir`` and ``samples``; ``samples`` without
            ``data``; not a run directory; unreadable samples.
    """
    if (run_dir is None) == (samples is None):
        raise UserError("give either RUN_DIR (or its checkpoint) or --samples FILE.npz|FOLDER with --data NAME")
    if n is not None and n < 2:
        raise UserError(f"--n must be >= 2, got {n}")
    if n is not None:
        check_eval_n(n, (1,))  # a lower bound (one number per sample): the data's shape is not known yet
    if samples is not None:
        if data is None:
            raise UserError("--samples needs --data NAME: the dataset whose test split is the reference")
        return ev.eval_samples(samples, data, features=features, out=out, n=n, full=full, data_dir=data_dir)
    if data is not None:
        raise UserError("--data goes with --samples; a run directory knows its dataset")
    check_run_files(run_dir)
    return ev.eval_run_dir(run_dir, full=full, out=out, features=features, n=n)


def check_run_files(path: str | Path) -> None:
    """Read a run's own files before ``losslab eval`` uses them, so a corrupt one is one line, not a traceback.

    config.json (:func:`losslab.rundir.read_run`), samples.npz (an array
    ``samples`` of shape (n, ...)) and the header of checkpoint.safetensors,
    which is never deleted here (a training run discards an unreadable one;
    an evaluation must not).

    Raises:
        UserError: the file, what is wrong with it and what to do.
    """
    rd = rundir.read_run(path).run_dir
    samples = rd / rundir.SAMPLES
    if samples.exists():
        try:
            x = io.read_npz(samples, keys=("samples",)).get("samples")
        except UserError as e:
            x, why = None, str(e).split("; ")[0].removeprefix(f"{samples}: ")
        else:
            why = "no array 'samples'" if x is None else f"'samples' of shape {tuple(x.shape)}"
        if x is None or x.ndim < 2 or len(x) == 0:
            raise UserError(f"{samples}: {why}; delete it and rerun to draw the samples from the run's checkpoint")
    ck = rd / rundir.CHECKPOINT
    if ck.exists():
        try:
            with safe_open(str(ck), framework="pt") as f:
                f.keys()
        except (SafetensorError, OSError) as e:
            raise UserError(f"{ck} is corrupt ({type(e).__name__}: {e}); train the run again (delete it and "
                            "rerun the same losslab compare or train), or move it away to evaluate samples.npz "
                            "alone") from None
