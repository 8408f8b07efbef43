"""Validation during training: held-out images compressed at config.val_qf, restored by the
current parameters, scored by the protocol's PSNR."""
from __future__ import annotations

import ml_collections
import numpy as np

from d2ljax import metrics
from d2ljax.checkpoints import BEST_METRIC
from d2ljax.imageio import list_image_files, side_by_side
from d2ljax.inference import apply_image
from d2ljax.jpeg import compress
from d2ljax.model import D2LNet
from d2ljax.testsets import BenchmarkSet, iter_images

VAL_PICTURE_SIZE = 192  # side of the validation crops shown in TensorBoard


def load_validation(config: ml_collections.ConfigDict) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(qf, ground truth, JPEG) uint8 triples of config.val_data, centre-cropped to val_crop."""
    files = tuple(list_image_files(config.val_data))
    bench = BenchmarkSet(name="validation", path=config.val_data, files=files, known=None)
    pairs = []
    for _, gt in iter_images(bench, config.mode):
        gt = center_crop(gt, config.val_crop)
        pairs += [(qf, gt, compress(gt, qf)) for qf in config.val_qf]
    if not pairs:
        raise ValueError(f"config.val_data={config.val_data!r}: no readable image")
    return pairs


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central size x size crop (0: the whole image), its corner on the 8x8 JPEG grid."""
    if not size:
        return image
    top, left = (max(d - size, 0) // 2 // 8 * 8 for d in image.shape[:2])
    return image[top:top + size, left:left + size]


def validate(model: D2LNet, params, pairs) -> tuple[dict[str, float], np.ndarray]:
    """Mean PSNR (protocol rounding) of the restored and of the JPEG images and the gain, and
    a picture for TensorBoard: the first image's JPEG, restored and original side by side."""
    restored = [apply_image(model, {"params": params}, jpeg) for _, _, jpeg in pairs]
    psnr = np.mean([metrics.psnr(gt, out) for (_, gt, _), out in zip(pairs, restored)])
    jpeg = np.mean([metrics.psnr(gt, jpeg) for _, gt, jpeg in pairs])
    _, gt, first_jpeg = pairs[0]
    picture = side_by_side([first_jpeg, restored[0], gt], size=VAL_PICTURE_SIZE)
    return {BEST_METRIC: float(psnr), "val_psnr_jpeg": float(jpeg), "val_gain": float(psnr - jpeg)}, picture
