"""d2ljax.jpeg: the protocol's JPEG files and pixels, and reading a JPEG's quality back."""
import io

import numpy as np
import pytest
from PIL import Image

from scipy.ndimage import gaussian_filter

from d2ljax import imageio, jpeg
from d2ljax.imageio import ImageError
from d2ljax.metrics import psnr
from conftest import outside_cells


def _random(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize("shape", [(17, 23), (17, 23, 1), (17, 23, 3), (8, 8, 3)])
def test_compress_keeps_shape_and_dtype(shape):
    out = jpeg.compress(_random(shape), 30)
    assert out.shape == shape and out.dtype == np.uint8


def test_encode_is_baseline_ijg_420_colour_and_one_component_gray():
    colour = _open(jpeg.encode(_random((17, 23, 3)), 10))
    assert colour.mode == "RGB" and colour.size == (23, 17)  # no crop or pad
    assert colour.layer[0][1:3] == (2, 2) and colour.layer[1][1:3] == colour.layer[2][1:3] == (1, 1)  # 4:2:0
    assert colour.quantization[0] == jpeg.ijg_table(jpeg.IJG_LUMINANCE, 10).tolist()
    assert colour.quantization[1] == jpeg.ijg_table(jpeg.IJG_CHROMINANCE, 10).tolist()
    gray = _open(jpeg.encode(_random((17, 23, 1)), 10))
    assert gray.mode == "L" and len(gray.layer) == 1 and list(gray.quantization) == [0]


def test_compress_matches_tensorflow_accurate_decoder():
    """An independent libjpeg-turbo path: TF's encoder with its INTEGER_ACCURATE decoder."""
    tf = pytest.importorskip("tensorflow")
    image = _random((6, 5, 3), 1).repeat(9, axis=0).repeat(11, axis=1)  # smooth-ish, 54x55
    for qf in (5, 10, 50):
        colour = tf.io.encode_jpeg(image, quality=qf, chroma_downsampling=True)
        np.testing.assert_array_equal(jpeg.compress(image, qf),
                                      tf.io.decode_jpeg(colour, dct_method="INTEGER_ACCURATE").numpy())
        gray = tf.io.encode_jpeg(image[..., :1], quality=qf, format="grayscale")
        np.testing.assert_array_equal(jpeg.compress(image[..., :1], qf),
                                      tf.io.decode_jpeg(gray, dct_method="INTEGER_ACCURATE").numpy())


@pytest.mark.parametrize("qf", [0, 101, -5, 10.0, "10", True, None])
def test_bad_quality_raises(qf):
    with pytest.raises(ValueError, match="1..100"):
        jpeg.compress(_random((8, 8)), qf)


def test_bad_image_raises():
    with pytest.raises(ValueError, match="uint8"):
        jpeg.compress(np.zeros((8, 8), np.float32), 10)
    with pytest.raises(ValueError, match="HxW, HxWx1 or HxWx3"):
        jpeg.compress(np.zeros((8, 8, 4), np.uint8), 10)


def test_ijg_table_hand_values():
    np.testing.assert_array_equal(jpeg.ijg_table(jpeg.IJG_LUMINANCE, 50), jpeg.IJG_LUMINANCE)
    assert set(jpeg.ijg_table(jpeg.IJG_LUMINANCE, 100).tolist()) == {1}
    assert set(jpeg.ijg_table(jpeg.IJG_LUMINANCE, 1).tolist()) == {255}  # 10 * 5000 / 100, clamped
    assert jpeg.ijg_table(jpeg.IJG_LUMINANCE, 10)[0] == 80  # 16 * 500 / 100
    assert jpeg.ijg_table(jpeg.IJG_LUMINANCE, 75)[0] == 8  # (16 * 50 + 50) // 100
    assert jpeg.ijg_table(jpeg.IJG_CHROMINANCE, 90)[0] == 3  # (17 * 20 + 50) // 100


def test_pillow_quantization_is_natural_order():
    tables = _open(jpeg.encode(_random((16, 16, 3)), 50)).quantization
    assert tables[0] == jpeg.IJG_LUMINANCE.tolist()  # row-major; zigzag would begin 16, 11, 12
    assert tables[1] == jpeg.IJG_CHROMINANCE.tolist()


@pytest.mark.parametrize("variant", ["gray", "color 4:2:0", "color 4:2:2", "color 4:4:4"])
def test_estimate_quality_exact_for_every_pillow_quality(variant):
    image = _random((16, 16) if variant == "gray" else (16, 16, 3))
    subsampling = {"gray": None, "color 4:2:0": 2, "color 4:2:2": 1, "color 4:4:4": 0}[variant]
    for qf in range(1, 101):
        buffer = io.BytesIO()
        options = {} if subsampling is None else {"subsampling": subsampling}
        Image.fromarray(image).save(buffer, format="JPEG", quality=qf, **options)
        assert jpeg.estimate_quality(buffer.getvalue()) == qf, (variant, qf)


def test_estimate_quality_accepts_path_and_opened_image(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg.encode(_random((16, 16, 3)), 37))
    assert jpeg.estimate_quality(path) == 37
    assert jpeg.estimate_quality(str(path)) == 37
    with Image.open(path) as image:
        assert jpeg.estimate_quality(image) == 37


def test_estimate_quality_nearest_for_non_ijg_tables():
    luma = jpeg.ijg_table(jpeg.IJG_LUMINANCE, 75).tolist()
    chroma = jpeg.ijg_table(jpeg.IJG_CHROMINANCE, 75).tolist()
    luma[5] += 3  # no longer any IJG quality's table
    buffer = io.BytesIO()
    Image.fromarray(_random((16, 16, 3))).save(buffer, format="JPEG", qtables=[luma, chroma])
    assert jpeg.estimate_quality(buffer.getvalue()) == 75


def test_estimate_quality_not_a_jpeg(tmp_path):
    png = io.BytesIO()
    Image.fromarray(_random((8, 8))).save(png, format="PNG")
    with pytest.raises(ImageError, match="not a JPEG image"):
        jpeg.estimate_quality(png.getvalue())
    with pytest.raises(ImageError, match="not a readable image"):
        jpeg.estimate_quality(b"definitely not an image")
    with pytest.raises(ImageError, match="no such file"):
        jpeg.estimate_quality(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="not a JPEG image"):
        jpeg.estimate_quality(Image.fromarray(_random((8, 8))))


def _textured(height=96, width=128, seed=0):
    """A smooth colour photo with grain: never quantised, so no JPEG history."""
    y, x = np.mgrid[:height, :width]
    base = np.stack([128 + 90 * np.sin(x / 7 + c) * np.cos(y / 5) for c in range(3)], -1)
    return np.clip(base + np.random.default_rng(seed).normal(0, 8, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("channels", [3, 1])
def test_detect_quality_finds_the_jpeg_a_photo_was_decoded_from(channels):
    photo = _textured()[..., :channels].squeeze()
    assert jpeg.detect_quality(photo) is None
    for qf in (10, 30, 50, 70):
        assert abs(jpeg.detect_quality(jpeg.compress(photo, qf)) - qf) <= 1, qf
    # Off the 8x8 grid (a decoded JPEG cropped): the grid is found where the block edges are.
    assert jpeg.detect_quality(jpeg.compress(photo, 30)[3:, 5:]) == 30


def test_detect_quality_sees_no_history_in_noise_flat_or_tiny_images():
    for image in (_random((64, 64, 3)), np.full((64, 64), 77, np.uint8), _random((12, 40))):
        assert jpeg.detect_quality(image) is None


def test_tables_quality_reads_pillow_tables():
    data = jpeg.encode(_random((16, 16, 3)), 37)
    assert jpeg.tables_quality(_open(data).quantization) == jpeg.estimate_quality(data) == 37


@pytest.mark.parametrize("channels", [1, 3])
def test_projection_moves_a_restoration_toward_the_original_and_keeps_the_jpeg(channels):
    photo = _textured()[..., :channels].squeeze()
    decoded = jpeg.compress(photo, 30)
    grid = jpeg.Grid(np.array(_open(jpeg.encode(photo, 30)).quantization[0]))
    assert np.array_equal(jpeg.project_luma(decoded, decoded, grid), decoded)  # already in its cells
    # The original lies in the cells too (up to the encoder's integer DCT and rounding).
    kept = jpeg.project_luma(decoded, photo, grid)
    assert np.mean(np.abs(kept.astype(int) - photo) <= 1) > 0.99
    # A restoration that ignores the JPEG (a blur) is moved toward the original, back into its cells.
    blurred = np.round(gaussian_filter(decoded.astype(float), (1.5, 1.5, 0)[:decoded.ndim])).astype(np.uint8)
    projected = jpeg.project_luma(decoded, blurred, grid)
    assert psnr(photo, projected) > psnr(photo, blurred) + 0.05
    assert outside_cells(projected, decoded, grid) < 0.001 < 0.01 < outside_cells(blurred, decoded, grid)
    if channels == 3:  # the change is a luma change: R, G and B move together
        change = projected.astype(int) - blurred
        assert np.mean(np.ptp(change, axis=-1) <= 1) > 0.99


@pytest.mark.parametrize("orientation", range(1, 9))
def test_file_grid_follows_the_exif_orientation(tmp_path, orientation):
    """The grid file_grid gives for the upright pixels is the one, of 64 offsets and the table
    or its transpose, on which their coefficients sit best."""
    exif = Image.Exif()
    exif[imageio.ORIENTATION] = orientation
    path = tmp_path / "photo.jpg"
    Image.fromarray(_textured(61, 43)).save(path, quality=50, exif=exif.tobytes())  # 5 and 3 mod 8
    decoded = imageio.read(str(path))
    assert decoded.orientation == orientation and decoded.luma_table == _open(path.read_bytes()).quantization[0]
    grid = jpeg.file_grid(decoded.luma_table, decoded.orientation, decoded.pixels.shape)
    table = np.reshape(decoded.luma_table, (8, 8))
    candidates = [jpeg.Grid(t.reshape(64), (r, c)) for t in (table, table.T) for r in range(8) for c in range(8)]
    best = max(candidates, key=lambda g: jpeg.lattice_fit(decoded.pixels, g))
    assert best.offset == grid.offset and np.array_equal(best.luma_table, grid.luma_table)
    assert jpeg.lattice_fit(decoded.pixels, grid) > 0.9 and jpeg.shown(decoded.pixels, grid) is grid


def test_projection_leaves_blocks_the_decoder_clipped():
    """Saturated colour: where the decoded R, G or B clipped at 0 or 255 the luma no longer shows
    the quantised coefficients, and clipping into the cells they seem to give would move the
    original away from itself."""
    y, x = np.mgrid[:96, :128]
    stripes = np.where(((x // 3) % 2 == 0)[..., None], [255, 0, 0], [0, 0, 255]) + 6 * np.sin(y / 3)[..., None]
    photo = np.clip(stripes + np.random.default_rng(0).normal(0, 10, stripes.shape), 0, 255).astype(np.uint8)
    for qf in (30, 50, 75):  # without the clipped blocks left alone, 26-39% of the pixels move by 2 or more
        decoded = jpeg.compress(photo, qf)
        assert ((decoded == 0) | (decoded == 255)).any(axis=-1).mean() > 0.05, qf  # clipped pixels
        kept = jpeg.project_luma(decoded, photo, jpeg.Grid(jpeg.ijg_table(jpeg.IJG_LUMINANCE, qf)))
        assert np.mean(np.abs(kept.astype(int) - photo) <= 1) > 0.99, qf


def test_pixel_grids_are_used_only_where_the_pixels_show_them():
    photo = _textured()
    for qf in (10, 50, 75):  # decoded JPEGs, also cropped off the grid: its grid, and cells that hold the original
        for top, left in ((0, 0), (3, 5)):
            decoded, original = jpeg.compress(photo, qf)[top:, left:], photo[top:, left:]
            grid = jpeg.pixel_grid(decoded, qf)
            assert grid.offset == ((8 - top) % 8, (8 - left) % 8), (qf, top, left)
            kept = jpeg.project_luma(decoded, original, grid)
            assert np.mean(np.abs(kept.astype(int) - original) <= 1) > 0.99, (qf, top, left)
    # 75 and 74 tie on the low frequencies detect_quality reads; the full table tells them apart
    assert np.array_equal(jpeg.pixel_grid(jpeg.compress(photo, 75), 74).luma_table,
                          jpeg.ijg_table(jpeg.IJG_LUMINANCE, 75))
    assert jpeg.pixel_grid(photo, 50) is None  # never quantised
    assert jpeg.pixel_grid(jpeg.compress(photo, 20), 60) is None  # a quality far from the JPEG's
    resized = np.asarray(Image.fromarray(jpeg.compress(photo, 30)).resize((100, 75), Image.LANCZOS))
    assert jpeg.pixel_grid(resized, 30) is None
