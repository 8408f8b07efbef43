"""The dual-domain loss against a NumPy transcription of the paper's formula."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from d2ljax import losses


def numpy_spectrum(x: np.ndarray) -> np.ndarray:
    """Orthonormal rfft2 over H, W (float64), the exactly-real bins' imaginary parts set to 0."""
    spectrum = np.fft.rfft2(x.astype(np.float64), axes=(1, 2), norm="ortho")
    height, width = x.shape[1:3]
    rows = [0] + ([height // 2] if height % 2 == 0 else [])
    cols = [0] + ([width // 2] if width % 2 == 0 else [])
    for r in rows:
        for c in cols:
            spectrum[:, r, c] = spectrum[:, r, c].real
    return spectrum


def numpy_loss(out_1, out_2, gt, l1_weight=1.0, amp_weight=0.05, phase_weight=0.05):
    s1, s2, sg = numpy_spectrum(out_1), numpy_spectrum(out_2), numpy_spectrum(gt)
    return (l1_weight * np.abs(out_2 - gt).mean()
            + amp_weight * np.abs(np.abs(s1) - np.abs(sg)).mean()
            + phase_weight * np.abs(np.angle(s2) - np.angle(sg)).mean())


@pytest.mark.parametrize("shape", [(2, 8, 6, 3), (1, 7, 5, 1)])
@pytest.mark.parametrize("weights", [{}, {"l1_weight": 0.5, "amp_weight": 1.0, "phase_weight": 0.0}])
def test_matches_numpy(shape, weights):
    rng = np.random.default_rng(0)
    out_1, out_2, gt = (rng.uniform(size=shape).astype(np.float32) for _ in range(3))
    loss, terms = losses.dual_domain_loss(jnp.asarray(out_1), jnp.asarray(out_2), jnp.asarray(gt), **weights)
    np.testing.assert_allclose(float(loss), numpy_loss(out_1, out_2, gt, **weights), rtol=2e-6)
    assert set(terms) == {"l1", "amp", "phase"}


def test_ortho_spectrum_keeps_energy():
    """Parseval for the orthonormal transform: the one-sided bins, counted twice where their
    mirror is missing, hold the image's energy."""
    x = np.random.default_rng(1).normal(size=(1, 8, 8, 1)).astype(np.float32)
    power = np.abs(np.asarray(losses.ortho_spectrum(jnp.asarray(x)))) ** 2
    counts = np.full(power.shape[-1], 2.0)
    counts[[0, -1]] = 1.0  # the DC and Nyquist columns of an even width have no mirror
    np.testing.assert_allclose((power * counts).sum(), (x ** 2).sum(), rtol=1e-5)


def test_gradient_is_finite_at_zero_spectra():
    """Constant images have all-zero non-DC bins, where |z| and angle(z) have NaN gradients."""
    flat = jnp.full((1, 8, 8, 3), 0.5)
    grads = jax.grad(lambda a, b: losses.dual_domain_loss(a, b, flat)[0], argnums=(0, 1))(flat, flat)
    assert all(bool(jnp.isfinite(g).all()) for g in grads)
