"""atan2 and sin/cos in float32 as plain arithmetic that XLA vectorises, on the CPU.

XLA:CPU calls the C library's scalar atan2f, sinf and cosf once per element, many times the cost
of a vectorised exp; D2LNet's phase branches take the angle of, and rebuild, millions of spectral
bins per block, so those calls were most of the phase branches' time (benchmarks/cpu_tuning.md).
`atan2_float32` and `sincos_float32` reduce the argument and evaluate Cephes' minimax
polynomials (atanf, sinf, cosf) with multiplies, adds and selects only: absolute errors against
float64 below 3e-7 for atan2 and 1.5e-7 for sin and cos, about an ulp of XLA's own
(tests/test_fastmath.py asserts these bounds).

`atan2` and `sincos` are jnp's functions with these forms for float32 on the CPU (chosen by
`lax.platform_dependent`, so GPUs and TPUs keep XLA's own) while CPU tuning is on
(`d2ljax.cpu.tuning`); other dtypes (float64 under x64) keep jnp's everywhere. They give values only: `spectral.atan2` and `spectral.sincos` wrap them
with their exact derivatives, NaN-safe at the origin, on every platform.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from d2ljax import cpu

_F32 = np.float32
_PI, _PI_2, _PI_4 = _F32(np.pi), _F32(np.pi / 2), _F32(np.pi / 4)
_TAN_PI_8 = _F32(np.tan(np.pi / 8))
# pi/2 in three float32 parts (Cody-Waite): k * part is exact for the first two (8 and 11 significant
# bits) while |k| < 2**13, so x - k * pi/2 keeps float32 accuracy for |x| <= 8192 (sinf's documented range).
_PI_2_PARTS = (_F32(1.5703125), _F32(4.837512969970703125e-4), _F32(7.54978995489188216e-8))


def _is_float32(x) -> bool:
    return jnp.result_type(x) == jnp.float32


def _atan_unit(t):
    """atan(t) for 0 <= t <= 1: reduced to |u| <= tan(pi/8) by atan(t) = pi/4 + atan((t-1)/(t+1))."""
    big = t > _TAN_PI_8
    u = jnp.where(big, (t - 1) / (t + 1), t)
    z = u * u
    p = ((_F32(8.05374449538e-2) * z - _F32(1.38776856032e-1)) * z + _F32(1.99777106478e-1)) * z \
        - _F32(3.33329491539e-1)
    return jnp.where(big, _PI_4, _F32(0)) + (u + u * z * p)


def atan2_float32(y, x):
    """atan2 by octant: atan(min/max) on [0, 1], then reflected by |y| > |x|, the sign of x
    (signed zeros included: atan2(+-0, -0) = +-pi) and the sign of y. NaN in, NaN out."""
    ax, ay = jnp.abs(x), jnp.abs(y)
    top = jnp.maximum(ax, ay)
    a = _atan_unit(jnp.minimum(ax, ay) / jnp.where(top > 0, top, _F32(1)))
    a = jnp.where(ay > ax, _PI_2 - a, a)
    a = jnp.where(jnp.signbit(x), _PI - a, a)
    return jnp.copysign(a, y)


def atan2(y, x):
    """The angle of (x, y) in [-pi, pi], `jnp.arctan2`'s value: `atan2_float32` for float32 on the CPU."""
    if cpu.enabled() and _is_float32(y) and _is_float32(x):
        return lax.platform_dependent(y, x, cpu=atan2_float32, default=jnp.arctan2)
    return jnp.arctan2(y, x)


def sincos_float32(x):
    """sin and cos: x = k pi/2 + r with |r| <= pi/4, polynomials in r, then the quadrant k mod 4."""
    k = jnp.round(x * _F32(2 / np.pi))
    r = x
    for part in _PI_2_PARTS:
        r = r - k * part
    z = r * r
    s = r + r * z * ((_F32(-1.9515295891e-4) * z + _F32(8.3321608736e-3)) * z - _F32(1.6666654611e-1))
    s = jnp.where(x == 0, x, s)  # sin(-0) = -0 (r is +0 there: -0 - (-0 * part))
    c = _F32(1) - _F32(0.5) * z + z * z * ((_F32(2.443315711809948e-5) * z - _F32(1.388731625493765e-3)) * z
                                           + _F32(4.166664568298827e-2))
    q = k.astype(jnp.int32)
    odd = (q & 1) == 1
    sin, cos = jnp.where(odd, c, s), jnp.where(odd, s, c)
    return jnp.where((q & 2) != 0, -sin, sin), jnp.where(((q + 1) & 2) != 0, -cos, cos)


def _jnp_sincos(x):
    return jnp.sin(x), jnp.cos(x)


def sincos(x):
    """(sin x, cos x): `sincos_float32` for float32 on the CPU (accurate for |x| <= 8192: beyond it
    the reduction loses bits)."""
    if cpu.enabled() and _is_float32(x):
        return lax.platform_dependent(x, cpu=sincos_float32, default=_jnp_sincos)
    return _jnp_sincos(x)
