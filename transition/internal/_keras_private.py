"""The one home of what Keras 3 keeps private but `transition` needs (each function says why).

Everything else in the project uses public Keras APIs only. Keras may change these internals between versions; the
tests cover each function, so a Keras upgrade that breaks one fails here first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

__all__ = [
    "sublayers",
    "layer_seed_generators",
    "global_seed_generator",
    "optimizer_trainable_variables",
    "optimizer_iterations_variable",
    "optimizer_slot_lists",
    "build_optimizer_with_initializer",
    "run_after_next_train_begin",
    "cancel_after_train_begin",
    "layer_call_inputs",
    "layer_call_outputs",
    "tensor_producer",
    "set_initial_epoch",
    "replace_train_function",
    "build_compiled_metrics",
    "multi_worker_fit",
]

_NOT_SLOTS = frozenset({"_variables", "_trainable_variables"})


def sublayers(layer: Any, *, recursive: bool) -> list[Any]:
    """The layers inside `layer` (not itself). Why private: only `Model.layers` is public, and only one level deep
    for models; nested layers of a plain Layer (and their order) are reachable only through `_flatten_layers`."""
    return list(layer._flatten_layers(include_self=False, recursive=recursive))


def layer_seed_generators(layer: Any) -> list[Any]:
    """The `keras.random.SeedGenerator`s a layer owns (e.g. Dropout's), in creation order. Why private: Keras lists
    them only in `_seed_generators` (their states appear in `layer.variables`, but not which generator owns one)."""
    return list(getattr(layer, "_seed_generators", ()))


def layer_call_inputs(layer: Any) -> list[list[Any]]:
    """The input tensors of each call of `layer` in a functional graph (one list per call). Why private: Keras keeps
    the call graph only in `_inbound_nodes`; the public `layer.input` gives the first call only and fails for a
    layer that was never called symbolically."""
    return [list(node.input_tensors) for node in getattr(layer, "_inbound_nodes", ())]


def layer_call_outputs(layer: Any) -> list[list[Any]]:
    """The output tensors of each call of `layer` in a functional graph (one list per call). Why private: as for
    `layer_call_inputs`, the call graph is only in `_inbound_nodes`; the public `layer.output` fails for a layer
    called more than once (e.g. a net dict layer called again for its logits)."""
    return [list(node.output_tensors) for node in getattr(layer, "_inbound_nodes", ())]


def tensor_producer(tensor: Any) -> tuple[Any, list[Any], int] | None:
    """(operation, its input tensors of that call, index of `tensor` among the call's outputs) for a symbolic
    tensor made by a layer, None for an input or a non-symbolic tensor. Why private: a KerasTensor names the call
    that made it only in `_keras_history`; Keras has no public way from a tensor to its layer."""
    history = getattr(tensor, "_keras_history", None)
    if history is None or history.operation is None:
        return None
    nodes = getattr(history.operation, "_inbound_nodes", ())
    if not 0 <= history.node_index < len(nodes):
        return None
    return history.operation, list(nodes[history.node_index].input_tensors), int(history.tensor_index)


def set_initial_epoch(model: Any, epoch: int | None) -> None:
    """Make the next (or the running) `model.fit` start at `epoch` (0-based; None: as its `initial_epoch`
    argument says). Why private: `fit` reads `_initial_epoch` right after the callbacks' `on_train_begin`; it is how
    Keras' own `BackupAndRestore` resumes, and there is no public hook for it."""
    model._initial_epoch = epoch


def replace_train_function(model: Any, make: Callable[[Callable[[Any], Any]], Callable[[Any], Any]]) -> None:
    """Replace the function `fit` calls once per step (with the data iterator) by `make(current function)`. Why
    private: Keras offers no hook to draw a batch without training on it; `fit` looks `model.train_function` up
    at every step, so a replacement takes effect at the next step (the replacement may put the original back)."""
    model.make_train_function()
    model.train_function = make(model.train_function)


def build_compiled_metrics(model: Any, data_batch: Any) -> None:
    """Create the variables of a compiled model's loss tracker and metrics from one batch (or its `TensorSpec`s),
    without training. Why private: without a distribution strategy Keras creates them only while tracing the first
    train step, but a resumed epoch must give them their saved sums before that step; `_symbolic_build` is what
    `fit` itself calls to build them under a strategy."""
    model._symbolic_build(data_batch=data_batch)


@contextlib.contextmanager
def multi_worker_fit(model: Any, strategy: Any, data_batch: Any) -> Iterator[None]:
    """Within: `fit` (and its `evaluate`) of a model under MultiWorkerMirroredStrategy work. Why private: Keras 3's
    TF trainer has two bugs there (keras-team/keras#20585, tensorflow/tensorflow#72388): it builds the model by
    `strategy.reduce`-ing its first distributed batch, a nest of values, which the strategy refuses ("Attempt to
    convert a value (PerReplica...)"), and it reduces the per-replica logs of a step, scalars, with
    `strategy.reduce("MEAN", v, axis=0)` ("Invalid reduction dimension 0"). Here the model is built first (in the
    strategy's scope, from `data_batch`, the dataset's `TensorSpec`s; `_symbolic_build` is what Keras calls), its
    `_maybe_symbolic_build` skipped, and the trainer's `reduce_per_replica` reduces scalars over the replicas
    (axis=None), everything else as before."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    with strategy.scope():
        model._symbolic_build(data_batch=data_batch)
    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values: Any, strategy: Any, reduction: str = "auto") -> Any:
        def scalar_mean(v: Any) -> Any:  # one local replica: a plain tensor, else PerReplica
            local = strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v
            if getattr(local, "shape", None) is not None and local.shape.rank == 0:
                return strategy.reduce("MEAN", v, axis=None)
            return original(v, strategy, reduction)

        if reduction not in ("auto", "mean"):
            return original(values, strategy, reduction)
        return tf.nest.map_structure(scalar_mean, values)

    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    tf_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        tf_trainer.reduce_per_replica = original
        del model._maybe_symbolic_build


def global_seed_generator(*, create: bool) -> Any:
    """Keras' global SeedGenerator (used by `keras.random` ops without a seed), or None where it does not exist and
    `create` is False. Why private: Keras has no public accessor; its state must be saved for an exact resume."""
    if not create:
        from keras.src.backend.common import global_state

        return global_state.get_global_attribute("global_seed_generator")
    from keras.src.random.seed_generator import global_seed_generator as get

    return get()


def optimizer_trainable_variables(optimizer: Any) -> list[Any]:
    """The variables a built optimizer was built on, in the order of its slot lists. Why private: Keras keeps the
    list only in `_trainable_variables`; the slots of variable i are the i-th entries of the slot lists."""
    return list(getattr(optimizer, "_trainable_variables", []) or [])


def optimizer_iterations_variable(optimizer: Any) -> Any:
    """The optimizer's step counter variable. Why private: the public `iterations` is a computed value (not the
    variable) when gradient accumulation is on, and a resume must assign the variable itself."""
    var = getattr(optimizer, "_iterations", None)
    return var if var is not None else optimizer.iterations


def optimizer_slot_lists(optimizer: Any) -> dict[str, list[Any]]:
    """The built optimizer's per-variable slot lists (e.g. Adam's momentums / velocities), by slot name (attribute
    without its leading "_"). Why private: Keras 3 optimizers keep slots as private list attributes whose i-th entry
    belongs to the i-th trainable variable; there is no public slot API. A slot list is an attribute that is a
    sequence with one entry (a variable of the same shape, or None) per trainable variable."""
    trainable = optimizer_trainable_variables(optimizer)
    if not trainable:
        return {}
    shapes = [tuple(v.shape) for v in trainable]
    out: dict[str, list[Any]] = {}
    for attr, value in vars(optimizer).items():
        if attr in _NOT_SLOTS or isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
            continue
        items = list(value)
        if len(items) != len(trainable) or all(x is None for x in items):
            continue
        if all(x is None or (hasattr(x, "assign") and tuple(x.shape) == s) for x, s in zip(items, shapes)):
            out[attr.lstrip("_")] = items
    return out


def build_optimizer_with_initializer(optimizer: Any, variables: Sequence[Any],
                                     zeros: Callable[[Sequence[int], str], Any]) -> None:
    """`optimizer.build(variables)`, its zero-initialised slot variables created by `zeros(shape, dtype)` (e.g.
    lazily zeroed memory). Why a patch: `build` creates the slots through `add_variable` with `tf.zeros`, which for
    large models costs as much as a whole transition, and Keras offers no hook for the slots' initial values; the
    patch is an instance attribute that is removed again right after `build`."""
    add_variable = optimizer.add_variable

    def add_variable_with_zeros(shape, initializer="zeros", dtype=None, *args, **kwargs):
        if _is_zeros(initializer):
            initializer = lambda shape, dtype=None: zeros(shape, dtype or "float32")  # noqa: E731
        return add_variable(shape, initializer, dtype, *args, **kwargs)

    object.__setattr__(optimizer, "add_variable", add_variable_with_zeros)
    try:
        optimizer.build(list(variables))
    finally:
        object.__delattr__(optimizer, "add_variable")


def _is_zeros(initializer: Any) -> bool:
    import keras

    return (isinstance(initializer, str) and initializer == "zeros") or type(initializer) is keras.initializers.Zeros


def run_after_next_train_begin(callback: Any, fn: Callable[[], None]) -> None:
    """Run `fn()` right after the callback's next `on_train_begin`. Why a patch: Keras' EarlyStopping,
    ModelCheckpoint and ReduceLROnPlateau reset their counters in `on_train_begin`, and a restored state given to a
    user's own `model.fit(callbacks=[cb])` must survive that; Keras offers no hook that runs after one callback's
    `on_train_begin`. The wrapper is an instance attribute and removes itself on its first call (the manager's own
    fit calls instead add a callback after the others, a public mechanism)."""
    original = callback.__dict__.pop("on_train_begin", None) or callback.on_train_begin
    original = getattr(original, "_transition_original", original)

    def on_train_begin(logs: Any = None) -> None:
        del callback.on_train_begin  # one shot: back to the class method
        original(logs)
        fn()

    on_train_begin._transition_original = original  # type: ignore[attr-defined]
    callback.on_train_begin = on_train_begin


def cancel_after_train_begin(callback: Any) -> None:
    """Remove a wrapper of `run_after_next_train_begin` that has not run yet (the callback's `on_train_begin` of
    this fit call already ran, so the wrapper would fire only in a later fit call, with a stale state)."""
    wrapper = callback.__dict__.get("on_train_begin")
    if wrapper is not None and hasattr(wrapper, "_transition_original"):
        del callback.on_train_begin
