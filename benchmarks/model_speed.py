"""Forward and forward+backward speed of D2LNet, with achieved convolution GFLOP/s.

    python benchmarks/model_speed.py --torch              # full and small model, 128 and 256,
                                                          # with the PyTorch baseline in the same run
    python benchmarks/model_speed.py --sizes=256 --dtype=bfloat16 --json=speed.json
    python benchmarks/model_speed.py --xla-conv   # fastconv's gain: also with XLA's own 3x3 convolutions

The training step is the one the baseline figures in spec/performance_notes.md use: forward,
L1 on out_2, backward, Adam.
GFLOPs count every convolution, the 1x1 convolutions on the spectrum and the 2x2 up-convolutions
included (2 FLOPs per multiply-add): 356.7 GFLOPs for a 256x256 RGB forward of the full model,
against spec/performance_notes.md's 358.6, which counts slightly more; the backward pass is
counted as twice the forward. Times are the minimum over --repeats runs after one warm-up
(compile) run. The host's minor page faults during one JAX train step are counted too: XLA:CPU
mallocs its buffers at every run, and on Linux glibc gives large freed blocks back to the kernel,
so each step touches fresh pages (benchmarks/README.md, "Host memory").
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from unittest import mock

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from d2ljax import fastconv  # noqa: E402
from d2ljax.model import D2LNet, UpConv2x2  # noqa: E402


def conv_gflops(model: D2LNet, height: int, width: int) -> float:
    """Convolution FLOPs of one forward pass (2 per multiply-add), counted from the parameters.

    Each conv kernel (kh, kw, in, out) costs kh*kw*in*out multiply-adds per output pixel;
    the resolutions are read off a shape-only trace of the model.
    """
    macs = []

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        params = module.variables.get("params", {})
        if context.method_name == "__call__" and "kernel" in params:
            kernel = params["kernel"]
            if isinstance(module, UpConv2x2):  # applied once per *input* pixel
                pixels = int(np.prod(args[0].shape[:-1]))
            elif getattr(module, "channels_first", False):  # (N, C, ...) spectrum
                pixels = out.shape[0] * int(np.prod(out.shape[2:]))
            else:
                pixels = int(np.prod(out.shape[:-1]))
            macs.append(int(np.prod(kernel.shape)) * pixels)
        return out

    x = jnp.zeros((1, height, width, model.in_chn))
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    with nn.intercept_methods(interceptor):
        jax.eval_shape(model.apply, variables, x)
    return 2 * sum(macs) / 1e9


def timed(fn, repeats: int) -> float:
    """Minimum wall time of fn() over `repeats` runs, after one warm-up (compile) run."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def jax_step_fn(model: D2LNet):
    """A training step as the PyTorch baseline does it: L1 on out_2, backward, Adam."""
    optimizer = optax.adam(1e-4)

    def step(params, opt_state, x, y):
        grads = jax.grad(lambda p: jnp.abs(model.apply({"params": p}, x)[3] - y).mean())(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return optimizer, jax.jit(step, donate_argnums=(0, 1))


def measure_jax(model: D2LNet, size: int, batch: int, repeats: int) -> dict:
    x = jax.random.uniform(jax.random.PRNGKey(0), (batch, size, size, model.in_chn))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x[:1])
    forward = jax.jit(lambda v, x: model.apply(v, x)[3])
    optimizer, step = jax_step_fn(model)
    state = [variables["params"], optimizer.init(variables["params"])]

    def train_step():
        state[:] = step(state[0], state[1], x, x)
        return state[0]

    times = {"forward_s": timed(lambda: forward(variables, x), repeats),
             "train_step_s": timed(train_step, repeats)}
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    jax.block_until_ready(train_step())
    return {**times, "train_step_page_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}


def measure_torch(model: D2LNet, size: int, batch: int, repeats: int) -> dict:
    """The same two cases for the PyTorch model with the released structure (torch_reference).

    It runs where JAX runs (CUDA when JAX's backend is a GPU), in bfloat16 through
    torch.autocast when the JAX model computes in bfloat16, with cuDNN's autotuner on.
    """
    import torch
    from benchmarks.torch_reference import TorchD2LNet
    device = "cuda" if jax.default_backend() == "gpu" else "cpu"
    torch.backends.cudnn.benchmark = True
    net = TorchD2LNet(model.in_chn, model.wf, model.depth).to(device)
    x = torch.rand(batch, model.in_chn, size, size, device=device)
    optimizer = torch.optim.Adam(net.parameters(), 1e-4)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=model.dtype == jnp.bfloat16)

    def synced(fn):  # CUDA runs asynchronously: wait for the work before the clock stops
        def run():
            out = fn()
            if device == "cuda":
                torch.cuda.synchronize()
            return out
        return run

    @synced
    def forward():
        with torch.no_grad(), autocast:
            return net(x)[3]

    @synced
    def train_step():
        optimizer.zero_grad()
        with autocast:
            loss = (net(x)[3] - x).abs().mean()
        loss.backward()
        optimizer.step()

    return {"forward_s": timed(forward, repeats), "train_step_s": timed(train_step, repeats),
            "device": device}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="64x4,16x3", help="comma-separated WFxDEPTH (RGB)")
    parser.add_argument("--torch", action="store_true", help="also time the PyTorch baseline in this run")
    parser.add_argument("--xla-conv", action="store_true",
                        help="also time both cases with XLA's own 3x3 convolutions and gradients "
                             "(d2ljax.fastconv's baseline)")
    parser.add_argument("--precision", default="default", choices=["default", "highest"],
                        help="float32 matmul/convolution precision: on GPUs 'default' lets both JAX and "
                             "PyTorch's convolutions use TF32, 'highest' makes both exact float32")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args()
    jax.config.update("jax_default_matmul_precision", args.precision)
    if args.torch:
        import torch
        torch.set_num_threads(os.cpu_count())  # CPU baseline: all cores, as XLA uses
        # PyTorch's own defaults: TF32 for cuDNN convolutions, not for matrix products
        torch.backends.cudnn.allow_tf32 = args.precision == "default"
        torch.backends.cuda.matmul.allow_tf32 = False
    dtype = None if args.dtype == "float32" else jnp.bfloat16
    rows = []
    for spec in args.models.split(","):
        wf, depth = map(int, spec.split("x"))
        model = D2LNet(3, wf, depth, dtype=dtype)
        for size in map(int, args.sizes.split(",")):
            gflops = conv_gflops(model, size, size) * args.batch
            row = {"wf": wf, "depth": depth, "size": size, "batch": args.batch, "dtype": args.dtype,
                   "device": jax.devices()[0].device_kind, "precision": args.precision, "forward_gflops": gflops,
                   "jax": measure_jax(model, size, args.batch, args.repeats)}
            if args.xla_conv:
                xla_input_grad = lambda dy, kernel: fastconv.conv(dy, fastconv.input_grad_kernel(kernel))  # noqa: E731
                with mock.patch.multiple(fastconv, cpu_conv=fastconv.conv, cpu_input_grad=xla_input_grad,
                                         cpu_weight_grad=fastconv.weight_grad_xla):
                    row["jax_xla_conv"] = measure_jax(model, size, args.batch, args.repeats)
            if args.torch:
                row["torch"] = measure_torch(model, size, args.batch, args.repeats)
            rows.append(row)
            print(report(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": rows}, f, indent=2)


def report(row: dict) -> str:
    """One line per case: times, achieved GFLOP/s (training = 3x forward FLOPs), speed-up."""
    g = row["forward_gflops"]
    parts = [f"wf={row['wf']} depth={row['depth']} {row['size']}x{row['size']} batch {row['batch']} {row['dtype']} "
             f"precision {row['precision']} on {row['device']}"]
    for name in ("jax", "jax_xla_conv", "torch"):
        if name in row:
            t = row[name]
            parts.append(f"{name}: forward {t['forward_s']:.3f} s ({g / t['forward_s']:.0f} GFLOP/s), "
                         f"train step {t['train_step_s']:.3f} s ({3 * g / t['train_step_s']:.0f} GFLOP/s)"
                         + (f", {t['train_step_page_faults']} page faults" if "train_step_page_faults" in t else ""))
    if "jax_xla_conv" in row:
        xla = row["jax_xla_conv"]
        parts.append(f"fastconv speed-up: forward {xla['forward_s'] / row['jax']['forward_s']:.2f}x, "
                     f"train step {xla['train_step_s'] / row['jax']['train_step_s']:.2f}x")
    if "torch" in row:
        parts.append(f"speed-up vs torch: forward {row['torch']['forward_s'] / row['jax']['forward_s']:.2f}x, "
                     f"train step {row['torch']['train_step_s'] / row['jax']['train_step_s']:.2f}x")
    return " | ".join(parts)


if __name__ == "__main__":
    main()
