#!/usr/bin/env bash
# Installs the pinned live peers (tests/reference/requirements-ci.txt) into a venv, for the `peer` tests.
# Usage: install_ci_peers.sh VENV_DIR   (idempotent: a venv that already has them is kept)
set -euo pipefail
venv=$1
req="$(dirname "${BASH_SOURCE[0]}")/requirements-ci.txt"
stamp="$venv/.qnext-peers-$(sha256sum "$req" | cut -c1-16)"
[ -f "$stamp" ] && exit 0
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" 2>/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
"$venv/bin/python" -c "import openai, qwen_agent.agents"
touch "$stamp"
echo "install_ci_peers: $(wc -l < "$req") pinned packages in $venv"
