"""Benchmark one epoch transition: a stack of linear layers grows by one layer; ours next to RETURNN's.

Every round builds the net (timed: "first build"), then grows it by one layer with `transition_network`
(timed: snapshot, release, rebuild and import; the peak extra memory is the RSS over the one before it, sampled by
a thread from /proc/self/status), then copies the param bytes with `np.copyto` into a preallocated buffer (the
floor), then runs RETURNN's transition of the same nets in a child process (build with its TF backend, then as its
pretraining does it, `Engine.init_new_network`: `get_params_serialized`, a new graph and session, the new net
built and initialised, `set_params_by_serialized`; its own timing, without the child's start-up). The figures are
medians of the interleaved rounds. A RETURNN failure (e.g. a RecursionError) or a run past --returnn-timeout is
reported as the result; where returnn is not installed, a note says so.

    python bench/transition.py                      # 16 linear layers of 4096 units (~1 GB of params)
    python bench/transition.py --layers 4 --units 256   # a quick run
    python bench/transition.py --adam               # also carry Adam's slots (2x the param bytes more)
    python bench/transition.py --depth              # 1000 linear layers of 64 units: the depth targets
    python bench/transition.py --depth --layers 3000 --copy-param-mode preserve
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import threading
import time

# This file is named like the package: drop its own directory from the import path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

# bench/ is off the path (see above): load the shared helpers by file.
_spec = importlib.util.spec_from_file_location("_common", os.path.join(_HERE, "_common.py"))
_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_common)
interleaved_medians, median_ratio, net_dict = _common.interleaved_medians, _common.median_ratio, _common.net_dict

DEPTH_LAYERS, DEPTH_UNITS = 1000, 64
DEPTH_TARGET_S, BUILD_TARGET_X = 2.0, 4.0  # transition <= 2 s; first build <= 4x the transition


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


# ----------------------------------------------------------------------------------------------- RETURNN (child)

def returnn_child(layers: int, units: int, mode: str | None) -> None:
    """Build the net in RETURNN (TF backend, graph mode) and do its pretraining transition; print JSON lines."""
    import tensorflow as tf
    from returnn.config import Config
    from returnn.tf.network import TFNetwork

    tf1 = tf.compat.v1
    config = Config({"extern_data": {"data": {"dim": units}}})

    def build(d):
        graph = tf1.Graph()
        with graph.as_default():
            net = TFNetwork(config=config, train_flag=False)
            net.construct_from_dict(d)
            session = tf1.Session(graph=graph)
            net.initialize_params(session=session)
        return graph, net, session

    def emit(**kv):
        print(json.dumps(kv), flush=True)

    try:
        t = time.perf_counter()
        _, net, session = build(net_dict(layers, units))
        emit(build=time.perf_counter() - t)
        t = time.perf_counter()
        params = net.get_params_serialized(session)  # as Engine.init_new_network
        session.close()
        del net
        graph, net, session = build(net_dict(layers + 1, units))
        with graph.as_default():
            net.set_params_by_serialized(params, session=session, copy_param_mode=mode, ignore_wrong_shape=True,
                                         ignore_non_existing=True)
        emit(transition=time.perf_counter() - t)
    except RecursionError:
        emit(error="RecursionError")


class Returnn:
    """RETURNN's transition, one child process per round; `.times` its own timings, `.failure` why it stopped."""

    def __init__(self, layers: int, units: int, mode: str | None, timeout: float):
        self.layers, self.units, self.mode, self.timeout = layers, units, mode, timeout
        self.times: list[float] = []
        self.builds: list[float] = []
        self.failure: str | None = None
        if importlib.util.find_spec("returnn") is None:
            self.failure = "returnn is not installed (pip install returnn): no comparison"
        elif mode not in (None, "ifpossible", "subset", "reset"):
            self.failure = f"RETURNN has no copy_param_mode {mode!r}: no comparison"

    def __call__(self) -> None:
        if self.failure is not None:
            return
        cmd = [sys.executable, os.path.abspath(__file__), "--returnn-child", "--layers", str(self.layers),
               "--units", str(self.units)] + (["--copy-param-mode", self.mode] if self.mode else [])
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout).stdout
            timed_out = False
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            timed_out = True
        lines = {k: v for line in out.splitlines() if line.startswith("{") for k, v in json.loads(line).items()}
        if "build" in lines:
            self.builds.append(lines["build"])
        if "transition" in lines:
            self.times.append(lines["transition"])
        elif "error" in lines:
            self.failure = f"{lines['error']} at {self.layers} layers"
        elif timed_out:
            built = f" (its build took {lines['build']:.1f} s)" if "build" in lines else " (its build did not finish)"
            self.failure = f"did not finish the transition within --returnn-timeout={self.timeout:.0f} s{built}"
        else:
            self.failure = "the child failed: " + (out.strip().splitlines() or ["no output"])[-1]

    def line(self, ours: float) -> str:
        if self.times:
            med = statistics.median(self.times)
            return (f"RETURNN's transition: {med:.3f} s (median of {len(self.times)}; its first build "
                    f"{statistics.median(self.builds):.3f} s); ours is {med / ours:.1f}x as fast")
        return f"RETURNN: {self.failure}"


# ----------------------------------------------------------------------------------------------- ours

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=None, help="linear layers before the transition (default 16; "
                    f"{DEPTH_LAYERS} with --depth)")
    ap.add_argument("--units", type=int, default=None, help="units per layer and input dim (default 4096; "
                    f"{DEPTH_UNITS} with --depth)")
    ap.add_argument("--depth", action="store_true", help=f"the depth targets: transition <= {DEPTH_TARGET_S:g} s, "
                    f"first build <= {BUILD_TARGET_X:g}x the transition")
    ap.add_argument("--adam", action="store_true", help="also carry the slots of a built Adam optimizer")
    ap.add_argument("--copy-param-mode", default=None, help="the transition's copy_param_mode (default None)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--returnn-timeout", type=float, default=300.0, help="seconds for RETURNN's run (default 300)")
    ap.add_argument("--no-returnn", action="store_true", help="skip RETURNN")
    ap.add_argument("--returnn-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    layers = args.layers or (DEPTH_LAYERS if args.depth else 16)
    units = args.units or (DEPTH_UNITS if args.depth else 4096)
    if args.returnn_child:
        returnn_child(layers, units, args.copy_param_mode)
        return
    run(args, layers, units)


def run(args: argparse.Namespace, layers: int, units: int) -> None:
    from transition.network._network import Network
    from transition.network._transition import transition_network

    extern_data = {"data": {"dim": units}}
    old_dict, new_dict = net_dict(layers, units), net_dict(layers + 1, units)
    Network.from_dict(net_dict(2, units), extern_data)  # warm up TF and Keras (not timed)
    param_bytes = 4 * (units * units + units) * layers
    src = np.ones(param_bytes // 4, dtype=np.float32)
    dst = np.zeros_like(src)  # touched
    state: dict = {}
    peaks: list[int] = []
    results: list = []

    def first_build():
        state["old"] = Network.from_dict(old_dict, extern_data)
        if args.adam:
            import keras

            state["optimizer"] = keras.optimizers.Adam(1e-3)
            state["optimizer"].build(state["old"].trainable_variables)

    def transition():
        old, optimizer = state.pop("old"), state.pop("optimizer", None)
        gc.collect()
        baseline = rss_bytes()
        with PeakRSS() as peak:
            t = time.perf_counter()
            result = transition_network(old, new_dict, extern_data=extern_data, epoch=2, optimizer=optimizer,
                                        copy_param_mode=args.copy_param_mode)
            state["timings"] = dict(result.timings, total=time.perf_counter() - t)
        del old, optimizer
        peaks.append(peak.peak - baseline)
        results[:] = [result]

    returnn = Returnn(layers, units, args.copy_param_mode, args.returnn_timeout)
    if args.no_returnn:
        returnn.failure = "skipped (--no-returnn)"
    step_times: dict[str, list[float]] = {}

    def transition_and_steps():
        transition()
        for step, seconds in state["timings"].items():
            step_times.setdefault(step, []).append(seconds)

    contenders = {"first build": first_build, "transition": transition_and_steps,
                  "np.copyto": lambda: np.copyto(dst, src), "RETURNN": returnn}
    medians, times = interleaved_medians(contenders, args.rounds, before=None)
    times["transition"] = step_times["total"]  # timed inside (without the RSS baseline's gc.collect)
    medians["transition"] = statistics.median(times["transition"])
    report(args, layers, units, medians, times, step_times, peaks, results[0], returnn, param_bytes)


def report(args, layers, units, medians, times, step_times, peaks, result, returnn, param_bytes) -> None:
    n_new = sum(int(np.prod(v.shape)) for v in result.network.param_variables().values())
    ours, build, floor = medians["transition"], medians["first build"], medians["np.copyto"]
    print(f"{layers} linear layers of {units} units -> {layers + 1}; params {param_bytes / 4 / 1e6:.2f}M -> "
          f"{n_new / 1e6:.2f}M ({param_bytes / 2**30:.3f} GiB float32); copy_param_mode={args.copy_param_mode}; "
          f"medians of {args.rounds} interleaved rounds")
    print(f"report: {len(result.report)} params; " + str(result.report).splitlines()[-1])
    print(f"np.copyto of the param bytes (floor): {floor:.4f} s")
    print(f"first build: {build:.3f} s")
    for step, seconds in step_times.items():
        if step == "total":
            continue
        print(f"  {step:9s} {statistics.median(seconds):7.3f} s")
    print(f"transition: {ours:.3f} s = {ours / floor:.1f}x np.copyto ({ours / (param_bytes / 1e9):.3f} s per GB of "
          "params; target for the 1 GB net <= 0.5 s)")
    extra = statistics.median(peaks)
    line = f"peak extra memory: {extra / 2**30:.3f} GiB = {extra / param_bytes:.2f}x param bytes (target <= 2.2x)"
    if args.adam:  # Adam keeps 2 slots per param
        line += f", {extra / (3 * param_bytes):.2f}x param + slot bytes"
    print(line)
    print(returnn.line(ours))
    if args.depth:
        ratio = median_ratio(times, "first build", "transition")  # per round: build / transition
        print(f"DEPTH {layers}x{units}: transition {ours:.3f} s (target <= {DEPTH_TARGET_S:g} s: "
              f"{'met' if ours <= DEPTH_TARGET_S else 'MISSED'}); first build {build:.3f} s = {ratio:.2f}x the "
              f"transition (target <= {BUILD_TARGET_X:g}x: {'met' if ratio <= BUILD_TARGET_X else 'MISSED'})")


if __name__ == "__main__":
    main()
