"""d2ljax.testsets: known sets, modes, and files that cannot be read."""
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from d2ljax import testsets
from d2ljax.metrics import rgb_to_y

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _write(folder: Path, name: str, image: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / name)
    return folder / name


def _random(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_any_folder_in_both_modes(tmp_path):
    rgb = _random((12, 14, 3))
    _write(tmp_path / "mine", "a.png", rgb)
    bench = testsets.open_set(str(tmp_path / "mine"))
    assert bench.name == "mine" and bench.known is None
    [(name, colour)] = testsets.iter_images(bench, "color")
    assert name == "a" and np.array_equal(colour, rgb)
    [(_, gray)] = testsets.iter_images(bench, "gray")
    np.testing.assert_array_equal(gray, rgb_to_y(rgb))  # the protocol's gray, not convert('L')


def test_unreadable_file_is_named_skipped_and_counted(tmp_path, caplog):
    folder = tmp_path / "mine"
    _write(folder, "good.png", _random((12, 12, 3)))
    (folder / "broken.png").write_bytes(b"not a png")
    skipped = []
    with caplog.at_level(logging.WARNING):
        images = list(testsets.iter_images(testsets.open_set(str(folder)), "color", skipped))
    assert [name for name, _ in images] == ["good"]
    assert len(skipped) == 1 and skipped[0]["dataset"] == "mine"
    assert skipped[0]["file"].endswith("broken.png") and "broken.png" in skipped[0]["error"]
    assert "broken.png" in caplog.text


def test_gray_file_in_colour_evaluation_is_skipped(tmp_path):
    _write(tmp_path / "mine", "g.png", _random((12, 12)))
    skipped = []
    assert list(testsets.iter_images(testsets.open_set(str(tmp_path / "mine")), "color", skipped)) == []
    assert "gray image in a colour evaluation" in skipped[0]["error"]


def test_partial_known_set_warns_and_gray_set_refuses_colour(tmp_path, caplog):
    _write(tmp_path / "classic5", "lena.bmp", _random((12, 12)))
    with caplog.at_level(logging.WARNING):
        bench = testsets.open_set(str(tmp_path / "classic5"))
    assert bench.name == "classic5" and bench.known.n_images == 5
    assert "1 image files where classic5 has 5" in caplog.text
    with pytest.raises(ValueError, match="gray set"):
        list(testsets.iter_images(bench, "color"))
    with pytest.raises(ValueError, match="mode must be one of"):
        list(testsets.iter_images(bench, "rgb"))


def test_missing_or_empty_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        testsets.open_set(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        testsets.open_set(str(tmp_path / "empty"))


def test_identify_known_names():
    assert testsets.identify("/x/LIVE1_color/").name == "LIVE1"
    assert testsets.identify("/x/rgb8bit").name == "ICB" and testsets.identify("/x/rgb8bit").n_images == 14
    assert testsets.identify("/x/BSDS500_test").n_images == 200
    assert testsets.identify("/x/holiday") is None


@pytest.mark.parametrize("folder, name, count, mode", [
    ("classic5", "classic5", 5, "gray"), ("LIVE1_gray", "LIVE1", 29, "gray"),
    ("LIVE1_color", "LIVE1", 29, "color"), ("BSDS500_test", "BSDS500", 200, "gray")])
def test_shared_benchmarks_are_complete(folder, name, count, mode, caplog):
    path = DATA / "benchmarks" / folder
    if not path.is_dir():
        pytest.skip(f"{path} is absent (data lives in ../shared beside the repo)")
    with caplog.at_level(logging.WARNING):
        bench = testsets.open_set(str(path))
    assert (bench.name, len(bench.files)) == (name, count) and not caplog.text
    name, image = next(testsets.iter_images(bench, mode))
    assert image.dtype == np.uint8 and image.ndim == (2 if mode == "gray" else 3)
    if folder == "BSDS500_test":  # gray of a colour set: studio-range Y
        assert 16 <= image.min() and image.max() <= 235
