"""A small D2LNet that learns on a CPU in a few minutes from the photos shipped with d2ljax.

    python train.py --config=configs/quickstart.py --workdir=runs/quickstart

Trains on three of the four photos in d2ljax/assets/photos and validates on the fourth
(chelsea.png, never trained on), colour, QF 10. Time: about 5 minutes on 2 CPU cores
(measured 5.5 min, 4.4 of them for the 300 steps, on 2 cores shared with other jobs).
Expected result (measured): the loss falls from 0.115 to 0.098 and chelsea's PSNR rises from
28.47 dB (the JPEG) to 28.83 / 28.99 / 29.11 dB at steps 100 / 200 / 300 (+0.65 dB).
The workdir is a model folder for evaluate.py (--checkpoint=runs/quickstart --mode=color).
"""
from configs import default
from d2ljax.imageio import SAMPLE_PHOTOS_DIR

VAL_PHOTO = "chelsea.png"


def get_config(arg: str = ""):
    config = default.get_config(arg)
    photos = sorted(p for p in SAMPLE_PHOTOS_DIR.iterdir() if p.suffix in (".png", ".jpg"))
    config.train_data = ",".join(str(p) for p in photos if p.name != VAL_PHOTO)
    config.val_data = str(SAMPLE_PHOTOS_DIR / VAL_PHOTO)
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
