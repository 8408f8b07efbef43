"""d2ljax.evaluation and evaluate.py: the protocol's JPEG rows, reports, bad input."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import interrupt_when, random_variables, start_interruptible
from d2ljax import console, evaluation, metrics
from d2ljax.evaluation import Method, evaluate
from d2ljax.imageio import side_by_side

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

# ../shared/spec/protocol.md, "Targets": the tables' JPEG rows (PSNR, SSIM, PSNR-B).
JPEG_ROWS = {
    ("classic5", "gray"): {
        10: (27.821, 0.7595, 25.209), 20: (30.123, 0.8344, 27.501), 30: (31.484, 0.8666, 28.939)},
    ("LIVE1_gray", "gray"): {
        10: (27.770, 0.7730, 25.333), 20: (30.072, 0.8512, 27.566), 30: (31.407, 0.8851, 28.923)},
    ("LIVE1_color", "color"): {
        10: (25.693, 0.7433, 24.201), 20: (28.061, 0.8256, 26.488), 30: (29.366, 0.8615, 27.838)},
}


def _check_jpeg_rows(folder, mode, qfs):
    path = DATA / "benchmarks" / folder
    if not path.is_dir():
        pytest.skip(f"{path} is absent (data lives in ../shared beside the repo)")
    report = evaluate([str(path)], mode, qfs, [Method("jpeg")], progress=False)
    assert [r["qf"] for r in report["results"]] == list(qfs) and not report["skipped"]
    for row in report["results"]:
        psnr, ssim, psnrb = JPEG_ROWS[(folder, mode)][row["qf"]]
        assert row["n_images"] == (5 if folder == "classic5" else 29)
        assert abs(row["psnr"] - psnr) <= 0.002, row
        assert abs(row["ssim"] - ssim) <= 0.0002, row
        assert abs(row["psnrb"] - psnrb) <= 0.002, row


@pytest.mark.parametrize("folder, mode, qfs", [
    ("classic5", "gray", (10, 20, 30)), ("LIVE1_gray", "gray", (10, 20, 30)),
    ("LIVE1_color", "color", (10,))])
def test_reproduces_protocol_jpeg_rows(folder, mode, qfs):
    _check_jpeg_rows(folder, mode, qfs)


@pytest.mark.slow
def test_reproduces_protocol_jpeg_rows_colour_20_30():
    _check_jpeg_rows("LIVE1_color", "color", (20, 30))


def _set(folder: Path, n: int = 2, shape=(24, 32, 3)) -> str:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        smooth = rng.integers(0, 256, (shape[0] // 8, shape[1] // 8) + shape[2:]).repeat(8, 0).repeat(8, 1)
        Image.fromarray(smooth.astype(np.uint8)).save(folder / f"img{i}.png")
    return str(folder)


def _blur(image, qf=None):
    """A stand-in 'model': a 3x3 box blur keeping shape and dtype."""
    padded = np.pad(image.astype(float), [(1, 1), (1, 1)] + [(0, 0)] * (image.ndim - 2), mode="edge")
    h, w = image.shape[:2]
    return np.round(sum(padded[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9).astype(np.uint8)


def test_methods_rows_per_image_and_saved_images(tmp_path):
    sets = [_set(tmp_path / "a"), _set(tmp_path / "b", n=3)]
    report = evaluate(sets, "color", [10, 30], [Method("jpeg"), Method("blur", _blur)],
                      save_images=str(tmp_path / "out"), progress=False)
    assert [(r["dataset"], r["qf"], r["method"], r["n_images"]) for r in report["results"]] == [
        ("a", 10, "jpeg", 2), ("a", 10, "blur", 2), ("a", 30, "jpeg", 2), ("a", 30, "blur", 2),
        ("b", 10, "jpeg", 3), ("b", 10, "blur", 3), ("b", 30, "jpeg", 3), ("b", 30, "blur", 3)]
    assert len(report["per_image"]) == (2 + 3) * 2 * 2 and report["skipped"] == []
    first = report["results"][0]
    rows = [r for r in report["per_image"] if (r["dataset"], r["qf"], r["method"]) == ("a", 10, "jpeg")]
    assert first["psnr"] == pytest.approx(np.mean([r["psnr"] for r in rows]))
    saved = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert len(saved) == 30 and "b/color/qf30/blur/img2.png" in saved  # 20 outputs, 10 comparisons
    gt = np.asarray(Image.open(tmp_path / "b" / "img2.png"))
    blurred = np.asarray(Image.open(tmp_path / "out" / "b/color/qf30/blur/img2.png"))
    from d2ljax.jpeg import compress
    np.testing.assert_array_equal(blurred, _blur(compress(gt, 30)))
    comparison = np.asarray(Image.open(tmp_path / "out" / "b/color/qf30/comparison/img2.png"))
    np.testing.assert_array_equal(comparison, side_by_side([compress(gt, 30), blurred, gt]))


def test_report_files_and_table(tmp_path):
    report = evaluate([_set(tmp_path / "a", shape=(24, 32))], "gray", [10],
                      [Method("jpeg"), Method("blur", _blur)], progress=False)
    (tmp_path / "results").mkdir()
    table = evaluation.write_report(report, str(tmp_path / "results" / "r.json"))
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["r.json", "r.md"]
    assert json.loads((tmp_path / "results" / "r.json").read_text()) == report
    assert (tmp_path / "results" / "r.md").read_text() == table
    assert "| set | QF | JPEG | blur |" in table
    row = report["results"][0]
    assert f"| a | 10 | {row['psnr']:.3f} / {row['ssim']:.4f} / {row['psnrb']:.3f} |" in table


def test_model_results_nest_one_models_rows_with_the_jpeg_psnr(tmp_path):
    sets = [_set(tmp_path / "a"), _set(tmp_path / "b", n=3)]
    rows = evaluate(sets, "color", [10, 30], [Method("jpeg"), Method("blur", _blur)], progress=False)["results"]
    by_key = {(r["dataset"], r["qf"], r["method"]): r for r in rows}
    results = evaluation.model_results(rows)
    assert {d: sorted(qfs) for d, qfs in results.items()} == {"a": ["10", "30"], "b": ["10", "30"]}
    for (dataset, qf, method), row in by_key.items():
        cell = results[dataset][str(qf)]
        if method == "blur":
            assert (cell["psnr"], cell["ssim"], cell["n_images"]) == (
                round(row["psnr"], 3), round(row["ssim"], 4), row["n_images"])
        else:
            assert cell["jpeg_psnr"] == round(row["psnr"], 3) != cell["psnr"]
    with pytest.raises(ValueError, match=r"^the reports hold 2 methods besides JPEG \(blur, sharp\)"):
        evaluation.model_results([*rows, {**rows[1], "method": "sharp"}])
    with pytest.raises(ValueError, match=r"hold 0 methods besides JPEG \(none\)"):
        evaluation.model_results([r for r in rows if r["method"] == "jpeg"])


def test_unreadable_file_is_skipped_and_counted(tmp_path):
    folder = _set(tmp_path / "a")
    (Path(folder) / "zzz.png").write_bytes(b"broken")
    report = evaluate([folder], "color", [10], [Method("jpeg")], progress=False)
    assert report["results"][0]["n_images"] == 2
    assert len(report["skipped"]) == 1 and report["skipped"][0]["file"].endswith("zzz.png")


def test_bad_input_raises(tmp_path):
    folder = _set(tmp_path / "a")
    crop = Method("crop", lambda image, qf: image[1:])
    with pytest.raises(ValueError, match="shapes differ"):
        evaluate([folder], "color", [10], [crop], progress=False)
    with pytest.raises(ValueError, match="1..100"):
        evaluate([folder], "color", [0], [Method("jpeg")], progress=False)
    with pytest.raises(ValueError, match="same name"):
        evaluate([folder, folder], "color", [10], [Method("jpeg")], progress=False)
    with pytest.raises(ValueError, match="same name"):
        evaluate([folder], "color", [10], [Method("jpeg"), Method("jpeg")], progress=False)
    gray_set = _set(tmp_path / "classic5", shape=(16, 16))
    with pytest.raises(ValueError, match="gray set"):
        evaluate([gray_set], "color", [10], [Method("jpeg")], progress=False)


def test_checkpoint_column_and_channel_mismatch(tmp_path):
    from d2ljax.checkpoints import load_model, save_model
    from d2ljax.model import D2LNetTiny

    model = D2LNetTiny(in_chn=1)
    variables = random_variables(model, scale=0.1)
    save_model(str(tmp_path / "tiny_gray"), model, variables)
    method = evaluation.checkpoint_method(str(tmp_path / "tiny_gray"), "gray")
    assert method.name == "tiny_gray"
    report = evaluate([_set(tmp_path / "a", n=1, shape=(24, 32))], "gray", [10], [Method("jpeg"), method],
                      save_images=str(tmp_path / "out"), progress=False)
    assert [r["method"] for r in report["results"]] == ["jpeg", "tiny_gray"]
    assert all(np.isfinite(r["psnr"]) for r in report["results"])
    from d2ljax.inference import apply_image
    from d2ljax.jpeg import compress
    gt = np.asarray(Image.open(tmp_path / "a" / "img0.png"))
    jpeg = compress(gt, 10)
    saved = np.asarray(Image.open(tmp_path / "out" / "a/gray/qf10/tiny_gray/img0.png"))
    np.testing.assert_array_equal(saved, apply_image(*load_model(str(tmp_path / "tiny_gray")), jpeg))
    row = report["per_image"][1]
    assert (row["method"], row["psnr"], row["ssim"], row["psnrb"]) == (
        "tiny_gray", metrics.psnr(gt, saved), metrics.ssim(gt, saved), metrics.psnrb(gt, saved))
    with pytest.raises(ValueError, match="in_chn=1"):
        evaluation.checkpoint_method(str(tmp_path / "tiny_gray"), "color")


def test_inference_convolutions_run_in_exact_float32(monkeypatch):
    """Every convolution and matrix product of inference is lowered at HIGHEST precision
    (on GPUs the default is TF32, ~3e-3 off the released model); precision="default" opts out."""
    import jax
    from d2ljax import inference
    from d2ljax.model import D2LNetTiny

    lowered, setting = [], jax.config.jax_default_matmul_precision
    real = inference._jitted_apply.__wrapped__

    def spy(model, devices):
        fn = real(model, devices)

        def call(variables, images):
            lowered.append(fn.lower(variables, images).as_text())
            return fn(variables, images)
        return call

    monkeypatch.setattr(inference, "_jitted_apply", spy)
    model = D2LNetTiny(in_chn=1)
    variables = random_variables(model, scale=0.1)
    image = np.random.default_rng(0).integers(0, 256, (16, 24), dtype=np.uint8)
    exact = inference.apply_image(model, variables, image)
    fast = inference.apply_image(model, variables, image, precision="default")
    ops = lowered[0].count("stablehlo.convolution") + lowered[0].count("stablehlo.dot_general")
    assert ops > 20 and lowered[0].count("HIGHEST") == 2 * ops  # both operands of each op
    assert "HIGHEST" not in lowered[1]
    np.testing.assert_array_equal(exact, fast)  # the CPU computes float32 exactly either way
    assert jax.config.jax_default_matmul_precision == setting  # the setting does not leak out


@pytest.fixture(scope="module")
def cli():
    """evaluate.py as a module (absl flags are process-global: import it once)."""
    spec = importlib.util.spec_from_file_location("evaluate_cli", REPO / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    module.FLAGS.unparse_flags()


def test_cli_writes_only_its_outputs(cli, tmp_path, capsys):
    folder = _set(tmp_path / "a")
    output = tmp_path / "out" / "res.json"
    cli.FLAGS(["evaluate.py", f"--dataset={folder}", "--mode=color", "--qf=10,20", "--jpeg_only",
               f"--output={output}"])
    cli.main(["evaluate.py"])
    assert sorted(p.name for p in output.parent.iterdir()) == ["res.json", "res.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "out"]
    assert "| a | 20 |" in capsys.readouterr().out
    assert [r["qf"] for r in json.loads(output.read_text())["results"]] == [10, 20]
    cli.FLAGS.jpeg_only = False
    with pytest.raises(ValueError, match="--checkpoint"):
        cli.main(["evaluate.py"])


@pytest.fixture()
def shipped_models_only(tmp_path, monkeypatch):
    """Named models: the shipped ones alone, whatever the machine has installed."""
    monkeypatch.setenv("D2LJAX_MODELS", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_cli_takes_a_model_name(cli, tmp_path, capsys, shipped_models_only):
    folder = _set(tmp_path / "a", n=1)
    cli.FLAGS.unparse_flags()
    cli.FLAGS(["evaluate.py", f"--dataset={folder}", "--mode=gray", "--qf=10", "--checkpoint=gray_qf10",
               f"--output={tmp_path / 'res.json'}"])
    assert cli.main(["evaluate.py"]) is None
    assert [r["method"] for r in json.loads((tmp_path / "res.json").read_text())["results"]] == ["jpeg", "gray_qf10"]
    assert "| gray_qf10 |" in capsys.readouterr().out


def test_cli_restore_column_is_what_the_restore_command_gives(cli, tmp_path, shipped_models_only):
    """--restore: at QF 10 the chosen shipped model blended at its rule's strength and moved into
    the JPEG's quantisation cells (computed here from the model's output); above QF 95, where
    every rule is 0, the JPEG itself."""
    from d2ljax import pretrained, restoration
    from d2ljax.inference import apply_image
    from d2ljax.jpeg import compress, pixel_grid, project_luma

    folder = tmp_path / "a"
    folder.mkdir()
    photo = Image.open(REPO / "d2ljax" / "assets" / "photos" / "astronaut.png").convert("RGB")
    photo.crop((128, 128, 256, 256)).save(folder / "img0.png")  # whole buckets: no padding
    output, images = tmp_path / "res.json", tmp_path / "images"
    cli.FLAGS.unparse_flags()
    cli.FLAGS(["evaluate.py", f"--dataset={folder}", "--mode=color", "--qf=10,98", "--restore",
               f"--output={output}", f"--save_images={images}"])
    cli.main(["evaluate.py"])
    rows = {(r["qf"], r["method"]): r for r in json.loads(output.read_text())["results"]}
    assert rows[(98, "restore")]["psnr"] == rows[(98, "jpeg")]["psnr"]
    jpeg = compress(np.asarray(Image.open(folder / "img0.png")), 10)
    _, info = restoration.restore(jpeg, quality=10, return_info=True)
    entry = pretrained.model_entry(info.model)
    assert info.strength == entry.restore_rule["10"] < 1
    full = apply_image(*entry.loaded, jpeg).astype(float)
    blended = np.round(jpeg + info.strength * (full - jpeg)).astype(np.uint8)
    expected = project_luma(jpeg, blended, pixel_grid(jpeg, 10))
    assert not np.array_equal(expected, blended)
    np.testing.assert_array_equal(np.asarray(Image.open(images / "a/color/qf10/restore/img0.png")), expected)
    assert rows[(10, "restore")]["psnr"] > rows[(10, "jpeg")]["psnr"]


@pytest.mark.parametrize("flags,words", [
    (["--dataset={missing}", "--jpeg_only"], "no such file, folder"),
    (["--dataset={folder}", "--jpeg_only", "--qf=0"], "1..100, got 0"),
    (["--dataset={folder}", "--checkpoint={missing}"], "unknown model"),
    (["--dataset={folder}", "--checkpoint=color_qf10"], "needs 1"),  # a colour model, a gray evaluation
])
def test_cli_mistakes_are_one_line_and_status_2(cli, tmp_path, capsys, shipped_models_only, flags, words):
    folder = _set(tmp_path / "a", n=1)
    cli.FLAGS.unparse_flags()
    cli.FLAGS(["evaluate.py", "--mode=gray", f"--output={tmp_path / 'res.json'}",
               *[f.format(folder=folder, missing=tmp_path / "missing") for f in flags]])
    with pytest.raises(SystemExit) as exit:
        console.run_absl_main(cli.main)(["evaluate.py"])
    assert exit.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error and words in error, error
    assert not (tmp_path / "res.json").exists()


def test_cli_checks_its_outputs_before_evaluating(cli, tmp_path, capsys, monkeypatch):
    folder = _set(tmp_path / "a", n=1)
    (tmp_path / "taken").write_text("x")
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: pytest.fail("evaluated before checking outputs"))
    for flag, words in ((f"--output={tmp_path / 'taken' / 'r.json'}", f"--output {tmp_path / 'taken' / 'r.json'}: "
                                                                       f"{tmp_path / 'taken'} is a file, need a folder"),
                        (f"--output={tmp_path}", f"--output {tmp_path}: is a folder, need a file"),
                        (f"--save_images={tmp_path / 'taken'}", f"--save_images {tmp_path / 'taken'}: is a file, "
                                                                 "need a folder")):
        cli.FLAGS.unparse_flags()
        cli.FLAGS(["evaluate.py", f"--dataset={folder}", "--mode=color", "--jpeg_only",
                   f"--output={tmp_path / 'r.json'}", flag])
        with pytest.raises(SystemExit) as exit:
            console.run_absl_main(cli.main)(["evaluate.py"])
        assert exit.value.code == 2 and capsys.readouterr().err.strip() == f"error: {words}"


def test_progress_bar_counts_image_qf_pairs(tmp_path, capsys):
    evaluate([_set(tmp_path / "a", n=2)], "color", [10, 20], [Method("jpeg")], progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith("a color, image x QF: 100%") and "4/4 [" in lines[-1] and "pair/s]" in lines[-1], lines


def test_ctrl_c_writes_the_finished_pairs(tmp_path):
    """SIGINT to evaluate.py once the first image x QF pair is counted (the second image's first
    output is saved only after that; the first's comparison picture is saved just before it); the
    next images have other sizes, so the model compiles again (seconds) and the signal lands mid-run."""
    from d2ljax.checkpoints import save_model
    from d2ljax.model import D2LNet

    model = D2LNet(3, wf=4, depth=2)
    save_model(str(tmp_path / "tiny"), model, random_variables(model, scale=0.05))
    folder = tmp_path / "set"
    folder.mkdir()
    rng = np.random.default_rng(0)
    shapes = [(24, 32)] + [(200 + 8 * i, 240 + 8 * i) for i in range(8)]
    for i, shape in enumerate(shapes):
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    output, images = tmp_path / "res.json", tmp_path / "images"
    process = start_interruptible(
        [str(REPO / "evaluate.py"), f"--dataset={folder}", "--mode=color", "--qf=10",
         f"--checkpoint={tmp_path / 'tiny'}", f"--output={output}", f"--save_images={images}"], cwd=tmp_path)
    err = interrupt_when(lambda: any(images.glob("set/color/qf10/*/img1.png")), process)
    report = json.loads(output.read_text())
    done = report["interrupted"]["done"]
    assert process.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == (
        f"interrupted: {done} of {len(shapes)} image x QF pairs evaluated; partial results in {output}")
    assert 1 <= done < len(shapes) and report["interrupted"]["total"] == len(shapes)
    assert [(r["method"], r["n_images"]) for r in report["results"]] == [("jpeg", done), ("tiny", done)]
    assert output.with_suffix(".md").read_text().startswith(f"Interrupted: means over the {done} of {len(shapes)} image x QF pairs")


def test_cli_typo_names_the_flag_before_missing_ones(cli, capsys):
    cli.FLAGS.unparse_flags()
    with pytest.raises(SystemExit) as exit:
        console.parse_flags(["evaluate.py", "--dataset=a", "--mode=gray", "--jpeg_only", "--ouput=r.json"])
    error = capsys.readouterr().err.strip()
    assert exit.value.code == 2 and "\n" not in error and "'ouput'" in error and "output" in error, error
