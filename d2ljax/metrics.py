"""PSNR, SSIM and PSNR-B exactly as the published tables compute them.

The definitions are those of docs/protocol.md (FBCNN's test code, which produced the
D2LNet paper's numbers): uint8 inputs, no border crop, float64 throughout. Gray images are
HxW or HxWx1, colour images HxWx3 RGB.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

# SSIM constants (Wang et al. 2004) for the [0, 255] range.
SSIM_C1 = (0.01 * 255.0) ** 2
SSIM_C2 = (0.03 * 255.0) ** 2
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
# PSNR-B block size (the JPEG grid).
BLOCK = 8


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma of uint8 RGB, rounded half to even, as uint8 HxW (16..235).

    This is the protocol's "gray" (MATLAB rgb2ycbcr's Y), not Pillow's full-range convert('L').
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb_to_y needs a uint8 HxWx3 image, got {rgb.dtype} {rgb.shape}")
    r, g, b = (rgb[..., c].astype(np.float64) for c in range(3))
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    return np.round(y).astype(np.uint8)


def _as_planes(image: np.ndarray) -> np.ndarray:
    """HxW / HxWx1 / HxWx3 -> float64 CxHxW (C = 1 or 3)."""
    planes = image if image.ndim == 2 else np.moveaxis(image, -1, 0)
    return np.asarray(planes, dtype=np.float64).reshape(-1, *image.shape[:2])


def _check_pair(gt: np.ndarray, test: np.ndarray, metric: str) -> None:
    """Raises a one-line ValueError unless gt and test are equal-shaped uint8 images."""
    for label, image in (("ground truth", gt), ("test image", test)):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise ValueError(f"{metric}: the {label} must be a uint8 numpy array, got "
                             f"{getattr(image, 'dtype', type(image).__name__)}")
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 3))):
            raise ValueError(f"{metric}: the {label} must be HxW, HxWx1 or HxWx3, got shape {image.shape}")
    if gt.shape != test.shape:
        raise ValueError(f"{metric}: shapes differ: ground truth {gt.shape} vs test image {test.shape}")


def mse(gt: np.ndarray, test: np.ndarray) -> float:
    """Mean squared error over all pixels and channels at once (float64)."""
    _check_pair(gt, test, "mse")
    diff = gt.astype(np.float64) - test.astype(np.float64)
    return float(np.mean(diff * diff))


def _db(error: float) -> float:
    """10 log10(255^2 / error), infinite for error = 0."""
    return float("inf") if error == 0 else float(10.0 * np.log10(255.0 ** 2 / error))


def psnr(gt: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB from one joint MSE over all channels (colour: not a mean of per-channel PSNRs)."""
    return _db(mse(gt, test))


def gaussian_window_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian whose outer product is SSIM's 2-D window."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of the last two axes with a symmetric 1-D window."""
    half = len(window) // 2
    x = ndimage.correlate1d(x, window, axis=-2, mode="constant")[..., half:-half, :]
    return ndimage.correlate1d(x, window, axis=-1, mode="constant")[..., half:-half]


def ssim(gt: np.ndarray, test: np.ndarray) -> float:
    """SSIM (11x11 Gaussian, sigma 1.5, valid map, float64); colour = mean over R, G, B.

    The R, G, B means are equal-weighted and all maps have the same size, so the mean over
    the stacked maps is exactly the mean of the three per-channel SSIMs.
    """
    _check_pair(gt, test, "ssim")
    if min(gt.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {gt.shape}")
    x, y = _as_planes(gt), _as_planes(test)
    # sigma_x^2 and sigma_y^2 only appear summed, so E[x^2 + y^2] is filtered once.
    mu_x, mu_y, squares, xy = _filter_valid(np.stack([x, y, x * x + y * y, x * y]), gaussian_window_1d())
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    numerator = (2.0 * mu_xy + SSIM_C1) * (2.0 * (xy - mu_xy) + SSIM_C2)
    denominator = (mu_xx + mu_yy + SSIM_C1) * (squares - mu_xx - mu_yy + SSIM_C2)
    return float(np.mean(numerator / denominator))


def blocking_effect_factor(gray: np.ndarray) -> float:
    """BEF of one gray image (Yim & Bovik 2011) with the paper's float pair counts, block 8.

    Boundary pairs are columns (rows) j, j+1 with j = 7, 15, ...; the counts N_HB, N_VB use
    true division as the published code's formulas do, not the number of pairs summed. An
    image too small for those counts to be positive (about one block) has no blocking: 0.
    """
    h, w = gray.shape
    if min(h, w) < 2:
        raise ValueError(f"psnrb: images must be at least 2x2, got {gray.shape}")
    im = gray.astype(np.float64)
    d_h = np.square(np.diff(im, axis=1))  # pair (j, j+1) in column j, j = 0 .. W-2
    d_v = np.square(np.diff(im, axis=0))
    boundary = d_h[:, BLOCK - 1::BLOCK].sum() + d_v[BLOCK - 1::BLOCK, :].sum()
    other = d_h.sum() + d_v.sum() - boundary
    n_hb = h * (w / BLOCK - 1)
    n_vb = w * (h / BLOCK - 1)
    n_hbc = h * (w - 1) - n_hb
    n_vbc = w * (h - 1) - n_vb
    if n_hb + n_vb <= 0:
        return 0.0
    d_b = boundary / (n_hb + n_vb)
    d_bc = other / (n_hbc + n_vbc)
    if d_b <= d_bc:
        return 0.0
    eta = np.log2(BLOCK) / np.log2(min(h, w))
    return float(eta * (d_b - d_bc))


def psnrb(gt: np.ndarray, test: np.ndarray) -> float:
    """PSNR-B = 10 log10(255^2 / (MSE + BEF(test))); BEF of the test image only.

    Colour: the joint RGB MSE plus the BEF of the test image's rounded Y (rgb_to_y).
    """
    _check_pair(gt, test, "psnrb")
    if test.ndim == 3 and test.shape[-1] == 3:
        gray = rgb_to_y(test)
    else:
        gray = test.reshape(test.shape[:2])
    return _db(mse(gt, test) + blocking_effect_factor(gray))
