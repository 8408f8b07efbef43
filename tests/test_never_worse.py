"""Restoring never makes a photo worse, and training reads images as restoring does."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from conftest import random_variables
from d2ljax import checkpoints, imageio, jpeg, pretrained, restoration, samples
from d2ljax.imageio import ImageError
from d2ljax.metrics import psnr
from d2ljax.model import D2LNet


@pytest.fixture(scope="module")
def random_model():
    """A D2LNet(wf 4, depth 2) with random parameters: it changes any photo it restores."""
    model = D2LNet(3, wf=4, depth=2)
    return model, random_variables(model, 0, 0.05)


def textured(height=96, width=128, seed=0):
    """A smooth colour photo with grain, never quantised (no JPEG history)."""
    y, x = np.mgrid[:height, :width]
    base = np.stack([128 + 90 * np.sin(x / 7 + c) * np.cos(y / 5) for c in range(3)], -1)
    return np.clip(base + np.random.default_rng(seed).normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def jpeg_file(path, pixels, quality, **options):
    Image.fromarray(pixels).save(path, format="JPEG", quality=quality, **options)
    return path


def test_rule_strength_interpolates_the_measured_table():
    rule = {"10": 1.0, "50": 0.6, "90": 0.2}
    strengths = [restoration.rule_strength(rule, q) for q in (5, 10, 30, 50, 70, 90, 91, 100)]
    assert strengths == pytest.approx([1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.0, 0.0])
    assert restoration.rule_strength(rule, None) == 0.0  # no JPEG history: left unchanged
    assert restoration.rule_strength(None, 95) == 1.0  # an unmeasured model restores every JPEG


def test_blend_is_input_at_0_output_at_1_and_rounded_between():
    image, restored = np.array([[10, 200]], np.uint8), np.array([[20, 101]], np.uint8)
    assert restoration.blend(image, restored, 0.0) is image and restoration.blend(image, restored, 1.0) is restored
    assert restoration.blend(image, restored, 0.5).tolist() == [[15, 150]]  # 150.5 rounds to even


def test_clean_photo_comes_back_bit_identical_unless_forced(tmp_path, random_model):
    source = tmp_path / "clean.png"
    Image.fromarray(textured()).save(source)
    entries = restoration.model_entries(*random_model)
    restoration.restore_files([str(source)], str(tmp_path / "out"), entries, progress=False)
    with Image.open(source) as original, Image.open(tmp_path / "out" / "clean.png") as out:
        assert np.array_equal(np.asarray(out), np.asarray(original))
    same, info = restoration.restore(textured(), random_model, return_info=True)
    assert np.array_equal(same, textured()) and info.quality is None and info.strength == 0
    assert "no JPEG history" in info.reason and "--force" in info.reason
    forced = restoration.restore_files([str(source)], str(tmp_path / "forced"), entries, progress=False, force=True)
    with Image.open(forced.written[0]) as out:
        assert not np.array_equal(np.asarray(out), textured())


def test_a_models_rule_decides_per_quality(tmp_path, random_model):
    """The rule in model.json: 0 at high quality leaves a JPEG as decoded, 1 at QF 10 restores."""
    folder = tmp_path / "ruled"
    checkpoints.save_model(str(folder), *random_model, metadata={"qf": "blind", "restore_rule": {"10": 1, "80": 0}})
    high, low = (jpeg.compress(textured(), q) for q in (85, 10))
    same, info = restoration.restore(high, str(folder), return_info=True)
    assert np.array_equal(same, high) and info.quality == 85 and info.strength == 0  # detected in the pixels
    assert not np.array_equal(restoration.restore(low, str(folder)), low)
    assert np.array_equal(restoration.restore(high, str(folder), quality=85), high)
    assert not np.array_equal(restoration.restore(high, str(folder), quality=85, force=True), high)
    _, info = restoration.restore(jpeg_file(tmp_path / "q45.jpg", textured(), 45), str(folder), return_info=True)
    assert info.quality == 45 and info.strength == pytest.approx(1 - 35 / 70)
    assert "quantisation tables" in info.reason and "strength 0.50, kept in its JPEG's quantisation cells" in info.reason


def test_shipped_models_do_not_degrade_high_quality_and_restore_low_quality():
    """With the CLI's choice among the shipped models and their rules (a generated photo)."""
    shipped = [pretrained.model_entry(os.path.join(pretrained.PACKAGE_MODELS, name))
               for name in sorted(os.listdir(pretrained.PACKAGE_MODELS))]
    assert all(entry.restore_rule for entry in shipped)
    photo = textured(128, 128)
    for image in (photo, photo[..., 1]):
        for qf in (10, 30, 70, 90, 95):
            compressed = jpeg.compress(image, qf)
            restored, info = restoration.restore(compressed, shipped, quality=qf, return_info=True)
            assert info.strength > 0 and not np.array_equal(restored, compressed), (image.ndim, qf)  # restored
            assert psnr(image, restored) >= psnr(image, compressed) - 0.02, (image.ndim, qf)
            if qf == 10:
                assert psnr(image, restored) > psnr(image, compressed) + 0.1


def test_rgba_keeps_its_alpha(tmp_path, random_model):
    rgb = textured()
    alpha = np.tile(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    source = tmp_path / "logo.png"
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(source)
    entries = restoration.model_entries(*random_model)
    for force in (False, True):
        summary = restoration.restore_files([str(source)], str(tmp_path / str(force)), entries, progress=False,
                                            force=force)
        with Image.open(summary.written[0]) as out:
            assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], alpha)
            assert np.array_equal(np.asarray(out)[..., :3], rgb) != force
    gray = restoration.restore(Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA"), random_model, force=True)
    assert gray.mode == "LA" and np.array_equal(np.asarray(gray)[..., 1], alpha)
    array = restoration.restore(np.dstack([rgb, alpha]), random_model, force=True)
    assert array.shape == rgb.shape[:2] + (4,) and np.array_equal(array[..., 3], alpha)
    assert np.array_equal(array[..., :3], restoration.restore(rgb, random_model, force=True))


def test_a_photo_is_opened_once(tmp_path, monkeypatch):
    path = jpeg_file(tmp_path / "photo.jpg", textured(), 40, icc_profile=b"profile")
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    photo = restoration.read_photo(str(path))
    assert len(opened) == 1 and photo.quality == 40 and photo.icc_profile == b"profile"


def rotated_cmyk_and_deep(folder):
    """A rotated JPEG, a CMYK JPEG and a 16-bit PNG (which restoring refuses)."""
    exif = Image.Exif()
    exif[imageio.ORIENTATION] = 6
    jpeg_file(folder / "rotated.jpg", textured(40, 64), 90, exif=exif.tobytes())
    Image.fromarray(textured(48, 48, 1)).convert("CMYK").save(folder / "cmyk.jpg", quality=90)
    Image.fromarray(np.full((40, 40), 3000, np.uint16)).save(folder / "deep.png")
    return sorted(str(p) for p in folder.iterdir())


def test_training_reads_what_restoring_reads_and_refuses_what_it_refuses(tmp_path):
    names = rotated_cmyk_and_deep(tmp_path)
    loaded = samples.load_images(names, names, None, "color", 16, budget_mb=64)
    with pytest.raises(ImageError) as refused:
        restoration.read_photo(str(tmp_path / "deep.png"))
    assert [str(s) for s in loaded.skipped] == [str(refused.value)]
    assert loaded.summary().startswith("using 2 of 3 images; 1 skipped: deep.png (I;16")
    store = loaded.store
    for index, name in enumerate(["cmyk.jpg", "rotated.jpg"]):
        pixels = restoration.read_photo(str(tmp_path / name)).pixels  # upright, CMYK as RGB
        assert (store.heights[index], store.widths[index]) == pixels.shape[:2]
        assert np.array_equal(store.crop(index, 0, 0, 32), pixels[:32, :32])
    # Decoded per sample (over the budget), TensorFlow must decode them alike: the rotated and
    # the CMYK JPEG are left out, saying why.
    Image.fromarray(textured(40, 40)).save(tmp_path / "plain.png")
    names.append(str(tmp_path / "plain.png"))
    per_sample = samples.load_images(names, names, None, "color", 16, budget_mb=0)
    assert [s.name for s in per_sample.skipped] == [str(tmp_path / n) for n in ("deep.png", "cmyk.jpg", "rotated.jpg")]
    assert all("cannot be decoded per sample" in s.reason for s in per_sample.skipped[1:])


def test_bytes_and_files_read_alike(tmp_path):
    path = jpeg_file(tmp_path / "photo.jpg", textured(), 30)
    from_bytes = imageio.read(io.BytesIO(path.read_bytes()), "photo.jpg")
    assert np.array_equal(from_bytes.pixels, imageio.read(str(path)).pixels)
    assert jpeg.tables_quality(from_bytes.quantization) == 30


def test_cli_leaves_a_clean_photo_unless_forced(tmp_path, capsys, random_model):
    from d2ljax import __main__ as cli
    folder = tmp_path / "model"
    checkpoints.save_model(str(folder), *random_model, metadata={"qf": "blind"})
    source = tmp_path / "clean.png"
    Image.fromarray(textured()).save(source)
    for flags, changed in (([], False), (["--force"], True)):
        out = tmp_path / f"out{len(flags)}"
        assert cli.main(["restore", str(source), "-o", str(out), "--checkpoint", str(folder), "--verbose", *flags]) == 0
        with Image.open(out / "clean.png") as restored:
            assert (not np.array_equal(np.asarray(restored), textured())) == changed
    err = capsys.readouterr().err
    assert "clean.png: no JPEG history in the pixels: left unchanged (--force restores it)" in err
    assert "clean.png: no JPEG history in the pixels -> " in err and ", forced" in err
