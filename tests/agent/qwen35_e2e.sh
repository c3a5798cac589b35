#!/usr/bin/env bash
# End to end on the Qwen3.5 family: make a tiny random qwen3_5 checkpoint with the 248k tokenizer and the
# official template, then run a scripted task whose first step must be an XML tool call (see task.json).
# Usage: qwen35_e2e.sh QNEXT TOKENIZER_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
qnext=$1 tokdir=$2 src=$3 work=$4
data="$src/tests/data/agent/qwen35"
rm -rf "$work" && mkdir -p "$work"
"$qnext" --quiet make-checkpoint --config "$data/config.json" --seed 5 --dtype bf16 --out "$work/model"
cp "$tokdir/tokenizer.json" "$work/model/"
cp "$src/model/templates/qwen35.jinja" "$work/model/chat_template.jinja"
cp "$data/task.json" "$data/tools.json" "$work/"
cd "$work"
"$qnext" --quiet info --model model | grep -q "qwen3_5_text (qwen3_5)"
"$qnext" --quiet run task.json --model model
