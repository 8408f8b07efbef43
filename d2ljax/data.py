"""Training pairs (JPEG-degraded, clean) as an infinite, deterministic tf.data pipeline.

A source (image files, a tensorflow-datasets split, or the photos shipped in
d2ljax/assets/photos) is decoded once into memory when it fits `cache_budget_mb`, else
decoded per sample. Every sample is then made in-graph: a random crop, one of the 8
flips/rotations, gray (the protocol's rounded BT.601 Y) or colour, and a JPEG round trip
through libjpeg-turbo with the protocol's settings (4:2:0 for colour, one component for
gray, accurate integer DCT both ways), which gives the same pixels as Pillow.

Sample i of a process is a pure function of (seed, process_index, i): images are visited in
a fresh permutation each epoch and all randomness is stateless, so `start_step=k` resumes an
interrupted run on exactly the batches it would have seen, whatever the thread count.
"""
from __future__ import annotations

import concurrent.futures
import io
import logging
import os
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from d2ljax.imageio import SAMPLE_PHOTOS_DIR, ImageError, list_image_files, read_image

log = logging.getLogger(__name__)

TFDS_PREFIX = "tfds:"
# Largest grid offset of the misaligned crop (FBCNN crops P + 8, then P at an offset in [0, 8]).
MISALIGN = 8
# Formats tf.io.decode_image reads, for images decoded per sample (over the cache budget).
TF_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")
_MAX_INDEX = 2**62


# ----------------------------------------------------------------------------- per sample ops
def rgb_to_gray(rgb: tf.Tensor) -> tf.Tensor:
    """uint8 [..., 3] RGB -> uint8 [..., 1]: the protocol's BT.601 studio Y, rounded half to even.

    Computed in float64 so that every one of the 2^24 colours rounds as NumPy's reference does.
    """
    x = tf.cast(rgb, tf.float64)
    y = 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0
    return tf.cast(tf.round(y), tf.uint8)[..., None]


def to_mode(image: tf.Tensor, mode: str) -> tf.Tensor:
    """uint8 HxWx1 or HxWx3 (static channels) -> 3 channels for 'color', 1 for 'gray'."""
    channels = image.shape[-1]
    if mode == "color":
        return image if channels == 3 else tf.tile(image, [1, 1, 3])
    return image if channels == 1 else rgb_to_gray(image)


def pad_to(image: tf.Tensor, size: int) -> tf.Tensor:
    """Reflect-pads the bottom and right of an HxWxC image to at least size x size.

    Needs H, W > size / 2 (a reflection cannot be longer than the image); smaller images are
    dropped when the source is scanned.
    """
    shape = tf.shape(image)
    pad_h, pad_w = tf.maximum(size - shape[0], 0), tf.maximum(size - shape[1], 0)
    return tf.pad(image, [[0, pad_h], [0, pad_w], [0, 0]], mode="REFLECT")


def dihedral(image: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """One of the 8 flips/rotations of a square HxWxC image: rot90 k % 4 times, then a
    left-right flip when k >= 4."""
    image = tf.image.rot90(image, k % 4)
    return tf.cond(k >= 4, lambda: tf.reverse(image, [1]), lambda: image)


def jpeg(image: tf.Tensor, qf: tf.Tensor) -> tf.Tensor:
    """JPEG round trip of uint8 HxWxC (C = 1: one-component; C = 3: 4:2:0) at quality qf.

    Same pixels as Pillow's save(quality=qf) + open: baseline IJG tables, no size
    optimisation, accurate integer DCT to encode and (explicitly) to decode.
    """
    data = tf.raw_ops.EncodeJpegVariableQuality(images=image, quality=tf.cast(qf, tf.int32))
    out = tf.io.decode_jpeg(data, channels=image.shape[-1], dct_method="INTEGER_ACCURATE")
    return tf.ensure_shape(out, image.shape)


def draw_qf(seed: tf.Tensor, qfs: Sequence[int], qf_range: tuple[int, int] | None,
            qf_range_prob: float) -> tf.Tensor:
    """A quality factor: uniform in [lo, hi] with probability qf_range_prob, else from qfs."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    qf = tf.gather(tf.constant(qfs, tf.int32),
                   tf.random.stateless_uniform([], seeds[0], 0, len(qfs), tf.int32))
    if qf_range is None:
        return qf
    lo, hi = qf_range
    in_range = tf.random.stateless_uniform([], seeds[1], lo, hi + 1, tf.int32)
    use_range = tf.random.stateless_uniform([], seeds[2]) < qf_range_prob
    return tf.where(use_range, in_range, qf)


# ----------------------------------------------------------------------------- sources
def _hide_gpus_from_tf() -> None:
    """Keeps TensorFlow off the accelerators, which belong to JAX."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TF already initialised its devices; nothing can change now.
        pass


def _tfds_blobs(name: str, split: str, image_key: str, data_dir: str | None,
                process_index: int, process_count: int) -> tuple[list[str], list[bytes]]:
    """Encoded images of this process's even share of a prepared tensorflow-datasets split."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if image_key not in builder.info.features:
        raise KeyError(f"{name} has no feature {image_key!r}; its features: {list(builder.info.features)}")
    shard = tfds.even_splits(split, n=process_count)[process_index]
    try:
        ds = builder.as_dataset(split=shard, shuffle_files=False,
                                decoders={image_key: tfds.decode.SkipDecoding()})
    except AssertionError:  # How tensorflow-datasets says that the data is not on disk.
        raise FileNotFoundError(
            f"tensorflow-datasets dataset {name!r} is not prepared in {builder.data_dir} and this "
            f"machine has no download. On a machine with internet run "
            f"`tfds build {name} --data_dir DIR` (or tfds.builder({name!r}, data_dir=DIR)"
            f".download_and_prepare()), copy DIR here, then pass data_dir=DIR or set "
            f"TFDS_DATA_DIR=DIR.") from None
    blobs = [example[image_key] for example in tfds.as_numpy(ds)]
    return [f"{name}/{shard}[{i}]" for i in range(len(blobs))], blobs


def _records(source, split, image_key, data_dir, process_index, process_count):
    """(names, paths or None, encoded images or None) of this process's share of `source`."""
    if isinstance(source, str) and source.startswith(TFDS_PREFIX):
        names, blobs = _tfds_blobs(source[len(TFDS_PREFIX):], split, image_key, data_dir,
                                   process_index, process_count)
        return names, None, blobs
    files = list_image_files(str(SAMPLE_PHOTOS_DIR) if source is None else source)
    share = files[process_index::process_count]
    return share, share, None


class _Info(NamedTuple):
    """What the header of a usable image says."""
    index: int
    height: int
    width: int
    gray: bool
    format: str


def _scan(image_source, index: int, name: str, crop: int) -> _Info:
    """Header facts of one image; ImageError (naming it) for what the pipeline cannot use."""
    try:
        with Image.open(image_source) as image:
            if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "YCbCr"):
                raise ImageError(f"{name}: mode {image.mode} is not 8-bit gray or colour")
            image.verify()
            info = _Info(index, image.height, image.width, image.mode in ("1", "L", "LA"),
                         image.format)
    except ImageError:
        raise
    except Exception as e:  # Pillow raises many kinds for broken files.
        raise ImageError(f"{name}: not a readable image ({e})") from None
    if 2 * min(info.height, info.width) <= crop:
        raise ImageError(f"{name}: {info.width}x{info.height} is too small for {crop}x{crop} "
                         f"crops (each side must exceed half the crop to be reflect-padded)")
    return info


def _open(paths, blobs, i):
    return paths[i] if blobs is None else io.BytesIO(blobs[i])


def _decode_padded(path_or_blob, name: str, mode: str, crop: int) -> np.ndarray:
    """Pillow decode (as Pillow's JPEG decoder, i.e. the protocol's) -> mode -> padded to crop."""
    try:
        image = read_image(path_or_blob)
    except ImageError as e:
        raise ImageError(str(e).replace(str(path_or_blob), name)) from None
    image = tf.constant(image if image.ndim == 3 else image[..., None])
    return pad_to(to_mode(image, mode), crop).numpy()


# ----------------------------------------------------------------------------- image stores
def _memory_store(images: list[np.ndarray]):
    """All images in one flat uint8 tensor; returns (fetch(index, y, x, size), heights, widths).

    A crop reads the band of `size` whole rows (a contiguous slice, not copied) and then its
    columns: far cheaper than gathering pixel by pixel.
    """
    heights = np.array([im.shape[0] for im in images], np.int32)
    widths = np.array([im.shape[1] for im in images], np.int32)
    channels = images[0].shape[-1]
    offsets = tf.constant(np.cumsum([0] + [im.size for im in images[:-1]]), tf.int64)
    row_bytes = tf.constant(widths.astype(np.int64) * channels)
    flat = tf.constant(np.concatenate([im.reshape(-1) for im in images]))

    def fetch(index, y, x, size):
        start = offsets[index] + tf.cast(y, tf.int64) * row_bytes[index]
        band = tf.reshape(flat[start:start + size * row_bytes[index]], [size, -1, channels])
        return band[:, x:x + size]

    return fetch, heights, widths


def _streamed_store(paths, blobs, grays: list[bool], mode: str, crop: int):
    """Images decoded per sample from files or encoded bytes; same interface as _memory_store."""
    encoded = tf.constant(blobs if blobs is not None else paths)
    grays = tf.constant(grays)

    def decode(data, channels):
        image = tf.cond(tf.io.is_jpeg(data),
                        lambda: tf.io.decode_jpeg(data, channels, dct_method="INTEGER_ACCURATE"),
                        lambda: tf.io.decode_image(data, channels, expand_animations=False))
        return to_mode(tf.ensure_shape(image, [None, None, channels]), mode)

    def fetch(index, y, x, size):
        data = encoded[index] if blobs is not None else tf.io.read_file(encoded[index])
        image = tf.cond(grays[index], lambda: decode(data, 1), lambda: decode(data, 3))
        return pad_to(image, crop)[y:y + size, x:x + size]

    return fetch


# ----------------------------------------------------------------------------- the dataset
def make_dataset(
    source: str | Sequence[str] | None = None,
    *,
    batch_size: int,
    patch_size: int = 256,
    mode: str = "color",
    qf: int | Sequence[int] = 10,
    qf_range: tuple[int, int] | None = None,
    qf_range_prob: float = 1.0,
    misalign: float = 0.0,
    seed: int = 0,
    start_step: int = 0,
    process_index: int | None = None,
    process_count: int | None = None,
    cache_budget_mb: float = 4096,
    split: str = "train",
    image_key: str = "image",
    data_dir: str | None = None,
    num_parallel_calls: int = tf.data.AUTOTUNE,
) -> tf.data.Dataset:
    """An infinite tf.data.Dataset of batches (degraded, clean), float32 in [0, 1], NHWC.

    Args:
      source: image files, folders or globs (a list, or a comma-separated string; see
        d2ljax.imageio.list_image_files); "tfds:NAME" for a prepared tensorflow-datasets
        dataset (e.g. "tfds:div2k/bicubic_x2" with image_key="hr"); None for the four photos
        shipped in d2ljax/assets/photos (a smoke-test default, not a training set).
      batch_size: batch size on this process (for a global batch B over N processes, B // N).
      patch_size: side P of the square patches.
      mode: 'color' (RGB) or 'gray' (one channel: gray files as they are, colour ones as the
        protocol's rounded BT.601 Y; compressed as one-component JPEGs).
      qf: the JPEG quality factor, or a set of them drawn uniformly per sample.
      qf_range: (lo, hi), inclusive: with probability qf_range_prob the QF is drawn uniformly
        from it instead of from `qf` (FBCNN blind recipe, colour: qf=(10, 20, ..., 60),
        qf_range=(8, 96), qf_range_prob=0.25).
      misalign: probability that the patch is not aligned with the JPEG grid: when > 0, crops
        are P + 8, compressed, then both images cropped to P at offsets in [0, 8] drawn with
        this probability, else at 0 (FBCNN: 0.5).
      seed: data seed. Sample i of a process is a pure function of (seed, process_index, i).
      start_step: first batch to yield: resuming at step k gives the batches k, k + 1, ... that
        an uninterrupted run would have given.
      process_index, process_count: this host's share of the images (image j goes to process
        j % process_count); default jax.process_index() / jax.process_count().
      cache_budget_mb: decoded images (after gray conversion and padding) are kept in memory
        when their total fits this; otherwise each sample decodes its image (slower).
      split, image_key, data_dir: for "tfds:" sources: the split, the image feature, and the
        tensorflow-datasets data directory (default: TFDS_DATA_DIR or ~/tensorflow_datasets).
      num_parallel_calls: threads making samples (default AUTOTUNE).

    Unreadable or too small images are logged (with their name) and skipped; an empty source
    raises at once. Images are visited in a new permutation each epoch (no shuffle buffer).
    Images smaller than the crop (P, or P + 8 with misalign) are reflect-padded at the bottom
    and right to it; images whose shorter side is at most half the crop are skipped.
    """
    if mode not in ("color", "gray"):
        raise ValueError(f"mode must be 'color' or 'gray', not {mode!r}")
    qfs = (qf,) if np.isscalar(qf) else tuple(qf)
    for q in qfs + tuple(qf_range or ()):
        if not 1 <= int(q) <= 100:
            raise ValueError(f"JPEG quality factors must lie in [1, 100], got {q}")
    if process_index is None or process_count is None:
        import jax
        process_index, process_count = jax.process_index(), jax.process_count()
    _hide_gpus_from_tf()

    crop = patch_size + (MISALIGN if misalign > 0 else 0)
    channels = 3 if mode == "color" else 1
    names, paths, blobs = _records(source, split, image_key, data_dir, process_index, process_count)
    fetch, heights, widths, in_memory = _store(names, paths, blobs, mode, crop, cache_budget_mb)
    log.info("%d of %d images for process %d/%d, %s", len(heights), len(names), process_index,
             process_count, "in memory" if in_memory else "decoded per sample")

    make_pair = _pair_fn(fetch, heights, widths, patch_size=patch_size, crop=crop, qfs=qfs,
                         qf_range=qf_range, qf_range_prob=qf_range_prob, misalign=misalign,
                         key=(seed, process_index), channels=channels)
    ds = tf.data.Dataset.range(start_step * batch_size, _MAX_INDEX)
    ds = ds.map(make_pair, num_parallel_calls=num_parallel_calls, deterministic=True)
    if not in_memory:  # A file changed on disk since the start: log it, go on.
        ds = ds.ignore_errors(log_warning=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(_to_float, num_parallel_calls=num_parallel_calls, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _skip(error: ImageError) -> None:
    log.warning("skipping %s", error)


def _store(names, paths, blobs, mode, crop, budget_mb):
    """(fetch, heights, widths, in_memory) for the usable images, cached when they fit budget_mb.

    Every image is decoded once with Pillow at the start, cached or not, so that a broken file
    is reported by name and skipped here rather than failing (or being dropped) mid-run.
    """
    infos = []
    for i, name in enumerate(names):
        try:
            infos.append(_scan(_open(paths, blobs, i), i, name, crop))
        except ImageError as e:
            _skip(e)
    channels = 3 if mode == "color" else 1
    needed_mb = sum(max(f.height, crop) * max(f.width, crop) * channels for f in infos) / 2**20
    in_memory = needed_mb <= budget_mb
    if not in_memory:
        log.info("decoded images need %.0f MB > cache_budget_mb=%s: decoding per sample",
                 needed_mb, budget_mb)
        for info in [f for f in infos if f.format not in TF_FORMATS]:
            _skip(ImageError(f"{names[info.index]}: {info.format} cannot be decoded in-graph "
                             f"({', '.join(TF_FORMATS)}); raise cache_budget_mb or convert it"))
        infos = [f for f in infos if f.format in TF_FORMATS]

    def load(info):
        try:
            image = _decode_padded(_open(paths, blobs, info.index), names[info.index], mode, crop)
            return image if in_memory else info
        except ImageError as e:
            _skip(e)

    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        loaded = [x for x in pool.map(load, infos) if x is not None]
    if not loaded:
        raise ImageError(f"no usable image among the {len(names)} listed for this process "
                         f"(see the warnings above)")
    if in_memory:
        return (*_memory_store(loaded), True)
    fetch = _streamed_store(_pick(paths, loaded), _pick(blobs, loaded), [f.gray for f in loaded],
                            mode, crop)
    heights = np.array([max(f.height, crop) for f in loaded], np.int32)
    widths = np.array([max(f.width, crop) for f in loaded], np.int32)
    return fetch, heights, widths, False


def _pick(items: list | None, infos: list[_Info]) -> list | None:
    return None if items is None else [items[f.index] for f in infos]


def _pair_fn(fetch, heights, widths, *, patch_size, crop, qfs, qf_range, qf_range_prob,
             misalign, key, channels):
    """index -> (degraded, clean) uint8 P x P x C, a pure function of (key, index)."""
    n = len(heights)
    heights, widths = tf.constant(heights), tf.constant(widths)
    key = tf.constant(key, tf.int64)
    order_key = tf.random.experimental.stateless_fold_in(key, 0)
    sample_key = tf.random.experimental.stateless_fold_in(key, 1)

    def uniform(seed, hi):  # integer in [0, hi]
        return tf.random.stateless_uniform([], seed, 0, hi + 1, tf.int32)

    def make_pair(i):
        epoch_key = tf.random.experimental.stateless_fold_in(order_key, i // n)
        image = tf.random.experimental.stateless_shuffle(tf.range(n), epoch_key)[i % n]
        seeds = tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(sample_key, i), 7)
        y = uniform(seeds[0], heights[image] - crop)
        x = uniform(seeds[1], widths[image] - crop)
        clean = dihedral(tf.ensure_shape(fetch(image, y, x, crop), [crop, crop, channels]),
                         uniform(seeds[2], 7))
        degraded = jpeg(clean, draw_qf(seeds[3], qfs, qf_range, qf_range_prob))
        if crop > patch_size:
            shifted = tf.random.stateless_uniform([], seeds[4]) < misalign
            dy = tf.where(shifted, uniform(seeds[5], MISALIGN), 0)
            dx = tf.where(shifted, uniform(seeds[6], MISALIGN), 0)
            degraded = degraded[dy:dy + patch_size, dx:dx + patch_size]
            clean = clean[dy:dy + patch_size, dx:dx + patch_size]
        return degraded, clean

    return make_pair


def _to_float(degraded: tf.Tensor, clean: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """uint8 batches -> float32 in [0, 1] (after batching: one op per batch, not per patch)."""
    return tf.cast(degraded, tf.float32) / 255.0, tf.cast(clean, tf.float32) / 255.0


def make_train_iterator(source: str | Sequence[str] | None = None, **kwargs
                        ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """make_dataset(source, **kwargs) as an iterator of NumPy (degraded, clean) batches."""
    return make_dataset(source, **kwargs).as_numpy_iterator()
