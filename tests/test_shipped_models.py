"""The models shipped in d2ljax/weights: metadata, the 20 MB budget, and a gain over the JPEG
on a photo none of them was trained on."""
import os

import pytest

from d2ljax import checkpoints, metrics, pretrained
from d2ljax.imageio import SAMPLE_PHOTOS_DIR
from d2ljax.imageio import read_image
from d2ljax.inference import apply_image
from d2ljax.jpeg import compress

SHIPPED = {"gray_qf10": (1, [10]), "gray_qf20": (1, [20]), "color_qf10": (3, [10]), "gray_blind": (1, "10-95"), "color_blind": (3, "10-95")}
BUDGET_BYTES = 20 * 1024 * 1024


def folder(name: str) -> str:
    return os.path.join(pretrained.PACKAGE_MODELS, name)


def test_exactly_the_documented_models_ship():
    assert sorted(os.listdir(pretrained.PACKAGE_MODELS)) == sorted(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_metadata_says_what_and_how_it_was_trained(name):
    metadata = checkpoints.read_model_json(folder(name))
    in_chn, qf = SHIPPED[name]
    assert (metadata["in_chn"], metadata["qf"], metadata["mode"]) == (in_chn, qf, "gray" if in_chn == 1 else "color")
    assert "BSDS500_train" in metadata["train_data"] and metadata["num_train_steps"] > 0
    assert any(name.startswith("LIVE1") for name in metadata["results"])  # evaluate.py's, as in README.md


def test_within_the_size_budget():
    total = sum(os.path.getsize(os.path.join(root, f))
                for root, _, files in os.walk(pretrained.PACKAGE_MODELS) for f in files)
    assert total <= BUDGET_BYTES


# Each model on the shipped photo astronaut.png, centre 256x256 (not in BSDS500; one of the 4
# photos configs/bsds.py validates on, which only chose among 2-3 checkpoints): QF -> dB over
# the JPEG, at least (measured: gray_qf10 2.29, gray_qf20 1.81, color_qf10 1.88, gray_blind 2.46 / 2.60,
# color_blind 1.68 / 1.48).
MIN_GAIN = {"gray_qf10": {10: 1.2}, "gray_qf20": {20: 1.4}, "color_qf10": {10: 1.4}, "gray_blind": {30: 1.4, 60: 1.5},
            "color_blind": {30: 1.3, 60: 1.1}}


@pytest.mark.parametrize("name", SHIPPED)
def test_restores_a_held_out_photo_better_than_jpeg(name):
    model, variables = pretrained.load_pretrained(folder(name))
    photo = read_image(str(SAMPLE_PHOTOS_DIR / "astronaut.png"), "color")
    photo = metrics.rgb_to_y(photo) if model.in_chn == 1 else photo
    top, left = (photo.shape[0] - 256) // 2, (photo.shape[1] - 256) // 2
    gt = photo[top:top + 256, left:left + 256]
    gains = {}
    for qf in MIN_GAIN[name]:
        jpeg = compress(gt, qf)
        gains[qf] = metrics.psnr(gt, apply_image(model, variables, jpeg)) - metrics.psnr(gt, jpeg)
    assert all(gains[qf] >= gain for qf, gain in MIN_GAIN[name].items()), gains
