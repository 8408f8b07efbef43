"""What tiling and size buckets cost in PSNR, and how fast `d2ljax.restore` runs (MP/s).

    python benchmarks/restore_speed.py                                  # fixture model, all parts
    python benchmarks/restore_speed.py --model workdirs/qf10 --parts tiling
    python benchmarks/restore_speed.py --parts speed --limit 4 --json speed.json

Tiling and bucketing: LIVE1_color is compressed at QF 10 (d2ljax.jpeg.compress) and restored
whole at its exact size (the reference), then (a) in tiles of each --tiles TILE:OVERLAP and
(b) padded to multiples of each --buckets. Reported per setting, as means over the images:
the PSNR change against the ground truth ("loss", negative = worse) and PSNR(variant, whole)
(from the mean MSE, so that identical images count), which measures the change itself and is
meaningful for an untrained model too. --model is a named model, model folder or training
workdir; without it, the released architecture (wf 16, depth 3) with the random
PyTorch-initialised weights of ../shared/fixtures/official_rgb_wf16_d3.npz: its output is no
restoration, so only PSNR(variant, whole) is telling then.

Speed: megapixels per second of `restoration.run_images` with the default Options on the first
--limit LIVE1 images (several sizes, so bucketing and batching count), after a warm-up pass
that compiles; for the small model (wf 16, depth 3) and the full one (wf 64, depth 4), whose
weights are random (speed does not depend on them).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from d2ljax import checkpoints, convert, jpeg, pretrained, restoration
from d2ljax.imageio import list_image_files, read_image
from d2ljax.metrics import mse, psnr
from d2ljax.model import D2LNet

SHARED = Path(__file__).resolve().parents[2] / "shared"
LIVE1 = SHARED / "data" / "benchmarks" / "LIVE1_color"
FIXTURE = SHARED / "fixtures" / "official_rgb_wf16_d3.npz"
EXACT = restoration.Options(max_pixels=1 << 40, tile=1, overlap=0, bucket=0)  # whole image, exact size


def compare(model, variables, gts, inputs, reference, options: restoration.Options) -> dict:
    """Mean PSNR change vs the ground truth, and mean PSNR(variant, reference), over the images."""
    outs = [restoration.run_images(model, variables, [x], options)[0] for x in inputs]
    loss = [psnr(gt, out) - psnr(gt, ref) for gt, out, ref in zip(gts, outs, reference)]
    to_ref = [mse(ref, out) for out, ref in zip(outs, reference)]  # 0 (identical) averages, inf dB would not
    db = lambda error: float(10 * np.log10(255.0 ** 2 / error)) if error else float("inf")
    return {"psnr_change_db": float(np.mean(loss)), "worst_change_db": float(np.min(loss)),
            "psnr_vs_whole_db": db(np.mean(to_ref)), "worst_vs_whole_db": db(np.max(to_ref))}


def quality_parts(model, variables, images, qf: int, tiles, buckets) -> list[dict]:
    inputs = [jpeg.compress(gt, qf) for gt in images]
    reference = [restoration.run_images(model, variables, [x], EXACT)[0] for x in inputs]
    whole = float(np.mean([psnr(gt, ref) for gt, ref in zip(images, reference)]))
    print(f"whole-image, exact size: PSNR {whole:.3f} dB (JPEG QF {qf}: "
          f"{np.mean([psnr(g, x) for g, x in zip(images, inputs)]):.3f} dB)", flush=True)
    rows = []
    # max_pixels = tile**2 restores every image larger than one tile in tiles (all of LIVE1).
    settings = [("tiles", f"{t}:{o}", restoration.Options(max_pixels=t * t, tile=t, overlap=o, bucket=0))
                for t, o in tiles]
    settings += [("bucket", str(b), restoration.Options(max_pixels=1 << 40, tile=1, overlap=0, bucket=b))
                 for b in buckets]
    for kind, name, options in settings:
        row = {"kind": kind, "setting": name, **compare(model, variables, images, inputs, reference, options)}
        rows.append(row)
        print(f"{kind:6} {name:>8}: PSNR change {row['psnr_change_db']:+.4f} dB (worst {row['worst_change_db']:+.4f}), "
              f"PSNR vs whole {row['psnr_vs_whole_db']:.2f} dB (worst {row['worst_vs_whole_db']:.2f})", flush=True)
    return rows


def random_variables(model: D2LNet, seed: int = 0) -> dict:
    """N(0, 0.05^2) variables of the model's shapes (speed does not depend on the values;
    model.init would compile the whole network first, slowly on CPU)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda leaf: (0.05 * rng.standard_normal(leaf.shape)).astype(np.float32),
                        checkpoints.abstract_variables(model))


def speed(model, variables, images, options: restoration.Options) -> dict:
    start = time.perf_counter()
    restoration.run_images(model, variables, images, options)  # compiles each bucket and batch size
    warm = time.perf_counter() - start
    start = time.perf_counter()
    restoration.run_images(model, variables, images, options)
    seconds = time.perf_counter() - start
    megapixels = sum(im.shape[0] * im.shape[1] for im in images) / 1e6
    return {"wf": model.wf, "depth": model.depth, "images": len(images), "megapixels": megapixels,
            "first_pass_s": warm, "seconds": seconds, "mp_per_s": megapixels / seconds,
            "device": jax.devices()[0].device_kind}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None,
                        help="named model, model folder or workdir (default: the random-weight fixture)")
    parser.add_argument("--parts", default="tiling,speed", help="comma-separated: tiling (includes buckets), speed")
    parser.add_argument("--qf", type=int, default=10)
    parser.add_argument("--tiles", default="256:16,256:32,256:64,512:32,512:64", help="TILE:OVERLAP,...")
    parser.add_argument("--buckets", default="32,64,128")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N LIVE1 images")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args()
    images = [read_image(f, "color") for f in list_image_files(str(LIVE1))][:args.limit]
    model, variables = (pretrained.load_pretrained(args.model) if args.model else convert.from_torch(FIXTURE))
    print(f"model: {args.model or FIXTURE} (D2LNet in_chn={model.in_chn} wf={model.wf} depth={model.depth}); "
          f"{len(images)} LIVE1_color images; device {jax.devices()[0].device_kind}", flush=True)
    results = {"model": str(args.model or FIXTURE), "images": len(images)}
    if "tiling" in args.parts:
        tiles = [tuple(map(int, t.split(":"))) for t in args.tiles.split(",")]
        results["quality"] = quality_parts(model, variables, images, args.qf, tiles,
                                           [int(b) for b in args.buckets.split(",")])
    if "speed" in args.parts:
        results["speed"] = []
        for m in (D2LNet(3, 16, 3), D2LNet(3, 64, 4)):
            row = speed(m, random_variables(m), images[:4] if args.limit is None else images, restoration.Options())
            results["speed"].append(row)
            print(f"speed wf={row['wf']} depth={row['depth']}: {row['mp_per_s']:.3f} MP/s "
                  f"({row['images']} images, {row['megapixels']:.2f} MP in {row['seconds']:.1f} s; "
                  f"first pass with compiles {row['first_pass_s']:.1f} s) on {row['device']}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
