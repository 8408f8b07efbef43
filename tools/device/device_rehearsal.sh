#!/usr/bin/env bash
# Rehearses tools/device/device_train.sh here on the CPU, as the GPU machine will run it: in a
# fresh Python 3.12 venv holding only what that machine's image has (jax 0.11, flax, optax,
# orbax-checkpoint, numpy, pillow, tensorboard, ...; no TensorFlow, grain or ml-collections),
# on a copy of what a device call carries (the working tree and .device/), with a tiny model
# and a 60-second budget:
#   bash tools/device/device_rehearsal.sh OUT_DIR [PYTHON3.12 [CONFIG [--config.FIELD=VALUE ...]]]
# CONFIG and its flags, when given, replace the tiny colour run: rehearse the call's own command
# with a short --config.time_budget_s (and smaller patches or batches to suit the CPU).
# Run tools/device/device_prepare.sh first. It ends by listing OUT_DIR against the device
# tool's limits (8 files of 16 MB).
set -euo pipefail
out=${1:?usage: device_rehearsal.sh OUT_DIR [PYTHON3.12 [CONFIG FLAGS...]]}
python312=${2:-python3.12}
if [ $# -gt 2 ]; then
  run_args=("${@:3}")
else
  run_args=(configs/gpu.py:color --config.wf=8 --config.depth=2 --config.patch_size=32 --config.batch_size=8
            --config.time_budget_s=60 --config.warmup_steps=20 --config.val_every_steps=100)
fi
cd "$(dirname "$0")/../.."
[ -d .device/wheels ] || { echo "error: run tools/device/device_prepare.sh first" >&2; exit 2; }
scratch=$(mktemp -d /tmp/d2ljax-rehearsal-XXXXXX)
"$python312" -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install -q --disable-pip-version-check "jax==0.11.2" flax optax orbax-checkpoint \
  numpy pillow tensorboard tqdm scipy absl-py etils cloudpickle psutil pyyaml protobuf fsspec zipp typing_extensions
if "$scratch/venv/bin/python" -c "import tensorflow" 2>/dev/null; then echo "error: TensorFlow in the venv" >&2; exit 1; fi
mkdir "$scratch/tree"
(git ls-files; git ls-files --others --exclude-standard) | tar -cf - -T - | tar -xf - -C "$scratch/tree"
cp -r .device "$scratch/tree/"
rm -rf "$out"
(cd "$scratch/tree" && PYTHON="$scratch/venv/bin/python" WORKDIR="$scratch/work" \
  bash tools/device/device_train.sh "$out" "${run_args[@]}")
ls -l "$out"
echo "$(find "$out" -type f | wc -l) files (limit 8), $(find "$out" -type f -size +16M | wc -l) over 16 MB"
rm -rf "$scratch"
