#!/usr/bin/env bash
# One training session on the lent GPU machine, start to finish, in one `device` call:
#   bash tools/device/device_train.sh OUT_DIR CONFIG [--config.FIELD=VALUE ...]
#   e.g. bash tools/device/device_train.sh "$OUT" configs/gpu.py:color --config.time_budget_s=330
# after tools/device/device_prepare.sh has filled .device/ here (carry: [".device"]). It installs
# the carried wheels offline, trains with the grain pipeline until the time budget, exports the
# EMA and the trained parameters as model folders, evaluates the EMA model with evaluate.py
# (gray: classic5 + LIVE1, colour: LIVE1; QF 10/20/30, EVAL_QF to change; skipped when
# the sets were not carried), and leaves in
# OUT_DIR what the device tool brings back (at most 8 files of at most 16 MB):
#   log.txt                 everything printed, written as it goes (survives a cut-off run)
#   summary.json            patches/s, step time, TFLOP/s and share of the bf16 matrix peak,
#                           input wait per step, validation PSNR by minute (train_summary.py)
#   eval.json               evaluate.py's report (its table is in log.txt)
#   model.tar.gz.part-NN    model/ (EMA) and model_trained/ (model folders), metrics.jsonl,
#                           config.json, model.json and tensorboard/, split at 15 MiB:
#                           `cat model.tar.gz.part-* | tar xz`
# Set PYTHON for another interpreter, WORKDIR for the training folder (default /tmp/d2ljax_run).
set -uo pipefail
out=${1:?usage: device_train.sh OUT_DIR CONFIG [--config.FIELD=VALUE ...]}
config=${2:?usage: device_train.sh OUT_DIR CONFIG [--config.FIELD=VALUE ...]}
shift 2
cd "$(dirname "$0")/../.."
mkdir -p "$out"
log="$out/log.txt"
py=${PYTHON:-python3}
work=${WORKDIR:-/tmp/d2ljax_run}
mode=$([[ "$config" == *:gray* ]] && echo gray || echo color)
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" D2LJAX_DATA="$PWD/.device/data/train"
say() { echo "== $(date +%T) $*" | tee -a "$log"; }
run() { "$@" 2>&1 | tr '\r' '\n' | tee -a "$log"; return "${PIPESTATUS[0]}"; }

say "install the carried wheels"
run "$py" -m pip install -q --disable-pip-version-check --no-index --find-links .device/wheels \
  grain ml_collections || exit 1
run nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
run "$py" -c "import jax, flax, optax, grain; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'grain', grain.__version__)"

say "train $config $*"
run "$py" train.py --config="$config" --workdir="$work" --config.input_pipeline=grain "$@"
say "train exit status $?"

say "summary"
run "$py" tools/device/train_summary.py "$work" --json "$out/summary.json"
rm -rf "$work/model" "$work/model_trained"
run "$py" -m d2ljax export "$work" "$work/model" --weights ema
run "$py" -m d2ljax export "$work" "$work/model_trained" --weights trained
say "pack"
(cd "$work" && tar -czf - model model_trained metrics.jsonl config.json model.json tensorboard) \
  | split -b 15m -d - "$out/model.tar.gz.part-"

say "evaluate"
sets=.device/data/benchmarks/LIVE1_color
[ "$mode" = gray ] && sets=.device/data/benchmarks/classic5,$sets
if [ -d .device/data/benchmarks/LIVE1_color ]; then
  run "$py" evaluate.py --dataset="$sets" --mode="$mode" --qf="${EVAL_QF:-10,20,30}" \
    --checkpoint="$work/model" --output="$out/eval.json"
  rm -f "$out/eval.md"  # the table is in log.txt: one file fewer to bring back
else
  say "no benchmark sets carried (device_prepare.sh with EVAL_SETS=0): evaluate the model here"
fi

say "outputs"
run ls -l "$out"
files=$(find "$out" -type f | wc -l)
big=$(find "$out" -type f -size +16M | wc -l)
[ "$files" -le 8 ] && [ "$big" -eq 0 ] || say "WARNING: $files files, $big over 16 MB: the device tool brings back at most 8 of at most 16 MB"
