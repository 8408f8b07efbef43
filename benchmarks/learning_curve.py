"""The training campaign's learning curves, read from the git history of the shipped models.

    python -m benchmarks.learning_curve                     # every shipped model, LIVE1
    python -m benchmarks.learning_curve --models=gray_qf10,gray_blind --set=classic5 --json=curve.json

Each commit that changed a model's model.json is one point: the model's total train steps,
CPU-hours and accelerator-hours at that commit, and the PSNR it recorded on the set (evaluate.py,
the published tables' protocol) at each QF it was measured at. Commits that changed neither the
totals nor the results (e.g. a new restore rule) are left out; CPU-hours read "-" where the
model.json of the time did not record them. It needs a git checkout with its history.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
from typing import Optional

ROOT = pathlib.Path(__file__).parents[1]
WEIGHTS = "d2ljax/weights"
MODELS = sorted(p.name for p in (ROOT / WEIGHTS).iterdir() if (p / "model.json").is_file())


def git(*args: str) -> str:
    """git's output, run in the repository this script belongs to."""
    return subprocess.run(("git", "-C", str(ROOT)) + args, check=True, capture_output=True, text=True).stdout


def versions(name: str) -> list[tuple[str, str, str]]:
    """(commit, date, path) of every commit that changed the model's model.json, oldest first.

    `--follow` carries the history across the renames of the weights folder."""
    log = git("log", "--follow", "--name-only", "--format=%x00%h %ad", "--date=format:%Y-%m-%d %H:%M",
              "--", f"{WEIGHTS}/{name}/model.json")
    entries = []
    for block in log.split("\x00")[1:]:
        header, *paths = [line for line in block.splitlines() if line]
        commit, date = header.split(" ", 1)
        entries.append((commit, date, paths[0]))
    return entries[::-1]


def point(commit: str, date: str, metadata: dict, dataset: str) -> dict:
    """One learning-curve point: the totals and the set's PSNR per QF at that commit."""
    results = metadata.get("results", {}).get(dataset, {})
    return {"commit": commit, "date": date,
            "steps": metadata.get("total_train_steps"),
            "cpu_hours": metadata.get("total_cpu_hours"),
            "accelerator_hours": metadata.get("total_accelerator_hours", 0.0),
            "psnr": {qf: row["psnr"] for qf, row in sorted(results.items(), key=lambda item: int(item[0]))}}


def measured(p: dict) -> tuple:
    """What a point says, its commit and date aside: two commits with the same are one point."""
    return p["steps"], p["cpu_hours"], p["accelerator_hours"], p["psnr"]


def curve(name: str, dataset: str) -> list[dict]:
    """The model's distinct points, oldest first."""
    points = []
    for commit, date, path in versions(name):
        new = point(commit, date, json.loads(git("show", f"{commit}:{path}")), dataset)
        if new["psnr"] and (not points or measured(points[-1]) != measured(new)):
            points.append(new)
    return points


def hours(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(name: str, points: list[dict]) -> str:
    """A markdown table of one model's curve."""
    qfs = sorted({qf for p in points for qf in p["psnr"]}, key=int)
    lines = [f"### {name}", "",
             "| commit | date | steps | CPU-h | accelerator-h | " + " | ".join(f"QF {qf}" for qf in qfs) + " |",
             "|---" * (5 + len(qfs)) + "|"]
    for p in points:
        cells = [p["commit"], p["date"], str(p["steps"] or "-"), hours(p["cpu_hours"]), hours(p["accelerator_hours"])]
        cells += [f"{p['psnr'][qf]:.3f}" if qf in p["psnr"] else "" for qf in qfs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated shipped model names")
    parser.add_argument("--set", default="LIVE1", help="results set, as model.json names it (LIVE1, classic5, BSDS500)")
    parser.add_argument("--json", help="also write the curves to this file")
    args = parser.parse_args()
    curves = {name: curve(name, args.set) for name in args.models.split(",")}
    print(f"PSNR (dB) on {args.set} by evaluate.py, at each commit that changed the model\n")
    print("\n\n".join(table(name, points) for name, points in curves.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"set": args.set, "curves": curves}, f, indent=1)


if __name__ == "__main__":
    main()
