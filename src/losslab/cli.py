"""The ``losslab`` command line: compare | train | eval | report | list | explain | profile.

A bad argument is one line on stderr and exit code 2, never a traceback.
(argparse from the standard library: its errors can be made one line, and it
has no version churn.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from losslab import __version__
from losslab.errors import UserError, unknown_choice


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2 (argparse prints usage + error)
        raise UserError(f"{message} (see {self.prog} --help)")


def _resolve_config(args, overrides):
    """Config for ``--data``: kind preset < --config < --set < --steps (:func:`losslab.api.resolve_config`)."""
    from losslab import api  # torch and the trainers: not needed for `losslab --help`

    return api.resolve_config(args.data, data_dir=args.data_dir, steps=args.steps,
                              device=getattr(args, "device", None),
                              batch_seeds=False if getattr(args, "no_batch_seeds", False) else None,
                              overrides=overrides)


def _check_losses(names, family: str | None = None) -> list[str]:
    """Validate loss names against every registry (and ``family`` when it is given)."""
    from losslab import api

    return api.select_losses(names, family)


def cmd_compare(args) -> None:
    # Imported here, not at the top: torch and the trainers would slow every `losslab --help`.
    from losslab import api, io
    from losslab import compare as cmp
    from losslab.backends import default_workers
    from losslab.report import report_paths
    from losslab.rundir import RESULTS, plan

    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    req = api.prepare(args.data, losses=args.losses, family=args.family, seeds=args.seeds, steps=args.steps,
                      sets=args.set, config_file=args.config, data_dir=args.data_dir, metric=args.metric,
                      seed_start=args.seed_start, search=args.search, budget_seconds=args.budget_seconds,
                      device=args.device, batch_seeds=False if args.no_batch_seeds else None,
                      equivalence=args.equivalence)
    cfg, ds, names = req.cfg, req.dataset, req.losses
    workers = args.workers or default_workers()
    if args.dry_run:
        print(io.dumps({"config": cfg.to_dict(), "losses": names, "seeds": req.seeds, "workers": workers,
                        "seed_start": args.seed_start, "search": args.search, "race": req.race.to_dict(),
                        "dataset": {"name": ds.name, "kind": ds.kind, "shape": list(ds.shape)},
                        "jobs": [j.run_dir for j in plan(names, req.race.first, seed_start=args.seed_start)]}))
        return
    # Warnings (e.g. a corrupt result.json: that run is redone) are printed by main, one line each.
    res = cmp.run_compare(cfg, losses=names, seeds=req.seeds, out=args.out, workers=workers,
                          race_limits=req.race,
                          quiet=args.quiet, metric=args.metric, report=True,
                          backend=args.backend, address=args.address,
                          seed_start=args.seed_start, search_trials=args.search,
                          redo_changed=args.redo_changed, checked=True)
    paths = report_paths(args.out)
    failed = _no_run_finished(res)
    if failed is not None:  # exit 1, also under --quiet: a report of failures only is no answer
        print(f"losslab: error: {failed}; report: {paths['html']}", file=sys.stderr)
        sys.exit(1)
    if not args.quiet:
        for sentence in res.get("answer") or []:  # the answer in words first (losslab.report.answer)
            print(sentence)
        rec = res["recommendation"]
        print(f"verdict: {rec.get('verdict')}; best group: {', '.join(rec.get('best_group') or []) or 'none'}")
        print(f"recommendation: {rec['loss']}")
        for line in rec["reasons"]:
            print(f"  {line}")
    print(f"report: {paths['html']}  (also {paths['markdown']}, results: {Path(args.out) / RESULTS})")


def _no_run_finished(res: dict) -> str | None:
    """None when at least one run of the comparison finished ok; else one line saying why none did."""
    runs = res.get("runs") or []
    if any(r.get("status") == "ok" for r in runs):
        return None
    statuses = [r.get("status") for r in runs]
    first = next((r for r in runs if r.get("error")), None)
    why = f"; first: {first['loss']} seed {first['seed']}: {' '.join(str(first['error']).split())[:300]}" \
        if first else ""
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    return f"no run finished ({counts or 'no runs'}){why}"


def cmd_train(args) -> None:
    from rich.progress import Progress

    from losslab import compare as cmp
    from losslab import io
    from losslab.losses import family_of
    from losslab.train.loop import train_run

    from losslab import api
    from losslab.config import Overrides

    _check_losses([args.loss])
    overrides = Overrides.parse(config_file=args.config, sets=args.set)  # --config and --set, parsed once
    cfg, ds = _resolve_config(args, overrides)
    api.check_overrides(cfg, [args.loss], overrides=overrides)
    cmp.check_request(cfg, ds, [args.loss])  # before the run directory is made
    cfg = cmp.cfg_of(cfg, args.loss)  # LOSS[key=value]: the settings it names (losslab.losses.variants)
    if args.dry_run:
        print(io.dumps(cfg.to_dict()))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = 1 + max([int(p.name.split("-")[0]) for p in out.iterdir() if p.name.split("-")[0].isdigit()] or [0])
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(ds.name).name)
    run_dir = out / f"{n:03d}-{args.loss}-{safe}"
    with Progress(disable=args.quiet) as bar:
        task = bar.add_task(f"{args.loss} on {ds.name}", total=cfg.train.steps)
        res = train_run(run_dir, cfg, ds, loss=args.loss, seed=args.seed, family=family_of(args.loss),
                        evaluate=cmp.make_evaluator(cfg, ds), progress=lambda k: bar.advance(task, k))
    print(f"{run_dir}: {res['status']}  " + "  ".join(
        f"{k}={v:.4g}" for k, v in res["metrics"].items() if isinstance(v, float)))
    if res["status"] == "failed":
        print(f"losslab: error: {run_dir}: the run failed: {' '.join(str(res.get('error')).split())[:300]}",
              file=sys.stderr)
        sys.exit(1)


def _print_warnings(caught) -> None:
    """Warnings of an evaluation as one line each on stderr (never a traceback-like block)."""
    seen = set()
    for w in caught:
        msg = str(w.message)
        if msg not in seen:
            seen.add(msg)
            print(f"losslab: warning: {msg}", file=sys.stderr)


def cmd_features(args) -> None:
    import warnings

    from losslab.evaluation import features_train

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = features_train(args.data, data_dir=args.data_dir, progress=not args.quiet)
    _print_warnings(caught)
    acc = "n/a (no labelled test split)" if info["test_accuracy"] is None else f"{100 * info['test_accuracy']:.2f}%"
    need = ""
    if info["threshold"] is not None:
        need = f" (required {100 * info['threshold']:.0f}%: {'ok' if info['meets_threshold'] else 'BELOW'})"
    print(f"{info['name']}: test accuracy {acc}{need}")
    print(f"weights: {info['weights']}  sha256 {info['sha256']}")


def cmd_eval(args) -> None:
    import warnings

    from losslab import api, evaluation  # torch and the metrics: not needed for `losslab --help`

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = api.evaluate(args.run_dir, samples=args.samples, data=args.data, data_dir=args.data_dir,
                           features=args.features, n=args.n, full=args.full, out=args.out)
    _print_warnings(caught)
    print(evaluation.format_table(res))
    if args.out:
        print(f"written: {args.out}")


def cmd_report(args) -> None:
    # Imported here, not at the top: the verdict and matplotlib would slow every `losslab --help`.
    from losslab.compare import rebuild

    paths = rebuild(args.out)  # under the lock on OUT: refused while a compare writes there
    print(f"report: {paths['html']}  (also {paths['markdown']})")


def cmd_list(args) -> None:
    if args.what == "losses":
        from losslab.losses import REGISTRIES
        from losslab.losses.classification import CLASSIFICATION_LOSSES

        for family, registry in REGISTRIES.items():
            print(f"# {family} (losslab compare --family {family})")
            for name, spec in registry.items():
                print(f"{name:<9} {spec.summary}  [{spec.source}]")
        print("# classification (building blocks; losslab explain NAME)")
        for name, spec in CLASSIFICATION_LOSSES.items():
            print(f"{name:<15} {spec.summary}  [{spec.source}]")
    elif args.what == "data":
        from losslab.data import DATASETS

        for name, desc in DATASETS.items():
            print(f"{name:<14} {desc}")
        print(f"{'PATH':<14} your own data: a .csv or .npy of vectors (N x d), or a folder of PNG/JPEG images")
    elif args.what == "metrics":
        from losslab.metrics import METRIC_INFO

        directions = {True: " (higher is better)", False: " (lower is better)"}
        for name, info in METRIC_INFO.items():  # counts and names (higher_is_better None) have no direction
            print(f"{name:<16} {info.get('description', '')}{directions.get(info.get('higher_is_better'), '')}")
    else:
        raise unknown_choice("list", args.what, ("losses", "data", "metrics"))


def cmd_explain(args) -> None:
    from losslab.explain import explain_cli

    print(explain_cli(args.name, args.plot), end="")


def cmd_profile(args) -> None:
    from losslab.data import load_dataset
    from losslab.data.advice import format_advice
    from losslab.data.profile import format_profile, profile
    from losslab.io import atomic_write_json

    if args.max_samples < 10:
        raise UserError(f"--max-samples must be >= 10, got {args.max_samples}")
    ds = load_dataset(args.data, data_dir=args.data_dir)
    prof = profile(ds, seed=args.seed, max_samples=args.max_samples)
    if not args.quiet:
        print(format_profile(prof) + format_advice(args.data, prof["advice"]), end="")
    if args.out:
        atomic_write_json(args.out, prof)
        print(f"written: {args.out}")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="built-in dataset (losslab list data) or a path: .csv, .npy, "
                                                "or a folder of images (default: the --config file's data.name, "
                                                "else ring8); wins over --config")
    p.add_argument("--steps", type=int, default=None, help="updates per run of the trained network (generator, "
                                                                 "denoiser or encoder): the equal budget")
    p.add_argument("--set", action="append", default=None, metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. --set loss.lr_d=1e-4 (repeatable)")
    p.add_argument("--config", default=None, help="TOML file with [data] [model] [train] [loss] [diffusion] tables")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST / Fashion-MNIST IDX files "
                                                    "(also $LOSSLAB_DATA)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--device", default=None, help="auto (a GPU when there is one; default), cpu, cuda, cuda:N "
                                                  "or mps (train.device)")
    p.add_argument("--no-batch-seeds", action="store_true", help="train seeds one after another instead of "
                                                                 "as one batched ensemble (train.batch_seeds)")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="losslab", description="losslab: which loss function suits my data, and why?")
    ap.add_argument("--version", action="version", version=f"losslab {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("compare", help="train every loss x seed with an equal budget; rank; write a report")
    _add_run_options(p)
    p.add_argument("--losses", default="all",
                   help="comma-separated loss names, or 'all' (default); LOSS[key=value,...] is the loss at "
                        "settings of its own, a candidate of its own (quote it: 'ebgan,ebgan[pt_weight=0]')")
    p.add_argument("--seeds", type=int, default=None,
                   help="a fixed design of N seeds per loss; default: race the losses on paired seeds (5 seeds, "
                        "then 3 more per block for the losses not shown worse, up to 11; losslab.race)")
    p.add_argument("--equivalence", type=float, default=None, metavar="DELTA",
                   help="call the surviving losses equivalent when paired TOST shows them within +-DELTA "
                        "(metric units; default: the metric's noise floor, else half the seed SD)")
    p.add_argument("--out", default="losslab-out", help="output directory; rerun to resume (default losslab-out)")
    p.add_argument("--family", default=None, help="model family whose losses 'all' means: gan (default), "
                                                   "diffusion, contrastive or ebm; without it --losses may "
                                                   "mix families")
    p.add_argument("--workers", type=int, default=None, help="parallel runs (default: the CPU cores, at most 8)")
    p.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="local: a process pool (default); ray: Ray tasks (pip install 'losslab[ray]')")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="with --backend ray: a running Ray cluster ('auto', HOST:6379 or ray://HOST:10001); "
                        "--out must then be on storage every node shares. Default: a local Ray of --workers CPUs")
    p.add_argument("--metric", default=None, help="primary metric of the ranking (default: linear_probe for "
                                                   "contrastive losses, fid for images, w1 for vectors with "
                                                   "d <= 2, swd for d > 2; losslab list metrics)")
    p.add_argument("--seed-start", type=int, default=0, metavar="N",
                   help="train seeds N .. N+SEEDS-1 (default 0); seed k gives every loss the same initial "
                        "generator weights where the architectures match")
    p.add_argument("--budget-seconds", type=float, default=None, metavar="S",
                   help="equal wall clock instead of equal updates: each run stops at the first update after "
                        "S seconds of training (--steps is then ignored)")
    p.add_argument("--search", type=int, default=None, metavar="N",
                   help="tune each loss first: N trials per loss over its declared ranges (Optuna; its "
                        "defaults are trial 0), same budget per trial, seeds 10000+, scored on a validation "
                        "split; then each loss's 2 best settings race on the final seeds as LOSS[key=value] "
                        "candidates")
    p.add_argument("--redo-changed", action="store_true",
                   help="--out holds a comparison made from other data, settings or losslab version: train "
                        "its changed runs again (without it such a rerun is refused)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("train", help="train one loss into a new numbered run directory")
    _add_run_options(p)
    p.add_argument("--loss", required=True,
                   help="loss name (losslab list losses), or LOSS[key=value,...] with settings of its own")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights, data order and noise (default 0)")
    p.add_argument("--out", default="runs", help="parent folder of the numbered run directories")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("features", help="train the classifier feature network of an image dataset (cached)")
    p.add_argument("action", choices=["train"], help="train: train it, or load it from the cache, and report it")
    p.add_argument("--data", required=True, help="labelled image data: mnist, fashion-mnist, digits, "
                                                 "stacked-mnist, or a folder of images in class subfolders")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST / Fashion-MNIST IDX files "
                                                    "(also $LOSSLAB_DATA)")
    p.add_argument("--quiet", "-q", action="store_true", help="no per-epoch progress")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("eval", help="evaluate a run directory, or any generator's samples, against real data")
    p.add_argument("run_dir", nargs="?", default=None, help="a run directory or its checkpoint.safetensors")
    p.add_argument("--samples", default=None, metavar="FILE.npz|FOLDER",
                   help="generated images: .npz with an array 'images' ((N,H,W) or (N,C,H,W), uint8 or float "
                        "in [0,1]), .npy, or a folder of PNG/JPEG files")
    p.add_argument("--data", default=None, help="with --samples: the dataset whose test split is the reference")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST / Fashion-MNIST IDX files")
    p.add_argument("--features", default="classifier", choices=["classifier", "inception"],
                   help="feature network for images: the dataset's classifier (default) or the FID "
                        "InceptionV3 (needs pip install 'losslab[inception]')")
    p.add_argument("--full", action="store_true",
                   help="also the exact feature-space W1 and a two-sample classifier test (slower)")
    p.add_argument("--n", type=int, default=None, help="samples to evaluate (default: all / the run's n_eval)")
    p.add_argument("--out", default=None, metavar="FILE.json", help="write every metric as JSON")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("report", help="rebuild results.json and the report from the run directories alone")
    p.add_argument("out")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("list", help="list losses, data or metrics")
    p.add_argument("what", nargs="?", default="losses", help="losses | data | metrics")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("explain", help="a loss's formula, derivation, use, failure modes and source")
    p.add_argument("name", help="any loss of any registry (losslab list losses)")
    p.add_argument("--plot", default=None, metavar="FILE.png",
                   help="also draw the loss and its gradient against its input")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("profile", help="what the data is like (modes, dimension, tails) and which losses to try first")
    p.add_argument("data", help="built-in dataset (losslab list data) or a path: .csv, .npy, or a folder of images")
    p.add_argument("--out", default=None, metavar="FILE.json", help="write the profile and advice as JSON")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST / Fashion-MNIST IDX files "
                                                    "(also $LOSSLAB_DATA)")
    p.add_argument("--seed", type=int, default=0, help="seeds the subsample and the mixture fits (default 0)")
    p.add_argument("--max-samples", type=int, default=2000, help="rows the estimators see (default 2000)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but the written file's name")
    p.set_defaults(func=cmd_profile)
    return ap


def _check_output_paths(args) -> None:
    """Cheap checks of output paths before any work: a directory where a file goes, or the reverse.

    Raises:
        UserError: ``compare/train --out`` is an existing non-directory; ``eval --out`` or
            ``explain --plot`` is an existing directory.
    """
    command = getattr(args, "command", None)
    out = getattr(args, "out", None)
    if command in ("compare", "train", "report", "eval", "profile") and out is not None and not str(out).strip():
        raise UserError(f"{'OUT' if command == 'report' else '--out'} is empty (an unset shell variable?); "
                        "give a path")
    if command in ("compare", "train") and out is not None and Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out}: exists and is not a directory; give a directory (new or a previous --out)")
    if command == "eval" and out is not None and Path(out).is_dir():
        raise UserError(f"--out {out}: is a directory; give a file name, e.g. {Path(out) / 'metrics.json'}")
    plot = getattr(args, "plot", None)
    if command == "explain" and plot is not None and Path(plot).is_dir():
        raise UserError(f"--plot {plot}: is a directory; give a file name, e.g. {Path(plot) / 'loss.png'}")


def os_error_line(e: OSError) -> str:
    """One line for an operating-system error: ``FILENAME: STRERROR`` (and what to do for a full disk).

    >>> import errno
    >>> os_error_line(PermissionError(errno.EACCES, "Permission denied", "/x/y"))
    '/x/y: Permission denied'
    """
    import errno

    what = e.strerror or str(e) or type(e).__name__
    if e.filename is not None:
        where = f"{e.filename}" + (f" -> {e.filename2}" if getattr(e, "filename2", None) is not None else "")
        what = f"{where}: {what}"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        what += "; free some space (or use another --out) and rerun the same command to resume"
    elif e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        what += "; choose a writable location"
    return " ".join(what.split())  # one line


def main(argv: list[str] | None = None) -> None:
    """Entry point: UserError, usage errors and OS errors become one line and exit code 2.

    Exit codes: 0 done (compare: at least one run finished ok); 1 compare: no run finished
    (the reason on stderr); 2 ``losslab: error: ...`` (a user error, or an operating-system
    error as ``FILENAME: STRERROR``: a read-only or full disk, a missing permission, a
    file where a directory belongs); 130 interrupted (Ctrl-C or SIGTERM).
    """
    import signal
    import warnings

    def _terminate(signum, frame):  # `kill`: stop like Ctrl-C, so workers are shut down and runs resume later
        raise KeyboardInterrupt

    # SIGTERM (`kill`) and SIGHUP (a closed terminal) stop like Ctrl-C: workers are ended, the lock released.
    handled = [sig for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if sig is not None]
    previous = {sig: signal.signal(sig, _terminate) for sig in handled}
    for stream in (sys.stdout, sys.stderr):  # any console encoding (LANG=C, PYTHONIOENCODING=ascii): never a
        if hasattr(stream, "reconfigure"):  # UnicodeEncodeError; a character it lacks is written as \\uXXXX
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            sys.exit(0)
        _check_output_paths(args)
        with warnings.catch_warnings(record=True) as caught:  # each warning one line on stderr, once
            warnings.simplefilter("always")
            try:
                args.func(args)
            except UserError:  # a refusal is its one line alone
                raise
            except BaseException:
                _print_warnings(caught)
                raise
            _print_warnings(caught)
    except UserError as e:
        print(f"losslab: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("losslab: interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except OSError as e:  # last resort: PermissionError, IsADirectoryError, NotADirectoryError, ENOSPC, ...
        print(f"losslab: error: {os_error_line(e)}", file=sys.stderr)
        sys.exit(2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
