"""Training-patch throughput: d2ljax.data's tf.data pipeline against a plain Pillow loop.

Both make 256x256 RGB patches at QF 10 from ../shared/data/train/BSDS500_train with the same
work per patch (images decoded once beforehand; crop, one of the 8 flips/rotations, JPEG
encode + decode). The Pillow loop is single-threaded; the pipeline uses every core.

    python benchmarks/input_pipeline.py [--seconds 10] [--json results/input_pipeline.json]

The target is >= 300 patches/s on 2 CPU cores.
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

DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "train" / "BSDS500_train"

ROTATIONS = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)


def pipeline_rate(folder: str, patch: int, qf: int, batch: int, seconds: float) -> float:
    """Patches per second from make_dataset, timed after the first batch (setup and tracing)."""
    from d2ljax.data import make_train_iterator

    batches = make_train_iterator(folder, batch_size=batch, patch_size=patch, qf=qf,
                                  process_index=0, process_count=1)
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
    parser.add_argument("--folder", default=str(DEFAULT_FOLDER))
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--qf", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="timing per measurement")
    parser.add_argument("--json", help="also write the two rates to this JSON file")
    args = parser.parse_args()
    if not os.path.isdir(args.folder):
        raise SystemExit(f"{args.folder} is absent (training images live in ../shared/data)")

    pipeline = pipeline_rate(args.folder, args.patch, args.qf, args.batch, args.seconds)
    pillow = pillow_rate(args.folder, args.patch, args.qf, args.seconds)
    load = os.getloadavg()[0]
    print(f"tf.data pipeline: {pipeline:8.1f} patches/s ({os.cpu_count()} cores, load {load:.1f})")
    print(f"Pillow loop:      {pillow:8.1f} patches/s (one thread)")
    print(f"ratio:            {pipeline / pillow:8.2f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"pipeline_patches_per_s": pipeline, "pillow_patches_per_s": pillow}, indent=1) + "\n")


if __name__ == "__main__":
    main()
