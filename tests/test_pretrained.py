"""Named models: the search path, metadata, loading, and clear errors."""
import jax
import numpy as np
import pytest

from d2ljax import checkpoints, pretrained, restoration
from test_restore import tiny_model


@pytest.fixture()
def search_path(tmp_path, monkeypatch):
    """Two model folders on $D2LJAX_MODELS, an empty user cache, no others."""
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv("D2LJAX_MODELS", f"{first}:{second}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(pretrained, "PACKAGE_MODELS", str(tmp_path / "package"))
    model, variables = tiny_model(3)
    checkpoints.save_model(str(first / "qf10"), model, variables, metadata={"qf": [10], "mode": "color"})
    checkpoints.save_model(str(second / "qf10"), *tiny_model(1), metadata={"qf": [10]})  # shadowed
    checkpoints.save_model(str(second / "blind"), *tiny_model(1), metadata={"qf": "blind"})
    return tmp_path, variables


def test_names_on_the_search_path_load(search_path):
    tmp_path, variables = search_path
    assert pretrained.list_pretrained() == ["blind", "qf10"]
    model, loaded = pretrained.load_pretrained("qf10")  # the first folder on the path wins
    assert model.in_chn == 3
    jax.tree.map(np.testing.assert_array_equal, loaded, variables)  # the same tree, leaf for leaf
    assert pretrained.load_pretrained(str(tmp_path / "second" / "qf10"))[0].in_chn == 1  # a path works too
    assert [e.describe() for e in pretrained.all_entries()] == ["blind (gray, blind)", "qf10 (color, QF 10)"]


def test_a_training_workdir_or_a_path_object_resolves_like_a_folder(search_path):
    tmp_path, _ = search_path
    workdir = tmp_path / "run"
    (workdir / checkpoints.CHECKPOINT_DIR).mkdir(parents=True)
    (workdir / checkpoints.MODEL_JSON).write_text("{}")
    assert pretrained.resolve(workdir) == pretrained.resolve(str(workdir)) == str(workdir)
    assert pretrained.resolve(tmp_path / "first" / "qf10") == str(tmp_path / "first" / "qf10")
    with pytest.raises(pretrained.UnknownModelError, match="not a model folder or training workdir"):
        pretrained.resolve(tmp_path / "nothing")


def test_unknown_name_lists_the_available_ones(search_path):
    with pytest.raises(pretrained.UnknownModelError, match=r"unknown model 'qf99'.*\(blind, qf10\)"):
        pretrained.load_pretrained("qf99")


def test_no_models_installed_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("D2LJAX_MODELS", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(pretrained, "PACKAGE_MODELS", str(tmp_path / "none"))
    assert pretrained.list_pretrained() == []
    with pytest.raises(LookupError, match="no named models installed"):
        restoration.model_entries()


def test_quality_metadata_forms():
    assert pretrained.parse_qualities(None) is None
    assert pretrained.parse_qualities(10) == pretrained.parse_qualities([10]) == ((10, 10),)
    assert pretrained.parse_qualities([30, 10]) == ((10, 10), (30, 30))
    assert pretrained.parse_qualities("5-95") == ((5, 95),)
    assert pretrained.parse_qualities("blind") == pretrained.BLIND == pretrained.parse_qualities("1-100")
    for bad in ("high", [0], [10, "20"], "90-10", True, []):
        with pytest.raises(ValueError, match="'qf' must be"):
            pretrained.parse_qualities(bad)
    assert pretrained.in_channels({"in_chn": 1, "mode": "gray"}) == 1
    with pytest.raises(ValueError, match="disagrees"):
        pretrained.in_channels({"in_chn": 1, "mode": "color"})
