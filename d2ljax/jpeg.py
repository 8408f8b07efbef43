"""The protocol's JPEG degradation, and the quality factor of an existing JPEG.

`compress` is the network input of docs/protocol.md: libjpeg-turbo through Pillow,
IJG tables scaled by QF, 4:2:0 for colour, one component for gray, accurate integer DCT and
fancy upsampling (Pillow's decoder defaults). `estimate_quality` reads a file's quantisation
tables back to the IJG quality that made them, so a photo can be matched to a model's QF;
`detect_quality` finds the same from the pixels alone (a PNG or an array that was once a JPEG).
"""
from __future__ import annotations

import dataclasses
import io
import os
from typing import Optional, Union

import numpy as np
from PIL import Image
from scipy.fft import dctn, idctn

from d2ljax.imageio import ImageError, opened

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
    with opened(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source, name) as image:
        if image.format != "JPEG":
            raise ImageError(f"{name}: not a JPEG image (format {image.format})")
        return image.quantization, name


def estimate_quality(source: Union[str, os.PathLike, bytes, Image.Image]) -> int:
    """The IJG quality 1..100 whose scaled standard tables equal the JPEG's own (`tables_quality`)."""
    tables, name = _quantization_tables(source)
    return tables_quality(tables, name)


def tables_quality(tables: dict, name: str = "<image>") -> int:
    """The IJG quality 1..100 whose scaled standard tables equal these quantisation tables.

    Luminance (table 0) and, when present, chrominance (table 1) are compared. Tables made by
    other encoders match no quality exactly; then the nearest in mean |log ratio| is returned
    (a scale-free distance, as quality scales the tables multiplicatively).
    """
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


# --- a JPEG history in the pixels ----------------------------------------------------------
# JFIF's full-range luma (what a JPEG encoder quantises), level-shifted as the encoder does.
JFIF_LUMA = np.array([0.299, 0.587, 0.114])
# The 4x4 lowest DCT frequencies (row-major indices into the 8x8 block): where a photo's
# coefficients are large enough to show the quantisation step.
LOW_FREQUENCIES = np.array([u * 8 + v for u in range(4) for v in range(4)])
MAX_BLOCKS = 4096  # blocks examined (evenly spread), enough for a stable score
MIN_SAMPLES = 20  # non-zero coefficients a frequency needs to count
MIN_FREQUENCIES = 4  # frequencies that must count for a quality to be scored
# Score above which the pixels carry a JPEG history. Measured on 14 photos that ship with
# scikit-image (central 512x512): never-compressed ones score <= 0.02; their JPEGs of quality
# 10-70 score >= 0.3 (one scanned text page at QF 70 was missed), and some at QF 90-98 are
# missed (then left unchanged, as the measured rules leave QF 95 anyway).
HISTORY_SCORE = 0.2


def jfif_luma(image: np.ndarray) -> np.ndarray:
    """float64 HxW luma of uint8 HxW, HxWx1 or HxWx3, minus 128 (the encoder's level shift)."""
    planes = image.astype(np.float64)
    if planes.ndim == 3:
        planes = planes @ JFIF_LUMA if planes.shape[-1] == 3 else planes[..., 0]
    return planes - 128.0


def grid_offset(luma: np.ndarray) -> tuple[int, int]:
    """(row, column) where the 8x8 grid starts: the phase with the largest mean step between
    neighbouring rows (columns), which is where block edges lie."""
    steps_down = np.abs(np.diff(luma, axis=0)).mean(axis=1)  # entry j: rows j, j + 1
    steps_right = np.abs(np.diff(luma, axis=1)).mean(axis=0)
    return tuple((int(np.argmax([s[p::8].mean() for p in range(8)])) + 1) % 8 for s in (steps_down, steps_right))


def block_coefficients(luma: np.ndarray) -> np.ndarray:
    """The orthonormal 8x8 DCT (JPEG's) of up to MAX_BLOCKS whole blocks on the image's grid,
    as blocks x LOW_FREQUENCIES."""
    rows, cols = whole_blocks(luma.shape, grid_offset(luma))
    blocks = to_blocks(luma[rows, cols]).reshape(-1, 8, 8)
    if len(blocks) > MAX_BLOCKS:
        blocks = blocks[np.linspace(0, len(blocks) - 1, MAX_BLOCKS).astype(int)]
    return dctn(blocks, axes=(1, 2), norm="ortho").reshape(-1, 64)[:, LOW_FREQUENCIES]


def history_scores(coefficients: np.ndarray) -> np.ndarray:
    """Per quality 1..100, how well the coefficients sit on multiples of its IJG luminance
    steps: the mean over frequencies of mean cos(2 pi c / step) over the coefficients that do
    not quantise to 0 (1: exactly on the grid; about 0 or less for a photo never quantised).
    -1 where fewer than MIN_FREQUENCIES frequencies have MIN_SAMPLES such coefficients."""
    scores = np.full(len(QUALITIES), -1.0)
    for i, steps in enumerate(ijg_table(IJG_LUMINANCE, QUALITIES)[:, LOW_FREQUENCIES]):
        counted = np.abs(coefficients) >= steps / 2
        n = counted.sum(axis=0)
        cosines = np.where(counted, np.cos(2 * np.pi * coefficients / steps), 0.0).sum(axis=0)
        usable = n >= MIN_SAMPLES
        if usable.sum() >= MIN_FREQUENCIES:
            scores[i] = np.mean(cosines[usable] / n[usable])
    return scores


def detect_quality(image: np.ndarray) -> int | None:
    """The IJG quality of a JPEG the uint8 pixels were once decoded from, None if they show none.

    A decoded JPEG's 8x8 DCT coefficients (on its grid) sit near multiples of the quantisation
    steps; a photo never quantised shows no such lattice (after Fan and de Queiroz, 2003:
    the grid from where the blocking steps lie, the steps from the coefficients). Only the
    luminance steps of the IJG tables are tried; the best-scoring quality is returned when its
    score exceeds HISTORY_SCORE.
    """
    luma = jfif_luma(np.asarray(image))
    if min(luma.shape) < 16:
        return None
    scores = history_scores(block_coefficients(luma))
    best = int(np.argmax(scores))
    return int(QUALITIES[best]) if scores[best] > HISTORY_SCORE else None


# --- consistency with the JPEG's quantisation ----------------------------------------------
# EXIF orientation -> how the upright pixels' axes relate to the stored ones (imageio.UPRIGHT):
# (rows and columns swapped, upright rows reversed, upright columns reversed).
ORIENTATION_AXES = {1: (False, False, False), 2: (False, False, True), 3: (False, True, True),
                    4: (False, True, False), 5: (True, False, False), 6: (True, False, True),
                    7: (True, True, True), 8: (True, True, False)}
# Steps of 1 are as fine as the decoded pixels' rounding: which multiple a coefficient was
# cannot be told, so they are left alone.
MIN_STEP = 2
# A grid is used only where the pixels show it: a `lattice_fit` of at least MIN_FIT (1: the
# coefficients exactly on multiples of the steps; about 0 for pixels off the grid or never
# quantised by its table), judged on at least MIN_TESTED coefficients.
MIN_FIT = 0.5
MIN_TESTED = 64
# Pixels' quality may be a step or two off (tables that agree at low frequencies tie in
# `detect_quality`): `pixel_grid` tries this many qualities either side.
QUALITY_SEARCH = 2


@dataclasses.dataclass(frozen=True, eq=False)
class Grid:
    """A decoded JPEG's 8x8 luma blocks in its upright pixels: the 64 luminance quantisation
    steps (natural order) and the (row, column) where the first whole block starts."""
    luma_table: np.ndarray
    offset: tuple[int, int] = (0, 0)

    @property
    def steps(self) -> np.ndarray:
        """The table as 8x8 float steps, to divide block coefficients by."""
        return np.asarray(self.luma_table, dtype=np.float64).reshape(8, 8)


def whole_blocks(shape: tuple[int, ...], offset: tuple[int, int]) -> tuple[slice, slice]:
    """The rows and columns of an H x W `shape` that whole 8x8 blocks of a grid starting at `offset` cover."""
    return tuple(slice(start, start + max(size - start, 0) // 8 * 8) for start, size in zip(offset, shape))


def to_blocks(plane: np.ndarray) -> np.ndarray:
    """(H/8, W/8, 8, 8) blocks of an H x W plane (multiples of 8)."""
    rows, cols = plane.shape[0] // 8, plane.shape[1] // 8
    return plane.reshape(rows, 8, cols, 8).swapaxes(1, 2)


def block_dct(image: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """The orthonormal 8x8 DCT (JPEG's) of the level-shifted luma of uint8 HxW or HxWx3 `image`,
    per whole block of the grid starting at `offset`: (H/8, W/8, 8, 8)."""
    rows, cols = whole_blocks(image.shape, offset)
    return dctn(to_blocks(jfif_luma(image)[rows, cols]), axes=(2, 3), norm="ortho")


def clipped_blocks(image: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """(H/8, W/8, 1, 1): whether each whole block holds a 0 or 255 in any channel. There the
    decoder clipped, so the pixels no longer show the quantised coefficients."""
    rows, cols = whole_blocks(image.shape, offset)
    extreme = (image == 0) | (image == 255)
    extreme = extreme.any(axis=-1) if extreme.ndim == 3 else extreme
    return to_blocks(extreme[rows, cols]).any(axis=(2, 3), keepdims=True)


def on_lattice(coefficients: np.ndarray, steps: np.ndarray, clipped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(multiples, usable): each coefficient's nearest multiple k of its step q, and whether it
    tells k: q >= MIN_STEP, its block not clipped, and within q/4 of k q."""
    multiples = np.round(coefficients / steps)
    usable = (steps >= MIN_STEP) & ~clipped & (np.abs(coefficients - multiples * steps) <= steps / 4)
    return multiples, usable


def lattice_fit(image: np.ndarray, grid: Grid) -> Optional[float]:
    """How well the pixels' coefficients sit on multiples of the grid's steps (`fit_of`)."""
    return fit_of(block_dct(image, grid.offset), clipped_blocks(image, grid.offset), grid.steps)


def fit_of(coefficients: np.ndarray, clipped: np.ndarray, steps: np.ndarray) -> Optional[float]:
    """The mean of cos(2 pi c / q) over the coefficients that could tell their multiple (step >=
    MIN_STEP, block not clipped, not quantised to 0); None below MIN_TESTED of them. A step one
    off scores lower than the right one."""
    tested = (steps >= MIN_STEP) & ~clipped & (np.abs(coefficients) >= steps / 2)
    if tested.sum() < MIN_TESTED:
        return None
    return float(np.mean(np.cos(2 * np.pi * coefficients / steps)[tested]))


def good_fit(fit: Optional[float]) -> bool:
    return fit is not None and fit >= MIN_FIT


def shown(image: np.ndarray, grid: Grid) -> Optional[Grid]:
    """`grid` if the pixels show it (`lattice_fit` >= MIN_FIT), else None."""
    return grid if good_fit(lattice_fit(image, grid)) else None


def file_grid(luma_table, orientation: int, shape: tuple[int, ...]) -> Grid:
    """The Grid of a JPEG file's own luma table (64 steps, natural order) in its pixels turned
    upright by EXIF `orientation` (`shape`: the upright H, W). The file's blocks start at its
    stored pixel (0, 0); an axis that runs reversed upright starts them at its length mod 8, and
    swapped axes transpose the table."""
    swapped, *reversed_axes = ORIENTATION_AXES.get(orientation, ORIENTATION_AXES[1])
    table = np.asarray(luma_table, dtype=np.int64).reshape(8, 8)
    offset = tuple(size % 8 if rev else 0 for size, rev in zip(shape[:2], reversed_axes))
    return Grid((table.T if swapped else table).reshape(64), offset)


def pixel_grid(image: np.ndarray, quality: int) -> Optional[Grid]:
    """The Grid of pixels that were once a JPEG of IJG quality about `quality`: the grid where the
    blocking steps lie (`grid_offset`), and of the scaled standard tables within QUALITY_SEARCH
    of it the one the pixels fit best; None if the pixels do not show it (`shown`)."""
    luma = jfif_luma(image)
    if min(luma.shape) < 16:
        return None
    offset = grid_offset(luma)
    coefficients, clipped = block_dct(image, offset), clipped_blocks(image, offset)  # the same for every table
    candidates = [Grid(ijg_table(IJG_LUMINANCE, q), offset)
                  for q in range(max(quality - QUALITY_SEARCH, 1), min(quality + QUALITY_SEARCH, 100) + 1)]
    fits = [fit_of(coefficients, clipped, grid.steps) for grid in candidates]
    best = max(range(len(candidates)), key=lambda i: -1.0 if fits[i] is None else fits[i])
    return candidates[best] if good_fit(fits[best]) else None


def project_luma(decoded: np.ndarray, restored: np.ndarray, grid: Grid) -> np.ndarray:
    """`restored` with its luma moved into the quantisation cells of the JPEG `decoded` was.

    Both are uint8 HxW or HxWx3 of the same shape. In each whole block of the `grid`, a DCT
    coefficient c of the decoded luma lies near a multiple k q of its step q; the restored luma's
    coefficient is clipped into [(k - 1/2) q, (k + 1/2) q], the values that quantise to the same
    k, where the original photo's coefficient lies too. Projecting onto this convex set moves the
    restored luma closer to the original's (up to the encoder's integer DCT and the final
    rounding), provided the grid is the JPEG's (`shown` checks that). Only coefficients that tell
    their k are clipped (`on_lattice`): blocks the decoder clipped at 0 or 255 and steps of 1 are
    left as they are. A colour image gets the luma change on each of R, G and B, which keeps its
    JFIF chroma.
    """
    rows, cols = whole_blocks(decoded.shape, grid.offset)
    if rows.stop == rows.start or cols.stop == cols.start:
        return restored
    steps = grid.steps
    after = block_dct(restored, grid.offset)
    multiples, usable = on_lattice(block_dct(decoded, grid.offset), steps, clipped_blocks(decoded, grid.offset))
    projected = np.where(usable, np.clip(after, (multiples - 0.5) * steps, (multiples + 0.5) * steps), after)
    blocks = idctn(projected - after, axes=(2, 3), norm="ortho")
    change = np.zeros(decoded.shape[:2])
    change[rows, cols] = blocks.swapaxes(1, 2).reshape(blocks.shape[0] * 8, blocks.shape[1] * 8)
    if restored.ndim == 3:
        change = change[..., None]
    return np.clip(np.round(restored + change), 0, 255).astype(np.uint8)
