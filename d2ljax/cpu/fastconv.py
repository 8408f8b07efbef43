"""A 3x3 'same' convolution that is fast on XLA's CPU backend, forward and backward.

XLA:CPU's weight gradient of a 3x3 convolution (a convolution whose "kernel" is the whole
output gradient) runs several times slower than its forward pass, its forward pass and input
gradient trail PyTorch's at D2LNet's widest shapes, and its convolutions with few channels on one
side run far slower per multiplication than wide ones. On the CPU only, `conv3x3` computes them as
matrix products and elementwise sums instead:

- Winograd F(2x2, 3x3) (Lavin & Gray, 2016): 16 matrix products over 2x2 output tiles,
  2.25x fewer multiplications than the direct form (even heights and widths). The forward pass
  and the input gradient (the convolution of the output gradient with the flipped, transposed
  kernel) use it where maps and channels are large enough (`cpu_conv`); the weight gradient,
  the gradient of this form with respect to the kernel, on most even maps (`cpu_weight_grad`);
- im2col for the weight gradient on small maps: the 9 shifted views of the input stacked, one
  matrix product over the pixels;
- few channels on one side (the image's own convolutions, the 3-channel outputs, the 2 -> 1
  attention maps): shift the narrow side. Few inputs: the 9 x C_in shifted input channels
  times their weights, summed elementwise (`conv_taps`); few outputs: one matrix product into
  the 9 x C_out per-tap outputs, then their 9 shifted views summed (`conv_project`), and the
  weight gradient from the 9 shifted views of the narrow output gradient
  (`weight_grad_few_outputs`).

Elsewhere XLA's own. Which form runs is a rule on the shape whose limits are
`d2ljax.cpu.thresholds` (benchmarks/cpu_tuning.md has the timings behind them). All forms equal
XLA's in exact arithmetic (float64 to 1e-12); in float32 their errors against float64 are no
larger than XLA's own (tests/test_fastconv.py). Other backends (GPU, TPU), and the CPU with
`d2ljax.cpu.tuning(False)`, run XLA's convolution and gradients unchanged.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from d2ljax import cpu
from d2ljax.cpu import thresholds as limits

DIMENSIONS = ("NHWC", "HWIO", "NHWC")


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
    channel axis far slower.
    """
    n, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).transpose(3, 0, 1, 2)
    patches = jnp.stack([xp[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)], 1)
    dy_t = dy.transpose(3, 0, 1, 2).reshape(dy.shape[-1], -1)
    g = jnp.einsum("mp,op->mo", patches.reshape(c * 9, -1), dy_t)
    return g.reshape(c, 3, 3, -1).transpose(1, 2, 0, 3)


def _shifted(x: jnp.ndarray, flipped: bool = False) -> list:
    """The 9 views of x zero-padded by one pixel that a 3x3 kernel's taps (i, j) see, row-major, at x's
    size: x_pad[p + (i, j)], or x_pad[p - (i, j) + 2] when `flipped` (the views a weight gradient pairs
    with x)."""
    n, h, w, _ = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    starts = (2, 1, 0) if flipped else (0, 1, 2)
    return [xp[:, i:i + h, j:j + w] for i in starts for j in starts]


def conv_taps(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """`conv` for few input channels: the sum of 9 x C_in shifted input channels times their kernel rows,
    one elementwise fusion."""
    c = x.shape[-1]
    return sum(view[..., i:i + 1] * kernel[t // 3, t % 3, i] for t, view in enumerate(_shifted(x)) for i in range(c))


def conv_project(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """`conv` for few output channels: one matrix product into the 9 x C_out outputs of the kernel's taps,
    then the 9 shifted views summed."""
    c, o = kernel.shape[2:]
    z = x @ kernel.transpose(2, 0, 1, 3).reshape(c, 9 * o)  # (N, H, W, 9 C_out), tap-major
    return sum(view[..., t * o:(t + 1) * o] for t, view in enumerate(_shifted(z)))


def weight_grad_few_outputs(x: jnp.ndarray, dy: jnp.ndarray) -> jnp.ndarray:
    """The weight gradient for few output channels: dW[i, j] = sum over pixels p of x[p] dy_pad[p - (i, j) + 2],
    one (C_in, P) x (P, 9 C_out) product over the narrow output gradient's shifted views."""
    c, o = x.shape[-1], dy.shape[-1]
    views = jnp.concatenate(_shifted(dy, flipped=True), -1).reshape(-1, 9 * o)
    return (x.reshape(-1, c).T @ views).reshape(c, 3, 3, o).transpose(1, 2, 0, 3)


def _b_transpose(d):
    """B^T of F(2x2, 3x3) applied along one axis of 4 input rows (or columns)."""
    return [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]


def _a(m):
    """A of F(2x2, 3x3) applied along one axis of 2 output rows (or columns)."""
    return [m[0], m[0] + m[1], m[0] - m[1], -m[1]]


def _g(w):
    """G of F(2x2, 3x3) applied along one axis of 3 kernel rows (or columns)."""
    return [w[0], (w[0] + w[1] + w[2]) * .5, (w[0] - w[1] + w[2]) * .5, w[2]]


def _g_transpose(u):
    """G^T of F(2x2, 3x3) applied along one axis of 4 transformed-kernel rows (or columns)."""
    return [u[0] + (u[1] + u[2]) * .5, (u[1] - u[2]) * .5, (u[1] + u[2]) * .5 + u[3]]


def _a_transpose(m):
    """A^T of F(2x2, 3x3) applied along one axis of 4 tile rows (or columns)."""
    return [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]


def winograd_input_tiles(x: jnp.ndarray) -> list:
    """B^T d B for the 4x4 tiles d of the zero-padded input at stride 2: 16 (N, H/2, W/2, C) arrays.

    Kept as 16 arrays: stacking them into one costs XLA:CPU a pass over 4x the input's size,
    which made both Winograd forms slower.
    """
    n, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    rows = _b_transpose([xp[:, r:r + h:2] for r in range(4)])
    return [t for row in rows for t in _b_transpose([row[:, :, s:s + w:2] for s in range(4)])]


def winograd_kernel(kernel: jnp.ndarray) -> list:
    """G W G^T: the 16 (C_in, C_out) matrices of the transformed kernel, row-major over the 4x4 tile.

    Elementwise sums, not an einsum with G: XLA:CPU ran that einsum several times slower.
    """
    rows = _g([kernel[i] for i in range(3)])
    return [u for row in rows for u in _g([row[j] for j in range(3)])]


def conv_winograd(x: jnp.ndarray, kernel: jnp.ndarray, input_grad: bool = False) -> jnp.ndarray:
    """`conv` in Winograd's form: Y = A^T [(G W G^T) * (B^T d B)] A for each 2x2 output tile.

    16 matrix products over the tiles, 2.25x fewer multiplications than the direct form.
    Needs even heights and widths. With `input_grad`, x is an output gradient and the result its
    `conv` with `input_grad_kernel(kernel)`, the input gradient, without forming that kernel: the
    flip reverses the kernel's rows and columns, the channel swap transposes the 16 matrices inside
    the products (XLA:CPU fused the swapped kernel into the transform, slowly).
    """
    n, h, w, _ = x.shape
    u = winograd_kernel(kernel[::-1, ::-1] if input_grad else kernel)
    tiles = winograd_input_tiles(x)
    m = [[tiles[k] @ (u[k].T if input_grad else u[k]) for k in range(4 * i, 4 * i + 4)] for i in range(4)]
    columns = [_a_transpose([m[i][j] for i in range(4)]) for j in range(4)]
    y = [_a_transpose([columns[j][a] for j in range(4)]) for a in range(2)]  # y[a][b]: pixels (2p+a, 2q+b)
    return jnp.stack([jnp.stack(y[a], 3) for a in range(2)], 2).reshape(n, h, w, -1)


def weight_grad_winograd(x: jnp.ndarray, dy: jnp.ndarray) -> jnp.ndarray:
    """dW = G^T [sum over tiles of (B^T d B) * (A dY A^T)] G: the gradient of `conv_winograd`
    with respect to W. Needs even heights and widths.
    """
    c, o = x.shape[-1], dy.shape[-1]
    d6 = dy.reshape(dy.shape[0], dy.shape[1] // 2, 2, dy.shape[2] // 2, 2, o)
    rows = _a([d6[:, :, 0], d6[:, :, 1]])
    dm = [t for row in rows for t in _a([row[:, :, :, 0], row[:, :, :, 1]])]
    du = [jnp.einsum("tc,to->co", v.reshape(-1, c), d.reshape(-1, o)) for v, d in zip(winograd_input_tiles(x), dm)]
    columns = [_g_transpose([du[4 * a + b] for a in range(4)]) for b in range(4)]  # columns[b][i]
    return jnp.stack([jnp.stack(_g_transpose([columns[b][i] for b in range(4)]), 0) for i in range(3)], 0)


def _wide(form):
    """`form` computed in at least float32 (bfloat16 inputs), returning the inputs' dtype."""
    def wide_form(a, b):
        wide = jnp.promote_types(a.dtype, jnp.float32)
        return form(a.astype(wide), b.astype(wide)).astype(a.dtype)
    return wide_form


def cpu_weight_grad(x: jnp.ndarray, dy: jnp.ndarray) -> jnp.ndarray:
    """The fastest of the forms on XLA:CPU for this shape (benchmarks/conv_grad.py times them).

    Winograd's on even maps; im2col's on tiny maps and small odd ones; `weight_grad_few_outputs` for
    few output channels; XLA's own on larger odd maps, for batches of larger maps with few (16)
    channels, and for the image's own convolution (<= 4 input channels) on maps below 256x256.
    """
    n, h, w, c = x.shape
    odd, pixels = h % 2 or w % 2, n * h * w
    if c <= limits.FEW_INPUTS:
        return _wide(weight_grad_im2col)(x, dy) if h * w >= limits.FEW_INPUTS_MAP else weight_grad_xla(x, dy)
    if dy.shape[-1] <= limits.FEW_CHANNELS_ONE_SIDE:
        return _wide(weight_grad_few_outputs)(x, dy)
    if pixels <= limits.SMALL_MAP or (odd and pixels <= limits.ODD_MAP):
        return _wide(weight_grad_im2col)(x, dy)
    if odd or (n > 1 and h * w > limits.BATCHED_MAP and c <= limits.FEW_CHANNELS):
        return weight_grad_xla(x, dy)
    return _wide(weight_grad_winograd)(x, dy)


def winograd_pays(x: jnp.ndarray, kernel: jnp.ndarray) -> bool:
    """Whether `conv_winograd` beats XLA:CPU's convolution for x and kernel (either direction):
    float32 or wider, even maps, at least WINOGRAD_CHANNELS channels in and out, and at least
    WINOGRAD_WORK pixels x channels (from 32x32 maps at 128 channels, 16x16 at 512).

    With few channels the 16 narrow matrix products lose to XLA's direct form (D2LNet's last
    convolution, 64 -> 3, by far), and on small maps the tile transforms outweigh the saving.
    """
    n, h, w, _ = x.shape
    channels = min(kernel.shape[2:])
    return (h % 2 == 0 and w % 2 == 0 and channels >= limits.WINOGRAD_CHANNELS
            and n * h * w * channels >= limits.WINOGRAD_WORK and jnp.finfo(x.dtype).bits >= 32)


def cpu_conv(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """`conv`: `conv_taps` for few input channels, `conv_project` for few output channels, Winograd's form
    where it pays, else XLA's.

    Not `conv_taps` into Winograd-wide outputs (3 -> 64 channels): XLA:CPU fused those 27 products into the
    loop of a Winograd convolution's output transform (sam12), one fusion many times slower than the
    taps alone.
    """
    c_in, c_out = kernel.shape[2:]
    if c_in <= limits.FEW_CHANNELS_ONE_SIDE and c_out < limits.WINOGRAD_CHANNELS:
        return _wide(conv_taps)(x, kernel)
    if c_out <= limits.FEW_CHANNELS_ONE_SIDE:
        return _wide(conv_project)(x, kernel)
    return conv_winograd(x, kernel) if winograd_pays(x, kernel) else conv(x, kernel)


def input_grad_kernel(kernel: jnp.ndarray) -> jnp.ndarray:
    """The kernel whose `conv` with the output gradient is the input gradient: flipped in space,
    input and output channels swapped."""
    return jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)


def cpu_input_grad(dy: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """The input gradient, `conv(dy, input_grad_kernel(kernel))`, in `cpu_conv`'s forms (Winograd's without
    forming that kernel)."""
    if winograd_pays(dy, kernel):
        return conv_winograd(dy, kernel, input_grad=True)
    return cpu_conv(dy, input_grad_kernel(kernel))


def _forward(x, kernel):
    return lax.platform_dependent(x, kernel, cpu=cpu_conv, default=conv)


def conv3x3(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """3x3 convolution, stride 1, zero padding 1 (NHWC, HWIO): `conv`, faster on XLA:CPU.

    With CPU tuning off (`d2ljax.cpu.tuning`) it is `conv`, differentiated by JAX.
    """
    return _tuned_conv3x3(x, kernel) if cpu.enabled() else conv(x, kernel)


@jax.custom_vjp
def _tuned_conv3x3(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """`conv` with the CPU's forms on the CPU, forward and backward; XLA's elsewhere."""
    return _forward(x, kernel)


def _conv3x3_fwd(x, kernel):
    # Keeps x, not its Winograd tiles: the weight gradient recomputes them rather than hold 4x x's memory.
    return _forward(x, kernel), (x, kernel)


def _conv3x3_bwd(residuals, dy):
    """dx: the convolution of dy with `input_grad_kernel`; dW: cpu_weight_grad."""
    x, kernel = residuals
    dx = lax.platform_dependent(dy, kernel, cpu=cpu_input_grad, default=lambda dy, kernel: input_grad_xla(x, dy, kernel))
    dw = lax.platform_dependent(x, dy, cpu=cpu_weight_grad, default=weight_grad_xla)
    return dx, dw.astype(kernel.dtype)


_tuned_conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)
