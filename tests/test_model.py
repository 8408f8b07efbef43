"""D2LNet against the released PyTorch model (../shared/fixtures) and its own invariants."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import FIXTURES, random_variables, require
from d2ljax import convert
from d2ljax.model import D2LNet, count_params, forward_flops, outputs_and_input_grad

OUTPUTS = ("out_1", "out_1_amp", "out_1_phase", "out_2")
# (fixture with the reference values, source of the weights given to from_torch)
CASES = [
    ("official_rgb_wf16_d3.npz", "official_rgb_wf16_d3.pth"),
    ("official_gray_wf16_d3.npz", "official_gray_wf16_d3.pth"),
    ("official_rgb_wf16_d3_48x72.npz", "official_rgb_wf16_d3_48x72.npz"),
]


def nhwc(a):
    return np.asarray(a).transpose(0, 2, 3, 1)


def compare(ref, outs, grad, suffix, image_tol, amp_tol, phase_tol, grad_tol):
    got = dict(zip(OUTPUTS, outs))
    for name in ("out_1", "out_2"):
        np.testing.assert_allclose(got[name], nhwc(ref[name + suffix]), rtol=0, atol=image_tol, err_msg=name)
    amp = nhwc(ref["out_1_amp" + suffix])
    assert np.abs(np.asarray(got["out_1_amp"]) - amp).max() <= amp_tol * amp.max()
    wrapped = np.angle(np.exp(1j * (np.asarray(got["out_1_phase"]) - nhwc(ref["out_1_phase" + suffix]))))
    assert np.abs(wrapped[amp > 1e-3 * amp.max()]).max() <= phase_tol
    ref_grad = nhwc(ref["grad_x" + suffix])
    assert np.abs(np.asarray(grad) - ref_grad).max() <= grad_tol * np.abs(ref_grad).max()


@pytest.mark.parametrize("fixture,weights", CASES)
def test_parity_float32(fixture, weights):
    ref = np.load(require(FIXTURES / fixture))
    model, variables = convert.from_torch(require(FIXTURES / weights))
    outs, grad = outputs_and_input_grad(model, variables, nhwc(ref["x"]), nhwc(ref["cotangent"]))
    assert [o.shape for o in outs] == [nhwc(ref[n]).shape for n in OUTPUTS]
    compare(ref, outs, grad, "", image_tol=1e-4, amp_tol=1e-4, phase_tol=1e-3, grad_tol=1e-3)


@pytest.mark.parametrize("fixture,weights", CASES)
def test_parity_float64(fixture, weights):
    """In float64 the mathematics must agree with the released model's float64 run to ~1e-10."""
    ref = np.load(require(FIXTURES / fixture))
    with jax.enable_x64(True):
        model, variables = convert.from_torch(require(FIXTURES / weights))
        variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), variables)
        x = nhwc(ref["x"]).astype(np.float64)
        outs, grad = outputs_and_input_grad(model, variables, x, nhwc(ref["cotangent"]).astype(np.float64))
        assert outs[3].dtype == jnp.float64
        compare(ref, outs, grad, "_f64", image_tol=1e-10, amp_tol=1e-10, phase_tol=1e-10, grad_tol=1e-10)


def tiny(in_chn=3):
    """A wf-8, depth-3 model with random parameters (model.init compiles slowly on CPU)."""
    model = D2LNet(in_chn=in_chn, wf=8, depth=3)
    return model, random_variables(model, scale=0.1)


@pytest.mark.parametrize("height,width", [(1, 1), (7, 13), (250, 250), (255, 257)])
def test_any_size_is_reflect_padded_and_cropped(height, width):
    model, variables = tiny()
    x = jax.random.uniform(jax.random.PRNGKey(1), (1, height, width, 3))
    out_1, amp, phase, out_2 = jax.jit(model.apply)(variables, x)
    assert out_1.shape == out_2.shape == x.shape
    padded = np.pad(np.asarray(x), ((0, 0), (0, -height % 4), (0, -width % 4), (0, 0)), mode="reflect")
    assert amp.shape == phase.shape == (1, padded.shape[1], padded.shape[2] // 2 + 1, 3)
    ref_2 = jax.jit(model.apply)(variables, padded)[3][:, :height, :width]
    np.testing.assert_allclose(out_2, ref_2, atol=1e-6)
    assert np.isfinite(np.asarray(out_2)).all()


@pytest.mark.parametrize("value", [0.0, 0.5])
def test_gradients_finite_on_constant_image(value):
    """Constant maps give exact zeros in every spectrum: angle's gradient must not be NaN."""
    model, variables = tiny()
    x = jnp.full((1, 16, 16, 3), value)

    def loss(params, x):
        outs = model.apply({"params": params}, x)
        return sum(jnp.sum(o) for o in outs)
    g_params, g_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(variables["params"], x)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves(g_params))
    assert np.isfinite(np.asarray(g_x)).all()


def test_bfloat16_forward_close_to_float32():
    """bfloat16 convolutions (FFTs in float32) stay within about 1% of the float32 output."""
    ref = np.load(require(FIXTURES / "official_rgb_wf16_d3_48x72.npz"))
    model, variables = convert.from_torch(FIXTURES / "official_rgb_wf16_d3_48x72.npz")
    x = nhwc(ref["x"])
    want = np.asarray(jax.jit(model.apply)(variables, x)[3])
    got = jax.jit(model.clone(dtype=jnp.bfloat16).apply)(variables, x)[3]
    assert got.dtype == jnp.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(variables))
    err = np.abs(np.asarray(got) - want)
    scale = np.abs(want).max()
    assert err.mean() < 3e-3 * scale and err.max() < 3e-2 * scale, (err.mean(), err.max(), scale)
    assert err.mean() > 1e-5 * scale, "no rounding error: the convolutions did not run in bfloat16"


@pytest.mark.parametrize("in_chn,wf,depth,expected", [
    (3, 64, 4, 25_614_521),  # the released model without its 4,006,124 unused parameters
    (3, 16, 3, 424_829),
    (1, 16, 3, 422_807),
])
def test_parameter_count(in_chn, wf, depth, expected):
    model = D2LNet(in_chn=in_chn, wf=wf, depth=depth)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, in_chn)))
    assert count_params(shapes) == expected


def test_wrong_channels_is_clear_error():
    model, variables = tiny(in_chn=1)
    with pytest.raises(ValueError, match=r"in_chn=1.*\(N, H, W, 1\)"):
        model.apply(variables, jnp.zeros((1, 8, 8, 3)))


@pytest.mark.parametrize("size,spec_gflops", [(128, 89.7), (256, 358.6)])
def test_flop_count_matches_spec(size, spec_gflops):
    """The achieved TFLOP/s of training and the benchmarks rest on this count;
    spec/performance_notes.md gives the released model's convolution GFLOPs (every conv, 1x1
    and transposed included)."""
    flops = forward_flops(D2LNet(in_chn=3, wf=64, depth=4), size, size)
    assert flops / 1e9 == pytest.approx(spec_gflops, rel=0.01)
