"""Training throughput of d2ljax's real train step (dual-domain loss, Adam, EMA, sharded jit).

    python -m benchmarks.train_speed                         # full model 128x128 batch 1, quickstart model
    python -m benchmarks.train_speed --models=full --dtype=bfloat16 --json=train_speed.json
    python -m benchmarks.train_speed --models=full --patch_size=256 --batch_size=8   # on a GPU
    python -m benchmarks.train_speed --models=bsds_color --wf=24 --depth=3            # another size

Run it as a module from the repository root: it imports `configs`.

Each model is timed on a fixed random batch: the minimum over --repeats steps after one
warm-up (compile) step, data loading excluded. GFLOP/s counts the convolutions only
(d2ljax.model.forward_flops), fwd+bwd = 3x forward. For reference, the released
PyTorch model takes about 1.88 s per batch-1 128x128 training step on a 2-core AMD EPYC
(PyTorch 2.13, 2 threads).
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from configs import bsds, default, quickstart
from d2ljax import schedules, train_config, train_state
from d2ljax.model import forward_flops


def full_config():
    """The paper's model (wf 64, depth 4) on the reference case: 128x128, batch 1."""
    config = default.get_config()
    config.update({"patch_size": 128, "batch_size": 1})
    return config


MODELS = {"full": full_config, "quickstart": quickstart.get_config,
          "bsds_gray": lambda: bsds.get_config("gray,10"), "bsds_color": lambda: bsds.get_config("color,10")}


def measure(name: str, config, repeats: int) -> dict:
    """Seconds per train step and the throughput it gives."""
    train_config.check_config(config)
    model = train_state.make_model(config)
    lr_fn = schedules.create_learning_rate_fn(config)
    tx = train_state.create_optimizer(config)
    mesh = train_state.make_mesh()
    state = train_state.create_train_state(config, model, tx, mesh)
    step = train_state.make_train_step(config, model, tx, lr_fn, mesh)
    shape = (config.batch_size, config.patch_size, config.patch_size, model.in_chn)
    rng = np.random.default_rng(0)
    batch = train_state.global_batch([rng.uniform(size=shape).astype(np.float32) for _ in range(2)], mesh)
    span = schedules.schedule_span(0, config.num_train_steps)
    times = []
    for _ in range(repeats + 1):  # the first run compiles
        start = time.perf_counter()
        state, metrics = step(state, batch, span)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    seconds = min(times[1:])
    gflops = 3 * forward_flops(model, config.patch_size, config.patch_size) * config.batch_size / 1e9
    return {"model": name, "wf": config.wf, "depth": config.depth, "patch_size": config.patch_size,
            "batch_size": config.batch_size, "dtype": config.dtype, "devices": jax.device_count(),
            "platform": jax.devices()[0].platform, "compile_and_first_step_s": times[0],
            "step_s": seconds, "steps_per_s": 1 / seconds, "patches_per_s": config.batch_size / seconds,
            "train_gflops_per_step": gflops, "gflop_per_s": gflops / seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="full,quickstart", help=f"comma-separated, of {list(MODELS)}")
    parser.add_argument("--dtype", default="float32", choices=sorted(train_state.DTYPES))
    parser.add_argument("--wf", type=int, help="override every model's width (wf)")
    parser.add_argument("--depth", type=int, help="override every model's depth")
    parser.add_argument("--patch_size", type=int, help="override every model's patch size")
    parser.add_argument("--batch_size", type=int, help="override every model's global batch size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        config = MODELS[name]()
        config.dtype = args.dtype
        config.wf = args.wf or config.wf
        config.depth = args.depth or config.depth
        config.patch_size = args.patch_size or config.patch_size
        config.batch_size = args.batch_size or config.batch_size
        row = measure(name, config, args.repeats)
        rows.append(row)
        print(f"{name:10s} wf {row['wf']:2d} depth {row['depth']} {row['patch_size']}x{row['patch_size']} "
              f"batch {row['batch_size']} {row['dtype']}: {row['step_s']:.3f} s/step, "
              f"{row['patches_per_s']:.2f} patches/s, {row['gflop_per_s']:.1f} GFLOP/s "
              f"({row['train_gflops_per_step']:.1f} GFLOPs/step; compile + first step "
              f"{row['compile_and_first_step_s']:.0f} s)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
