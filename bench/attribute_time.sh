#!/usr/bin/env bash
# Whole-process time of `depass attribute --level token` on a random model of the stories15M shape
# (D 288, L 6, H 6, I 768, V 32000; BF16 weights written by `bench_stream make`), N = 64 and 128
# random ids (BOS first), against the paper's code on the same machine: 17.3 s and 75.9 s.
#   bench/attribute_time.sh BUILD_DIR [RUNS]     (RUNS per N, default 7; the median is printed)
# Each run is a new process: loading the model, the forward pass, the decomposed pass, the logit
# attribution and writing the output file are all inside the time.
set -euo pipefail
build="$(cd "$1" && pwd)"
runs="${2:-7}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$build/bench_stream" make "$(dirname "$0")/stories15M_config.json" "$work/model" >/dev/null
echo "# $(date -u +%FT%TZ) $(nproc --all) cores, load $(cut -d' ' -f1-3 /proc/loadavg), threads ${OMP_NUM_THREADS:-all}"
"$build/depass" attribute --help >/dev/null
for n in 64 128; do
  ids=$(python3 -c "import random; r = random.Random($n); print(','.join(['1'] + [str(r.randrange(3, 32000)) for _ in range($n - 1)]))")
  times=()
  for ((i = 0; i < runs; ++i)); do
    t0=$(date +%s.%N)
    "$build/depass" attribute --model "$work/model" --ids "$ids" --level token --out "$work/out.safetensors" >/dev/null 2>&1
    t1=$(date +%s.%N)
    times+=("$(python3 -c "print($t1 - $t0)")")
  done
  python3 - "$n" "${times[@]}" <<'PY'
import statistics, sys
n = int(sys.argv[1]); t = sorted(float(x) for x in sys.argv[2:])
paper = {64: 17.3, 128: 75.9}[n]
med = statistics.median(t)
print(f"N {n:4d}: median {med:.3f} s of {len(t)} runs (min {t[0]:.3f}, max {t[-1]:.3f}); "
      f"paper's code {paper} s: {paper / med:.0f}x faster")
PY
done
