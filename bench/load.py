"""Benchmark: `transition.load_checkpoint` of a TF bundle into a Network vs `os.preadv` of the same bytes into one
buffer (the floor).

Default: 16 linear layers of 4096 units on a 4096-dim input (~268M float32 params, ~1 GiB). The checkpoint is
written first (via `write_checkpoint`; not timed). Every contender then reads the same files from a warm page cache
(each is run once before timing; no cache dropping on a shared machine), in --rounds interleaved rounds
(`_common.interleaved_medians`); the figures are medians and the ratio is the median over rounds of floor time /
load time (speed relative to the floor). The floor reads the data file with os.preadv into one fresh 64-byte
aligned buffer and checks nothing; load_checkpoint checks every tensor's crc32c and assigns the variables.

    python bench/load.py                           # the full run (~1 GiB), 7 rounds
    python bench/load.py --layers 12 --units 4096  # ~768 MiB
    python bench/load.py --layers 4 --units 1024 --rounds 3   # a quick run (~16 MiB)
    python bench/load.py --tf-reader               # TF's own reader (RestoreV2), the fallback path

Also printed for information: np.fromfile of the data file (the floor of earlier versions of this benchmark).

Target: load_checkpoint at least 0.6x the speed of the os.preadv floor (ratio >= 0.6).
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import sys
import tempfile

# Run from a checkout without installing: the repository root first on the import path.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
from _common import interleaved_medians, median_ratio, net_dict  # noqa: E402  (bench/ is on the path)

TARGET = 0.6
FLOOR = "os.preadv (floor)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=16, help="linear layers (default 16)")
    ap.add_argument("--units", type=int, default=4096, help="units per layer and input dim (default 4096)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7; the median is kept)")
    ap.add_argument("--tf-reader", action="store_true",
                    help="read values with TF's RestoreV2 (the fallback where the direct reader does not apply) instead of directly")
    ap.add_argument("--dir", default=None, help="directory for the checkpoint (default: a temporary one in /tmp)")
    args = ap.parse_args()

    from transition.checkpoint._bundle_reader import TFBundleReader
    from transition.checkpoint._load_plan import network_param_specs, plan_load
    from transition.checkpoint._loading import execute_plan, load_checkpoint
    from transition.checkpoint._tools import write_checkpoint
    from transition.network._network import Network

    def load_with_tf_reader(net, prefix):  # what load_checkpoint does, with TF's reader (RestoreV2) for the values
        specs, custom, copy_modes = network_param_specs(net)
        with TFBundleReader(prefix, direct=False) as reader:
            return execute_plan(net, plan_load(specs, custom, reader, path=prefix, copy_modes=copy_modes))

    if args.tf_reader:
        load_checkpoint = load_with_tf_reader  # noqa: F811

    net = Network.from_dict(net_dict(args.layers, args.units), {"data": {"dim": args.units}})
    variables = net.param_variables()
    workdir = tempfile.mkdtemp(prefix="transition-bench-load-", dir=args.dir)
    try:
        prefix = os.path.join(workdir, "net.001")
        rng = np.random.default_rng(0)
        samples = {}
        values = {}
        for name, var in variables.items():  # values that differ from the network's init
            values[name] = rng.standard_normal(tuple(var.shape), dtype=np.float32)
            samples[name] = values[name].reshape(-1)[-16:].copy()
        write_checkpoint(values, prefix)
        del values
        data_files = sorted(glob.glob(glob.escape(prefix) + ".data-*"))
        nbytes = sum(os.path.getsize(f) for f in data_files)
        mb = nbytes / (1 << 20)

        def fromfile() -> None:
            for f in data_files:
                np.fromfile(f, dtype=np.uint8)

        def raw() -> None:
            for f in data_files:
                size = os.path.getsize(f)
                buf = np.empty(size + 64, np.uint8)
                start = (-buf.ctypes.data) % 64
                view = memoryview(buf[start : start + size])
                fd = os.open(f, os.O_RDONLY)
                try:
                    done = 0
                    while done < size:
                        done += os.preadv(fd, [view[done:]], done)
                finally:
                    os.close(fd)

        def load() -> None:
            load_checkpoint(net, prefix)

        fromfile()  # warm the page cache and the code paths of all
        raw()
        report = load_checkpoint(net, prefix)
        assert len(report.loaded) == len(variables), report
        for name, var in variables.items():
            if not np.array_equal(np.asarray(var.numpy()).reshape(-1)[-16:], samples[name]):
                raise SystemExit(f"load_checkpoint did not load {name}")

        contenders = {FLOOR: raw, "load_checkpoint": load, "np.fromfile (info)": fromfile}
        medians, times = interleaved_medians(contenders, args.rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"checkpoint: {len(variables)} float32 params, {mb:.0f} MiB in {len(data_files)} data file(s); medians of "
          f"{args.rounds} interleaved rounds, warm page cache; "
          + ("TF's RestoreV2 reader" if args.tf_reader else "direct reader (crc32c checked)"))
    for label, ts in times.items():
        print(f"  {label:20s} median {medians[label]:7.3f} s  {mb / medians[label]:7.0f} MiB/s   rounds: "
              + " ".join(f"{t:.3f}" for t in ts))
    ratio = median_ratio(times, FLOOR, "load_checkpoint")
    verdict = "ok" if ratio >= TARGET else "MISSED"
    print(f"  speed of load_checkpoint vs the floor ({FLOOR}), median over rounds: {ratio:.2f}  "
          f"target >= {TARGET}: {verdict}")


if __name__ == "__main__":
    main()
