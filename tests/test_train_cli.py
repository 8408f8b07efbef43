"""train.py as a user meets it: Ctrl-C and SIGTERM stop after a step with a checkpoint and a
rerun continues the same run; bad flags and workdirs are one line naming the problem;
--show_config prints the config. Subprocesses run the tiny quickstart below."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from d2ljax import checkpoints, console, samples, stop_signals, train_lib
from conftest import quick_compiles

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the configs/ folder

from configs import quickstart  # noqa: E402

# configs/quickstart.py shrunk; grain with no worker processes: no TensorFlow to import.
TINY = {"wf": 4, "depth": 2, "patch_size": 16, "num_train_steps": 60, "log_every_steps": 1,
        "checkpoint_every_steps": 1000, "val_crop": 64, "input_pipeline": "grain", "data_workers": 0}
INTERRUPTED = "interrupted at step {}; checkpoint saved; rerun the same command to continue"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Quick, unoptimised compiles, cached between the subprocesses and this process (whose
    runs must compile the same way to give the same losses)."""
    with quick_compiles(tmp_path_factory.mktemp("xla_cache")) as settings:
        yield {**os.environ, "PYTHONPATH": str(ROOT), "D2LJAX_HUGE_PAGES": "0",
               **{k.upper(): str(int(v) if isinstance(v, bool) else v) for k, v in settings.items()}}


def train_command(workdir, *flags) -> list[str]:
    return [sys.executable, "train.py", "--config=configs/quickstart.py", f"--workdir={workdir}",
            *(f"--config.{k}={v}" for k, v in TINY.items()), *flags]


# A terminal's Ctrl-C: SIGINT to every process of the group, grain's worker included.
CTRL_C = ("--config.data_workers=1",)


def run(command, env) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def read_losses(workdir) -> dict[int, float]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f)}


def interrupt(workdir, env, signum: int, *flags) -> tuple[int, str]:
    """Starts a run in a process group of its own, sends `signum` to the group once the run
    has logged a step, returns (status, stderr)."""
    process = subprocess.Popen(train_command(workdir, *flags), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    metrics = Path(workdir) / "metrics.jsonl"
    deadline = time.monotonic() + 600
    while not (metrics.exists() and metrics.stat().st_size) and process.poll() is None:
        assert time.monotonic() < deadline, "no step logged in 10 minutes"
        time.sleep(0.05)
    os.killpg(process.pid, signum)
    _, stderr = process.communicate(timeout=600)
    return process.returncode, stderr


def stopped_at(stderr: str) -> int:
    """The step in the last line of stderr, which must be the interruption's line."""
    last = stderr.strip().splitlines()[-1]
    step = int(last.split()[3].rstrip(";"))
    assert last == INTERRUPTED.format(step)
    return step


def latest_checkpoint(workdir) -> int:
    with checkpoints.checkpoint_manager(str(workdir), read_only=True) as manager:
        return manager.latest_step()


def test_ctrl_c_saves_the_step_and_a_rerun_continues_the_same_run(tmp_path, env):
    workdir = tmp_path / "run"
    status, stderr = interrupt(workdir, env, signal.SIGINT, *CTRL_C)
    assert status == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    step = stopped_at(stderr)
    assert 1 <= step < TINY["num_train_steps"] and latest_checkpoint(workdir) == step
    assert max(read_losses(workdir)) == step

    rerun = run(train_command(workdir, *CTRL_C), env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming at step {step}" in rerun.stderr
    reference = quickstart.get_config()
    reference.update(TINY)
    train_lib.train_and_evaluate(reference, str(tmp_path / "uninterrupted"))  # no worker: the same batches
    assert read_losses(workdir) == read_losses(tmp_path / "uninterrupted")


def test_sigterm_saves_the_step_and_exits_143(tmp_path, env):
    status, stderr = interrupt(tmp_path, env, signal.SIGTERM)
    assert status == 143, stderr[-3000:]
    assert "Traceback" not in stderr
    assert latest_checkpoint(tmp_path) == stopped_at(stderr)


def test_a_second_signal_is_left_to_its_default_action():
    """The first signal is recorded for the loop; the handlers then return to the default, so a
    second Ctrl-C ends the process at once, even inside a long computation."""
    before = signal.getsignal(signal.SIGINT)
    with stop_signals.StopSignals() as signals:
        assert signals.agreed() == 0
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.agreed() == signal.SIGINT
        assert signal.getsignal(signal.SIGINT) == signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) == before
    assert stop_signals.TrainingInterrupted(7, signal.SIGTERM).exit_code == 143


@pytest.mark.parametrize("flags, message", [
    (["--workdir={tmp}/run", "--config.batch_sise=4"], "no config field 'batch_sise' (did you mean 'batch_size'?)"),
    (["--workdir={tmp}/file"], "--workdir {tmp}/file: is a file, need a folder"),
    (["--workdir={tmp}/file/run"], "--workdir {tmp}/file/run: {tmp}/file is a file, need a folder"),
    ([], "--workdir is required: the folder to train in (--help lists the flags)"),
])
def test_bad_flags_are_one_line_naming_the_problem(tmp_path, env, flags, message):
    (tmp_path / "file").write_text("")
    out = run([sys.executable, "train.py", "--config=configs/quickstart.py",
               *(f.format(tmp=tmp_path) for f in flags)], env)
    assert (out.returncode, out.stderr) == (2, f"error: {message.format(tmp=tmp_path)}\n")
    assert not (tmp_path / "run").exists()


def test_a_folder_that_cannot_be_written_is_refused(tmp_path):
    folder = tmp_path / "read_only"
    folder.mkdir(mode=0o500)
    if os.access(folder, os.W_OK):  # root writes anywhere; /proc/self refuses even root
        folder = Path("/proc/self")
        if not folder.is_dir() or os.access(folder, os.W_OK):
            pytest.skip("no folder this user cannot write to")
    with pytest.raises(ValueError, match=f"^--workdir {folder}: not writable$"):
        console.check_output(str(folder), "--workdir", folder=True)


def test_show_config_prints_the_resolved_config(tmp_path, env):
    out = run([sys.executable, "train.py", "--config=configs/quickstart.py", "--show_config", "--config.wf=8",
               "--config.input_pipeline=auto"], env)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    expected = quickstart.get_config()
    assert shown["wf"] == 8 and shown["num_train_steps"] == expected.num_train_steps
    assert shown["input_pipeline"] == samples.default_pipeline()
    assert set(shown) == set(expected)
