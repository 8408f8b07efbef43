"""How far d2ljax is from the released model's fixtures on this backend, at each matmul precision.

    python benchmarks/parity_errors.py PATH/TO/fixtures/official_rgb_wf16_d3.npz
    python benchmarks/parity_errors.py FIXTURE.npz --precisions=default,highest --json=parity.json

tests/test_model.py asserts parity on the CPU, where float32 convolutions are exact float32.
On a GPU, JAX's default precision lets float32 convolutions and matrix products use TF32
(10-bit mantissa) on Ampere and later chips; this prints the errors of all four outputs and of
the input gradient under each precision, next to the tolerances the tests use, so that a user
can see what `jax.default_matmul_precision("highest")` buys.
"""
from __future__ import annotations

import argparse
import json
import os

import jax
import numpy as np

from d2ljax import convert
from d2ljax.model import outputs_and_input_grad

# The float32 tolerances of tests/test_model.py (images absolute; amplitude and gradient
# relative to their max; phase in radians where the amplitude is not tiny).
TOLERANCES = {"out_1": 1e-4, "out_2": 1e-4, "out_1_amp": 1e-4, "out_1_phase": 1e-3, "grad_x": 1e-3}


def errors(fixture: str, precision: str) -> dict:
    """Max errors of out_1, out_2 (absolute), amplitude and grad_x (relative), phase (wrapped)."""
    ref = {k: np.asarray(v).transpose(0, 2, 3, 1) for k, v in np.load(fixture).items() if v.ndim == 4
           and not k.startswith("params/")}
    model, variables = convert.from_torch(fixture)
    with jax.default_matmul_precision(precision):
        (out_1, amp, phase, out_2), grad = outputs_and_input_grad(model, variables, ref["x"], ref["cotangent"])
    ref_amp = ref["out_1_amp"]
    wrapped = np.angle(np.exp(1j * (np.asarray(phase) - ref["out_1_phase"])))
    return {"out_1": float(np.abs(np.asarray(out_1) - ref["out_1"]).max()),
            "out_2": float(np.abs(np.asarray(out_2) - ref["out_2"]).max()),
            "out_1_amp": float(np.abs(np.asarray(amp) - ref_amp).max() / ref_amp.max()),
            "out_1_phase": float(np.abs(wrapped[ref_amp > 1e-3 * ref_amp.max()]).max()),
            "grad_x": float(np.abs(np.asarray(grad) - ref["grad_x"]).max() / np.abs(ref["grad_x"]).max())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("fixtures", nargs="+", help="fixture .npz files (weights, inputs, reference outputs)")
    parser.add_argument("--precisions", default="default,highest")
    parser.add_argument("--json", help="also write the errors to this file")
    args = parser.parse_args()
    rows = []
    print(f"backend {jax.devices()[0].device_kind}; tolerances of the float32 tests: {TOLERANCES}")
    for fixture in args.fixtures:
        for precision in args.precisions.split(","):
            row = {"fixture": os.path.basename(fixture), "precision": precision,
                   "device": jax.devices()[0].device_kind, **errors(fixture, precision)}
            rows.append(row)
            verdict = "within" if all(row[k] <= t for k, t in TOLERANCES.items()) else "OUTSIDE"
            print(f"{row['fixture']} precision={precision}: "
                  + ", ".join(f"{k} {row[k]:.2e}" for k in TOLERANCES) + f" -> {verdict} the test tolerances",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
