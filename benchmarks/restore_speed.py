"""What tiling and size buckets change in `d2ljax.restore`'s output, and how fast it runs.

    python -m benchmarks.restore_speed --model color_qf10 --dataset PATH/TO/LIVE1_color --parts tiling --limit 10
    python -m benchmarks.restore_speed --model color_qf10 --dataset PATH/TO/LIVE1_color --parts speed --limit 2
    python -m benchmarks.restore_speed --model color_qf10 --parts photo          # one 4000x3000 (12 MP) photo
    python -m benchmarks.restore_speed --random_weights 64:4 --parts photo --photo_size 1024x1024   # one tile
    python -m benchmarks.restore_speed --random_weights 64:4 --parts memory

--model is a named model (d2ljax models), a model folder or a training workdir
(default color_qf10); a gray model gets the gray (BT.601 Y) of the images, as evaluate.py's gray
mode does. --dataset is a folder of ground-truth images (default: the sample photos shipped in
d2ljax/assets/photos); --limit keeps its first N images.

tiling: each image is compressed at --qf (d2ljax.jpeg.compress) and restored whole at its exact
size (the reference: what evaluate.py measures), then (a) in tiles of each --tiles TILE:OVERLAP
(max_pixels = TILE**2 forces tiling, bucket 0) and (b) whole but padded to multiples of each
--buckets (as the default Options do for images up to max_pixels). Per setting: the PSNR change
against the ground truth (variant minus reference; negative = worse), mean and worst image, and
PSNR(variant, reference) computed from the mean and the largest MSE over the images.

speed: seconds per image and megapixels per second of `restoration.run_images` with the default
Options on the images, after a first pass that compiles (also reported).

photo: --photo (default: the shipped d2ljax/assets/photos/coffee.png) resized (Lanczos) to
--photo_size, compressed at --qf and restored once with the default Options (tiles of 1024,
overlap 128): the seconds of one tile with compiling, then of the whole photo, compiled.

memory: XLA's temporaries (jax.jit(...).lower(...).compile().memory_analysis()) of the
inference program for one square image of each --memory_sides (what Options.max_pixels bounds).

--random_weights WF:DEPTH times a colour D2LNet of that architecture with random weights instead
of --model (speed does not depend on the weights; its output is no restoration, so it is refused
for tiling).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from d2ljax import checkpoints, imageio, inference, jpeg, pretrained, restoration, testsets
from d2ljax.metrics import mse, psnr, rgb_to_y
from d2ljax.model import D2LNet

SAMPLE_PHOTOS = os.path.join(os.path.dirname(os.path.abspath(restoration.__file__)), "assets", "photos")
# Whole image at its exact size, however large: the reference.
EXACT = restoration.Options(max_pixels=1 << 40, tile=1, overlap=0, bucket=0)


def db(error: float) -> float:
    return float(10 * np.log10(255.0 ** 2 / error)) if error else float("inf")


def compare(model, variables, names, gts, inputs, reference, options: restoration.Options) -> dict:
    """PSNR change vs the ground truth (mean, worst) and PSNR(variant, reference) over the images."""
    outs = [restoration.run_images(model, variables, [x], options)[0] for x in inputs]
    change = [psnr(gt, out) - psnr(gt, ref) for gt, out, ref in zip(gts, outs, reference)]
    to_ref = [mse(ref, out) for out, ref in zip(outs, reference)]  # 0 (identical) averages, inf dB would not
    worst = int(np.argmin(change))
    return {"psnr_change_db": float(np.mean(change)), "worst_change_db": change[worst], "worst_image": names[worst],
            "psnr_vs_whole_db": db(float(np.mean(to_ref))), "worst_vs_whole_db": db(max(to_ref)),
            "identical_images": sum(e == 0 for e in to_ref),
            "per_image": {n: {"change_db": c, "vs_whole_db": db(e)} for n, c, e in zip(names, change, to_ref)}}


def tiling_part(model, variables, names, images, qf: int, tiles, buckets) -> dict:
    inputs = [jpeg.compress(gt, qf) for gt in images]
    reference = [restoration.run_images(model, variables, [x], EXACT)[0] for x in inputs]
    whole = float(np.mean([psnr(gt, ref) for gt, ref in zip(images, reference)]))
    jpeg_db = float(np.mean([psnr(gt, x) for gt, x in zip(images, inputs)]))
    print(f"whole image, exact size: PSNR {whole:.3f} dB (JPEG QF {qf}: {jpeg_db:.3f} dB)", flush=True)
    settings = [("tiles", f"{t}:{o}", restoration.Options(max_pixels=t * t, tile=t, overlap=o, bucket=0))
                for t, o in tiles]
    settings += [("bucket", str(b), restoration.Options(max_pixels=1 << 40, tile=1, overlap=0, bucket=b))
                 for b in buckets]
    rows = []
    for kind, name, options in settings:
        row = {"kind": kind, "setting": name,
               **compare(model, variables, names, images, inputs, reference, options)}
        rows.append(row)
        print(f"{kind:6} {name:>7}: PSNR change {row['psnr_change_db']:+.4f} dB (worst {row['worst_change_db']:+.4f}, "
              f"{row['worst_image']}); PSNR vs whole {row['psnr_vs_whole_db']:.2f} dB "
              f"(worst {row['worst_vs_whole_db']:.2f}; {row['identical_images']} identical)", flush=True)
    return {"qf": qf, "whole_psnr_db": whole, "jpeg_psnr_db": jpeg_db, "settings": rows}


def speed_part(model, variables, images, options: restoration.Options) -> dict:
    start = time.perf_counter()
    restoration.run_images(model, variables, images, options)  # compiles each bucket and batch size
    first = time.perf_counter() - start
    start = time.perf_counter()
    restoration.run_images(model, variables, images, options)
    seconds = time.perf_counter() - start
    megapixels = sum(im.shape[0] * im.shape[1] for im in images) / 1e6
    row = {"images": len(images), "megapixels": megapixels, "first_pass_s": first, "seconds": seconds,
           "s_per_image": seconds / len(images), "mp_per_s": megapixels / seconds}
    print(f"speed: {row['mp_per_s']:.3f} MP/s, {row['s_per_image']:.1f} s per image ({len(images)} images, "
          f"{megapixels:.2f} MP in {seconds:.1f} s; first pass with compiles {first:.1f} s)", flush=True)
    return row


def photo_part(model, variables, image: np.ndarray, size: tuple[int, int], qf: int,
               options: restoration.Options) -> dict:
    width, height = size
    resized = np.asarray(Image.fromarray(image).resize((width, height), Image.LANCZOS))
    photo = jpeg.compress(resized, qf)
    x = photo if photo.ndim == 3 else photo[..., None]
    tile = tuple(restoration.tile_length(n, options.tile, options.overlap, options.bucket) for n in (height, width))
    start = time.perf_counter()
    restoration.run_bucketed(model, variables, [x[:tile[0], :tile[1]]], options)  # compiles the tile's program
    first_tile = time.perf_counter() - start
    start = time.perf_counter()
    restoration.run_images(model, variables, [x], options)
    seconds = time.perf_counter() - start
    count = (len(restoration.tile_starts(height, tile[0], options.overlap))
             * len(restoration.tile_starts(width, tile[1], options.overlap)))
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux
    row = {"width": width, "height": height, "megapixels": width * height / 1e6, "tiles": count,
           "first_tile_s": first_tile, "seconds": seconds, "mp_per_s": width * height / 1e6 / seconds,
           "peak_rss_gib": peak_gib}
    print(f"photo {width}x{height} ({row['megapixels']:.1f} MP, {count} tiles of {tile[1]}x{tile[0]}): "
          f"{seconds:.1f} s ({row['mp_per_s']:.3f} MP/s) after a first tile with compile of {first_tile:.1f} s; "
          f"peak resident memory {peak_gib:.2f} GiB", flush=True)
    return row


def memory_part(model, variables, sides) -> list[dict]:
    def forward(variables, images_uint8):  # inference.apply_batch's program
        return inference.to_uint8(model.apply(variables, images_uint8.astype(jnp.float32) / 255.0)[3])

    rows = []
    for side in sides:
        shape = jax.ShapeDtypeStruct((1, side, side, model.in_chn), jnp.uint8)
        with jax.default_matmul_precision(inference.INFERENCE_PRECISION):  # as inference.apply_batch runs it
            compiled = jax.jit(forward).lower(variables, shape).compile()
        gib = compiled.memory_analysis().temp_size_in_bytes / 2 ** 30
        rows.append({"side": side, "temporaries_gib": gib})
        print(f"memory {side}x{side}: {gib:.2f} GiB of XLA temporaries", flush=True)
    return rows


def random_variables(model: D2LNet, seed: int = 0) -> dict:
    """N(0, 0.05^2) variables of the model's shapes (speed does not depend on the values;
    model.init would compile the whole network first, slowly on CPU)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda leaf: (0.05 * rng.standard_normal(leaf.shape)).astype(np.float32),
                        checkpoints.abstract_variables(model))


def load_images(dataset: str, mode: str, limit: int | None) -> tuple[list[str], list[np.ndarray]]:
    bench = testsets.open_set(dataset)
    bench = testsets.BenchmarkSet(bench.name, bench.path, bench.files[:limit], bench.known)
    pairs = list(testsets.iter_images(bench, mode))
    return [name for name, _ in pairs], [im if im.ndim == 3 else im[..., None] for _, im in pairs]


def parse_size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}")
    return int(width), int(height)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="color_qf10",
                        help="named model, model folder or training workdir (default color_qf10)")
    parser.add_argument("--random_weights", default=None, metavar="WF:DEPTH",
                        help="a colour D2LNet of this architecture with random weights instead of --model "
                             "(speed, photo, memory)")
    parser.add_argument("--dataset", default=SAMPLE_PHOTOS, help="folder of ground-truth images (default: "
                        "the sample photos in d2ljax/assets/photos)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--parts", default="tiling,speed",
                        help="comma-separated: tiling (with buckets), speed, photo, memory (default %(default)s)")
    parser.add_argument("--qf", type=int, default=10)
    parser.add_argument("--tiles", default="256:32,256:64,512:64", help="TILE:OVERLAP,... (default %(default)s)")
    parser.add_argument("--buckets", default="64", help="comma-separated (default %(default)s)")
    parser.add_argument("--photo", default=os.path.join(SAMPLE_PHOTOS, "coffee.png"),
                        help="the photo to enlarge for the photo part (default: the shipped coffee.png)")
    parser.add_argument("--photo_size", type=parse_size, default=(4000, 3000), help="WIDTHxHEIGHT (default 4000x3000)")
    parser.add_argument("--memory_sides", default="512,1024", help="comma-separated (default %(default)s)")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if parts - {"tiling", "speed", "photo", "memory"}:
        parser.error(f"unknown part(s) {sorted(parts - {'tiling', 'speed', 'photo', 'memory'})}")
    if args.random_weights:
        if "tiling" in parts:
            parser.error("--random_weights restores nothing: measure tiling with a trained --model")
        wf, depth = map(int, args.random_weights.split(":"))
        model = D2LNet(3, wf, depth)
        variables, label = random_variables(model), f"random weights, wf {wf}, depth {depth}"
    else:
        model, variables = pretrained.load_pretrained(args.model)
        label = args.model
    mode = "color" if model.in_chn == 3 else "gray"
    names, images = load_images(args.dataset, mode, args.limit) if parts & {"tiling", "speed"} else ([], [])
    device = jax.devices()[0].device_kind
    source = (f"{len(images)} {mode} images of {args.dataset}; " if images else
              f"{mode} photo {args.photo}; " if "photo" in parts else "")
    print(f"model: {label} (D2LNet in_chn={model.in_chn} wf={model.wf} depth={model.depth}); {source}"
          f"device {device}", flush=True)
    results = {"model": label, "wf": model.wf, "depth": model.depth, "dataset": args.dataset,
               "images": names, "device": device}
    if "tiling" in parts:
        tiles = [tuple(map(int, t.split(":"))) for t in args.tiles.split(",") if t]
        buckets = [int(b) for b in args.buckets.split(",") if b]
        results["tiling"] = tiling_part(model, variables, names, images, args.qf, tiles, buckets)
    if "speed" in parts:
        results["speed"] = speed_part(model, variables, images, restoration.Options())
    if "photo" in parts:
        photo = imageio.read_image(args.photo, "color")
        photo = photo if mode == "color" else rgb_to_y(photo)
        results["photo"] = {"file": args.photo, **photo_part(model, variables, photo, args.photo_size, args.qf,
                                                             restoration.Options())}
    if "memory" in parts:
        results["memory"] = memory_part(model, variables, [int(n) for n in args.memory_sides.split(",") if n])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
