"""What training sample i is: the recipe, the images it is cut from, and every random draw.

Both input pipelines make their batches from this module, so they give the same batches bit
for bit: `d2ljax.data` runs the per-sample ops in a tf.data graph, `d2ljax.grain_data` runs
the NumPy/Pillow ops below in grain workers (no TensorFlow). They differ only in how they
execute a sample, never in what it is.

A sample is drawn from (seed, process_index, i) alone: counter-based hashes, no generator
state, so resuming at step k gives exactly the batches an uninterrupted run would have seen,
whatever the pipeline, thread or worker count. Each epoch visits this process's images in a
fresh permutation. Sample i is then: a crop of `Recipe.crop` pixels at a drawn position, one of
the 8 flips/rotations, gray (the protocol's rounded BT.601 Y) or colour, a JPEG round trip at a
drawn quality (the protocol's: libjpeg-turbo, 4:2:0 for colour, one component for gray,
accurate integer DCT), and with misalignment both images cut to the patch at a drawn offset.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import importlib.util
import io
import logging
import os
import sys
import tempfile
import weakref
from typing import NamedTuple, Optional, Sequence

import numpy as np
from PIL import Image

from d2ljax import imageio, jpeg
from d2ljax.imageio import MODES, SHIPPED, ImageError, list_image_files, pad_reflect, to_channels

log = logging.getLogger(__name__)

PIPELINES = ("tf.data", "grain")
TFDS_PREFIX = "tfds:"
# Largest grid offset of the misaligned crop (FBCNN crops P + 8, then P at an offset in [0, 8]).
MISALIGN = 8
# Formats TensorFlow decodes in-graph; images decoded per sample (over the cache budget) must
# be one of them, in both pipelines, so that both see the same image list.
TF_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")
# Pillow modes TensorFlow decodes to the same pixels as Pillow (not CMYK), which per-sample
# decoding also needs, with no EXIF rotation (TensorFlow applies none).
TF_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "YCbCr")
# Stores at least this large reach grain's worker processes as a memory-mapped file, not a copy.
SHARE_BY_FILE_BYTES = 64 * 2**20


def default_pipeline() -> str:
    """'tf.data' (the reference pipeline) when TensorFlow is installed, else 'grain'."""
    return "tf.data" if importlib.util.find_spec("tensorflow") is not None else "grain"


# ----------------------------------------------------------------------------- the recipe
@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a training pair is made; both pipelines take exactly these settings.

    patch_size: side P of the square patches.
    mode: 'color' (RGB) or 'gray' (one channel: gray files as they are, colour ones as the
      protocol's rounded BT.601 Y; compressed as one-component JPEGs).
    qf: the JPEG quality factor, or a set of them drawn uniformly per sample.
    qf_range: (lo, hi), inclusive: with probability qf_range_prob the QF is drawn uniformly
      from it instead of from `qf` (FBCNN's blind recipe, colour: qf=(10, 20, ..., 60),
      qf_range=(8, 96), qf_range_prob=0.25).
    misalign: probability that the patch is off the 8x8 JPEG grid: when > 0, crops are P + 8,
      compressed, then both images cut to P at offsets in [0, 8] drawn with this probability,
      else at 0 (FBCNN: 0.5).
    seed: the data seed; sample i of a process is a pure function of (seed, process_index, i).
    """
    patch_size: int = 256
    mode: str = "color"
    qf: int | Sequence[int] = 10
    qf_range: Optional[tuple[int, int]] = None
    qf_range_prob: float = 1.0
    misalign: float = 0.0
    seed: int = 0

    def __post_init__(self):
        qfs = (self.qf,) if np.isscalar(self.qf) else tuple(self.qf)
        object.__setattr__(self, "qf", tuple(int(q) for q in qfs))
        if self.qf_range is not None:
            object.__setattr__(self, "qf_range", tuple(int(q) for q in self.qf_range))
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {tuple(MODES)}, not {self.mode!r}")
        if not self.qf or (self.qf_range is not None and len(self.qf_range) != 2):
            raise ValueError(f"need at least one QF and qf_range=(lo, hi); got qf={self.qf}, "
                             f"qf_range={self.qf_range}")
        for q in self.qf + (self.qf_range or ()):
            jpeg.check_quality(q)
        if self.qf_range is not None and self.qf_range[0] > self.qf_range[1]:
            raise ValueError(f"qf_range={self.qf_range} must be (lo, hi) with lo <= hi")
        if self.patch_size < 1 or not 0 <= self.misalign <= 1 or not 0 <= self.qf_range_prob <= 1:
            raise ValueError(f"need patch_size >= 1 and probabilities in [0, 1]: {self}")

    @property
    def crop(self) -> int:
        """Side of the crop cut from an image: P, or P + 8 when patches may be misaligned."""
        return self.patch_size + (MISALIGN if self.misalign > 0 else 0)

    @property
    def channels(self) -> int:
        return MODES[self.mode]


# ----------------------------------------------------------------------------- the draws
class Draws(NamedTuple):
    """Everything random about a set of samples, one int32 entry per sample."""
    image: np.ndarray  # index into the store
    y: np.ndarray  # crop corner
    x: np.ndarray
    k: np.ndarray  # flip/rotation, 0..7 (see dihedral)
    qf: np.ndarray  # JPEG quality
    dy: np.ndarray  # offset of the patch inside the crop (0 without misalignment)
    dx: np.ndarray


# Independent streams of the counter-based hash, one per kind of draw.
_ORDER, _Y, _X, _K, _QF, _QF_RANGE, _USE_RANGE, _SHIFT, _DY, _DX = range(10)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(h: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of uint64 that scrambles every bit."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def hash_words(*words) -> np.ndarray:
    """A uint64 hash of integer words (scalars or arrays, broadcast together)."""
    h = np.zeros(1, np.uint64)
    with np.errstate(over="ignore"):
        for word in words:
            h = _mix(h ^ (np.asarray(word, np.int64).astype(np.uint64) + _GOLDEN))
    return h


def _below(h: np.ndarray, n) -> np.ndarray:
    """Integers in [0, n) from uint64 hashes (n < 2**31): the top 32 bits, scaled."""
    return ((h >> np.uint64(32)) * np.asarray(n, np.uint64) >> np.uint64(32)).astype(np.int64)


def _chance(h: np.ndarray, p: float) -> np.ndarray:
    """True with probability p: the top 53 bits as a float in [0, 1), below p."""
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53 < p


@functools.lru_cache(maxsize=4)
def epoch_order(seed: int, process_index: int, epoch: int, n: int) -> np.ndarray:
    """The permutation of this process's n images visited in `epoch`."""
    return np.argsort(hash_words(seed, process_index, _ORDER, epoch, np.arange(n)), kind="stable")


def draw(recipe: Recipe, process_index: int, heights: np.ndarray, widths: np.ndarray,
         indices: np.ndarray) -> Draws:
    """The draws of samples `indices` of this process, whose images have these (padded) sizes."""
    indices = np.asarray(indices, np.int64)
    n, crop, seed = len(heights), recipe.crop, recipe.seed
    image = np.empty_like(indices)
    for epoch in np.unique(indices // n):
        here = indices // n == epoch
        image[here] = epoch_order(seed, process_index, int(epoch), n)[indices[here] % n]

    def stream(name):
        return hash_words(seed, process_index, name, indices)

    y = _below(stream(_Y), heights[image] - crop + 1)
    x = _below(stream(_X), widths[image] - crop + 1)
    k = _below(stream(_K), 8)
    qf = np.asarray(recipe.qf)[_below(stream(_QF), len(recipe.qf))]
    if recipe.qf_range is not None:
        lo, hi = recipe.qf_range
        qf = np.where(_chance(stream(_USE_RANGE), recipe.qf_range_prob),
                      lo + _below(stream(_QF_RANGE), hi - lo + 1), qf)
    dy = dx = np.zeros_like(indices)
    if crop > recipe.patch_size:
        shifted = _chance(stream(_SHIFT), recipe.misalign)
        dy = np.where(shifted, _below(stream(_DY), MISALIGN + 1), 0)
        dx = np.where(shifted, _below(stream(_DX), MISALIGN + 1), 0)
    return Draws(*(np.asarray(a, np.int32) for a in (image, y, x, k, qf, dy, dx)))


# ----------------------------------------------------------------------------- NumPy ops
def pad_to(image: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pads the bottom and right of HxWxC to at least size x size (needs H, W > size/2)."""
    return pad_reflect(image, max(image.shape[0], size), max(image.shape[1], size))


def dihedral(image: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations: k % 4 quarter turns counter-clockwise, then a left-right
    flip when k >= 4 (tf.image.rot90 and tf.reverse's order)."""
    image = np.rot90(image, k % 4)
    return image[:, ::-1] if k >= 4 else image


def make_pair(store, recipe: Recipe, d: Draws, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample j of the draws `d`: (degraded, clean) uint8 P x P x C."""
    clean = np.ascontiguousarray(dihedral(store.crop(d.image[j], d.y[j], d.x[j], recipe.crop), d.k[j]))
    degraded = jpeg.compress(clean, int(d.qf[j]))
    p, dy, dx = recipe.patch_size, d.dy[j], d.dx[j]
    return degraded[dy:dy + p, dx:dx + p], clean[dy:dy + p, dx:dx + p]


def make_batch(store, recipe: Recipe, process_index: int, step: int, batch_size: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Batch `step` of this process as uint8 (degraded, clean), N x P x P x C."""
    indices = np.arange(step * batch_size, (step + 1) * batch_size)
    d = draw(recipe, process_index, store.heights, store.widths, indices)
    pairs = [make_pair(store, recipe, d, j) for j in range(batch_size)]
    return np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])


def to_float(batch: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1] (as tf.cast(x, tf.float32) / 255: the same bits)."""
    return batch.astype(np.float32) / np.float32(255)


# ----------------------------------------------------------------------------- image stores
class MemoryStore:
    """Decoded, padded images in one flat uint8 array (a crop reads a band of whole rows)."""

    def __init__(self, images: Sequence[np.ndarray]):
        self.heights = np.array([im.shape[0] for im in images], np.int32)
        self.widths = np.array([im.shape[1] for im in images], np.int32)
        self.channels = images[0].shape[-1]
        self.offsets = np.cumsum([0] + [im.size for im in images[:-1]]).astype(np.int64)
        self.flat = np.concatenate([im.reshape(-1) for im in images])
        self._path = None

    def crop(self, index: int, y: int, x: int, size: int) -> np.ndarray:
        row = int(self.widths[index]) * self.channels
        start = int(self.offsets[index]) + int(y) * row
        band = self.flat[start:start + size * row].reshape(size, -1, self.channels)
        return band[:, x:x + size]

    def share_by_file(self) -> None:
        """Moves the pixels to a memory-mapped temporary file, which worker processes map
        instead of receiving a copy each; the file goes when this store does."""
        if self._path is not None or self.flat.nbytes < SHARE_BY_FILE_BYTES:
            return
        fd, path = tempfile.mkstemp(prefix="d2ljax-images-", suffix=".npy")
        with os.fdopen(fd, "wb") as f:
            np.save(f, self.flat)
        self._path, self.flat = path, np.load(path, mmap_mode="r")
        weakref.finalize(self, os.remove, path)

    def __getstate__(self):
        state = dict(self.__dict__)
        if self._path is not None:
            del state["flat"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self._path is not None:
            self.flat = np.load(self._path, mmap_mode="r")


@dataclasses.dataclass
class FileStore:
    """Images decoded per crop, for sources over the cache budget (slower)."""
    paths: Optional[list]  # files, or None when `blobs` holds the encoded images
    blobs: Optional[list]
    grays: list  # whether each file is gray (decoded with one channel)
    heights: np.ndarray  # padded sizes
    widths: np.ndarray
    mode: str
    pad: int  # images are padded to at least this (the recipe's crop)

    def crop(self, index: int, y: int, x: int, size: int) -> np.ndarray:
        image = imageio.read(_open(self.paths, self.blobs, index)).pixels
        return pad_to(to_channels(image, MODES[self.mode]), self.pad)[y:y + size, x:x + size]

    def share_by_file(self) -> None:
        """Nothing to share: workers read the files themselves."""


# ----------------------------------------------------------------------------- sources
def list_files(source, process_index: int, process_count: int) -> list[str]:
    """This process's share (image j goes to process j % count) of files, folders or globs;
    None for the photos shipped in d2ljax/assets/photos."""
    if isinstance(source, str) and source.startswith(TFDS_PREFIX):
        raise ValueError(f"{source!r}: tensorflow-datasets sources need input_pipeline='tf.data' "
                         f"(TensorFlow); give image files or folders for grain")
    files = list_image_files(SHIPPED if source is None else source)
    return files[process_index::process_count]


class _Info(NamedTuple):
    """What the header of a usable image says (sizes upright)."""
    index: int
    height: int
    width: int
    gray: bool
    per_sample: str  # why TensorFlow cannot decode it per sample as d2ljax.imageio does; "" if it can


class Skipped(NamedTuple):
    """An image training leaves out, and why (one line)."""
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


class Loaded(NamedTuple):
    """What `load_images` made of the listed images."""
    store: "MemoryStore | FileStore"
    listed: int
    skipped: list  # Skipped, in the order met

    def summary(self) -> str:
        """'using 296 of 300 images; 4 skipped: a.jpg (not a readable image), ...'."""
        line = f"using {self.listed - len(self.skipped)} of {self.listed} images"
        if self.skipped:
            reasons = ", ".join(f"{os.path.basename(s.name)} ({s.reason.split(' (')[0]})" for s in self.skipped)
            line += f"; {len(self.skipped)} skipped: {reasons}"
        return line


def _open(paths, blobs, i):
    return paths[i] if blobs is None else io.BytesIO(blobs[i])


def _skipped(error: ImageError, name: str) -> Skipped:
    message = str(error)
    return Skipped(name, message[len(name) + 2:] if message.startswith(name + ": ") else message)


def _per_sample_obstacle(image: Image.Image, orientation: int) -> str:
    """Why TensorFlow cannot decode the image per sample to the pixels d2ljax.imageio reads
    ("" when it can)."""
    if image.format not in TF_FORMATS:
        return f"{image.format} ({', '.join(TF_FORMATS)} only)"
    if image.mode not in TF_MODES:
        return f"mode {image.mode}"
    return f"EXIF orientation {orientation}" if orientation in imageio.UPRIGHT else ""


def _scan(image_source, index: int, name: str, crop: int) -> _Info:
    """Header facts of one image; ImageError (naming it) for what d2ljax's reader refuses
    (imageio.check_pixel_format: the same rules as restoring) or what is too small to crop.
    A file broken past its header is found when `load_images` decodes it."""
    with imageio.opened(image_source, name) as image:
        imageio.check_pixel_format(image, name)
        orientation = image.getexif().get(imageio.ORIENTATION, 1)
        turned = orientation in (5, 6, 7, 8)  # a quarter turn: width and height swap
        height, width = (image.width, image.height) if turned else (image.height, image.width)
        info = _Info(index, height, width, image.mode in imageio.GRAY_MODES, _per_sample_obstacle(image, orientation))
    if 2 * min(info.height, info.width) <= crop:
        raise ImageError(f"{name}: {info.width}x{info.height} is too small for {crop}x{crop} "
                         f"crops (each side must exceed half the crop to be reflect-padded)")
    return info


def _decode_padded(path_or_blob, name: str, mode: str, crop: int) -> np.ndarray:
    """d2ljax's reader (as restoring reads photos: upright, CMYK as RGB) -> mode -> padded to the crop."""
    image = imageio.read(path_or_blob, name).pixels
    return pad_to(to_channels(image, MODES[mode]), crop)


def load_images(names: list[str], paths: Optional[list], blobs: Optional[list], mode: str, crop: int,
                budget_mb: float) -> Loaded:
    """The usable images as a MemoryStore when they fit budget_mb, else a FileStore, with the
    images skipped and why.

    Every image is read once at the start (d2ljax.imageio, the reader restoring uses), cached
    or not, so that a broken file is reported by name and skipped here rather than failing (or
    being dropped) mid-run. Raises ImageError when none is usable.
    """
    infos, skipped = [], []
    for i, name in enumerate(names):
        try:
            infos.append(_scan(_open(paths, blobs, i), i, name, crop))
        except ImageError as e:
            skipped.append(_skipped(e, name))
    channels = MODES[mode]
    needed_mb = sum(max(f.height, crop) * max(f.width, crop) * channels for f in infos) / 2**20
    in_memory = needed_mb <= budget_mb
    if not in_memory:
        log.info("decoded images need %.0f MB > cache_budget_mb=%s: decoding per sample", needed_mb, budget_mb)
        skipped += [Skipped(names[f.index], f"{f.per_sample} cannot be decoded per sample by both pipelines; "
                                            f"raise cache_budget_mb or convert it") for f in infos if f.per_sample]
        infos = [f for f in infos if not f.per_sample]

    def load(info):
        """The decoded image when cached, else None; Skipped when it cannot be decoded."""
        try:
            image = _decode_padded(_open(paths, blobs, info.index), names[info.index], mode, crop)
            return image if in_memory else None
        except ImageError as e:
            return _skipped(e, names[info.index])

    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        results = list(pool.map(load, infos))
    skipped += [r for r in results if isinstance(r, Skipped)]
    usable = [(info, r) for info, r in zip(infos, results) if not isinstance(r, Skipped)]
    if not usable:
        details = "; ".join(map(str, skipped[:3])) + ("; ..." if len(skipped) > 3 else "")
        raise ImageError(f"no usable image among the {len(names)} listed for this process ({details})")
    if in_memory:
        return Loaded(MemoryStore([image for _, image in usable]), len(names), skipped)
    loaded = [info for info, _ in usable]
    return Loaded(FileStore(_pick(paths, loaded), _pick(blobs, loaded), [f.gray for f in loaded],
                            np.array([max(f.height, crop) for f in loaded], np.int32),
                            np.array([max(f.width, crop) for f in loaded], np.int32), mode, crop),
                  len(names), skipped)


def load_store(names: list[str], paths: Optional[list], blobs: Optional[list], mode: str, crop: int,
               budget_mb: float):
    """`load_images`' store, after a line on stderr for each skipped image and the summary."""
    loaded = load_images(names, paths, blobs, mode, crop, budget_mb)
    for skipped in loaded.skipped:
        print(f"skipping {skipped}", file=sys.stderr)
    print(loaded.summary(), file=sys.stderr)
    return loaded.store


def _pick(items: Optional[list], infos: list[_Info]) -> Optional[list]:
    return None if items is None else [items[f.index] for f in infos]


def process_share(process_index: Optional[int], process_count: Optional[int]) -> tuple[int, int]:
    """(process_index, process_count), JAX's when not given."""
    if process_index is None or process_count is None:
        import jax
        return jax.process_index(), jax.process_count()
    return process_index, process_count
