"""Trains D2LNet: `python train.py --config=configs/quickstart.py --workdir=runs/quickstart`.

Rerunning the same command resumes from the workdir; Ctrl-C (or SIGTERM) stops after the
step under way with a checkpoint at it. Any config field can be overridden
(`--config.batch_size=16`); `--show_config` prints the config as the run would use it.
`--config.input_pipeline=grain` trains without TensorFlow and `--config.time_budget_s=600`
stops (with a checkpoint) after ten minutes. Multi-host: start one process per host with
--distributed (jax.distributed.initialize: found automatically on TPU pods, SLURM and the
like; elsewhere give --coordinator_address=HOST:PORT --num_processes=N --process_id=I).
Quiet by default; --verbosity=1 shows the libraries' logs.
"""
from d2ljax import console

console.quiet_native_logs()

import sys  # noqa: E402

import jax  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from d2ljax import compile_cache, train_lib  # noqa: E402
from d2ljax.cpu import hostmem  # noqa: E402
from d2ljax.run_log import report, say  # noqa: E402
from d2ljax.stop_signals import TrainingInterrupted  # noqa: E402
from d2ljax.train_config import prepared_config  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and the exported model.")
flags.DEFINE_bool("show_config", False, "Print the config as the run would use it (overrides applied, "
                                        "values resolved) and exit.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (multi-host training).")
flags.DEFINE_string("coordinator_address", None, "With --distributed: process 0's HOST:PORT.")
flags.DEFINE_integer("num_processes", None, "With --distributed: number of processes.")
flags.DEFINE_integer("process_id", None, "With --distributed: this process's index.")
config_flags.DEFINE_config_file("config", None, "Training configuration (configs/*.py[:gray]).",
                                lock_config=True)
flags.mark_flag_as_required("config")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.show_config:
        print(prepared_config(FLAGS.config).to_json_best_effort(indent=2))
        return
    workdir = FLAGS.workdir
    if not workdir:
        console.error("--workdir is required: the folder to train in (--help lists the flags)")
        sys.exit(2)
    console.check_output(workdir, "--workdir", folder=True)
    if FLAGS.distributed:
        jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    logging.info("JAX process %d/%d, %d local / %d devices", jax.process_index(), jax.process_count(),
                 jax.local_device_count(), jax.device_count())
    try:
        summary = train_lib.train_and_evaluate(FLAGS.config, workdir)
    except TrainingInterrupted as e:
        say(str(e))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        say("interrupted before training started; nothing to save")
        sys.exit(130)
    report(summary, workdir)


if __name__ == "__main__":
    hostmem.rerun_with_huge_pages()  # glibc reads the setting at start-up only
    compile_cache.enable()
    app.run(console.run_absl_main(main), flags_parser=console.parse_flags)
