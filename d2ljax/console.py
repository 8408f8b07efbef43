"""The commands' console: quiet by default, one line per user mistake.

train.py, evaluate.py and the `d2ljax` command print a progress bar and the few lines that
matter. Library logs (JAX, orbax, grain, TensorFlow's Python side) go through absl logging at
WARNING; `--verbosity=1` (absl's flag, also `-v 1`) restores INFO and shows tracebacks.
TensorFlow's C++ banners ("oneDNN custom operations are on", ...) are turned off before
TensorFlow can be imported.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from typing import Callable

# Exceptions that mean "the input or the settings are wrong": the message names the problem.
USER_ERRORS = (ValueError, OSError, LookupError, FloatingPointError)


def quiet_native_logs() -> None:
    """Silences TensorFlow's C++ INFO/WARNING lines (must run before it is imported); values
    the user set are kept. oneDNN's banner is printed whatever the log level, so oneDNN's
    float kernels are turned off: the input pipeline uses none (integer image ops and JPEG)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def verbose() -> bool:
    """Whether absl's --verbosity asks for INFO or more (it is WARNING unless given)."""
    from absl import flags
    return flags.FLAGS.is_parsed() and flags.FLAGS["verbosity"].present and flags.FLAGS.verbosity >= 0


def set_library_verbosity() -> None:
    """absl logging (and Python logging under it) at WARNING unless --verbosity was given."""
    from absl import logging
    if not verbose():
        logging.set_verbosity(logging.WARNING)


# Seconds between progress-bar redraws when stderr is a file or pipe (a log).
LOG_REFRESH_S = 30.0


class _LogLines:
    """A progress bar's stream in a log: each redraw on a line of its own (no carriage
    returns), the blank redraws that clear the bar dropped, and a redraw that shows the same
    count as the line before skipped (tqdm redraws after every message it prints)."""

    def __init__(self, stream):
        self.stream, self.last = stream, None

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        count = text.split(" [")[0]
        if text and count != self.last:
            self.stream.write(text + "\n")
            self.last = count

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(**kwargs):
    """A tqdm bar on stderr: live on a terminal; in a log, a line every LOG_REFRESH_S seconds."""
    from tqdm import tqdm
    if sys.stderr.isatty():
        return tqdm(file=sys.stderr, dynamic_ncols=True, **kwargs)
    return tqdm(file=_LogLines(sys.stderr), mininterval=LOG_REFRESH_S, ncols=100, **kwargs)


def error(message: object) -> None:
    """`error: MESSAGE` on one line (a multi-line message is joined)."""
    print("error: " + " ".join(str(message).split()), file=sys.stderr)


# Exit status after Ctrl-C: 128 + SIGINT, as shells report a command stopped by it.
INTERRUPTED = 130


def interrupted(message: str) -> int:
    """`interrupted: MESSAGE` on a line of its own (ending a live progress bar's line first);
    returns the exit status, INTERRUPTED."""
    print(("\n" if sys.stderr.isatty() else "") + "interrupted: " + message, file=sys.stderr)
    return INTERRUPTED


def can_create_in(folder: str) -> bool:
    """Whether a file can be created in `folder` (tried: permission bits do not bind root, and
    some file systems refuse everyone)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def check_output(path: str, name: str, folder: bool = False) -> None:
    """Raises ValueError `NAME PATH: what is wrong` unless `path` can be written as a folder
    (folder=True; a missing one is made later) or as a file. Commands call it before long
    work starts, so a mistyped output costs nothing."""
    want, other = ("folder", "file") if folder else ("file", "folder")
    if os.path.exists(path):
        if os.path.isdir(path) != folder:
            raise ValueError(f"{name} {path}: is a {other}, need a {want}")
        if not (can_create_in(path) if folder else os.access(path, os.W_OK)):
            raise ValueError(f"{name} {path}: not writable")
        return
    existing = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"{name} {path}: {existing} is a file, need a folder")
    if not can_create_in(existing):
        raise ValueError(f"{name} {path}: cannot be made, {existing} is not writable")


HELP_FLAGS = ("-h", "--help", "-?", "--helpshort")


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing for app.run(flags_parser=...), with --help exiting 0 and a flag
    mistake (a missing required flag, an unknown or malformed one) as one line and status 2."""
    from absl import app, flags
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        error(f"{e} (--help lists the flags)")
    except (AttributeError, KeyError, TypeError, ValueError) as e:  # a --config.FIELD override
        error(unknown_config_field(e) or f"bad flag: {type(e).__name__} {e} (a config value of the wrong type)")
    sys.exit(2)


def unknown_config_field(e: Exception) -> str | None:
    """ml_collections' error for an override of a field the config lacks (a KeyError, wrapped
    in an AttributeError, holding the name and maybe a suggestion) as one line:
    `no config field 'batch_sise' (did you mean 'batch_size'?)`; None for other errors."""
    key_error = e.args[0] if isinstance(e, AttributeError) and e.args else e
    if not isinstance(key_error, KeyError) or not key_error.args:
        return None
    text = str(key_error.args[0])
    field = text.split("\n")[0].strip("'\"")
    suggestion = re.search(r'Did you mean "([^"]+)"', text)
    return f"no config field {field!r}" + (f" (did you mean {suggestion.group(1)!r}?)" if suggestion else "")


def run_absl_main(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """Wraps an absl main: quiet libraries; a user mistake is one line and exit status 2
    (with --verbosity=1, the traceback as well)."""

    def wrapped(argv):
        set_library_verbosity()
        try:
            main(argv)
        except USER_ERRORS as e:
            if verbose():
                raise
            error(e)
            sys.exit(2)

    return wrapped
