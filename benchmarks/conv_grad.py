"""Where D2LNet's training step spends its CPU time: one 3x3 convolution, forward and backward.

    python benchmarks/conv_grad.py                 # the full model's shapes at 128x128 and 256x256
    python benchmarks/conv_grad.py --shapes=64x64@256 --json=conv_grad.json
    python benchmarks/conv_grad.py --shapes=16x16@64 --batch=16 --no-torch    # a batch of 16 maps

For each (in -> out channels @ square size, float32, batch 1 unless --batch) it times XLA's
forward, input gradient and weight gradient of one 3x3 'same' convolution; d2ljax.cpu.fastconv's
Winograd forward, the two other forms of the weight gradient (im2col, Winograd; see its
docstring) and the forms it chooses for the shape ("chosen", what D2LNet uses on a CPU); and
PyTorch's forward and weight gradient (2 threads) in the same run. Winograd's forms run on even
sizes only. Each form is checked against XLA's own result (relative error printed).
Times are minima over --repeats runs after a warm-up run, in milliseconds.
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from d2ljax.cpu.fastconv import (conv, conv_winograd, cpu_conv, cpu_input_grad, cpu_weight_grad,
                             input_grad_xla, weight_grad_im2col, weight_grad_winograd, weight_grad_xla)

FULL_MODEL_SHAPES = ("64x64@128,128x128@64,256x256@32,512x512@16,128x64@128,"
                     "64x64@256,128x128@128,256x256@64,512x512@32")


def timed_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def jax_timed(fn, args, repeats):
    jitted = jax.jit(fn)
    out = jax.block_until_ready(jitted(*args))
    return timed_ms(lambda: jax.block_until_ready(jitted(*args)), repeats), out


def torch_times(x, dy, w, repeats):
    import torch
    torch.set_num_threads(2)
    xt, dyt = (torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))) for a in (x, dy))
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
    with torch.no_grad():
        fwd = timed_ms(lambda: torch.nn.functional.conv2d(xt, wt, padding=1), repeats)
        wgrad = timed_ms(lambda: torch.nn.grad.conv2d_weight(xt, wt.shape, dyt, padding=1), repeats)
    return fwd, wgrad


def measure(c_in: int, c_out: int, size: int, repeats: int, with_torch: bool, batch: int = 1) -> dict:
    rng = np.random.default_rng(0)
    x, dy = (rng.random((batch, size, size, c), np.float32) for c in (c_in, c_out))
    w = rng.random((3, 3, c_in, c_out), np.float32) - 0.5
    row = {"shape": f"{c_in}x{c_out}@{size}" + (f" batch {batch}" if batch > 1 else "")}
    weight_grad_forms = (("im2col", weight_grad_im2col), ("winograd", weight_grad_winograd),
                         ("chosen", cpu_weight_grad))
    cases = {"forward": (conv, (x, w), (("winograd", conv_winograd), ("chosen", cpu_conv))),
             "input_grad": (lambda dy, w: input_grad_xla(x, dy, w), (dy, w),
                            (("winograd", lambda dy, w: conv_winograd(dy, w, input_grad=True)),
                             ("chosen", cpu_input_grad))),
             "weight_grad": (weight_grad_xla, (x, dy), weight_grad_forms)}
    for case, (xla_fn, args, forms) in cases.items():
        row[f"xla_{case}"], reference = jax_timed(xla_fn, args, repeats)
        scale = float(jnp.abs(reference).max())
        for name, fn in forms:
            if name == "winograd" and size % 2:
                continue  # Winograd's forms need even maps
            row[f"{name}_{case}"], out = jax_timed(fn, args, repeats)
            row[f"{name}_{case}_rel_error"] = float(jnp.abs(out - reference).max()) / scale
    if with_torch:
        row["torch_forward"], row["torch_weight_grad"] = torch_times(x, dy, w, repeats)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=FULL_MODEL_SHAPES, help="comma-separated CINxCOUT@SIZE")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1, help="maps per batch")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch columns")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args()
    rows = []
    for spec in args.shapes.split(","):
        channels, size = spec.split("@")
        c_in, c_out = map(int, channels.split("x"))
        row = measure(c_in, c_out, int(size), args.repeats, not args.no_torch, args.batch)
        rows.append(row)
        print(" | ".join(f"{k} {v:.3g}" if isinstance(v, float) else str(v) for k, v in row.items()), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": jax.devices()[0].device_kind, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
