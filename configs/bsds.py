"""The CPU-sized models shipped with d2ljax: a small D2LNet trained on BSDS500 train + val.

    python train.py --config=configs/bsds.py:gray,10 --workdir=runs/gray_qf10 --config.num_train_steps=1200
    python train.py --config=configs/bsds.py:color,10 --workdir=runs/color_qf10 --config.num_train_steps=900
    python train.py --config=configs/bsds.py:gray,blind --workdir=runs/gray_blind \
        --config.init_from=runs/gray_qf10 --config.num_train_steps=300 --config.learning_rate=5e-4 \
        --config.warmup_steps=20 --config.checkpoint_every_steps=100

The argument is MODE,QF: MODE 'gray' or 'color'; QF a quality (one model per QF, as the
paper trains) or 'blind' (one model for QF 10-90, see below). Data: the 300 photos of
BSDS500 train + val, the folders BSDS500_train and BSDS500_val in $D2LJAX_DATA (README.md,
"Data"; or --config.train_data=FOLDERS); validation (the choice of the best checkpoint) on the
4 photos shipped with d2ljax, which are in no benchmark set. Each shipped model's model.json
records the exact runs behind it (fine-tuning steps, learning rates, seeds).
The model (wf 16, depth 3, 0.42M parameters, 1.7 MB) and the recipe (64x64 patches, batch 16,
Adam at 1e-3, L1 on out_2 only) follow a calibration run that gained +0.91 dB on LIVE1 gray
QF 10 in 13 minutes on 2 CPU cores. The blind models are the QF 10 models fine-tuned on the
blind mixture (config.init_from), the cheapest way to a model that serves every QF on 2 cores.
Time: about 1.6 s per step on 2 CPU cores. Results: README.md, "Shipped models".

Blind: 75% of the patches at QF 10, 20 or 30 (the table's QFs, where JPEG artifacts and the
gains are largest), 25% at a QF drawn uniformly from [10, 90]; a quarter of the patches are
shifted off the 8x8 JPEG grid (FBCNN shifts half; a small model has less capacity to spare).
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
        config.qf_range = (10, 90)
        config.qf_range_prob = 0.25
        config.misalign = 0.25
        config.val_qf = (10, 30, 60)
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
