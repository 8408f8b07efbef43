"""d2ljax.cpu.hostdevices and inference across devices: the restore command's two CPU devices,
and a batch split across devices restores exactly what one device restores image by image."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from d2ljax.cpu import hostdevices

ROOT = Path(__file__).resolve().parents[1]
GPU = ["/dev/nvidia0"]

# On JAX's CPU devices (1 or 2): batches of 1-3 images (3 on two devices: padded to 4) against the
# one-device program applied to each image alone, then a digest of a photo restored in tiles.
SPLIT_SCRIPT = """
import hashlib, jax, numpy as np
from d2ljax import inference, restoration
from d2ljax.model import D2LNetTiny
from tests.conftest import random_variables
model = D2LNetTiny(in_chn=3)
variables = random_variables(model, scale=0.1)
images = np.random.default_rng(0).integers(0, 256, (3, 40, 56, 3), dtype=np.uint8)
alone = [np.asarray(inference._jitted_apply(model, 1)(variables, x[None]))[0] for x in images]
for n in (1, 2, 3):
    np.testing.assert_array_equal(inference.apply_batch(model, variables, images[:n]), alone[:n])
assert inference.batch_devices(3) == jax.local_device_count()
photo = np.random.default_rng(1).integers(0, 256, (96, 150, 3), dtype=np.uint8)
options = restoration.Options(max_pixels=64 * 64, tile=64, overlap=16, bucket=16)
tiled = restoration.run_images(model, variables, [photo], options)[0]
print(jax.local_device_count(), hashlib.sha256(tiled.tobytes()).hexdigest())
"""


def test_device_count_leaves_the_users_choice_and_other_platforms_alone():
    assert hostdevices.device_count({}, cores=2, accelerators=[]) == 2
    assert hostdevices.device_count({}, cores=16, accelerators=[]) == hostdevices.MAX_DEVICES
    assert hostdevices.device_count({}, cores=1, accelerators=[]) is None
    assert hostdevices.device_count({"JAX_NUM_CPU_DEVICES": "4"}, cores=2, accelerators=[]) is None
    flags = {"XLA_FLAGS": "--xla_cpu_use_xnnpack=true --xla_force_host_platform_device_count=8"}
    assert hostdevices.device_count(flags, cores=2, accelerators=[]) is None
    assert hostdevices.device_count({"XLA_FLAGS": "--xla_cpu_use_xnnpack=true"}, cores=2, accelerators=[]) == 2
    assert hostdevices.device_count({"D2LJAX_CPU_TUNING": "0"}, cores=2, accelerators=[]) is None
    assert hostdevices.device_count({}, cores=2, accelerators=GPU) is None
    assert hostdevices.device_count({"JAX_PLATFORMS": "cpu"}, cores=2, accelerators=GPU) == 2


def run_python(code: str, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    result = subprocess.run([sys.executable, "-c", code], env={**clean, "JAX_PLATFORMS": "cpu", **env},
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


@pytest.mark.skipif(hostdevices.usable_cores() < 2, reason="needs a process that may use two cores")
def test_split_host_gives_jax_two_cpu_devices_and_respects_the_switch():
    code = "import jax; from d2ljax.cpu import hostdevices; hostdevices.split_host(); print(jax.local_device_count())"
    assert run_python(code) == "2"
    assert run_python(code, D2LJAX_CPU_TUNING="0") == "1"
    assert run_python(code, JAX_NUM_CPU_DEVICES="3") == "3"


def test_a_batch_split_across_two_devices_restores_each_image_as_one_device_does():
    one = run_python(SPLIT_SCRIPT, JAX_NUM_CPU_DEVICES="1").split()
    two = run_python(SPLIT_SCRIPT, JAX_NUM_CPU_DEVICES="2").split()
    assert (one[0], two[0]) == ("1", "2")
    assert one[1] == two[1]  # the tiled photo, tiles batched two per call on two devices
