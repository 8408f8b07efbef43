"""Makes docs/before_after.png, the README's picture: JPEG, d2ljax's restoration, the original.

    python docs/make_before_after.py [--photo chelsea.png] [--qf 10] [--out docs/before_after.png]

A photo shipped in d2ljax/assets/photos is compressed with the protocol's JPEG at --qf,
restored by `d2ljax.restore` (which picks the shipped model for the estimated quality), and a
crop of the three is shown side by side, enlarged 2x (nearest neighbour, so the pixels and
the JPEG blocks stay as they are). The labels give each image's PSNR on the whole photo.
"""
from __future__ import annotations

import argparse
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import d2ljax
from d2ljax.imageio import SAMPLE_PHOTOS_DIR, side_by_side

CROP = (150, 40, 150 + 144, 40 + 144)  # left, top, right, bottom in chelsea.png: an eye and fur
ZOOM = 2
LABEL_HEIGHT = 22


def labelled(image: Image.Image, text: str) -> np.ndarray:
    """The image with a white band below it holding `text`."""
    canvas = Image.new("RGB", (image.width, image.height + LABEL_HEIGHT), "white")
    canvas.paste(image, (0, 0))
    ImageDraw.Draw(canvas).text((4, image.height + 4), text, fill="black", font=ImageFont.load_default(size=14))
    return np.asarray(canvas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photo", default="chelsea.png", help="a photo in d2ljax/assets/photos")
    parser.add_argument("--qf", type=int, default=10)
    parser.add_argument("--out", default="docs/before_after.png")
    args = parser.parse_args()
    original = np.asarray(Image.open(SAMPLE_PHOTOS_DIR / args.photo).convert("RGB"))
    jpeg_file = d2ljax.jpeg.encode(original, args.qf)
    with Image.open(io.BytesIO(jpeg_file)) as jpeg:
        restored, info = d2ljax.restore(jpeg, return_info=True)
        jpeg_pixels = np.asarray(jpeg.convert("RGB"))
    restored = np.asarray(restored)
    panels = [(jpeg_pixels, f"JPEG, quality {args.qf}: {d2ljax.psnr(original, jpeg_pixels):.2f} dB"),
              (restored, f"d2ljax ({info.model}): {d2ljax.psnr(original, restored):.2f} dB"),
              (original, "original")]
    crops = [labelled(Image.fromarray(pixels).crop(CROP).resize(
        ((CROP[2] - CROP[0]) * ZOOM, (CROP[3] - CROP[1]) * ZOOM), Image.Resampling.NEAREST), text)
        for pixels, text in panels]
    Image.fromarray(side_by_side(crops, gap=6)).save(args.out, optimize=True)
    print(f"{args.out}: {', '.join(text for _, text in panels)}")


if __name__ == "__main__":
    main()
