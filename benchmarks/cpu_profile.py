"""Where a D2LNet's CPU time goes, op by op: XLA's executed operations, timed by jax.profiler.

    python -m benchmarks.cpu_profile --model=16x3 --case=step --size=64 --batch=16
    python -m benchmarks.cpu_profile --model=16x3 --case=forward --size=1024

Run it as a module from the repository root: it imports benchmarks.model_speed. It compiles the
forward pass or model_speed's train step, runs it under jax.profiler for --repeats runs, and sums
each executed XLA operation's time (per run) by kind: convolutions (XLA's own and the library
fusions it hands them to), matrix products (fastconv's Winograd and im2col forms, the 1x1 and
up-convolutions), FFTs, reductions and elementwise fusions (bias, activations, padding,
transposes, Winograd's transforms, the Fourier branches' arithmetic), then by pass (forward or
backward) and by model part, and lists the slowest operations. Reading the profile needs
TensorFlow's XPlane protobuf (`tensorflow.tsl.profiler.protobuf.xplane_pb2`).

The shares are what to compare: on a loaded machine every operation slows down alike, roughly.
"""
from __future__ import annotations

import argparse
import collections
import glob
import re
import tempfile

import jax

from benchmarks.model_speed import jax_step_fn
from d2ljax.model import D2LNet


def instruction_kinds(hlo_text: str) -> dict:
    """{instruction name: kind} of an optimised HLO module; a fusion's kind is what it contains."""
    computations, current = {}, None
    for line in hlo_text.splitlines():
        if line and not line.startswith(" ") and line.rstrip().endswith("{"):
            current = line.split()[1 if line.startswith("ENTRY") else 0].lstrip("%")
            computations[current] = []
        elif current and (m := re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = \S+ ([\w\-]+)\(", line)):
            computations[current].append((m.group(1), m.group(2), line))
    kinds = {}
    for instructions in computations.values():
        for name, op, line in instructions:
            if op == "fusion" and (called := re.search(r"calls=%?([\w.\-]+)", line)):
                inner = {o for _, o, _ in computations.get(called.group(1), [])}
                op = next((k for k in ("convolution", "dot", "fft", "reduce") if k in inner), "elementwise")
            kinds[name] = {"convolution": "convolution", "dot": "matrix product", "fft": "fft",
                           "reduce": "reduction"}.get(op, "elementwise")
    return kinds


def model_parts(hlo_text: str) -> dict:
    """{instruction name: (pass, part)} from the op_name metadata JAX leaves on each instruction."""
    parts = {}
    for m in re.finditer(r"%?([\w.\-]+) = .*?op_name=\"([^\"]+)\"", hlo_text):
        path = m.group(2)
        backward = "transpose(jvp(" in path
        part = ("Fourier branch" if "fourier" in path or "fft" in path else
                "3x3 convolution" if "cond/branch" in path or "conv_general" in path else
                "up-convolution" if "/up/" in path else "instance norm" if "/norm/" in path else
                "spatial attention" if "/sa/" in path else "other")
        parts[m.group(1)] = ("backward" if backward else "forward", part)
    return parts


def executed_seconds(logdir: str) -> collections.Counter:
    """Seconds per event name summed over a jax.profiler trace's host threads."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    space = xplane_pb2.XSpace()
    with open(sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1], "rb") as f:
        space.ParseFromString(f.read())
    seconds = collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                seconds[names.get(event.metadata_id, "")] += event.duration_ps / 1e12
    return seconds


def compiled_case(case: str, model: D2LNet, size: int, batch: int):
    """The compiled forward pass (out_2) or model_speed's train step, and a call of it."""
    x = jax.random.uniform(jax.random.PRNGKey(0), (batch, size, size, model.in_chn))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x[:1])
    if case == "forward":
        compiled = jax.jit(lambda v, x: model.apply(v, x)[3]).lower(variables, x).compile()
        return compiled, lambda: compiled(variables, x)
    optimizer, step = jax_step_fn(model)
    state = [variables["params"], optimizer.init(variables["params"])]
    compiled = step.lower(state[0], state[1], x, x).compile()

    def run():
        state[:] = compiled(state[0], state[1], x, x)
        return state[0]
    return compiled, run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="16x3", help="WFxDEPTH (RGB)")
    parser.add_argument("--case", default="step", choices=("forward", "step"))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=15, help="slowest operations to list")
    args = parser.parse_args()
    wf, depth = map(int, args.model.split("x"))
    compiled, run = compiled_case(args.case, D2LNet(3, wf, depth), args.size, args.batch)
    hlo = compiled.as_text()
    kinds, parts = instruction_kinds(hlo), model_parts(hlo)
    jax.block_until_ready(run())
    with tempfile.TemporaryDirectory() as logdir:
        with jax.profiler.trace(logdir):
            for _ in range(args.repeats):
                jax.block_until_ready(run())
        seconds = {name: s / args.repeats for name, s in executed_seconds(logdir).items() if name in kinds}
    total = sum(seconds.values())
    print(f"{args.case}, wf {wf} depth {depth}, batch {args.batch} of {args.size}x{args.size}: "
          f"{total:.3f} s of XLA operations per run")
    for title, key in (("by kind", lambda n: kinds[n]), ("by pass and kind", lambda n: (parts.get(n, ("?",))[0], kinds[n])),
                       ("by model part", lambda n: parts.get(n, ("?", "unnamed (layout copies)"))[1])):
        sums = collections.Counter()
        for name, s in seconds.items():
            sums[key(name)] += s
        print(title + ":")
        for group, s in sums.most_common():
            print(f"  {str(group):45s} {s * 1e3:8.1f} ms  {s / total:5.1%}")
    print("slowest operations:")
    for name, s in collections.Counter(seconds).most_common(args.top):
        print(f"  {name:34s} {kinds[name]:14s} {s * 1e3:7.1f} ms  {' '.join(parts.get(name, ('', '')))}")


if __name__ == "__main__":
    main()
