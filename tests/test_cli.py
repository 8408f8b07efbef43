"""The `d2ljax` command: its subcommands, --help/--version, one error style, output checks
before work starts, and Ctrl-C (a real SIGINT sent to a subprocess)."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import d2ljax
from conftest import interrupt_when, random_variables, start_interruptible
from d2ljax import checkpoints, compile_cache, console, restoration
from d2ljax.__main__ import main
from d2ljax.model import D2LNet

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("restore", "models", "export", "convert", "tables")


def run_main(capsys, *argv) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `d2ljax ARGV`, run in this process."""
    try:
        status = main(list(argv))
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def one_error_line(err: str) -> str:
    """The `error: ...` line, asserting that it is the only output."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_console_script_is_the_module_main():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, name = scripts["d2ljax"].partition(":")
    assert getattr(importlib.import_module(module), name) is main


@pytest.mark.parametrize("command", [(), *((c,) for c in COMMANDS)])
def test_help_and_version_everywhere(capsys, command):
    status, out, _ = run_main(capsys, *command, "--version")
    assert (status, out.strip()) == (0, f"d2ljax {d2ljax.__version__}")
    status, out, _ = run_main(capsys, *command, "--help")
    assert status == 0 and out.startswith(f"usage: d2ljax {' '.join(command)}".rstrip())
    if not command:
        assert all(f"    {c} " in out for c in COMMANDS), out


@pytest.mark.parametrize("argv, words", [
    ((), "required: COMMAND; see d2ljax --help"),
    (("restor",), "invalid choice: 'restor'"),
    (("restore", "a.jpg", "--ouput", "out"), "unrecognized argument --ouput (did you mean --outdir?)"),
    (("restore", "a.jpg", "--out", "out"), "unrecognized argument --out "),  # no abbreviations
    (("restore", "a.jpg", "-o", "out", "--formt=tiff"), "unrecognized argument --formt (did you mean --format?)"),
    (("restore", "a.jpg"), "required: -o/--outdir; see d2ljax restore --help"),
    (("restore", "a.jpg", "-o", "out", "--tile", "big"), "argument --tile: invalid int value: 'big'"),
    (("convert", "in.npz", "out", "--param_key", "weights"), "argument --param_key: invalid choice"),
    (("tables",), "required: REPORT"),
])
def test_usage_mistakes_are_one_line_and_status_2(capsys, argv, words):
    status, out, err = run_main(capsys, *argv)
    assert status == 2 and out == "" and words in one_error_line(err), err


def test_joined_short_option_and_negative_numbers_are_not_unknown(tmp_path, capsys):
    status, _, err = run_main(capsys, "restore", str(tmp_path / "none.jpg"), f"-o{tmp_path / 'out'}",
                              "--tile", "-5")
    assert status == 2 and "option tile=-5: must be >= 1" in one_error_line(err)


def test_output_folder_errors_name_the_option(tmp_path, capsys, monkeypatch):
    (tmp_path / "restored.png").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    for outdir, words in (("restored.png", "-o/--outdir restored.png: is a file, need a folder"),
                          ("restored.png/more", f"-o/--outdir restored.png/more: {tmp_path / 'restored.png'} is a "
                                                f"file, need a folder")):
        status, _, err = run_main(capsys, "restore", "missing.jpg", "-o", outdir)
        assert status == 2 and one_error_line(err) == f"error: {words}"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc (a folder no one can write in)")
def test_unwritable_outputs_are_refused_before_work(capsys):
    status, _, err = run_main(capsys, "restore", "missing.jpg", "-o", "/proc/d2ljax_out")
    assert status == 2 and one_error_line(err) == "error: -o/--outdir /proc/d2ljax_out: cannot be made, /proc is not writable"
    with pytest.raises(ValueError, match=r"^--output /proc/x/r.json: cannot be made, /proc is not writable$"):
        console.check_output("/proc/x/r.json", "--output")
    with pytest.raises(ValueError, match=r"^OUT /proc: not writable$"):
        console.check_output("/proc", "OUT", folder=True)


def test_check_output_accepts_what_can_be_written_and_makes_nothing(tmp_path):
    (tmp_path / "file").write_text("x")
    console.check_output(str(tmp_path / "new" / "deeper"), "-o", folder=True)
    console.check_output(str(tmp_path / "new" / "r.json"), "--output")
    console.check_output(str(tmp_path / "file"), "--output")  # replaced when written
    console.check_output(str(tmp_path), "-o", folder=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    with pytest.raises(ValueError, match=r"^--output .*: is a folder, need a file$"):
        console.check_output(str(tmp_path), "--output")


def test_existing_out_dir_is_refused_before_reading_weights(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    for argv in (("export", str(tmp_path / "no_workdir"), str(tmp_path / "taken")),
                 ("convert", str(tmp_path / "no.npz"), str(tmp_path / "taken"))):
        status, _, err = run_main(capsys, *argv)
        assert status == 2 and one_error_line(err) == (
            f"error: OUT_DIR {tmp_path / 'taken'}: exists; choose a new folder or pass --overwrite")


def test_models_lists_each_with_its_training_and_live1_results(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("D2LJAX_MODELS", str(tmp_path))
    monkeypatch.setattr(d2ljax.pretrained, "PACKAGE_MODELS", str(tmp_path / "none"))
    model = D2LNet(in_chn=1, wf=8, depth=2)
    live1 = {"20": {"psnr": 31.5, "jpeg_psnr": 30.25}, "10": {"psnr": 29.0, "jpeg_psnr": 27.75}}
    checkpoints.save_model(str(tmp_path / "blind"), model, random_variables(model), metadata={
        "qf": "10-95", "total_train_steps": 1200, "total_cpu_hours": 0.7, "total_accelerator_hours": 0.11,
        "results": {"BSDS500": {"10": {"psnr": 1.0}}, "LIVE1": live1}})
    checkpoints.save_model(str(tmp_path / "old"), model, random_variables(model), metadata={"qf": 10})
    checkpoints.save_model(str(tmp_path / "odd"), model, random_variables(model), metadata={  # hand-edited
        "qf": 20, "total_train_steps": "many", "results": {"LIVE1": {"20": {"psnr": 31.0}, "x": {}, "30": "?"}}})
    status, out, err = run_main(capsys, "models")
    assert status == 0 and out.splitlines() == [
        "blind (gray, QF 10-95): 1200 steps, 0.7 CPU-hours, 0.11 accelerator-hours; "
        "LIVE1 QF 10: 29.000 dB (+1.250), QF 20: 31.500 dB (+1.250)",
        "odd (gray, QF 20): LIVE1 QF 20: 31.000 dB", "old (gray, QF 10)"]
    assert str(tmp_path) in err


def test_tables_name_a_bad_report(tmp_path, capsys):
    (tmp_path / "notes.json").write_text("not json")
    status, _, err = run_main(capsys, "tables", str(tmp_path / "missing.json"))
    assert status == 2 and one_error_line(err) == f"error: REPORT {tmp_path / 'missing.json'}: no such file or directory"
    status, _, err = run_main(capsys, "tables", str(tmp_path / "notes.json"))
    assert status == 2 and "notes.json: not an evaluate.py report" in one_error_line(err)


def test_export_set_must_be_json(tmp_path, capsys):
    status, _, err = run_main(capsys, "export", str(tmp_path), str(tmp_path / "out"), "--set", "qf=ten")
    assert status == 2 and "--set qf=ten: the value is not JSON" in one_error_line(err)


def test_restore_keeps_compiled_programs_for_the_next_process(tmp_path):
    """The command line's persistent compilation cache: the second process loads the model's
    program from D2LJAX_COMPILE_CACHE instead of compiling it (JAX logs the hit), and restores
    the same bytes."""
    model = D2LNet(3, wf=4, depth=2)
    checkpoints.save_model(str(tmp_path / "tiny"), model, random_variables(model, 0, 0.05))
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(
        tmp_path / "p.jpg", quality=10)
    cache = tmp_path / "xla"
    env = {**os.environ, "D2LJAX_COMPILE_CACHE": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_LOG_COMPILES": "1", "D2LJAX_MODELS": ""}
    outputs, logs = [], []
    for run in ("first", "second"):
        done = subprocess.run([sys.executable, "-m", "d2ljax", "restore", str(tmp_path / "p.jpg"), "-o",
                               str(tmp_path / run), "--checkpoint", str(tmp_path / "tiny"), "--force"],
                              cwd=REPO, env=env, check=True, capture_output=True, text=True)
        outputs.append((tmp_path / run / "p.png").read_bytes())
        logs.append(done.stderr)
    hit = "Persistent compilation cache hit for 'jit_apply'"
    assert any(p.name.startswith("jit_apply") for p in cache.iterdir()) and hit not in logs[0] and hit in logs[1]
    assert outputs[0] == outputs[1]
    assert compile_cache.folder({"D2LJAX_COMPILE_CACHE": "0"}) is None
    assert compile_cache.folder({"XDG_CACHE_HOME": "/c"}) == os.path.join("/c", "d2ljax", "jax")


def test_ctrl_c_during_restore_keeps_whole_outputs_and_says_how_many(tmp_path):
    """A chunk of photos restored together (one size, one compile), then eight larger ones of
    other sizes whose compilations (--bucket 0: exact sizes) take seconds in all: the signal
    lands among them."""
    model = D2LNet(3, wf=4, depth=2)
    checkpoints.save_model(str(tmp_path / "tiny"), model, random_variables(model, 0, 0.05))
    inputs, outdir = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    shapes = [(32, 40)] * restoration.FILES_PER_CHUNK + [(200 + 8 * i, 240 + 8 * i) for i in range(8)]
    for i, shape in enumerate(shapes):
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(inputs / f"p{i:02d}.jpg", quality=10)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "D2LJAX_MODELS": ""}
    process = start_interruptible(
        ["-m", "d2ljax", "restore", str(inputs), "-o", str(outdir), "--checkpoint",
         str(tmp_path / "tiny"), "--bucket", "0"], cwd=REPO, env=env)
    err = interrupt_when(lambda: outdir.is_dir() and any(p.suffix == ".png" for p in outdir.iterdir()), process)
    written = sorted(p.name for p in outdir.iterdir())
    assert process.returncode == 130 and "Traceback" not in err, err
    assert all(name.endswith(".png") for name in written), written  # no half-written file
    assert 1 <= len(written) < len(shapes)
    assert err.strip().splitlines()[-1] == (
        f"interrupted: {len(written)} of {len(shapes)} photos restored; outputs kept in {outdir}")
    for name in written:
        with Image.open(outdir / name) as image:
            image.load()
