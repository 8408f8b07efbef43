"""The paper's QF 10 model: colour (or gray with ':gray'), DIV2K + Flickr2K, 256x256 patches.

    python train.py --config=configs/qf10.py --workdir=runs/qf10_color
    python train.py --config=configs/qf10.py:gray --workdir=runs/qf10_gray

Time and data as configs/default.py. Expected result (the paper's Tables 1 and 2):
LIVE1 27.82 dB colour, 30.08 dB gray.
"""
from configs import default


def get_config(arg: str = ""):
    config = default.get_config(arg)
    config.qf = (10,)
    config.val_qf = (10,)
    return config
