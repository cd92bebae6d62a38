#!/usr/bin/env bash
# The main job: installs the dependencies (Debian packages), builds quantlab, and runs the default
# sweep (experiments/default.yaml) on quantlab's own reference model (models/quantlab-tiny), ending
# with the comparison of every cell against the model's BF16 baseline. Re-running resumes: finished
# cells are skipped. Extra arguments go to `quantlab sweep` (e.g. --results DIR, --model PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DQL_BUILD_TESTS=OFF -DQL_BUILD_BENCH=OFF >/dev/null
cmake --build build -j2 --target quantlab
build/quantlab --version
build/quantlab sweep experiments/default.yaml "$@"
