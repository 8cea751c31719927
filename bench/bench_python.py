#!/usr/bin/env python3
"""bench_python -- what the Python module costs on top of the library, on the shipped model.

    PYTHONPATH=build/python python3 bench/bench_python.py [--reps 100] [--rounds 7] [--cli build/depass]

Measured in one run, rounds alternating so that all see the same machine load, medians printed:
  import       `python3 -c "import depass"` in a fresh process, against `python3 -c pass` (the
               interpreter's start) and `python3 -c "import numpy"` (depass loads numpy on the first
               array it hands over)
  per call     REPS calls of depass.attribute(model, prompt ids) from Python (argument conversion,
               the memory check, the result object) against REPS calls of the library's attribute()
               in a C++ loop inside the module (depass._depass._library_seconds), back to back, in
               5 x ROUNDS pairs; the median ratio is the module's cost; the bar is <= 1.05
  a whole job  Python: load + attribute + save, in-process, against one CLI process doing the same
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=100, help="calls per batch")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--model", default=os.path.join(ROOT, "weights", "stories260K.bin"))
    ap.add_argument("--prompt", default="Once upon a time")
    ap.add_argument("--level", default="token")
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "depass"))
    a = ap.parse_args()

    import depass
    from depass import _depass

    model = depass.load_model(a.model)
    ids = model.tokenize(a.prompt)
    env = dict(os.environ)
    py = sys.executable
    out = tempfile.mkdtemp(prefix="bench_python_")
    cli_cmd = [a.cli, "attribute", "-m", a.model, "--prompt", a.prompt, "--level", a.level, "--out",
               os.path.join(out, "cli.safetensors"), "-q"]

    def py_calls():
        for _ in range(a.reps):
            depass.attribute(model, ids, level=a.level)

    def lib_calls():
        return _depass._library_seconds(model, ids, a.reps, a.level)

    def py_job():
        m = depass.load_model(a.model)
        depass.attribute(m, a.prompt, level=a.level).save(os.path.join(out, "py.safetensors"))

    res = {k: [] for k in ["python", "library", "ratio", "import_depass", "import_numpy", "start", "cli_job",
                           "py_job"]}
    for _ in range(3):  # warm-up: allocator, caches, lazily loaded numpy
        py_calls()
        lib_calls()
    # The per-call comparison: pairs of back-to-back batches (python, then library), the ratio
    # taken within each pair so that slow drifts of the machine's load cancel out.
    for _ in range(a.rounds * 5):
        p = timed(py_calls)
        l = lib_calls()
        res["python"].append(p)
        res["library"].append(l)
        res["ratio"].append(p / l)
    for _ in range(a.rounds):
        res["import_depass"].append(timed(lambda: subprocess.run([py, "-c", "import depass"], env=env, check=True)))
        res["import_numpy"].append(timed(lambda: subprocess.run([py, "-c", "import numpy"], env=env, check=True)))
        res["start"].append(timed(lambda: subprocess.run([py, "-c", "pass"], env=env, check=True)))
        res["cli_job"].append(timed(lambda: subprocess.run(cli_cmd, env=env, check=True, stdout=subprocess.DEVNULL)))
        res["py_job"].append(timed(py_job))
    med = {k: statistics.median(v) for k, v in res.items()}

    print(f"model {a.model}: {model.config['n_layers']} layers, D {model.config['d_model']}; "
          f"prompt {a.prompt!r} ({len(ids)} tokens), level {a.level}; {a.rounds} rounds, medians")
    per_py = med["python"] / a.reps * 1e6
    per_lib = med["library"] / a.reps * 1e6
    print(f"per call: python {per_py:9.1f} us   library {per_lib:9.1f} us   "
          f"ratio {med['ratio']:.3f} (median of {len(res['ratio'])} pairs; bar <= 1.05)   "
          f"overhead {per_py - per_lib:6.1f} us/call")
    print(f"fresh process: python3 -c pass {med['start'] * 1e3:6.1f} ms, import depass {med['import_depass'] * 1e3:6.1f} ms "
          f"(+{1e3 * (med['import_depass'] - med['start']):5.1f} ms; numpy is loaded on the first array: "
          f"import numpy {med['import_numpy'] * 1e3:6.1f} ms)")
    print(f"one whole job: CLI process {med['cli_job'] * 1e3:7.1f} ms   python in-process (load + attribute + save) "
          f"{med['py_job'] * 1e3:7.1f} ms   ratio CLI / python {med['cli_job'] / med['py_job']:.2f}")
    ok = med["ratio"] <= 1.05
    print("per-call overhead within 5%:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
