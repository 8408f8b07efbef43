"""The input pipelines: tf.data (d2ljax.data) and grain (d2ljax.grain_data) give the same
batches bit for bit; Pillow-identical in-graph JPEG, augmentations, determinism, sharding, bad
input, each checked on both pipelines."""
import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from d2ljax import data, grain_data, jpeg, samples
from d2ljax.imageio import SAMPLE_PHOTOS_DIR, ImageError
from d2ljax.metrics import rgb_to_y

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SINGLE = dict(process_index=0, process_count=1)
# grain in this process (workers=0): spawning worker processes costs seconds per iterator;
# test_grain_workers_give_the_same_batches covers them.
PIPELINES = {"tf.data": data.make_train_iterator,
             "grain": lambda *a, **k: grain_data.make_train_iterator(*a, workers=0, **k)}


@pytest.fixture(params=PIPELINES)
def make_iterator(request):
    """make_train_iterator of each pipeline."""
    return PIPELINES[request.param]


def assert_same_batches(a, b, steps: int = 3):
    for step in range(steps):
        (da, ca), (db, cb) = next(a), next(b)
        np.testing.assert_array_equal(da, db, err_msg=f"degraded, batch {step}")
        np.testing.assert_array_equal(ca, cb, err_msg=f"clean, batch {step}")


def pillow_jpeg(image: np.ndarray, qf: int) -> np.ndarray:
    """The protocol's reference: Pillow encode (4:2:0 for colour, one component for gray) + decode."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=qf, subsampling=2 if image.ndim == 3 else 0)
    return np.asarray(Image.open(buffer))


def photo_crops(mode: str):
    """Odd and even sized crops of a shipped photo, as uint8 HxWxC."""
    photo = np.asarray(Image.open(SAMPLE_PHOTOS_DIR / "astronaut.png").convert("RGB"))
    crops = [photo[:256, :256], photo[100:117, 200:209], photo[7:270, 33:134], photo[300:301, 5:6]]
    return [c if mode == "color" else rgb_to_y(c)[..., None] for c in map(np.ascontiguousarray, crops)]


def to_uint8(batch: np.ndarray) -> np.ndarray:
    return np.round(batch * 255).astype(np.uint8)


def write_images(folder: Path, values, size=(40, 40)) -> list[Path]:
    """Constant gray PNGs, one per value, named so that their listing order is the values' order."""
    folder.mkdir(exist_ok=True)
    paths = []
    for j, v in enumerate(values):
        paths.append(folder / f"{j:03d}.png")
        Image.fromarray(np.full(size, v, np.uint8)).save(paths[-1])
    return paths


@pytest.mark.parametrize("mode", ["color", "gray"])
def test_jpeg_equals_pillow_eagerly(mode):
    for crop in photo_crops(mode):
        for qf in (1, 10, 37, 95):
            got = data.jpeg(tf.constant(crop), qf).numpy()
            np.testing.assert_array_equal(got[..., 0] if mode == "gray" else got,
                                          pillow_jpeg(crop[..., 0] if mode == "gray" else crop, qf),
                                          err_msg=f"{mode} {crop.shape} QF {qf}")


@pytest.mark.parametrize("mode", ["color", "gray"])
def test_jpeg_equals_pillow_inside_tf_data(mode):
    crops, qfs = photo_crops(mode), (5, 20, 60, 100)
    cases = [(c, q) for c in crops for q in qfs]
    ds = tf.data.Dataset.from_generator(lambda: iter(cases), output_signature=(
        tf.TensorSpec([None, None, crops[0].shape[-1]], tf.uint8), tf.TensorSpec([], tf.int32)))
    ds = ds.map(data.jpeg, num_parallel_calls=2)
    for (crop, qf), got in zip(cases, ds.as_numpy_iterator()):
        image = crop[..., 0] if mode == "gray" else crop
        np.testing.assert_array_equal(got[..., 0] if mode == "gray" else got, pillow_jpeg(image, qf),
                                      err_msg=f"{mode} {crop.shape} QF {qf}")


def test_rgb_to_gray_is_the_protocols_rounded_y_for_every_colour():
    for red in np.array_split(np.arange(256), 4):
        rgb = np.stack(np.meshgrid(red, np.arange(256), np.arange(256), indexing="ij"), -1)
        rgb = rgb.reshape(-1, 256, 3).astype(np.uint8)
        np.testing.assert_array_equal(data.rgb_to_gray(tf.constant(rgb)).numpy()[..., 0], rgb_to_y(rgb))


def test_dihedral_gives_the_8_flips_and_rotations_alike_in_both_pipelines():
    image = np.arange(5 * 5 * 2, dtype=np.uint8).reshape(5, 5, 2)
    expected = {np.rot90(f, k).tobytes() for f in (image, image[:, ::-1]) for k in range(4)}
    got = [samples.dihedral(image, k) for k in range(8)]
    assert {g.tobytes() for g in got} == expected
    for k in range(8):
        np.testing.assert_array_equal(data.dihedral(tf.constant(image), tf.constant(k)).numpy(), got[k])


def test_pad_to_reflects_bottom_and_right():
    image = np.random.default_rng(0).integers(0, 256, (5, 9, 3), dtype=np.uint8)
    expected = np.pad(image, [(0, 3), (0, 0), (0, 0)], mode="reflect")
    np.testing.assert_array_equal(data.pad_to(tf.constant(image), 8).numpy(), expected)
    np.testing.assert_array_equal(samples.pad_to(image, 8), expected)


def test_draws_follow_the_blind_recipe():
    recipe = samples.Recipe(qf=(10, 20, 30, 40, 50, 60), qf_range=(8, 96), qf_range_prob=0.25, misalign=0.5)
    heights, widths = np.array([300, 400]), np.array([500, 264])
    d = samples.draw(recipe, 0, heights, widths, np.arange(8000))
    assert 8 <= d.qf.min() and d.qf.max() <= 96
    off_set = np.mean(~np.isin(d.qf, recipe.qf))
    assert 0.2 < off_set < 0.27, off_set  # 0.25 * (1 - 6/89) expected
    assert set(np.unique(d.qf[np.isin(d.qf, recipe.qf)])) == set(recipe.qf)
    assert set(np.unique(d.k)) == set(range(8)) and set(np.unique(d.image)) == {0, 1}
    assert 0.45 < np.mean((d.dy > 0) | (d.dx > 0)) < 0.5  # shifted half the time, (0, 0) 1/81 of those
    assert d.dy.max() == d.dx.max() == samples.MISALIGN
    assert np.all(d.y <= heights[d.image] - recipe.crop) and np.all(d.x <= widths[d.image] - recipe.crop)
    assert d.y[d.image == 1].max() == 400 - recipe.crop and not d.x[d.image == 1].any()
    fixed = samples.draw(samples.Recipe(qf=30), 0, np.array([300]), np.array([300]), np.arange(50))
    assert set(fixed.qf) == {30} and not fixed.dy.any() and not fixed.dx.any()


def test_draws_are_a_pure_function_of_seed_process_and_index():
    sizes = np.array([300, 320, 340]), np.array([400, 410, 420])
    recipe = samples.Recipe(qf=(10, 20), qf_range=(5, 95), qf_range_prob=0.5, misalign=0.5, seed=4)
    whole = samples.draw(recipe, 1, *sizes, np.arange(30))
    parts = [samples.draw(recipe, 1, *sizes, np.array([i])) for i in range(30)]
    for field, values in zip(samples.Draws._fields, whole):
        np.testing.assert_array_equal(values, [getattr(p, field)[0] for p in parts], err_msg=field)
    for epoch in range(10):  # each epoch visits every image once, in a new order
        assert sorted(whole.image[3 * epoch:3 * epoch + 3]) == [0, 1, 2]
    assert len({tuple(whole.image[i:i + 3]) for i in range(0, 30, 3)}) > 1
    other_process = samples.draw(recipe, 0, *sizes, np.arange(30))
    other_seed = samples.draw(dataclasses.replace(recipe, seed=5), 1, *sizes, np.arange(30))
    assert not np.array_equal(other_process.y, whole.y) and not np.array_equal(other_seed.y, whole.y)


EQUAL_CASES = {  # name: (source, make_train_iterator arguments)
    "photos-color-qf10": (None, dict(mode="color", qf=10)),
    "photos-gray-qfs": (None, dict(mode="gray", qf=(10, 30, 50))),
    "folder-color-blind": ("folder", dict(mode="color", qf=(10, 20, 30), qf_range=(8, 96), qf_range_prob=0.25)),
    "files-gray-misalign": ("files", dict(mode="gray", qf=20, misalign=0.5)),
    "folder-color-resumed": ("folder", dict(mode="color", qf=(10, 40), misalign=1.0, start_step=5, seed=3)),
    "streamed-gray": ("folder", dict(mode="gray", qf=15, cache_budget_mb=0)),
    "streamed-color-misalign": ("folder", dict(mode="color", qf=(10, 60), misalign=0.5, cache_budget_mb=0)),
}


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """A colour JPEG, a gray PNG and a small colour BMP (reflect-padded): both decoders, both kinds."""
    folder = tmp_path_factory.mktemp("mixed")
    photo = Image.open(SAMPLE_PHOTOS_DIR / "chelsea.png").convert("RGB")
    photo.save(folder / "a_colour.jpg", quality=92)
    photo.convert("L").crop((0, 0, 200, 150)).save(folder / "b_gray.png")
    photo.crop((100, 50, 150, 90)).save(folder / "c_small.bmp")
    return folder


@pytest.mark.parametrize("case", EQUAL_CASES)
def test_both_pipelines_give_the_same_batches(case, mixed_folder):
    source, kwargs = EQUAL_CASES[case]
    if source == "folder":
        source = str(mixed_folder)
    elif source == "files":
        source = [str(p) for p in sorted(mixed_folder.iterdir())][:2]
    kwargs = dict(batch_size=4, patch_size=48, **SINGLE, **kwargs)
    assert_same_batches(PIPELINES["tf.data"](source, **kwargs), PIPELINES["grain"](source, **kwargs))


def test_grain_workers_give_the_same_batches(mixed_folder):
    kwargs = dict(batch_size=3, patch_size=40, mode="color", qf=(10, 30), misalign=0.5, start_step=2, **SINGLE)
    batches = grain_data.make_train_iterator(str(mixed_folder), workers=2, **kwargs)
    assert_same_batches(data.make_train_iterator(str(mixed_folder), **kwargs), batches, steps=5)


def test_grain_refuses_tfds_sources_in_one_line():
    with pytest.raises(ValueError, match="tfds:div2k.*input_pipeline='tf.data'") as error:
        grain_data.make_dataset("tfds:div2k", batch_size=2, **SINGLE)
    assert "\n" not in str(error.value)


def test_tf_data_leaves_the_gpus_to_jax(monkeypatch):
    """The pipeline hides every GPU from TensorFlow (this machine may have none: the call is checked)."""
    calls = []
    monkeypatch.setattr(tf.config, "set_visible_devices", lambda devices, kind: calls.append((devices, kind)))
    next(data.make_train_iterator(batch_size=2, patch_size=16, **SINGLE))
    assert ([], "GPU") in calls and not tf.config.get_visible_devices("GPU")


@pytest.mark.parametrize("mode", ["color", "gray"])
def test_pairs_are_float_nhwc_and_degraded_is_pillows_jpeg_of_clean(mode, make_iterator):
    batches = make_iterator(batch_size=4, patch_size=48, mode=mode, qf=20, **SINGLE)
    degraded, clean = next(batches)
    channels = 3 if mode == "color" else 1
    assert degraded.shape == clean.shape == (4, 48, 48, channels)
    assert degraded.dtype == clean.dtype == np.float32
    assert 0 <= clean.min() and clean.max() <= 1
    for d, c in zip(to_uint8(degraded), to_uint8(clean)):
        np.testing.assert_array_equal(d.squeeze(-1) if mode == "gray" else d,
                                      pillow_jpeg(c.squeeze(-1) if mode == "gray" else c, 20))
    if mode == "gray":  # Gray patches come from the protocol's Y: studio range.
        assert 16 <= to_uint8(clean).min() and to_uint8(clean).max() <= 235


def test_misaligned_patches_put_the_jpeg_grid_anywhere(make_iterator):
    """The blocking grid (found in the pixels) of misaligned patches starts anywhere, of aligned ones at 0."""
    def grid_rows(misalign):
        degraded, clean = next(make_iterator(batch_size=32, patch_size=64, qf=10, misalign=misalign, **SINGLE))
        assert degraded.shape == clean.shape == (32, 64, 64, 3)
        aligned = [np.array_equal(d, pillow_jpeg(c, 10)) for d, c in zip(to_uint8(degraded), to_uint8(clean))]
        return np.array([jpeg.grid_offset(jpeg.jfif_luma(d))[0] for d in to_uint8(degraded)]), aligned
    rows, aligned = grid_rows(0.0)
    assert all(aligned) and np.mean(rows == 0) > 0.8  # the detection errs on a few flat patches
    rows, aligned = grid_rows(1.0)
    # Offsets 0-8 each 1/9 of the time: the grid starts at row 0 for 0 and 8 (2/9), elsewhere else.
    assert np.mean(rows == 0) < 0.5 and len(set(rows)) >= 5 and not all(aligned)


def test_same_seed_same_batches_and_resume_at_a_step(make_iterator):
    kwargs = dict(batch_size=3, patch_size=32, qf=(10, 30), misalign=0.5, **SINGLE)
    first = [b for _, b in zip(range(4), make_iterator(seed=7, **kwargs))]
    again = [b for _, b in zip(range(4), make_iterator(seed=7, **kwargs))]
    other = next(make_iterator(seed=8, **kwargs))
    resumed = next(make_iterator(seed=7, start_step=3, **kwargs))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(resumed[1], first[3][1])
    np.testing.assert_array_equal(resumed[0], first[3][0])
    assert not np.array_equal(other[1], first[0][1])


def test_processes_read_disjoint_shares_and_each_epoch_is_a_permutation(tmp_path, make_iterator):
    values = list(range(10, 250, 20))  # 12 images, told apart by their constant value
    write_images(tmp_path / "imgs", values)
    seen = []
    for index in range(3):
        batches = make_iterator(str(tmp_path / "imgs"), batch_size=4, patch_size=16,
                                           mode="gray", qf=90, process_index=index, process_count=3)
        clean = np.concatenate([next(batches)[1] for _ in range(2)])  # two epochs of 4 images
        ids = to_uint8(clean)[:, 0, 0, 0].tolist()
        assert sorted(ids[:4]) == sorted(ids[4:]) == values[index::3]
        seen.append(set(ids))
    assert set.union(*seen) == set(values) and sum(map(len, seen)) == len(values)


@pytest.mark.parametrize("mode", ["color", "gray"])
def test_decoding_per_sample_gives_the_same_batches_as_the_cache(tmp_path, mode, make_iterator):
    photo = Image.open(SAMPLE_PHOTOS_DIR / "chelsea.png")
    photo.save(tmp_path / "colour.jpg", quality=95)
    photo.convert("L").save(tmp_path / "gray.png")
    kwargs = dict(batch_size=4, patch_size=40, mode=mode, qf=15, **SINGLE)
    cached = next(make_iterator(str(tmp_path), **kwargs))
    streamed = next(make_iterator(str(tmp_path), cache_budget_mb=0, **kwargs))
    np.testing.assert_array_equal(cached[1], streamed[1])
    np.testing.assert_array_equal(cached[0], streamed[0])


def test_small_images_are_padded_and_tiny_ones_skipped(tmp_path, capsys, make_iterator):
    write_images(tmp_path, [50], size=(20, 30))
    write_images(tmp_path / "tiny", [60], size=(10, 40))
    source = [str(tmp_path), str(tmp_path / "tiny")]
    batches = make_iterator(source, batch_size=2, patch_size=32, mode="gray", **SINGLE)
    degraded, clean = next(batches)
    assert clean.shape == (2, 32, 32, 1)
    assert np.all(to_uint8(clean) == 50)
    text = capsys.readouterr().err
    assert "000.png" in text and "too small" in text
    assert "using 1 of 2 images; 1 skipped: 000.png (40x10 is too small for 32x32 crops)" in text


def test_unreadable_files_are_logged_and_skipped(tmp_path, capsys, make_iterator):
    write_images(tmp_path, [100, 200])
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "000.png").read_bytes()[:60])
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "cut.jpg", quality=90)  # the header is intact
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "cut.jpg").read_bytes()[:2000])
    for budget in (1024, 0):
        capsys.readouterr()
        batches = make_iterator(str(tmp_path), batch_size=4, patch_size=16, mode="gray",
                                cache_budget_mb=budget, **SINGLE)
        ids = set(to_uint8(next(batches)[1])[:, 0, 0, 0].tolist())
        assert ids == {100, 200}
        text = capsys.readouterr().err
        assert all(name in text for name in ("broken.jpg", "truncated.png", "cut.jpg"))
        assert "using 2 of 5 images; 3 skipped:" in text


@pytest.mark.parametrize("module", [data, grain_data], ids=["tf.data", "grain"])
def test_empty_or_unusable_sources_fail_at_once(tmp_path, module):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        module.make_dataset(str(tmp_path / "empty"), batch_size=2, **SINGLE)
    with pytest.raises(FileNotFoundError, match="nothing"):
        module.make_dataset(str(tmp_path / "nothing*.png"), batch_size=2, **SINGLE)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"garbage")
    with pytest.raises(ImageError, match="no usable image"):
        module.make_dataset(str(tmp_path / "bad"), batch_size=2, **SINGLE)
    with pytest.raises(ValueError, match="quality"):
        module.make_dataset(batch_size=2, qf=0, **SINGLE)


def test_unprepared_tfds_dataset_says_how_to_prepare_it_offline(tmp_path):
    with pytest.raises(FileNotFoundError, match="download_and_prepare.*TFDS_DATA_DIR"):
        data.make_dataset("tfds:div2k", image_key="hr", batch_size=2, data_dir=str(tmp_path), **SINGLE)


def test_tfds_source_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        batches = data.make_train_iterator("tfds:div2k", image_key="hr", batch_size=2, patch_size=16,
                                           data_dir=str(tmp_path), **SINGLE)
        degraded, clean = next(batches)
    assert degraded.shape == clean.shape == (2, 16, 16, 3)


def test_bsds500_training_patches():
    folder = DATA / "train" / "BSDS500_val"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (training images live in ../shared/data beside the repo)")
    degraded, clean = next(data.make_train_iterator(str(folder), batch_size=2, qf=10, **SINGLE))
    assert degraded.shape == clean.shape == (2, 256, 256, 3)
    np.testing.assert_array_equal(to_uint8(degraded[0]), pillow_jpeg(to_uint8(clean[0]), 10))
