"""Configs stand on their own: they import only ml_collections and each other, and name their
data as specs the library resolves ("shipped:" photos, $D2LJAX_DATA), never a path outside the
repository."""
import ast
import sys
from pathlib import Path

import pytest

from conftest import DATA
from d2ljax.imageio import SAMPLE_PHOTOS_DIR, expand_spec, list_image_files

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the configs/ folder

from configs import bsds, gpu, quickstart  # noqa: E402


def top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.py")), ids=lambda p: p.name)
def test_configs_import_only_ml_collections_and_configs(path):
    assert top_level_imports(path) <= {"ml_collections", "configs"}


def test_shipped_spec_names_the_photos_in_the_package():
    assert expand_spec("shipped:") == str(SAMPLE_PHOTOS_DIR)
    assert list_image_files("shipped:") == sorted(str(p) for p in SAMPLE_PHOTOS_DIR.iterdir() if p.suffix != ".md")
    assert list_image_files("shipped:chelsea.png,shipped:*.jpg") == [str(SAMPLE_PHOTOS_DIR / "chelsea.png"),
                                                                      str(SAMPLE_PHOTOS_DIR / "rocket.jpg")]


def test_quickstart_trains_on_three_photos_and_validates_on_the_fourth():
    config = quickstart.get_config()
    train, val = list_image_files(config.train_data), list_image_files(config.val_data)
    assert [Path(p).name for p in train] == ["astronaut.png", "coffee.png", "rocket.jpg"]
    assert [Path(p).name for p in val] == ["chelsea.png"]


def test_data_variable_is_expanded(tmp_path, monkeypatch):
    (tmp_path / "BSDS500_train").mkdir()
    (tmp_path / "BSDS500_train" / "a.png").write_bytes((SAMPLE_PHOTOS_DIR / "chelsea.png").read_bytes())
    monkeypatch.setenv("D2LJAX_DATA", str(tmp_path))
    assert list_image_files("$D2LJAX_DATA/BSDS500_train") == [str(tmp_path / "BSDS500_train" / "a.png")]


@pytest.mark.parametrize("module", [bsds, gpu], ids=lambda m: m.__name__)
def test_missing_data_variable_is_one_line_naming_it_and_the_flag(module, monkeypatch):
    monkeypatch.delenv("D2LJAX_DATA", raising=False)
    config = module.get_config("gray,10" if module is bsds else "gray")
    with pytest.raises(FileNotFoundError) as error:
        list_image_files(config.train_data)
    message = str(error.value)
    assert "\n" not in message and "D2LJAX_DATA is not set" in message and "--config.train_data" in message


def test_bsds_config_finds_bsds500_through_the_data_variable(monkeypatch):
    folder = DATA / "train"
    if not (folder / "BSDS500_train").is_dir():
        pytest.skip(f"{folder} is absent (training images live in ../shared/data beside the repo)")
    monkeypatch.setenv("D2LJAX_DATA", str(folder))
    assert len(list_image_files(bsds.get_config("gray,10").train_data)) == 300
