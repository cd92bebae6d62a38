#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (clang, ASan + UBSan) in build-fuzz/, replays every regression
# input of fuzz/regressions/<target>/ (each must pass), then fuzzes each target for SECONDS (default 60)
# from a seed corpus (tiny models written by ql_make_seeds, tests/data, experiments/, ../shared).
# Usage: scripts/fuzz.sh [SECONDS]   (SECONDS=0: regressions only). Prints executions per target.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
scripts/install-deps.sh --fuzz
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQL_FUZZ=ON -DQL_BUILD_TESTS=OFF \
      -DQL_BUILD_BENCH=OFF -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build build-fuzz -j2 --target ql_fuzz

seeds=build-fuzz/seeds
rm -rf "$seeds"
build-fuzz/ql_make_seeds "$seeds"
mkdir -p "$seeds"/{tokenizer_json,tokenizer_bin,experiment_yaml,scheme,window_records}
cp tests/data/tokenizer/*.json "$seeds/tokenizer_json/"
cp experiments/*.yaml "$seeds/experiment_yaml/"
if [[ -f ../shared/models/stories260K/tok512.bin ]]; then  # 2-byte prefix: vocab_size - 1 = 511
  { printf '\xff\x01'; cat ../shared/models/stories260K/tok512.bin; } > "$seeds/tokenizer_bin/tok512"
fi
# vocab_size 2 (prefix 1), max_token_length 1, tokens "a" and "b" with score 0
printf '\x01\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00a\x00\x00\x00\x00\x01\x00\x00\x00b' \
  > "$seeds/tokenizer_bin/tiny"
n=0
for s in int4:g128:asym int8:channel fp8_e4m3:noscale int4:g32:s=e8m0 mxfp4 mxfp4:g16:ceil nvfp4:ct nf4:dq \
         q4_k q6_k int3:b4x8:pct99.5 e3m4:tensor uint4:g64:mse int8:token W4A16 fp6_e2m3:g32:s=e4m3; do
  printf '%s' "$s" > "$seeds/scheme/s$((n++))"
done

export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
summary=()
for bin in build-fuzz/fuzz_*; do
  t=${bin#build-fuzz/fuzz_}
  reg=fuzz/regressions/$t
  if [[ -d "$reg" ]] && compgen -G "$reg/*" >/dev/null; then
    "$bin" -rss_limit_mb=2048 -timeout=20 "$reg"/* >"build-fuzz/$t.regressions.log" 2>&1 ||
      { tail -40 "build-fuzz/$t.regressions.log"; echo "fuzz: regression input of $t failed" >&2; exit 1; }
  fi
  if (( secs > 0 )); then
    corpus=build-fuzz/corpus/$t
    mkdir -p "$corpus"
    dirs=("$corpus" "$seeds/$t")  # the first directory receives the new inputs
    [[ -d "$reg" ]] && dirs+=("$reg")
    "$bin" "${dirs[@]}" -max_total_time="$secs" \
      -rss_limit_mb=2048 -timeout=20 -max_len=65536 -print_final_stats=1 -artifact_prefix="build-fuzz/$t-" \
      >"build-fuzz/$t.log" 2>&1 ||
      { tail -60 "build-fuzz/$t.log"; echo "fuzz: $t found a crash (input saved as build-fuzz/$t-*)" >&2; exit 1; }
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "build-fuzz/$t.log")
    summary+=("$t: ${execs:-?} executions in ${secs} s")
  fi
done
printf 'fuzz: %s\n' "${summary[@]:-regressions only}"
echo "fuzz: all targets passed"
