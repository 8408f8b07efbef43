"""Finding and reading image files, with one-line errors for bad input.

Used by the benchmark sets, the training pipeline and photo restoration, so that a
wrong path, an empty folder or a broken file is reported the same way everywhere.
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import re
from pathlib import Path
from typing import BinaryIO, Iterable, Optional, Sequence, Union

import numpy as np
from PIL import Image

from d2ljax.metrics import rgb_to_y

# The four photos shipped with the package: the quickstart's data and the validation photos.
SAMPLE_PHOTOS_DIR = Path(__file__).resolve().parent / "assets" / "photos"
# A spec naming the shipped photos: "shipped:" all of them, "shipped:NAME" a file or glob among
# them (so configs name them without importing d2ljax).
SHIPPED = "shipped:"
# The two kinds of image d2ljax trains, evaluates and restores, and their channels (gray: the
# protocol's BT.601 Y).
MODES = {"gray": 1, "color": 3}
# Pillow modes read as gray (HxW); every other 8-bit mode is read as RGB (CMYK, YCbCr, palettes).
GRAY_MODES = ("1", "L", "LA")
# Modes with a transparency channel, kept as `Decoded.alpha` (a palette's transparency too).
ALPHA_MODES = ("LA", "RGBA", "PA")
ORIENTATION = 0x0112  # the EXIF tag
# EXIF orientation -> the transpose that turns the pixels upright (as ImageOps.exif_transpose).
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}
IMAGE_EXTENSIONS = (".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")


class ImageError(ValueError):
    """An input image that cannot be used; the message is one line naming the file."""


def expand_spec(spec: str) -> str:
    """A file, folder or glob spec as a path: `SHIPPED` resolved, then $VARIABLES and ~ expanded.

    Raises FileNotFoundError naming a variable that is not set (configs name their data as
    $D2LJAX_DATA/..., see README.md, "Data").
    """
    if spec.startswith(SHIPPED):
        return str(SAMPLE_PHOTOS_DIR / spec[len(SHIPPED):])
    path = os.path.expanduser(os.path.expandvars(spec))
    if (unset := re.search(r"\$\{?(\w+)", path)) and not os.path.exists(path):
        raise FileNotFoundError(f"{spec}: the environment variable {unset.group(1)} is not set: set it to your "
                                "data folder, or name the data itself (--config.train_data, --config.val_data)")
    return path


def list_image_files(specs: str | Sequence[str]) -> list[str]:
    """Expands files, folders and globs (a string may hold several, comma-separated; see
    `expand_spec` for the shipped photos and $VARIABLES).

    Folders are listed (not recursively) for files with an image extension; the result is
    sorted within each spec and free of repeats. Raises FileNotFoundError naming the spec
    when one matches nothing, so a typo is caught before any work starts.
    """
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s]
    files: list[str] = []
    for spec in specs:
        spec = expand_spec(spec)
        if os.path.isdir(spec):
            found = sorted(
                os.path.join(spec, f) for f in os.listdir(spec)
                if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
            if not found:
                raise FileNotFoundError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {spec}")
        elif os.path.isfile(spec):
            found = [spec]
        else:
            found = sorted(f for f in glob.glob(spec) if os.path.isfile(f))
            if not found:
                raise FileNotFoundError(f"no such file, folder or glob match: {spec}")
        files.extend(f for f in found if f not in files)
    return files


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 HxW, HxWx1 or HxWx3 as HxWx(channels): gray is repeated to colour, colour becomes
    the protocol's gray (the rounded BT.601 Y, what gray models are trained on)."""
    image = image if image.ndim == 3 else image[..., None]
    if image.shape[-1] == channels:
        return image
    return np.repeat(image, channels, axis=-1) if image.shape[-1] == 1 else rgb_to_y(image)[..., None]


def pad_reflect(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pads HxWxC at the bottom and right to height x width (as D2LNet pads itself)."""
    h, w = image.shape[:2]
    return np.pad(image, ((0, height - h), (0, width - w), (0, 0)), mode="reflect")


def mode_channels(mode: str) -> int:
    """The image channels of a mode ('gray' 1, 'color' 3); ValueError for any other mode."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {tuple(MODES)}, got {mode!r}")
    return MODES[mode]


def check_pixel_format(image: Image.Image, path: str) -> None:
    """Raises ImageError for what d2ljax cannot restore: 16-bit, float, animated, empty.
    (CMYK is read as RGB by Pillow's conversion.)"""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F") or image.mode.startswith("I;16"):
        raise ImageError(f"{path}: {image.mode} (16-bit or float) images are not supported; convert to 8 bits per channel")
    if getattr(image, "n_frames", 1) > 1:
        raise ImageError(f"{path}: animated or multi-frame images are not supported")
    if image.width == 0 or image.height == 0:
        raise ImageError(f"{path}: the image is empty (zero width or height)")


@dataclasses.dataclass(frozen=True)
class Decoded:
    """One read of an image: upright pixels and what travels with them."""
    pixels: np.ndarray  # uint8 HxW (gray) or HxWx3 (RGB), EXIF orientation applied
    alpha: Optional[np.ndarray] = None  # uint8 HxW transparency, when the image has one
    quantization: Optional[dict] = None  # a JPEG's quantisation tables
    icc_profile: Optional[bytes] = None
    exif: Optional[bytes] = None  # orientation reset to 1
    orientation: int = 1  # the EXIF orientation the pixels were turned upright from
    luma_table: Optional[list] = None  # a gray or colour JPEG's table of its first component (the luma)

    @property
    def is_gray(self) -> bool:
        return self.pixels.ndim == 2


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ALPHA_MODES or (image.mode == "P" and "transparency" in image.info)


def luma_table(image: Image.Image) -> Optional[list]:
    """The quantisation table of a gray or colour JPEG's first component, its luma unless the
    file codes RGB (Adobe transform 0); None for anything else (CMYK, not a JPEG)."""
    if image.format != "JPEG" or image.mode not in ("L", "RGB") or image.info.get("adobe_transform") == 0:
        return None
    layers = getattr(image, "layer", None)
    return image.quantization.get(layers[0][3] if layers else 0)


def decode(image: Image.Image, name: str) -> Decoded:
    """The pixels and metadata of an opened Pillow image (ImageError for what cannot be used):
    gray modes as HxW, anything else as RGB (CMYK included), turned upright by its EXIF
    orientation, alpha split off."""
    check_pixel_format(image, name)
    image.load()
    alpha = has_alpha(image)
    target = "L" if image.mode in GRAY_MODES else "RGB"
    converted = image.convert(target + "A" if alpha else target)
    exif = image.getexif()
    orientation = exif.get(ORIENTATION, 1)
    if orientation in UPRIGHT:
        converted = converted.transpose(UPRIGHT[orientation])
    if ORIENTATION in exif:
        exif[ORIENTATION] = 1
    array = np.asarray(converted, dtype=np.uint8)
    pixels = array[..., :-1].reshape(array.shape[:2] + (() if target == "L" else (3,))) if alpha else array
    return Decoded(pixels, array[..., -1] if alpha else None,
                   image.quantization if image.format == "JPEG" else None,
                   image.info.get("icc_profile") or None, exif.tobytes() if exif else None, orientation,
                   luma_table(image))


@contextlib.contextmanager
def opened(source: Union[str, os.PathLike, BinaryIO], name: str):
    """`Image.open(source)` as a context in which anything Pillow raises for a missing, broken
    or suspicious file becomes an ImageError, one line naming `name`."""
    try:
        with Image.open(source) as image:
            yield image
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: refused as a possible decompression bomb ({e})") from None
    except Exception as e:  # Pillow raises many kinds for broken files
        raise ImageError(f"{name}: not a readable image ({e})") from None


def read(source: Union[str, os.PathLike, BinaryIO], name: Optional[str] = None) -> Decoded:
    """Opens and decodes an image file (or a binary file object) once; raises ImageError with one
    line naming it (`name`, else the path) for anything unusable."""
    name = name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<image>")
    with opened(source, name) as image:
        return decode(image, name)


def read_image(path: Union[str, os.PathLike, BinaryIO], mode: str | None = None) -> np.ndarray:
    """Reads an 8-bit image (`read`) as uint8 HxW (gray) or HxWx3 (colour), alpha left out.

    `mode` None keeps the file's own kind (gray stays gray, anything else becomes RGB);
    'gray' or 'color' force one. Gray from colour is NOT done here (the protocol's gray is
    the rounded BT.601 Y, see d2ljax.metrics.rgb_to_y): asking for 'gray' from a colour
    file raises. Raises ImageError with one line naming the file for anything unusable.
    """
    decoded = read(path)
    if mode is not None and mode_channels(mode) == 1 and not decoded.is_gray:
        raise ImageError(f"{path}: a colour image where gray was asked for")
    return to_channels(decoded.pixels, 3) if mode == "color" else decoded.pixels


def iter_readable(paths: Iterable[str], mode: str | None = None):
    """Yields (path, image or None, error or None) so batch jobs can skip and report bad files."""
    for path in paths:
        try:
            yield path, read_image(path, mode), None
        except ImageError as e:
            yield path, None, str(e)


def side_by_side(images: Sequence[np.ndarray], size: int = 0, gap: int = 4) -> np.ndarray:
    """uint8 images of one shape (HxW or HxWxC) in a row, white gaps between them; `size` > 0
    cuts the same central size x size crop from each first (for comparisons at full scale)."""
    if size:
        top, left = (max(d - size, 0) // 2 for d in images[0].shape[:2])
        images = [im[top:top + size, left:left + size] for im in images]
    spacer = np.full((images[0].shape[0], gap, *images[0].shape[2:]), 255, np.uint8)
    row = [part for im in images for part in (spacer, im)][1:]
    return np.concatenate(row, axis=1)
