"""Restoring photos as a user would: folders with bad files, kinds, metadata, tiles, model choice."""
import functools
import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from conftest import outside_cells, random_variables
import d2ljax
from d2ljax import checkpoints, imageio, jpeg, pretrained, restoration
from d2ljax.imageio import ImageError
from d2ljax.metrics import psnr
from d2ljax.model import D2LNet
from d2ljax.pretrained import BLIND, ModelEntry

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = restoration.Options(max_pixels=64 * 64, tile=64, overlap=16, bucket=32)  # tiles anything above 64x64
WHOLE = restoration.Options(max_pixels=1 << 30, tile=1, overlap=0, bucket=0)


@functools.lru_cache(maxsize=None)
def tiny_model(in_chn=3, scale=0.05, seed=0):
    """A D2LNet(wf 4, depth 2) with random parameters (scale 0: exactly the identity)."""
    model = D2LNet(in_chn, wf=4, depth=2)
    return model, random_variables(model, seed, scale)


@pytest.fixture(scope="module")
def rgb_model():
    return tiny_model(3)


@pytest.fixture(scope="module")
def identity_model():
    return tiny_model(3, scale=0.0)


def photo(height=40, width=56, seed=0):
    """A smooth colour test image with some texture."""
    y, x = np.mgrid[:height, :width]
    rng = np.random.default_rng(seed)
    base = np.stack([128 + 90 * np.sin(x / 7 + c) * np.cos(y / 5) for c in range(3)], -1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def jpeg_bytes(pixels, quality=10, **options):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality, **options)
    return buffer.getvalue()


def bomb_png(width=100_000, height=100_000):
    """A tiny PNG whose header claims width x height (Pillow refuses it as a decompression bomb)."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR payload starts at byte 16
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def bad_files(folder):
    """Writes one file per kind of bad input; returns {name: words its error line must contain}."""
    write = lambda name, data: open(os.path.join(folder, name), "wb").write(data)
    write("text.jpg", b"this is not an image\n")
    write("empty.png", b"")
    full = jpeg_bytes(photo(64, 64), 90)
    write("truncated.jpg", full[:len(full) * 2 // 3])
    write("bomb.png", bomb_png())
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(os.path.join(folder, "sixteen.png"))
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    frames[0].save(os.path.join(folder, "animated.png"), save_all=True, append_images=frames[1:])
    frames[0].save(os.path.join(folder, "moving.gif"), save_all=True, append_images=frames[1:])
    return {"text.jpg": "not a readable image", "empty.png": "not a readable image",
            "truncated.jpg": "truncated", "bomb.png": "decompression bomb",
            "sixteen.png": "16-bit", "animated.png": "animated", "moving.gif": "animated"}


def test_cli_restores_a_folder_and_reports_each_bad_file(tmp_path, rgb_model):
    """A new user's run: good colour and gray JPEGs beside every kind of bad file."""
    inputs, outdir, model_dir = tmp_path / "in", tmp_path / "out", tmp_path / "qf10"
    inputs.mkdir()
    checkpoints.save_model(str(model_dir), *rgb_model, metadata={"qf": [10]})
    (inputs / "colour.jpg").write_bytes(jpeg_bytes(photo(), 10))
    (inputs / "gray.jpg").write_bytes(jpeg_bytes(photo()[..., 1], 10))
    Image.fromarray(photo()).convert("CMYK").save(inputs / "cmyk.jpg", quality=90)  # read as RGB
    Image.fromarray(photo()).convert("P").save(inputs / "still.gif")  # one frame: a palette image
    expected_errors = bad_files(str(inputs))
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "D2LJAX_MODELS": ""}
    result = subprocess.run(
        [sys.executable, "-m", "d2ljax", "restore", str(inputs), "-o", str(outdir),
         "--checkpoint", str(model_dir), "--verbose"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    for name, words in expected_errors.items():
        hits = [line for line in lines if name in line and words in line and "failed:" not in line]
        assert len(hits) == 1, (name, result.stderr)
    assert "restored 4, skipped 0, failed 7" in result.stderr
    assert any("colour.jpg: JPEG quality ~10 -> " in line and "QF 10" in line for line in lines)
    assert sorted(os.listdir(outdir)) == ["cmyk.png", "colour.png", "gray.png", "still.png"]
    for name in ("cmyk.png", "still.png"):
        with Image.open(outdir / name) as image:
            assert (image.mode, image.size) == ("RGB", (56, 40))
    with Image.open(outdir / "colour.png") as colour, Image.open(outdir / "gray.png") as gray:
        assert (colour.format, colour.mode, colour.size) == ("PNG", "RGB", (56, 40))
        assert (gray.mode, gray.size) == ("L", (56, 40))


def test_kinds_are_kept_for_arrays_and_pil(rgb_model):
    """Gray stays gray and colour colour, whichever kind of model restores them."""
    gray_model = tiny_model(1)
    rgb, gray = photo(), photo()[..., 0]
    for model, variables in (rgb_model, gray_model):
        assert restoration.restore(rgb, model, variables, force=True).shape == rgb.shape
        assert restoration.restore(gray, model, variables, force=True).shape == gray.shape
        assert restoration.restore(gray[..., None], model, variables, force=True).shape == gray.shape + (1,)
        assert restoration.restore(Image.fromarray(rgb), model, variables, force=True).mode == "RGB"
        assert restoration.restore(Image.fromarray(gray), model, variables, force=True).mode == "L"
    with pytest.raises(ValueError, match="uint8"):
        restoration.restore(rgb.astype(np.float32), *rgb_model)


def test_gray_model_on_colour_changes_luma_only():
    """Through Y: an identity gray model returns the photo exactly, and any change keeps Cb, Cr."""
    rgb = photo()
    assert np.array_equal(restoration.restore(rgb, *tiny_model(1, scale=0.0), force=True), rgb)
    out = restoration.restore(rgb, *tiny_model(1), force=True).astype(np.float64)
    chroma = lambda im: np.stack([-37.797 * im[..., 0] - 74.203 * im[..., 1] + 112 * im[..., 2],
                                  112 * im[..., 0] - 93.786 * im[..., 1] - 18.214 * im[..., 2]], -1) / 255
    unclipped = (out > 0).all(-1) & (out < 255).all(-1)
    assert np.abs(out - rgb).max() > 5  # the random model does change the photo
    assert np.abs(chroma(out) - chroma(rgb.astype(np.float64)))[unclipped].max() < 1.0  # rounding only


def test_exif_orientation_applied_and_metadata_carried(tmp_path, identity_model):
    pixels = photo(40, 56)
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "d2ljax test camera"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = tmp_path / "rotated.jpg"
    source.write_bytes(jpeg_bytes(pixels, 90, exif=exif.tobytes(), icc_profile=icc))
    restoration.restore_files([str(source)], str(tmp_path / "out"), restoration.model_entries(*identity_model),
                          progress=False)
    with Image.open(tmp_path / "out" / "rotated.png") as out, Image.open(source) as original:
        upright = ImageOps.exif_transpose(original)
        assert out.size == (40, 56) == upright.size
        assert np.array_equal(np.asarray(out), np.asarray(upright))  # identity model: the upright decode
        assert out.info["icc_profile"] == icc
        assert out.getexif()[0x0112] == 1 and out.getexif()[0x010F] == "d2ljax test camera"
    pil = restoration.restore(Image.open(source), *identity_model)  # the PIL path does the same
    assert pil.size == (40, 56) and pil.getexif()[0x0112] == 1 and pil.info["icc_profile"] == icc


def test_never_overwrites_inputs_and_skips_existing_outputs(tmp_path, identity_model):
    entries = restoration.model_entries(*identity_model)
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(photo()).save(folder / "a.png")
    (folder / "b.jpg").write_bytes(jpeg_bytes(photo(seed=1)))
    (folder / "a.jpg").write_bytes(jpeg_bytes(photo(seed=2)))
    before = (folder / "a.png").read_bytes()
    summary = restoration.restore_files([str(folder)], str(folder), entries, progress=False)
    assert (folder / "a.png").read_bytes() == before
    assert [m.split(":")[0] for m in summary.failed] == [str(folder / "a.jpg"), str(folder / "a.png")]
    assert "it is an input" in summary.failed[0] and summary.written == [str(folder / "b.png")]
    again = restoration.restore_files([str(folder / "b.jpg")], str(folder), entries, progress=False)
    assert again.written == [] and "exists, skipped" in again.skipped[0]
    forced = restoration.restore_files([str(folder / "b.jpg")], str(folder), entries, overwrite=True, progress=False)
    assert forced.written == [str(folder / "b.png")] and not forced.failed
    assert restoration.plan_outputs([str(folder / "a.jpg"), str(tmp_path / "a.bmp")], str(tmp_path / "o"), "png",
                                False)[2][0].endswith("(same name)")


def test_tiles_cover_and_blend_exactly():
    for length, tile, overlap in ((100, 64, 16), (64, 64, 16), (200, 64, 8), (129, 64, 0)):
        starts = restoration.tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] + min(tile, length) == length
        assert all(a + tile - b >= overlap for a, b in zip(starts, starts[1:]))
    weights = sum(np.pad(restoration.ramp(64, s, 112, 16), (s, 112 - 64 - s)) for s in (0, 48))
    assert np.allclose(weights, 1.0)  # half-cosine ramps of two neighbours sum to one


def test_tile_length_keeps_the_tile_count_with_less_area():
    for length, tile, overlap, bucket in ((4000, 1024, 128, 64), (3000, 1024, 128, 64), (1025, 1024, 128, 64),
                                          (200, 64, 8, 1), (129, 64, 0, 16), (1000, 1000, 100, 64), (50, 64, 8, 16)):
        side = restoration.tile_length(length, tile, overlap, bucket)
        count = len(restoration.tile_starts(length, min(tile, length), overlap))
        assert side <= min(tile, length) and len(restoration.tile_starts(length, side, overlap)) == count
        assert side == length or side == tile or side % max(bucket, 1) == 0
    assert restoration.tile_length(4000, 1024, 128, 64) == 960 and restoration.tile_length(3000, 1024, 128, 64) == 896


def test_tiled_restoration_close_to_whole(rgb_model, identity_model):
    """Blending is exact (identity model) and tiles change a random model's output very little."""
    image = photo(100, 150)
    assert np.array_equal(restoration.restore(image, *identity_model, options=SMALL, force=True), image)
    tiled = restoration.restore(image, *rgb_model, options=SMALL, force=True)
    whole = restoration.restore(image, *rgb_model, options=WHOLE, force=True)
    assert not np.array_equal(tiled, whole)  # it was tiled: the tiles saw less context
    assert psnr(whole, tiled) > 40 and psnr(whole, image) < psnr(whole, tiled) - 10  # the model changes far more


def test_outputs_are_byte_stable(tmp_path, rgb_model):
    source = tmp_path / "photo.jpg"
    source.write_bytes(jpeg_bytes(photo(70, 90), 20, icc_profile=b"not really a profile"))
    entries = restoration.model_entries(*rgb_model)
    for run in ("first", "second"):
        restoration.restore_files([str(source)], str(tmp_path / run), entries, options=SMALL, progress=False)
    assert (tmp_path / "first" / "photo.png").read_bytes() == (tmp_path / "second" / "photo.png").read_bytes()


def test_model_choice_by_estimated_quality(tmp_path):
    never = lambda: pytest.fail("choosing must not load a model")
    qf10, qf30, blind, gray10, unstated, wide = (
        ModelEntry("qf10", 3, ((10, 10),), never), ModelEntry("qf30", 3, ((30, 30),), never),
        ModelEntry("blind", 3, BLIND, never), ModelEntry("gray10", 1, ((10, 10),), never),
        ModelEntry("unstated", 3, None, never), ModelEntry("wide", 3, ((10, 90),), never))
    entries = [unstated, blind, qf30, qf10, gray10]
    choose = lambda channels, quality, among=entries: restoration.choose_model(among, channels, quality).name
    assert choose(3, 10) == "qf10" and choose(3, 28) == "qf30" and choose(3, 21) == "blind"
    assert choose(3, None) == "blind" and choose(1, 12) == "gray10" and choose(1, 30) == "gray10"
    assert choose(3, 21, [qf10, qf30]) == "qf30" and choose(3, 20, [qf30, qf10]) == "qf30"
    assert choose(3, None, [qf30, qf10]) == "qf30" and choose(3, 14, [blind, qf10]) == "qf10"
    assert choose(3, 50, [unstated, qf10]) == "qf10" and choose(1, 50, [unstated]) == "unstated"
    # Unknown quality: the widest stated range, whether or not it spans 1..100.
    assert choose(3, None, [qf10, wide]) == "wide" and choose(3, None, [unstated, qf10, wide, blind]) == "blind"
    assert choose(3, None, [unstated, qf10]) == "qf10"
    path = tmp_path / "q28.jpg"
    path.write_bytes(jpeg_bytes(photo(), 28))
    assert restoration.read_photo(str(path)).quality == 28
    assert restoration.choose_model([qf10, qf30], 3, restoration.read_photo(str(path)).quality) is qf30


def test_bad_files_raise_one_line_errors(tmp_path):
    for name, words in bad_files(str(tmp_path)).items():
        with pytest.raises(ImageError, match=words) as error:
            restoration.read_photo(str(tmp_path / name))
        assert "\n" not in str(error.value) and str(error.value).startswith(str(tmp_path / name))


def test_shipped_models_are_chosen_by_kind_and_quality():
    """Among the shipped models a PNG or an array (unknown quality) gets the blind one of its kind."""
    shipped = [pretrained.model_entry(os.path.join(pretrained.PACKAGE_MODELS, name))
               for name in sorted(os.listdir(pretrained.PACKAGE_MODELS))]
    choose = lambda channels, quality: os.path.basename(restoration.choose_model(shipped, channels, quality).name)
    assert choose(1, None) == "gray_blind" and choose(3, None) == "color_blind"
    # Near QF 10 (20) the QF-10 (QF-20) model and the blind one of the kind fit: their measured LIVE1 gains decide
    for channels, quality, names in ((1, 12, ("gray_qf10", "gray_blind")), (3, 12, ("color_qf10", "color_blind")),
                                     (1, 22, ("gray_qf20", "gray_blind"))):
        gains = {os.path.basename(entry.name): entry.gains[round(quality, -1)] for entry in shipped
                 if os.path.basename(entry.name) in names}
        assert choose(channels, quality) == max(gains, key=gains.get), gains
    assert choose(1, 60) == "gray_blind" and choose(3, 30) == "color_blind"


def test_measured_gains_settle_the_choice_between_models_that_fit_equally():
    """Two models that both fit the photo's quality: the larger gain measured near it wins; a
    model without a measurement there leaves the rule to the training ranges."""
    never = lambda: pytest.fail("choosing must not load a model")
    qf10 = ModelEntry("qf10", 3, ((10, 10),), never, gains={10: 1.0})
    blind = ModelEntry("blind", 3, ((10, 95),), never, gains={10: 1.2, 30: 1.0})
    unmeasured_blind = ModelEntry("blind2", 3, ((10, 95),), never)
    qf30 = ModelEntry("qf30", 3, ((30, 30),), never, gains={30: 0.9})
    choose = lambda quality, among: restoration.choose_model(among, 3, quality).name
    assert choose(10, [qf10, blind]) == "blind" and choose(12, [qf10, blind]) == "blind"
    assert choose(30, [qf30, blind]) == "blind" and choose(10, [qf10, unmeasured_blind]) == "qf10"
    assert choose(50, [qf30, blind]) == "blind"  # no measurement near 50: the blind range fits
    assert choose(20, [qf10, qf30, blind]) == "blind"  # only the blind one fits QF 20 within tolerance
    shipped = pretrained.model_entry(os.path.join(pretrained.PACKAGE_MODELS, "color_qf10"))
    assert pretrained.measured_gains({"results": {"LIVE1": {"10": {"psnr": 26.7, "jpeg_psnr": 25.7}}}}) == \
        pytest.approx({10: 1.0})
    assert shipped.gains[10] == pytest.approx(27.148 - 25.693)  # README.md: LIVE1 colour, QF 10


def test_every_form_of_model_gives_the_same_result(tmp_path, monkeypatch, rgb_model):
    """A name, a model folder (str or path), a (model, variables) pair, alone or listed."""
    folder = tmp_path / "models" / "tiny_rgb"
    checkpoints.save_model(str(folder), *rgb_model, metadata={"qf": [10]})
    monkeypatch.setenv("D2LJAX_MODELS", str(tmp_path / "models"))
    image = photo()
    expected = restoration.restore(image, *rgb_model, force=True)
    for model in ("tiny_rgb", str(folder), folder, rgb_model, [rgb_model], ["tiny_rgb"]):
        assert np.array_equal(restoration.restore(image, model, force=True), expected), model
    _, info = restoration.restore(image, "tiny_rgb", quality=12, return_info=True)
    assert info == restoration.RestoreInfo("tiny_rgb", "tiny_rgb (color, QF 10)", 12)


def test_a_path_is_read_like_an_opened_file(tmp_path, identity_model):
    source = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    source.write_bytes(jpeg_bytes(photo(40, 56), 30, exif=exif.tobytes()))
    restored, info = restoration.restore(source, identity_model, return_info=True)
    assert isinstance(restored, Image.Image) and restored.size == (40, 56) and info.quality == 30
    with Image.open(source) as opened:
        assert np.array_equal(np.asarray(restored), np.asarray(restoration.restore(opened, identity_model)))
    assert np.array_equal(np.asarray(restoration.restore(str(source), identity_model)), np.asarray(restored))


def test_bad_options_and_qualities_raise_naming_them(rgb_model):
    image = photo()
    small = {"max_pixels": 64 * 64, "tile": 64, "overlap": 16, "bucket": 32}
    assert np.array_equal(restoration.restore(image, rgb_model, options=small, force=True),
                          restoration.restore(image, rgb_model, options=SMALL, force=True))
    for options, name in (({"tile": 0}, "tile=0"), ({"overlap": -1}, "overlap=-1"), ({"bucket": 2.5}, "bucket=2.5"),
                          ({"tiles": 64}, "'tiles'"), ({"tile": 4096}, "max_pixels=")):
        with pytest.raises(ValueError, match=name):
            restoration.restore(image, rgb_model, options=options)
    for quality in (0, 200, 10.5, True):
        with pytest.raises(ValueError, match="quality must be"):
            restoration.restore(image, rgb_model, quality=quality)


def test_version(capsys):
    from d2ljax.__main__ import main
    with pytest.raises(SystemExit) as exit_status:
        main(["--version"])
    assert exit_status.value.code == 0 and capsys.readouterr().out.strip() == f"d2ljax {d2ljax.__version__}"


@pytest.mark.parametrize("orientation,offset", [(1, (0, 0)), (6, (0, 4))])
def test_a_restored_jpeg_stays_in_its_quantisation_cells(tmp_path, orientation, offset):
    """restore moves the model's output into the cells of the JPEG file (jpeg.project_luma), on
    the file's own grid, also where EXIF turns the pixels upright: 60 x 84 stored, turned 90
    degrees clockwise (6) it is 84 x 60, its stored rows now columns from the right, 60 = 4 mod 8."""
    exif = Image.Exif()
    exif[imageio.ORIENTATION] = orientation
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_bytes(photo(60, 84), 30, exif=exif.tobytes()))
    decoded = imageio.read(str(path))
    table = np.reshape(decoded.luma_table, (8, 8))
    grid = jpeg.Grid((table.T if orientation == 6 else table).reshape(64), offset)
    found = restoration.read_photo(str(path)).grid
    assert found.offset == offset and np.array_equal(found.luma_table, grid.luma_table)
    model = tiny_model(3, scale=0.1)  # changes the photo by ~20 grey levels, within 0..255
    raw = restoration.run_images(*model, [decoded.pixels], WHOLE)[0]
    out = np.asarray(restoration.restore(str(path), model=model, force=True, options=WHOLE))
    assert outside_cells(out, decoded.pixels, grid) < 0.001 < 0.01 < outside_cells(raw, decoded.pixels, grid)


def test_the_grid_comes_from_the_jpeg_file_the_pixels_or_nowhere(tmp_path):
    pixels = photo(64, 64)
    Image.fromarray(pixels).save(tmp_path / "rgb.jpg", quality=50)
    Image.fromarray(pixels).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=50)
    Image.fromarray(np.asarray(Image.open(tmp_path / "rgb.jpg"))[3:, 5:]).save(tmp_path / "cropped.png")
    Image.fromarray(pixels).save(tmp_path / "clean.png")
    own = restoration.read_photo(str(tmp_path / "rgb.jpg")).grid
    assert own.offset == (0, 0) and own.luma_table.tolist() == Image.open(tmp_path / "rgb.jpg").quantization[0]
    assert restoration.read_photo(str(tmp_path / "cmyk.jpg")).grid is None  # no luma to project
    cropped = restoration.read_photo(str(tmp_path / "cropped.png"))
    assert abs(cropped.quality - 50) <= 1 and cropped.grid.offset == (5, 3)  # 8 - 3 rows, 8 - 5 columns
    assert restoration.read_photo(str(tmp_path / "clean.png")).grid is None  # no JPEG history
