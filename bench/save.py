"""Benchmark: a durable CheckpointStore.save vs a raw numpy write + fsync of the same bytes (the floor), next to
tf.train.Checkpoint.write; restore and the time a step is blocked by save_async.

    python bench/save.py                       # 1 GiB of params (16 float32 tensors), 7 interleaved rounds
    python bench/save.py --size-mb 512         # 512 MiB
    python bench/save.py --size-mb 64 --rounds 3   # a quick run

Targets: a durable save (fsync of the data, index, state and commit files and of the directory) >= 0.8x the raw
write + fsync of the same bytes into one file; the time a training step is blocked by save_async <= 2x a memcpy of
the params. Every figure is the median of --rounds interleaved rounds (every contender once per round, round-robin,
so that the load of a shared machine hits them alike); the ratio is the median over rounds of floor time / our time.
Before each timed write, os.sync() (not timed) flushes what earlier runs left dirty, so that no contender pays for
another's writeback. tf.train.Checkpoint.write never fsyncs: its files are fsynced after it ("+ fsync") to compare
like with like. The "fsync" column says which figures include it; the no-fsync rows are for information, and so
is the same raw write in 4 MiB pieces (as the store writes; faster than whole arrays here).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from transition.internal._quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import interleaved_medians, median_ratio  # noqa: E402  (bench/ is on the path as the script's folder)

from transition.store import _atomic  # noqa: E402
from transition.store._keep import KeepPolicy  # noqa: E402
from transition.store._store import CheckpointStore  # noqa: E402

FLOOR = "raw numpy write + fsync"
PIECES = "raw write in 4 MiB pieces + fsync"


def _fsync_dir_files(directory: str) -> None:
    for name in os.listdir(directory):
        fd = os.open(os.path.join(directory, name), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024, help="total size of the params in MiB (default 1024)")
    ap.add_argument("--tensors", type=int, default=16, help="number of param tensors (default 16)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7; the median is kept)")
    ap.add_argument("--dir", default=None, help="directory to write to (default: a temporary one under /tmp)")
    args = ap.parse_args()

    n_elem = args.size_mb * (1 << 20) // 4 // args.tensors
    rng = np.random.default_rng(0)
    arrays = {f"layer{i}/W": rng.standard_normal(n_elem, dtype=np.float32) for i in range(args.tensors)}
    mb = sum(a.nbytes for a in arrays.values()) / (1 << 20)
    variables = {k: tf.Variable(v) for k, v in arrays.items()}
    workdir = tempfile.mkdtemp(prefix="transition-bench-", dir=args.dir)
    try:
        raw_path = os.path.join(workdir, "raw.bin")

        def raw_write(sync: bool) -> None:  # the same bytes into one file with plain buffered Python I/O
            with open(raw_path, "wb") as f:
                for a in arrays.values():
                    f.write(memoryview(a))
                f.flush()
                if sync:
                    os.fsync(f.fileno())

        def raw_pieces() -> None:  # the same, in 4 MiB writes (as the store writes): a stronger floor, for information
            fd = os.open(raw_path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                for a in arrays.values():
                    view = memoryview(a).cast("B")
                    for start in range(0, len(view), 4 << 20):
                        os.write(fd, view[start : start + (4 << 20)])  # a regular file: no short writes here
                os.fsync(fd)
            finally:
                os.close(fd)

        ckpt = tf.train.Checkpoint(**{k.replace("/", "_"): v for k, v in variables.items()})
        tf_dir = os.path.join(workdir, "tf")
        os.makedirs(tf_dir)

        def tf_write(sync: bool) -> None:  # writes under temporary names and renames; never fsyncs itself
            ckpt.write(os.path.join(tf_dir, "ckpt"))
            if sync:
                _fsync_dir_files(tf_dir)

        model = os.path.join(workdir, "net")
        with CheckpointStore(model, keep=KeepPolicy(keep_last=None)) as store:  # deleting is not timed
            epoch = iter(range(1, 100000))

            def clear() -> None:  # untimed before every contender: old files gone (every writer creates new files,
                store.wait()      # none pays for truncating old ones), nothing left dirty
                for info in store.list()[:-1]:
                    _atomic.delete_checkpoint(info.prefix)
                for path in [raw_path] + [os.path.join(tf_dir, name) for name in os.listdir(tf_dir)]:
                    if os.path.exists(path):
                        os.remove(path)
                os.sync()

            def store_save(values, durable: bool = True) -> None:
                _atomic.DURABLE = durable  # False: like tf.train.Checkpoint.write, no fsync (for information)
                try:
                    store.save(next(epoch), 0, values)
                finally:
                    _atomic.DURABLE = True

            writers = {
                FLOOR: lambda: raw_write(True),
                "store.save (tf.Variables)": lambda: store_save(variables),
                "store.save (numpy)": lambda: store_save(arrays),
                "tf.train.Checkpoint.write + fsync": lambda: tf_write(True),
                PIECES: raw_pieces,
                "raw numpy write": lambda: raw_write(False),
                "store.save (tf.Variables), no fsync": lambda: store_save(variables, durable=False),
                "tf.train.Checkpoint.write": lambda: tf_write(False),
            }
            fsyncs = {name: "no" if name in ("raw numpy write", "tf.train.Checkpoint.write") or "no fsync" in name
                      else "yes" for name in writers}
            for fn in writers.values():  # warm up: first-touch costs (file creation, TF's first write) untimed
                clear()
                fn()
            write_medians, write_times = interleaved_medians(writers, args.rounds, before=clear)

            clear()
            info = store.latest_good()
            readers = {
                "store.latest_good (verify crc)": store.latest_good,
                "store.restore (no re-verify)": lambda: store.restore(info),
                "store.restore (verify crc)": lambda: store.restore(info.prefix),
                "memcpy of the params (numpy)": lambda: [a.copy() for a in arrays.values()],
            }
            read_medians, _ = interleaved_medians(readers, args.rounds)

            blocked: dict[str, list[float]] = {}
            for kind, values in (("tf.Variables", variables), ("numpy", arrays)):
                def async_save(values=values) -> None:
                    store.save_async(next(epoch), 0, values)

                _, times = interleaved_medians({kind: async_save}, args.rounds, before=clear)
                blocked[kind] = times[kind]
            store.wait()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"checkpoint of {mb:.0f} MiB in {args.tensors} float32 tensors; medians of {args.rounds} interleaved "
          f"rounds; os.sync() before every write (untimed); in {workdir}")
    print(f"  {'':42s} {'fsync':>5s} {'median':>12s} {'speed':>12s}   rounds (s)")
    for name, seconds in write_medians.items():
        rounds = " ".join(f"{t:.3f}" for t in write_times[name])
        print(f"  {name:42s} {fsyncs[name]:>5s} {seconds * 1000:9.1f} ms {mb / seconds:7.0f} MiB/s   {rounds}")
    for name, seconds in read_medians.items():
        print(f"  {name:42s} {'':>5s} {seconds * 1000:9.1f} ms {mb / seconds:7.0f} MiB/s")
    memcpy = read_medians["memcpy of the params (numpy)"]
    for kind, ts in blocked.items():
        print(f"  {'save_async blocked (' + kind + ')':42s} {'':>5s} {statistics.median(ts) * 1000:9.1f} ms")

    checks = [
        (f"durable save (tf.Variables) vs the floor ({FLOOR})", median_ratio(write_times, FLOOR,
                                                                             "store.save (tf.Variables)"), 0.8),
        (f"durable save (numpy) vs the floor ({FLOOR})", median_ratio(write_times, FLOOR, "store.save (numpy)"), 0.8),
        (f"durable save (tf.Variables) vs {PIECES}", median_ratio(write_times, PIECES, "store.save (tf.Variables)"),
         None),
        ("durable save (tf.Variables) vs tf.train.Checkpoint.write + fsync",
         median_ratio(write_times, "tf.train.Checkpoint.write + fsync", "store.save (tf.Variables)"), None),
        ("save_async blocked (tf.Variables) / memcpy", statistics.median(blocked["tf.Variables"]) / memcpy, -2.0),
        ("save_async blocked (numpy) / memcpy", statistics.median(blocked["numpy"]) / memcpy, -2.0),
    ]
    print("targets (speed ratios, median over rounds of floor time / our time: >= target; blocked: <= target x memcpy):")
    for name, value, target in checks:
        if target is None:
            verdict = "(information)"
        elif target > 0:
            verdict = f">= {target:g}  " + ("ok" if value >= target else "MISSED")
        else:
            verdict = f"<= {-target:g}  " + ("ok" if value <= -target else "MISSED")
        print(f"  {name:75s} {value:6.2f}  {verdict}")


if __name__ == "__main__":
    main()
