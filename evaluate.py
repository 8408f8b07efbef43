"""Evaluates D2LNet checkpoints (or JPEG alone) on benchmark sets, as the paper's tables do.

  python evaluate.py --dataset=PATH/TO/LIVE1_color --mode=color --qf=10,20,30 \
      --checkpoint=color_blind --output=results/live1_color.json

writes results/live1_color.json (per set / QF / method means, per-image figures, skipped files)
and results/live1_color.md (the Markdown table, also printed). With --checkpoint=MODEL[,MODEL...]
each model (a named model such as gray_qf10, a model folder or a training workdir) is one more
column beside the JPEG one; --restore adds `d2ljax restore` as the command line runs it on each
JPEG (the named model it chooses for the quality, at the strength of that model's rule);
--jpeg_only gives the JPEG rows alone. --save_images=FOLDER also writes every output and, per
image and QF, a comparison crop (JPEG, each model, original).
A missing folder or model, a bad QF, a model of the other mode or an output that cannot be
written is one line `error: ...` and exit status 2, before any image is evaluated. Ctrl-C
writes the image x QF pairs finished so far to --output (marked "interrupted") and exits 130.
The protocol (JPEG settings, gray = BT.601 Y, PSNR, SSIM, PSNR-B) is d2ljax.metrics' and
d2ljax.jpeg's; d2ljax.evaluation holds the logic.
"""
import sys

from d2ljax import console

console.quiet_native_logs()

from absl import app, flags  # noqa: E402

from d2ljax import compile_cache, evaluation  # noqa: E402
from d2ljax.cpu import hostmem  # noqa: E402
from d2ljax.imageio import MODES  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("dataset", None, "Benchmark folders (classic5, LIVE1_gray, LIVE1_color, "
                  "BSDS500_test, rgb8bit for ICB, or any folder of images).", required=True)
flags.DEFINE_enum("mode", None, list(MODES), "gray: BT.601 Y, 1-channel models; color: RGB.",
                  required=True)
flags.DEFINE_list("qf", ["10", "20", "30"], "JPEG quality factors.")
flags.DEFINE_list("checkpoint", None, "Models to evaluate: named models (d2ljax models), "
                  "model folders or training workdirs.")
flags.DEFINE_bool("restore", False, "Also evaluate `d2ljax restore` as the command line runs it "
                  "on a JPEG: the named model it chooses for the quality, at its rule's strength.")
flags.DEFINE_bool("jpeg_only", False, "Evaluate the JPEG baseline alone (no model).")
flags.DEFINE_string("output", None, "Results JSON; the Markdown table goes beside it (.md).",
                    required=True)
flags.DEFINE_string("save_images", None, "Folder for the outputs as PNG and comparison crops "
                    "(JPEG | models | original); none saved if unset.")


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments: {argv[1:]}")
    if bool(FLAGS.checkpoint or FLAGS.restore) == FLAGS.jpeg_only:
        raise ValueError("give either --checkpoint=MODEL[,MODEL...] and/or --restore, or --jpeg_only")
    if FLAGS.output.endswith(".md"):
        raise ValueError("--output is the JSON file; the .md table is written beside it")
    try:
        qfs = [int(q) for q in FLAGS.qf]
    except ValueError:
        raise ValueError(f"--qf must be integers, got {','.join(FLAGS.qf)}") from None
    console.check_output(FLAGS.output, "--output")
    if FLAGS.save_images:
        console.check_output(FLAGS.save_images, "--save_images", folder=True)
    methods = [evaluation.Method(evaluation.JPEG_METHOD)]
    methods += [evaluation.checkpoint_method(m, FLAGS.mode) for m in FLAGS.checkpoint or []]
    methods += [evaluation.restore_method()] if FLAGS.restore else []
    try:
        report = evaluation.evaluate(FLAGS.dataset, FLAGS.mode, qfs, methods, FLAGS.save_images)
    except evaluation.Interrupted as stop:
        evaluation.write_report(stop.report, FLAGS.output)
        sys.exit(console.interrupted(f"{stop}; partial results in {FLAGS.output}"))
    print(evaluation.write_report(report, FLAGS.output))
    print(f"written: {FLAGS.output} and its .md table" + (f"; images in {FLAGS.save_images}" if FLAGS.save_images else ""))
    for item in report["skipped"]:
        print(f"skipped: {item['error']}")


if __name__ == "__main__":
    hostmem.rerun_with_huge_pages()  # glibc reads the setting at start-up only
    compile_cache.enable()
    app.run(console.run_absl_main(main), flags_parser=console.parse_flags)
