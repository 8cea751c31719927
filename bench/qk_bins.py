#!/usr/bin/env python3
"""The rows of `depass eval qk`'s qk_effects.csv binned by the size of the exact pattern change
(sum over the row's queries and keys of |dA|): how the first-order estimates fare as the change grows.
    python3 bench/qk_bins.py OUT_DIR/qk_effects.csv"""
import csv
import math
import sys


def pearson(a, b):
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    sab = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    saa = sum((x - ma) ** 2 for x in a)
    sbb = sum((y - mb) ** 2 for y in b)
    return sab / math.sqrt(saa * sbb) if saa > 0 and sbb > 0 else 0.0


rows = list(csv.DictReader(open(sys.argv[1])))
print("side   sum|dA| exact   rows   pattern err   r(first+gradient, exact)   err   r(first+frozen, exact)")
for side in ("query", "key", "both"):
    for lo, hi in ((0, 0.05), (0.05, 0.2), (0.2, 1), (1, math.inf)):
        b = [r for r in rows if r["side"] == side and lo <= float(r["pattern_exact"]) < hi]
        if len(b) < 3:
            continue
        g = [float(r["logit_first_grad"]) for r in b]
        f = [float(r["logit_first"]) for r in b]
        e = [float(r["logit_exact"]) for r in b]
        err = sum(abs(x - y) for x, y in zip(g, e)) / max(1e-30, sum(abs(y) for y in e))
        perr = sum(float(r["pattern_error"]) for r in b) / max(1e-30, sum(float(r["pattern_exact"]) for r in b))
        print(f"{side:6s} [{lo:g}, {hi:g})  {len(b):7d}   {perr:11.3f}   {pearson(g, e):24.3f}   {err:5.3f}   {pearson(f, e):22.3f}")
