#!/usr/bin/env python3
"""Projected time and memory of a neuron-level `depass attribute` split over P MPI ranks
(docs/scaling.md). Every input is a command-line option; the defaults are the Llama-3.1-8B shape,
N = 128 tokens in float, the cut after block 0 (31 blocks to go), and the per-core rate measured by
bench/mpi_scaling.sh on the stories15M shape.

  T(P)   = T_fwd + W / (P r) + B (3 N alpha ceil(log2 P) + 2 (P - 1) / P * 3 N I s / bw) + T_gather
  W      = M N B f_row,  M = I + 1,  f_row = 2 (D Hkv Dh + H Dh D + 2 D I) + H Dh (N + 1)
  T_gather = (P - 1) / P * M N D s / bw           (the final components to rank 0)
  memory per rank = weights + trace + ceil(M N / P) (3 D + Hkv Dh + H Dh) s, plus on rank 0
                    the gathered components M N D s
"""
import argparse
import math

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--D", type=int, default=4096)
p.add_argument("--L", type=int, default=32)
p.add_argument("--H", type=int, default=32)
p.add_argument("--Hkv", type=int, default=8)
p.add_argument("--Dh", type=int, default=128)
p.add_argument("--I", type=int, default=14336)
p.add_argument("--V", type=int, default=128256)
p.add_argument("--N", type=int, default=128)
p.add_argument("--layer", type=int, default=0, help="neuron level of this block (cut after it)")
p.add_argument("--rate", type=float, default=31.7e9, help="FLOP/s of one rank (one core), measured")
p.add_argument("--bw", type=float, default=12.5e9, help="network bytes/s per rank (100 Gb/s)")
p.add_argument("--alpha", type=float, default=5e-6, help="latency of one all-reduce step, s")
p.add_argument("--scalar", type=int, default=4)
a = p.parse_args()

D, L, H, Hkv, Dh, I, V, N, s = a.D, a.L, a.H, a.Hkv, a.Dh, a.I, a.V, a.N, a.scalar
M = I + 1
B = L - a.layer - 1
f_row = 2 * (D * Hkv * Dh + H * Dh * D + 2 * D * I) + H * Dh * (N + 1)
W = M * N * B * f_row
weights = s * (L * (D * (H * Dh + 2 * Hkv * Dh) + H * Dh * D + 3 * D * I + 2 * D) + 2 * V * D + D)
trace = s * N * (L * (10 * D + 3 * I + H * N) + V)
fwd = 2 * N * (L * (D * (H * Dh + 2 * Hkv * Dh) + H * Dh * D + 3 * D * I) + V * D) / a.rate
block_bytes = 3 * N * I * s  # per MLP block, per rank: the softmax rule's three vectors per position
print(f"shape D {D} L {L} H {H}/{Hkv} Dh {Dh} I {I} V {V}; neuron level of block {a.layer}: M = {M} components, "
      f"N = {N}, {B} blocks to go, {M * N} rows")
print(f"f_row = {f_row / 1e6:.1f} MFLOP per row per block; W = {W:.3e} FLOP; rate {a.rate / 1e9:.1f} GFLOP/s "
      f"per rank; network {a.bw / 1e9:.1f} GB/s, {a.alpha * 1e6:.0f} us per step")
print(f"all-reduced per rank: {block_bytes / 2**20:.1f} MiB per MLP block, {B * block_bytes / 2**30:.2f} GiB per pass")
print(f"weights {weights / 2**30:.1f} GiB (resident, f{8 * s}), trace {trace / 2**30:.2f} GiB, forward {fwd:.1f} s")
print()
print(f"{'P':>5} {'compute':>12} {'all-reduce':>11} {'gather':>8} {'total':>12} {'comm %':>7} "
      f"{'state/rank GiB':>15} {'rank 0 GiB':>11} {'other GiB':>10}")
for P in (1, 8, 16, 32, 64, 128, 256):
    comp = W / (P * a.rate)
    comm = 0.0 if P == 1 else B * (3 * N * a.alpha * math.ceil(math.log2(P)) + 2 * (P - 1) / P * block_bytes / a.bw)
    gather = (P - 1) / P * M * N * D * s / a.bw
    total = fwd + comp + comm + gather
    state = math.ceil(M * N / P) * (3 * D + Hkv * Dh + H * Dh) * s
    gathered = M * N * D * s
    hours = lambda t: f"{t / 3600:.2f} h" if t >= 3600 else f"{t:.0f} s"
    print(f"{P:>5} {hours(comp):>12} {comm:>10.1f}s {gather:>7.1f}s {hours(total):>12} "
          f"{100 * (comm + gather) / total:>6.2f}% {state / 2**30:>15.1f} "
          f"{(weights + trace + state + gathered) / 2**30:>11.1f} {(weights + trace + state) / 2**30:>10.1f}")
