#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz) with clang, ASan and UBSan in
# build-fuzz/, and runs each on its seed corpus (tests/fuzz/corpus/NAME, plus
# what earlier runs found in build-fuzz/corpus/NAME).
#   tools/fuzz.sh            each harness for 60 s, two at a time (what CI runs)
#   tools/fuzz.sh 300        each for 300 s
#   tools/fuzz.sh -runs=1000000   each for 10^6 executions
# Prints each harness's executions; a crash, a leak or a broken property
# leaves build-fuzz/crash-NAME-* and fails the script. Reproduce one with
# build-fuzz/tests/fuzz/NAME FILE; each becomes a seed in tests/fuzz/corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-60}
if [[ $limit == -runs=* ]]; then stop=$limit; else stop=-max_total_time=$limit; fi

if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang CXX=clang++ meson setup build-fuzz -Dfuzz=true -Dtests=disabled -Dbench=false \
    -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debugoptimized >/dev/null
fi
ninja -C build-fuzz fuzzers

export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# What LeakSanitizer may ignore, and why: tests/fuzz/lsan.supp.
export LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0

run_one() {
  local name=$1 stop=$2
  local found=build-fuzz/corpus/$name
  mkdir -p "$found"
  local log=build-fuzz/$name.log
  if build-fuzz/tests/fuzz/$name "$found" tests/fuzz/corpus/$name "$stop" -max_len=65536 \
      -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 \
      -artifact_prefix=build-fuzz/crash-$name- >"$log" 2>&1; then
    local runs
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz: $name: $runs executions, no finding"
  else
    echo "fuzz: $name FAILED (build-fuzz/$name.log):"
    grep -E "ERROR|SUMMARY|==[0-9]+==|runtime error|Test unit written" "$log" | head -20
    return 1
  fi
}
export -f run_one
status=0
printf '%s\n' fuzz_pickle fuzz_weights fuzz_whip_headers fuzz_sentences fuzz_offer_sdp |
  xargs -P 2 -I{} bash -c 'run_one "$1" "$2"' _ {} "$stop" || status=1
exit $status
