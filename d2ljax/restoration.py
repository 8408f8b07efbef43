"""Restoring photos: any size, gray or colour, with the model that fits the photo's JPEG quality.

    d2ljax restore photo.jpg folder/ 'more/*.jpg' -o restored/ [--model NAME] [--verbose]

`restore(image, model=...)` (`d2ljax.restore`) takes a uint8 numpy array, a PIL image or an
image file's path; `restore_files` is the command line's loop (one line per bad file, a
summary, no overwriting). Vocabulary: `restore*` works on photos and chooses the model;
`run_*` runs one given model on images of its channels, at any size (`d2ljax.inference`
applies it at the exact size). Choices (see docs/restore.md):

- Model: the one of the photo's kind (gray/colour) trained for its JPEG quality give or take
  QF_TOLERANCE, else a blind one, else the nearest; for an unknown quality, the one trained
  on the widest range of qualities (a blind one); see `choose_model`.
- Gray model, colour photo: the model restores the photo's BT.601 studio-range Y (the
  protocol's gray, what gray models are trained on) and Cb, Cr are kept. Keeping Cb, Cr, the
  inverse transform turns a luma change dY into dY * 255/219 on each of R, G and B, which is
  what `merge_channels` adds: exact, and the identity when the model changes nothing.
  Chroma artifacts stay. Colour model, gray photo: gray repeated to RGB, channels averaged back.
- Size: H and W are reflect-padded up to multiples of `Options.bucket` so that one compiled
  program (per batch size) serves many sizes, and cropped back; images above
  `Options.max_pixels` are cut into overlapping tiles, blended with half-cosine ramps.
  D2LNet's Fourier blocks are global, so both change the output slightly.
- Never worse (`plan`): a JPEG's quality comes from its quantisation tables, any other
  photo's from its pixels (`jpeg.detect_quality`). A photo with no JPEG history comes back
  unchanged; otherwise the chosen model's measured rule (model.json "restore_rule", see
  `rule_strength`) says how strongly to restore it: `blend(input, restored, strength)`.
  `force` restores at full strength. Then the luma is moved into the JPEG's quantisation
  cells (`finish`, `jpeg.project_luma`), where the original lies, which brings it closer to the
  original wherever the pixels show the JPEG's 8x8 grid (`jpeg.shown`).
- Photos are read once (`imageio.read`), turned upright (EXIF orientation) and keep their
  alpha, ICC profile and EXIF (orientation reset to 1); outputs are lossless and
  byte-for-byte reproducible.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections import defaultdict
from typing import Any, Mapping, Optional, Sequence, Union

import jax
import numpy as np
from PIL import Image

from d2ljax import console, imageio, inference, jpeg, pretrained
from d2ljax.model import D2LNet
from d2ljax.pretrained import ModelEntry

# d(R, G, B) / dY of BT.601 studio-range YCbCr -> RGB with Cb, Cr fixed (the Y row sums to 219/255).
LUMA_TO_RGB = 255.0 / 219.0
SAVE_OPTIONS = {"png": {}, "tiff": {"compression": "tiff_adobe_deflate"}}
# A model trained within this many QF steps of a photo fits it as well as a blind one does
# (a judgement, not a measurement: the paper's per-QF models are better at their own QF).
QF_TOLERANCE = 5
UNSTATED = 100  # quality_distance of a model that states no QF
FILES_PER_CHUNK = 8  # photos decoded at once by restore_files: bounds memory, allows batching


@dataclasses.dataclass(frozen=True)
class Options:
    """How images are padded and cut for the network (defaults: see docs/restore.md)."""
    # Whole-image inference up to this many (padded) pixels, also the cap of each device's share
    # of a batch: the full model's forward needs ~5.6 GiB of XLA memory at 1024x1024 (docs/restore.md).
    max_pixels: int = 1024 * 1024
    tile: int = 1024  # tile side for larger images (as large as max_pixels allows: least loss)
    overlap: int = 128  # pixels shared by neighbouring tiles (at least), blended with cosine ramps
    bucket: int = 64  # pad H, W up to multiples of this; 0 or 1: exact sizes (one compile per size)

    def __post_init__(self):
        """Raises a ValueError naming the first bad option."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"option {field.name}={value!r}: must be an integer")
        for name, ok, rule in (("tile", self.tile >= 1, ">= 1"),
                               ("overlap", 0 <= 2 * self.overlap <= self.tile, "in 0..tile/2"),
                               ("bucket", self.bucket >= 0, ">= 0")):
            if not ok:
                raise ValueError(f"option {name}={getattr(self, name)}: must be {rule} ({self})")
        if padded(self.tile, self.bucket) ** 2 > self.max_pixels:
            raise ValueError(f"option max_pixels={self.max_pixels}: must hold a tile ({self.tile} padded to a "
                             f"multiple of bucket={self.bucket}, squared)")


def as_options(options: Union[Options, Mapping[str, Any], None]) -> Options:
    """Options from an Options, a dict of some of its fields (`{"tile": 256}`) or None (defaults)."""
    if options is None:
        return Options()
    if isinstance(options, Options):
        return options
    if not isinstance(options, Mapping):
        raise ValueError(f"options must be a restoration.Options or a dict, got {type(options).__name__}")
    names = [field.name for field in dataclasses.fields(Options)]
    unknown = [key for key in options if key not in names]
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}: the options are {', '.join(names)}")
    return Options(**options)


@dataclasses.dataclass(frozen=True)
class Photo:
    """Upright uint8 pixels (HxW gray or HxWx3 RGB) with what travels with them."""
    pixels: np.ndarray
    quality: Optional[int] = None  # JPEG quality (given or estimated); None: no JPEG history found
    icc_profile: Optional[bytes] = None
    exif: Optional[bytes] = None  # orientation already applied (tag reset to 1)
    alpha: Optional[np.ndarray] = None  # HxW transparency, reattached unchanged
    quality_from: str = "given"  # where the quality comes from: TABLES, PIXELS or GIVEN
    grid: Optional[jpeg.Grid] = None  # its JPEG's luma blocks (`jpeg.project_luma`); None: unknown


# Where a photo's quality comes from, in the words of --verbose and RestoreInfo.reason.
TABLES, PIXELS, GIVEN = "from the quantisation tables", "from the pixels' 8x8 signature", "given"


# --- sizes, buckets and tiles -------------------------------------------------------------

def padded(length: int, bucket: int) -> int:
    """`length` rounded up to a multiple of `bucket` (unchanged for bucket 0 or 1)."""
    return -(-length // bucket) * bucket if bucket > 1 else length


def power_of_two_splits(items: list) -> list[list]:
    """[a, b, c, d, e] -> [[a, b, c, d], [e]]: batch sizes limited to powers of two (few compiles)."""
    out, start = [], 0
    while start < len(items):
        size = 1 << ((len(items) - start).bit_length() - 1)
        out.append(items[start:start + size])
        start += size
    return out


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread starts of `tile`-long windows covering [0, length), neighbours sharing >= `overlap`."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [i * (length - tile) // (count - 1) for i in range(count)]


def tile_length(length: int, tile: int, overlap: int, bucket: int) -> int:
    """The shortest tile side (a multiple of `bucket`, at most `tile`) that covers `length` in as few
    tiles as `tile` does: the same tiles, less padding and overlap for the network to compute
    (a 4000x3000 photo: 20 tiles of 960x896 rather than of 1024x1024)."""
    if length <= tile:
        return length
    count = math.ceil((length - overlap) / (tile - overlap))
    return min(padded(-(-(length + (count - 1) * overlap) // count), bucket), tile)


def ramp(length: int, start: int, total: int, overlap: int) -> np.ndarray:
    """A tile's blending weight along one axis: half-cosine rises over `overlap` pixels at the
    edges inside the image (never 0; two opposite ramps sum to 1), 1 elsewhere."""
    weight = np.ones(length)
    if overlap:
        rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)
        if start > 0:
            weight[:overlap] = rise
        if start + length < total:
            weight[-overlap:] = np.minimum(weight[-overlap:], rise[::-1])
    return weight


# --- running the network -----------------------------------------------------------------

def run_bucketed(model: D2LNet, variables, images: Sequence[np.ndarray], options: Options) -> list[np.ndarray]:
    """Restores HxWxC uint8 images as they are: grouped by size bucket, reflect-padded to it,
    batched (up to max_pixels per local device, power-of-two batch sizes) and cropped back."""
    groups = defaultdict(list)
    for i, image in enumerate(images):
        groups[tuple(padded(n, options.bucket) for n in image.shape[:2])].append(i)
    out: list = [None] * len(images)
    for (height, width), indices in groups.items():
        per_batch = max(1, options.max_pixels // (height * width)) * jax.local_device_count()
        for start in range(0, len(indices), per_batch):
            for chunk in power_of_two_splits(indices[start:start + per_batch]):
                batch = np.stack([imageio.pad_reflect(images[i], height, width) for i in chunk])
                for i, restored in zip(chunk, inference.apply_batch(model, variables, batch)):
                    out[i] = restored[:images[i].shape[0], :images[i].shape[1]]
    return out


def run_tiled(model: D2LNet, variables, image: np.ndarray, options: Options) -> np.ndarray:
    """Restores HxWxC in overlapping tiles (batched together) blended by `ramp` weights."""
    h, w = image.shape[:2]
    overlap = options.overlap
    th, tw = (tile_length(n, options.tile, overlap, options.bucket) for n in (h, w))
    corners = [(y, x) for y in tile_starts(h, th, overlap) for x in tile_starts(w, tw, overlap)]
    tiles = run_bucketed(model, variables, [image[y:y + th, x:x + tw] for y, x in corners], options)
    total, weights = np.zeros(image.shape), np.zeros((h, w, 1))
    for (y, x), tile in zip(corners, tiles):
        weight = np.outer(ramp(th, y, h, overlap), ramp(tw, x, w, overlap))[..., None]
        total[y:y + th, x:x + tw] += weight * tile
        weights[y:y + th, x:x + tw] += weight
    return np.round(total / weights).astype(np.uint8)


def run_images(model: D2LNet, variables, images: Sequence[np.ndarray], options: Options = Options()
               ) -> list[np.ndarray]:
    """Restores HxWx(in_chn) uint8 images: whole (batched by bucket) up to max_pixels, else tiled."""
    fits = [padded(im.shape[0], options.bucket) * padded(im.shape[1], options.bucket) <= options.max_pixels
            for im in images]
    whole = iter(run_bucketed(model, variables, [im for im, f in zip(images, fits) if f], options))
    return [next(whole) if f else run_tiled(model, variables, im, options) for im, f in zip(images, fits)]


# --- gray and colour ---------------------------------------------------------------------

def merge_channels(image: np.ndarray, model_input: np.ndarray, restored: np.ndarray) -> np.ndarray:
    """The restored photo, in the photo's own kind, from the model's input and output."""
    if image.ndim == 2:
        return np.round(restored.mean(axis=-1)).astype(np.uint8) if restored.shape[-1] == 3 else restored[..., 0]
    if restored.shape[-1] == 3:
        return restored
    luma_change = restored.astype(np.float64) - model_input
    return np.round(np.clip(image + luma_change * LUMA_TO_RGB, 0, 255)).astype(np.uint8)


def blend(image: np.ndarray, restored: np.ndarray, strength: float) -> np.ndarray:
    """`image + strength * (restored - image)`, rounded: the never-worse rule's lighter touch
    (strength 1: the model's output, 0: the input unchanged)."""
    if strength == 1:
        return restored
    if strength == 0:
        return image
    mixed = image + strength * (restored.astype(np.float64) - image)
    return np.round(np.clip(mixed, 0, 255)).astype(np.uint8)


# --- choosing a model --------------------------------------------------------------------

def quality_distance(qualities: pretrained.Qualities, quality: int) -> float:
    """How many QF steps a photo's quality lies from what a model was trained at (0: inside).

    A model that states no quality is UNSTATED from everything, so it is chosen only when alone.
    """
    if qualities is None:
        return UNSTATED
    return min(max(lo - quality, 0, quality - hi) for lo, hi in qualities)


def quality_width(qualities: pretrained.Qualities) -> int:
    """How many QF steps a model's training range spans (0: one QF; unstated counts as blind)."""
    return sum(hi - lo for lo, hi in qualities or pretrained.BLIND)


def choose_model(entries: Sequence[ModelEntry], channels: int, quality: Optional[int]) -> ModelEntry:
    """The model for a photo of `channels` (1 or 3) and estimated `quality` (None: unknown).

    In order: the photo's own kind (gray/colour); then, for a known quality, the fewest QF
    steps beyond QF_TOLERANCE; among the models that fit that well, the largest measured gain
    near the photo's quality (`measured_gain`) when every one of them has one; else the
    narrowest training range (so a QF-30 model beats a blind one on a QF-28 photo, and a blind
    one beats QF-10 and QF-30 models on a QF-21 photo) and the nearest. For an unknown quality,
    a model that states its qualities and the widest range (a blind model, whatever range its
    model.json gives, beats a QF-10 one). Ties: the first listed.
    """
    if not entries:
        raise ValueError("no model to choose from")

    def rank(item):
        index, entry = item
        width = quality_width(entry.qualities)
        if quality is None:
            fit = (entry.qualities is None, -width)
        else:
            distance = quality_distance(entry.qualities, quality)
            fit = (max(distance - QF_TOLERANCE, 0), width, distance)
        return (entry.in_chn != channels, *fit, index)

    ranked = sorted((rank(item), item[1]) for item in enumerate(entries))  # keys end in the index: unique
    if quality is not None:  # the models of the photo's kind that fit its quality best
        tier = [entry for key, entry in ranked if key[:2] == ranked[0][0][:2]]
        gains = [measured_gain(entry, quality) for entry in tier]
        if len(tier) > 1 and None not in gains:
            return tier[gains.index(max(gains))]
    return ranked[0][1]


def measured_gain(entry: ModelEntry, quality: int) -> Optional[float]:
    """The entry's measured gain (dB on pretrained.MEASURED_ON) at the measured QF nearest
    `quality`, if one lies within QF_TOLERANCE of it; else None."""
    near = [qf for qf in entry.gains or {} if abs(qf - quality) <= QF_TOLERANCE]
    return entry.gains[min(near, key=lambda qf: (abs(qf - quality), qf))] if near else None


Models = Union[D2LNet, pretrained.ModelName, tuple, ModelEntry, Sequence, None]


def is_pair(model: Any) -> bool:
    """Whether `model` is a `(D2LNet, variables)` pair, as load_pretrained returns."""
    return isinstance(model, tuple) and len(model) == 2 and isinstance(model[0], D2LNet)


def as_entry(model: Any) -> ModelEntry:
    """A ModelEntry of a ModelEntry, a (model, variables) pair, a name, a model folder or a workdir."""
    if isinstance(model, ModelEntry):
        return model
    if is_pair(model):
        return ModelEntry("model", model[0].in_chn, None, lambda: model)
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"a model is a name, a model folder or training workdir, a (model, variables) pair "
                        f"or a ModelEntry; got {type(model).__name__}")
    return pretrained.model_entry(model)


def model_entries(model: Models = None, variables=None) -> list[ModelEntry]:
    """The models to choose from: None for every named model (d2ljax.pretrained), a D2LNet with
    its `variables`, or one or a list of: a name, a model folder or training workdir
    (pretrained.resolve), a `(model, variables)` pair (as load_pretrained returns), a ModelEntry."""
    if isinstance(model, D2LNet):
        if variables is None:
            raise ValueError("a D2LNet model needs its variables")
        return [as_entry((model, variables))]
    if model is None:
        entries = pretrained.all_entries()
        if not entries:
            raise pretrained.UnknownModelError(
                "no named models installed; pass a model or a model folder (search path: "
                f"{os.pathsep.join(pretrained.search_path())})")
        return entries
    if is_pair(model) or isinstance(model, (str, os.PathLike, ModelEntry)):
        model = [model]
    return [as_entry(m) for m in model]


def rule_strength(rule: Optional[Mapping[str, float]], quality: Optional[int]) -> float:
    """How strongly a model restores a photo of `quality` (0: left unchanged, 1: its output).

    `rule` is the model's measured table (model.json "restore_rule", quality -> strength, made
    by benchmarks/never_worse.py), interpolated linearly between its qualities, the lowest's
    strength below them and 0 above the highest (unmeasured). No JPEG history (quality None): 0.
    A model without a table (one not measured) restores every JPEG at full strength.
    """
    if quality is None:
        return 0.0
    if not rule:
        return 1.0
    points = sorted((int(q), float(s)) for q, s in rule.items())
    if quality > points[-1][0]:
        return 0.0
    return float(np.interp(quality, *zip(*points)))


@dataclasses.dataclass(frozen=True)
class Plan:
    """What restoring one photo does: its model, how strongly, and why (for --verbose)."""
    entry: ModelEntry
    strength: float
    reason: str


def plan(photo: Photo, entries: Sequence[ModelEntry], force: bool = False) -> Plan:
    """The never-worse rule: the model `choose_model` picks, at the strength of its rule for the
    photo's quality; a photo with no JPEG history is left unchanged. `force`: full strength."""
    entry = choose_model(entries, 1 if photo.pixels.ndim == 2 else 3, photo.quality)
    if photo.quality is None:
        found, source = "no JPEG history in the pixels", ""
    else:
        found, source = f"JPEG quality ~{photo.quality}", f" (quality {photo.quality_from})"
    cells = ", kept in its JPEG's quantisation cells" if photo.grid is not None else ""
    if force:
        return Plan(entry, 1.0, f"{found} -> {entry.describe()}, forced{cells}{source}")
    strength = rule_strength(entry.restore_rule, photo.quality)
    if strength == 0:
        rule = "" if photo.quality is None else f" by the rule of {entry.describe()}"
        return Plan(entry, 0.0, f"{found}: left unchanged{rule} (--force restores it){source}")
    return Plan(entry, strength, f"{found} -> {entry.describe()}, strength {strength:.2f}{cells}{source}")


def model_outputs(entry: ModelEntry, photos: Sequence[Photo], options: Options = Options()) -> list[np.ndarray]:
    """The entry's model's output for each photo, in the photo's own channels (`merge_channels`)."""
    model, variables = entry.loaded
    inputs = [imageio.to_channels(photo.pixels, model.in_chn) for photo in photos]
    return [merge_channels(photo.pixels, x, y)
            for photo, x, y in zip(photos, inputs, run_images(model, variables, inputs, options))]


def finish(photo: Photo, restored: np.ndarray, strength: float) -> np.ndarray:
    """What restoring `photo` returns, given the model's output: `blend`ed with the photo at
    `strength`, then moved into the quantisation cells of the photo's JPEG (`jpeg.project_luma`
    on `photo.grid`), which brings it closer to the original; as blended when the grid
    is unknown."""
    blended = blend(photo.pixels, restored, strength)
    return blended if photo.grid is None else jpeg.project_luma(photo.pixels, blended, photo.grid)


def restore_photos(photos: Sequence[Photo], plans: Sequence[Plan], options: Options = Options()
                   ) -> list[Photo]:
    """Restores each photo as planned (`finish`), photos sharing a model run together; a plan
    of strength 0 leaves its photo as it is."""
    out = list(photos)
    for entry in dict.fromkeys(p.entry for p in plans if p.strength > 0):
        indices = [i for i, p in enumerate(plans) if p.entry is entry and p.strength > 0]
        for i, restored in zip(indices, model_outputs(entry, [photos[i] for i in indices], options)):
            out[i] = dataclasses.replace(photos[i], pixels=finish(photos[i], restored, plans[i].strength))
    return out


# --- photos in and out -------------------------------------------------------------------

def estimated(photo: Photo, quantization: Optional[dict] = None, name: str = "<image>") -> Photo:
    """The photo with its quality and JPEG grid. The quality is kept when given, else read from
    a JPEG's quantisation tables, else detected from the pixels (`jpeg.detect_quality`; None
    when they carry no JPEG history). Pixels that are not a JPEG file's (no `quantization`)
    and have a quality get the grid of its IJG table if they show it (`jpeg.pixel_grid`); a JPEG
    file's grid is its own (`photo_of`), or none for one that does not code a luma (CMYK)."""
    if photo.quality is None and quantization is not None:
        photo = dataclasses.replace(photo, quality=jpeg.tables_quality(quantization, name), quality_from=TABLES)
    elif photo.quality is None:
        photo = dataclasses.replace(photo, quality=jpeg.detect_quality(photo.pixels), quality_from=PIXELS)
    if quantization is None and photo.quality is not None:
        photo = dataclasses.replace(photo, grid=jpeg.pixel_grid(photo.pixels, photo.quality))
    return photo


def photo_of(decoded: imageio.Decoded, name: str, quality: Optional[int] = None) -> Photo:
    """A Photo of one read of an image (`imageio.decode`), its quality `estimated` unless given;
    a JPEG of gray or YCbCr colour brings its own grid (`jpeg.file_grid`), if its pixels show it
    (not, e.g., for a PIL image resized after it was opened)."""
    grid = (jpeg.shown(decoded.pixels, jpeg.file_grid(decoded.luma_table, decoded.orientation, decoded.pixels.shape))
            if decoded.luma_table else None)
    photo = Photo(decoded.pixels, quality, decoded.icc_profile, decoded.exif, decoded.alpha, grid=grid)
    return estimated(photo, decoded.quantization, name)


def read_photo(path: str, quality: Optional[int] = None) -> Photo:
    """Reads a photo file once; raises imageio.ImageError (one line naming it) when it is unusable."""
    return photo_of(imageio.read(path), path, quality)


def to_pil(photo: Photo) -> Image.Image:
    """The photo as a PIL image (with its alpha, if any) carrying its ICC profile and EXIF in `info`."""
    image = Image.fromarray(photo.pixels)
    if photo.alpha is not None:
        image.putalpha(Image.fromarray(photo.alpha))
    image.info.update({k: v for k, v in (("icc_profile", photo.icc_profile), ("exif", photo.exif)) if v})
    return image


def write_photo(photo: Photo, path: str, fmt: str = "png") -> None:
    """Writes losslessly with the ICC profile and EXIF, through a temporary file in the same
    folder, so that an interrupted run leaves no half-written output."""
    image = to_pil(photo)
    partial = f"{path}.partial-{os.getpid()}"
    try:
        image.save(partial, format=fmt.upper(), **SAVE_OPTIONS[fmt], **image.info)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


@dataclasses.dataclass(frozen=True)
class RestoreInfo:
    """What `restore(..., return_info=True)` chose."""
    model: str  # the chosen model's name ("model" for one given as (model, variables))
    trained: str  # what it was trained for, e.g. "color_blind (color, QF 10-95)"
    quality: Optional[int]  # the JPEG quality it was chosen for (given or estimated); None: no JPEG history
    strength: float = 1.0  # 1: the model's output, 0: the photo unchanged, between: a blend (rule_strength)
    reason: str = dataclasses.field(default="", compare=False)  # the choice in words, as --verbose says it


def as_photo(image: Union[np.ndarray, Image.Image, str, os.PathLike], quality: Optional[int]) -> Photo:
    """A Photo of an array, a PIL image or an image file; `quality` replaces the estimate."""
    if isinstance(image, (str, os.PathLike)):
        return read_photo(os.fspath(image), quality)
    if isinstance(image, Image.Image):
        name = getattr(image, "filename", "") or "<image>"
        return photo_of(imageio.decode(image, name), name, quality)
    array = np.asarray(image)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4))):
        raise ValueError(f"expected a uint8 HxW, HxWx1, HxWx3 or HxWx4 (RGBA) image, got {array.dtype} {array.shape}")
    if array.ndim == 3 and array.shape[-1] == 4:
        return estimated(Photo(array[..., :3], quality, alpha=array[..., 3]))
    return estimated(Photo(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array, quality))


def restore(image: Union[np.ndarray, Image.Image, str, os.PathLike], model: Models = None, variables=None, *,
            quality: Optional[int] = None, options: Union[Options, Mapping[str, Any], None] = None,
            return_info: bool = False, force: bool = False):
    """Restores one photo with the model that fits it best (`choose_model`), never making it
    worse (`plan`): a photo whose pixels show no JPEG history comes back unchanged, and a
    model's measured rule says how strongly it restores each JPEG quality.

    image: a uint8 array (HxW, HxWx1, HxWx3, or HxWx4 RGBA whose alpha is kept), returned as an
      array of the same shape; or a PIL image or an image file's path, returned as a PIL image,
      upright, with its alpha and the ICC profile and EXIF in `info` (`out.save("out.png",
      **out.info)` keeps them).
    model: see `model_entries` (default: every named model). quality: the JPEG quality (1..100)
      to choose the model for; by default read from a JPEG's quantisation tables, else detected
      from the pixels (`jpeg.detect_quality`).
    options: an Options or a dict of some of its fields (`{"tile": 256}`).
    return_info: return `(restored, RestoreInfo)`, saying which model, quality and strength
      were used, and why. force: restore at full strength whatever the rule says.
    Raises ValueError naming a bad option, quality or image.
    """
    quality = None if quality is None else jpeg.check_quality(quality, "quality")
    options = as_options(options)
    photo = as_photo(image, quality)
    chosen = plan(photo, model_entries(model, variables), force)
    restored = restore_photos([photo], [chosen], options)[0]
    if isinstance(image, (Image.Image, str, os.PathLike)):
        out = to_pil(restored)
    else:
        pixels = restored.pixels if restored.alpha is None else np.dstack([restored.pixels, restored.alpha])
        out = pixels.reshape(np.shape(image))
    info = RestoreInfo(chosen.entry.name, chosen.entry.describe(), photo.quality, chosen.strength, chosen.reason)
    return (out, info) if return_info else out


# --- folders of files --------------------------------------------------------------------

@dataclasses.dataclass
class Summary:
    """What `restore_files` did with each input."""
    written: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)  # messages
    failed: list[str] = dataclasses.field(default_factory=list)  # messages


def plan_outputs(files: Sequence[str], outdir: str, fmt: str, overwrite: bool
                 ) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(input, output) pairs to do, skipped messages and failure messages.

    The output is OUTDIR/<input stem>.<fmt>; it is refused when it would replace an input or
    land outside OUTDIR (through a link), or when two inputs share a stem; an existing output
    is skipped unless `overwrite`.
    """
    inputs = {os.path.realpath(f) for f in files}
    outdir_real = os.path.realpath(outdir)
    todo, skipped, failed, taken = [], [], [], {}
    for path in files:
        out = os.path.join(outdir, os.path.splitext(os.path.basename(path))[0] + "." + fmt)
        real = os.path.realpath(out)
        if real in inputs:
            failed.append(f"{path}: refusing to write {out}: it is an input (choose another OUTDIR or --format)")
        elif os.path.dirname(real) != outdir_real:
            failed.append(f"{path}: refusing to write {out}: it leads outside {outdir} ({real})")
        elif real in taken:
            failed.append(f"{path}: output {out} would also be written for {taken[real]} (same name)")
        elif os.path.lexists(out) and not overwrite:
            taken[real] = path
            skipped.append(f"{path}: {out} exists, skipped (--overwrite replaces it)")
        else:
            taken[real] = path
            todo.append((path, out))
    return todo, skipped, failed


def restore_files(specs: Sequence[str], outdir: str, entries: Sequence[ModelEntry], *,
                  options: Options = Options(), fmt: str = "png", overwrite: bool = False,
                  verbose: bool = False, progress: bool = True, force: bool = False) -> Summary:
    """Restores files, folders and globs into OUTDIR (never worse, see `plan`; `force`: full
    strength), one line per problem, never stopping at a bad file. Raises FileNotFoundError
    when a spec matches nothing."""
    files = imageio.list_image_files(specs)
    os.makedirs(outdir, exist_ok=True)
    todo, skipped, failed = plan_outputs(files, outdir, fmt, overwrite)
    summary = Summary(skipped=skipped, failed=list(failed))
    bar = console.progress_bar(total=len(todo), unit="image", disable=not progress)
    for message in skipped + failed:
        bar.write(message, file=sys.stderr)
    for start in range(0, len(todo), FILES_PER_CHUNK):
        loaded = []
        for path, out in todo[start:start + FILES_PER_CHUNK]:
            try:
                loaded.append((path, out, read_photo(path)))
            except (imageio.ImageError, OSError, ValueError) as e:
                summary.failed.append(str(e) if str(e).startswith(path) else f"{path}: {e}")
                bar.write(summary.failed[-1], file=sys.stderr)
                bar.update()
        plans = [plan(p, entries, force) for _, _, p in loaded]
        if verbose:
            for (path, _, _), chosen in zip(loaded, plans):
                bar.write(f"{path}: {chosen.reason}", file=sys.stderr)
        for (path, out, _), photo in zip(loaded, restore_photos([p for _, _, p in loaded], plans, options)):
            write_photo(photo, out, fmt)
            summary.written.append(out)
            bar.update()
    bar.close()
    return summary
