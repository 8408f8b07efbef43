"""The never-worse rule of a model: how strongly to restore a JPEG of each quality.

    python -m benchmarks.never_worse --model color_blind [--photos FILES_OR_FOLDERS] [--crop 384] [--grain 0,8] [--write]
    python -m benchmarks.never_worse --verify [--photos FILES_OR_FOLDERS] [--crop 384] [--grain 0,8]

Each photo (default: the photos that ship with scikit-image, scikit-learn and matplotlib that
are in no training, validation or benchmark set of d2ljax; pip install them), and a generated
one of saturated colour waves (`saturated_waves`; --no-generated leaves it out), whose pixels carry a
JPEG history of their own (a JPEG file, or `jpeg.detect_quality` finds one) is first halved
(means of 2x2 pixels), which leaves none. Each is cut to its central --crop x --crop pixels,
compressed at each --qualities (d2ljax.jpeg.compress) and run through the model
(`restoration.model_outputs`, default Options, as the CLI runs it). A colour model
gets the colour photos; a gray model gets gray photos and the protocol's gray (BT.601 Y) of
colour ones. Each photo also comes with grain: for each nonzero --grain sigma, a copy with
Gaussian noise of that standard deviation added (seeded by its name), because real photos carry
sensor noise or film grain that a model may smooth away at middle qualities, where the JPEG
kept it. For each quality and each strength s in 0, 0.05, ..., 1 what restore makes of the
model's output at strength s (`restoration.finish`: `input + s * (restored - input)`, moved
into the JPEG's quantisation cells) is compared with the photo: the rule's
strength is the one with the best mean PSNR among those that lose nothing on any photo
(worst change >= -MARGIN_DB; s = 0 always qualifies). Printed: per quality the input PSNR, the
full model's mean and worst change, the chosen strength and its mean and worst change; and the
quality `jpeg.detect_quality` finds in each prepared photo (None: no JPEG history, so restore
leaves it unchanged). --write stores the rule in the model folder's model.json
("restore_rule", read by d2ljax.restoration).

--verify checks the rules in place the way the CLI applies them: every named model to choose
from, each prepared photo (colour ones, then the gray ones and the gray of the colour ones)
compressed at each quality and restored from the JPEG file (quality from its tables) and from
its decoded pixels, as a PNG of it would be (quality detected); printed per kind and quality,
the mean and worst PSNR change of each, and how many photos restore returned unchanged as
they are (no JPEG history).
"""
from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import zlib

import numpy as np
from PIL import Image

from d2ljax import checkpoints, imageio, jpeg, pretrained, restoration
from d2ljax.metrics import psnr

QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
# Each photo as it is (0) and with Gaussian grain of standard deviation 8 (in 0-255 units).
GRAIN_SIGMAS = (0, 8)
STRENGTHS = np.round(np.arange(0, 21) / 20, 2)
# A strength qualifies when no photo loses more than this (the criterion allows 0.02 dB).
MARGIN_DB = 0.01
# Photos shipped in Python packages, none in BSDS500, LIVE1, classic5 or d2ljax/assets/photos
# (which holds scikit-image's astronaut, chelsea, coffee and rocket): package -> data folder, files.
# color.png, a colour wheel, stands for clean, smooth, saturated colour, where the small models'
# own error exceeds what a good JPEG leaves.
PACKAGE_PHOTOS = {
    "skimage": ("data", ("motorcycle_left.png", "retina.jpg", "ihc.png", "color.png", "camera.png", "moon.png")),
    "sklearn": ("datasets/images", ("china.jpg", "flower.jpg")),
    "matplotlib": ("mpl-data/sample_data", ("grace_hopper.jpg",)),
}
GENERATED_NAME = "saturated_waves"


def saturated_waves(size: int = 384, seed: int = 1) -> np.ndarray:
    """Clean colour waves at full saturation: per channel sin(u(x) + phase) * cos(v(y)) around 128
    with amplitude 90, the period of u falling from 96 to 16 pixels across the photo and that of v
    rising from 16 to 96, the phases drawn from seed. Photos rarely hold such colour, yet it is
    where the small models lose most against a good JPEG; the wheel in PACKAGE_PHOTOS is smooth."""
    t = np.arange(size) / size
    sweep = 2 * np.pi * size * (t / 96 + (1 / 16 - 1 / 96) * t ** 2 / 2)    # phase of a period 96 -> 16
    u, v = sweep, sweep[::-1]
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, 3)
    waves = [128 + 90 * np.sin(u[None, :] + p) * np.cos(v[:, None]) for p in phases]
    return np.round(np.stack(waves, -1)).astype(np.uint8)


def default_photos() -> list[str]:
    """The PACKAGE_PHOTOS of the packages that are installed."""
    paths = []
    for package, (folder, names) in PACKAGE_PHOTOS.items():
        try:
            module = importlib.import_module(package)
        except ImportError:
            print(f"{package} is not installed: its photos are left out")
            continue
        paths += [os.path.join(os.path.dirname(module.__file__), folder, name) for name in names]
    if not paths:
        raise SystemExit("error: no --photos and none of scikit-image, scikit-learn, matplotlib installed")
    return paths


def central_crop(image: np.ndarray, size: int) -> np.ndarray:
    top, left = (max(d - size, 0) // 2 for d in image.shape[:2])
    return image[top:top + size, left:left + size]


def halved(image: np.ndarray) -> np.ndarray:
    """Means of 2x2 pixels, rounded (an odd last row or column dropped)."""
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    quads = image[:h, :w].astype(np.float64).reshape(h // 2, 2, w // 2, 2, *image.shape[2:])
    return np.round(quads.mean(axis=(1, 3))).astype(np.uint8)


def clean_photo(path: str) -> np.ndarray:
    """The photo, halved when it carries a JPEG history of its own."""
    decoded = imageio.read(path)
    if decoded.quantization is not None or jpeg.detect_quality(decoded.pixels) is not None:
        return halved(decoded.pixels)
    return decoded.pixels


def with_grain(image: np.ndarray, sigma: float, name: str) -> np.ndarray:
    """The image plus Gaussian noise of standard deviation sigma, seeded by name, rounded and clipped."""
    noise = np.random.default_rng(zlib.crc32(name.encode())).normal(0, sigma, image.shape)
    return np.clip(np.round(image + noise), 0, 255).astype(np.uint8)


def photos_for(paths: list[str], channels: int, crop: int, grain=GRAIN_SIGMAS,
               generated: bool = True) -> dict[str, np.ndarray]:
    """name -> the clean photo as the model's kind (colour photos for colour models, gray files
    or the Y of colour files for gray ones), and 'name+grainS' -> it with grain of sigma S; the
    files, then (generated) saturated_waves."""
    sources = {os.path.basename(path): clean_photo(path) for path in paths}
    if generated:
        sources[GENERATED_NAME] = saturated_waves()
    out = {}
    for source, image in sources.items():
        if image.ndim == 2 and channels == 3:
            continue
        image = central_crop(imageio.to_channels(image, channels), crop)
        image = image[..., 0] if channels == 1 else image
        for sigma in grain:
            name = source + (f"+grain{sigma:g}" if sigma else "")
            out[name] = with_grain(image, sigma, name) if sigma else image
    return out


def measure(entry: pretrained.ModelEntry, photos: dict[str, np.ndarray], qualities) -> dict:
    """quality -> strength -> per-photo PSNR change (dB) against the compressed input."""
    changes = {}
    for qf in qualities:
        per_strength = {float(s): [] for s in STRENGTHS}
        for name, photo in photos.items():
            with Image.open(io.BytesIO(jpeg.encode(photo, qf))) as file:  # as restore reads a JPEG file
                compressed = restoration.as_photo(file, qf)
            restored = restoration.model_outputs(entry, [compressed])[0]
            before = psnr(photo, compressed.pixels)
            for s in STRENGTHS:
                after = psnr(photo, restoration.finish(compressed, restored, float(s)))
                per_strength[float(s)].append(after - before)
        changes[qf] = per_strength
        print(f"  QF {qf}: measured", flush=True)
    return changes


def choose_strength(per_strength: dict[float, list[float]]) -> float:
    """The strength with the best mean change among those whose worst change >= -MARGIN_DB."""
    fair = [s for s, c in per_strength.items() if min(c) >= -MARGIN_DB]
    return max(fair, key=lambda s: (np.mean(per_strength[s]), -s))


def verify(paths: list[str], crop: int, grain, qualities, generated: bool) -> None:
    """The CLI's choice and rules on the photos (see the module docstring)."""
    entries = restoration.model_entries()
    print("| kind | QF | as a JPEG file: mean / worst change | as PNG pixels: mean / worst change |")
    print("|---|---|---|---|")
    for kind, channels in (("color", 3), ("gray", 1)):
        photos = list(photos_for(paths, channels, crop, grain, generated).values())
        kept = sum(np.array_equal(restoration.restore(p, entries), p) for p in photos)
        for qf in qualities:
            from_file, from_pixels = [], []
            for photo in photos:
                decoded = jpeg.compress(photo, qf)
                before = psnr(photo, decoded)
                with Image.open(io.BytesIO(jpeg.encode(photo, qf))) as compressed:
                    from_file.append(psnr(photo, np.asarray(restoration.restore(compressed, entries))) - before)
                from_pixels.append(psnr(photo, restoration.restore(decoded, entries)) - before)
            print(f"| {kind} | {qf} | {np.mean(from_file):+.3f} / {min(from_file):+.3f} "
                  f"| {np.mean(from_pixels):+.3f} / {min(from_pixels):+.3f} |", flush=True)
        print(f"| {kind} | none | {kept} of {len(photos)} unchanged | |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="color_blind", help="named model, model folder or training workdir")
    parser.add_argument("--photos", nargs="+", help="photo files or folders (default: PACKAGE_PHOTOS)")
    parser.add_argument("--crop", type=int, default=384, help="central crop side in pixels (CPU time)")
    parser.add_argument("--grain", default=",".join(map(str, GRAIN_SIGMAS)),
                        help="grain sigmas, 0 for the photo as it is")
    parser.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    parser.add_argument("--no-generated", dest="generated", action="store_false",
                        help=f"leave out the generated photo ({GENERATED_NAME})")
    parser.add_argument("--write", action="store_true", help="store the rule in the model folder's model.json")
    parser.add_argument("--verify", action="store_true", help="check the rules in place through the CLI's path")
    args = parser.parse_args(argv)
    paths = imageio.list_image_files(args.photos) if args.photos else default_photos()
    qualities = [jpeg.check_quality(int(q), "--qualities") for q in args.qualities.split(",")]
    grain = [float(g) for g in args.grain.split(",")]
    if args.verify:
        return verify(paths, args.crop, grain, qualities, args.generated)
    entry = pretrained.model_entry(args.model)
    photos = photos_for(paths, entry.in_chn, args.crop, grain, args.generated)
    print(f"{entry.describe()} on {len(photos)} photos ({', '.join(photos)}), central {args.crop}x{args.crop}")
    for name, photo in photos.items():
        print(f"  {name} prepared: detect_quality -> {jpeg.detect_quality(photo)}")
    changes = measure(entry, photos, qualities)
    rule = {}
    print("| QF | input PSNR | model: mean / worst change | strength | rule: mean / worst change |")
    print("|---|---|---|---|---|")
    for qf, per_strength in changes.items():
        strength = choose_strength(per_strength)
        rule[str(qf)] = strength
        before = np.mean([psnr(p, jpeg.compress(p, qf)) for p in photos.values()])
        full, chosen = per_strength[1.0], per_strength[strength]
        print(f"| {qf} | {before:.2f} | {np.mean(full):+.3f} / {min(full):+.3f} | {strength:.2f} "
              f"| {np.mean(chosen):+.3f} / {min(chosen):+.3f} |")
    print("restore_rule:", json.dumps(rule))
    if args.write:
        names = list(dict.fromkeys(n.split("+grain")[0] for n in photos))
        sigmas = ", ".join(f"{g:g}" for g in grain if g)
        note = (f"benchmarks/never_worse.py on {len(names)} photos ({', '.join(names)})"
                + (f", each also with Gaussian grain of sigma {sigmas}" if sigmas else "")
                + f", central {args.crop}x{args.crop}")
        print(f"wrote restore_rule to {write_rule(args.model, rule, note)}")


def write_rule(model: str, rule: dict, note: str) -> str:
    """Stores the rule (and how it was measured) in the model folder's model.json; its path."""
    path = os.path.join(pretrained.resolve(model), checkpoints.MODEL_JSON)
    with open(path) as f:
        metadata = json.load(f)
    metadata.update(restore_rule=rule, restore_rule_measured=note)
    with open(path, "w") as f:
        json.dump(metadata, f, indent=2)
        f.write("\n")
    return path


if __name__ == "__main__":
    main()
