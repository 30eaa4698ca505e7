"""Steps per second of one training job with 1 and with 2 workers on this machine (MultiWorkerMirroredStrategy over
127.0.0.1 ports, TF_CONFIG), printed side by side.

Each worker runs the reference train step (`make_train_step` over `mgr.batches`) of a net dict (--layers linear
layers of --units, a softmax output) on numpy data: global batches of --batch rows, each of 2 workers trains half
of every batch. Epoch 1 (tracing, start-up) is not timed; epoch 2 (--steps steps, with the per-step preemption
agreement and nothing else) is. Interleaved rounds (1 worker, 2 workers, 1 worker, ...), medians. Also printed:
the cost of one preemption agreement (an all-reduce of a flag) between the 2 workers.

    python bench/distributed.py [--rounds 3] [--steps 100] [--layers 3] [--units 256] [--batch 256]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap

# This directory holds a file named like the package's modules: drop it from the import path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

WORKER = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import transition, keras
    from transition.training._data import numpy_batches
    from transition.training._distribute import Cluster
    from transition.training._loop import make_train_step

    model, steps, layers, units, batch = sys.argv[1], *map(int, sys.argv[2:6])
    distribution = sys.argv[6] if sys.argv[6] != "none" else None
    extern = {"data": {"shape": (units,)}, "classes": {"dim": units, "sparse": True, "shape": ()}}
    net, src = {}, "data"
    for i in range(layers - 1):
        net[f"l{i}"] = {"class": "linear", "activation": "relu", "n_out": units, "from": src}
        src = f"l{i}"
    net["output"] = {"class": "softmax", "loss": "ce", "from": src, "target": "classes"}
    rng = np.random.RandomState(0)
    data = {"data": rng.randn(steps * batch, units).astype("float32"),
            "classes": rng.randint(0, units, steps * batch).astype("int32")}
    mgr = transition.TransitionManager(model, net, extern_data=extern, num_epochs=2, distribution=distribution,
                                       optimizer=lambda: keras.optimizers.SGD(0.01), log=lambda s: None)
    seconds = {}
    with mgr:
        for epoch in mgr.epochs():
            step = make_train_step(mgr.network, mgr.optimizer, mgr.strategy)
            t0 = time.perf_counter()
            for b in mgr.batches(numpy_batches(data, batch, seed=mgr.shuffle_seed())):
                loss = step(b)
            float(loss)
            seconds[epoch] = time.perf_counter() - t0
            mgr.end_epoch({})
    cluster = Cluster(mgr.strategy)
    agree = float("nan")
    if cluster.multi_worker:
        cluster.any(False)
        t0 = time.perf_counter()
        for _ in range(100):
            cluster.any(False)
        agree = (time.perf_counter() - t0) / 100
    if cluster.is_chief:
        print("RESULT " + json.dumps({"steps_per_s": steps / seconds[2], "agree_s": agree}), flush=True)
    """
)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def run(tmp: str, workers: int, args: argparse.Namespace, tag: str) -> dict:
    """One job of `workers` processes; the chief's result."""
    script = os.path.join(tmp, "worker.py")
    ports = _free_ports(workers)
    procs = []
    for i in range(workers):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        env.pop("TF_CONFIG", None)
        if workers > 1:
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                           "task": {"type": "worker", "index": i}})
        cmd = [sys.executable, script, os.path.join(tmp, tag, "network"), str(args.steps), str(args.layers),
               str(args.units), str(args.batch), "multi_worker_mirrored" if workers > 1 else "none"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outs):
        if p.returncode != 0:
            raise SystemExit(f"a worker failed (exit {p.returncode}):\n{err[-3000:]}")
    return json.loads(outs[0][0].split("RESULT ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100, help="steps of the timed epoch")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256, help="global batch size")
    args = parser.parse_args()
    one, two, agree = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "worker.py"), "w") as f:
            f.write(WORKER)
        for r in range(args.rounds):
            one.append(run(tmp, 1, args, f"one{r}")["steps_per_s"])
            result = run(tmp, 2, args, f"two{r}")
            two.append(result["steps_per_s"])
            agree.append(result["agree_s"])
    a, b = statistics.median(one), statistics.median(two)
    print(f"net: {args.layers} linear layers of {args.units}, global batch {args.batch}; {args.steps} timed steps; "
          f"medians of {args.rounds} interleaved rounds")
    print(f"{'':<32} {'steps/s':>8} {'examples/s':>11}")
    print(f"{'1 worker (no strategy)':<32} {a:>8.1f} {a * args.batch:>11.0f}")
    print(f"{'2 workers (half a batch each)':<32} {b:>8.1f} {b * args.batch:>11.0f}   ratio {b / a:.2f}x")
    print(f"preemption agreement between the 2 workers: {statistics.median(agree) * 1e3:.2f} ms a step")


if __name__ == "__main__":
    main()
