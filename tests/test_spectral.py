"""Spectral helpers: same values as jnp.abs / jnp.angle, finite gradients, exactly-real bins."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from d2ljax import cpu, spectral


def test_real_bins_mask_matches_hermitian_self_conjugate_bins():
    """Computed another way: bins k with k == -k (mod size) on both axes."""
    for h, w in [(6, 9), (7, 8), (5, 5), (4, 4)]:
        rows = [k for k in range(h) if (2 * k) % h == 0]
        cols = [k for k in range(w) if (2 * k) % w == 0]
        full = np.zeros((h, w), bool)
        full[np.ix_(rows, cols)] = True
        np.testing.assert_array_equal(spectral.real_bins_mask(h, w, False), full)
        np.testing.assert_array_equal(spectral.real_bins_mask(h, w, True), full[:, : w // 2 + 1])


def test_real_bins_exactly_real_and_rest_unchanged():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 48, 72))
    ref = np.fft.rfft2(np.asarray(x, np.float64))
    got = np.asarray(spectral.rfft2(x))
    mask = spectral.real_bins_mask(48, 72, True)
    assert np.all(got.imag[..., mask] == 0) and not np.any(np.signbit(got.imag[..., mask]))
    np.testing.assert_allclose(got, ref, atol=2e-3)


def test_negative_real_bin_has_phase_plus_pi():
    x = jnp.zeros((1, 1, 6, 10)).at[0, 0, 0, 0].set(-1.0)  # every bin is exactly -1
    assert np.allclose(np.asarray(spectral.phase(spectral.rfft2(x))), np.pi)


def test_forward_equals_jnp_and_gradients_finite():
    z = jnp.array([0 + 0j, 3 + 4j, -2 + 0j, 0 - 1j, 1e-3 + 1e-3j], jnp.complex64)
    np.testing.assert_array_equal(spectral.amplitude(z), jnp.abs(z))
    # phase is spectral.atan2 (on the CPU d2ljax.cpu.fastmath's polynomial): within float32 rounding of
    # jnp.angle, exact at multiples of pi/2
    phase, angle = np.asarray(spectral.phase(z)), np.asarray(jnp.angle(z))
    np.testing.assert_allclose(phase, angle, rtol=3e-7, atol=0)
    np.testing.assert_array_equal(phase[[0, 2, 3]], angle[[0, 2, 3]])
    re, im = jnp.real(z), jnp.imag(z)
    g_amp = jax.grad(lambda r, i: spectral.amplitude(jax.lax.complex(r, i)).sum(), argnums=(0, 1))(re, im)
    g_pha = jax.grad(lambda r, i: spectral.phase(jax.lax.complex(r, i)).sum(), argnums=(0, 1))(re, im)
    for g in g_amp + g_pha:
        assert np.isfinite(np.asarray(g)).all()
    # Away from zero the gradients are the textbook ones: d|z|/dre = re/|z|, d angle/dre = -im/|z|^2.
    np.testing.assert_allclose(g_amp[0][1], 3 / 5, rtol=1e-6)
    np.testing.assert_allclose(g_pha[0][1], -4 / 25, rtol=1e-6)
    assert g_amp[0][0] == 0 and g_pha[0][0] == 0


@pytest.mark.parametrize("tuned", [True, False], ids=["CPU tuning", "jnp's functions"])
def test_derivatives_are_the_exact_ones_and_zero_at_the_origin(tuned):
    """spectral.atan2 and sincos: exact derivatives whichever function gives the values (the CPU's
    polynomials, or jnp's as on GPUs), and 0, not NaN, at the origin."""
    with cpu.tuning(tuned):
        y, x = jnp.float32([3.0, 0.0, -1.0]), jnp.float32([4.0, 0.0, -1e-3])
        dy, dx = map(np.asarray, jax.grad(lambda y, x: spectral.atan2(y, x).sum(), argnums=(0, 1))(y, x))
        off = [0, 2]  # away from the origin
        x_off, y_off = np.asarray(x)[off], np.asarray(y)[off]
        r2 = x_off ** 2 + y_off ** 2
        np.testing.assert_allclose(dy[off], x_off / r2, rtol=1e-6)
        np.testing.assert_allclose(dx[off], -y_off / r2, rtol=1e-6)
        assert dy[1] == 0 and dx[1] == 0
        t = jnp.float32([0.3, -2.0, 7.0])
        np.testing.assert_allclose(jax.grad(lambda t: spectral.sincos(t)[0].sum())(t), np.cos(np.asarray(t)), rtol=1e-6)
        np.testing.assert_allclose(jax.grad(lambda t: spectral.sincos(t)[1].sum())(t), -np.sin(np.asarray(t)),
                                   rtol=1e-6)


def test_polar_roundtrip_and_irfft2_odd_width():
    x = jax.random.uniform(jax.random.PRNGKey(1), (1, 2, 9, 11))
    spec = spectral.rfft2(x)
    back = spectral.irfft2(spectral.from_polar(spectral.amplitude(spec), spectral.phase(spec)), 9, 11)
    assert back.shape == x.shape
    np.testing.assert_allclose(back, x, atol=1e-5)


@pytest.mark.parametrize("mode", ["phase", "amplitude"])
@pytest.mark.parametrize("height,width", [(6, 8), (5, 7), (6, 9), (7, 8), (1, 4), (2, 1)])
def test_onesided_fourier_branch_equals_full_fft(mode, height, width):
    """The model's rfft2-based branch against the definition on the full spectrum (numpy).

    The full spectrum is the model's own one-sided one (`spectral.rfft2`, tested against numpy above)
    completed by Hermitian symmetry: the constant channel's other bins are FFT rounding noise (exact
    zeros on the CPU, ~5e-16 from cuFFT at odd heights) whose phase is arbitrary, so a reference from
    another FFT disagrees there by O(1) after the edit while the one-sided algorithm is exact.
    """
    from d2ljax.model import fourier_branch
    rng = np.random.default_rng(height * 10 + width)
    x = rng.normal(size=(2, height, width, 3))
    x[0, :, :, 0] = 0.0  # an all-zero channel (zero spectrum)
    x[1, :, :, 1] = 0.7  # a constant channel (one nonzero bin, negative real bins elsewhere: none)
    w, b = rng.normal(size=(3, 3)), rng.normal(size=3)
    leaky = lambda v: np.where(v > 0, v, 0.2 * v)
    edit_np = lambda m: leaky(np.einsum("nchw,co->nohw", m, w) + b[:, None, None])
    with jax.enable_x64(True):
        edit = lambda m: jax.nn.leaky_relu(jnp.einsum("nchw,co->nohw", m, w) + b[:, None, None], 0.2)
        got = np.asarray(fourier_branch(jnp.asarray(x), mode, edit))
        half = np.asarray(spectral.rfft2(jnp.asarray(x.transpose(0, 3, 1, 2))))
    spec = np.zeros(half.shape[:-1] + (width,), complex)
    spec[..., : half.shape[-1]] = half
    for k in range(half.shape[-1], width):  # X(r, k) = conj(X(-r, -k))
        spec[..., k] = np.conj(np.roll(half[..., ::-1, width - k], 1, axis=-1))
    np.testing.assert_allclose(spec, np.fft.fft2(x.transpose(0, 3, 1, 2)), atol=1e-12)
    amp, pha = np.abs(spec), np.angle(spec)
    amp, pha = (amp, edit_np(pha)) if mode == "phase" else (edit_np(amp), pha)
    want = np.fft.ifft2(amp * np.exp(1j * pha)).real.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, want, atol=1e-10)
