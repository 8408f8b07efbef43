"""Per-image cost of evaluation: JPEG, each metric, and (optionally) a model's restoration.

Metrics run on evaluation.MAX_WORKERS threads beside the model, so an evaluation is model-bound
when metrics-per-image / workers stays below the model's time per image. Single-threaded
timings, the best of --repeat runs per image, summed over the set:

    python benchmarks/evaluate_speed.py --dataset PATH/TO/LIVE1_color
        [--mode color] [--qf 10] [--checkpoint DIR] [--json results/evaluate_speed.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from d2ljax import metrics
from d2ljax.jpeg import compress
from d2ljax.testsets import iter_images, open_set


def best_time(fn, repeat: int) -> float:
    """Seconds of the fastest of `repeat` calls (the first call of a model shape compiles)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="a benchmark set's folder, e.g. LIVE1_color")
    parser.add_argument("--mode", default="color", choices=["gray", "color"])
    parser.add_argument("--qf", type=int, default=10)
    parser.add_argument("--checkpoint", help="also time this model's apply_image (a name, model folder or workdir)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the timings here too")
    args = parser.parse_args()

    restore = None
    if args.checkpoint:
        from d2ljax.evaluation import checkpoint_method
        restore = checkpoint_method(args.checkpoint, args.mode).restore
    totals = dict.fromkeys(["jpeg", "psnr", "ssim", "psnrb"] + (["model"] if restore else []), 0.0)
    n = 0
    for _, gt in iter_images(open_set(args.dataset), args.mode):
        test = compress(gt, args.qf)
        totals["jpeg"] += best_time(lambda: compress(gt, args.qf), args.repeat)
        for name in ("psnr", "ssim", "psnrb"):
            totals[name] += best_time(lambda: getattr(metrics, name)(gt, test), args.repeat)
        if restore:
            totals["model"] += best_time(lambda: restore(test), args.repeat + 1)
        n += 1
    per_image_ms = {k: 1000 * v / n for k, v in totals.items()}
    print(f"{args.dataset} ({args.mode}, QF {args.qf}, {n} images): ms per image, one thread")
    for name, ms in per_image_ms.items():
        print(f"  {name:6s} {ms:8.1f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"dataset": args.dataset, "mode": args.mode, "qf": args.qf,
                                               "n_images": n, "ms_per_image": per_image_ms}, indent=1))


if __name__ == "__main__":
    main()
