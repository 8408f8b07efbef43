"""Benchmark sets (classic5, LIVE1, BSDS500, ICB, or any folder) as ground-truth images.

A set is a folder of images. The published sets are recognised by folder name so their tables
name them as the paper does and a partial copy is reported. Gray evaluation of a colour set
uses the rounded BT.601 Y of each image (d2ljax.metrics.rgb_to_y), as the tables do.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Iterator

import numpy as np

from d2ljax.imageio import iter_readable, list_image_files, mode_channels
from d2ljax.metrics import rgb_to_y


@dataclasses.dataclass(frozen=True)
class KnownSet:
    """A published benchmark: its name in the tables, its image count, whether its files are colour."""
    name: str
    n_images: int
    color: bool


# Folder names (lower case) of the sets in the D2LNet / FBCNN tables.
KNOWN_SETS = {
    "classic5": KnownSet("classic5", 5, color=False),
    "live1_gray": KnownSet("LIVE1", 29, color=False),
    "live1_color": KnownSet("LIVE1", 29, color=True),
    "live1": KnownSet("LIVE1", 29, color=True),
    "bsds500_test": KnownSet("BSDS500", 200, color=True),
    "bsd500_test": KnownSet("BSDS500", 200, color=True),
    "bsds500": KnownSet("BSDS500", 200, color=True),
    "bsd500": KnownSet("BSDS500", 200, color=True),
    "rgb8bit": KnownSet("ICB", 14, color=True),
    "icb": KnownSet("ICB", 14, color=True),
}


@dataclasses.dataclass(frozen=True)
class BenchmarkSet:
    """The image files of one set; `known` is None for a folder that is not a published set."""
    name: str
    path: str
    files: tuple[str, ...]
    known: KnownSet | None


def identify(path: str) -> KnownSet | None:
    """The published set a folder holds, by the folder's name, or None."""
    return KNOWN_SETS.get(os.path.basename(os.path.normpath(path)).lower())


def open_set(path: str) -> BenchmarkSet:
    """Lists a set's image files; warns when a published set has fewer or more than its count.

    Raises FileNotFoundError for a missing or image-less folder (imageio.list_image_files).
    """
    path = os.path.normpath(os.path.expanduser(path))
    files = tuple(list_image_files([path]))
    known = identify(path)
    if known is not None and len(files) != known.n_images:
        logging.warning("%s: %d image files where %s has %d; its figures will not be comparable "
                        "with the published ones", path, len(files), known.name, known.n_images)
    name = known.name if known else os.path.basename(path)
    return BenchmarkSet(name=name, path=path, files=files, known=known)


def check_mode(bench: BenchmarkSet, mode: str) -> None:
    """Raises ValueError for an unknown mode or a colour evaluation of a gray-only set."""
    mode_channels(mode)
    if mode == "color" and bench.known is not None and not bench.known.color:
        raise ValueError(f"{bench.path}: {bench.known.name} is a gray set; evaluate it with mode 'gray'")


def iter_images(bench: BenchmarkSet, mode: str,
                skipped: list[dict] | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """Yields (name, ground truth) with uint8 HxW for 'gray' or HxWx3 for 'color'.

    A file that cannot be read (or a gray file in a colour evaluation) is logged, appended to
    `skipped` as {"dataset", "file", "error"}, and left out.
    """
    check_mode(bench, mode)
    for path, image, error in iter_readable(bench.files):
        if image is not None and image.ndim == 2 and mode == "color":
            error = f"{path}: a gray image in a colour evaluation"
        if error is not None:
            logging.warning("skipped %s", error)
            if skipped is not None:
                skipped.append({"dataset": bench.name, "file": path, "error": error})
            continue
        if image.ndim == 3 and mode == "gray":
            image = rgb_to_y(image)
        yield os.path.splitext(os.path.basename(path))[0], image
