"""The CPU-sized models shipped with d2ljax: a small D2LNet trained on BSDS500 train + val.

    python train.py --config=configs/bsds.py:gray,10 --workdir=runs/gray_qf10 --config.num_train_steps=1200
    python train.py --config=configs/bsds.py:color,blind --workdir=runs/color_blind_more \
        --config.init_from=color_blind --config.learning_rate=5e-4 --config.schedule=budget \
        --config.time_budget_s=3600 --config.num_train_steps=1000000 --config.warmup_steps=50 \
        --config.seed=7

The first trains a gray QF 10 model from scratch; the second continues the shipped blind colour
model for an hour of wall time, the way the shipped models grow from day to day (each run with a
seed of its own, so it sees new patches). Every shipped model's model.json records the command
of its last run ("config") and every run behind it ("runs": recipe, steps, CPU hours, the
validation PSNR by step).

The argument is MODE,QF: MODE 'gray' or 'color'; QF a quality (one model per QF, as the
paper trains) or 'blind' (one model for QF 10-95, see below). Data: the 300 photos of
BSDS500 train + val, the folders BSDS500_train and BSDS500_val in $D2LJAX_DATA (README.md,
"Data"; or --config.train_data=FOLDERS); validation (the choice of the best checkpoint) on the
4 photos shipped with d2ljax, which are in no benchmark set.
The model (wf 16, depth 3, 0.42M parameters, 1.7 MB) and the recipe (64x64 patches, batch 16,
Adam at 1e-3, L1 on out_2 only) follow a calibration run that gained +0.91 dB on LIVE1 gray
QF 10 in 13 minutes on 2 CPU cores. The blind models started as QF 10 models continued on the
blind mixture (config.init_from), the cheapest way to a model that serves every QF on 2 cores.
Time: 1.3-1.6 s of CPU time per step (about 1.5 steps per second on 2 otherwise idle cores).

Blind: 65% of the patches at QF 10, 20 or 30 (the table's QFs, where JPEG artifacts and the
gains are largest), 35% at a QF drawn uniformly from [10, 95] (the high qualities photos often
have, where a model that never saw them makes a photo worse); a quarter of the patches are
shifted off the 8x8 JPEG grid (FBCNN shifts half; a small model has less capacity to spare).
Validation at QF 10, 30, 60 and 90.
"""
from configs import default

BSDS500_TRAIN_VAL = "$D2LJAX_DATA/BSDS500_train,$D2LJAX_DATA/BSDS500_val"


def parse_arg(arg: str) -> tuple[str, str]:
    """'gray,10' -> ('gray', '10'); one-line error on anything else."""
    parts = arg.split(",") if arg else []
    if len(parts) != 2 or parts[0] not in ("gray", "color") or not (parts[1] == "blind" or parts[1].isdigit()):
        raise ValueError(f"configs/bsds.py needs MODE,QF such as 'gray,10' or 'color,blind'; got {arg!r}")
    return parts[0], parts[1]


def get_config(arg: str = ""):
    mode, qf = parse_arg(arg)
    config = default.get_config(mode)
    config.train_data = BSDS500_TRAIN_VAL
    config.val_data = "shipped:"
    config.val_crop = 0
    if qf == "blind":
        config.qf = (10, 20, 30)
        config.qf_range = (10, 95)
        config.qf_range_prob = 0.35
        config.misalign = 0.25
        config.val_qf = (10, 30, 60, 90)
    else:
        config.qf = (int(qf),)
        config.val_qf = (int(qf),)
    config.wf = 16
    config.depth = 3
    config.patch_size = 64
    config.batch_size = 16
    config.amp_weight = 0.0
    config.phase_weight = 0.0
    config.learning_rate = 1e-3
    config.warmup_steps = 100
    config.num_train_steps = 4000
    config.ema_decay = 0.999
    config.log_every_steps = 50
    config.checkpoint_every_steps = 500
    return config
