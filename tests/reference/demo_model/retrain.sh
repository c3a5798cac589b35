#!/usr/bin/env bash
# Rebuilds the demo model from scratch (seeded): data -> tokenizer -> training -> golden data -> evaluation.
# Usage (from the repo root):  tests/reference/demo_model/retrain.sh [STEPS [STOP_AFTER]]
# Needs the pinned peers of tests/reference/requirements.txt in python3, and /usr/bin/python3 to run tool calls.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
WORK="$ROOT/build-demo"
STEPS="${1:-300}"        # length of the LR schedule
STOP="${2:-225}"         # the shipped model is the step-225 checkpoint of the 300-step schedule
cd "$ROOT"
python3 "$HERE/gen_data.py" --out "$WORK/data" --train 6000 --heldout 245 --seed 1 --export tests/data/demo/heldout_tasks.jsonl
python3 "$HERE/train_tokenizer.py" --data "$WORK/data" --out models/demo --vocab 4096
python3 "$HERE/train.py" --data "$WORK/data" --model-dir models/demo --work "$WORK/run" --steps "$STEPS" --batch 32 \
    --lr 3e-3 --warmup 15 --ckpt-every 25 --threads 1 --seed 0 --stop-after "$STOP"
python3 "$HERE/make_golden.py" --model models/demo --tasks tests/data/demo/heldout_tasks.jsonl \
    --out tests/data/demo/golden_hf.safetensors
python3 "$HERE/evaluate.py" --model models/demo --tasks tests/data/demo/heldout_tasks.jsonl --out "$WORK/eval.json"
