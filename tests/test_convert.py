"""Importing released PyTorch checkpoints: layouts, errors, and the model-folder round trip."""
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import FIXTURES, require
from d2ljax import checkpoints, convert

RGB = "official_rgb_wf16_d3"


@pytest.fixture(scope="module")
def state():
    return convert.load_state_dict(require(FIXTURES / f"{RGB}.npz"))


def params_equal(a, b):
    la, lb = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
    return [p for p, _ in la] == [p for p, _ in lb] and all(np.array_equal(x, y) for (_, x), (_, y) in zip(la, lb))


def test_key_mapping_rule():
    assert convert.flax_path("up_path_1.0.conv_block.conv_1.weight") == ("up_path_1_0", "conv_block", "conv_1", "weight")
    assert convert.flax_path("last.process.0.conv_du.2.bias") == ("last", "process_0", "conv_du_2", "bias")
    w = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    path, k = convert.flax_leaf(("conv_01_0", "weight"), w)
    assert path == ("conv_01_0", "kernel") and k.shape == (4, 5, 3, 2) and k[1, 2, 0, 1] == w[1, 0, 1, 2]


def test_layouts_agree(state):
    """The .pth (BasicSR {'params'}), the .npz, a bare mapping and params_ema give the same model."""
    m_npz, v_npz = convert.from_torch(FIXTURES / f"{RGB}.npz")
    m_pth, v_pth = convert.from_torch(require(FIXTURES / f"{RGB}.pth"))
    m_map, v_map = convert.from_torch(state)
    m_ema, v_ema = convert.from_torch({"params_ema": {f"module.{k}": v for k, v in state.items()}})
    assert m_npz == m_pth == m_map == m_ema
    assert (m_npz.in_chn, m_npz.wf, m_npz.depth) == (3, 16, 3)
    assert params_equal(v_npz, v_pth) and params_equal(v_npz, v_map) and params_equal(v_npz, v_ema)


def test_gray_size_inferred():
    model, _ = convert.from_torch(require(FIXTURES / "official_gray_wf16_d3.npz"))
    assert (model.in_chn, model.wf, model.depth) == (1, 16, 3)


def test_unused_released_tensors_are_skipped_but_others_are_errors(state):
    assert "conv_01.1.conv_3.weight" in state and "up_path_1.0.conv_block.sa.conv1.weight" in state
    with pytest.raises(convert.CheckpointMismatchError, match=r"unexpected: conv_01\.0\.extra\.weight"):
        convert.from_torch({**state, "conv_01.0.extra.weight": np.zeros((1, 1, 1, 1), np.float32)})
    missing = {k: v for k, v in state.items() if k != "sam12.conv1.bias"}
    with pytest.raises(convert.CheckpointMismatchError, match=r"missing \(Flax paths\): sam12/conv1/bias"):
        convert.from_torch(missing)
    bad = {**state, "cat12.weight": np.zeros((16, 8, 1, 1), np.float32)}
    with pytest.raises(convert.CheckpointMismatchError, match=r"mis-shaped: cat12\.weight \(16, 8, 1, 1\) \(expected \(16, 32, 1, 1\)\)"):
        convert.from_torch(bad)
    with pytest.raises(convert.CheckpointMismatchError, match="not a D2LNet checkpoint"):
        convert.from_torch({"encoder.weight": np.zeros(3)})


def test_missing_file_and_missing_torch(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        convert.from_torch(tmp_path / "nope.pth")
    (tmp_path / "x.pth").write_bytes(b"not a checkpoint")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'd2ljax\[torch\]'"):
        convert.from_torch(tmp_path / "x.pth")


def test_cli_writes_a_model_folder_that_loads_and_never_overwrites(tmp_path):
    out = tmp_path / "released"
    cmd = [sys.executable, "-m", "d2ljax", "convert", str(require(FIXTURES / f"{RGB}.npz")), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    model, variables = checkpoints.load_model(str(out))
    ref_model, ref_variables = convert.from_torch(FIXTURES / f"{RGB}.npz")
    assert model == ref_model and params_equal(jax.device_get(variables), ref_variables)
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr and again.stderr.count("\n") == 1
