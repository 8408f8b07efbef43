"""The paper's QF 30 model: colour (or gray with ':gray'), DIV2K + Flickr2K, 256x256 patches.

    python train.py --config=configs/qf30.py --workdir=runs/qf30_color
    python train.py --config=configs/qf30.py:gray --workdir=runs/qf30_gray

Time and data as configs/default.py. Expected result (the paper's Tables 1 and 2):
LIVE1 31.49 dB colour, 33.91 dB gray.
"""
from configs import default


def get_config(arg: str = ""):
    config = default.get_config(arg)
    config.qf = (30,)
    config.val_qf = (30,)
    return config
