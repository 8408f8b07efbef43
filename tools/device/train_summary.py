"""What a training run achieved, read from its workdir: throughput, accelerator use, validation.

    python tools/device/train_summary.py WORKDIR [--json summary.json] [--peak_tflops 790]

From metrics.jsonl (train_lib logs every log_every_steps): patches/s, seconds per step,
achieved TFLOP/s (d2ljax.model.forward_flops: convolutions only, a step = 3 forward passes) and
its fraction of --peak_tflops (the dense bf16 matrix rate measured on both the lent H100 and
H200 by default: a float32 run, which the matrix units take as TF32, has a lower ceiling), the input
pipeline's wait per step, and validation PSNR against minutes. Steady-state figures are medians
over the logged windows after the first (which holds the compilation).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics

HOPPER_BF16_TFLOPS = 790.0  # measured on the lent H100 and H200 (device tool's KINDS.md): 769-798


def read_rows(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_json(workdir: str, name: str) -> dict:
    with open(os.path.join(workdir, name)) as f:
        return json.load(f)


def summarise_run(workdir: str, peak_tflops: float = HOPPER_BF16_TFLOPS) -> dict:
    """The run's figures (see the module docstring)."""
    rows, config = read_rows(workdir), read_json(workdir, "config.json")
    steady = rows[1:] or rows
    median = lambda key: statistics.median(r[key] for r in steady)  # noqa: E731
    step_s = 1 / median("steps_per_s")
    validated = [r for r in rows if "val_psnr" in r]
    return {
        "steps": rows[-1]["step"], "patches": rows[-1]["step"] * config["batch_size"],
        "minutes": rows[-1].get("elapsed_s", 0) / 60, "loss": statistics.mean(r["loss"] for r in rows[-3:]),
        "val_psnr": validated[-1]["val_psnr"] if validated else None,
        "val_psnr_jpeg": validated[-1]["val_psnr_jpeg"] if validated else None,
        "patches_per_s": median("patches_per_s"), "step_s": step_s,
        "tflops_per_s": median("tflops_per_s"), "peak_fraction": median("tflops_per_s") / peak_tflops,
        "input_wait_s": median("input_wait_s"), "input_wait_fraction": median("input_wait_s") / step_s,
        "val_psnr_by_minute": [(round(r.get("elapsed_s", 0) / 60, 2), r["val_psnr"]) for r in validated],
        "model": {k: config[k] for k in ("mode", "wf", "depth", "dtype", "patch_size", "batch_size")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdir")
    parser.add_argument("--json", help="also write the summary to this file")
    parser.add_argument("--peak_tflops", type=float, default=HOPPER_BF16_TFLOPS)
    args = parser.parse_args()
    summary = summarise_run(args.workdir, args.peak_tflops)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    print(f"{summary['steps']} steps, {summary['patches']} patches in {summary['minutes']:.1f} min; "
          f"{summary['patches_per_s']:.1f} patches/s, {1000 * summary['step_s']:.1f} ms/step, "
          f"{summary['tflops_per_s']:.2f} TFLOP/s ({100 * summary['peak_fraction']:.1f}% of {args.peak_tflops:g}; "
          f"{summary['model']['dtype']} model), "
          f"input wait {1000 * summary['input_wait_s']:.1f} ms/step ({100 * summary['input_wait_fraction']:.0f}%)")
    for minute, psnr in summary["val_psnr_by_minute"]:
        print(f"  {minute:6.2f} min: validation PSNR {psnr:.3f} dB")


if __name__ == "__main__":
    main()
