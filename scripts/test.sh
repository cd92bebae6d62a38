#!/usr/bin/env bash
# Installs the dependencies (Debian packages), builds quantlab with its tests and runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --tests
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DQL_BUILD_TESTS=ON >/dev/null
cmake --build build -j2
cd build && ctest --output-on-failure -j2 --timeout 600
