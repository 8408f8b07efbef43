#!/usr/bin/env bash
# Training recipes compared at equal cost: each row trains D2LNet from scratch on colour QF 10
# (configs/bsds.py:color,10; the same seed and data) for as many steps as 720 s of training take
# it on a quiet 2-core machine: its step time from benchmarks/train_speed.py, measured for every
# row in one sitting (table in benchmarks/README.md), so the comparison does not depend on what
# else the machine does while the rows run. A cosine schedule (warmup 50 steps) ends each row
# annealed; no EMA (too slow for a short run). Each row's model is then evaluated at QF 10 on
# held-out photos (no training or benchmark set: those shipped with scikit-image, scikit-learn
# and matplotlib).
#
#   bash benchmarks/compare_recipes.sh OUT [ROW ...]
#
# OUT gets one workdir per row, heldout/ (the photos as PNG), ROW.json / ROW.md (evaluate.py)
# and summary.tsv (row, steps, CPU s, wall s, validation PSNR, held-out JPEG and model PSNR).
# Needs D2LJAX_DATA (BSDS500_train, BSDS500_val) and scikit-image, scikit-learn, matplotlib.
set -euo pipefail
out=${1:?usage: compare_recipes.sh OUT [ROW ...]}
shift
# ROW: steps (720 s / quiet step time) and overrides
declare -A rows=(
  [wf16_d3]="611"
  [wf24_d3]="324 --config.wf=24"
  [wf32_d3]="285 --config.wf=32"
  [wf16_d4]="593 --config.depth=4"
  [wf16_d3_p96]="303 --config.patch_size=96"
  [wf16_d3_lr2e-3]="611 --config.learning_rate=2e-3"
)
order=(wf16_d3 wf16_d4 wf24_d3 wf32_d3 wf16_d3_p96 wf16_d3_lr2e-3)
(( $# )) && order=("$@")
mkdir -p "$out"
python - "$out/heldout" <<'EOF'
import os, sys
from PIL import Image
from benchmarks import never_worse
folder = sys.argv[1]
os.makedirs(folder, exist_ok=True)
for name, image in never_worse.photos_for(never_worse.default_photos(), 3, 10**6).items():
    Image.fromarray(image).save(os.path.join(folder, os.path.splitext(name)[0] + ".png"))
EOF
for row in "${order[@]}"; do
  [[ -v rows[$row] ]] || { echo "error: no row $row (rows: ${order[*]})" >&2; exit 2; }
  read -r steps overrides <<< "${rows[$row]}"
  # shellcheck disable=SC2086
  python train.py --config=configs/bsds.py:color,10 --workdir="$out/$row" \
    --config.schedule=cosine --config.num_train_steps="$steps" --config.warmup_steps=50 \
    --config.ema_decay=0 --config.checkpoint_every_steps=100000 --config.val_every_steps=100 \
    --config.progress_bar=False $overrides
  python evaluate.py --dataset="$out/heldout" --mode=color --qf=10 --checkpoint="$out/$row" \
    --output="$out/$row.json" > /dev/null
  python - "$out" "$row" <<'EOF' >> "$out/summary.tsv"
import json, sys
out, row = sys.argv[1:]
session = [json.loads(line) for line in open(f"{out}/{row}/sessions.jsonl")][-1]
val = [m["val_psnr"] for m in map(json.loads, open(f"{out}/{row}/metrics.jsonl")) if "val_psnr" in m]
psnr = {r["method"]: r["psnr"] for r in json.load(open(f"{out}/{row}.json"))["results"]}
print(row, session["end_step"], session["cpu_s"], session["wall_s"], f"{val[-1]:.3f}", f"{psnr['jpeg']:.3f}",
      f"{psnr[row]:.3f}", sep="\t")
EOF
done
