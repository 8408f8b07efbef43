"""Command line of d2ljax.

    python -m d2ljax restore photo.jpg folder/ 'more/*.jpg' -o restored/ [--model NAME | --checkpoint DIR]
    python -m d2ljax models        # the named models and what they were trained for
    python -m d2ljax export WORKDIR OUT_DIR   # a training workdir -> a model folder to share
    python -m d2ljax --version

Exit status: 0 when every input was restored (or skipped as already done), 1 when any failed,
2 when nothing could start (bad arguments, no input matched, no usable model).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import d2ljax
from d2ljax import checkpoints, pretrained, restoration


def enable_compilation_cache() -> None:
    """Keeps XLA's compiled programs across runs (~/.cache/d2ljax/jax): a rerun starts at once."""
    import jax
    jax.config.update("jax_compilation_cache_dir", os.path.join(pretrained.cache_dir(), "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def add_restore_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = restoration.Options()
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (not recursive) or globs")
    parser.add_argument("-o", "--outdir", required=True, help="folder for the restored images (created if needed)")
    models = parser.add_argument_group("models (several: the one nearest each photo's JPEG quality is used)")
    models.add_argument("--model", action="append", default=[], metavar="NAME",
                        help="a named model (python -m d2ljax models); repeatable. Default: all named models")
    models.add_argument("--checkpoint", action="append", default=[], metavar="DIR",
                        help="a model folder or training workdir (a name works too); repeatable")
    parser.add_argument("--format", default="png", choices=sorted(restoration.SAVE_OPTIONS),
                        help="lossless output format (default png)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    parser.add_argument("--verbose", action="store_true", help="report each photo's estimated quality and model")
    parser.add_argument("--max_pixels", type=int, default=defaults.max_pixels,
                        help=f"larger images are restored in tiles (default {defaults.max_pixels})")
    parser.add_argument("--tile", type=int, default=defaults.tile, help=f"tile side (default {defaults.tile})")
    parser.add_argument("--overlap", type=int, default=defaults.overlap,
                        help=f"tile overlap (default {defaults.overlap})")
    parser.add_argument("--bucket", type=int, default=defaults.bucket,
                        help=f"pad sizes to multiples of this to reuse compiled programs; 0: exact sizes "
                             f"(default {defaults.bucket})")


def run_restore(args: argparse.Namespace) -> int:
    try:
        options = restoration.Options(args.max_pixels, args.tile, args.overlap, args.bucket)
        entries = restoration.model_entries(args.model + args.checkpoint or None)
    except (LookupError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    enable_compilation_cache()
    try:
        summary = restoration.restore_files(args.inputs, args.outdir, entries, options=options, fmt=args.format,
                                            overwrite=args.overwrite, verbose=args.verbose)
    except (OSError, ValueError) as e:  # no input matched, unusable OUTDIR, unloadable model
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"restored {len(summary.written)}, skipped {len(summary.skipped)}, failed {len(summary.failed)} "
          f"-> {args.outdir}", file=sys.stderr)
    for message in summary.failed:
        print(f"  failed: {message}", file=sys.stderr)
    return 1 if summary.failed else 0


def run_models(args: argparse.Namespace) -> int:
    for name in pretrained.list_pretrained():
        print(pretrained.model_entry(name).describe())
    print(f"(search path: {os.pathsep.join(pretrained.search_path())})", file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Writes a training workdir's parameters (--weights) and model.json as a model folder."""
    try:
        metadata = checkpoints.read_model_json(args.workdir)
        model, variables = checkpoints.load_model(args.workdir, weights=args.weights)
        metadata["weights"] = args.weights
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"--set takes KEY=JSON, got {item!r}")
            metadata[key] = json.loads(value)
        checkpoints.save_model(args.outdir, model, variables, metadata=metadata)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"exported {args.workdir} -> {args.outdir}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m d2ljax", description="D2LNet JPEG artifact removal.")
    parser.add_argument("--version", action="version", version=f"d2ljax {d2ljax.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    restore_parser = commands.add_parser("restore", help="restore JPEG photos",
                                         description=restoration.__doc__.split("\n")[0])
    add_restore_arguments(restore_parser)
    restore_parser.set_defaults(run=run_restore)
    commands.add_parser("models", help="list the named models").set_defaults(run=run_models)
    export_parser = commands.add_parser("export", help="a training workdir -> a model folder",
                                        description=run_export.__doc__)
    export_parser.add_argument("workdir", help="training workdir (its best checkpoint, EMA parameters when kept)")
    export_parser.add_argument("outdir", help="new model folder (never overwritten); a name in "
                                              "~/.cache/d2ljax/models makes it a named model")
    export_parser.add_argument("--weights", default="ema", choices=("ema", "trained"),
                               help="ema: the best checkpoint's EMA parameters (the default); trained: the "
                                    "latest checkpoint's trained parameters")
    export_parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                               help="add or replace a model.json entry, e.g. --set 'qf=[10]'; repeatable")
    export_parser.set_defaults(run=run_export)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    if sys.argv[1:2] == ["restore"]:
        from d2ljax.cpu import hostmem
        hostmem.rerun_with_huge_pages()  # glibc reads the setting at start-up only
    sys.exit(main())
