#!/usr/bin/env bash
# Runs one fuzz harness.
#   fuzz/run.sh NAME SECONDS [libFuzzer options...]   fuzz for SECONDS from the seeds
#   fuzz/run.sh NAME regress                          run every seed and kept finding once
# NAME is the reader: safetensors, gguf, npy, ... (the harness is fuzz_NAME).
# The binaries are looked for in $DEPASS_FUZZ_BIN_DIR (default build-fuzz/fuzz); new
# inputs and crash files go to $DEPASS_FUZZ_WORK/NAME (default build-fuzz/fuzz-work/NAME),
# never into the committed corpus. Limits: 10 s per input, 256 MB per allocation, 2 GB RSS.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
if [ $# -lt 2 ]; then
  echo "usage: $0 NAME SECONDS|regress [libFuzzer options...]" >&2
  exit 2
fi
name="$1"
mode="$2"
shift 2
bin="${DEPASS_FUZZ_BIN_DIR:-$repo/build-fuzz/fuzz}/fuzz_$name"
if [ ! -x "$bin" ]; then
  echo "run.sh: no harness $bin (configure with -DDEPASS_FUZZ=ON, see fuzz/README.md)" >&2
  exit 2
fi
limits=(-timeout=10 -malloc_limit_mb=256 -rss_limit_mb=2048)
dict=()
[ -f "$here/dict/$name.dict" ] && dict=("-dict=$here/dict/$name.dict")

if [ "$mode" = regress ]; then
  inputs=()
  for d in "$here/corpus/$name" "$here/regress/$name"; do
    [ -d "$d" ] || continue
    while IFS= read -r -d '' f; do inputs+=("$f"); done < <(find "$d" -type f ! -name '*.md' -print0 | sort -z)
  done
  if ((${#inputs[@]} == 0)); then
    echo "run.sh: no inputs for $name" >&2
    exit 1
  fi
  echo "fuzz_$name: running ${#inputs[@]} inputs once"
  exec "$bin" "${limits[@]}" "$@" "${inputs[@]}"
fi

work="${DEPASS_FUZZ_WORK:-$repo/build-fuzz/fuzz-work}/$name"
mkdir -p "$work/corpus"
# The first corpus directory receives the new inputs; the committed seeds are only read.
exec "$bin" "${limits[@]}" "${dict[@]}" -max_total_time="$mode" -print_final_stats=1 \
  -artifact_prefix="$work/" "$@" "$work/corpus" "$here/corpus/$name"
