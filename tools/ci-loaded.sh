#!/usr/bin/env bash
# The README's test command with one CPU kept busy beside it, as on a shared CI
# runner where a second job runs: every timing in the suite must hold when the
# compute budget shrinks. Run it before every hand-off.
#
#   tools/ci-loaded.sh [BUILD_DIR] [meson test arguments…]
#
# The busy job (sha256sum of /dev/zero, one core) stops with the tests, and
# after TALKER_LOADED_LIMIT_S seconds (default 5400) whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
shift || true
limit="${TALKER_LOADED_LIMIT_S:-5400}"
[ -d "$build" ] || { echo "ci-loaded: no build folder '$build' (meson setup $build)" >&2; exit 2; }

timeout "$limit" sha256sum /dev/zero >/dev/null 2>&1 &
busy=$!
trap 'kill $busy 2>/dev/null || true' EXIT
echo "ci-loaded: one core busy (pid $busy) beside meson test"
start=$(date +%s)
status=0
timeout "$limit" meson test -C "$build" --print-errorlogs --logbase testlog-loaded "$@" || status=$?
echo "ci-loaded: $(( $(date +%s) - start )) s with one core busy, exit $status"
exit $status
