"""The fuzz campaign of `test_fuzz.py`, run in its own process: `python -m tests.checkpoint.fuzz_runner SEEDS SECONDS`.

SEEDS is a directory with one subdirectory per format (written by `test_fuzz.seed_corpus`, which needs TensorFlow;
this process never imports it): a checkpoint of each format, a store's model directory, and a `sentinel` directory
of files nothing may open. Per format, hypothesis mutates the seed (byte-level: flips, overwrites with interesting
values, inserts, deletes, truncations; for the TF index also structure-aware: entries re-encoded with hostile
fields behind valid crcs) for its share of SECONDS, and each case is read as a user would (open, list, inspect, read
every array; for the store: list, verify, resume scan, restore). Every case must end in values or in a
CheckpointError naming the case's path; a case fails when it raises anything else, when its CheckpointError was
caused by a MemoryError, when Python / numpy allocated more than twice the case's bytes plus the inflate allowance
(tracemalloc; the process also runs under an address-space limit, RLIMIT_AS), or when it opened a file outside the
case (an audit hook on open(), and inotify on the sentinel directory for opens by any process, HDF5's included).
Prints one JSON object: {"cases": {format: n}, "failures": [...], "rss_growth": bytes}.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import struct
import sys
import time
import tracemalloc

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.checkpoint.hostile import OpenWatch

SLACK = 4 << 20
MIN_CASES = 10  # every format, however slow the machine
_MODULE_DIRS = tuple(os.path.realpath(p) + os.sep for p in sys.path if p and os.path.isdir(p))
_INTERESTING = [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00", b"\xff" * 8,
                struct.pack("<Q", 1 << 40), b"\x01", b"\x00", b"\xfe\xff\xff\xff\x0f"]
FORMATS = {  # format -> (share of the time, cases per hypothesis run: runs with seeds 0, 1, ... until the time is up)
    "tf": (6, 100), "tf_index": (7, 100), "npz": (4, 100), "npz_deflated": (3, 100), "npy": (2, 100),
    "h5": (10, 5), "h5_legacy": (7, 5), "keras": (7, 5), "store": (8, 50),
}


class Guard:
    """Measures one case: allocations, files opened (audit hook, inotify on the sentinel directory)."""

    def __init__(self, sentinel: str):
        self.active = False
        self.opened: list[str] = []
        self.watch = OpenWatch(sentinel)
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if self.active and event == "open" and isinstance(args[0], (str, bytes)):
            self.opened.append(os.fsdecode(args[0]))

    def run(self, case: str, fn) -> list[str]:
        from transition.checkpoint._limits import inflate_allowance
        from transition.errors import CheckpointError

        problems = []
        size = sum(os.path.getsize(os.path.join(case, f)) for f in os.listdir(case))
        self.opened.clear()
        self.watch.events()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        self.active = True
        try:
            fn()
        except CheckpointError as exc:
            cause, seen = exc, set()
            while cause is not None and id(cause) not in seen:
                seen.add(id(cause))
                if isinstance(cause, MemoryError):
                    problems.append(f"a MemoryError behind: {exc}")
                cause = cause.__cause__ or cause.__context__
            if case not in str(exc):
                problems.append(f"a CheckpointError not naming the path: {exc}")
        except BaseException as exc:  # noqa: BLE001 - what the campaign looks for
            problems.append(f"{type(exc).__name__}: {str(exc)[:300]}")
        finally:
            self.active = False
        peak = tracemalloc.get_traced_memory()[1] - base
        if peak > 2 * size + inflate_allowance() + SLACK:
            problems.append(f"allocated {peak} bytes for {size} bytes of files")
        outside = [p for p in self.opened if not os.path.abspath(p).startswith(case) and p != os.devnull
                   and not p.startswith(_MODULE_DIRS)]  # a module imported for an unusual dtype (ml_dtypes)
        if outside:
            problems.append(f"opened outside the case: {outside[:3]}")
        events = self.watch.events()
        if events:
            problems.append(f"a process opened sentinel files: {events[:3]}")
        return problems


def _mutate(data: bytes, ops) -> bytes:
    out = bytearray(data)
    for op, pos, blob in ops:
        pos = pos % max(len(out), 1)
        if op == "flip" and out:
            out[pos] ^= 1 << (blob[0] % 8)
        elif op == "set":
            out[pos : pos + len(blob)] = blob
        elif op == "interesting":
            value = _INTERESTING[blob[0] % len(_INTERESTING)]
            out[pos : pos + len(value)] = value
        elif op == "insert":
            out[pos:pos] = blob
        elif op == "delete":
            del out[pos : pos + blob[0] % 64 + 1]
        elif op == "truncate":
            del out[pos:]
    return bytes(out)


_OPS = st.lists(st.tuples(st.sampled_from(["flip", "flip", "set", "interesting", "interesting", "insert", "delete",
                                           "truncate"]), st.integers(0, 1 << 30), st.binary(min_size=1, max_size=8)),
                min_size=1, max_size=4)


def _read_checkpoint(path: str) -> None:
    from transition.checkpoint._reader import open_checkpoint
    from transition.checkpoint._tools import inspect_checkpoint

    with open_checkpoint(path) as reader:
        for name in reader.names():
            reader.shape(name), reader.dtype(name), reader.nbytes(name)
        inspect_checkpoint(reader)
        reader.read_all()


def _use_store(model: str) -> None:
    from transition.store._listing import list_checkpoints
    from transition.store._state import read_training_state
    from transition.store._store import CheckpointStore

    for info in list_checkpoints(model, checksums=True):  # marks damage, never raises it
        if info.damaged is not None:
            assert isinstance(info.damaged, str) and info.prefix in info.damaged, info.damaged
    store = CheckpointStore(model, lock=False, cleanup=False)
    try:
        scan = store.scan_for_resume()
        if scan.good is not None:
            store.restore_state(scan.good)
        for info in scan.checkpoints:
            if info.committed:
                read_training_state(info.prefix)
    finally:
        store.close()


def _index_structured(data: bytes, draw) -> bytes:
    """Re-encode the index with one entry's protobuf (or key) mutated: valid crcs, hostile fields."""
    from tests.checkpoint.bundle_builder import sstable
    from transition.checkpoint._bundle_table import table_entries

    items = [(key, bytes(value)) for key, value in table_entries(data)]
    i = draw(st.integers(0, len(items) - 1))
    key, value = items[i]
    if draw(st.integers(0, 4)) == 0:
        key = _mutate(key, draw(_OPS))
    else:
        value = _mutate(value, draw(_OPS))
    items[i] = (key, value)
    return sstable(sorted(items) if draw(st.booleans()) else items)


def _campaign(fmt: str, seeds: str, work: str, guard: Guard, deadline: float, batch: int, out: dict) -> None:
    seed_dir = os.path.join(seeds, fmt if fmt != "tf_index" else "tf")
    target = json.load(open(os.path.join(seed_dir, "target.json")))  # {"read": name, "mutate": [file names]}
    counter = [0]

    @settings(max_examples=batch, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def case(data):
        counter[0] += 1
        directory = os.path.join(work, f"{fmt}-{counter[0]}")
        shutil.copytree(seed_dir, directory)
        os.remove(os.path.join(directory, "target.json"))
        victim = data.draw(st.sampled_from([m for m in target["mutate"] if fmt != "tf_index" or m.endswith(".index")]))
        path = os.path.join(directory, victim)
        original = open(path, "rb").read()
        mutated = _index_structured(original, data.draw) if fmt == "tf_index" else _mutate(original,
                                                                                            data.draw(_OPS))
        with open(path, "wb") as f:
            f.write(mutated)
        if fmt == "store" and data.draw(st.booleans()):
            _recommit(directory, victim, mutated)  # checksums that match: what the file says is tested
        read = os.path.join(directory, target["read"])
        problems = guard.run(directory, (lambda: _use_store(read)) if fmt == "store" else
                             (lambda: _read_checkpoint(read)))
        if problems:
            keep = os.path.join(work, "failures", f"{fmt}-{counter[0]}")
            shutil.copytree(directory, keep)
            out["failures"].append({"format": fmt, "file": victim, "kept": keep, "problems": problems})
        shutil.rmtree(directory, ignore_errors=True)

    run = 0
    # deterministic runs (seed 0, 1, ...) for as long as the format's time lasts, and at least MIN_CASES cases (a
    # loaded machine must not leave a format unfuzzed)
    while time.monotonic() < deadline or counter[0] < MIN_CASES:
        seed(run)(case)()
        run += 1
    out["cases"][fmt] = counter[0]


def _recommit(directory: str, victim: str, data: bytes) -> None:
    from transition.store import _atomic

    for name in os.listdir(directory):
        if name.endswith(".commit.json") and victim.startswith(name[: -len(".commit.json")]):
            path = os.path.join(directory, name)
            try:
                commit = json.loads(open(path, "rb").read())
                commit["files"][victim[len(name) - len(".commit.json"):]] = _atomic.file_record(data)
                open(path, "w").write(json.dumps(commit))
            except (ValueError, KeyError, TypeError, AttributeError):
                pass  # the commit file itself was mutated


def main() -> None:
    seeds, seconds = sys.argv[1], float(sys.argv[2])
    work = os.path.join(seeds, "cases")
    os.makedirs(os.path.join(work, "failures"), exist_ok=True)
    guard = Guard(os.path.join(seeds, "sentinel"))
    out: dict = {"cases": {}, "failures": []}
    for fmt in FORMATS:  # warm up every path (imports, caches) before the limits
        target = json.load(open(os.path.join(seeds, fmt if fmt != "tf_index" else "tf", "target.json")))
        read = os.path.join(seeds, fmt if fmt != "tf_index" else "tf", target["read"])
        (_use_store if fmt == "store" else _read_checkpoint)(read)
    for name in sorted(os.listdir(os.path.join(seeds, "hostile"))):  # the hostile seeds, as they are
        directory = os.path.join(seeds, "hostile", name)
        problems = guard.run(directory, lambda: _read_checkpoint(os.path.join(directory, os.listdir(directory)[0])))
        if problems:
            out["failures"].append({"format": "hostile", "file": name, "problems": problems})
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (vm + (768 << 20), resource.RLIM_INFINITY))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    total = sum(share for share, _ in FORMATS.values())
    for fmt, (share, batch) in FORMATS.items():  # each format's time counts from its own start
        _campaign(fmt, seeds, work, guard, time.monotonic() + seconds * share / total, batch, out)
    out["rss_growth"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) * 1024
    print(json.dumps(out))


if __name__ == "__main__":
    main()
