#!/usr/bin/env bash
# Installs quantlab's build and test dependencies from Debian packages, idempotently.
# Usage: scripts/install-deps.sh [--tests] [--bench] [--interop] [--train] [--slurm] [--fuzz]   (needs root or sudo; does nothing if all are present)
# --bench adds the GEMM candidates bench/gemm_bench.cc compares against (oneDNN, BLIS; quantlab needs neither).
# --interop adds python3-pip (scripts/llama-cpp.sh downloads llama.cpp's source with `pip download`).
# --fuzz adds clang with its libFuzzer/sanitizer runtimes (scripts/fuzz.sh).
# --train adds bible-kjv (the King James Bible text + `bible` program): the corpus of scripts/train-default.sh.
# --slurm adds a single-node Slurm (slurmctld, slurmd, client tools, munge): scripts/slurm/test-local.sh.
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libarmadillo-dev libopenblas-dev liblapack-dev
      libhdf5-dev libsqlite3-dev libfmt-dev libspdlog-dev libhwy-dev
      libyaml-cpp-dev nlohmann-json3-dev libcli11-dev)
pkgs+=(libpcre2-dev)  # PCRE2: tokenizer pre-tokenizer regexes (\p{L}, \p{N})
for arg in "$@"; do
  if [[ "$arg" == "--tests" ]]; then
    pkgs+=(libgtest-dev libgmock-dev libbenchmark-dev sqlite3 hdf5-tools chromium)
  fi
  if [[ "$arg" == "--fuzz" ]]; then
    pkgs+=(clang libclang-rt-dev)
  fi
  if [[ "$arg" == "--bench" ]]; then
    pkgs+=(libbenchmark-dev libdnnl-dev libblis-dev)
  fi
  if [[ "$arg" == "--interop" ]]; then
    pkgs+=(python3-pip)
  fi
  if [[ "$arg" == "--train" ]]; then
    pkgs+=(bible-kjv bible-kjv-text)
  fi
  if [[ "$arg" == "--slurm" ]]; then
    pkgs+=(slurmctld slurmd slurm-client munge sqlite3)
  fi
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} == 0 )); then exit 0; fi
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
