#!/usr/bin/env bash
# The GPU checks of the issues in one run (a lent GPU machine gives ~15 minutes in all):
#   bash tools/device/gpu_check.sh OUT_DIR FIXTURE.npz...
#   PARTS="speed train" bash tools/device/gpu_check.sh OUT_DIR     # some of the parts below
# from the repository root (the checks run as `python -m benchmarks.NAME`).
# 1. d2ljax vs the released PyTorch structure (benchmarks/torch_reference.py) on the same GPU,
#    same run: full model (wf 64, depth 4) forward and train step, batch 1, 128 and 256 float32
#    (TF32 convolutions, both libraries' default), 256 exact float32, 256 bfloat16 (PyTorch
#    through autocast), batch 8 at 256 float32, and the small model (wf 16, depth 3) (`speed`);
# 2. d2ljax's real train step (dual-domain loss, Adam, EMA) for the full model at 256x256,
#    batch 8, float32 and bfloat16: patches/s (`train`);
# 3. the fixtures' parity errors under JAX's default (TF32) and highest matmul precision
#    (`parity`).
# Each part appends to OUT_DIR/log.txt and writes its JSON as it finishes, so a run cut off by
# its time limit still returns what it measured.
set -u
out=${1:?usage: gpu_check.sh OUT_DIR FIXTURE.npz...}
shift
mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.5  # leave room for PyTorch
log="$out/log.txt"
py=${PYTHON:-python3}
step() {  # one check, cut off after STEP_TIMEOUT seconds so that the later ones still run
  echo "== $*" | tee -a "$log"; timeout "${STEP_TIMEOUT:-150}" "$py" "$@" 2>&1 | tee -a "$log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv 2>&1 | tee -a "$log"
step -c "import jax, flax, optax, torch; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__, 'torch', torch.__version__)"
speed() {  # d2ljax vs PyTorch, same run, same GPU; first the cases no earlier run measured
  for args in "--models=64x4 --sizes=256 --dtype=bfloat16 --json=$out/speed_bf16.json" \
              "--models=64x4 --sizes=256,128 --json=$out/speed_f32.json" \
              "--models=16x3 --sizes=256,128 --json=$out/speed_small_f32.json" \
              "--models=64x4 --sizes=256 --batch=8 --json=$out/speed_f32_b8.json" \
              "--models=64x4 --sizes=256 --precision=highest --json=$out/speed_f32_highest.json"; do
    # shellcheck disable=SC2086  # $args is several words
    step -m benchmarks.model_speed --torch --repeats=10 --pause=0.05 $args
  done
}
parity() { step -m benchmarks.parity_errors "$@" --json="$out/parity.json"; }
train() {  # d2ljax's own train step
  for dtype in float32 bfloat16; do
    step -m benchmarks.train_speed --models=full --patch_size=256 --batch_size=8 --repeats=10 --dtype=$dtype --json="$out/train_speed_$dtype.json"
  done
}
for part in ${PARTS:-speed parity train}; do
  if [ "$part" = parity ]; then parity "$@"; else $part; fi
done
