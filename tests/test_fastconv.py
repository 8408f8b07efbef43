"""fastconv's convolution and gradients against XLA's own (an independent computation), and
against float64 where its float32 forms round differently from XLA's."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import lowered

from d2ljax import cpu
from d2ljax.cpu import fastconv
from d2ljax.model import Conv3x3

# (N, H, W, C_in, C_out) reaching each branch of cpu_weight_grad (and cpu_conv's few-channel forms)
SHAPES = {
    "few inputs (XLA)": (1, 6, 10, 3, 7),
    "few inputs, large map (im2col)": (1, 256, 256, 2, 3),
    "few inputs, wide outputs (XLA's forward)": (1, 6, 10, 3, 64),
    "few outputs": (2, 12, 10, 8, 3),
    "few outputs, odd map": (1, 9, 11, 20, 1),
    "small map (im2col)": (1, 8, 8, 8, 5),
    "small odd map (im2col)": (1, 9, 11, 8, 6),
    "even map (Winograd)": (2, 8, 6, 8, 6),
    "odd map (XLA)": (1, 17, 21, 8, 6),
    "batch of larger maps, few channels (XLA)": (2, 34, 34, 8, 6),
    "batch of larger maps (Winograd)": (2, 34, 34, 24, 6),
}


def random(shape, dtype, seed):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def grads(conv_fn, x, kernel):
    """Gradients of a nonlinear function of the convolution, wrt input and kernel."""
    return jax.jit(jax.grad(lambda x, k: jnp.sin(conv_fn(x, k)).sum(), (0, 1)))(x, kernel)


def relative(a, b):
    return float(jnp.abs(a - b).max() / jnp.abs(b).max())


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_conv3x3_and_gradients_equal_xla_float32(shape):
    n, h, w, c_in, c_out = shape
    x, kernel = random((n, h, w, c_in), jnp.float32, 0), random((3, 3, c_in, c_out), jnp.float32, 1)
    assert relative(fastconv.conv3x3(x, kernel), fastconv.conv(x, kernel)) < 3e-6
    (dx, dw), (dx_ref, dw_ref) = grads(fastconv.conv3x3, x, kernel), grads(fastconv.conv, x, kernel)
    assert relative(dx, dx_ref) < 3e-6
    assert relative(dw, dw_ref) < 1e-5


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="fastconv's own forms run on the CPU only")
@pytest.mark.parametrize("shape", [(1, 64, 64, 64, 64), (2, 64, 66, 64, 80), (1, 40, 30, 3, 16), (2, 30, 40, 16, 3)],
                         ids=["Winograd, one map", "Winograd, batch", "few inputs", "few outputs"])
def test_fast_forms_as_accurate_as_xla(shape):
    """Where fastconv runs the forward pass and the input gradient in its own forms (Winograd's, the
    few-channel ones), their float32 errors against a float64 computation are no larger than XLA's own."""
    n, h, w, c_in, c_out = shape
    with jax.enable_x64(True):
        x, kernel = random((n, h, w, c_in), jnp.float64, 7), random((3, 3, c_in, c_out), jnp.float64, 8)
        truth = (fastconv.conv(x, kernel),) + grads(fastconv.conv, x, kernel)
        x, kernel = x.astype(jnp.float32), kernel.astype(jnp.float32)
        errors = {}
        for name, fn in (("fast", fastconv.conv3x3), ("xla", fastconv.conv)):
            got = (fn(x, kernel),) + grads(fn, x, kernel)
            errors[name] = np.array([relative(a, b) for a, b in zip(got, truth)])
    assert not jnp.array_equal(fastconv.conv3x3(x, kernel), fastconv.conv(x, kernel))  # a form of fastconv's ran
    assert (errors["fast"] <= 1.5 * errors["xla"] + 1e-7).all(), errors


@pytest.mark.parametrize("form", [fastconv.weight_grad_im2col, fastconv.weight_grad_winograd,
                                  fastconv.weight_grad_few_outputs])
def test_weight_gradient_forms_are_exact_in_float64(form):
    with jax.enable_x64(True):
        x, dy = random((2, 10, 14, 6), jnp.float64, 2), random((2, 10, 14, 4), jnp.float64, 3)
        assert relative(form(x, dy), fastconv.weight_grad_xla(x, dy)) < 1e-12


@pytest.mark.parametrize("form", [fastconv.conv_winograd, fastconv.conv_taps, fastconv.conv_project])
def test_forward_forms_are_exact_in_float64(form):
    with jax.enable_x64(True):
        x, kernel = random((2, 10, 14, 6), jnp.float64, 2), random((3, 3, 6, 4), jnp.float64, 3)
        assert relative(form(x, kernel), fastconv.conv(x, kernel)) < 1e-12


def test_bfloat16_weight_gradient_close_to_float32():
    x, kernel = random((1, 16, 16, 8), jnp.float32, 4), random((3, 3, 8, 8), jnp.float32, 5)
    _, dw = grads(fastconv.conv3x3, x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16))
    _, dw_ref = grads(fastconv.conv, x, kernel)
    assert dw.dtype == jnp.bfloat16 and relative(dw.astype(jnp.float32), dw_ref) < 0.05


def test_module_matches_flax_conv():
    """Conv3x3 is nn.Conv(3x3, padding 1): same parameter tree, outputs and parameter gradients."""
    x = random((2, 12, 10, 5), jnp.float32, 6)
    ours = Conv3x3(7)
    reference = nn.Conv(7, (3, 3), padding=((1, 1), (1, 1)))
    variables = ours.init(jax.random.PRNGKey(0), x)
    assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, reference.init(jax.random.PRNGKey(0), x))
    variables = jax.tree.map(lambda v: v + 0.1, variables)  # a non-zero bias

    def loss(module):
        return jax.grad(lambda v: jnp.sin(module.apply(v, x)).sum())(variables)

    np.testing.assert_allclose(ours.apply(variables, x), reference.apply(variables, x), atol=1e-6)
    for got, want in zip(jax.tree.leaves(loss(ours)), jax.tree.leaves(loss(reference))):
        assert relative(got, want) < 1e-5


def _conv_and_grads(x, kernel):
    """The convolution and its input and weight gradients for the cotangent cos(y)."""
    y, vjp = jax.vjp(fastconv.conv3x3, x, kernel)
    return (y,) + vjp(jnp.cos(y))


WINOGRAD_SHAPES = (jax.ShapeDtypeStruct((1, 64, 64, 64), jnp.float32),
                   jax.ShapeDtypeStruct((3, 3, 64, 64), jnp.float32))


@pytest.mark.parametrize("platform", ["cuda", "rocm", "tpu"])
def test_other_platforms_run_xla_convolutions(platform):
    """Lowered for a GPU or TPU, the forward pass and both gradients are XLA's three convolutions,
    at a shape where the CPU runs Winograd's form for all three."""
    assert lowered(_conv_and_grads, *WINOGRAD_SHAPES, platform=platform).count("stablehlo.convolution") == 3


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="fastconv's own forms run on the CPU only")
def test_tuning_off_runs_xla_convolutions_on_the_cpu():
    assert lowered(_conv_and_grads, *WINOGRAD_SHAPES, platform="cpu").count("stablehlo.convolution") == 0
    x, kernel = random((1, 20, 12, 3), jnp.float32, 9), random((3, 3, 3, 8), jnp.float32, 10)
    with cpu.tuning(False):
        assert lowered(_conv_and_grads, *WINOGRAD_SHAPES, platform="cpu").count("stablehlo.convolution") == 3
        np.testing.assert_array_equal(fastconv.conv3x3(x, kernel), fastconv.conv(x, kernel))
    assert not jnp.array_equal(fastconv.conv3x3(x, kernel), fastconv.conv(x, kernel))  # conv_taps again
