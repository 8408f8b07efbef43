"""d2ljax: D2LNet (Dual-Domain Learning for JPEG Artifacts Removal) in JAX/Flax.

    import d2ljax
    restored = d2ljax.restore("photo.jpg")       # a PIL image, by the shipped model that fits it
    restored, info = d2ljax.restore(photo_uint8, model="gray_blind", return_info=True)
    model, variables = d2ljax.load_pretrained("color_qf10")  # a name, model folder or workdir
    model, variables = d2ljax.convert.from_torch("D2LNet_qf10.pth")   # the authors' weights
    restored = d2ljax.restore(photo_uint8, model=(model, variables))

Modules: model (D2LNet), spectral, losses, metrics (PSNR/SSIM/PSNR-B as the published tables),
jpeg (the protocol's JPEG, quality estimation), data (tf.data training pipelines), testsets,
evaluation, inference (a model on uint8 images), restoration (restore), checkpoints (model
folders, training checkpoints), pretrained (named models), convert, train_lib.
Loading a model or restoring imports neither the trainer, optax nor TensorFlow.
"""
import importlib

from d2ljax import checkpoints, jpeg, metrics, spectral  # noqa: F401
from d2ljax.checkpoints import load_model, save_model
from d2ljax.jpeg import compress, estimate_quality
from d2ljax.metrics import psnr, psnrb, rgb_to_y, ssim
from d2ljax.model import D2LNet, D2LNetPaper, D2LNetSmall, D2LNetTiny
from d2ljax.pretrained import list_pretrained, load_pretrained
from d2ljax.restoration import restore

__all__ = [
    "D2LNet", "D2LNetPaper", "D2LNetSmall", "D2LNetTiny", "compress", "estimate_quality", "list_pretrained",
    "load_model", "load_pretrained", "psnr", "psnrb", "restore", "rgb_to_y", "save_model", "ssim",
]
__version__ = "0.1.0"

# Loaded on first use: `convert` is also run as `python -m d2ljax.convert`, which warns when
# the package has imported it already; `data`, `train_lib` and `evaluation` pull in TensorFlow.
_LAZY = ("convert", "data", "evaluation", "inference", "losses", "testsets", "train_lib")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"d2ljax.{name}")
    raise AttributeError(f"module 'd2ljax' has no attribute {name!r}")
