"""One blind model for all QFs, with FBCNN's recipe (docs/protocol.md#training-recipes).

    python train.py --config=configs/blind.py --workdir=runs/blind_color
    python train.py --config=configs/blind.py:gray --workdir=runs/blind_gray

Each patch (P + 8, one of 8 flips/rotations) is JPEG-compressed at a QF drawn 25% of the time
uniformly from [8, 96] (colour; [5, 95] gray), else from {10, 20, ..., 60}; both images are
then cropped to P, half the time off the 8x8 grid. Time and data as configs/default.py.
Expected result: not measured; the bar is the FBCNN column of the paper's Table 2 (LIVE1
colour 27.77 / 30.11 / 31.43 dB at QF 10 / 20 / 30).
"""
from configs import default


def get_config(arg: str = ""):
    config = default.get_config(arg)
    config.qf = (10, 20, 30, 40, 50, 60)
    config.qf_range = (5, 95) if config.mode == "gray" else (8, 96)
    config.qf_range_prob = 0.25
    config.misalign = 0.5
    config.val_qf = (10, 20, 30)
    return config
