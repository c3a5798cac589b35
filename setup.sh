#!/usr/bin/env bash
# Sets up a fresh Debian machine for qnext and builds it into ./build.
# Idempotent: installs only the Debian packages that are missing (one `apt-get update`, non-interactive),
# then configures (once) and builds incrementally. Options: QNEXT_BUILD_DIR (default build),
# QNEXT_CUDA (AUTO|ON|OFF, default AUTO), QNEXT_JOBS (default: nproc).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

packages=(
  g++ cmake ninja-build pkg-config git python3
  libboost-dev libboost-filesystem-dev libboost-program-options-dev libboost-thread-dev
  nlohmann-json3-dev libcli11-dev libre2-dev libgtest-dev libgmock-dev
  libseccomp-dev libutf8proc-dev libedit-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build="${QNEXT_BUILD_DIR:-build}"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQNEXT_CUDA="${QNEXT_CUDA:-AUTO}" >/dev/null
fi
cmake --build "$build" -j"${QNEXT_JOBS:-$(nproc)}"
