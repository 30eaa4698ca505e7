"""Benchmark one epoch transition: a stack of linear layers grows by one layer.

Default: 16 linear layers of 4096 units on a 4096-dim input (~268M float32 params, ~1.07 GB). Prints the time of
the snapshot, release, rebuild and import steps and the peak extra memory (RSS over the baseline, sampled by a
thread from /proc/self/status) next to the time of np.copyto of the same bytes into a preallocated buffer.

    python bench/transition.py                 # the full run (~1 GB of params)
    python bench/transition.py --layers 4 --units 256   # a quick run
    python bench/transition.py --adam          # also carry Adam's slots (2x the param bytes more)
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import sys
import threading
import time

# This file is named like the package: drop its own directory from the import path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

# bench/ is off the path (see above): load the shared helpers by file.
_spec = importlib.util.spec_from_file_location("_common", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_common.py"))
_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_common)
best_time, net_dict = _common.best_time, _common.net_dict


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class PeakRSS:
    """Samples the RSS in a thread until stopped; `.peak` is the largest value seen."""

    def __init__(self, interval: float = 0.001):
        self.interval = interval
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def copyto_time(nbytes: int, repeats: int = 3) -> float:
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    dst.fill(0)  # touch the pages
    return best_time(lambda: np.copyto(dst, src), repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=16, help="linear layers before the transition (default 16)")
    ap.add_argument("--units", type=int, default=4096, help="units per layer and input dim (default 4096)")
    ap.add_argument("--adam", action="store_true", help="also carry the slots of a built Adam optimizer")
    args = ap.parse_args()

    from transition.network._network import Network
    from transition.network._transition import transition_network

    extern_data = {"data": {"dim": args.units}}
    old_dict = net_dict(args.layers, args.units)
    new_dict = net_dict(args.layers + 1, args.units)

    old = Network.from_dict(old_dict, extern_data)
    optimizer = None
    if args.adam:
        import keras

        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build(old.trainable_variables)
    param_bytes = sum(int(np.prod(v.shape)) * 4 for v in old.param_variables().values())
    n_params = param_bytes // 4

    ref = copyto_time(param_bytes)
    gc.collect()
    time.sleep(0.2)
    baseline = rss_bytes()

    with PeakRSS() as peak:
        t = time.perf_counter()
        result = transition_network(old, new_dict, extern_data=extern_data, epoch=2, optimizer=optimizer)
        total = time.perf_counter() - t
    del old, optimizer
    extra = peak.peak - baseline

    n_new = sum(int(np.prod(v.shape)) for v in result.network.param_variables().values())
    print(f"params: {n_params / 1e6:.1f}M before, {n_new / 1e6:.1f}M after ({param_bytes / 2**30:.2f} GiB float32)")
    print(f"report: {len(result.report)} params; " + str(result.report).splitlines()[-1])
    print(f"np.copyto of {param_bytes / 2**30:.2f} GiB: {ref:.3f} s")
    for step, seconds in result.timings.items():
        print(f"  {step:9s} {seconds:7.3f} s  ({seconds / ref:5.1f}x copyto)")
    print(f"  {'total':9s} {total:7.3f} s  ({total / ref:5.1f}x copyto)   target <= 0.5 s per GB: "
          f"{total / (param_bytes / 1e9):.3f} s/GB")
    line = f"peak extra memory: {extra / 2**30:.2f} GiB = {extra / param_bytes:.2f}x param bytes (target <= 2.2x)"
    if args.adam:  # Adam keeps 2 slots per param
        line += f", {extra / (3 * param_bytes):.2f}x param + slot bytes"
    print(line)


if __name__ == "__main__":
    main()
