"""Forward and forward+backward speed of D2LNet, with achieved convolution GFLOP/s.

    python benchmarks/model_speed.py                      # full model at 128 and 256, small model
    python benchmarks/model_speed.py --sizes=256 --dtype=bfloat16 --json=speed.json

GFLOPs count the convolutions only (2 FLOPs per multiply-add), as spec/performance_notes.md
does (358.6 GFLOPs for a 256x256 RGB forward of the full model); the backward pass is
counted as twice the forward. Times are the minimum over --repeats runs after one warm-up
(compile) run.
"""
from __future__ import annotations

import argparse
import json
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from d2ljax.model import D2LNet


def conv_gflops(model: D2LNet, height: int, width: int) -> float:
    """Convolution FLOPs of one forward pass (2 per multiply-add), counted from the parameters.

    Each conv kernel (kh, kw, in, out) costs kh*kw*in*out multiply-adds per output pixel;
    the resolutions are read off a shape-only trace of the model.
    """
    macs = []

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        if context.method_name == "__call__" and isinstance(module, (nn.Conv, nn.ConvTranspose)):
            kernel = module.variables["params"]["kernel"]
            # A transposed conv's kernel is applied once per *input* pixel.
            pixels = args[0].shape[:-1] if isinstance(module, nn.ConvTranspose) else out.shape[:-1]
            macs.append(int(np.prod(kernel.shape)) * int(np.prod(pixels)))
        return out

    x = jnp.zeros((1, height, width, model.in_chn))
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    with nn.intercept_methods(interceptor):
        jax.eval_shape(model.apply, variables, x)
    return 2 * sum(macs) / 1e9


def timed(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def measure(model: D2LNet, size: int, batch: int, repeats: int) -> dict:
    x = jax.random.uniform(jax.random.PRNGKey(0), (batch, size, size, model.in_chn))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x[:1])
    forward = jax.jit(lambda v, x: model.apply(v, x)[3])
    grad = jax.jit(jax.grad(lambda p, x: jnp.abs(model.apply({"params": p}, x)[3] - x).mean()))
    gflops = conv_gflops(model, size, size) * batch
    t_fwd = timed(forward, variables, x, repeats=repeats)
    t_step = timed(grad, variables["params"], x, repeats=repeats)
    return {"wf": model.wf, "depth": model.depth, "in_chn": model.in_chn, "size": size, "batch": batch,
            "dtype": str(model.dtype or "float32"), "device": str(jax.devices()[0].platform),
            "forward_s": t_fwd, "forward_gflops": gflops, "forward_gflop_per_s": gflops / t_fwd,
            "fwd_bwd_s": t_step, "fwd_bwd_gflop_per_s": 3 * gflops / t_step}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small_only", action="store_true", help="skip the full (wf 64, depth 4) model")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args()
    dtype = None if args.dtype == "float32" else jnp.bfloat16
    models = [] if args.small_only else [D2LNet(3, 64, 4, dtype=dtype)]
    models.append(D2LNet(3, 16, 3, dtype=dtype))
    rows = []
    for model in models:
        for size in map(int, args.sizes.split(",")):
            row = measure(model, size, args.batch, args.repeats)
            rows.append(row)
            print(f"wf={row['wf']:<3} depth={row['depth']} {size}x{size} batch {args.batch} {row['dtype']:<8} "
                  f"forward {row['forward_s']:.3f} s ({row['forward_gflop_per_s']:.0f} GFLOP/s of {row['forward_gflops']:.1f} GFLOPs)  "
                  f"fwd+bwd {row['fwd_bwd_s']:.3f} s ({row['fwd_bwd_gflop_per_s']:.0f} GFLOP/s)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
