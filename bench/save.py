"""Benchmark: CheckpointStore save / restore vs tf.train.Checkpoint and vs raw numpy write+fsync; save_async blocking.

    python bench/save.py                 # 1 GB of params (16 float32 tensors)
    python bench/save.py --size-mb 256   # smaller

Targets: save >= as fast as tf.train.Checkpoint.write and >= 0.7x raw write+fsync; the time a training
step is blocked by save_async <= 2x a memcpy of the params. The store fsyncs every file (durable commit);
tf.train.Checkpoint.write never fsyncs. So the comparison is made both ways, like for like: both with fsync
(TF's files fsynced after its write) and both without (the store's fsyncs switched off for that one run). The
"fsync" column says which figures include it. Before each timed write, os.sync() (not timed) flushes what earlier
runs left dirty, so that no contender pays for another's writeback; the writers are timed round-robin (best of
--repeat each), so that the load of a shared machine hits them alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from transition.internal._quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import best_time  # noqa: E402  (bench/ is on the path as the script's folder)

from transition.store import _atomic  # noqa: E402
from transition.store._keep import KeepPolicy  # noqa: E402
from transition.store._store import CheckpointStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024, help="total size of the params (default 1024)")
    ap.add_argument("--tensors", type=int, default=16, help="number of param tensors (default 16)")
    ap.add_argument("--repeat", type=int, default=2, help="best of N runs per figure (default 2: the first warms up)")
    ap.add_argument("--dir", default=None, help="directory to write to (default: a temporary one under /tmp)")
    args = ap.parse_args()

    n_elem = args.size_mb * (1 << 20) // 4 // args.tensors
    rng = np.random.default_rng(0)
    arrays = {f"layer{i}/W": rng.standard_normal(n_elem, dtype=np.float32) for i in range(args.tensors)}
    total = sum(a.nbytes for a in arrays.values())
    mb = total / (1 << 20)
    variables = {k: tf.Variable(v) for k, v in arrays.items()}
    workdir = tempfile.mkdtemp(prefix="transition-bench-", dir=args.dir)
    results: dict[str, float] = {}
    fsyncs: dict[str, str] = {}  # name -> "yes" / "no" / "" (not a write)

    def timed(name: str, fn) -> None:
        results[name] = best_time(fn, args.repeat)
        fsyncs[name] = ""

    try:
        raw_path = os.path.join(workdir, "raw.bin")

        def raw_write(sync: bool):  # the same bytes into one file with plain buffered Python I/O
            with open(raw_path, "wb") as f:
                for a in arrays.values():
                    f.write(memoryview(a))
                f.flush()
                if sync:
                    os.fsync(f.fileno())

        def raw_read():
            out = {}
            with open(raw_path, "rb") as f:
                for k, a in arrays.items():
                    buf = np.empty_like(a)
                    f.readinto(memoryview(buf).cast("B"))
                    out[k] = buf
            return out

        # tf.train.Checkpoint writes its files under temporary names and renames them; it never fsyncs
        ckpt = tf.train.Checkpoint(**{k.replace("/", "_"): v for k, v in variables.items()})
        tf_dir = os.path.join(workdir, "tf")
        os.makedirs(tf_dir)
        tf_prefix = os.path.join(tf_dir, "ckpt")

        def tf_write(sync: bool):
            ckpt.write(tf_prefix)
            if sync:  # what TF's write costs when made durable like the store's
                for name in os.listdir(tf_dir):
                    fd = os.open(os.path.join(tf_dir, name), os.O_RDONLY)
                    os.fsync(fd)
                    os.close(fd)

        model = os.path.join(workdir, "net")
        with CheckpointStore(model, keep=KeepPolicy(keep_last=None)) as store:  # deleting is not timed
            epoch = iter(range(1, 1000))

            def clear():
                store.wait()
                for info in store.list()[:-1]:
                    _atomic.delete_checkpoint(info.prefix)

            def store_save(values, durable=True):
                _atomic.DURABLE = durable  # False: like tf.train.Checkpoint.write, no fsync (this comparison only)
                try:
                    store.save(next(epoch), 0, values)
                finally:
                    _atomic.DURABLE = True

            writers = [  # (name, fsync, fn); timed round-robin, so that load swings hit every contender alike
                ("raw numpy write", "no", lambda: raw_write(False)),
                ("raw numpy write + fsync", "yes", lambda: raw_write(True)),
                ("tf.train.Checkpoint.write", "no", lambda: tf_write(False)),
                ("tf.train.Checkpoint.write + fsync", "yes", lambda: tf_write(True)),
                ("store.save (numpy)", "yes", lambda: store_save(arrays)),
                ("store.save (tf.Variables)", "yes", lambda: store_save(variables)),
                ("store.save (tf.Variables), no fsync", "no", lambda: store_save(variables, durable=False)),
            ]
            for _ in range(args.repeat):
                for name, fsync, fn in writers:
                    clear()
                    os.sync()  # no contender pays for the writeback of another (not timed)
                    t = time.perf_counter()
                    fn()
                    results[name] = min(results.get(name, float("inf")), time.perf_counter() - t)
                    fsyncs[name] = fsync
            timed("raw numpy read", raw_read)
            timed("tf.train.Checkpoint.read", lambda: ckpt.read(tf_prefix).assert_consumed())
            os.remove(raw_path)
            shutil.rmtree(tf_dir)
            info = store.latest_good()  # verifies the checksums
            timed("store.latest_good (verify crc)", store.latest_good)
            timed("store.restore (no re-verify)", lambda: store.restore(info))
            timed("store.restore (verify crc)", lambda: store.restore(info.prefix))

            # the time a training step is blocked by save_async, next to a memcpy of the params
            timed("memcpy of the params (numpy)", lambda: [a.copy() for a in arrays.values()])
            timed("copy of tf.Variables to numpy", lambda: [v.numpy() for v in variables.values()])
            for kind, values in (("tf.Variables", variables), ("numpy", arrays)):
                blocked = []
                for _ in range(args.repeat):
                    clear()
                    os.sync()
                    t = time.perf_counter()
                    store.save_async(next(epoch), 0, values)
                    blocked.append(time.perf_counter() - t)
                    store.wait()
                results[f"save_async blocked ({kind})"] = min(blocked)
                fsyncs[f"save_async blocked ({kind})"] = ""
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"checkpoint of {mb:.0f} MB in {args.tensors} float32 tensors, best of {args.repeat}, in {workdir}")
    print("reads mostly hit the page cache (no cache dropping on a shared machine), for every contender alike")
    print(f"  {'':42s} {'fsync':>5s} {'time':>12s} {'speed':>12s}")
    for name, seconds in results.items():
        print(f"  {name:42s} {fsyncs[name]:>5s} {seconds * 1000:9.1f} ms {mb / seconds:7.0f} MB/s")

    def speed(a: str, b: str) -> float:  # how many times faster a is than b
        return results[b] / results[a]

    memcpy = results["memcpy of the params (numpy)"]
    checks = [
        ("save vs tf.train.Checkpoint.write, both with fsync", speed("store.save (tf.Variables)",
                                                                    "tf.train.Checkpoint.write + fsync"), 1.0),
        ("save vs tf.train.Checkpoint.write, both without fsync", speed("store.save (tf.Variables), no fsync",
                                                                       "tf.train.Checkpoint.write"), 1.0),
        ("save (tf.Variables) vs raw numpy write, both with fsync", speed("store.save (tf.Variables)",
                                                                         "raw numpy write + fsync"), 0.7),
        # numpy arrays are 16-byte aligned; TF takes a buffer without a copy only when 64-byte aligned: one memcpy
        ("save (numpy) vs raw numpy write, both with fsync", speed("store.save (numpy)", "raw numpy write + fsync"),
         0.7),
        ("restore vs tf.train.Checkpoint.read", speed("store.restore (no re-verify)", "tf.train.Checkpoint.read"),
         None),
        ("save_async blocked (tf.Variables) / memcpy", results["save_async blocked (tf.Variables)"] / memcpy, -2.0),
        ("save_async blocked (numpy) / memcpy", results["save_async blocked (numpy)"] / memcpy, -2.0),
    ]
    print("targets (speed ratios: >= target; blocked time: <= target x memcpy):")
    for name, value, target in checks:
        if target is None:
            verdict = ""
        elif target > 0:
            verdict = f">= {target:g}  " + ("ok" if value >= target else "MISSED")
        else:
            verdict = f"<= {-target:g}  " + ("ok" if value <= -target else "MISSED")
        print(f"  {name:55s} {value:6.2f}  {verdict}")


if __name__ == "__main__":
    main()
