"""The paper's dual-domain training loss.

    L = w_l1 L1(out_2, GT) + w_amp L1(A(out_1), A(GT)) + w_phase L1(P(out_2), P(GT))

with A and P the amplitude and phase of the orthonormal one-sided 2-D FFT (paper eq. 3) and
w_amp = w_phase = alpha = 0.05. Each L1 is a mean over its elements (torch's L1Loss).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from d2ljax import spectral

ALPHA = 0.05


def ortho_spectrum(images: jnp.ndarray) -> jnp.ndarray:
    """(N, H, W, C) images -> their (N, C, H, W//2+1) one-sided spectra, 'ortho' normalised
    (spectral's transforms are unnormalised and run over the last two axes)."""
    height, width = images.shape[1:3]
    return spectral.rfft2(jnp.moveaxis(images, -1, 1)) / math.sqrt(height * width)


def l1(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    return jnp.mean(jnp.abs(a - b))


def _trained(x: jnp.ndarray, weight: float) -> jnp.ndarray:
    """x, cut from the gradient when its term's weight is 0."""
    return x if weight else jax.lax.stop_gradient(x)


def dual_domain_loss(out_1: jnp.ndarray, out_2: jnp.ndarray, target: jnp.ndarray, *,
                     l1_weight: float = 1.0, amp_weight: float = ALPHA,
                     phase_weight: float = ALPHA) -> tuple[jnp.ndarray, dict]:
    """(loss, its three unweighted terms) for (N, H, W, C) stage-1 and final images vs GT.

    Amplitudes and phases use d2ljax.spectral, so gradients stay finite at zero bins and the
    exactly-real bins have phase exactly 0 or pi. A term of weight 0 is still reported but
    gets no gradient, which spares its backward pass.
    """
    gt_spectrum = ortho_spectrum(target)
    terms = {
        "l1": l1(out_2, target),
        "amp": l1(spectral.amplitude(ortho_spectrum(_trained(out_1, amp_weight))), spectral.amplitude(gt_spectrum)),
        "phase": l1(spectral.phase(ortho_spectrum(_trained(out_2, phase_weight))), spectral.phase(gt_spectrum)),
    }
    loss = l1_weight * terms["l1"] + amp_weight * terms["amp"] + phase_weight * terms["phase"]
    return loss, terms
