"""Training pairs (JPEG-degraded, clean) as an infinite, deterministic tf.data pipeline.

The reference input pipeline. What each sample is (the source's images, every random draw)
comes from `d2ljax.samples`, which `d2ljax.grain_data` shares, so both pipelines give the same
batches bit for bit; here the per-sample ops run in-graph: the crop, one of the 8
flips/rotations, gray (the protocol's rounded BT.601 Y) or colour, and a JPEG round trip
through libjpeg-turbo with the protocol's settings (4:2:0 for colour, one component for gray,
accurate integer DCT both ways), which gives the same pixels as Pillow.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf

from d2ljax import samples
from d2ljax.samples import TFDS_PREFIX

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
    """Reflect-pads the bottom and right of an HxWxC image to at least size x size."""
    shape = tf.shape(image)
    pad_h, pad_w = tf.maximum(size - shape[0], 0), tf.maximum(size - shape[1], 0)
    return tf.pad(image, [[0, pad_h], [0, pad_w], [0, 0]], mode="REFLECT")


def dihedral(image: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """One of the 8 flips/rotations of a square HxWxC image: rot90 k % 4 times, then a
    left-right flip when k >= 4 (as samples.dihedral)."""
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


def load_store(source, recipe: samples.Recipe, process_index: int, process_count: int,
               cache_budget_mb: float, split: str, image_key: str, data_dir: str | None):
    """samples.load_store of files, folders, globs, the shipped photos or a "tfds:" source."""
    if isinstance(source, str) and source.startswith(TFDS_PREFIX):
        names, blobs = _tfds_blobs(source[len(TFDS_PREFIX):], split, image_key, data_dir,
                                   process_index, process_count)
        paths = None
    else:
        names = paths = samples.list_files(source, process_index, process_count)
        blobs = None
    return samples.load_store(names, paths, blobs, recipe.mode, recipe.crop, cache_budget_mb)


# ----------------------------------------------------------------------------- image stores
def _memory_fetch(store: samples.MemoryStore):
    """fetch(index, y, x, size) reading a MemoryStore in-graph, as MemoryStore.crop does."""
    offsets, channels = tf.constant(store.offsets), store.channels
    row_bytes = tf.constant(store.widths.astype(np.int64) * channels)
    flat = tf.constant(np.asarray(store.flat))

    def fetch(index, y, x, size):
        start = offsets[index] + tf.cast(y, tf.int64) * row_bytes[index]
        band = tf.reshape(flat[start:start + size * row_bytes[index]], [size, -1, channels])
        return band[:, x:x + size]

    return fetch


def _file_fetch(store: samples.FileStore):
    """fetch(index, y, x, size) decoding a FileStore's image in-graph, as FileStore.crop does."""
    encoded = tf.constant(store.blobs if store.blobs is not None else store.paths)
    grays = tf.constant(store.grays)

    def decode(data, channels):
        image = tf.cond(tf.io.is_jpeg(data),
                        lambda: tf.io.decode_jpeg(data, channels, dct_method="INTEGER_ACCURATE"),
                        lambda: tf.io.decode_image(data, channels, expand_animations=False))
        return to_mode(tf.ensure_shape(image, [None, None, channels]), store.mode)

    def fetch(index, y, x, size):
        data = encoded[index] if store.blobs is not None else tf.io.read_file(encoded[index])
        image = tf.cond(grays[index], lambda: decode(data, 1), lambda: decode(data, 3))
        return pad_to(image, store.pad)[y:y + size, x:x + size]

    return fetch


# ----------------------------------------------------------------------------- the dataset
def make_dataset(
    source: str | Sequence[str] | None = None,
    *,
    batch_size: int,
    start_step: int = 0,
    process_index: int | None = None,
    process_count: int | None = None,
    cache_budget_mb: float = 4096,
    split: str = "train",
    image_key: str = "image",
    data_dir: str | None = None,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    **recipe,
) -> tf.data.Dataset:
    """An infinite tf.data.Dataset of batches (degraded, clean), float32 in [0, 1], NHWC.

    Args:
      source: image files, folders or globs (a list, or a comma-separated string; see
        d2ljax.imageio.list_image_files); "tfds:NAME" for a prepared tensorflow-datasets
        dataset (e.g. "tfds:div2k/bicubic_x2" with image_key="hr"); None for the four photos
        shipped in d2ljax/assets/photos (a smoke-test default, not a training set).
      batch_size: batch size on this process (for a global batch B over N processes, B // N).
      start_step: first batch to yield: resuming at step k gives the batches k, k + 1, ... that
        an uninterrupted run would have given.
      process_index, process_count: this host's share of the images (image j goes to process
        j % process_count); default jax.process_index() / jax.process_count().
      cache_budget_mb: decoded images (after gray conversion and padding) are kept in memory
        when their total fits this; otherwise each sample decodes its image (slower).
      split, image_key, data_dir: for "tfds:" sources: the split, the image feature, and the
        tensorflow-datasets data directory (default: TFDS_DATA_DIR or ~/tensorflow_datasets).
      num_parallel_calls: threads making samples (default AUTOTUNE).
      **recipe: the fields of d2ljax.samples.Recipe (patch_size, mode, qf, qf_range,
        qf_range_prob, misalign, seed).

    Unreadable or too small images are logged (with their name) and skipped; an empty source
    raises at once. Images smaller than the crop are reflect-padded at the bottom and right
    to it; images whose shorter side is at most half the crop are skipped.
    """
    recipe = samples.Recipe(**recipe)
    process_index, process_count = samples.process_share(process_index, process_count)
    _hide_gpus_from_tf()
    store = load_store(source, recipe, process_index, process_count, cache_budget_mb, split,
                       image_key, data_dir)
    in_memory = isinstance(store, samples.MemoryStore)
    samples.log.info("%d images for process %d/%d, %s", len(store.heights), process_index,
                     process_count, "in memory" if in_memory else "decoded per sample")
    fetch = _memory_fetch(store) if in_memory else _file_fetch(store)

    def draws(indices):
        return tuple(samples.draw(recipe, process_index, store.heights, store.widths, indices))

    def plan(indices):  # the shared draws, computed by NumPy for a batch of indices
        out = tf.numpy_function(draws, [indices], [tf.int32] * len(samples.Draws._fields), stateful=False)
        return samples.Draws(*(tf.ensure_shape(a, [batch_size]) for a in out))

    def make_pair(d: samples.Draws):
        crop, patch = recipe.crop, recipe.patch_size
        image = tf.ensure_shape(fetch(d.image, d.y, d.x, crop), [crop, crop, recipe.channels])
        clean = dihedral(image, d.k)
        degraded = jpeg(clean, d.qf)
        return degraded[d.dy:d.dy + patch, d.dx:d.dx + patch], clean[d.dy:d.dy + patch, d.dx:d.dx + patch]

    ds = tf.data.Dataset.range(start_step * batch_size, _MAX_INDEX).batch(batch_size)
    ds = ds.map(plan).unbatch()
    ds = ds.map(make_pair, num_parallel_calls=num_parallel_calls, deterministic=True)
    if not in_memory:  # A file changed on disk since the start: log it, go on.
        ds = ds.ignore_errors(log_warning=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(_to_float, num_parallel_calls=num_parallel_calls, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _to_float(degraded: tf.Tensor, clean: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """uint8 batches -> float32 in [0, 1] (after batching: one op per batch, not per patch)."""
    return tf.cast(degraded, tf.float32) / 255.0, tf.cast(clean, tf.float32) / 255.0


def make_train_iterator(source: str | Sequence[str] | None = None, **kwargs
                        ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """make_dataset(source, **kwargs) as an iterator of NumPy (degraded, clean) batches."""
    return make_dataset(source, **kwargs).as_numpy_iterator()
