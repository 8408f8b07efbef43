"""The protocol's JPEG degradation, and the quality factor of an existing JPEG.

`compress` is the network input of docs/protocol.md: libjpeg-turbo through Pillow,
IJG tables scaled by QF, 4:2:0 for colour, one component for gray, accurate integer DCT and
fancy upsampling (Pillow's decoder defaults). `estimate_quality` reads a file's quantisation
tables back to the IJG quality that made them, so a photo can be matched to a model's QF.
"""
from __future__ import annotations

import io
import os
from typing import Union

import numpy as np
from PIL import Image

from d2ljax.imageio import ImageError

# IJG standard tables (ITU-T T.81 Annex K.1 / K.2), natural (row-major) order, which is also
# the order of Pillow's `.quantization` (tested).
IJG_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.int64)
IJG_CHROMINANCE = np.array([
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32, dtype=np.int64)

QUALITIES = np.arange(1, 101)


def check_quality(qf: int, name: str = "JPEG quality factor") -> int:
    """Returns qf as int if it is an integer quality factor in 1..100, else raises ValueError
    (naming the argument `name`)."""
    if isinstance(qf, bool) or not isinstance(qf, (int, np.integer)) or not 1 <= qf <= 100:
        raise ValueError(f"{name} must be an integer in 1..100, got {qf!r}")
    return int(qf)


def encode(image: np.ndarray, qf: int) -> bytes:
    """The protocol's JPEG file of uint8 HxW / HxWx1 (one component) or HxWx3 (4:2:0) at QF.

    No crop or pad: libjpeg handles sizes that are not multiples of 8 itself.
    """
    qf = check_quality(qf)
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError("JPEG compression needs a uint8 numpy image, got "
                         f"{getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim == 3 and image.shape[-1] == 3:
        pil, options = Image.fromarray(image), {"subsampling": 2}
    elif image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 1):
        pil, options = Image.fromarray(image.reshape(image.shape[:2])), {}
    else:
        raise ValueError(f"JPEG compression needs an HxW, HxWx1 or HxWx3 image, got shape {image.shape}")
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=qf, optimize=False, **options)
    return buffer.getvalue()


def compress(image: np.ndarray, qf: int) -> np.ndarray:
    """The network input: `encode`d at QF and decoded by Pillow (ISLOW, fancy upsampling),
    as uint8 in the input's shape."""
    with Image.open(io.BytesIO(encode(image, qf))) as decoded:
        return np.asarray(decoded, dtype=np.uint8).reshape(image.shape)


def ijg_table(base: np.ndarray, quality: int | np.ndarray) -> np.ndarray:
    """libjpeg's jpeg_quality_scaling + jpeg_add_quant_table (force_baseline) for quality 1..100.

    An array of qualities gives one table per row.
    """
    q = np.asarray(quality, dtype=np.int64)[..., None]
    scale = np.where(q < 50, 5000 // q, 200 - 2 * q)
    return np.clip((base * scale + 50) // 100, 1, 255)


def _quantization_tables(source: Union[str, os.PathLike, bytes, Image.Image]) -> tuple[dict, str]:
    """The quantisation tables of a JPEG file, bytes or opened Pillow JPEG, and a name for errors."""
    if isinstance(source, Image.Image):
        name = getattr(source, "filename", "") or "<image>"
        if source.format != "JPEG" or not getattr(source, "quantization", None):
            raise ImageError(f"{name}: not a JPEG image (format {source.format})")
        return source.quantization, name
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else os.fspath(source)
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: not a readable image ({e})") from None
    with image:
        if image.format != "JPEG":
            raise ImageError(f"{name}: not a JPEG image (format {image.format})")
        return image.quantization, name


def estimate_quality(source: Union[str, os.PathLike, bytes, Image.Image]) -> int:
    """The IJG quality 1..100 whose scaled standard tables equal the JPEG's own.

    Luminance (table 0) and, when present, chrominance (table 1) are compared. Tables made by
    other encoders match no quality exactly; then the nearest in mean |log ratio| is returned
    (a scale-free distance, as quality scales the tables multiplicatively).
    """
    tables, name = _quantization_tables(source)
    if 0 not in tables:
        raise ImageError(f"{name}: the JPEG has no luminance quantisation table")
    candidates = [(np.asarray(tables[0], dtype=np.int64), IJG_LUMINANCE)]
    if 1 in tables:
        candidates.append((np.asarray(tables[1], dtype=np.int64), IJG_CHROMINANCE))
    actual = np.concatenate([t for t, _ in candidates])
    ijg = np.concatenate([ijg_table(base, QUALITIES) for _, base in candidates], axis=1)
    exact = np.flatnonzero(np.all(ijg == actual, axis=1))
    if exact.size:
        return int(QUALITIES[exact[0]])
    distance = np.mean(np.abs(np.log(np.maximum(actual, 1)) - np.log(ijg)), axis=1)
    return int(QUALITIES[np.argmin(distance)])
