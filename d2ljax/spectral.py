"""Amplitude and phase of 2-D Fourier spectra, safe to differentiate.

D2LNet edits the amplitude |X| and phase angle(X) of feature-map spectra. Two numerical
traps (docs/architecture.md#numerical-care) are handled here once for everyone:

* Bins that are mathematically real for a real input (row 0 and row H/2 crossed with
  column 0 and column W/2, the halves only when even) carry rounding-level imaginary parts
  from FFT libraries. A negative such bin then has phase +pi or -pi at random, and the
  phase convolutions turn that 2*pi jump into visible output differences. We set their
  imaginary part to exactly +0, so their phase is exactly 0 or +pi.
* `jnp.abs` and `jnp.angle` have NaN gradients at 0, which constant or all-zero feature
  maps produce. `amplitude` and `phase` return their values (phase on the CPU to float32
  rounding: `d2ljax.cpu.fastmath`) but zero gradients there, on every platform.

All functions transform over the last two axes (..., H, W): channels-first is the layout in
which XLA's FFTs need no transposes (they transform the trailing axes).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from d2ljax.cpu import fastmath

AXES = (-2, -1)


@functools.lru_cache(maxsize=None)
def real_bins_mask(height: int, width: int, onesided: bool) -> np.ndarray:
    """Boolean (H, W') mask of the bins that are exactly real for a real H x W input.

    W' is W for a full FFT and W // 2 + 1 for a one-sided (real) FFT.
    """
    rows = [0] + ([height // 2] if height % 2 == 0 else [])
    cols = [0] + ([width // 2] if width % 2 == 0 else [])
    mask = np.zeros((height, width // 2 + 1 if onesided else width), dtype=bool)
    mask[np.ix_(rows, cols)] = True
    return mask


def _with_exact_real_bins(spectrum: jnp.ndarray, width: int, onesided: bool) -> jnp.ndarray:
    """Sets the imaginary part of the real bins to +0 (the values elsewhere are untouched)."""
    mask = real_bins_mask(spectrum.shape[-2], width, onesided)
    return lax.complex(spectrum.real, jnp.where(mask, jnp.zeros((), spectrum.real.dtype), spectrum.imag))


def rfft2(x: jnp.ndarray) -> jnp.ndarray:
    """One-sided, unnormalised 2-D FFT of a real (..., H, W) map, real bins made exactly real."""
    x = _at_least_float32(x)
    return _with_exact_real_bins(jnp.fft.rfft2(x, axes=AXES), x.shape[-1], onesided=True)


def irfft2(spectrum: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
    """Inverse one-sided 2-D FFT to an explicit (H, W), so odd widths keep their last column."""
    return jnp.fft.irfft2(spectrum, s=(height, width), axes=AXES)


def mirror(m: jnp.ndarray, width: int, odd: bool) -> jnp.ndarray:
    """The values at the mirrored frequency -k of a one-sided (..., H, W//2+1) map.

    For the columns strictly inside the half spectrum, -k lies in the missing half, where a
    real input's spectrum is the conjugate: its amplitude is m and its phase -m (`odd`).
    Columns 0 and W/2 (W even) mirror onto themselves with the row index negated, so their
    actual values are read there (this keeps the exactly-real bins at phase 0 or pi). Only
    those columns are flipped (a whole flipped copy and a select made the phase branch's
    backward pass slower on XLA:CPU).
    """
    def rows_negated(column):  # row r -> row (-r) mod H
        return jnp.roll(jnp.flip(column, axis=-2), 1, axis=-2)

    out = (-m if odd else m).at[..., :1].set(rows_negated(m[..., :1]))
    if width % 2 == 0:
        out = out.at[..., -1:].set(rows_negated(m[..., -1:]))
    return out


def ifft2_real_of_onesided(y: jnp.ndarray, y_mirror: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
    """Re(IFFT2(Y)) for a full spectrum Y given on the one-sided half only: `y` holds Y(k)
    and `y_mirror` Y(-k) for every bin k of the half spectrum.

    Re(IFFT2(Y)) is the inverse transform of Y's Hermitian part (Y(k) + conj(Y(-k))) / 2,
    which is fully described by its one-sided half: half the FFT work of the full transform.
    """
    return irfft2(0.5 * (y + jnp.conj(y_mirror)), height, width)


def _nonzero(z: jnp.ndarray) -> jnp.ndarray:
    return (z.real != 0) | (z.imag != 0)


def amplitude(z: jnp.ndarray) -> jnp.ndarray:
    """|z|, equal to `jnp.abs`, with a zero (not NaN) gradient where z == 0."""
    nz = _nonzero(z)
    return jnp.where(nz, jnp.abs(jnp.where(nz, z, jnp.ones((), z.dtype))), 0)


def phase(z: jnp.ndarray) -> jnp.ndarray:
    """angle(z) in [-pi, pi]: `jnp.angle` (on the CPU to float32 rounding, exactly at 0, +-pi/2 and
    +-pi, signed zeros included), with a zero (not NaN) gradient where z == 0 (`atan2`)."""
    return atan2(z.imag, z.real)


@jax.custom_jvp
def atan2(y: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """The angle of (x, y) in [-pi, pi], `jnp.arctan2`'s value (`d2ljax.cpu.fastmath.atan2`), with
    its exact derivative, which is 0 at (0, 0), where the angle is constant by convention, not NaN."""
    return fastmath.atan2(y, x)


@atan2.defjvp
def _atan2_jvp(primals, tangents):
    (y, x), (dy, dx) = primals, tangents
    r2 = x * x + y * y
    nonzero = r2 > 0
    return atan2(y, x), jnp.where(nonzero, (x * dy - y * dx) / jnp.where(nonzero, r2, 1), 0)


@jax.custom_jvp
def sincos(x: jnp.ndarray) -> tuple:
    """(sin x, cos x) (`d2ljax.cpu.fastmath.sincos`), with the exact derivatives (cos x, -sin x)
    rather than those of the CPU's polynomials."""
    return fastmath.sincos(x)


@sincos.defjvp
def _sincos_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    sin, cos = sincos(x)
    return (sin, cos), (cos * dx, -sin * dx)


def with_amplitude(z: jnp.ndarray, amp: jnp.ndarray, new_amp: jnp.ndarray) -> jnp.ndarray:
    """new_amp * exp(i angle(z)), given amp = `amplitude(z)`: z scaled by the real new_amp / amp
    (new_amp itself where z == 0, as angle(0) = 0), with a zero (not NaN) gradient there.

    Real arithmetic: new_amp * z / |z| as a complex division was a large part of the amplitude
    branches' time on XLA:CPU (benchmarks/README.md).
    """
    nz = amp > 0
    scale = new_amp / jnp.where(nz, amp, jnp.ones((), amp.dtype))
    return lax.complex(jnp.where(nz, z.real * scale, new_amp), jnp.where(nz, z.imag * scale, jnp.zeros((), amp.dtype)))


def from_polar(amp: jnp.ndarray, pha: jnp.ndarray) -> jnp.ndarray:
    """amp * exp(i pha) as a complex array (`sincos`)."""
    sin, cos = sincos(pha)
    return lax.complex(amp * cos, amp * sin)


def _at_least_float32(x: jnp.ndarray) -> jnp.ndarray:
    """FFTs run in float32 (or float64 under x64); jnp's FFTs do not accept bfloat16."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))
