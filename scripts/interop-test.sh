#!/usr/bin/env bash
# Interop tests against llama.cpp (ctest LABEL interop, not part of the unit suite scripts/test.sh runs):
# builds llama.cpp with scripts/llama-cpp.sh if its cache is empty (about 8 CPU-minutes), configures a
# separate build directory (build-interop) that links ggml, and runs `ctest -L interop`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --tests --interop
bin=$(scripts/llama-cpp.sh | tail -n1)
llama_dir=$(cd "$bin/../.." && pwd)
cmake -S . -B build-interop -DCMAKE_BUILD_TYPE=Release -DQL_BUILD_TESTS=ON -DQL_BUILD_BENCH=OFF \
  -DQL_LLAMA_CPP_DIR="$llama_dir" >/dev/null
cmake --build build-interop -j2 --target quantlab ql_interop_test
cd build-interop && ctest -L interop --output-on-failure -j1 --timeout 1800
