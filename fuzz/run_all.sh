#!/usr/bin/env bash
# Fuzzes every harness for SECONDS each, one after another, at the lowest CPU priority.
#   fuzz/run_all.sh SECONDS [libFuzzer options...]
# Each run's output goes to $DEPASS_FUZZ_WORK/NAME.log (default build-fuzz/fuzz-work/); the
# last lines (executions, coverage) are printed. Exit status: 1 when any harness found something.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
if [ $# -lt 1 ]; then
  echo "usage: $0 SECONDS [libFuzzer options...]" >&2
  exit 2
fi
seconds="$1"
shift
work="${DEPASS_FUZZ_WORK:-$repo/build-fuzz/fuzz-work}"
mkdir -p "$work"
status=0
for src in "$here"/fuzz_*.cpp; do
  name="$(basename "$src" .cpp)"
  name="${name#fuzz_}"
  [ "$name" = support ] && continue
  log="$work/$name.log"
  if nice -n 19 bash "$here/run.sh" "$name" "$seconds" "$@" >"$log" 2>&1; then
    verdict=ok
  else
    verdict="FINDING (see $log)"
    status=1
  fi
  stats="$(grep -E '^(#[0-9]+.*(DONE|cov:))' "$log" | tail -1)"
  execs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')"
  printf '%-20s %s  execs %s  %s\n' "$name" "$verdict" "${execs:-?}" "$stats"
done
exit $status
