"""d2ljax.metrics against hand-computed cases and independent (naive) implementations."""
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from d2ljax import metrics

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _random(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _blocky(shape, seed):
    """Random 8x8 blocks plus mild noise: a strongly blocky test image."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(60, 200, (shape[0] // 8 + 1, shape[1] // 8 + 1) + shape[2:])
    image = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)[:shape[0], :shape[1]]
    return np.clip(image + rng.integers(-3, 4, shape), 0, 255).astype(np.uint8)


# ---- PSNR ----------------------------------------------------------------------------------

def test_psnr_hand_computed():
    gt = np.zeros((4, 4), np.uint8)
    test = gt.copy()
    test[0, 0] = 255  # MSE = 255^2 / 16
    assert metrics.psnr(gt, test) == pytest.approx(10 * math.log10(16), abs=1e-12)


def test_psnr_identical_is_infinite():
    image = _random((9, 7, 3), 0)
    assert metrics.psnr(image, image) == math.inf
    assert metrics.psnrb(image, image.copy()) == math.inf  # within one block: no BEF


def test_psnrb_of_identical_blocky_images_is_finite():
    image = _blocky((20, 20, 3), 0)  # MSE 0, but the test image's BEF counts
    expected = 10 * math.log10(255 ** 2 / _bef_naive(metrics.rgb_to_y(image)))
    assert metrics.psnrb(image, image) == pytest.approx(expected, rel=1e-12)


def test_psnr_colour_is_one_joint_mse_not_a_channel_mean():
    gt = np.zeros((2, 2, 3), np.uint8)
    test = gt.copy()
    test[..., 0] = 10  # error in R only: joint MSE = 100 / 3
    assert metrics.psnr(gt, test) == pytest.approx(10 * math.log10(255 ** 2 * 3 / 100), abs=1e-12)


def test_gray_hxwx1_equals_hxw():
    gt, test = _random((20, 30), 1), _random((20, 30), 2)
    for f in (metrics.psnr, metrics.ssim, metrics.psnrb):
        assert f(gt[..., None], test[..., None]) == f(gt, test)


# ---- SSIM ----------------------------------------------------------------------------------

def _ssim_reference(x, y):
    """SSIM with a 2-D window built directly (not as an outer product) and scipy's convolve2d."""
    i, j = np.mgrid[-5:6, -5:6]
    window = np.exp(-(i ** 2 + j ** 2) / (2 * 1.5 ** 2))
    window /= window.sum()
    x, y = x.astype(np.float64), y.astype(np.float64)
    f = lambda a: signal.convolve2d(a, window, mode="valid")  # noqa: E731 (window is symmetric)
    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    smap = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    assert smap.shape == (x.shape[0] - 10, x.shape[1] - 10)
    return smap.mean()


def test_ssim_matches_independent_gray():
    gt = _blocky((37, 45), 3)
    noise = np.random.default_rng(4).integers(-20, 21, gt.shape)
    test = np.clip(gt.astype(int) + noise, 0, 255).astype(np.uint8)
    assert metrics.ssim(gt, test) == pytest.approx(_ssim_reference(gt, test), abs=1e-12)


def test_ssim_colour_is_mean_of_channels():
    gt, test = _random((23, 31, 3), 5), _random((23, 31, 3), 6)
    expected = np.mean([_ssim_reference(gt[..., c], test[..., c]) for c in range(3)])
    assert metrics.ssim(gt, test) == pytest.approx(expected, abs=1e-12)


def test_ssim_identical_is_one_and_window_is_the_protocols():
    image = _random((11, 11), 7)  # smallest size: a 1x1 map
    assert metrics.ssim(image, image) == pytest.approx(1.0, abs=1e-15)
    g = metrics.gaussian_window_1d()
    assert g.sum() == pytest.approx(1.0) and g[5] / g[4] == pytest.approx(math.exp(1 / (2 * 1.5 ** 2)))


def test_ssim_too_small_raises():
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(np.zeros((10, 20), np.uint8), np.zeros((10, 20), np.uint8))


# ---- PSNR-B --------------------------------------------------------------------------------

def _bef_naive(image):
    """BEF by a plain loop over every neighbour pair, with the paper's float counts."""
    im = image.astype(np.float64)
    h, w = im.shape
    sums = {True: 0.0, False: 0.0}
    for r in range(h):
        for c in range(w - 1):
            sums[c % 8 == 7] += (im[r, c] - im[r, c + 1]) ** 2
    for r in range(h - 1):
        for c in range(w):
            sums[r % 8 == 7] += (im[r, c] - im[r + 1, c]) ** 2
    n_hb, n_vb = h * (w / 8 - 1), w * (h / 8 - 1)
    d_b = sums[True] / (n_hb + n_vb)
    d_bc = sums[False] / (h * (w - 1) - n_hb + w * (h - 1) - n_vb)
    return max(0.0, math.log2(8) / math.log2(min(h, w)) * (d_b - d_bc))


def test_bef_hand_computed():
    image = np.zeros((16, 16), np.uint8)
    image[:, 8:] = 10  # 16 boundary pairs of squared difference 100, nothing else
    # D_B = 1600 / (16 + 16), D_Bc = 0, eta = 3 / 4
    assert metrics.blocking_effect_factor(image) == 37.5


@pytest.mark.parametrize("shape", [(16, 16), (19, 26), (33, 17), (8, 41)])
def test_bef_matches_naive_loop(shape):
    image = _blocky(shape, sum(shape))
    expected = _bef_naive(image)
    assert expected > 0
    assert metrics.blocking_effect_factor(image) == pytest.approx(expected, rel=1e-12)


def test_bef_is_zero_when_boundaries_are_not_worse():
    image = np.tile(np.array([0, 50], np.uint8), (16, 8))  # every horizontal pair differs alike
    assert metrics.blocking_effect_factor(image) == 0.0
    assert metrics.blocking_effect_factor(_blocky((8, 8), 1)) == 0.0  # one block: no boundary pairs


def test_psnrb_gray_uses_the_test_images_bef_only():
    gt, test = _random((21, 30), 8), _blocky((21, 30), 9)
    mse = np.mean((gt.astype(float) - test) ** 2)
    expected = 10 * math.log10(255 ** 2 / (mse + _bef_naive(test)))
    assert metrics.psnrb(gt, test) == pytest.approx(expected, rel=1e-12)
    assert metrics.psnrb(gt, test) != pytest.approx(metrics.psnrb(test, gt))  # not symmetric


def test_psnrb_colour_joint_mse_plus_bef_of_rounded_y():
    gt, test = _random((19, 26, 3), 10), _blocky((19, 26, 3), 11)
    mse = np.mean((gt.astype(float) - test) ** 2)
    expected = 10 * math.log10(255 ** 2 / (mse + _bef_naive(metrics.rgb_to_y(test))))
    assert metrics.psnrb(gt, test) == pytest.approx(expected, rel=1e-12)


# ---- rgb_to_y ------------------------------------------------------------------------------

def test_rgb_to_y_hand_values():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    # 16 + 65.481 = 81.481, 16 + 128.553 = 144.553, 16 + 24.966 = 40.966
    np.testing.assert_array_equal(metrics.rgb_to_y(rgb), [[16, 235, 81, 145, 41]])
    assert metrics.rgb_to_y(rgb).dtype == np.uint8


def test_rgb_to_y_is_studio_range_not_pillows_l():
    from PIL import Image
    rgb = _random((16, 16, 3), 12)
    expected = np.round(16 + rgb.astype(float) @ np.array([65.481, 128.553, 24.966]) / 255)
    np.testing.assert_allclose(metrics.rgb_to_y(rgb), expected, atol=1)  # ties may round apart
    assert np.abs(metrics.rgb_to_y(rgb).astype(int) - np.asarray(Image.fromarray(rgb).convert("L"))).max() > 5


def test_rgb_to_y_reproduces_live1_gray():
    """LIVE1_gray is the rounded Y of LIVE1_color; it differs only on exact .5 ties (13 pixels)."""
    from d2ljax.imageio import list_image_files, read_image
    if not (DATA / "benchmarks" / "LIVE1_color").is_dir():
        pytest.skip(f"{DATA}/benchmarks is absent (data lives in ../shared beside the repo)")
    colour = list_image_files(str(DATA / "benchmarks" / "LIVE1_color"))
    gray = list_image_files(str(DATA / "benchmarks" / "LIVE1_gray"))
    differing = 0
    for c, g in zip(colour, gray):
        diff = metrics.rgb_to_y(read_image(c)).astype(int) - read_image(g)
        assert np.abs(diff).max() <= 1
        differing += np.count_nonzero(diff)
    assert differing <= 20


# ---- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("f", [metrics.psnr, metrics.ssim, metrics.psnrb])
def test_bad_input_raises(f):
    a = np.zeros((16, 16), np.uint8)
    with pytest.raises(ValueError, match="shapes differ"):
        f(a, np.zeros((16, 17), np.uint8))
    with pytest.raises(ValueError, match="shapes differ"):
        f(np.zeros((16, 16, 3), np.uint8), a[..., None])
    with pytest.raises(ValueError, match="uint8"):
        f(a, a.astype(np.float32))
    with pytest.raises(ValueError, match="HxW, HxWx1 or HxWx3"):
        f(np.zeros((16, 16, 4), np.uint8), np.zeros((16, 16, 4), np.uint8))
    with pytest.raises(ValueError, match="rgb_to_y"):
        metrics.rgb_to_y(np.zeros((4, 4, 3), np.float64))
