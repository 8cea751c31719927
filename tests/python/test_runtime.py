"""The GIL is released while the library computes, and Ctrl-C stops a long run cleanly."""

import os
import signal
import threading
import time

import numpy as np
import pytest

import depass
from conftest import write_random_llama


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    # Large enough that one token-level attribution of 192 tokens takes a good fraction of a
    # second on one core: D 256, 8 layers, I 704.
    d = write_random_llama(tmp_path_factory.mktemp("slow") / "m", D=256, I=704, L=8, H=8, Hkv=8, V=512)
    return depass.load_model(d)


IDS = list(np.random.default_rng(1).integers(3, 512, size=192))


def test_gil_is_released(slow):
    t0 = time.perf_counter()
    depass.attribute(slow, IDS)
    alone = time.perf_counter() - t0
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    th = threading.Thread(target=count)
    th.start()
    t0 = time.perf_counter()
    depass.attribute(slow, IDS)
    t1 = time.perf_counter()
    stop.set()
    th.join()
    during = [t for t in ticks if t0 < t < t1]
    # With the GIL held the counting thread would not run during the call; released, it ticks
    # about once a millisecond (the call takes well over 0.1 s).
    assert t1 - t0 > 0.1 and len(during) >= 20, (len(during), t1 - t0, alone)


def test_ctrl_c_stops_a_long_run(slow):
    t0 = time.perf_counter()
    depass.attribute(slow, IDS)
    full = time.perf_counter() - t0
    assert full > 0.2, f"the run is too short ({full:.3f} s) to interrupt"

    timer = threading.Timer(full / 4, lambda: os.kill(os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        depass.attribute(slow, IDS)
    stopped = time.perf_counter() - t0
    timer.join()
    # Checked after every block: stopped long before the run would have finished.
    assert stopped < 0.75 * full, (stopped, full)
    # And the module and model are fine afterwards.
    r = depass.attribute(slow, IDS[:16])
    assert r.completeness_max_rel < 1e-4
