"""Benchmark evaluation as the published tables do it: JPEG rows and restored rows.

For every set, image and QF the ground truth is JPEG-compressed (d2ljax.jpeg.compress), each
method restores it (the "jpeg" baseline keeps it as it is), and PSNR / SSIM / PSNR-B are taken
per image (d2ljax.metrics) and averaged per set. Metrics run in worker threads so they overlap
with the model's device time instead of adding to it. `evaluate.py` is the command line.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import os
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from d2ljax import console, metrics
from d2ljax.imageio import mode_channels, side_by_side
from d2ljax.jpeg import check_quality, compress
from d2ljax.testsets import check_mode, iter_images, open_set

JPEG_METHOD = "jpeg"
RESTORE_METHOD = "restore"
METRICS = ("psnr", "ssim", "psnrb")
# How model.json's "results" were measured (model_results).
RESULTS_PROTOCOL = "evaluate.py (the published tables' protocol): PSNR dB / SSIM / PSNR-B dB, means over the set"
# Metric jobs allowed in flight per worker: bounds the images held in memory.
PENDING_PER_WORKER = 4
# Side of the central crops in --save_images' comparisons (at full scale, so artifacts show).
COMPARISON_CROP = 256
# Metric threads (numpy and scipy.ndimage release the GIL): enough to keep up with a GPU model.
MAX_WORKERS = 8


@dataclasses.dataclass(frozen=True)
class Method:
    """A row of the table: `restore(jpeg, qf)` maps the decoded JPEG (uint8) of quality qf to an
    image of the same shape; None is the JPEG baseline."""
    name: str
    restore: Callable[[np.ndarray, int], np.ndarray] | None = None


def measure(gt: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and PSNR-B of one image pair."""
    return {"psnr": metrics.psnr(gt, test), "ssim": metrics.ssim(gt, test),
            "psnrb": metrics.psnrb(gt, test)}


def checkpoint_method(model: str, mode: str) -> Method:
    """A named model, model folder or training workdir (d2ljax.pretrained.resolve) as a Method
    named after it. Its model.json is read now (its channels must fit `mode`), its parameters
    at the first image."""
    from d2ljax import pretrained
    from d2ljax.inference import apply_image

    entry = pretrained.model_entry(model)
    channels = mode_channels(mode)
    if entry.in_chn != channels:
        raise ValueError(f"{model}: the model takes {entry.in_chn}-channel images (in_chn={entry.in_chn}) "
                         f"but mode {mode!r} needs {channels}")
    name = os.path.basename(os.path.normpath(model))
    return Method(name, lambda image, qf: apply_image(*entry.loaded, image))


def restore_method() -> Method:
    """`d2ljax restore` as the command line runs it on each JPEG file, named "restore": among
    the named models of the image's kind the one chosen for its quality, at the strength of that
    model's rule, with the default Options (d2ljax.restoration.restore). The quality is the QF,
    which is what the file's quantisation tables give (jpeg.estimate_quality)."""
    from d2ljax import restoration

    entries = restoration.model_entries()
    return Method(RESTORE_METHOD, lambda image, qf: restoration.restore(image, entries, quality=qf))


def save_image(folder: str, record: dict, image: np.ndarray) -> None:
    """Writes one output as folder/<dataset>/<mode>/qf<QF>/<method>/<image>.png (lossless);
    method "comparison" holds the central crops of the JPEG, each model's output and the
    original, side by side in that order."""
    path = os.path.join(folder, record["dataset"], record["mode"], f"qf{record['qf']}",
                        record["method"], record["image"] + ".png")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(image.reshape(image.shape[:2]) if image.shape[-1:] == (1,) else image).save(path)


def average_per_set(per_image: Sequence[dict]) -> list[dict]:
    """Per (dataset, mode, qf, method): the mean of each metric over images, and n_images."""
    groups: dict[tuple, list[dict]] = collections.defaultdict(list)
    for record in per_image:
        groups[(record["dataset"], record["mode"], record["qf"], record["method"])].append(record)
    return [{"dataset": d, "mode": m, "qf": q, "method": method,
             **{k: float(np.mean([r[k] for r in rows])) for k in METRICS}, "n_images": len(rows)}
            for (d, m, q, method), rows in groups.items()]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during `evaluate`: `report` holds the image x QF pairs finished by then (every
    method measured on each), `done` of `total` pairs."""

    def __init__(self, report: dict, done: int, total: int):
        super().__init__(f"{done} of {total} image x QF pairs evaluated")
        self.report, self.done, self.total = report, done, total


def make_report(jobs: Sequence[tuple[dict, concurrent.futures.Future]], skipped: list[dict]) -> dict:
    """The report of finished metric jobs: per-set means, per-image rows, skipped files."""
    per_image = [{**record, **future.result()} for record, future in jobs]
    return {"results": average_per_set(per_image), "per_image": per_image, "skipped": skipped}


def evaluate(datasets: Sequence[str], mode: str, qfs: Sequence[int], methods: Sequence[Method],
             save_images: str | None = None, progress: bool = True,
             workers: int | None = None) -> dict:
    """Evaluates each method on each set at each QF.

    Returns {"results": average_per_set(...), "per_image": [...], "skipped": [...]}; skipped lists the
    files that could not be read (named, with the reason). Raises ValueError for a bad QF, a
    mode a set cannot take, or two sets or methods with the same name; Interrupted (a
    KeyboardInterrupt) carrying the report of the pairs finished, with "interrupted": {"done",
    "total"} added, after Ctrl-C.
    """
    if isinstance(datasets, str):
        datasets = datasets.split(",")
    qfs = [check_quality(qf) for qf in qfs]
    benches = [open_set(path) for path in datasets]
    for bench in benches:
        check_mode(bench, mode)
    for kind, names in (("sets", [b.name for b in benches]), ("methods", [m.name for m in methods])):
        if len(set(names)) != len(names):
            raise ValueError(f"two {kind} have the same name in {names}; their rows would mix")
    workers = workers or min(MAX_WORKERS, os.cpu_count() or 1)
    jobs: list[tuple[dict, concurrent.futures.Future]] = []  # (record, its metrics), in order
    in_flight: collections.deque = collections.deque()  # unfinished metric jobs, oldest first
    skipped: list[dict] = []
    finished_jobs = done = 0  # the jobs and the number of the image x QF pairs finished
    total = sum(len(b.files) for b in benches) * len(qfs)
    try:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool, \
                console.progress_bar(total=total, unit="pair", disable=not progress) as bar:
            for bench in benches:
                bar.set_description(f"{bench.name} {mode}, image x QF")
                n_skipped = len(skipped)
                for name, gt in iter_images(bench, mode, skipped):
                    for qf in qfs:
                        jpeg = compress(gt, qf)
                        outs = []
                        for method in methods:
                            out = jpeg if method.restore is None else method.restore(jpeg, qf)
                            record = {"dataset": bench.name, "mode": mode, "qf": qf,
                                      "method": method.name, "image": name}
                            if save_images:
                                save_image(save_images, record, out)
                            outs.append(out)
                            jobs.append((record, pool.submit(measure, gt, out)))
                            in_flight.append(jobs[-1][1])
                            while len(in_flight) > PENDING_PER_WORKER * workers:  # bounds the images held
                                in_flight.popleft().result()
                        if save_images:
                            comparison = side_by_side([*outs, gt], size=COMPARISON_CROP)
                            save_image(save_images, {**record, "method": "comparison"}, comparison)
                        finished_jobs, done = len(jobs), done + 1
                        bar.update()
                bar.update((len(skipped) - n_skipped) * len(qfs))
    except KeyboardInterrupt:  # the pool has finished the jobs already submitted
        report = make_report(jobs[:finished_jobs], skipped)
        raise Interrupted({**report, "interrupted": {"done": done, "total": total}}, done, total) from None
    return make_report(jobs, skipped)


def _cell(row: dict | None) -> str:
    """PSNR / SSIM / PSNR-B with 3 / 4 / 3 digits; published figures with the paper's 2 / 3 / 2."""
    if row is None:
        return "-"
    digits = (2, 3, 2) if row.get("published") else (3, 4, 3)
    return " / ".join(f"{row[k]:.{d}f}" for k, d in zip(METRICS, digits))


def markdown_table(results: Sequence[dict]) -> str:
    """The paper's table layout: one row per set and QF, one column per method, cells
    PSNR / SSIM / PSNR-B (more digits than the paper prints: 3 / 4 / 3)."""
    methods = list(dict.fromkeys(r["method"] for r in results))
    modes, sets = (list(dict.fromkeys(r[k] for r in results)) for k in ("mode", "dataset"))
    rows = sorted(dict.fromkeys((r["mode"], r["dataset"], r["qf"]) for r in results),
                  key=lambda row: (modes.index(row[0]), sets.index(row[1]), row[2]))
    by_key = {(r["mode"], r["dataset"], r["qf"], r["method"]): r for r in results}
    lines = []
    for mode in dict.fromkeys(m for m, _, _ in rows):
        title = "Grayscale (Y channel)" if mode == "gray" else "Colour (RGB)"
        lines += [f"{title}: PSNR / SSIM / PSNR-B", "",
                  "| set | QF | " + " | ".join("JPEG" if m == JPEG_METHOD else m for m in methods) + " |",
                  "|---|---|" + "---|" * len(methods)]
        lines += [f"| {d} | {q} | " + " | ".join(_cell(by_key.get((mode, d, q, m))) for m in methods) + " |"
                  for row_mode, d, q in rows if row_mode == mode]
        lines.append("")
    return "\n".join(lines)


def model_results(results: Sequence[dict]) -> dict:
    """model.json's "results" from evaluate.py rows of one model: {set: {"QF": {psnr, ssim,
    psnrb, jpeg_psnr, n_images}}}, jpeg_psnr from the JPEG row of the same set and QF (left out
    where the report has none). Raises ValueError unless the rows hold exactly one method
    besides the JPEG baseline, since a folder's results are those of its own model."""
    methods = sorted({r["method"] for r in results} - {JPEG_METHOD})
    if len(methods) != 1:
        raise ValueError(f"the reports hold {len(methods)} methods besides JPEG ({', '.join(methods) or 'none'}); "
                         "a model's results come from reports of that model alone")
    jpeg_psnr = {(r["dataset"], r["qf"]): r["psnr"] for r in results if r["method"] == JPEG_METHOD}
    table: dict[str, dict[str, dict]] = {}
    for r in sorted(results, key=lambda r: (r["dataset"], r["qf"])):
        if r["method"] == JPEG_METHOD:
            continue
        row = {"psnr": round(r["psnr"], 3), "ssim": round(r["ssim"], 4), "psnrb": round(r["psnrb"], 3)}
        if (r["dataset"], r["qf"]) in jpeg_psnr:
            row["jpeg_psnr"] = round(jpeg_psnr[r["dataset"], r["qf"]], 3)
        table.setdefault(r["dataset"], {})[str(r["qf"])] = {**row, "n_images": r["n_images"]}
    return table


def write_report(report: dict, output: str) -> str:
    """Writes the JSON report to `output` and the Markdown table beside it (.md); returns the
    table (under a line saying so when the evaluation was interrupted)."""
    table = markdown_table(report["results"])
    if "interrupted" in report:
        table = "Interrupted: means over the {done} of {total} image x QF pairs evaluated.\n\n".format(
            **report["interrupted"]) + table
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.splitext(output)[0] + ".md", "w") as f:
        f.write(table)
    return table
