"""Published results to print beside d2ljax's: the D2LNet paper's Tables 1 and 2.

    d2ljax tables results/gray_qf10.json results/gray_blind.json

merges evaluate.py reports into one Markdown table per mode and adds the published columns
(ARCNN, FBCNN, D2LNet for gray; QGAC, FBCNN, D2LNet for colour), labelled "(published)" and
printed with the paper's digits. Each published model was trained for its QF on DIV2K +
Flickr2K; the numbers (PSNR, SSIM, PSNR-B) are the paper's, as printed.
"""
from __future__ import annotations

from typing import Sequence

# (mode, paper's set name, QF) -> {method: (PSNR, SSIM, PSNR-B)}
TABLES: dict[tuple[str, str, int], dict[str, tuple[float, float, float]]] = {
    ("gray", "LIVE1", 10): {"ARCNN": (28.96, 0.808, 28.68), "FBCNN": (29.75, 0.827, 29.40), "D2LNet": (30.08, 0.840, 30.06)},
    ("gray", "LIVE1", 20): {"ARCNN": (31.29, 0.873, 30.76), "FBCNN": (32.13, 0.889, 31.57), "D2LNet": (32.47, 0.898, 32.42)},
    ("gray", "LIVE1", 30): {"ARCNN": (32.67, 0.904, 32.14), "FBCNN": (33.54, 0.916, 32.83), "D2LNet": (33.91, 0.924, 33.85)},
    ("gray", "BSD500", 10): {"ARCNN": (29.10, 0.804, 28.73), "FBCNN": (29.67, 0.821, 29.22), "D2LNet": (29.61, 0.810, 29.53)},
    ("gray", "BSD500", 20): {"ARCNN": (31.28, 0.870, 30.55), "FBCNN": (32.00, 0.885, 31.19), "D2LNet": (32.04, 0.890, 31.67)},
    ("gray", "BSD500", 30): {"ARCNN": (32.67, 0.902, 31.94), "FBCNN": (33.37, 0.913, 32.39), "D2LNet": (33.41, 0.916, 32.97)},
    ("gray", "classic5", 10): {"ARCNN": (29.03, 0.793, 28.76), "FBCNN": (30.12, 0.822, 29.80), "D2LNet": (31.18, 0.838, 31.11)},
    ("gray", "classic5", 20): {"ARCNN": (31.15, 0.852, 30.59), "FBCNN": (32.31, 0.872, 31.74), "D2LNet": (33.41, 0.886, 33.27)},
    ("gray", "classic5", 30): {"ARCNN": (32.51, 0.881, 31.98), "FBCNN": (33.54, 0.894, 32.78), "D2LNet": (34.71, 0.907, 34.49)},
    ("color", "LIVE1", 10): {"QGAC": (27.62, 0.804, 27.43), "FBCNN": (27.77, 0.803, 27.51), "D2LNet": (27.82, 0.805, 27.80)},
    ("color", "LIVE1", 20): {"QGAC": (29.88, 0.868, 29.56), "FBCNN": (30.11, 0.868, 29.70), "D2LNet": (30.14, 0.871, 30.11)},
    ("color", "LIVE1", 30): {"QGAC": (31.17, 0.896, 30.77), "FBCNN": (31.43, 0.897, 30.92), "D2LNet": (31.49, 0.899, 31.33)},
    ("color", "BSD500", 10): {"QGAC": (27.74, 0.802, 27.47), "FBCNN": (27.85, 0.799, 27.52), "D2LNet": (27.66, 0.778, 27.61)},
    ("color", "BSD500", 20): {"QGAC": (30.01, 0.869, 29.53), "FBCNN": (30.14, 0.867, 29.56), "D2LNet": (30.15, 0.869, 29.75)},
    ("color", "BSD500", 30): {"QGAC": (31.33, 0.898, 30.70), "FBCNN": (31.45, 0.897, 30.72), "D2LNet": (31.52, 0.897, 30.97)},
    ("color", "ICB", 10): {"QGAC": (32.06, 0.816, 32.04), "FBCNN": (32.18, 0.815, 32.15), "D2LNet": (33.02, 0.829, 32.97)},
    ("color", "ICB", 20): {"QGAC": (34.13, 0.843, 34.10), "FBCNN": (34.38, 0.844, 34.34), "D2LNet": (34.57, 0.847, 34.49)},
    ("color", "ICB", 30): {"QGAC": (35.07, 0.857, 35.02), "FBCNN": (35.41, 0.857, 35.35), "D2LNet": (35.55, 0.856, 35.44)},
}
# evaluate.py's set names (the benchmark folders) -> the paper's
PAPER_SET = {"classic5": "classic5", "LIVE1_gray": "LIVE1", "LIVE1_color": "LIVE1", "LIVE1": "LIVE1",
             "BSDS500": "BSD500", "BSDS500_test": "BSD500", "BSD500": "BSD500", "rgb8bit": "ICB", "ICB": "ICB"}
SUFFIX = " (published)"


def published_rows(mode: str, dataset: str, qf: int) -> list[dict]:
    """evaluate.py-style result rows of the published methods for one table row (none if unknown)."""
    methods = TABLES.get((mode, PAPER_SET.get(dataset, dataset), qf), {})
    return [{"dataset": dataset, "mode": mode, "qf": qf, "method": name + SUFFIX, "published": True,
             "psnr": p, "ssim": s, "psnrb": b} for name, (p, s, b) in methods.items()]


def with_published(results: Sequence[dict]) -> list[dict]:
    """The results followed by the published rows of every (mode, set, QF) they cover."""
    keys = dict.fromkeys((r["mode"], r["dataset"], r["qf"]) for r in results)
    return [*results, *(row for key in keys for row in published_rows(*key))]
