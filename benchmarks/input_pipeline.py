"""Training-patch throughput of both input pipelines, against a plain Pillow loop.

tf.data (d2ljax.data), grain (d2ljax.grain_data: in this process, and with 1, 2, ... worker
processes) and a single-threaded Pillow loop make 256x256 RGB patches at QF 10 from
BSDS500_train with the same work per patch (images decoded once beforehand; crop, one of the
8 flips/rotations, JPEG encode + decode). Rates are timed after the first two batches (setup,
tracing, worker start-up).

    python benchmarks/input_pipeline.py --folder PATH/TO/BSDS500_train [--workers 0,1,2]
        [--seconds 10] [--json results/input_pipeline.json]

The targets: >= 300 patches/s on 2 CPU cores, and enough to keep an accelerator fed (a
training run's input wait per step, metrics.jsonl's `input_wait_s`).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROTATIONS = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)


def pipeline_rate(make_train_iterator, folder: str, patch: int, qf: int, batch: int, seconds: float,
                  **options) -> float:
    """Patches per second from a pipeline's make_train_iterator, timed after two batches."""
    batches = make_train_iterator(folder, batch_size=batch, patch_size=patch, qf=qf,
                                  process_index=0, process_count=1, **options)
    next(batches)
    next(batches)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(batches)
        count += batch
    return count / (time.perf_counter() - start)


def pillow_rate(folder: str, patch: int, qf: int, seconds: float) -> float:
    """Patches per second from a single-threaded Pillow loop doing the same work per patch."""
    from d2ljax.imageio import list_image_files

    images = [Image.open(f).convert("RGB") for f in list_image_files(folder)]
    rng = np.random.default_rng(0)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        image = images[rng.integers(len(images))]
        x, y = rng.integers(image.width - patch + 1), rng.integers(image.height - patch + 1)
        crop = image.crop((x, y, x + patch, y + patch))
        k = int(rng.integers(8))
        crop = crop.transpose(ROTATIONS[k % 4]) if k % 4 else crop
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if k >= 4 else crop
        buffer = io.BytesIO()
        crop.save(buffer, "JPEG", quality=qf, subsampling=2)
        np.asarray(Image.open(buffer).convert("RGB"))
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", required=True, help="a folder of training images, e.g. BSDS500_train")
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--qf", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", default="0,1,2", help="grain worker counts to time (0: in this process)")
    parser.add_argument("--seconds", type=float, default=10.0, help="timing per measurement")
    parser.add_argument("--pipelines", default="tf.data,grain,pillow")
    parser.add_argument("--json", help="also write the rates to this JSON file")
    args = parser.parse_args()
    if not os.path.isdir(args.folder):
        raise SystemExit(f"{args.folder} is absent: give --folder (training images, e.g. BSDS500_train)")
    pipelines = args.pipelines.split(",")
    common = (args.folder, args.patch, args.qf, args.batch, args.seconds)
    rates: dict = {"cores": os.cpu_count()}
    if "tf.data" in pipelines:
        from d2ljax import data
        rates["pipeline_patches_per_s"] = pipeline_rate(data.make_train_iterator, *common)
        print(f"tf.data:            {rates['pipeline_patches_per_s']:8.1f} patches/s", flush=True)
    if "grain" in pipelines:
        from d2ljax import grain_data
        rates["grain_by_workers"] = {}
        for workers in map(int, args.workers.split(",")):
            rate = pipeline_rate(grain_data.make_train_iterator, *common, workers=workers)
            rates["grain_by_workers"][workers] = rate
            print(f"grain, {workers:2d} workers:  {rate:8.1f} patches/s", flush=True)
        default = grain_data.default_workers()
        rates["grain_default_workers"] = default
        rates["grain_patches_per_s"] = (rates["grain_by_workers"].get(default) or pipeline_rate(
            grain_data.make_train_iterator, *common, workers=default))
        print(f"grain (default, {default} workers): {rates['grain_patches_per_s']:8.1f} patches/s", flush=True)
    if "pillow" in pipelines:
        rates["pillow_patches_per_s"] = pillow_rate(args.folder, args.patch, args.qf, args.seconds)
        print(f"Pillow loop:        {rates['pillow_patches_per_s']:8.1f} patches/s (one thread)")
    print(f"({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rates, indent=1) + "\n")


if __name__ == "__main__":
    main()
