"""Benchmark: CheckpointStore save / restore vs tf.train.Checkpoint and vs raw numpy write+fsync; save_async blocking.

    python bench/save.py                 # 1 GB of params (16 float32 tensors)
    python bench/save.py --size-mb 64    # smaller

Targets (issue 4): save >= as fast as tf.train.Checkpoint.write and >= 0.7x raw write+fsync; the time a training
step is blocked by save_async <= 2x a memcpy of the params. Reads mostly hit the page cache (no cache dropping on a
shared machine), for every contender alike. tf.train.Checkpoint.write does not fsync; the store and "raw" do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from transition._cli import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from transition import _atomic  # noqa: E402
from transition._keep import KeepPolicy  # noqa: E402
from transition._store import CheckpointStore  # noqa: E402


def _timed(fn, repeat: int, before=None) -> float:
    best = float("inf")
    for _ in range(repeat):
        if before is not None:
            before()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


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
    try:
        # raw numpy: the same bytes into one file, fsync; read back
        raw_path = os.path.join(workdir, "raw.bin")

        def raw_write():
            with open(raw_path, "wb") as f:
                for a in arrays.values():
                    f.write(memoryview(a))
                f.flush()
                os.fsync(f.fileno())

        def raw_read():
            out = {}
            with open(raw_path, "rb") as f:
                for k, a in arrays.items():
                    buf = np.empty_like(a)
                    f.readinto(memoryview(buf).cast("B"))
                    out[k] = buf
            return out

        results["raw write+fsync"] = _timed(raw_write, args.repeat)
        results["raw read"] = _timed(raw_read, args.repeat)
        os.remove(raw_path)

        # tf.train.Checkpoint
        ckpt = tf.train.Checkpoint(**{k.replace("/", "_"): v for k, v in variables.items()})
        tf_prefix = os.path.join(workdir, "tfckpt")
        results["tf.train.Checkpoint.write"] = _timed(lambda: ckpt.write(tf_prefix), args.repeat)

        def tf_write_fsync():  # what TF's write costs when made durable like the store's
            ckpt.write(tf_prefix)
            for name in os.listdir(workdir):
                fd = os.open(os.path.join(workdir, name), os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)

        results["tf.train.Checkpoint.write + fsync"] = _timed(tf_write_fsync, args.repeat)
        results["tf.train.Checkpoint.read"] = _timed(lambda: ckpt.read(tf_prefix).assert_consumed(), args.repeat)
        for name in os.listdir(workdir):
            os.remove(os.path.join(workdir, name))

        # the store (numpy params: no copy needed for a synchronous save)
        model = os.path.join(workdir, "net")
        with CheckpointStore(model, keep=KeepPolicy(keep_last=None)) as store:  # deleting is not timed
            epoch = iter(range(1, 1000))

            def clear():
                store.wait()
                for info in store.list()[:-1]:
                    _atomic.delete_checkpoint(info.prefix)

            results["store.save (numpy)"] = _timed(lambda: store.save(next(epoch), 0, arrays), args.repeat, clear)
            results["store.save (tf.Variables)"] = _timed(lambda: store.save(next(epoch), 0, variables), args.repeat,
                                                          clear)
            info = store.latest_good()  # verifies the checksums
            results["store.latest_good (verify crc)"] = _timed(store.latest_good, args.repeat)
            results["store.restore (no re-verify)"] = _timed(lambda: store.restore(info), args.repeat)
            results["store.restore (verify crc)"] = _timed(lambda: store.restore(info.prefix), args.repeat)

            # the time a training step is blocked by save_async, next to a memcpy of the params
            results["memcpy of the params (numpy)"] = _timed(lambda: [a.copy() for a in arrays.values()], args.repeat)
            results["copy of tf.Variables to numpy"] = _timed(lambda: [v.numpy() for v in variables.values()],
                                                              args.repeat)
            blocked = []
            for _ in range(args.repeat):
                clear()
                t = time.perf_counter()
                store.save_async(next(epoch), 0, variables)
                blocked.append(time.perf_counter() - t)
                store.wait()
            results["save_async blocked (tf.Variables)"] = min(blocked)
            blocked = []
            for _ in range(args.repeat):
                clear()
                t = time.perf_counter()
                store.save_async(next(epoch), 0, arrays)
                blocked.append(time.perf_counter() - t)
                store.wait()
            results["save_async blocked (numpy)"] = min(blocked)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"checkpoint of {mb:.0f} MB in {args.tensors} float32 tensors, best of {args.repeat}, in {workdir}")
    for name, seconds in results.items():
        print(f"  {name:38s} {seconds * 1000:9.1f} ms  {mb / seconds:8.0f} MB/s")
    save = results["store.save (numpy)"]
    checks = [
        ("save (tf.Variables) vs tf.train.Checkpoint.write (speed, >= 1)",
         results["tf.train.Checkpoint.write"] / results["store.save (tf.Variables)"], 1.0),
        ("save (tf.Variables) vs tf.train.Checkpoint.write + fsync (>= 1)",
         results["tf.train.Checkpoint.write + fsync"] / results["store.save (tf.Variables)"], 1.0),
        ("save (numpy) vs raw write+fsync (speed ratio, >= 0.7)", results["raw write+fsync"] / save, 0.7),
        ("restore vs tf.train.Checkpoint.read (speed ratio)", results["tf.train.Checkpoint.read"]
         / results["store.restore (no re-verify)"], None),
        ("save_async blocked (tf.Variables) / memcpy (<= 2)", results["save_async blocked (tf.Variables)"]
         / results["memcpy of the params (numpy)"], -2.0),
        ("save_async blocked (numpy) / memcpy (<= 2)", results["save_async blocked (numpy)"]
         / results["memcpy of the params (numpy)"], -2.0),
    ]
    for name, value, target in checks:
        if target is None:
            verdict = ""
        elif target > 0:
            verdict = "ok" if value >= target else "MISSED"
        else:
            verdict = "ok" if value <= -target else "MISSED"
        print(f"  {name:62s} {value:6.2f}  {verdict}")


if __name__ == "__main__":
    main()
