"""A small D2LNet that learns on a CPU in a few minutes from the photos shipped with d2ljax.

    python train.py --config=configs/quickstart.py --workdir=runs/quickstart

Trains on three of the four photos in d2ljax/assets/photos and validates on the fourth
(chelsea.png, never trained on), colour, QF 10. Time: about 2 minutes on 2 CPU cores (1 min
48 s to 1 min 57 s, compilation included). Expected result (measured, either input pipeline:
the same losses to the last digit): the loss falls from 0.116 to 0.096 and chelsea's PSNR
rises from 28.467 dB (the JPEG) to 28.53 / 29.00 / 29.03 dB at steps 100 / 200 / 300
(+0.56 dB). The samples are a pure function of config.seed, so a rerun on the same machine
and software repeats these numbers; another seed, CPU or JAX version moves them a little
(another seed: other patches; other CPUs and versions: other float rounding).
The workdir is a model for evaluate.py and the restore command (--checkpoint=runs/quickstart).
"""
from configs import default


def get_config(arg: str = ""):
    config = default.get_config(arg)
    config.train_data = "shipped:astronaut.png,shipped:coffee.png,shipped:rocket.jpg"
    config.val_data = "shipped:chelsea.png"
    config.val_crop = 0  # the whole photo (451x300)
    config.wf = 16
    config.depth = 3
    config.patch_size = 32
    config.batch_size = 8
    config.learning_rate = 1e-3
    config.warmup_steps = 50
    config.num_train_steps = 300
    config.ema_decay = 0.0  # too short a run for an average to help
    config.log_every_steps = 10
    config.checkpoint_every_steps = 100
    return config
