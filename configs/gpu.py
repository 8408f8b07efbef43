"""A D2LNet sized for one accelerator session: wf 32, depth 4, bfloat16, blind, time-budgeted.

    D2LJAX_DATA=PATH/TO/DATA python train.py --config=configs/gpu.py:color --workdir=runs/gpu_color
    bash tools/device/device_train.sh OUT_DIR configs/gpu.py:color    # on a lent GPU machine

The argument is the mode ('color', the default, or 'gray'). Data: BSDS500 train + val, the
folders BSDS500_train and BSDS500_val in $D2LJAX_DATA (README.md, "Data"; tools/device/
device_train.sh points it at the copy it carries); validation on the photos shipped with
d2ljax. Recipe: FBCNN's blind mixture (configs/blind.py: QF drawn per patch, half the patches
off the JPEG grid), 128x128 patches, batch 32, Adam at 5e-4, the 'budget' schedule (warmup,
flat, then a cosine decay ending with time_budget_s), EMA 0.999. Continue a previous run with
--config.init_from=FOLDER (fresh optimiser, short warmup). Time: time_budget_s (600 s by
default). Expected result: not measured.
"""
from configs import blind, bsds


def get_config(arg: str = ""):
    config = blind.get_config(arg)
    config.train_data = bsds.BSDS500_TRAIN_VAL
    config.val_data = "shipped:"
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
