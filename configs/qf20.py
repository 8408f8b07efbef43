"""The paper's QF 20 model: colour (or gray with ':gray'), DIV2K + Flickr2K, 256x256 patches.

    python train.py --config=configs/qf20.py --workdir=runs/qf20_color
    python train.py --config=configs/qf20.py:gray --workdir=runs/qf20_gray

Time and data as configs/default.py. Expected result (the paper's Tables 1 and 2):
LIVE1 30.14 dB colour, 32.47 dB gray.
"""
from configs import default


def get_config(arg: str = ""):
    config = default.get_config(arg)
    config.qf = (20,)
    config.val_qf = (20,)
    return config
