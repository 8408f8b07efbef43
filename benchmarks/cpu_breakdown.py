"""Where the full model's CPU time goes, and the XLA:CPU limits behind it (benchmarks/README.md).

    python -m benchmarks.cpu_breakdown               # all four parts, 128x128
    python -m benchmarks.cpu_breakdown --parts=forward,step --size=256
    python -m benchmarks.cpu_breakdown --parts=forward --model=16x3   # the small model
    python -m benchmarks.cpu_breakdown --parts=step --model=16x3 --size=64 --batch=16   # its training recipe

Run it as a module from the repository root: it imports benchmarks.model_speed and conv_grad.

- forward, step: the model's forward (or model_speed's train step; `--model`, default the full
  one, wf 64 and depth 4), then again with its 3x3 convolutions, the strided 4x4 downsampling
  and the Fourier branches replaced in turn by near-free ops of the same shape;
- chain: ten chained 64-channel 3x3 convolutions, XLA against PyTorch (needs torch), GFLOP/s;
- patches: the 64-channel weight gradient at the model's largest size, XLA's own against the
  pieces an im2col form would need (the slices, one matrix of them, its matrix product) and
  one elementwise pass over an array of that matrix's size (the machine's memory speed).
"""
from __future__ import annotations

import argparse
import functools
import os
from unittest import mock

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.conv_grad import timed_ms
from benchmarks.model_speed import jax_forward, jax_train_step
from d2ljax import model as d2l
from d2ljax.cpu import fastconv


def timed(fn, repeats: int) -> float:
    """Seconds per call of fn, the minimum of `repeats` after a warm-up, each waiting for its work."""
    return timed_ms(lambda: jax.block_until_ready(fn()), repeats) / 1e3


def near_free_conv3x3(x, kernel):
    return jnp.broadcast_to(x[..., :1], x.shape[:-1] + (kernel.shape[-1],)) * kernel[1, 1, 0]


@nn.compact
def near_free_downsample(self, x):  # replaces nn.Conv, which D2LNet uses only for the 4x4 stride-2 conv
    kernel = self.variables["params"]["kernel"]  # the real model's, created by model.init
    half = x[:, ::2, ::2, :1]
    return jnp.broadcast_to(half, half.shape[:-1] + (self.features,)) * kernel[0, 0, 0]


def forward_fn(model, variables, x):
    """model_speed's forward pass, as a function of nothing (compiled at its first call)."""
    forward = jax_forward(model)
    return lambda: forward(variables, x)


def step_fn(model, variables, x):
    """model_speed's train step (L1 on out_2, backward, Adam), as a function of nothing."""
    return jax_train_step(model, variables["params"], x)[0]


def breakdown(case: str, size: int, repeats: int, wf: int = 64, depth: int = 4, batch: int = 1) -> None:
    """Times `case` ("forward": forward_fn, "step": step_fn) for the RGB model of width wf and depth `depth`,
    then with its 3x3 convolutions, the strided 4x4 downsampling and the Fourier branches replaced in turn by
    near-free ops."""
    make = {"forward": forward_fn, "step": step_fn}[case]
    model = d2l.D2LNet(3, wf, depth)
    x = jax.random.uniform(jax.random.PRNGKey(0), (batch, size, size, 3))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x[:1])

    def seconds():  # fresh parameters for each: the train step donates its inputs
        return timed(make(model, jax.tree.map(jnp.copy, variables), x), repeats)

    full = seconds()
    with mock.patch.object(fastconv, "conv3x3", near_free_conv3x3):
        no_3x3 = seconds()
        with mock.patch.object(nn.Conv, "__call__", near_free_downsample):
            no_down = seconds()
            with mock.patch.object(d2l, "fourier_branch", lambda x_res, mode, edit: x_res):
                rest = seconds()
    print(f"{case} {batch}x{size}x{size}, wf {wf} depth {depth}: {full:.3f} s; 3x3 convolutions {full - no_3x3:.3f} s "
          f"({(full - no_3x3) / full:.0%}), 4x4 downsampling {no_3x3 - no_down:.3f} s, Fourier branches "
          f"{no_down - rest:.3f} s ({(no_down - rest) / full:.0%}), the rest {rest:.3f} s", flush=True)


def chain(size: int, repeats: int, channels: int = 64, length: int = 10) -> None:
    import torch
    torch.set_num_threads(os.cpu_count())
    rng = np.random.default_rng(0)
    kernels = [(rng.standard_normal((3, 3, channels, channels)) * 0.05).astype(np.float32) for _ in range(length)]
    x = rng.uniform(size=(1, size, size, channels)).astype(np.float32)
    run = jax.jit(lambda x, ks: jax.tree.reduce(fastconv.conv, ks, x))
    jax_s = timed(lambda: run(x, kernels), repeats)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    kt = [torch.from_numpy(k.transpose(3, 2, 0, 1).copy()) for k in kernels]

    def torch_chain():
        with torch.no_grad():
            y = xt
            for k in kt:
                y = torch.nn.functional.conv2d(y, k, padding=1)
        return y

    torch_s = timed(torch_chain, repeats)
    gflops = 2 * 9 * channels * channels * size * size * length / 1e9
    print(f"{length} chained {channels}-channel 3x3 convolutions at {size}x{size}: XLA {gflops / jax_s:.0f} "
          f"GFLOP/s, PyTorch {gflops / torch_s:.0f} GFLOP/s", flush=True)


def patches(size: int, repeats: int, channels: int = 64) -> None:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((1, size, size, channels)), jnp.float32)
    dy = jnp.asarray(rng.standard_normal((1, size, size, channels)), jnp.float32)

    def slices(x):  # the 9 shifted views, channels first: (C, P) each
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).transpose(3, 0, 1, 2)
        return [xp[:, :, i:i + size, j:j + size].reshape(channels, -1) for i in range(3) for j in range(3)]

    matrix = jax.jit(lambda x: jnp.concatenate(slices(x), 0))(x)
    dy_rows = dy.reshape(-1, channels)
    cases = {"XLA's weight gradient": (fastconv.weight_grad_xla, (x, dy)),
             "the 9 slices": (slices, (x,)),
             "one (9C, P) matrix of them": (lambda x: jnp.concatenate(slices(x), 0), (x,)),
             "its matrix product alone": (jnp.matmul, (matrix, dy_rows)),
             "9 products on the slices": (lambda x, d: [s @ d for s in slices(x)], (x, dy_rows)),
             f"one elementwise pass over {matrix.nbytes / 2**20:.0f} MiB": (lambda m: m + 1.0, (matrix,))}
    for name, (fn, args) in cases.items():
        compiled = jax.jit(fn)
        print(f"weight gradient pieces, {channels} channels at {size}x{size}: {name}: "
              f"{timed(lambda: compiled(*args), repeats) * 1e3:.1f} ms", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="forward,step,chain,patches")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="64x4", help="WFxDEPTH of the forward and step parts")
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass or step (forward, step)")
    args = parser.parse_args()
    wf, depth = map(int, args.model.split("x"))
    parts = {"forward": functools.partial(breakdown, "forward", wf=wf, depth=depth, batch=args.batch),
             "step": functools.partial(breakdown, "step", wf=wf, depth=depth, batch=args.batch),
             "chain": chain, "patches": patches}
    for name in args.parts.split(","):
        parts[name](args.size, args.repeats)


if __name__ == "__main__":
    main()
