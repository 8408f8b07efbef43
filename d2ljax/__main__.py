"""The `d2ljax` command (also `python -m d2ljax`).

    d2ljax restore photo.jpg folder/ 'more/*.jpg' -o restored/ [--model NAME | --checkpoint DIR]
    d2ljax models                      # the named models: trained for, steps, LIVE1 results
    d2ljax export SOURCE OUT_DIR       # a training workdir (or model folder) -> a model folder to share
    d2ljax convert IN.pth OUT_DIR      # the authors' PyTorch weights (or .npz) -> a model folder
    d2ljax tables results/gray.json    # evaluate.py reports as one table, beside the paper's
    d2ljax [COMMAND] --help | --version

Exit status: 0 when everything was done (inputs already done are skipped); 1 when some inputs
failed and the rest were done; 2 when nothing could start (a usage mistake, a bad path, no
input matched, no usable model), with one line `error: ...` naming the problem; 130 after
Ctrl-C, with one line saying what was kept.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import sys

import d2ljax
from d2ljax import checkpoints, compile_cache, console, convert, evaluation, imageio, pretrained, published, restoration

PROG = "d2ljax"
USAGE_ERROR = 2


class Parser(argparse.ArgumentParser):
    """argparse in the project's style: `--version` on every command, no abbreviated options,
    an unknown option named (with the nearest known one) before any missing argument is
    reported, and every mistake one line `error: ...` with exit status 2."""

    def __init__(self, **kwargs):
        super().__init__(allow_abbrev=False, **kwargs)
        self.add_argument("--version", action="version", version=f"{PROG} {d2ljax.__version__}")

    def unknown_option(self, args: list[str]) -> str | None:
        """The first argument that looks like an option this parser lacks; the scan stops at
        `--`, and in a parser of commands at the command (whose parser scans the rest)."""
        for arg in args:
            if arg == "--":
                return None
            if arg == "-" or not arg.startswith("-") or self._negative_number_matcher.match(arg):
                if self._subparsers is not None:
                    return None
                continue
            name = arg.split("=", 1)[0]
            joined_short = not arg.startswith("--") and arg[:2] in self._option_string_actions  # -oDIR
            if name not in self._option_string_actions and not joined_short:
                return name
        return None

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        name = self.unknown_option(args)
        if name is not None:
            options = [o for o in self._option_string_actions if o.startswith("--")]
            nearest = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
            self.error(f"unrecognized argument {name}" + (f" (did you mean {nearest[0]}?)" if nearest else ""))
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        console.error(f"{message}; see {self.prog} --help")
        sys.exit(USAGE_ERROR)


# --- restore -------------------------------------------------------------------------------

def add_restore_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = restoration.Options()
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (not recursive) or globs")
    parser.add_argument("-o", "--outdir", required=True, help="folder for the restored images (created if needed)")
    models = parser.add_argument_group("models (several: the one nearest each photo's JPEG quality is used)")
    models.add_argument("--model", action="append", default=[], metavar="NAME",
                        help=f"a named model ({PROG} models); repeatable. Default: all named models")
    models.add_argument("--checkpoint", action="append", default=[], metavar="DIR",
                        help="a model folder or training workdir (a name works too); repeatable")
    parser.add_argument("--format", default="png", choices=sorted(restoration.SAVE_OPTIONS),
                        help="lossless output format (default png)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    parser.add_argument("--verbose", action="store_true", help="report each photo's estimated quality and model")
    parser.add_argument("--force", action="store_true",
                        help="restore at full strength even photos the never-worse rule leaves (docs/restore.md)")
    parser.add_argument("--max_pixels", type=int, default=defaults.max_pixels,
                        help=f"larger images are restored in tiles (default {defaults.max_pixels})")
    parser.add_argument("--tile", type=int, default=defaults.tile, help=f"tile side (default {defaults.tile})")
    parser.add_argument("--overlap", type=int, default=defaults.overlap,
                        help=f"tile overlap (default {defaults.overlap})")
    parser.add_argument("--bucket", type=int, default=defaults.bucket,
                        help=f"pad sizes to multiples of this to reuse compiled programs; 0: exact sizes "
                             f"(default {defaults.bucket})")


def file_stamp(path: str) -> tuple[int, int] | None:
    """(inode, mtime) of a file, None when absent: a changed stamp means it was (re)written."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def run_restore(args: argparse.Namespace) -> int:
    """Restores the inputs into OUTDIR; Ctrl-C keeps the photos written so far (whole files)."""
    console.check_output(args.outdir, "-o/--outdir", folder=True)
    options = restoration.Options(args.max_pixels, args.tile, args.overlap, args.bucket)
    entries = restoration.model_entries(args.model + args.checkpoint or None)
    files = imageio.list_image_files(args.inputs)
    planned = [out for _, out in restoration.plan_outputs(files, args.outdir, args.format, args.overwrite)[0]]
    before = [file_stamp(out) for out in planned]
    compile_cache.enable()
    try:
        summary = restoration.restore_files(files, args.outdir, entries, options=options, fmt=args.format,
                                            overwrite=args.overwrite, verbose=args.verbose, force=args.force)
    except KeyboardInterrupt:  # reported below, once the exception (and the progress bar it holds) is gone
        summary = None
    if summary is None:
        done = sum(file_stamp(out) not in (None, stamp) for out, stamp in zip(planned, before))
        return console.interrupted(f"{done} of {len(planned)} photos restored; outputs kept in {args.outdir}")
    print(f"restored {len(summary.written)}, skipped {len(summary.skipped)}, failed {len(summary.failed)} "
          f"-> {args.outdir}", file=sys.stderr)
    for message in summary.failed:
        print(f"  failed: {message}", file=sys.stderr)
    return 1 if summary.failed else 0


# --- models, export, convert ----------------------------------------------------------------

def run_models(args: argparse.Namespace) -> int:
    """Lists the named models with their training and LIVE1 results (stdout), and where they
    were searched for (stderr)."""
    for name in pretrained.list_pretrained():
        entry = pretrained.model_entry(name)
        record = pretrained.training_record(entry.metadata)
        print(entry.describe() + (f": {record}" if record else ""))
    print(f"(search path: {os.pathsep.join(pretrained.search_path())})", file=sys.stderr)
    return 0


def check_new_folder(path: str, overwrite: bool) -> None:
    """OUT_DIR of export and convert: writable, and new unless --overwrite (checked before the
    weights are read; save_model refuses to replace anything but a model folder)."""
    console.check_output(path, "OUT_DIR", folder=True)
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"OUT_DIR {path}: exists; choose a new folder or pass --overwrite")


def parse_settings(items: list[str]) -> dict:
    """`--set KEY=JSON` items as a dict."""
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item}: takes KEY=JSON")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"--set {item}: the value is not JSON ({e})") from None
    return settings


def parent_metadata(init_from: str) -> dict | None:
    """model.json of the model a run started from; None when it started afresh or that model is
    not at hand (its history is then left out)."""
    try:
        return checkpoints.read_model_json(pretrained.resolve(init_from)) if init_from else None
    except pretrained.UnknownModelError:
        return None


def export_metadata(source: str, weights: str) -> dict:
    """model.json for an export of `source`. A training workdir's gets the training history (the
    runs of the model it started from, then this workdir's) and which of its parameters were
    exported; a model folder's (e.g. one trained on a lent machine whose workdir stayed there)
    is kept, with its totals recounted."""
    metadata = checkpoints.read_model_json(source)
    if checkpoints.is_model_folder(source):
        return checkpoints.with_totals(metadata, metadata["runs"]) if "runs" in metadata else metadata
    parent = parent_metadata(metadata.get("init_from", ""))
    metadata = checkpoints.with_history(metadata, checkpoints.training_run(source), parent)
    return {**metadata, "weights": weights}


def run_export(args: argparse.Namespace) -> int:
    """Writes a training workdir's parameters (--weights) or a model folder's as a model folder,
    with the training history and the results of --results reports."""
    check_new_folder(args.outdir, args.overwrite)
    if os.path.realpath(args.outdir) == os.path.realpath(args.workdir):
        raise ValueError(f"OUT_DIR {args.outdir}: is SOURCE; export to a new folder, then replace SOURCE with it")
    if args.weights and checkpoints.is_model_folder(args.workdir):
        raise ValueError(f"--weights {args.weights}: {args.workdir} is a model folder, which holds one set of "
                         "parameters; --weights chooses among a training workdir's")
    weights = args.weights or "ema"
    settings = parse_settings(args.set)
    if args.results:
        rows = [row for path in args.results for row in read_results(path)]
        settings = {"results": evaluation.model_results(rows),
                    "results_protocol": evaluation.RESULTS_PROTOCOL, **settings}
    metadata = export_metadata(args.workdir, weights)
    model, variables = checkpoints.load_model(args.workdir, weights=weights)
    checkpoints.save_model(args.outdir, model, variables, overwrite=args.overwrite,
                           metadata={**metadata, **settings})
    print(f"exported {args.workdir} -> {args.outdir}", file=sys.stderr)
    return 0


def run_convert(args: argparse.Namespace) -> int:
    """Writes the authors' PyTorch checkpoint (or an .npz of its tensors) as a model folder."""
    check_new_folder(args.out_dir, args.overwrite)
    model, variables = convert.from_torch(args.source, args.param_key)
    checkpoints.save_model(args.out_dir, model, variables, overwrite=args.overwrite,
                           metadata={"converted_from": os.path.abspath(args.source)})
    print(f"wrote D2LNet(in_chn={model.in_chn}, wf={model.wf}, depth={model.depth}) to {args.out_dir}")
    return 0


# --- tables ----------------------------------------------------------------------------------

def read_results(path: str) -> list[dict]:
    """The result rows of an evaluate.py report (its JSON file)."""
    try:
        with open(path) as f:
            return json.load(f)["results"]
    except OSError as e:
        raise ValueError(f"REPORT {path}: {e.strerror.lower()}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"REPORT {path}: not an evaluate.py report (JSON with 'results'; {e})") from None


def run_tables(args: argparse.Namespace) -> int:
    """Prints evaluate.py reports as one Markdown table per mode with the paper's columns."""
    results = [row for path in args.reports for row in read_results(path)]
    print(evaluation.markdown_table(published.with_published(results)))
    return 0


# --- the command -----------------------------------------------------------------------------

def first_line(text: str) -> str:
    return text.strip().split("\n")[0]


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="D2LNet JPEG artifact removal: restore photos, manage models, "
                                           "print result tables. Training and evaluation: train.py, evaluate.py.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, run, help: str) -> Parser:
        sub = commands.add_parser(name, help=help, description=first_line(run.__doc__))
        sub.set_defaults(run=run)
        return sub

    add_restore_arguments(command("restore", run_restore, "restore JPEG photos into a folder"))
    command("models", run_models, "list the named models with their training and LIVE1 results")
    export = command("export", run_export, "a training workdir (or a model folder) -> a model folder")
    export.add_argument("workdir", metavar="SOURCE", help="training workdir (its best checkpoint, EMA parameters "
                                                          "when kept), or a model folder to copy with new entries")
    export.add_argument("outdir", metavar="OUT_DIR", help="new model folder; a name in ~/.cache/d2ljax/models "
                                                          "makes it a named model")
    export.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it is a model folder")
    export.add_argument("--weights", default=None, choices=checkpoints.EXPORT_WEIGHTS,
                        help="a workdir's ema: the best checkpoint's EMA parameters (the default); latest_ema: "
                             "the latest checkpoint's; trained: the latest checkpoint's trained parameters")
    export.add_argument("--results", action="append", default=[], metavar="REPORT",
                        help="record an evaluate.py report of this model (its JSON) as model.json's "
                             "\"results\", read by `d2ljax models` and restore's choice of model; repeatable")
    export.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="add or replace a model.json entry, e.g. --set 'qf=[10]'; repeatable")
    released = command("convert", run_convert, "the authors' PyTorch weights -> a model folder")
    released.add_argument("source", help="PyTorch checkpoint (.pth/.pt, needs torch) or .npz of its tensors")
    released.add_argument("out_dir", metavar="OUT_DIR", help="new model folder")
    released.add_argument("--param_key", default=None, choices=("params", "params_ema"),
                          help="which state dict of a BasicSR checkpoint (default: params_ema if present)")
    released.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it is a model folder")
    tables = command("tables", run_tables, "evaluate.py reports beside the paper's published results")
    tables.add_argument("reports", nargs="+", metavar="REPORT", help="evaluate.py --output JSON files")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `d2ljax` command (also `python -m d2ljax`); `argv` None: this process's arguments."""
    if argv is None and sys.argv[1:2] == ["restore"]:
        from d2ljax.cpu import hostdevices, hostmem
        hostmem.rerun_with_huge_pages()  # glibc reads the setting at start-up only
        hostdevices.split_host()  # JAX fixes its CPU devices when it starts computing
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (*console.USER_ERRORS, ImportError) as e:  # ImportError: convert's .pth without torch
        console.error(e)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return console.interrupted("nothing written")


if __name__ == "__main__":
    sys.exit(main())
