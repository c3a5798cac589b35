#!/usr/bin/env bash
# qnext serve end to end with real clients: starts `qnext serve` on a free loopback port with the demo model, then
#   tasks: runs the CI example tasks through qnext's own remote backend (`qnext run --backend openai`) against it:
#          every check must pass, and the second step of hello-agent must be served from the kept state;
#   peers: runs the live peer clients (tests/reference/serve_*.py: the openai client, Qwen-Agent) with PYTHON
#          ($QNEXT_PEER_PYTHON overrides it); exits 77 (skipped) when that Python lacks the pinned peers
#          (tests/reference/install_ci_peers.sh installs them; .ci/run does);
# then stops the server with SIGTERM: it must exit 0 promptly.
# Usage: serve_e2e.sh QNEXT SOURCE_DIR WORK_DIR tasks|peers [PYTHON]
set -euo pipefail
qnext=$1 src=$2 work=$3 mode=$4 python=${QNEXT_PEER_PYTHON:-${5:-}}
if [ "$mode" = peers ]; then
  if [ -z "$python" ] || [ ! -x "$python" ] || ! "$python" -c "import openai, qwen_agent.agents" 2>/dev/null; then
    echo "serve_e2e: SKIPPED: no Python with the pinned peers at '${python}' (run tests/reference/install_ci_peers.sh)"
    exit 77
  fi
fi
rm -rf "$work" && mkdir -p "$work"
log="$work/serve.log"
"$qnext" --quiet serve --port 0 --parallel 2 --ctx 4096 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
port=""
for _ in $(seq 1 300); do
  port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  [ -n "$port" ] && break
  kill -0 $pid 2>/dev/null || { cat "$log"; echo "serve_e2e: the server exited"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$log"; echo "serve_e2e: the server did not start"; exit 1; }
base="http://127.0.0.1:$port/v1"
echo "serve_e2e: server on $base"

[ "$mode" = tasks ] && for task in hello-agent arithmetic compute-and-save reverse-thinking; do
  out="$work/$task.out"
  if ! "$qnext" --quiet run "$src/configs/tasks/$task.json" --backend openai --base-url "$base" --remote-model demo \
       >"$out" 2>&1; then
    cat "$out"; echo "serve_e2e: task $task failed through the server"; exit 1
  fi
  echo "serve_e2e: task $task passed through the server"
done
if [ "$mode" = tasks ]; then
  grep -Eq '^\[step 1\].*reused [1-9][0-9]+' "$work/hello-agent.out" ||
    { cat "$work/hello-agent.out"; echo "serve_e2e: step 1 of hello-agent was not served from the kept state"; exit 1; }
fi

if [ "$mode" = peers ]; then
  for script in "$src"/tests/reference/serve_*.py; do
    "$python" "$script" --base-url "$base" --model demo || { echo "serve_e2e: $(basename "$script") failed"; exit 1; }
  done
fi

kill -TERM $pid
for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then echo "serve_e2e: the server did not stop within 10 s of SIGTERM"; exit 1; fi
trap - EXIT
wait $pid || { cat "$log"; echo "serve_e2e: the server exited with status $?"; exit 1; }
grep -q "SIGTERM, stopping" "$log"
echo "serve_e2e: server stopped cleanly"
