"""Applying a D2LNet to uint8 images, the way the evaluation protocol measures them.

The network sees float images in [0, 1]; its restored image is clipped to [0, 1], scaled by
255 and rounded to uint8 before any metric (docs/protocol.md#images). These functions take
images of the model's channels at their exact size; `d2ljax.restoration` builds photo
restoration (model choice, gray/colour, buckets, tiles) on them.

A batch is split across this process's devices (`batch_devices`): each device restores its
share with the same per-image program. On a CPU that pays where JAX has been given several CPU
devices (`d2ljax.cpu.hostdevices`, which the restore command does): XLA:CPU runs much of a
small model's work on one thread, and two devices keep two cores busy.

Inference runs in exact float32 by default. On GPUs, JAX's default precision lets float32
convolutions and matrix products use TF32 (10-bit mantissa), which moves the released model's
out_2 by up to most of a grey level, and the PSNR tables with it (`python
benchmarks/parity_errors.py` measures it). CPUs compute float32 exactly either way. Training
keeps JAX's default (TF32 on GPUs).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from d2ljax.model import D2LNet

INFERENCE_PRECISION = "highest"


@functools.lru_cache(maxsize=None)
def _jitted_apply(model: D2LNet, devices: int):
    """One jitted function per model and device count; XLA compiles it once per input shape.
    With several devices the batch axis is split across the first `devices` local ones."""

    def apply(variables, images_uint8):
        x = images_uint8.astype(jnp.float32) / 255.0
        out_2 = model.apply(variables, x)[3]
        return to_uint8(out_2)

    if devices == 1:
        return jax.jit(apply)
    # shard_map, not a sharded jit: XLA:CPU's FFT rejects the layouts SPMD partitioning gives it.
    mesh = jax.sharding.Mesh(np.array(jax.local_devices()[:devices]), ("batch",))
    split = jax.sharding.PartitionSpec("batch")
    return jax.jit(jax.shard_map(apply, mesh=mesh, in_specs=(jax.sharding.PartitionSpec(), split),
                                 out_specs=split))


def batch_devices(batch_size: int) -> int:
    """How many local devices a batch of `batch_size` images is split across: all of them, or one
    per image for a smaller batch (the batch is padded to a multiple of this)."""
    return max(1, min(jax.local_device_count(), batch_size))


def to_uint8(x: jnp.ndarray) -> jnp.ndarray:
    """[0, 1] floats -> uint8: clip, scale by 255, round half to even (the protocol's rule)."""
    return jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.uint8)


def apply_batch(model: D2LNet, variables, images: np.ndarray,
                precision: str = INFERENCE_PRECISION) -> np.ndarray:
    """Restores a (N, H, W, C) uint8 batch; C must equal the model's in_chn.

    precision: JAX's matmul precision for the convolutions ("highest": exact float32;
    "default": TF32 on GPUs, faster there, up to ~1 grey level off the released model).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"expected a (N, H, W, C) uint8 batch, got {images.dtype} {images.shape}")
    if images.shape[-1] != model.in_chn:
        raise ValueError(f"the model restores {model.in_chn}-channel images; got {images.shape[-1]} channels")
    devices = batch_devices(len(images))
    spare = -len(images) % devices
    padded = np.concatenate([images, np.repeat(images[-1:], spare, axis=0)]) if spare else images
    with jax.default_matmul_precision(precision):  # traced, lowered and cached per precision
        return np.asarray(_jitted_apply(model, devices)(variables, padded))[:len(images)]


def apply_image(model: D2LNet, variables, image: np.ndarray,
                precision: str = INFERENCE_PRECISION) -> np.ndarray:
    """Restores one uint8 image (H x W, H x W x 1 or H x W x 3), returned in the same shape."""
    image = np.asarray(image)
    batch = image[None, :, :, None] if image.ndim == 2 else image[None]
    return apply_batch(model, variables, batch, precision)[0].reshape(image.shape)
