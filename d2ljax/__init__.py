"""d2ljax: D2LNet (Dual-Domain Learning for JPEG Artifacts Removal) in JAX/Flax.

    import d2ljax
    restored = d2ljax.restore("photo.jpg")       # a PIL image, by the shipped model that fits it
    restored, info = d2ljax.restore(photo_uint8, model="gray_blind", return_info=True)
    model, variables = d2ljax.load_pretrained("color_qf10")  # a name, model folder or workdir
    model, variables = d2ljax.convert.from_torch("D2LNet_qf10.pth")   # the authors' weights
    restored = d2ljax.restore(photo_uint8, model=(model, variables))

Modules: model (D2LNet), spectral, losses, metrics (PSNR/SSIM/PSNR-B as the published tables),
jpeg (the protocol's JPEG, quality estimation), samples (what a training sample is), data and
grain_data (the tf.data and grain input pipelines: the same batches), testsets,
evaluation, inference (a model on uint8 images), restoration (restore), checkpoints (model
folders, training checkpoints), pretrained (named models), convert, train_lib (the training loop;
its parts: train_config, train_state, schedules, validation, run_log, stop_signals), console, cpu
(CPU-only speed-ups).
Loading a model or restoring imports neither the trainer, optax nor TensorFlow.
"""
import importlib

__version__ = "0.1.0"

# Public names and the module each comes from. Everything loads on first use, so that a tool
# importing one light module (grain's workers import d2ljax.samples) does not pay for JAX,
# orbax or TensorFlow.
_EXPORTS = {
    "D2LNet": "model", "D2LNetPaper": "model", "D2LNetSmall": "model", "D2LNetTiny": "model",
    "compress": "jpeg", "estimate_quality": "jpeg", "psnr": "metrics", "psnrb": "metrics",
    "rgb_to_y": "metrics", "ssim": "metrics", "load_model": "checkpoints", "save_model": "checkpoints",
    "list_pretrained": "pretrained", "load_pretrained": "pretrained", "restore": "restoration",
}
_MODULES = ("checkpoints", "console", "convert", "data", "evaluation", "grain_data", "imageio", "inference",
            "jpeg", "losses", "metrics", "model", "pretrained", "restoration", "samples", "spectral",
            "testsets", "train_lib", "train_config", "train_state", "schedules", "validation", "run_log",
            "stop_signals")
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"d2ljax.{_EXPORTS[name]}"), name)
    if name in _MODULES:
        return importlib.import_module(f"d2ljax.{name}")
    raise AttributeError(f"module 'd2ljax' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS, *_MODULES])
