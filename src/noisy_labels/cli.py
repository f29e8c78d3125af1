"""The ``noisy-labels`` command line.

Each sub-command is one small function ``cmd_<name>(args)``, whose one-line docstring is its summary in
``--help``; ``main`` only parses and dispatches, so the commands stay testable as plain functions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._validation import InputFileError, check_labels, infer_num_classes, read_user_file

if TYPE_CHECKING:
    from .ssl import SimCLRParams


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _count(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _npy_path(path: Path) -> Path:
    """The file ``np.save(path, ...)`` writes: it appends ``.npy`` unless the name ends with it."""
    return path if path.suffix == ".npy" else path.with_name(path.name + ".npy")


def _refuse_overwrite(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise CLIError(f"{path} exists; pass --overwrite to replace it.")


def cmd_noise(args: argparse.Namespace) -> None:
    """turn clean labels into noisy ones with a named protocol"""
    from .data.noise import apply_noise

    labels = _load_array_input(args.labels, "labels", key="y")
    out = _npy_path(Path(args.out))  # what np.save writes: "clean" becomes clean.npy
    record_path = out.with_suffix(".json")
    inputs = [a for a in (args.labels, args.human_labels, args.features) if a]
    for p in (out, record_path):
        if any(p.resolve() == Path(a).resolve() for a in inputs):
            raise CLIError(f"--out would write {p}, which is an input of this command; choose another path.")
        _refuse_overwrite(p, args.overwrite)
    params = {}
    if args.dataset:
        params["dataset"] = args.dataset
    if args.human_labels:
        params["human_labels"] = _load_array_input(args.human_labels, "human labels", key="y")
    if args.features:
        params["features"] = _load_array_input(args.features, "features")
    result = apply_noise(
        labels, num_classes=args.num_classes, protocol=args.protocol, rate=args.rate, seed=args.seed, **params
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, result.noisy_labels.astype(np.int64))
    record_path.write_text(json.dumps(result.to_dict(), indent=2))
    print(
        f"{result.protocol} rate={args.rate}: {result.realised_rate:.4f} of {len(labels)} labels changed "
        f"-> {out}"
    )


def cmd_data(args: argparse.Namespace) -> None:
    """load a data set and print a summary"""
    from .data.registry import describe, load_dataset

    bundle = load_dataset(args.dataset, args.root, download=args.download)
    print(f"{args.dataset}\n{describe(bundle)}")


def cmd_methods(args: argparse.Namespace) -> None:
    """list the registered methods"""
    from .methods import list_methods

    print("\n".join(list_methods()))


def cmd_run(args: argparse.Namespace) -> None:
    """run one experiment from a YAML config and/or --set overrides"""
    from .engine import run_experiment
    from .engine.build import load_config
    from .engine.distributed import launched_rank

    changes = None
    if args.resume:
        if not args.out:
            raise CLIError("--resume needs --out RUN_DIR (the run to continue).")
        if args.config or args.overwrite:
            given = "a config file" if args.config else "--overwrite"
            raise CLIError(f"--resume continues the run with its own config.yaml; drop {given}.")
        from .config import Config, parse_overrides

        cfg, changes = Config(out=args.out), parse_overrides(args.set or [])
    else:
        overrides = list(args.set or [])
        if args.out:
            overrides.append(f"out={args.out}")
        cfg = load_config(args.config, overrides)
    summary = run_experiment(cfg, resume=args.resume, overwrite=args.overwrite, changes=changes)
    if launched_rank() == 0:  # under torchrun the other ranks stay quiet
        keys = ("best_test_acc", "last_test_acc", "label_acc", "cleanness_auc", "seconds")
        print("  ".join(f"{k}={summary[k]:.4f}" for k in keys if summary.get(k) is not None))


def cmd_demo(args: argparse.Namespace) -> None:
    """the methods side by side on the embedded digits data (about a minute)"""
    from .demo import DEMO_METHODS, TITLE, run_demo

    methods = args.methods.split(",") if args.methods else DEMO_METHODS
    print(f"noisy-labels demo: {TITLE}; {', '.join(methods)} from their defaults, {args.workers} workers")
    table = run_demo(args.out, methods=methods, overwrite=args.overwrite, workers=args.workers)
    print()
    print(table)
    print(f"\nreport and plot: {Path(args.out) / 'report.md'}, {Path(args.out) / 'test_accuracy.png'}")


def cmd_report(args: argparse.Namespace) -> None:
    """markdown table and plots over finished runs"""
    from .report import write_report

    out = Path(args.out) if args.out else Path(args.runs[0]).parent / "report"
    path = write_report(args.runs, out, overwrite=args.overwrite)
    print(path.read_text())
    print(f"written to {path}")


def _command(sub, func: Callable[[argparse.Namespace], None]) -> argparse.ArgumentParser:
    """The parser of the sub-command that ``func`` (``cmd_<name>``) runs; its docstring is the summary."""
    p = sub.add_parser(func.__name__.removeprefix("cmd_"), help=func.__doc__)
    p.set_defaults(func=func)
    return p


RESUME_HELP = (
    "continue the run in --out from its last checkpoint; --set may change only epochs, quiet, "
    "checkpoint_every"
)


def _add_run_parsers(sub) -> None:
    _command(sub, cmd_methods)
    p = _command(sub, cmd_run)
    p.add_argument("config", nargs="?", help="YAML config (optional: every key has a default)")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. noise.rate=0.8"
    )
    p.add_argument("--out", help="run directory (same as --set out=DIR)")
    p.add_argument("--resume", action="store_true", help=RESUME_HELP)
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p = _command(sub, cmd_demo)
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--methods", help="comma-separated method names (default: the demo's eight)")
    p.add_argument(
        "--workers", type=_count, default=2, help="parallel runs, one torch thread each (default 2)"
    )
    p.add_argument("--overwrite", action="store_true")
    p = _command(sub, cmd_report)
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", help="report folder (default: report/ beside the first run)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier report (its own files only)")


def _add_noise_parser(sub) -> None:
    from .data.noise import PROTOCOLS

    p = _command(sub, cmd_noise)
    p.add_argument("--labels", required=True, help="clean labels, .npy of integers 0..C-1")
    p.add_argument("--num-classes", type=_count, required=True)
    p.add_argument("--protocol", required=True, choices=sorted(PROTOCOLS))
    p.add_argument(
        "--rate", type=float, required=True, help="noise rate in [0, 1] (protocol's own convention)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", choices=["cifar10", "cifar100"], help="class structure for 'asymmetric'")
    p.add_argument("--human-labels", help="for 'human': .npy of the human label set")
    p.add_argument("--features", help="for 'instance': .npy of per-sample features (N, d)")
    p.add_argument("--out", required=True, help="output .npy; a .json record is written beside it")
    p.add_argument("--overwrite", action="store_true")


def _add_data_parser(sub) -> None:
    p = _command(sub, cmd_data)
    p.add_argument(
        "dataset",
        nargs="?",
        default="digits",
        help="digits, mnist, cifar10, cifar100, cifar10_features or a path",
    )
    p.add_argument("--root", help="folder holding the data files")
    p.add_argument("--download", action="store_true", help="download missing official files (checksummed)")


def _load_array_input(path: str, what: str, *, key: str = "x") -> np.ndarray:
    """A .npy array, or the ``key`` array of an .npz (e.g. a ``noisy-labels features`` file).

    Never unpickles objects; an unreadable file is one line naming it (``read_user_file``).
    """

    def read(p: Path) -> np.ndarray:
        loaded = np.load(p, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            return loaded
        with loaded:
            if key not in loaded:
                raise InputFileError(f"{p} has no array {key!r}; found {sorted(loaded.keys())}.")
            return loaded[key]  # read inside the reader: a damaged member fails here, named

    return read_user_file(path, f"{what} file", read)


def cmd_purify(args: argparse.Namespace) -> None:
    """correct noisy labels from features and a small clean set (DMLP); CSV + soft labels"""
    from dataclasses import asdict

    from .config import params_from_dict, parse_overrides
    from .purify import DMLPPurifier, PurifyParams
    from .purify.outputs import OUTPUT_FILES, format_report, write_outputs

    out = Path(args.out)
    for name in OUTPUT_FILES:
        _refuse_overwrite(out / name, args.overwrite)
    params = params_from_dict(PurifyParams, parse_overrides(args.set or []), prefix=f"{args.method}.")
    features = _load_array_input(args.features, "features")
    labels = _load_array_input(args.labels, "labels", key="y")
    clean_features = _load_array_input(args.clean_features, "clean features")
    clean_labels = _load_array_input(args.clean_labels, "clean labels", key="y")
    true_labels = _load_array_input(args.true_labels, "true labels", key="y") if args.true_labels else None
    result = DMLPPurifier(params, seed=args.seed, threads=args.threads).fit(
        features,
        labels,
        clean_features,
        clean_labels,
        num_classes=args.num_classes,
        true_labels=true_labels,
        progress=not args.quiet,
    )
    given = np.asarray(labels).astype(np.int64)
    summary = write_outputs(out, result, given, params=asdict(params), true_labels=true_labels)
    print(format_report(summary, out, top=args.top))


def cmd_features(args: argparse.Namespace) -> None:
    """run a backbone over a data set and cache its features as .npz"""
    from .engine.features import make_feature_file

    info = make_feature_file(
        args.out,
        dataset=args.dataset,
        root=args.root,
        run_dir=args.checkpoint,
        module=args.module,
        simclr=_simclr_params(args),
        encoder_out=args.save_encoder,
        model=args.model,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    if info["cached"]:
        print(f"{info['path']} holds these features already: reusing it (pass --overwrite to recompute)")
    else:
        test = tuple(info["test_shape"]) if info["test_shape"] else None
        print(
            f"{info['source']}: train {tuple(info['train_shape'])}, test {test} "
            f"in {info['seconds']:.1f} s -> {info['path']}"
        )
        if "encoder" in info:
            print(f"encoder (for model.init) -> {info['encoder']}")


def _add_purify_parser(sub) -> None:
    p = _command(sub, cmd_purify)
    p.add_argument("--features", required=True, help="training features, .npy (N, d) (or .npz key 'x')")
    p.add_argument("--labels", required=True, help="their given (noisy) labels, .npy of integers 0..C-1")
    p.add_argument("--clean-features", required=True, help="features of the trusted clean set, .npy (n, d)")
    p.add_argument("--clean-labels", required=True, help="its labels, .npy (every class present)")
    p.add_argument("--out", required=True, help="output folder (purified.csv, soft_labels.npy, ...)")
    p.add_argument("--method", default="dmlp", choices=["dmlp"], help="purifying method")
    p.add_argument("--num-classes", type=_count, help="number of classes (default: largest label + 1)")
    p.add_argument("--true-labels", help="optional .npy of the true labels, only to report label accuracy")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="purifier parameter, e.g. epochs=50, momentum=0.3, or relabel=always (the paper's argmax)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=_count, default=20, help="suspects to print")
    p.add_argument("--threads", type=_count, help="torch CPU threads (1 is fastest on a busy machine)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_features_parser(sub) -> None:
    p = _command(sub, cmd_features)
    p.add_argument("--dataset", required=True, help="mnist, cifar10, digits, ... or a path")
    p.add_argument("--root", help="folder holding the data files")
    p.add_argument(
        "--out", required=True, help="the .npz to write (reused if it holds the same data set and backbone)"
    )
    p.add_argument("--checkpoint", metavar="RUN_DIR", help="use the trained network of a finished run")
    p.add_argument("--module", default="model", help="network attribute in the run's checkpoint")
    p.add_argument("--simclr", action="store_true", help="train the backbone with SimCLR first (no labels)")
    p.add_argument(
        "--save-encoder",
        metavar="PATH",
        help="where to save the SimCLR encoder, the file model.init reads (default: beside --out as "
        "<out>.encoder.pt)",
    )
    p.add_argument("--model", default="small_cnn", help="image model for --simclr (or untrained)")
    p.add_argument("--batch-size", type=_count, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--overwrite", action="store_true", help="recompute even if --out exists")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_simclr_flags(p)


def _add_simclr_flags(p: argparse.ArgumentParser) -> None:
    """One ``--simclr-KEY VALUE`` flag per key of :class:`~noisy_labels.ssl.SimCLRParams`."""
    from .ssl import SimCLRParams

    group = p.add_argument_group(
        "SimCLR recipe (with --simclr)",
        "each a YAML value, as --set takes: --simclr-optimizer lars, --simclr-crop-scale '[0.08, 1]'; the "
        "defaults are CPU-sized, see noisy_labels.ssl.SimCLRParams for the paper's values",
    )
    for f in dataclasses.fields(SimCLRParams):
        group.add_argument(
            _simclr_flag(f.name), dest=f"simclr_{f.name}", metavar="VALUE", help=f"default: {f.default}"
        )


def _simclr_flag(key: str) -> str:
    return "--simclr-" + key.replace("_", "-")


def _simclr_params(args: argparse.Namespace) -> SimCLRParams | None:
    """The ``--simclr-KEY`` values as :class:`~noisy_labels.ssl.SimCLRParams`; None without ``--simclr``."""
    from .config import ConfigError, params_from_dict
    from .ssl import SimCLRParams

    flags = {f.name: getattr(args, f"simclr_{f.name}") for f in dataclasses.fields(SimCLRParams)}
    given = {key: text for key, text in flags.items() if text is not None}
    if not args.simclr:
        if given:
            raise CLIError(f"{_simclr_flag(next(iter(given)))} sets SimCLR's recipe: add --simclr.")
        return None
    try:
        return params_from_dict(SimCLRParams, _parse_flag_values(given))
    except ConfigError as exc:  # its message starts with the key: name the flag instead
        key, _, rest = str(exc).partition(" ")
        raise CLIError(f"{_simclr_flag(key)} {rest}") from None


def _parse_flag_values(given: dict[str, str]) -> dict[str, object]:
    """Each ``--simclr-KEY`` text read as YAML; one that does not parse is one line naming its flag."""
    from .config import ConfigError, parse_value

    values = {}
    for key, text in given.items():
        try:
            values[key] = parse_value(text)
        except ConfigError as exc:
            raise CLIError(f"{_simclr_flag(key)}: {' '.join(str(exc).split())}") from None
    return values


def cmd_issues(args: argparse.Namespace) -> None:
    """rank likely mislabelled samples from features (CSV; image gallery if paths given)"""
    from .config import parse_overrides
    from .issue_report import (
        Gallery,
        read_image_paths,
        write_gallery_html,
        write_gallery_png,
        write_issues_csv,
    )
    from .sklearn import NoisyLabelClassifier

    out = Path(args.out)
    galleries = {"html": ["gallery.html"], "png": ["gallery.png"], "both": ["gallery.html", "gallery.png"]}
    names = ["label_issues.csv", *(galleries[args.gallery] if args.image_paths else [])]
    for name in names:
        _refuse_overwrite(out / name, args.overwrite)
    features = _load_array_input(args.features, "features")
    labels = _load_array_input(args.labels, "labels", key="y")
    # only one of the two is an error the estimator names ("pass both X_clean and y_clean ...")
    clean_features = _load_array_input(args.clean_features, "clean features") if args.clean_features else None
    clean_labels = (
        _load_array_input(args.clean_labels, "clean labels", key="y") if args.clean_labels else None
    )
    if np.asarray(labels).dtype.kind in "iuf":  # class indices: 0..K-1 without gaps, or --num-classes
        k = infer_num_classes(args.num_classes, labels=labels, **{"clean labels": clean_labels})
        check_labels(labels, k, name="labels")
    paths = read_image_paths(args.image_paths, len(labels)) if args.image_paths else None
    clf = NoisyLabelClassifier(
        args.method,
        method_params=parse_overrides(args.set or []) or None,
        epochs=args.epochs,
        random_state=args.seed,
        verbose=not args.quiet,
    ).fit(features, labels, clean_features, clean_labels)
    given, suggested, quality = np.asarray(labels), clf.purified_labels_, clf.cleanness_
    order = np.argsort(quality, kind="stable") if args.all else clf.label_issues_
    written = [write_issues_csv(out / "label_issues.csv", order, given, suggested, quality)]
    if paths is not None:
        gallery = Gallery(clf.label_issues_[: args.top], paths, given, suggested, quality)
        if args.gallery in ("html", "both"):
            written.append(write_gallery_html(out / "gallery.html", gallery))
        if args.gallery in ("png", "both"):
            written.append(write_gallery_png(out / "gallery.png", gallery))
    n, m = len(given), len(clf.label_issues_)
    print(f"{clf.method_}: {m} of {n} labels flagged ({m / n:.1%}), most likely mislabelled first:")
    print(f"{'rank':>5} {'index':>8} {'given':>10} {'suggested':>10} {'quality':>8}")
    for rank, i in enumerate(clf.label_issues_[: args.show].tolist(), 1):
        print(f"{rank:>5} {i:>8} {given[i]!s:>10} {suggested[i]!s:>10} {quality[i]:>8.4f}")
    print("written: " + ", ".join(map(str, written)))


def _add_issues_parser(sub) -> None:
    p = _command(sub, cmd_issues)
    p.add_argument("--features", required=True, help="features, .npy (N, d) (or .npz key 'x')")
    p.add_argument("--labels", required=True, help="their given labels, .npy (integers 0..K-1 or strings)")
    p.add_argument("--num-classes", type=_count, help="class count, if some classes 0..K-1 have no sample")
    p.add_argument("--clean-features", help="features of a trusted clean set, .npy (n, d)")
    p.add_argument("--clean-labels", help="its labels, .npy")
    p.add_argument("--method", default="auto", help="a method that fits features (default auto: elr)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="method parameter, e.g. beta=0.9")
    p.add_argument("--epochs", type=_count, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder (label_issues.csv, gallery.html/png)")
    p.add_argument("--all", action="store_true", help="write every sample to the CSV, not only flagged")
    p.add_argument("--image-paths", help="text file, one image path per sample (relative to its folder)")
    p.add_argument("--gallery", choices=["html", "png", "both"], default="both", help="with --image-paths")
    p.add_argument("--top", type=_count, default=48, help="images in the gallery")
    p.add_argument("--show", type=_count, default=10, help="suspects to print")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noisy-labels", description="Learning with noisy labels.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_noise_parser(sub)
    _add_data_parser(sub)
    _add_run_parsers(sub)
    _add_purify_parser(sub)
    _add_features_parser(sub)
    _add_issues_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (CLIError, ValueError, TypeError, OSError) as exc:  # OSError: missing, existing, unreadable paths
        # under torchrun every failing rank says which it is (torchrun then stops the others)
        ranks = int(os.environ.get("WORLD_SIZE", "1"))
        where = f" (rank {os.environ.get('RANK', '0')} of {ranks})" if ranks > 1 else ""
        print(f"noisy-labels {args.command}{where}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
