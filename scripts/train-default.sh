#!/usr/bin/env bash
# Reproduces quantlab's reference model models/quantlab-tiny from scratch with nothing but this repo and
# Debian packages: installs bible-kjv, extracts and splits the corpus, builds quantlab, trains the byte-level
# BPE tokenizer and the model (models/quantlab-tiny/train.yaml), and copies the result into models/quantlab-tiny/.
# Usage: scripts/train-default.sh [--resume] [--max-minutes M] [other `quantlab train` flags]
# Work files (corpus, checkpoint/, learning curve) live in build/train-default/ ; --resume continues there.
set -euo pipefail
cd "$(dirname "$0")/.."
work=build/train-default
scripts/install-deps.sh --train
if [[ ! -x build/quantlab ]]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)" --target quantlab
fi
scripts/extract-kjv.sh "$work/corpus"
build/quantlab train --config models/quantlab-tiny/train.yaml \
  --train-text "$work/corpus/train.txt" --heldout-text "$work/corpus/heldout.txt" --out "$work/out" "$@"
dst=models/quantlab-tiny
cp "$work/out/config.json" "$work/out/model.safetensors" "$work/out/tokenizer.json" "$work/out/learning_curve.csv" "$dst/"
cp "$work/corpus/heldout.txt" "$dst/heldout.txt"
cp "$work/corpus/calibration.txt" "$dst/calibration.txt"
echo "train-default: model written to $dst (update $dst/README.md with the numbers above)"
