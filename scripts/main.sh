#!/usr/bin/env bash
# Installs the dependencies (Debian packages), builds quantlab and runs its main job.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DQL_BUILD_TESTS=OFF -DQL_BUILD_BENCH=OFF >/dev/null
cmake --build build -j2 --target quantlab
build/quantlab --version
