"""Distributed training (training._distribute, training._dist_data): MirroredStrategy over 2 logical CPU devices
and MultiWorkerMirroredStrategy with 2 worker processes on 127.0.0.1 (TF_CONFIG), each bounded in time; every
test kills only the processes it started (by their Popen object, i.e. their pid)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from tests.training.test_manager import CLI_CONFIG  # pretrain adds l2 at epoch 2 (a transition), an importer

WORKER = str(Path(__file__).with_name("dist_worker.py"))
ROOT = str(Path(__file__).resolve().parents[2])
LAUNCH_TIMEOUT = 240  # seconds a 2-worker job may take on a loaded 2-core machine (it takes ~20 s alone)



# ------------------------------------------------------------------------------------------------ in-process


def test_distribution_option_and_config_key(tmp_path):
    from transition.errors import ConfigError
    from transition.training._config import KNOWN_KEYS
    from transition.training._manager import TransitionManager

    assert "distribution" in KNOWN_KEYS and "multi_worker_mirrored" in KNOWN_KEYS["distribution"].help
    net = {"output": {"class": "softmax", "loss": "ce", "from": "data", "target": "classes"}}
    extern = {"data": {"shape": (4,)}, "classes": {"dim": 2, "sparse": True, "shape": ()}}
    with pytest.raises(ConfigError, match="option 'distribution' must be 'mirrored' or 'multi_worker_mirrored'"):
        TransitionManager(str(tmp_path / "m"), net, extern_data=extern, num_epochs=1, distribution="mirror")
    with pytest.raises(ConfigError, match="either strategy .* or distribution"):
        TransitionManager(str(tmp_path / "m"), net, extern_data=extern, num_epochs=1, distribution="mirrored",
                          strategy=object())
    cfg = {"model": str(tmp_path / "m"), "extern_data": extern, "network": net, "num_epochs": 1,
           "distribution": "multi_worker"}
    with pytest.raises(ConfigError, match="'distribution'"):
        TransitionManager.from_config(cfg)


def test_a_global_batch_splits_like_np_array_split():
    from transition.training._dist_data import _bounds

    for n in range(0, 13):
        for replicas in (1, 2, 3, 4):
            parts = [np.arange(n)[slice(*_bounds(n, replicas, r))] for r in range(replicas)]
            expected = np.array_split(np.arange(n), replicas)
            assert [p.tolist() for p in parts] == [e.tolist() for e in expected]


def test_one_worker_collectives_are_identities_and_a_lost_peer_says_what_to_do():
    import tensorflow as tf

    from transition.errors import ClusterError, TransitionError
    from transition.store._info import CheckpointInfo
    from transition.training._distribute import Cluster, follow_chief, worker_failure

    one = Cluster()
    assert (one.num_workers, one.worker, one.is_chief, one.multi_worker) == (1, 0, True, False)
    assert one.all_sum([3, 4]).tolist() == [3, 4] and not one.any(False) and one.any(True) and one.barrier()
    assert one.chief_scores({"dev_score": 0.5}) == {"dev_score": 0.5}
    info = CheckpointInfo(prefix="m.001", epoch=1, step=0, epoch_finished=True, committed=True)
    assert follow_chief(one, info, None, "m") is info and follow_chief(one, None, None, "m") is None
    with pytest.raises(ValueError, match="no"):
        follow_chief(one, None, ValueError("no"), "m")
    error = tf.errors.UnavailableError(None, None, "Collective ops is aborted by: The following tasks are "
                                       "unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\nmore")
    assert worker_failure(error, one) is None  # one worker: TF's error as it is
    two = Cluster()
    two.num_workers, two.worker, two.is_chief = 2, 1, False
    two.last_checkpoint = "runs/net.002.step00000003"
    failure = worker_failure(error, two)
    assert isinstance(failure, ClusterError) and isinstance(failure, TransitionError)
    assert "worker 1 of 2: another worker of the cluster stopped or cannot be reached" in str(failure)
    assert "/job:worker/replica:0/task:1" in str(failure) and "Relaunch all 2 workers" in str(failure)
    assert "(runs/net.002.step00000003)" in str(failure)
    assert worker_failure(ValueError("x"), two) is None


# ------------------------------------------------------------------------------------------------ MirroredStrategy

MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from transition.errors import ConfigError
    from transition.training._data import numpy_batches
    from transition.training._loop import make_train_step, train_from_config
    from transition.training._manager import TransitionManager

    root = sys.argv[1]
    out = {}
    EXTERN = {"data": {"shape": (4,)}, "classes": {"dim": 3, "sparse": True, "shape": ()}}
    NET = {"l1": {"class": "linear", "activation": "tanh", "n_out": 5, "from": "data"},
           "output": {"class": "softmax", "loss": "ce", "from": "l1", "target": "classes"}}
    x = np.random.RandomState(0).randn(30, 4).astype("float32")
    data = {"data": x, "classes": (np.abs(x[:, 0] * 2).astype("int32") % 3)}
    from transition.training._distribute import make_strategy
    strategy = make_strategy("mirrored")  # the one of distribution = "mirrored" below too (one per process)
    assert strategy.num_replicas_in_sync == 2
    mirrored = lambda: strategy

    def params(mgr):
        return {k: v.numpy() for k, v in mgr.network.param_variables().items()}

    def loop(name, strategy):  # a custom loop over a net dict: global batches of 8 (the last one 6 rows)
        mgr = TransitionManager(f"{root}/{name}/net", NET, extern_data=EXTERN, num_epochs=2, strategy=strategy,
                                optimizer=lambda: keras.optimizers.SGD(0.5), log=lambda s: None)
        sizes = []
        with mgr:
            for epoch in mgr.epochs():
                step = make_train_step(mgr.network, mgr.optimizer, mgr.strategy)
                for batch in mgr.batches(numpy_batches(data, 8, seed=mgr.shuffle_seed())):
                    if strategy is not None:
                        sizes.append([int(t.shape[0]) for t in strategy.experimental_local_results(batch["data"])])
                    step(batch)
                mgr.end_epoch({})
        var = mgr.network.param_variables()["l1/W"]
        return params(mgr), sizes, isinstance(var.value, tf.distribute.DistributedValues)

    one, _, _ = loop("one", None)
    two, sizes, distributed = loop("two", mirrored())
    out["loop"] = {"diff": max(float(np.abs(one[k] - two[k]).max()) for k in one), "sizes": sizes,
                   "distributed": distributed}

    WIDE = dict(NET, l1=dict(NET["l1"], n_out=8))  # "preserve" widens l1 at epoch 2 under the strategy
    grow = TransitionManager(f"{root}/grow/net", get_network=lambda epoch: NET if epoch < 2 else WIDE,
                             extern_data=EXTERN, num_epochs=2, strategy=mirrored(), copy_param_mode="preserve",
                             verify_inputs={"data": x}, optimizer=lambda: keras.optimizers.SGD(0.5),
                             log=lambda s: None)
    with grow:
        for epoch in grow.epochs():
            if epoch == 2:
                check, w = grow.last_transition.report.output_check, grow.network.param_variables()["l1/W"]
                out["grow"] = {"diff": check.max_abs_diff, "examples": check.examples, "shape": list(w.shape),
                               "distributed": isinstance(w.value, tf.distribute.DistributedValues)}
            step = make_train_step(grow.network, grow.optimizer, grow.strategy)
            for batch in grow.batches(numpy_batches(data, 8, seed=grow.shuffle_seed())):
                step(batch)
            grow.end_epoch({})

    def keras_model():
        inp = keras.Input((4,), name="x")
        h = keras.layers.Dense(6, activation="tanh", name="hidden")(inp)
        return keras.Model(inp, keras.layers.Dense(3, name="out")(h))

    def fit(name, strategy):
        mgr = TransitionManager(f"{root}/{name}/net", get_network=lambda epoch: keras_model(), num_epochs=2,
                                strategy=strategy, optimizer=lambda: keras.optimizers.SGD(0.5), log=lambda s: None)
        ds = lambda seed: tf.data.Dataset.from_tensor_slices((x, data["classes"])).shuffle(  # the same order with a
            32, seed=seed, reshuffle_each_iteration=False).batch(8)  # strategy: no reshuffle (a new one per epoch)
        mgr.fit(lambda seed: ds(seed).take(3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return params(mgr)

    one, two = fit("fit-one", None), fit("fit-two", mirrored())
    out["fit"] = max(float(np.abs(one[k] - two[k]).max()) for k in one)

    outside = keras_model()
    try:
        TransitionManager(f"{root}/outside/net", outside, num_epochs=1, strategy=mirrored()).fit(
            tf.data.Dataset.from_tensor_slices((x, data["classes"])).batch(8), loss="mse")
    except ConfigError as exc:
        out["outside"] = str(exc)

    from transition.training._backup import BackupAndRestore
    with strategy.scope():  # the drop-in under a plain model.fit on 2 replicas
        model = keras_model()
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    ds = tf.data.Dataset.from_tensor_slices((x, x[:, :3])).batch(8)
    model.fit(ds, epochs=2, verbose=0, callbacks=[BackupAndRestore(f"{root}/backup", delete_checkpoint=False)])
    backup = BackupAndRestore(f"{root}/backup", delete_checkpoint=False)
    model.fit(ds, epochs=3, verbose=0, callbacks=[backup])
    out["backup"] = backup.resumed_from

    runs = {}
    sgd = ["--optimizer={'class': 'sgd'}", "--learning_rate=0.1"]
    for name, extra in (("cli-one", []), ("cli-two", ["--distribution=mirrored"])):
        for n in ("2", "3"):  # the second run resumes (another manager, as after a restart)
            mgr = train_from_config(sys.argv[2], [f"--model={root}/{name}/net", "--num_epochs=" + n, *sgd, *extra])
        runs[name] = params(mgr)
        out[name + "-replicas"] = mgr.strategy.num_replicas_in_sync if mgr.strategy is not None else 1
    out["cli"] = max(float(np.abs(runs["cli-one"][k] - runs["cli-two"][k]).max()) for k in runs["cli-one"])
    print("RESULT " + json.dumps(out))
    """
)



def test_mirrored_two_replicas_train_like_one(tmp_path):
    """MirroredStrategy over 2 logical CPUs: a custom loop, mgr.fit and `transition train` (distribution =
    "mirrored", with a transition and a resume) give the params of one replica with the same global batch; a
    "preserve" growth under the strategy keeps the output (verify_inputs)."""
    script, cfg = tmp_path / "m.py", tmp_path / "c.config"
    script.write_text(MIRRORED_SCRIPT)
    cfg.write_text(CLI_CONFIG)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.run([sys.executable, str(script), str(tmp_path / "runs"), str(cfg)], env=env, capture_output=True,
                       text=True, timeout=LAUNCH_TIMEOUT)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.split("RESULT ", 1)[1])
    assert out["loop"]["distributed"] and out["loop"]["diff"] < 1e-5
    assert out["loop"]["sizes"] == [[4, 4]] * 3 + [[3, 3]] + [[4, 4]] * 3 + [[3, 3]]  # per-replica batch B/2
    assert out["fit"] < 1e-5
    assert out["grow"]["distributed"] and out["grow"]["shape"] == [4, 8]  # grown, on both replicas
    assert out["grow"]["examples"] == 30 and out["grow"]["diff"] < 1e-6  # verify_inputs: the output kept
    assert "built outside the strategy's scope" in out["outside"] and "hidden" in out["outside"]
    assert out["backup"].endswith("backup.002")
    assert out["cli-one-replicas"] == 1 and out["cli-two-replicas"] == 2 and out["cli"] < 1e-5
    assert "transition +l2" in p.stdout and "resuming from" in p.stdout


# ------------------------------------------------------------------------------------------ MultiWorkerMirrored

# CLI_CONFIG with 37 rows in batches of 8: 5 steps an epoch, the last batch (5 rows) split 3 + 2 across the workers;
# mid-epoch saves every 3 steps (later assignments of a config win)
MW_CONFIG = CLI_CONFIG + textwrap.dedent(
    """
    _x = np.random.RandomState(1).randn(37, 4).astype("float32")
    train = {"data": _x, "classes": (_x[:, 0] > 0).astype("int32")}
    dev = train
    batch_size = 8
    save_every_n_steps = 3
    deterministic = True
    distribution = "multi_worker_mirrored"
    random_seed = 7
    """
)


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    except OSError as exc:
        pytest.skip(f"no free port on 127.0.0.1 for the workers: {exc}")
    finally:
        for s in socks:
            s.close()


class Job:
    """The processes of one launch (2 workers with TF_CONFIG, or 1 without); kills only its own on `stop`."""

    def __init__(self, out: Path, args: list[str], *, workers: int = 2, delay: float = 0.0):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        ports = _free_ports(workers) if workers > 1 else []
        self.procs: list[subprocess.Popen] = []
        self.logs = [out / f"w{i}.log" for i in range(workers)]
        for i in range(workers):
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", STEP_DELAY=str(delay),
                       PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
            env.pop("TF_CONFIG", None)
            if workers > 1:
                env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                               "task": {"type": "worker", "index": i}})
            with open(self.logs[i], "w") as log:
                self.procs.append(subprocess.Popen(
                    [sys.executable, WORKER, str(out), *args],
                    stdout=log, stderr=subprocess.STDOUT, env=env))

    def log(self, i: int) -> str:
        return self.logs[i].read_text(errors="replace")

    def wait_for(self, i: int, pattern: str, timeout: float = LAUNCH_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.log(i), re.M):
            if any(p.poll() is not None for p in self.procs) or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"worker {i} never printed {pattern!r}:\n{self.log(i)[-3000:]}")
            time.sleep(0.05)

    def wait(self, timeout: float = LAUNCH_TIMEOUT) -> list[int]:
        deadline = time.monotonic() + timeout
        try:
            return [p.wait(timeout=max(deadline - time.monotonic(), 0.1)) for p in self.procs]
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail("a worker did not exit in time:\n" + "\n----\n".join(self.log(i)[-2000:]
                                                                            for i in range(len(self.procs))))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)

    def params(self, i: int) -> dict[str, np.ndarray]:
        with np.load(self.out / f"worker{i}.npz") as f:
            return {k: f[k] for k in f.files}


@pytest.fixture
def jobs():
    started: list[Job] = []
    yield started
    for job in started:
        job.stop()


def _run(jobs: list[Job], out: Path, config: Path, model: Path, *extra: str, **kwargs) -> Job:
    """A `transition train` job (dist_worker.py's "cli" mode)."""
    job = Job(out, ["cli", str(config), f"--model={model}", *extra], **kwargs)
    jobs.append(job)
    return job


def _fit(jobs: list[Job], out: Path, model: Path, distribution: str = "multi_worker_mirrored", **kwargs) -> Job:
    """A `mgr.fit` job over a growing Keras model (dist_worker.py's "fit" mode)."""
    job = Job(out, ["fit", str(model), distribution], **kwargs)
    jobs.append(job)
    return job


def _assert_finished(job: Job, codes: list[int], done: str = "done: epoch 3/3") -> None:
    assert codes == [0] * len(codes), "\n----\n".join(job.log(i)[-3000:] for i in range(len(codes)))
    for i in range(len(codes)):
        assert done in job.log(i) and (job.out / f"worker{i}.npz").exists()


@pytest.fixture(scope="module")
def mw_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("mw") / "mw.config"
    path.write_text(MW_CONFIG)
    return path


@pytest.fixture(scope="module")
def reference(mw_config, tmp_path_factory):
    """An uninterrupted 2-worker job, and the same job in one process without a strategy."""
    root = tmp_path_factory.mktemp("reference")
    started: list[Job] = []
    try:
        two = _run(started, root / "two", mw_config, root / "two-model" / "network")
        one = _run(started, root / "one", mw_config, root / "one-model" / "network", "--distribution=None",
                   workers=1)
        _assert_finished(two, two.wait())
        _assert_finished(one, one.wait())
    finally:
        for job in started:
            job.stop()
    return two, one


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), name


def test_two_workers_train_like_one_and_hold_identical_params(reference):
    two, one = reference
    w0, w1, single = two.params(0), two.params(1), one.params(0)
    _assert_same(w0, w1)  # bit for bit on both workers
    for name in single:  # the global batch split across the workers is the single-worker step
        np.testing.assert_allclose(w0[name], single[name], atol=1e-5, err_msg=name)
    assert "transition +l2" in two.log(0) and "transition +l2" in two.log(1)
    assert json.loads((two.out / "writes1.json").read_text()) == []  # worker 1 wrote nothing into the model dir
    files = sorted(os.listdir(two.out.parent / "two-model"))
    assert files == sorted(["network.lock"] + [f"network.{e:03d}{s}" for e in (2, 3) for s in (
        ".commit.json", ".data-00000-of-00001", ".index", ".state.json")])


def _interrupted(jobs: list[Job], tmp_path: Path, mw_config: Path, worker: int, step: str) -> tuple[Job, Path]:
    """A 2-worker job (0.15 s a step) that has reached `step` ("EPOCH STEP") on `worker`, and its model."""
    model = tmp_path / "model" / "network"
    job = _run(jobs, tmp_path / "a", mw_config, model, delay=0.15)
    job.wait_for(worker, f"^step {step}$")
    return job, model


def _relaunched(jobs: list[Job], tmp_path: Path, mw_config: Path, model: Path, expected: dict) -> Job:
    """The same job run again on `model` to its end; both workers end with the `expected` params, bit for bit."""
    again = _run(jobs, tmp_path / "b", mw_config, model)
    _assert_finished(again, again.wait())
    for i in (0, 1):
        _assert_same(again.params(i), expected)
    return again


def test_sigterm_to_worker_1_saves_on_both_at_one_step_and_resumes_exactly(reference, mw_config, tmp_path, jobs):
    job, model = _interrupted(jobs, tmp_path, mw_config, 1, "2 2")
    job.procs[1].send_signal(signal.SIGTERM)
    assert job.wait() == [75, 75], job.log(0)[-2000:] + job.log(1)[-2000:]
    saved = _preempted_at(job)
    assert saved[0] == saved[1]  # the same step on both
    assert os.path.exists(saved[0][0] + ".commit.json")
    again = _relaunched(jobs, tmp_path, mw_config, model, reference[0].params(0))
    assert f"resuming from {saved[0][0]}" in again.log(1)


def _catches(pid: int, sig: int) -> bool:
    """Whether process `pid` has a handler for `sig` (Linux: SigCgt of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(mask >> (sig - 1) & 1)


def test_sigusr1_to_the_chief_while_starting_stops_both_after_one_step_and_resumes_exactly(
        reference, mw_config, tmp_path, jobs):
    """A signal to worker 0 once `transition train` holds signals (before the manager's handler, while the cluster
    forms): both workers save the first step and exit 75 (not one 75 and a ClusterError), the relaunch ends
    bit-identical."""
    model = tmp_path / "model" / "network"
    job = _run(jobs, tmp_path / "a", mw_config, model, delay=0.15)
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    while not _catches(job.procs[0].pid, signal.SIGUSR1):
        assert job.procs[0].poll() is None and time.monotonic() < deadline, job.log(0)[-3000:]
        time.sleep(0.01)
    job.procs[0].send_signal(signal.SIGUSR1)
    assert job.wait() == [75, 75], job.log(0)[-2000:] + job.log(1)[-2000:]
    assert "preempted (SIGUSR1) while a multi-worker job starts" in job.log(0)
    found = [re.search(r"preempted \((.*)\): saved (\S+) at epoch (\d+) step (\d+)", job.log(i)) for i in (0, 1)]
    assert found[0] and found[1], job.log(0)[-2000:] + job.log(1)[-2000:]
    assert found[0].group(1) == "SIGUSR1" and found[1].group(1) == "a signal to another worker"
    assert found[0].group(2, 3, 4) == found[1].group(2, 3, 4) and found[0].group(3, 4) == ("1", "1")
    _relaunched(jobs, tmp_path, mw_config, model, reference[0].params(0))


def test_sigkill_of_both_workers_then_relaunch_ends_bit_identical(reference, mw_config, tmp_path, jobs):
    job, model = _interrupted(jobs, tmp_path, mw_config, 0, "2 3")
    for p in job.procs:
        p.send_signal(signal.SIGKILL)
    assert job.wait() == [-9, -9]
    again = _relaunched(jobs, tmp_path, mw_config, model, reference[0].params(0))
    assert re.search(r"resuming from \S+network\.002(\.step\d+)?", again.log(0)), again.log(0)


def test_a_killed_worker_stops_the_other_within_60s_and_the_job_resumes(reference, mw_config, tmp_path, jobs):
    job, model = _interrupted(jobs, tmp_path, mw_config, 1, "2 1")
    job.procs[1].send_signal(signal.SIGKILL)
    t0 = time.monotonic()
    code = job.procs[0].wait(timeout=90)
    assert time.monotonic() - t0 < 60, "worker 0 took more than 60 s to stop"
    assert code == 1, job.log(0)[-3000:]
    assert "another worker of the cluster stopped or cannot be reached" in job.log(0)
    assert "Relaunch all 2 workers" in job.log(0)
    _relaunched(jobs, tmp_path, mw_config, model, reference[0].params(0))


def _preempted_at(job: Job) -> list[tuple[str, str, str]]:
    """(prefix, epoch, step) of the preemption save each worker logged."""
    found = [re.search(r"preempted \((.*)\): saved (\S+) at epoch (\d+) step (\d+)", job.log(i)) for i in (0, 1)]
    assert found[0] and found[1], job.log(0)[-2000:] + job.log(1)[-2000:]
    assert found[1].group(1) == "SIGTERM" and found[0].group(1) == "a signal to another worker"
    return [m.group(2, 3, 4) for m in found]


def test_fit_of_a_growing_keras_model_on_two_workers_preempted_and_resumed(tmp_path, jobs):
    """mgr.fit under MultiWorkerMirroredStrategy: the same params on both workers as one process without a strategy
    (a tf.data pipeline of global batches, DATA-sharded); SIGTERM to worker 1 mid-fit, relaunch: bit-identical."""
    whole = _fit(jobs, tmp_path / "whole", tmp_path / "whole-model" / "net")
    one = _fit(jobs, tmp_path / "one", tmp_path / "one-model" / "net", "None", workers=1)
    _assert_finished(whole, whole.wait(), done="step 3 5")
    _assert_finished(one, one.wait(), done="step 3 5")
    _assert_same(whole.params(0), whole.params(1))
    for name, value in one.params(0).items():
        np.testing.assert_allclose(whole.params(0)[name], value, atol=1e-5, err_msg=name)
    assert whole.params(0)["hidden/kernel"].shape == (4, 6)  # grown at epoch 2

    model = tmp_path / "model" / "net"
    job = _fit(jobs, tmp_path / "a", model, delay=0.15)
    job.wait_for(1, r"^step 2 2$")
    job.procs[1].send_signal(signal.SIGTERM)
    assert job.wait() == [75, 75], job.log(0)[-2000:] + job.log(1)[-2000:]
    saved = _preempted_at(job)
    assert saved[0] == saved[1]
    again = _fit(jobs, tmp_path / "b", model)
    _assert_finished(again, again.wait(), done="step 3 5")
    assert json.loads((again.out / "writes1.json").read_text()) == []
    for i in (0, 1):
        _assert_same(again.params(i), whole.params(0))


class _FakeMultiWorker:
    """Looks like a MultiWorkerMirroredStrategy of 2 workers to `Cluster` (no TF cluster needed)."""

    class cluster_resolver:  # noqa: N801 - the strategy's attribute
        task_type, task_id = "worker", 1

        @staticmethod
        def cluster_spec():
            import tensorflow as tf

            return tf.train.ClusterSpec({"worker": ["127.0.0.1:1", "127.0.0.1:2"]})

    class extended:  # noqa: N801
        should_checkpoint = False


def test_backup_and_restore_refuses_a_multi_worker_fit(tmp_path):
    import keras

    from transition.errors import ConfigError
    from transition.training._backup import BackupAndRestore
    from transition.training._distribute import Cluster

    cluster = Cluster(_FakeMultiWorker())
    assert (cluster.num_workers, cluster.worker, cluster.is_chief) == (2, 1, False)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")], name="fake_mw")
    model.compile(optimizer="sgd", loss="mse")
    model._distribute_strategy = _FakeMultiWorker()  # what `model.distribute_strategy` gives (fit's strategy)
    backup = BackupAndRestore(tmp_path / "backup")
    backup.set_model(model)
    with pytest.raises(ConfigError, match="MultiWorkerMirroredStrategy of 2 workers.*distribution="):
        backup.on_train_begin()  # what fit calls first
    assert not (tmp_path / "backup").exists()  # nothing written
