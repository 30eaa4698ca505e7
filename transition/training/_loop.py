"""The reference training loop of `transition train`, and its data helpers.

Data: a dict of numpy arrays keyed like extern_data (shuffled per epoch with a seed derived from the job's seed and
the epoch, so a resumed epoch sees the same order and skips what was trained), or a function returning a
tf.data.Dataset (called with `epoch` / `seed` where it accepts them; the user makes it deterministic).
One line per epoch: epoch, steps, scores, learning rate, time and what the transition did.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from transition.training._log import format_epoch_line
from transition.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from transition.training._config import Config
    from transition.training._manager import TransitionManager
    from transition.network._network import Network

__all__ = [
    "epoch_seed",
    "check_numpy_data",
    "numpy_batches",
    "num_numpy_batches",
    "data_for_epoch",
    "LossMeter",
    "ProgressBar",
    "make_train_step",
    "evaluate",
    "format_epoch_line",
    "train_from_config",
]


# --------------------------------------------------------------------------------------------------------- data


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed derived from the job's seed and the epoch (stable across processes and platforms)."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF, 0x7472616E])
    hi, lo = (int(x) for x in ss.generate_state(2, np.uint32))
    return ((hi << 32) | lo) & ((1 << 63) - 1)


def check_numpy_data(name: str, data: Mapping[str, Any], extern_data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Check a dict of arrays against extern_data (known keys, equal numbers of rows); returns numpy arrays."""
    arrays = {}
    for key, value in data.items():
        if key not in extern_data:
            raise ConfigError(
                f"{name} data has key {key!r}, which is not in extern_data{did_you_mean(key, extern_data)}; "
                f"use the extern_data keys {sorted(extern_data)}"
            )
        arrays[key] = np.asarray(value)
    if not arrays:
        raise ConfigError(f"{name} data is empty; give a dict of numpy arrays keyed like extern_data")
    sizes = {key: len(a) for key, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ConfigError(f"{name} data arrays have different numbers of rows: {sizes}; they must be equal")
    if next(iter(sizes.values())) == 0:
        raise ConfigError(f"{name} data has no rows")
    return arrays


def num_numpy_batches(arrays: Mapping[str, np.ndarray], batch_size: int) -> int:
    """The number of batches (the last one may be smaller)."""
    n = len(next(iter(arrays.values())))
    return -(-n // batch_size)


def numpy_batches(
    arrays: Mapping[str, np.ndarray], batch_size: int, *, seed: int | None, start: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """Batches of `arrays` in the order of a permutation drawn from `seed` (None: in order), from batch `start`."""
    n = len(next(iter(arrays.values())))
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    for b in range(start, -(-n // batch_size)):
        idx = order[b * batch_size : (b + 1) * batch_size]
        yield {key: a[idx] for key, a in arrays.items()}


def data_for_epoch(name: str, data: Callable[..., Any], *, epoch: int, seed: int) -> Any:
    """Call a user's data function with the keyword arguments it accepts among `epoch` and `seed`."""
    try:
        params = inspect.signature(data).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    accepts_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in (("epoch", epoch), ("seed", seed)) if accepts_kw or k in params}
    result = data(**kwargs)
    if result is None:
        raise ConfigError(
            f"the {name} data function {getattr(data, '__name__', data)!r} returned None; "
            "it must return a tf.data.Dataset (or an iterable of dict batches)"
        )
    return result


class LossMeter:
    """The running mean of the training loss in the current epoch; its state survives a mid-epoch resume."""

    state_key = "transition.train_loss"

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, loss: float) -> None:
        self.total += float(loss)
        self.count += 1

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total, "count": self.count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        total, count = state.get("total"), state.get("count")
        if isinstance(total, bool) or not isinstance(total, (int, float)) or not isinstance(count, int) or count < 0:
            raise ConfigError(f"state of {self.state_key!r} must be {{'total': float, 'count': int}}, got {state!r}")
        self.total, self.count = float(total), count


class ProgressBar:
    """A one-line progress bar on a TTY (redrawn in place); silent elsewhere (the epoch line says it all)."""

    def __init__(self, total: int | None, label: str, out: TextIO | None = None, start: int = 0) -> None:
        self.out = out if out is not None else sys.stderr
        self.enabled = bool(getattr(self.out, "isatty", lambda: False)())
        self.total, self.label, self.done = total, label, start
        self._last = 0.0

    def update(self, n: int = 1, loss: float | None = None) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and (self.total is None or self.done < self.total):
            return
        self._last = now
        extra = f" loss {loss:.4f}" if loss is not None and math.isfinite(loss) else ""
        if self.total:
            width = 30
            filled = min(width, int(width * self.done / self.total))
            bar = "#" * filled + "." * (width - filled)
            text = f"{self.label} [{bar}] {self.done}/{self.total}{extra}"
        else:
            text = f"{self.label} {self.done} steps{extra}"
        self.out.write("\r" + text[:120].ljust(80))
        self.out.flush()

    def close(self) -> None:
        if self.enabled:
            self.out.write("\r" + " " * 80 + "\r")
            self.out.flush()


# ------------------------------------------------------------------------------------------------ train and eval


def make_train_step(network: Network, optimizer: keras.optimizers.Optimizer, strategy: tf.distribute.Strategy | None = None
                    ) -> Callable[[Mapping[str, Any]], tf.Tensor]:
    """A tf.function train step over `network.compute_loss` with `optimizer` (under `strategy` if given: each
    replica gets the batch, the loss is scaled by 1 / replicas so that the summed gradients are the mean)."""
    import tensorflow as tf

    variables = list(network.trainable_variables)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1

    def step(batch: Mapping[str, Any]) -> Any:
        with tf.GradientTape() as tape:
            loss = network.compute_loss(batch, training=True)
            scaled = loss / replicas if replicas > 1 else loss
        grads = tape.gradient(scaled, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    if strategy is None:
        return tf.function(step, reduce_retracing=True)

    @tf.function(reduce_retracing=True)
    def distributed(batch: Mapping[str, Any]) -> Any:
        per_replica = strategy.run(step, args=(batch,))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    return distributed


def _target_of(network: Network) -> str | None:
    net_dict = getattr(network, "net_dict", None) or {}
    out = net_dict.get("output") if isinstance(net_dict, Mapping) else None
    if isinstance(out, Mapping) and out.get("loss"):
        return out.get("target", "classes")
    return None


def evaluate(network: Network, batches: Iterable[Mapping[str, Any]], extern_data: Mapping[str, Any],
             prefix: str = "dev") -> dict[str, float]:
    """`{prefix}_score` (mean loss, weighted by batch size) and, for a sparse target, `{prefix}_error` (the
    fraction of wrong argmax predictions)."""
    import tensorflow as tf

    target = _target_of(network)
    sparse = bool(target and isinstance(extern_data.get(target), Mapping) and extern_data[target].get("sparse"))
    loss_sum, err_sum, n_total, n_err = 0.0, 0.0, 0, 0
    for batch in batches:
        inputs = {k: tf.convert_to_tensor(v) for k, v in batch.items()}
        n = int(next(iter(inputs.values())).shape[0])
        loss_sum += float(network.compute_loss(inputs, training=False)) * n
        n_total += n
        if sparse and target in inputs:
            out = network.call(inputs, training=False)
            pred = tf.argmax(out, axis=-1, output_type=inputs[target].dtype)
            wrong = tf.cast(tf.not_equal(pred, inputs[target]), tf.float64)
            err_sum += float(tf.reduce_sum(wrong))
            n_err += int(tf.size(wrong))
    scores = {f"{prefix}_score": loss_sum / n_total if n_total else float("nan")}
    if n_err:
        scores[f"{prefix}_error"] = err_sum / n_err
    return scores


# ----------------------------------------------------------------------------------------------- the whole loop


def train_from_config(
    config: str | Mapping[str, Any] | Config,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    *,
    resume: bool = True,
    out: TextIO | None = None,
    progress: TextIO | None = None,
    step_hook: Callable[[int, int], None] | None = None,
    callbacks: Iterable[object] = (),
    strategy: tf.distribute.Strategy | None = None,
) -> TransitionManager:
    """Run the reference loop for a config (a path, dict or Config); returns the TransitionManager (closed).

    `step_hook(epoch, step_in_epoch)` runs after every training step, before the step is counted (tests use it to
    interrupt a run). `callbacks` are added to the config's; `strategy` (e.g. MirroredStrategy) builds and trains
    the networks in its scope.
    """
    from transition.training._config import load_config
    from transition.training._manager import TransitionManager

    out = out if out is not None else sys.stdout
    cfg = load_config(config, overrides)
    log = _Log(out, cfg["log"], int(cfg["log_verbosity"]))
    try:
        mgr = TransitionManager.from_config(cfg, resume=resume, callbacks=list(callbacks), strategy=strategy,
                                            log=lambda s: log(s, 2))
        return _train(mgr, log, progress, step_hook)
    finally:
        log.close()


class _Log:
    """Lines to `out` and, with the config's `log` option, appended to that file; `log_verbosity` filters:
    >= 2 loading / resume / preemption lines, >= 3 one line per epoch (default), >= 4 the transition reports."""

    def __init__(self, out: TextIO, path: Any, verbosity: int) -> None:
        self.out, self.verbosity = out, verbosity
        self.file = None
        if path:
            import os

            directory = os.path.dirname(os.fspath(path))
            if directory:
                os.makedirs(directory, exist_ok=True)
            self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def __call__(self, line: str, level: int) -> None:
        if level > self.verbosity:
            return
        print(line, file=self.out, flush=True)
        if self.file is not None:
            print(line, file=self.file, flush=True)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _train(mgr: TransitionManager, log: _Log, progress: TextIO | None,
           step_hook: Callable[[int, int], None] | None) -> TransitionManager:
    import tensorflow as tf

    cfg = mgr.config
    extern_data = mgr.extern_data
    batch_size = int(cfg["batch_size"])
    train, dev = cfg["train"], cfg["dev"]
    if train is None:
        raise ConfigError(f"{cfg.where()}: option 'train' is required for training: a dict of numpy arrays keyed like "
                          "extern_data, or a function returning a tf.data.Dataset of such dicts")
    train_arrays = check_numpy_data("train", train, extern_data) if isinstance(train, Mapping) else None
    dev_arrays = check_numpy_data("dev", dev, extern_data) if isinstance(dev, Mapping) else None
    meter = LossMeter()
    mgr.register_callback(meter)
    step_fn, step_for = None, (None, None)
    with mgr:
        for epoch in mgr.epochs():
            t0 = time.monotonic()
            if mgr.step_in_epoch == 0:
                meter.reset()
            if step_for[0] is not mgr.network or step_for[1] is not mgr.optimizer:  # new after a transition
                step_for = (mgr.network, mgr.optimizer)
                step_fn = make_train_step(mgr.network, mgr.optimizer, mgr.strategy)
            seed = mgr.shuffle_seed(epoch)
            if train_arrays is not None:
                total = num_numpy_batches(train_arrays, batch_size)
                data: Iterable[Any] = numpy_batches(train_arrays, batch_size, seed=seed)
            else:
                total = None
                data = data_for_epoch("train", train, epoch=epoch, seed=seed)
            bar = ProgressBar(total, f"epoch {epoch}", progress, start=mgr.step_in_epoch)
            for batch in mgr.batches(data):
                if not isinstance(batch, Mapping):
                    raise ConfigError(f"the train data yields a {type(batch).__name__}; it must yield dict batches "
                                      f"keyed like extern_data ({sorted(extern_data)})")
                inputs = {k: tf.convert_to_tensor(v) for k, v in batch.items()}
                loss = float(step_fn(inputs))
                meter.add(loss)
                bar.update(1, meter.mean)
                if step_hook is not None:
                    step_hook(epoch, mgr.step_in_epoch + 1)
            bar.close()
            steps = mgr.step_in_epoch  # all steps of the epoch, also those before a restart
            scores = {"train_score": meter.mean}
            if dev_arrays is not None:
                scores.update(evaluate(mgr.network, numpy_batches(dev_arrays, batch_size, seed=None), extern_data))
            elif callable(dev):
                scores.update(evaluate(mgr.network, data_for_epoch("dev", dev, epoch=epoch, seed=seed), extern_data))
            lr = mgr.learning_rate
            transition = mgr.transition_summary
            mgr.end_epoch(scores=scores)
            if mgr.last_transition is not None:
                log(str(mgr.last_transition.report), 4)
            log(format_epoch_line(epoch, mgr.num_epochs, steps, scores, lr, time.monotonic() - t0, transition), 3)
    return mgr
