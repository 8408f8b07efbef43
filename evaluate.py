"""Evaluates D2LNet checkpoints (or JPEG alone) on benchmark sets, as the paper's tables do.

  python evaluate.py --dataset=../shared/data/benchmarks/LIVE1_color --mode=color \
      --qf=10,20,30 --jpeg_only --output=results/live1_color.json

writes results/live1_color.json (per set / QF / method means, per-image figures, skipped files)
and results/live1_color.md (the Markdown table, also printed). With --checkpoint=MODEL[,MODEL...]
each model (a named model such as gray_qf10, a model folder or a training workdir) is one more
column beside the JPEG one. A missing folder or model, a bad QF or a model of the other mode is
one line `error: ...` and exit status 2. The protocol is ../shared/spec/protocol.md;
d2ljax.evaluation holds the logic.
"""
import sys

from absl import app, flags

from d2ljax import evaluation
from d2ljax.cpu import hostmem
from d2ljax.imageio import MODES

FLAGS = flags.FLAGS
flags.DEFINE_list("dataset", None, "Benchmark folders (classic5, LIVE1_gray, LIVE1_color, "
                  "BSDS500_test, rgb8bit for ICB, or any folder of images).", required=True)
flags.DEFINE_enum("mode", None, list(MODES), "gray: BT.601 Y, 1-channel models; color: RGB.",
                  required=True)
flags.DEFINE_list("qf", ["10", "20", "30"], "JPEG quality factors.")
flags.DEFINE_list("checkpoint", None, "Models to evaluate: named models (python -m d2ljax models), "
                  "model folders or training workdirs.")
flags.DEFINE_bool("jpeg_only", False, "Evaluate the JPEG baseline alone (no model).")
flags.DEFINE_string("output", None, "Results JSON; the Markdown table goes beside it (.md).",
                    required=True)
flags.DEFINE_string("save_images", None, "Folder for the outputs as PNG (none saved if unset).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if bool(FLAGS.checkpoint) == FLAGS.jpeg_only:
        raise app.UsageError("give either --checkpoint=MODEL[,MODEL...] or --jpeg_only")
    if FLAGS.output.endswith(".md"):
        raise app.UsageError("--output is the JSON file; the .md table is written beside it")
    try:
        qfs = [int(q) for q in FLAGS.qf]
    except ValueError:
        raise app.UsageError(f"--qf must be integers, got {','.join(FLAGS.qf)}") from None
    try:
        methods = [evaluation.Method(evaluation.JPEG_METHOD)]
        methods += [evaluation.checkpoint_method(m, FLAGS.mode) for m in FLAGS.checkpoint or []]
        report = evaluation.evaluate(FLAGS.dataset, FLAGS.mode, qfs, methods, FLAGS.save_images)
    except (LookupError, OSError, ValueError) as e:  # a missing folder or model, a bad QF, the other mode
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(evaluation.write_report(report, FLAGS.output))
    for item in report["skipped"]:
        print(f"skipped: {item['error']}")


if __name__ == "__main__":
    hostmem.rerun_with_huge_pages()  # glibc reads the setting at start-up only
    app.run(main)
