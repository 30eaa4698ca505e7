"""The base of RETURNN-style layer classes (Keras 3 layers), option checking, activations, the class registry.

Protocol of a layer class (see `NetLayer`; register it with `register_layer_class(name, cls)`):

- `layer_options`: {option: default} of the class-specific options (`REQUIRED` marks a mandatory one). Besides
  them every layer accepts `COMMON_OPTIONS` ("class", "from", "trainable", "custom_param_importer", "loss",
  "target", "loss_scale", "is_output_layer", "n_out" as a check of the output dim); keys starting with "#" are
  comments. Any other key is a ConfigError naming the layer and the option. `self.behavior_version` is RETURNN's
  behavior version of the net (0 when not given, as in RETURNN).
- `min_sources` / `max_sources`: how many sources "from" may name; `accepts_sparse`: whether a source may be
  sparse (int ids).
- `output_info(self) -> DataInfo`: the output's feature dim / sparsity / time axis, from `self.sources` (one
  `DataInfo` per source), `self.opts` (the options, defaults filled in) and `self.target_info`.
- `create_params(self)`: creates every param with `self.add_param(name, shape, initializer, split_info=...)`;
  `split_info` lists the parts of each axis (default: one part per axis), e.g. [[3, 2], [n_out]] for a kernel
  reading two sources of dims 3 and 2 (`self.source_dims()`; as RETURNN, a "copy" / "dropout" source counts as
  its own sources, so a consumer of copy(["a", "b"]) sees the parts [dim_a, dim_b]).
- `forward(self, inputs, training, logits=False, seq_len=None)`: `inputs` is the list of source tensors; returns
  the output. Classes that set `provides_logits` return the pre-softmax logits when `logits` is True (for the "ce"
  loss). `seq_len` ([batch] int32, or None: every frame is real) holds the sequence lengths of the (first) source
  with a time axis; a class whose `forward` does not take `seq_len` never gets it (frames past a sequence's end
  are then treated like the others, as RETURNN's linear layers do).
- `out_seq_len(self, seq_len, output)`: the output's sequence lengths from the input's (default: the same when
  `keeps_time_length`, else every output frame is real; None when the output has no time axis).
- Growth (copy modes "preserve" / "net2wider", see `network/_preserve.py`): `growth_kind` says how the output
  features come from the input ones: "units" (the layer's own units; its params give each axis a role with
  `add_param(..., roles=("in", "out"))`, see `params/_growth.py`), "pass" (each input feature passes on by itself,
  the sources concatenated; per-feature params have the role "feature"), "combine" (elementwise across sources of
  equal dims), "mix" (every output feature depends on all input features, e.g. layer norm) or "opaque" (the
  default: unknown; such a layer must keep its input and params to keep its output). `growth_activation()` is the
  elementwise function applied last, `identity_blocker()` says why a new layer of the class cannot start as the
  identity (None: it can, given its activation), `growth_nonneg(sources_nonneg)` whether its output is >= 0.
- The symbolic output in a Keras graph comes from `output_info()` (no tracing of `forward`): a dense output has the
  layer's compute dtype, sparse ids the sparse source's dtype (else `DataInfo.dtype` if an int type, else int32);
  the time length is kept unless `keeps_time_length` is False. Set `trace_output_spec = True` to have Keras trace
  `forward` instead (for a class whose output does not follow these rules).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import attrs
import keras
import numpy as np
import tensorflow as tf

from transition.errors import ConfigError, TransitionError, did_you_mean
from transition.network._fast_init import as_tensor, draw_init
from transition.params._growth import ROLES
from transition.params._split import check_axis_splits, whole_axis_splits

__all__ = [
    "SeqLenOf",
    "dry_params",
    "REQUIRED",
    "COMMON_OPTIONS",
    "DataInfo",
    "NetLayer",
    "register_layer_class",
    "get_layer_class",
    "layer_class_names",
    "get_activation",
    "ACTIVATIONS",
    "NONNEG_ACTIVATIONS",
]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

COMMON_OPTIONS = (
    "class",
    "from",
    "trainable",
    "custom_param_importer",
    "loss",
    "target",
    "loss_scale",
    "is_output_layer",
    "n_out",
)


@attrs.frozen
class DataInfo:
    """What flows between layers: feature dim (vocab size when sparse), sparse ids or dense, time axis or not, and
    the parts of the feature axis when it concatenates several layers' outputs (a "copy" of several sources)."""

    dim: int
    sparse: bool = False
    time: bool = True
    dtype: str = "float32"
    parts: tuple[int, ...] | None = None

    @property
    def feature_parts(self) -> tuple[int, ...]:
        """The parts of the feature axis (one part unless it concatenates several sources)."""
        return self.parts if self.parts else (self.dim,)

    @property
    def shape(self) -> tuple[int | None, ...]:
        """The shape without the batch axis, as for `keras.Input`."""
        return ((None,) if self.time else ()) + (() if self.sparse else (self.dim,))


# ---------------------------------------------------------------------------------------------------------------
# activations


def _identity(x):
    return x


ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "identity": _identity,
    "linear": _identity,
    "tanh": tf.tanh,
    "sigmoid": tf.sigmoid,
    "relu": tf.nn.relu,
    "elu": tf.nn.elu,
    "selu": tf.nn.selu,
    "gelu": tf.nn.gelu,
    "swish": tf.nn.silu,
    "silu": tf.nn.silu,
    "softplus": tf.nn.softplus,
    "softmax": tf.nn.softmax,
    "log_softmax": tf.nn.log_softmax,
    "abs": tf.abs,
    "square": tf.square,
    "exp": tf.exp,
    "log": tf.math.log,
}


NONNEG_ACTIVATIONS = ("relu", "sigmoid", "softplus", "softmax", "exp", "abs", "square", "relu6", "hard_sigmoid")


def get_activation(layer_name: str, activation: Any) -> Callable[[tf.Tensor], tf.Tensor]:
    """The function of an activation name (None means identity); ConfigError naming the layer otherwise."""
    if activation is None:
        return _identity
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return ACTIVATIONS[activation]
    hint = did_you_mean(activation, ACTIVATIONS) if isinstance(activation, str) else ""
    raise ConfigError(
        f"layer {layer_name!r}: unknown activation {activation!r}{hint}; use one of {sorted(ACTIVATIONS)} or None"
    )


# ---------------------------------------------------------------------------------------------------------------
# registry

_LAYER_CLASSES: dict[str, type[NetLayer]] = {}


def register_layer_class(name: str, cls: type[NetLayer]) -> None:
    """Register a layer class under `name` (the "class" value in a net dict); it must subclass `NetLayer`."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"register_layer_class: the name must be a non-empty string, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, NetLayer)):
        raise ConfigError(
            f"register_layer_class({name!r}, {cls!r}): the class must subclass transition.NetLayer "
            "(define layer_options, output_info, create_params, forward)"
        )
    _LAYER_CLASSES[name] = cls
    _register_serializable(cls)


def _register_serializable(cls: type[NetLayer]) -> None:
    """Make `keras.saving.load_model` find the class (by module and qualified name, package "transition")."""
    registered = f"transition>{cls.__module__}.{cls.__qualname__}"
    if keras.saving.get_registered_object(registered) is cls:
        return
    try:
        keras.saving.register_keras_serializable(package="transition", name=f"{cls.__module__}.{cls.__qualname__}")(cls)
    except ValueError:  # the name was registered to an earlier definition of the class (e.g. a re-run notebook cell)
        pass


def get_layer_class(layer_name: str, class_name: Any) -> type[NetLayer]:
    """The registered class of that name; ConfigError naming the layer otherwise."""
    if isinstance(class_name, str) and class_name in _LAYER_CLASSES:
        return _LAYER_CLASSES[class_name]
    hint = did_you_mean(class_name, _LAYER_CLASSES) if isinstance(class_name, str) else ""
    raise ConfigError(
        f"layer {layer_name!r}: unknown layer class {class_name!r}{hint}; known classes: "
        f"{sorted(_LAYER_CLASSES)} (register your own with transition.register_layer_class)"
    )


def layer_class_names() -> list[str]:
    """The names of all registered layer classes."""
    return sorted(_LAYER_CLASSES)


def _config_value(layer: str, option: str, value: Any) -> Any:
    """A layer dict value as JSON for Keras' config (tuples become lists); ConfigError naming the option."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_config_value(layer, option, v) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _config_value(layer, option, v) for k, v in value.items()}
    raise ConfigError(f"layer {layer!r}: option {option!r} holds a {type(value).__name__}, which a Keras config "
                      "(e.g. model.save('x.keras')) cannot store; give a JSON value (number, string, list, dict)")


# ---------------------------------------------------------------------------------------------------------------
# base class

_DRY = contextvars.ContextVar("transition_dry_params", default=False)
_TF_VARIABLE_SCOPE = "transition_param/"  # absolute (the trailing "/"): see `NetLayer.add_param`


@contextlib.contextmanager
def dry_params() -> Iterator[None]:
    """Within it, `add_param` checks and records a param's shape and split info but creates no variable (a net
    dict checked without being built)."""
    token = _DRY.set(True)
    try:
        yield
    finally:
        _DRY.reset(token)



class SeqLenOf(keras.layers.Layer):
    """The sequence lengths of a net layer's output: `out_seq_len` of that layer, as its own Keras op (Keras
    expects every call of one layer to give the same structure, so the layer itself returns only its output)."""

    def __init__(self, layer: NetLayer):
        super().__init__(name=f"{layer.name}__seq_len", trainable=False)
        object.__setattr__(self, "_out_seq_len", layer.out_seq_len)  # a bound method: not tracked by Keras

    def call(self, output: tf.Tensor, seq_len: tf.Tensor) -> tf.Tensor:
        return tf.cast(self._out_seq_len(tf.cast(seq_len, "int32"), output), "int32")

    def compute_output_spec(self, output: Any, seq_len: Any) -> Any:
        return keras.KerasTensor(tuple(output.shape)[:1], dtype="int32")


class NetLayer(keras.layers.Layer):
    """A RETURNN-style layer as a Keras 3 layer; see the module docstring for the protocol of subclasses."""

    layer_options: ClassVar[Mapping[str, Any]] = {}
    min_sources: ClassVar[int] = 1
    max_sources: ClassVar[int | None] = None
    accepts_sparse: ClassVar[bool] = False
    provides_logits: ClassVar[bool] = False
    keeps_time_length: ClassVar[bool] = True  # output frames = input frames (for the symbolic shape)
    trace_output_spec: ClassVar[bool] = False  # True: Keras traces `forward` for the symbolic output
    growth_kind: ClassVar[str] = "opaque"  # "units" / "pass" / "combine" / "mix" / "opaque" (module docs)

    @classmethod
    def parse_options(cls, layer_name: str, layer_dict: Mapping[str, Any]) -> dict[str, Any]:
        """The class-specific options with defaults filled in; ConfigError for unknown or missing ones."""
        known = set(COMMON_OPTIONS) | set(cls.layer_options)
        opts: dict[str, Any] = {}
        for key, value in layer_dict.items():
            if not isinstance(key, str):
                raise ConfigError(f"layer {layer_name!r}: option keys must be strings, got {key!r}")
            if key.startswith("#"):
                continue
            if key not in known:
                raise ConfigError(
                    f"layer {layer_name!r} (class {layer_dict.get('class')!r}): unknown option {key!r}"
                    f"{did_you_mean(key, known)}; the options of this class are {sorted(known)}"
                )
            if key in cls.layer_options:
                opts[key] = value
        for key, default in cls.layer_options.items():
            if key not in opts:
                if default is REQUIRED:
                    raise ConfigError(
                        f"layer {layer_name!r} (class {layer_dict.get('class')!r}): missing required option {key!r}"
                    )
                opts[key] = default
        return opts

    def __init__(
        self,
        name: str,
        *,
        layer_dict: Mapping[str, Any],
        sources: Sequence[DataInfo],
        target_info: DataInfo | None = None,
        initial_values: Mapping[str, Any] | None = None,
        behavior_version: int | None = None,
    ):
        trainable = layer_dict.get("trainable", True)
        if not isinstance(trainable, bool):
            raise ConfigError(f"layer {name!r}: option 'trainable' must be True or False, got {trainable!r}")
        super().__init__(name=name, trainable=trainable)
        self._param_variables: list[keras.Variable] = []  # Keras tracks what is appended (see `add_param`)
        setattr_ = object.__setattr__  # internals bypass Keras' attribute tracking
        setattr_(self, "layer_dict", dict(layer_dict))
        setattr_(self, "sources", tuple(sources))
        setattr_(self, "target_info", target_info)
        setattr_(self, "behavior_version", int(behavior_version or 0))
        setattr_(self, "opts", type(self).parse_options(name, layer_dict))
        setattr_(self, "params", {})
        setattr_(self, "param_shapes", {})
        setattr_(self, "split_info", {})
        setattr_(self, "param_initializers", {})
        setattr_(self, "param_roles", {})  # param -> the role of each axis (growth), where the class gives them
        setattr_(self, "initialized_from_values", {})  # param -> weakref of the array it was created from
        setattr_(self, "_initial_values", dict(initial_values or {}))
        self._check_sources()
        info = self.output_info()
        n_out = layer_dict.get("n_out")
        if n_out is not None and "n_out" not in type(self).layer_options and n_out != info.dim:
            raise ConfigError(
                f"layer {name!r}: option n_out={n_out!r} but the output dim of this {layer_dict.get('class')!r} "
                f"layer is {info.dim}; fix n_out or remove it"
            )
        setattr_(self, "out_info", info)

    # -- helpers for subclasses --------------------------------------------------------------------------------

    def _check_sources(self) -> None:
        n = len(self.sources)
        cls = type(self)
        if n < cls.min_sources or (cls.max_sources is not None and n > cls.max_sources):
            want = f"{cls.min_sources}" if cls.max_sources == cls.min_sources else (
                f"at least {cls.min_sources}" if cls.max_sources is None else f"{cls.min_sources}..{cls.max_sources}"
            )
            raise ConfigError(
                f"layer {self.name!r} (class {self.layer_dict.get('class')!r}): 'from' names {n} sources, this "
                f"class needs {want}"
            )
        if any(s.sparse for s in self.sources) and not (cls.accepts_sparse and n == 1):
            raise ConfigError(
                f"layer {self.name!r} (class {self.layer_dict.get('class')!r}): a sparse source (int ids) is only "
                "allowed as the single source of a layer that accepts ids (linear, softmax, copy); use a linear "
                "layer as embedding first"
            )
        if n > 1 and len({s.time for s in self.sources}) > 1:
            raise ConfigError(
                f"layer {self.name!r}: its sources mix inputs with and without a time axis; they cannot be "
                "concatenated"
            )

    def option_error(self, option: str, value: Any, what: str) -> ConfigError:
        """A ConfigError naming this layer and the option."""
        return ConfigError(f"layer {self.name!r}: option {option!r}={value!r} is invalid; {what}")

    def check_int(self, option: str, minimum: int = 1) -> int:
        """The option as an int >= minimum, else a ConfigError naming the option."""
        value = self.opts[option]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.option_error(option, value, f"give an int >= {minimum}")
        return value

    def check_bool(self, option: str) -> bool:
        """The option as True / False, else a ConfigError naming the option."""
        value = self.opts[option]
        if not isinstance(value, bool):
            raise self.option_error(option, value, "give True or False")
        return value

    def require_time(self) -> None:
        """A ConfigError naming this layer unless its sources have a time axis."""
        if not self.time():
            raise self.option_error(
                "from", self.layer_dict.get("from"), f"{self.layer_dict.get('class')} needs a source with a time axis"
            )

    def source_dims(self) -> list[int]:
        """The parts of the concatenated input's feature axis: the dim of each source, a "copy" of several sources
        counting as those sources (RETURNN's rule for a consumer's split info)."""
        return [d for s in self.sources for d in s.feature_parts]

    def in_dim(self) -> int:
        """The feature dim of the concatenated sources."""
        return sum(self.source_dims())

    def time(self) -> bool:
        """Whether the (first) source has a time axis."""
        return self.sources[0].time

    @staticmethod
    def concat(inputs: Sequence[tf.Tensor]) -> tf.Tensor:
        """The sources concatenated on the feature axis."""
        return inputs[0] if len(inputs) == 1 else tf.concat(list(inputs), axis=-1)

    def add_param(
        self,
        name: str,
        shape: Sequence[int],
        initializer: Any = "glorot_uniform",
        *,
        split_info: Sequence[Sequence[int]] | None = None,
        trainable: bool = True,
        dtype: str = "float32",
        roles: Sequence[str] | None = None,
    ) -> keras.Variable | None:
        """Create param `name` (relative to the layer, may contain "/"); None within `dry_params`.

        When the network was given an initial value of exactly this shape, the variable is created from it
        (no random init, no extra copy) and the param is listed in `initialized_from_values`. `roles`: the role of
        each axis under "preserve" / "net2wider" ("in", "rec", "out", "feature", "fixed", "ids"; `params._growth`).
        """
        shape = tuple(int(d) for d in shape)
        if name in self.param_shapes:
            raise TransitionError(f"layer {self.name!r}: param {name!r} is created twice")
        info = [list(map(int, p)) for p in split_info] if split_info is not None else whole_axis_splits(shape)
        check_axis_splits(info, shape, f"layer {self.name!r}, param {name!r}")
        if roles is not None:
            if len(roles) != len(shape) or any(r not in ROLES for r in roles):
                raise TransitionError(f"layer {self.name!r}, param {name!r}: roles {tuple(roles)} must give one of "
                                      f"{ROLES} per axis of shape {shape}")
            self.param_roles[name] = tuple(roles)
        init = keras.initializers.get(initializer)  # an unknown initializer is an error, also in a dry build
        self.param_shapes[name] = shape
        self.split_info[name] = info
        if _DRY.get():
            return None
        value = self._initial_values.get(name)
        from_value = value is not None and tuple(np.shape(value)) == shape
        holder = [as_tensor(value, dtype) if from_value else draw_init(init, shape, dtype)]
        # As `add_weight` (the same Keras path "<layer>/<param>"), but under one absolute TF name scope: TF keys its
        # cache of eager kernels on the variable's name, so a name per layer costs a kernel per variable (~1.5 ms).
        with keras.name_scope(self.name, caller=self), tf.name_scope(_TF_VARIABLE_SCOPE):
            var = keras.Variable(lambda shape, dtype=None: holder.pop(), shape=shape, dtype=dtype,
                                 trainable=trainable and self.trainable, name=name.replace("/", "_"))
        self._param_variables.append(var)  # tracked by Keras (a list attribute), as `add_weight` tracks
        if from_value:
            try:
                self.initialized_from_values[name] = weakref.ref(value)
            except TypeError:  # not weak-referenceable (e.g. a list): never skipped by the import
                self.initialized_from_values[name] = None
        self.params[name] = var
        self.param_initializers[name] = init
        return var

    def get_config(self) -> dict[str, Any]:
        """Keras' config: the layer dict (JSON values; a callable `custom_param_importer`, a training-time hook,
        is left out), the sources' and the target's `DataInfo`. With `from_config`, a network built from a net
        dict saves in Keras' `.keras` format and loads back with `keras.saving.load_model`."""
        layer_dict = {}
        for key, value in self.layer_dict.items():
            if key == "custom_param_importer" and callable(value):
                continue
            layer_dict[key] = _config_value(self.name, key, value)
        target = attrs.asdict(self.target_info) if self.target_info is not None else None
        return {"name": self.name, "trainable": self.trainable, "layer_dict": layer_dict,
                "sources": [attrs.asdict(s) for s in self.sources], "target_info": target}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> NetLayer:
        """The layer of a `get_config` (its params are created when Keras builds it)."""
        try:
            target = config.get("target_info")
            return cls(config["name"], layer_dict=dict(config["layer_dict"]),
                       sources=[DataInfo(**s) for s in config["sources"]],
                       target_info=DataInfo(**target) if target is not None else None)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{cls.__name__}.from_config: not a config of this layer class ({exc}); it holds "
                              f"keys {sorted(config)}") from None

    def fresh_value(self, name: str) -> np.ndarray:
        """A freshly initialised value of param `name` (as its initializer draws it)."""
        var = self.params[name]
        return np.asarray(draw_init(self.param_initializers[name], tuple(var.shape), var.dtype))

    # -- Keras -------------------------------------------------------------------------------------------------

    def build(self, input_shape: Any = None) -> None:
        """Keras' build: creates the params (`create_params`)."""
        self.create_params()
        self.built = True

    def call(self, inputs: Any, training: bool | None = None, logits: bool = False, seq_len: Any = None
             ) -> tf.Tensor:
        """Keras' call: `forward` on the list of source tensors (with `seq_len`, the sources' sequence lengths,
        where `forward` takes it)."""
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        kwargs = {"seq_len": seq_len} if seq_len is not None and self.takes_seq_len() else {}
        return self.forward(list(inputs), bool(training), logits=logits, **kwargs)

    def compute_output_spec(self, inputs: Any, training: bool | None = None, logits: bool = False,
                            seq_len: Any = None) -> Any:
        """The symbolic output, from `out_info` (Keras would otherwise trace `forward` in a TF graph per layer,
        ~20 ms each). Classes with `trace_output_spec = True` are traced."""
        if type(self).trace_output_spec:
            return super().compute_output_spec(inputs, training=training, logits=logits, seq_len=seq_len)
        xs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        info = self.out_info
        first = tuple(xs[0].shape)
        time_len = first[1] if (
            info.time and self.sources[0].time and type(self).keeps_time_length and len(first) > 1
        ) else None
        shape = first[:1] + ((time_len,) if info.time else ()) + (() if info.sparse else (info.dim,))
        if not info.sparse:
            dtype = self.compute_dtype
        elif self.sources[0].sparse:
            dtype = xs[0].dtype
        else:  # ids computed from dense inputs
            dtype = info.dtype if info.dtype.startswith(("int", "uint")) else "int32"
        return keras.KerasTensor(shape, dtype=dtype)

    @classmethod
    def takes_seq_len(cls) -> bool:
        """Whether the class' `forward` takes the sources' sequence lengths (`seq_len`, by name or **kwargs)."""
        return _forward_takes_seq_len(cls)

    def out_seq_len(self, seq_len: tf.Tensor, output: tf.Tensor) -> tf.Tensor:
        """The output's sequence lengths from the input's `seq_len` (called only when the output has a time axis):
        the same when the class `keeps_time_length`, else every output frame counts. Override for strides,
        "valid" padding and the like."""
        if type(self).keeps_time_length:
            return seq_len
        return tf.fill(tf.shape(output)[:1], tf.shape(output)[1])

    def time_mask(self, seq_len: tf.Tensor | None, x: tf.Tensor) -> tf.Tensor | None:
        """[batch, time, 1] float mask of the real frames of `x` ([batch, time, dim]), or None without lengths."""
        if seq_len is None:
            return None
        return tf.sequence_mask(seq_len, tf.shape(x)[1], dtype=x.dtype)[:, :, None]

    # -- to implement ------------------------------------------------------------------------------------------

    def output_info(self) -> DataInfo:
        """Default: dense, dim of the concatenated sources, time axis as the sources."""
        return DataInfo(dim=self.in_dim(), time=self.time())

    def create_params(self) -> None:
        """Create the params with `self.add_param`; default: none."""

    def forward(self, inputs: list[tf.Tensor], training: bool, logits: bool = False) -> tf.Tensor:
        """The output from the source tensors (the pre-softmax logits if `logits` and `provides_logits`); add a
        `seq_len=None` parameter to get the sequence lengths."""
        raise NotImplementedError(f"layer class {type(self).__name__} does not implement forward()")

    # -- growth (copy modes "preserve" / "net2wider") ----------------------------------------------------------

    def growth_activation(self) -> str | None:
        """The elementwise function the layer applies last (None: none)."""
        return None

    def identity_blocker(self) -> str | None:
        """Why a new layer of this class cannot start as the identity of its input (None: it can, given its
        activation)."""
        if self.growth_kind in ("units", "pass"):
            return None
        return f"a {self.layer_dict.get('class')!r} layer does not pass its input through unchanged"

    def growth_nonneg(self, sources_nonneg: Sequence[bool]) -> bool:
        """Whether the output is >= 0 on every input (`sources_nonneg`: that of each source)."""
        act = self.growth_activation()
        if act in NONNEG_ACTIVATIONS:
            return True
        return self.growth_kind == "pass" and act in (None, "linear", "identity") and all(sources_nonneg)


_TAKES_SEQ_LEN: dict[type, bool] = {}


def _forward_takes_seq_len(cls: type[NetLayer]) -> bool:
    """Whether the class' `forward` accepts `seq_len` (by name or via **kwargs); cached per class."""
    if cls not in _TAKES_SEQ_LEN:
        params = inspect.signature(cls.forward).parameters
        _TAKES_SEQ_LEN[cls] = "seq_len" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    return _TAKES_SEQ_LEN[cls]
