#!/usr/bin/env bash
# Rebuilds the demo model from scratch (seeded): data -> tokenizer -> training -> golden data -> evaluation.
# Usage (from the repo root):  tests/reference/demo_model/retrain.sh [STEPS [STOP_AFTER]]
# Needs the pinned peers of tests/reference/requirements.txt in python3, and /usr/bin/python3 to run tool calls.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
WORK="$ROOT/build-demo"
STEPS="${1:-3500}"       # length of the LR schedule
STOP="${2:-$STEPS}"      # stop early (the schedule still spans STEPS)
cd "$ROOT"
python3 "$HERE/gen_data.py" --out "$WORK/data" --train 60000 --heldout 245 --practice 20000 --seed 1 --export tests/data/demo/heldout_tasks.jsonl
python3 "$HERE/train_tokenizer.py" --data "$WORK/data" --out models/demo --vocab 4096
python3 "$HERE/train.py" --data "$WORK/data" --model-dir models/demo --work "$WORK/run" --steps "$STEPS" --batch 32 \
    --lr 3e-3 --warmup 15 --ckpt-every 100 --threads 2 --seed 0 --stop-after "$STOP"
python3 "$HERE/make_golden.py" --model models/demo --tasks tests/data/demo/heldout_tasks.jsonl \
    --out tests/data/demo/golden_hf.safetensors
# MTP acceptance (HF engine); behaviour through the real stack (C++ engine, sandboxed tools) needs build/qnext.
python3 "$HERE/evaluate.py" --model models/demo --tasks tests/data/demo/heldout_tasks.jsonl --per-family 2 --out "$WORK/eval.json"
if [ -x build/qnext ]; then
    python3 "$HERE/run_heldout.py" --qnext build/qnext --model models/demo --out "$WORK/heldout_qnext.json"
fi
