"""Forward and forward+backward speed of D2LNet, with achieved convolution GFLOP/s.

    python -m benchmarks.model_speed --torch              # full and small model, 128 and 256,
                                                          # with the PyTorch baseline in the same run
    python -m benchmarks.model_speed --sizes=256 --dtype=bfloat16 --json=speed.json
    python -m benchmarks.model_speed --untuned    # d2ljax.cpu's gain: also with CPU tuning off

Run it as a module from the repository root (`--torch` imports benchmarks.torch_reference);
without `--torch` or `--torch-only`, `python benchmarks/model_speed.py` works too.

The training step is a plain one, the same in both libraries: forward, L1 on out_2,
backward, Adam.
GFLOPs count every convolution, the 1x1 convolutions on the spectrum and the 2x2 up-convolutions
included (2 FLOPs per multiply-add): 356.7 GFLOPs for a 256x256 RGB forward of the full model,
against the 358.6 counted for the released model (docs/architecture.md#size-and-cost); the backward pass is
counted as twice the forward. Times are the minimum over --repeats rounds after one warm-up
(compile) run; the forward pass and the train step are timed in separate blocks of rounds
(steps back to back, as in training), and each round runs every implementation once, so the
per-round speed-ups (median and range printed) compare runs made a few seconds apart. The
host's minor page faults during one JAX train step are counted too: XLA:CPU mallocs its buffers
at every run, and on Linux glibc gives large freed blocks back to the kernel, so each step
touches fresh pages (benchmarks/README.md, "Host memory").
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from d2ljax import cpu
from d2ljax.model import D2LNet, forward_flops


def conv_gflops(model: D2LNet, height: int, width: int) -> float:
    """Convolution GFLOPs of one forward pass (d2ljax.model.forward_flops)."""
    return forward_flops(model, height, width) / 1e9


# Default pause before each timed run, so that thread pools that spin after their work settle. It did not
# remove the slowdown of one library in a process where the other had run: use --torch-only for fair pairs.
PAUSE_S = 1.0


def warmed(fn):
    """fn, after one warm-up (compile) run, returning only when its work is done."""
    jax.block_until_ready(fn())
    return lambda: jax.block_until_ready(fn())


def jax_step_fn(model: D2LNet):
    """A training step as the PyTorch baseline does it: L1 on out_2, backward, Adam."""
    optimizer = optax.adam(1e-4)

    def step(params, opt_state, x, y):
        grads = jax.grad(lambda p: jnp.abs(model.apply({"params": p}, x)[3] - y).mean())(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return optimizer, jax.jit(step, donate_argnums=(0, 1))


def jax_forward(model: D2LNet):
    """The compiled forward pass, returning out_2: (variables, x) -> restored image."""
    return jax.jit(lambda v, x: model.apply(v, x)[3])


def jax_train_step(model: D2LNet, params, x):
    """jax_step_fn's step on the batch (x, x), as a function of nothing that updates `state`
    (parameters, optimizer state) in place: the step donates the previous ones. Returns both."""
    optimizer, step = jax_step_fn(model)
    state = [params, optimizer.init(params)]

    def train_step():
        state[:] = step(state[0], state[1], x, x)
        return state[0]

    return train_step, state


def jax_cases(model: D2LNet, size: int, batch: int) -> dict:
    """The forward pass and the train step of the JAX model, compiled and warmed up."""
    x = jax.random.uniform(jax.random.PRNGKey(0), (batch, size, size, model.in_chn))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x[:1])
    forward = jax_forward(model)
    train_step, state = jax_train_step(model, variables["params"], x)
    # the forward pass reads the current parameters: the train step donates the previous ones
    return {"forward_s": warmed(lambda: forward({"params": state[0]}, x)), "train_step_s": warmed(train_step)}


def page_faults(fn) -> int:
    """Minor page faults of the host process during one call of fn."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def torch_cases(model: D2LNet, size: int, batch: int) -> dict:
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

    return {"forward_s": warmed(forward), "train_step_s": warmed(train_step)}


def time_interleaved(implementations: dict, repeats: int, pause_s: float = PAUSE_S) -> dict:
    """Wall times of every implementation's cases. Each case has its own block of `repeats` rounds,
    as training runs steps back to back and inference runs forward passes (JAX's step ran about
    20% slower with a forward pass between steps; benchmarks/README.md); each round runs every
    implementation once, so that a slow spell of the shared machine hits all of them alike.

    Returns {implementation: {case: [seconds per round]}}.
    """
    times = {name: {case: [] for case in cases} for name, cases in implementations.items()}
    for case in next(iter(implementations.values())):
        for _ in range(repeats):
            for name, cases in implementations.items():
                time.sleep(pause_s)
                start = time.perf_counter()
                cases[case]()
                times[name][case].append(time.perf_counter() - start)
    return times


def summarise(times: dict) -> dict:
    """Minimum per implementation and case; per-round speed-ups against the others (their time / d2ljax's)."""
    row = {name: {case: min(ts) for case, ts in cases.items()} for name, cases in times.items()}
    for name in (times.keys() - {"jax"} if "jax" in times else ()):
        row[name]["round_speedups"] = {case: sorted((np.array(ts) / np.array(times["jax"][case])).tolist())
                                       for case, ts in times[name].items()}
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="64x4,16x3", help="comma-separated WFxDEPTH (RGB)")
    parser.add_argument("--torch", action="store_true", help="also time the PyTorch baseline in this run")
    parser.add_argument("--torch-only", action="store_true",
                        help="time only the PyTorch baseline: run it in its own process, alternating with a JAX-only "
                             "process, for a fair pair (each library ran 10-50%% slower in a process where the "
                             "other had run; benchmarks/README.md)")
    parser.add_argument("--untuned", "--xla-conv", action="store_true",
                        help="also time both cases with CPU tuning off (d2ljax.cpu.tuning(False): XLA's own "
                             "3x3 convolutions and gradients, atan2, sin and cos), compiled in this process")
    parser.add_argument("--precision", default="default", choices=["default", "highest"],
                        help="float32 matmul/convolution precision: on GPUs 'default' lets both JAX and "
                             "PyTorch's convolutions use TF32, 'highest' makes both exact float32")
    parser.add_argument("--pause", type=float, default=PAUSE_S,
                        help="seconds to wait before each timed run (on a GPU, where a run takes milliseconds, 0.05)")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args()
    jax.config.update("jax_default_matmul_precision", args.precision)
    if args.torch or args.torch_only:
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
            implementations = {} if args.torch_only else {"jax": jax_cases(model, size, args.batch)}
            if args.untuned:
                with cpu.tuning(False):  # compiled here, by fresh jits: the tuned cases keep their programs
                    implementations["jax_untuned"] = jax_cases(model, size, args.batch)
            if args.torch or args.torch_only:
                implementations["torch"] = torch_cases(model, size, args.batch)
            row = {"wf": wf, "depth": depth, "size": size, "batch": args.batch, "dtype": args.dtype,
                   "device": jax.devices()[0].device_kind, "precision": args.precision,
                   "forward_gflops": conv_gflops(model, size, size) * args.batch,
                   **summarise(time_interleaved(implementations, args.repeats, args.pause))}
            if "jax" in implementations:
                row["jax"]["train_step_page_faults"] = page_faults(implementations["jax"]["train_step_s"])
            rows.append(row)
            print(report(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": rows}, f, indent=2)


def spread(ratios: list) -> str:
    """Median and range of per-round ratios."""
    return f"median {np.median(ratios):.2f}x, {min(ratios):.2f}-{max(ratios):.2f}x"


def report(row: dict) -> str:
    """One line per case: times, achieved GFLOP/s (training = 3x forward FLOPs), speed-up."""
    g = row["forward_gflops"]
    parts = [f"wf={row['wf']} depth={row['depth']} {row['size']}x{row['size']} batch {row['batch']} {row['dtype']} "
             f"precision {row['precision']} on {row['device']}"]
    for name in ("jax", "jax_untuned", "torch"):
        if name in row:
            t = row[name]
            parts.append(f"{name}: forward {t['forward_s']:.3f} s ({g / t['forward_s']:.0f} GFLOP/s), "
                         f"train step {t['train_step_s']:.3f} s ({3 * g / t['train_step_s']:.0f} GFLOP/s)"
                         + (f", {t['train_step_page_faults']} page faults" if "train_step_page_faults" in t else ""))
    for name, label in (("jax_untuned", "CPU tuning speed-up"), ("torch", "speed-up vs torch")):
        if "round_speedups" in row.get(name, {}):
            speedups = row[name]["round_speedups"]
            parts.append(f"{label}: forward {row[name]['forward_s'] / row['jax']['forward_s']:.2f}x, "
                         f"train step {row[name]['train_step_s'] / row['jax']['train_step_s']:.2f}x "
                         f"(per round: forward {spread(speedups['forward_s'])}, step {spread(speedups['train_step_s'])})")
    return " | ".join(parts)


if __name__ == "__main__":
    main()
