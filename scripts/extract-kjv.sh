#!/usr/bin/env bash
# Extracts quantlab's training corpus from the Debian package bible-kjv (King James Version, public domain)
# and splits it by chapter: every 20th chapter in canonical order (chapters 20, 40, ..., 1180 of 1189,
# 59 chapters, ~5%) is held out, the rest is training text. Whole chapters, so the two never overlap.
# Output: OUT/train.txt, OUT/heldout.txt (one verse per line without its reference, a blank line between
# chapters), and OUT/calibration.txt: the training chapters 5, 15, 25, ... (119 chapters, a copy of ~10% of
# the training text, never held-out text) for the calibrated algorithms and QAT.
# Usage: scripts/extract-kjv.sh OUT_DIR
set -euo pipefail
out="${1:?usage: scripts/extract-kjv.sh OUT_DIR}"
command -v bible >/dev/null || { echo "extract-kjv: the 'bible' program is missing: scripts/install-deps.sh --train" >&2; exit 1; }
mkdir -p "$out"
# `bible -f` prints "Ge1:1 In the beginning ..." for every verse from Genesis 1:1 to Revelation 22:21.
bible -f "Gen1:1-Rev22:21" | awk -v train="$out/train.txt" -v held="$out/heldout.txt" -v calib="$out/calibration.txt" '
  {
    ref = $1
    key = ref; sub(/:[0-9]+$/, "", key)          # "Ge1" : book + chapter
    if (key != last) {
      if (chapter > 0) print "" > (chapter % 20 == 0 ? held : train)
      if (chapter > 0 && chapter % 10 == 5) print "" > calib
      chapter++; last = key
    }
    text = substr($0, length(ref) + 2)
    print text > (chapter % 20 == 0 ? held : train)
    if (chapter % 10 == 5) print text > calib
  }
  END { print "" > (chapter % 20 == 0 ? held : train); if (chapter % 10 == 5) print "" > calib; printf "extract-kjv: %d chapters\n", chapter > "/dev/stderr" }'
wc -c "$out/train.txt" "$out/heldout.txt" "$out/calibration.txt" >&2
