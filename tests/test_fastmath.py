"""fastmath's float32 atan2 and sincos against float64 NumPy, and their exact derivatives."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from d2ljax.cpu import fastmath


def _max_abs_error(got, ref64):
    return float(np.max(np.abs(np.asarray(got, np.float64) - ref64)))


def test_atan2_as_accurate_as_xla_over_magnitudes_and_quadrants():
    """Random points whose coordinates span 10 decades, against float64: within about an ulp of
    pi of XLA's own (libm) atan2."""
    rng = np.random.default_rng(0)
    y, x = (rng.standard_normal((2, 200_000)) * 10.0 ** rng.integers(-5, 5, (2, 200_000))).astype(np.float32)
    ref = np.arctan2(y.astype(np.float64), x.astype(np.float64))
    ours, xla = _max_abs_error(fastmath.atan2(y, x), ref), _max_abs_error(jnp.arctan2(y, x), ref)
    assert ours <= xla + 2.4e-7, (ours, xla)  # 2.4e-7: one ulp of pi in float32
    rel = np.abs(np.asarray(fastmath.atan2(y, x), np.float64) - ref) / np.abs(ref)
    assert rel.max() < 4e-7


def test_atan2_signed_zeros_axes_and_nan_as_numpy():
    values = np.array([0.0, -0.0, 1.0, -1.0, 2.5, -2.5, np.inf, np.nan], np.float32)
    y, x = (a.ravel() for a in np.meshgrid(values, values))
    keep = ~(np.isinf(y) & np.isinf(x))  # (inf, inf) gives NaN, not +-pi/4: not needed here
    got, ref = np.asarray(fastmath.atan2(y, x))[keep], np.arctan2(y, x)[keep]
    exact = np.isnan(ref) | (np.abs(ref) % (np.pi / 2) < 1e-6) | (np.abs(ref) % (np.pi / 2) > np.pi / 2 - 1e-6)
    np.testing.assert_array_equal(got[exact], ref[exact])  # 0, +-pi/2, +-pi, NaN: bit for bit
    signed = exact & ~np.isnan(ref)
    np.testing.assert_array_equal(np.signbit(got[signed]), np.signbit(ref[signed]))
    np.testing.assert_allclose(got, ref, rtol=3e-7)


@pytest.mark.parametrize("bound", [1.0, 100.0, 8192.0])
def test_sincos_accurate_over_its_range(bound):
    x = np.random.default_rng(1).uniform(-bound, bound, 200_000).astype(np.float32)
    sin, cos = fastmath.sincos(x)
    assert _max_abs_error(sin, np.sin(x.astype(np.float64))) < 1.5e-7  # XLA's libm: 3.3e-8
    assert _max_abs_error(cos, np.cos(x.astype(np.float64))) < 1.5e-7
    sin0, cos0 = fastmath.sincos(np.float32([0.0, -0.0]))
    np.testing.assert_array_equal(cos0, [1.0, 1.0])
    np.testing.assert_array_equal(np.signbit(sin0), [False, True])


def test_derivatives_are_the_exact_ones_and_zero_at_the_origin():
    y, x = jnp.float32([3.0, 0.0, -1.0]), jnp.float32([4.0, 0.0, -1e-3])
    dy, dx = map(np.asarray, jax.grad(lambda y, x: fastmath.atan2(y, x).sum(), argnums=(0, 1))(y, x))
    off = [0, 2]  # away from the origin
    x_off, y_off = np.asarray(x)[off], np.asarray(y)[off]
    r2 = x_off ** 2 + y_off ** 2
    np.testing.assert_allclose(dy[off], x_off / r2, rtol=1e-6)
    np.testing.assert_allclose(dx[off], -y_off / r2, rtol=1e-6)
    assert dy[1] == 0 and dx[1] == 0
    t = jnp.float32([0.3, -2.0, 7.0])
    np.testing.assert_allclose(jax.grad(lambda t: fastmath.sincos(t)[0].sum())(t), np.cos(np.asarray(t)), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda t: fastmath.sincos(t)[1].sum())(t), -np.sin(np.asarray(t)), rtol=1e-6)


def test_float64_uses_jnp_exactly():
    with jax.enable_x64(True):
        x = jnp.linspace(-7.0, 7.0, 101, dtype=jnp.float64)
        np.testing.assert_array_equal(fastmath.atan2(x[::-1], x), jnp.arctan2(x[::-1], x))
        np.testing.assert_array_equal(fastmath.sincos(x)[0], jnp.sin(x))
        np.testing.assert_array_equal(fastmath.sincos(x)[1], jnp.cos(x))
