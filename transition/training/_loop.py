"""The reference training loop of `transition train`: a train step, the dev scores, the loss meter, the progress
bar, and one line per epoch (epoch, steps, scores, learning rate, time and what the transition did). Data helpers
are in `_data`.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import tqdm

from transition.errors import ConfigError
from transition.training._config import Config, load_config
from transition.training._data import (
    check_numpy_data,
    data_for_epoch,
    num_numpy_batches,
    numpy_batches,
)
from transition.training._dist_data import global_batch_share
from transition.training._log import format_epoch_line
from transition.training._manager import TransitionManager

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from transition.network._network import Network

__all__ = ["LossMeter", "ProgressBar", "make_train_step", "evaluate", "train_from_config"]


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
    """A one-line progress bar (tqdm) on a TTY, redrawn in place; silent elsewhere (the epoch line says it all)."""

    def __init__(self, total: int | None, label: str, out: TextIO | None = None, start: int = 0) -> None:
        out = out if out is not None else sys.stderr
        bar_format = "{desc} [{bar:30}] {n_fmt}/{total_fmt} {postfix}" if total else "{desc} {n_fmt} steps {postfix}"
        self._bar = tqdm.tqdm(total=total, initial=start, desc=label, file=out, bar_format=bar_format, ascii=".#",
                              leave=False, mininterval=0.1, disable=not getattr(out, "isatty", lambda: False)())

    def update(self, n: int = 1, loss: float | None = None) -> None:
        if loss is not None and math.isfinite(loss):
            self._bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
        self._bar.update(n)
        if self._bar.total and self._bar.n >= self._bar.total:
            self._bar.refresh()  # the last step is always drawn

    def close(self) -> None:
        self._bar.close()


# ------------------------------------------------------------------------------------------------ train and eval


def make_train_step(network: Network, optimizer: keras.optimizers.Optimizer, strategy: tf.distribute.Strategy | None = None
                    ) -> Callable[[Mapping[str, Any]], tf.Tensor]:
    """A tf.function train step over `network.compute_loss` with `optimizer`; returns the batch's mean loss.

    Under `strategy` it takes a distributed batch (`mgr.batches` gives them): each replica's loss counts as its
    share of the global batch (`_dist_data.global_batch_share`, compute_average_loss), the optimizer sums the
    gradients across the replicas, and the step returns the global batch's mean loss."""
    import tensorflow as tf

    variables = list(network.trainable_variables)

    def step(batch: Mapping[str, Any]) -> Any:
        with tf.GradientTape() as tape:
            loss = network.compute_loss(batch, training=True)
            if strategy is not None:
                loss = global_batch_share(loss, batch)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    if strategy is None:
        return tf.function(step, reduce_retracing=True)

    @tf.function(reduce_retracing=True)
    def distributed(batch: Mapping[str, Any]) -> Any:
        per_replica = strategy.run(step, args=(batch,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return distributed


def evaluate(network: Network, batches: Iterable[Mapping[str, Any]], extern_data: Mapping[str, Any],
             prefix: str = "dev") -> dict[str, float]:
    """`{prefix}_score` (the loss per real frame, as RETURNN's scores: frames past a sequence's length do not
    count) and, for a "ce" loss on a sparse target, `{prefix}_error` (the fraction of real frames whose argmax is
    wrong); of the first output with such a loss ("output" first). With several losses also
    `{prefix}_score_<layer>` / `{prefix}_error_<layer>` per layer (RETURNN's names); `{prefix}_score` is then
    their scaled sum."""
    import tensorflow as tf

    del extern_data  # the network knows its targets
    sums: dict[str, list[float]] = {}  # layer -> [loss sum, frames, errors, scale]
    for batch in batches:
        inputs = {k: tf.convert_to_tensor(v) for k, v in batch.items()}
        for layer, term in network.loss_terms(inputs, training=False, errors=True).items():
            acc = sums.setdefault(layer, [0.0, 0.0, 0.0, term.scale, term.errors is not None])
            acc[0] += float(term.loss_sum)
            acc[1] += float(term.frames)
            acc[2] += float(term.errors) if term.errors is not None else 0.0
    if not sums:
        return {f"{prefix}_score": float("nan")}
    per_frame = {layer: acc[0] / acc[1] if acc[1] else float("nan") for layer, acc in sums.items()}
    scores = {f"{prefix}_score": sum(acc[3] * per_frame[layer] for layer, acc in sums.items())}
    ordered = [n for n in network.output_layers if n in sums] + [n for n in sums if n not in network.output_layers]
    with_errors = [n for n in ordered if sums[n][4] and sums[n][1]]
    if with_errors:
        scores[f"{prefix}_error"] = sums[with_errors[0]][2] / sums[with_errors[0]][1]
    if len(sums) > 1:
        for layer in ordered:
            scores[f"{prefix}_score_{layer}"] = per_frame[layer]
            if layer in with_errors:
                scores[f"{prefix}_error_{layer}"] = sums[layer][2] / sums[layer][1]
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

    out = out if out is not None else sys.stdout
    cfg = load_config(config, overrides)
    log = _Log(out, cfg["log"], int(cfg["log_verbosity"]))
    try:
        mgr = TransitionManager.from_config(cfg, resume=resume, callbacks=list(callbacks), strategy=strategy,
                                            log=lambda s: log(s, 2))
        log.writes_file = log.writes_file and mgr.is_chief
        return _train(mgr, log, progress, step_hook)
    finally:
        log.close()


class _Log:
    """Lines to `out` and, with the config's `log` option, appended to that file; `log_verbosity` filters:
    >= 2 loading / resume / preemption lines, >= 3 one line per epoch (default), >= 4 the transition reports."""

    def __init__(self, out: TextIO, path: Any, verbosity: int) -> None:
        self.out, self.verbosity, self.path = out, verbosity, path
        self.file: TextIO | None = None
        self.writes_file = bool(path)  # False on the other workers of a multi-worker job (the chief writes it)

    def _open(self) -> TextIO:
        import os

        directory = os.path.dirname(os.fspath(self.path))
        if directory:
            os.makedirs(directory, exist_ok=True)
        return open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def __call__(self, line: str, level: int) -> None:
        if level > self.verbosity:
            return
        print(line, file=self.out, flush=True)
        if self.writes_file:
            if self.file is None:
                self.file = self._open()
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
                inputs = batch if mgr.strategy is not None else {k: tf.convert_to_tensor(v) for k, v in batch.items()}
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
