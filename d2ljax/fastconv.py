"""A 3x3 'same' convolution whose weight gradient is fast on XLA's CPU backend.

XLA:CPU computes the forward pass and the input gradient of a 3x3 convolution at about the
speed of PyTorch, but its weight gradient (a convolution whose "kernel" is the whole output
gradient) runs 2-12x slower than the forward pass, depending on the shape: most of D2LNet's
training step on a CPU (benchmarks/conv_grad.py, benchmarks/README.md). `conv3x3` keeps XLA's
forward pass and input gradient and, on the CPU only, computes the weight gradient as matrix
products instead, in one of two equivalent forms chosen by the shape:

- Winograd F(2x2, 3x3): the gradient of Winograd's form of the convolution, 16 matrix products
  over the 2x2 output tiles, 2.25x fewer multiplications (even heights and widths);
- im2col: the 9 shifted views of the input stacked, one matrix product over the pixels (small
  maps, where XLA and Winograd lose most).

Both agree with XLA's own gradient to float32 rounding (about 1e-5 relative; tests/test_fastconv.py).
Other backends (GPU, TPU) use XLA's gradient unchanged.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

DIMENSIONS = ("NHWC", "HWIO", "NHWC")
# Winograd F(2x2, 3x3) kernel transform (Lavin & Gray, 2016); B^T and A act through the sums below.
WINOGRAD_G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
SMALL_MAP = 256  # pixels per batch at or below which im2col beats Winograd and XLA
FEW_INPUTS = 4  # input channels at or below which XLA's own gradient is fastest
BATCHED_MAP = 32 * 32  # above this many pixels per image, XLA's gradient is fast for batches > 1


def conv(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """XLA's 3x3 convolution, stride 1, zero padding 1."""
    return lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=DIMENSIONS)


def input_grad_xla(x: jnp.ndarray, dy: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    return jax.vjp(lambda v: conv(v, kernel), x)[1](dy)[0]


def weight_grad_xla(x: jnp.ndarray, dy: jnp.ndarray) -> jnp.ndarray:
    kernel = jnp.zeros((3, 3, x.shape[-1], dy.shape[-1]), x.dtype)
    return jax.vjp(lambda k: conv(x, k), kernel)[1](dy)[0]


def weight_grad_im2col(x: jnp.ndarray, dy: jnp.ndarray) -> jnp.ndarray:
    """dW[i, j] = sum over pixels p of x_pad[p + (i, j)] dy[p]: one (9 C_in, P) x (P, C_out) product.

    The shifted views are stacked on a leading axis, channels first: XLA:CPU concatenates on the
    channel axis some 50x slower.
    """
    n, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).transpose(3, 0, 1, 2)
    patches = jnp.stack([xp[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)], 1)
    dy_t = dy.transpose(3, 0, 1, 2).reshape(dy.shape[-1], -1)
    g = jnp.einsum("mp,op->mo", patches.reshape(c * 9, -1), dy_t)
    return g.reshape(c, 3, 3, -1).transpose(1, 2, 0, 3)


def _b_transpose(d):
    """B^T of F(2x2, 3x3) applied along one axis of 4 input rows (or columns)."""
    return [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]


def _a(m):
    """A of F(2x2, 3x3) applied along one axis of 2 output-gradient rows (or columns)."""
    return [m[0], m[0] + m[1], m[0] - m[1], -m[1]]


def weight_grad_winograd(x: jnp.ndarray, dy: jnp.ndarray) -> jnp.ndarray:
    """dW = G^T [sum over tiles of (B^T d B) * (A dY A^T)] G, d the 4x4 input tiles at stride 2.

    The forward pass in Winograd form is Y = A^T [(G W G^T) * (B^T d B)] A per 2x2 output tile;
    this is its gradient with respect to W. Needs even heights and widths.
    """
    n, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    rows = _b_transpose([xp[:, r:r + h:2] for r in range(4)])
    v = jnp.stack([t for row in rows for t in _b_transpose([row[:, :, s:s + w:2] for s in range(4)])])
    d6 = dy.reshape(n, h // 2, 2, w // 2, 2, -1)
    rows = _a([d6[:, :, 0], d6[:, :, 1]])
    dm = jnp.stack([t for row in rows for t in _a([row[:, :, :, 0], row[:, :, :, 1]])])
    du = jnp.einsum("ktc,kto->kco", v.reshape(16, -1, c), dm.reshape(16, -1, dy.shape[-1]))
    g = WINOGRAD_G.astype(du.dtype)
    return jnp.einsum("ai,abco,bj->ijco", g, du.reshape(4, 4, c, -1), g)


def cpu_weight_grad(x: jnp.ndarray, dy: jnp.ndarray) -> jnp.ndarray:
    """The fastest of the three forms on XLA:CPU for this shape (benchmarks/conv_grad.py).

    XLA's own is slow mainly for single large maps: with 16 maps of 64x64 (the shipped models'
    training batch) it beats Winograd 2.8x, with one 128x128 map it loses 4x.

    The matrix-product forms sum in at least float32 (bfloat16 inputs) and return x's dtype.
    """
    n, h, w, c = x.shape
    odd = h % 2 or w % 2
    if c <= FEW_INPUTS or (n > 1 and h * w > BATCHED_MAP) or (n * h * w > SMALL_MAP and odd):
        return weight_grad_xla(x, dy)
    form = weight_grad_im2col if n * h * w <= SMALL_MAP else weight_grad_winograd
    wide = jnp.promote_types(x.dtype, jnp.float32)
    return form(x.astype(wide), dy.astype(wide)).astype(x.dtype)


@jax.custom_vjp
def conv3x3(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """3x3 convolution, stride 1, zero padding 1 (NHWC, HWIO): `conv` with a faster CPU gradient."""
    return conv(x, kernel)


def _conv3x3_fwd(x, kernel):
    return conv(x, kernel), (x, kernel)


def _conv3x3_bwd(residuals, dy):
    x, kernel = residuals
    dx = input_grad_xla(x, dy, kernel)
    dw = lax.platform_dependent(x, dy, cpu=cpu_weight_grad, default=weight_grad_xla)
    return dx, dw.astype(kernel.dtype)


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)
