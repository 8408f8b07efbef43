#!/usr/bin/env bash
# Fills .device/ (ignored by git) with what tools/device/device_train.sh needs on the lent GPU
# machine, whose image has jax, flax, optax, orbax-checkpoint, numpy, pillow, tensorboard and
# Python 3.12 but no TensorFlow, no ml-collections and no network:
#   D2LJAX_DATA=FOLDER BENCHMARKS=FOLDER bash tools/device/device_prepare.sh [MODEL_FOLDER]
# - .device/wheels: grain with the needs that image lacks (array-record, portpicker; protobuf
#   only if its own is older than grain allows) and ml-collections, Python 3.12 x86-64;
# - .device/data/train: BSDS500_train and BSDS500_val from $D2LJAX_DATA (configs/gpu.py trains
#   on them);
# - .device/data/benchmarks: classic5, and LIVE1 colour as PNG (the same pixels as the BMPs in
#   half the bytes; gray evaluation takes the protocol's Y of it, which is what LIVE1_gray holds),
#   from $BENCHMARKS; EVAL_SETS=0 leaves them out (17 MiB), e.g. to make room for a model to
#   continue from;
# - .device/init: MODEL_FOLDER, when given, to continue from (--config.init_from=.device/init).
# It ends by checking the 64 MiB that a device call may carry (working tree + .device).
set -euo pipefail
data=${D2LJAX_DATA:?set D2LJAX_DATA to the folder holding BSDS500_train and BSDS500_val}
[ "${EVAL_SETS:-1}" = 0 ] || benchmarks=${BENCHMARKS:?set BENCHMARKS to the folder holding classic5 and LIVE1_color (or EVAL_SETS=0)}
data=$(cd "$data" && pwd)
[ "${EVAL_SETS:-1}" = 0 ] || benchmarks=$(cd "$benchmarks" && pwd)
init=${1:+$(cd "$1" && pwd)}
cd "$(dirname "$0")/../.."
dest=.device
mkdir -p "$dest/wheels" "$dest/data/train"

python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d "$dest/wheels" \
  grain==0.2.18 array_record==0.8.6 portpicker==1.6.0 protobuf==7.36.2 ml_collections==1.1.0

for set in BSDS500_train BSDS500_val; do
  rm -rf "$dest/data/train/$set" && cp -r "$data/$set" "$dest/data/train/"
done
rm -rf "$dest/data/benchmarks"
if [ "${EVAL_SETS:-1}" != 0 ]; then
  mkdir -p "$dest/data/benchmarks"
  cp -r "$benchmarks/classic5" "$dest/data/benchmarks/"
  python3 - "$benchmarks/LIVE1_color" "$dest/data/benchmarks/LIVE1_color" <<'PY'
import os, sys
from PIL import Image
source, target = sys.argv[1:]
os.makedirs(target, exist_ok=True)
for name in sorted(os.listdir(source)):
    with Image.open(os.path.join(source, name)) as image:
        image.save(os.path.join(target, os.path.splitext(name)[0] + ".png"), optimize=True)
PY
fi
if [ -n "$init" ]; then rm -rf "$dest/init" && cp -r "$init" "$dest/init"; fi

tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
carry=$(du -sb "$dest" | cut -f1)
total=$(( (tree + carry) / 1048576 ))
echo "working tree $(( tree / 1048576 )) MiB + .device $(( carry / 1048576 )) MiB = $total MiB (limit 64)"
[ "$total" -lt 64 ] || { echo "error: over the device tool's 64 MiB: carry less" >&2; exit 1; }
