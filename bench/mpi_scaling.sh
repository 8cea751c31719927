#!/usr/bin/env bash
# One `depass attribute --level neuron` split over 1 and 2 MPI ranks (one OpenMP thread each) on a
# random model of the stories15M shape (D 288, L 6, H 6, I 768, V 32000; written by
# `bench_stream make`), N random ids (BOS first): the median wall time of each, their ratio, and the
# bytes each rank passes to the share rules' all-reduces per MLP block (the only communication of
# the pass besides the final gather on rank 0).
#   bench/mpi_scaling.sh BUILD_DIR [N] [RUNS] [LAYER] [RULE]    (defaults: 64, 5, 0, softmax)
# Each run is a new process (or two): loading the model, the forward pass (every rank runs it), the
# decomposed pass, the gather and writing the file are inside the time.
set -euo pipefail
build="$(cd "$1" && pwd)"
n="${2:-64}"
runs="${3:-5}"
layer="${4:-0}"
rule="${5:-softmax}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$build/bench_stream" make "$(dirname "$0")/stories15M_config.json" "$work/model" >/dev/null
mpirun=(mpirun --oversubscribe)
[ "$(id -u)" -eq 0 ] && mpirun+=(--allow-run-as-root)
ids=$(python3 -c "import random; r = random.Random($n); print(','.join(['1'] + [str(r.randrange(3, 32000)) for _ in range($n - 1)]))")
args=(attribute --model "$work/model" --ids "$ids" --level neuron --layer "$layer" --rule "$rule")
echo "# $(date -u +%FT%TZ) $(nproc --all) cores, load $(cut -d' ' -f1-3 /proc/loadavg); neuron level, layer $layer, rule $rule, N $n, OMP_NUM_THREADS=1"
export OMP_NUM_THREADS=1
declare -A med
for p in 1 2; do
  times=()
  for ((i = 0; i < runs; ++i)); do
    t0=$(date +%s.%N)
    "${mpirun[@]}" -np "$p" "$build/depass" "${args[@]}" --out "$work/out$p.safetensors" > "$work/stdout$p" 2> "$work/stderr$p"
    t1=$(date +%s.%N)
    times+=("$(python3 -c "print($t1 - $t0)")")
  done
  med[$p]=$(python3 -c "import statistics, sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "${times[@]}")
  echo "ranks $p: median ${med[$p]} s of $runs runs (${times[*]})"
  grep -h "share rules\|decomposing from" "$work/stderr$p" | sed 's/^/  /' || true
done
python3 -c "print(f'1 rank / 2 ranks: {float(\"${med[1]}\") / float(\"${med[2]}\"):.2f}x')"
# The two runs' attributions against each other (their largest relative difference).
python3 - "$work/out1.safetensors" "$work/out2.safetensors" <<'PY'
import array, json, struct, sys
def read(path):
    data = open(path, 'rb').read()
    n = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == '__metadata__' or v['dtype'] not in ('F32', 'F64'):
            continue
        a, b = v['data_offsets']
        out[k] = array.array('f' if v['dtype'] == 'F32' else 'd', data[8 + n + a: 8 + n + b])
    return out
x, y = read(sys.argv[1]), read(sys.argv[2])
for k in sorted(x):
    scale = max(abs(v) for v in x[k]) or 1e-30
    d = max(abs(p - q) for p, q in zip(x[k], y[k])) / scale
    print(f"  {k}: max |1 rank - 2 ranks| / max |1 rank| = {d:.3e}")
PY
