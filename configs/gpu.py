"""A D2LNet sized for one accelerator session: wf 32, depth 4, bfloat16, blind, time-budgeted.

    python train.py --config=configs/gpu.py:color --workdir=runs/gpu_color --config.time_budget_s=300
    bash benchmarks/device_train.sh OUT_DIR configs/gpu.py:color    # on the lent GPU machine

The argument is the mode ('color', the default, or 'gray'). Data: BSDS500 train + val, read
from .device/data/train (benchmarks/device_prepare.sh puts them there, beside the copy that
travels to the GPU machine) or ../shared/data/train; validation on the photos shipped with
d2ljax. Recipe: FBCNN's blind mixture (configs/blind.py: QF drawn per patch, half the patches
off the JPEG grid), 128x128 patches, batch 32, Adam at 5e-4, the 'budget' schedule (warmup,
flat, then a cosine decay ending with time_budget_s), EMA 0.999. Continue a previous run with
--config.init_from=FOLDER (fresh optimiser, short warmup). Time: time_budget_s (600 s by
default). Expected result: not measured yet (no GPU run of this config so far).
"""
import os

from configs import blind
from d2ljax.imageio import SAMPLE_PHOTOS_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_SETS = ("BSDS500_train", "BSDS500_val")


def train_folder() -> str:
    """.device/data/train when prepared (it travels to the GPU machine), else ../shared/data/train."""
    carried = os.path.join(ROOT, ".device", "data", "train")
    return carried if os.path.isdir(carried) else os.path.join(os.path.dirname(ROOT), "shared", "data", "train")


def get_config(arg: str = ""):
    config = blind.get_config(arg)
    config.train_data = ",".join(os.path.join(train_folder(), name) for name in TRAIN_SETS)
    config.val_data = str(SAMPLE_PHOTOS_DIR)
    config.val_crop = 0
    config.wf = 32
    config.depth = 4
    config.dtype = "bfloat16"
    config.patch_size = 128
    config.batch_size = 32
    config.learning_rate = 5e-4
    config.schedule = "budget"
    config.time_budget_s = 600.0
    config.warmup_steps = 200
    config.num_train_steps = 10**9  # the budget ends the run
    config.ema_decay = 0.999
    config.log_every_steps = 50
    config.checkpoint_every_steps = 2000
    config.val_every_steps = 500
    return config
