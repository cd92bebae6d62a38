#!/usr/bin/env bash
# Builds llama.cpp (CPU only) from the llama-cpp-python source distribution into a cache directory and
# prints the directory holding llama-quantize, llama-perplexity and llama-imatrix on its last stdout line.
# Used as an independent oracle by the interop tests and for speed comparisons; idempotent (a finished
# build is reused). Cache: $QL_LLAMA_CPP_DIR, default ${XDG_CACHE_HOME:-$HOME/.cache}/quantlab/llama.cpp.
# Pin another release with QL_LLAMA_CPP_PYTHON_VERSION (default: the newest on PyPI at first run).
# --native builds a second copy tuned to this CPU (GGML_NATIVE=ON, e.g. AVX-512) into build-native/: a fair
# speed peer for bench/, never the interop oracle (its sums may differ from the portable build's).
set -euo pipefail

dir="${QL_LLAMA_CPP_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/quantlab/llama.cpp}"
targets=(llama-quantize llama-perplexity llama-imatrix)
build_dir=build
native=OFF
if [[ "${1:-}" == --native ]]; then build_dir=build-native; native=ON; fi
bin="$dir/$build_dir/bin"

built() {
  local t
  for t in "${targets[@]}"; do [[ -x "$bin/$t" ]] || return 1; done
  [[ -f "$dir/src/ggml/src/ggml-quants.c" ]]
}

if built; then
  echo "$bin"
  exit 0
fi

mkdir -p "$dir"
cd "$dir"

# 1. The sdist (--no-deps: nothing else is kept; its build back-end is fetched as a wheel only to read the
#    metadata: with --no-binary :all: pip would build that back-end and its own back-ends from source).
if [[ ! -d src ]]; then
  spec="llama-cpp-python${QL_LLAMA_CPP_PYTHON_VERSION:+==$QL_LLAMA_CPP_PYTHON_VERSION}"
  rm -rf sdist && mkdir sdist
  python3 -m pip download --no-deps --no-binary llama-cpp-python -d sdist "$spec" >&2
  tarball=$(ls sdist/llama_cpp_python-*.tar.gz | head -n1)
  rm -rf unpack && mkdir unpack
  tar -xzf "$tarball" -C unpack
  mv unpack/*/vendor/llama.cpp src
  basename "$tarball" > src/QL_SOURCE
  rm -rf unpack
fi

# 2. CPU-only build of the three tools (portable code unless --native, no network, no OpenMP so runs are
#    reproducible).
cmake -S src -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE="$native" -DGGML_OPENMP=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=ON \
  -DBUILD_SHARED_LIBS=OFF >&2
nice cmake --build "$build_dir" -j"${QL_LLAMA_CPP_JOBS:-2}" --target "${targets[@]}" >&2

built || { echo "llama-cpp.sh: build finished but $bin lacks ${targets[*]}" >&2; exit 1; }
echo "$bin"
