#!/usr/bin/env bash
# The measured time / peak-memory table of docs/models.md: random BF16 checkpoints of real
# shapes (bench_stream make), each run a process of its own with streamed weights.
#   bench/stream_table.sh BUILD_DIR MODELS_DIR [DTYPE] [model ...]
# MODELS_DIR/<model> is written from tests/data/configs/<model>/config.json when absent (the
# Llama-3.1-8B file is 16 GB). Prints one bench_stream line per run; the token level of
# Llama-3.1-8B at N = 64 (about 10 T multiply-adds) is left out unless DEPASS_BENCH_8B_64=1.
set -euo pipefail
build="$1"
models_dir="$2"
dtype="${3:-f32}"
shift $(( $# < 3 ? $# : 3 ))
here="$(cd "$(dirname "$0")" && pwd)"
shared="${DEPASS_SHARED_DIR:-$here/../tests/data}"
models=("$@")
((${#models[@]})) || models=(SmolLM2-135M Qwen2.5-0.5B Llama-3.2-1B Llama-3.1-8B)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"  # as the depass command sets it (README: threads)
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for m in "${models[@]}"; do
  dir="$models_dir/$m"
  [ -f "$dir/model.safetensors" ] || "$build/bench_stream" make "$shared/configs/$m/config.json" "$dir"
  for what in forward token; do
    for n in 16 64; do
      if [ "$m" = Llama-3.1-8B ] && [ "$what" = token ] && [ "$n" = 64 ] && [ "${DEPASS_BENCH_8B_64:-0}" != 1 ]; then
        continue
      fi
      for t in 1 2; do
        printf '%-14s ' "$m"
        "$build/bench_stream" run "$dir" --what "$what" --tokens "$n" --threads "$t" --dtype "$dtype"
      done
    done
  done
done
