"""d2ljax.cpu's one switch: D2LJAX_CPU_TUNING / d2ljax.cpu.tuning turn every CPU form off at once."""
import jax
import jax.numpy as jnp
import pytest
from conftest import lowered

from d2ljax import cpu
from d2ljax.model import D2LNet

OPS = ("stablehlo.convolution", "stablehlo.atan2", "stablehlo.sine", "stablehlo.cosine")


def test_environment_values():
    assert cpu.requested({}) and cpu.requested({"D2LJAX_CPU_TUNING": "1"})
    assert all(not cpu.requested({"D2LJAX_CPU_TUNING": v}) for v in ("0", "false", "Off", " no "))


def test_tuning_call_and_block():
    before = cpu.enabled()
    try:
        cpu.tuning(False)
        assert not cpu.enabled()
        with cpu.tuning(True):
            assert cpu.enabled()
            with cpu.tuning(False):
                assert not cpu.enabled()
            assert cpu.enabled()
        assert not cpu.enabled()
    finally:
        cpu.tuning(before)
    assert cpu.enabled() == before


def _op_counts(platform):
    """How often each of OPS occurs in a small D2LNet's forward pass and parameter gradient."""
    model = D2LNet(3, 8, 2)
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)

    def forward_and_grad(variables, x):
        return jax.value_and_grad(lambda v: model.apply(v, x)[3].mean())(variables)

    hlo = lowered(forward_and_grad, variables, x, platform=platform)
    return {op: hlo.count(op) for op in OPS}


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="checks the CPU's program")
def test_tuning_off_gives_the_cpu_the_program_other_platforms_get():
    """Tuned, the model's CPU program calls none of XLA's atan2, sin and cos and fewer of its
    convolutions; with tuning off it is, by these ops, the program lowered for a GPU."""
    tuned = _op_counts("cpu")
    with cpu.tuning(False):
        untuned = _op_counts("cpu")
    assert untuned == _op_counts("cuda")
    assert all(untuned[op] > 0 for op in OPS)
    assert tuned["stablehlo.convolution"] < untuned["stablehlo.convolution"]
    assert tuned["stablehlo.atan2"] == tuned["stablehlo.sine"] == tuned["stablehlo.cosine"] == 0
