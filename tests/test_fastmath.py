"""fastmath's float32 atan2 and sincos against float64 NumPy, and where they run: on the CPU only,
with CPU tuning on (their derivatives: tests/test_spectral.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import lowered

from d2ljax import cpu, spectral
from d2ljax.cpu import fastmath


def _max_abs_error(got, ref64):
    return float(np.max(np.abs(np.asarray(got, np.float64) - ref64)))


def test_atan2_as_accurate_as_xla_over_magnitudes_and_quadrants():
    """Random points whose coordinates span 10 decades, against float64: within about an ulp of
    pi of XLA's own (libm) atan2."""
    rng = np.random.default_rng(0)
    y, x = (rng.standard_normal((2, 200_000)) * 10.0 ** rng.integers(-5, 5, (2, 200_000))).astype(np.float32)
    ref = np.arctan2(y.astype(np.float64), x.astype(np.float64))
    ours, xla = _max_abs_error(fastmath.atan2_float32(y, x), ref), _max_abs_error(jnp.arctan2(y, x), ref)
    assert ours <= xla + 2.4e-7, (ours, xla)  # 2.4e-7: one ulp of pi in float32
    rel = np.abs(np.asarray(fastmath.atan2_float32(y, x), np.float64) - ref) / np.abs(ref)
    assert rel.max() < 4e-7


def test_atan2_signed_zeros_axes_and_nan_as_numpy():
    values = np.array([0.0, -0.0, 1.0, -1.0, 2.5, -2.5, np.inf, np.nan], np.float32)
    y, x = (a.ravel() for a in np.meshgrid(values, values))
    keep = ~(np.isinf(y) & np.isinf(x))  # (inf, inf) gives NaN, not +-pi/4: not needed here
    got, ref = np.asarray(fastmath.atan2_float32(y, x))[keep], np.arctan2(y, x)[keep]
    exact = np.isnan(ref) | (np.abs(ref) % (np.pi / 2) < 1e-6) | (np.abs(ref) % (np.pi / 2) > np.pi / 2 - 1e-6)
    np.testing.assert_array_equal(got[exact], ref[exact])  # 0, +-pi/2, +-pi, NaN: bit for bit
    signed = exact & ~np.isnan(ref)
    np.testing.assert_array_equal(np.signbit(got[signed]), np.signbit(ref[signed]))
    np.testing.assert_allclose(got, ref, rtol=3e-7)


@pytest.mark.parametrize("bound", [1.0, 100.0, 8192.0])
def test_sincos_accurate_over_its_range(bound):
    x = np.random.default_rng(1).uniform(-bound, bound, 200_000).astype(np.float32)
    sin, cos = fastmath.sincos_float32(x)
    assert _max_abs_error(sin, np.sin(x.astype(np.float64))) < 1.5e-7  # XLA's libm: 3.3e-8
    assert _max_abs_error(cos, np.cos(x.astype(np.float64))) < 1.5e-7
    sin0, cos0 = fastmath.sincos_float32(np.float32([0.0, -0.0]))
    np.testing.assert_array_equal(cos0, [1.0, 1.0])
    np.testing.assert_array_equal(np.signbit(sin0), [False, True])


def test_float64_uses_jnp_exactly():
    with jax.enable_x64(True):
        x = jnp.linspace(-7.0, 7.0, 101, dtype=jnp.float64)
        np.testing.assert_array_equal(fastmath.atan2(x[::-1], x), jnp.arctan2(x[::-1], x))
        np.testing.assert_array_equal(fastmath.sincos(x)[0], jnp.sin(x))
        np.testing.assert_array_equal(fastmath.sincos(x)[1], jnp.cos(x))


LIBRARY_CALLS = ("stablehlo.atan2", "stablehlo.sine", "stablehlo.cosine")


def _phase_and_polar(re, im):
    return spectral.from_polar(re, spectral.phase(jax.lax.complex(re, im)))


@pytest.mark.parametrize("platform", ["cuda", "rocm", "tpu"])
def test_other_platforms_keep_xla_functions(platform):
    """Lowered for a GPU or TPU, spectral's phase and polar form call XLA's atan2, sin and cos."""
    re = jnp.ones((4, 8), jnp.float32)
    hlo = lowered(_phase_and_polar, re, re, platform=platform)
    assert all(op in hlo for op in LIBRARY_CALLS)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the polynomials run on the CPU only")
def test_cpu_runs_the_polynomials_unless_tuning_is_off():
    re = jnp.ones((4, 8), jnp.float32)
    assert not any(op in lowered(_phase_and_polar, re, re, platform="cpu") for op in LIBRARY_CALLS)
    y, x = np.random.default_rng(2).standard_normal((2, 1000)).astype(np.float32)
    np.testing.assert_array_equal(fastmath.atan2(y, x), fastmath.atan2_float32(y, x))
    np.testing.assert_array_equal(fastmath.sincos(x)[0], fastmath.sincos_float32(x)[0])
    with cpu.tuning(False):
        assert all(op in lowered(_phase_and_polar, re, re, platform="cpu") for op in LIBRARY_CALLS)
        np.testing.assert_array_equal(fastmath.atan2(y, x), jnp.arctan2(y, x))
        np.testing.assert_array_equal(fastmath.sincos(x)[1], jnp.cos(x))
