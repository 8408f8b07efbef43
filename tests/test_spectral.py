"""Spectral helpers: same values as jnp.abs / jnp.angle, finite gradients, exactly-real bins."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from d2ljax import spectral


def test_real_bins_mask_matches_hermitian_self_conjugate_bins():
    """Computed another way: bins k with k == -k (mod size) on both axes."""
    for h, w in [(6, 9), (7, 8), (5, 5), (4, 4)]:
        rows = [k for k in range(h) if (2 * k) % h == 0]
        cols = [k for k in range(w) if (2 * k) % w == 0]
        full = np.zeros((h, w), bool)
        full[np.ix_(rows, cols)] = True
        np.testing.assert_array_equal(spectral.real_bins_mask(h, w, False), full)
        np.testing.assert_array_equal(spectral.real_bins_mask(h, w, True), full[:, : w // 2 + 1])


@pytest.mark.parametrize("transform", [spectral.fft2, spectral.rfft2])
def test_real_bins_exactly_real_and_rest_unchanged(transform):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 48, 72, 3))
    numpy_fn = np.fft.fft2 if transform is spectral.fft2 else np.fft.rfft2
    ref = numpy_fn(np.asarray(x, np.float64), axes=(1, 2))
    got = np.asarray(transform(x))
    mask = spectral.real_bins_mask(48, 72, transform is spectral.rfft2)
    assert np.all(got.imag[:, mask] == 0) and not np.any(np.signbit(got.imag[:, mask]))
    np.testing.assert_allclose(got, ref, atol=2e-3)


def test_negative_real_bin_has_phase_plus_pi():
    x = jnp.zeros((1, 6, 10, 1)).at[0, 0, 0, 0].set(-1.0)  # every bin is exactly -1
    assert np.allclose(np.asarray(spectral.phase(spectral.fft2(x))), np.pi)


def test_forward_equals_jnp_and_gradients_finite():
    z = jnp.array([0 + 0j, 3 + 4j, -2 + 0j, 0 - 1j, 1e-3 + 1e-3j], jnp.complex64)
    np.testing.assert_array_equal(spectral.amplitude(z), jnp.abs(z))
    np.testing.assert_array_equal(spectral.phase(z), jnp.angle(z))
    re, im = jnp.real(z), jnp.imag(z)
    g_amp = jax.grad(lambda r, i: spectral.amplitude(jax.lax.complex(r, i)).sum(), argnums=(0, 1))(re, im)
    g_pha = jax.grad(lambda r, i: spectral.phase(jax.lax.complex(r, i)).sum(), argnums=(0, 1))(re, im)
    for g in g_amp + g_pha:
        assert np.isfinite(np.asarray(g)).all()
    # Away from zero the gradients are the textbook ones: d|z|/dre = re/|z|, d angle/dre = -im/|z|^2.
    np.testing.assert_allclose(g_amp[0][1], 3 / 5, rtol=1e-6)
    np.testing.assert_allclose(g_pha[0][1], -4 / 25, rtol=1e-6)
    assert g_amp[0][0] == 0 and g_pha[0][0] == 0


def test_polar_roundtrip_and_irfft2_odd_width():
    x = jax.random.uniform(jax.random.PRNGKey(1), (1, 9, 11, 2))
    spec = spectral.rfft2(x)
    back = spectral.irfft2(spectral.from_polar(spectral.amplitude(spec), spectral.phase(spec)), 9, 11)
    assert back.shape == x.shape
    np.testing.assert_allclose(back, x, atol=1e-5)
    full = spectral.fft2(x)
    np.testing.assert_allclose(spectral.ifft2_real(full), x, atol=1e-5)
