#!/usr/bin/env bash
# The GPU figures of docs/measurements.md in one go.
# A 5-minute `fast` run on Fashion-MNIST and its FID, `gankit bench` per preset,
# one GPU under torchrun vs none, and --compile on vs off. Writes JSON (and the run's metrics and
# last grid) to $OUT (default benchmarks/results/gpu). Needs Fashion-MNIST where gankit looks
# (`gankit datasets`; e.g. GANKIT_DATA=DIR holding DIR/fashion-mnist/*.gz). About 9 minutes on an H200.
#
#   bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-benchmarks/results/gpu}
RUNS=${RUNS:-$(mktemp -d)}
PY=${PYTHON:-python3}
DEV=${DEVICE:-cuda} MINUTES=${MINUTES:-5} STEPS=${STEPS:-600} SECONDS_PER_TURN=${SECONDS_PER_TURN:-2}
LOG=$((STEPS / 6))
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
gankit() { "$PY" -m gankit "$@"; }
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"

# 1. `fast` for at most 5 minutes, then its FID on gankit's Fashion-MNIST classifier features
gankit train --preset fast --device $DEV --max-minutes $MINUTES --out "$RUNS/fast5" -q --tensorboard off
gankit eval "$RUNS/fast5" --device $DEV --json "$OUT/fast5-eval.json"
cp "$RUNS/fast5/metrics.jsonl" "$OUT/fast5-metrics.jsonl"
cp "$(ls "$RUNS"/fast5/samples/*.png | tail -1)" "$OUT/fast5-last-grid.png"

# 2. speed per preset against the plain PyTorch loop
gankit bench --device $DEV --dataset fashion-mnist --presets fast,dcgan,dcgan-small,mlp-gan --seconds $SECONDS_PER_TURN --rounds 2 \
    --json "$OUT/bench-cuda.json"

# 3. one GPU under torchrun (DDP) vs the same run without it: images/s after the first log line
for mode in plain ddp; do
  launch=(gankit); [ $mode = ddp ] && launch=("$PY" -m torch.distributed.run --nproc_per_node 1 -m gankit)
  "${launch[@]}" train --preset fast --device $DEV --steps $STEPS --log-every $LOG --out "$RUNS/$mode" -q \
      --tensorboard off --report false --sample-every 10000 --sample-every-early 10000
done
"$PY" - "$RUNS" "$OUT/ddp.json" "$LOG" <<'PY'
import json, statistics, sys
runs, out, log = sys.argv[1], sys.argv[2], int(sys.argv[3])
rate = {m: statistics.median(r["images_per_s"] for r in map(json.loads, open(f"{runs}/{m}/metrics.jsonl"))
                             if "images_per_s" in r and r["step"] > log) for m in ("plain", "ddp")}
rate["ddp_over_plain"] = round(rate["ddp"] / rate["plain"], 3)
json.dump(rate, open(out, "w"), indent=1); print(rate)
PY

# 4. --compile on vs off
gankit bench --device $DEV --dataset fashion-mnist --presets fast --compile --seconds $SECONDS_PER_TURN --rounds 2 \
    --json "$OUT/bench-cuda-compile.json"
