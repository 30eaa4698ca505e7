"""RETURNN-style config files: a Python file (or a dict) whose top-level names are the options.

A config file is the user's own Python code and is executed (never unpickled). Top-level names that start with "_",
names bound by imports, and functions / classes whose name is not an option are helpers, not options. Every other
top-level name must be a known option; an unknown one is a ConfigError that suggests the closest known option.
`--key=value` overrides from the command line are parsed as Python literals where possible.
"""

from __future__ import annotations

import ast
import inspect
import os
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from transition.errors import ConfigError, did_you_mean
from transition.training._lr_control import LR_CONFIG_KEYS, LearningRateControl

__all__ = ["Config", "KNOWN_KEYS", "load_config", "parse_overrides"]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check(pred: Callable[[Any], bool], what: str) -> Callable[[str, Any], None]:
    def check(key: str, value: Any) -> None:
        if not pred(value):
            raise ConfigError(f"config option {key!r} must be {what}, got {value!r} ({type(value).__name__})")

    return check


_any = _check(lambda v: True, "anything")
_dict = _check(lambda v: isinstance(v, Mapping), "a dict")
_opt_dict = _check(lambda v: v is None or isinstance(v, Mapping), "a dict or None")
_str = _check(lambda v: isinstance(v, str), "a string")
_opt_str = _check(lambda v: v is None or isinstance(v, (str, os.PathLike)), "a path string or None")
_bool = _check(lambda v: isinstance(v, bool), "True or False")
_opt_bool = _check(lambda v: v is None or isinstance(v, bool), "True, False or None")
_pos_int = _check(lambda v: _is_int(v) and v >= 1, "an int >= 1")
_opt_pos_int = _check(lambda v: v is None or (_is_int(v) and v >= 1), "an int >= 1 or None")
_opt_nonneg_int = _check(lambda v: v is None or (_is_int(v) and v >= 0), "an int >= 0 or None")
_int = _check(_is_int, "an int")
_func = _check(lambda v: v is None or callable(v), "a function or None")
_data = _check(
    lambda v: v is None or isinstance(v, Mapping) or callable(v),
    "a dict of numpy arrays keyed like extern_data, or a function returning a tf.data.Dataset",
)
_pretrain = _check(
    lambda v: v is None or isinstance(v, (bool, str, Mapping)),
    'None, "default", or a dict of Pretrain options',
)
_seq = _check(lambda v: isinstance(v, (list, tuple)), "a list")
_lr_any = _any  # validated together by LearningRateControl.from_config


def _optimizer(key: str, value: Any) -> None:
    if callable(value):
        return
    if not isinstance(value, Mapping) or not isinstance(value.get("class"), str):
        raise ConfigError(
            f'config option {key!r} must be a dict with a "class" (e.g. {{"class": "adam", "epsilon": 1e-8}}) '
            f"or a function returning a Keras optimizer, got {value!r}"
        )


def _task(key: str, value: Any) -> None:
    if value not in ("train", "eval", "forward", "search"):
        raise ConfigError(
            f"config option {key!r} must be one of 'train', 'eval', 'forward', 'search', got {value!r}"
            f"{did_you_mean(str(value), ['train', 'eval', 'forward', 'search'])}"
        )


def _backend(key: str, value: Any) -> None:
    if value not in ("tensorflow", "tf"):
        raise ConfigError(f"config option {key!r} must be 'tensorflow' (the only backend here), got {value!r}")


def _use_tf(key: str, value: Any) -> None:
    if value is not True:
        raise ConfigError(f"config option {key!r} must be True (only TensorFlow is supported), got {value!r}")


#: option -> (validator, default, description)
KNOWN_KEYS: dict[str, tuple[Callable[[str, Any], None], Any, str]] = {
    "task": (_task, "train", "what to do: 'train'"),
    "model": (_opt_str, None, "checkpoint prefix, e.g. 'runs/exp/network' (epochs at network.001, ...)"),
    "extern_data": (_dict, None, "the data keys: {'data': {'dim': 64}, 'classes': {'dim': 10, 'sparse': True}}"),
    "network": (_dict, None, "the RETURNN-style network dict"),
    "get_network": (_func, None, "get_network(epoch, **kwargs) -> network dict, per epoch"),
    "pretrain": (_pretrain, None, "pretraining: 'default' or a dict of Pretrain options"),
    "pretrain_repetitions": (_any, None, "RETURNN's older pretrain option (repetitions)"),
    "pretrain_construction_algo": (_any, None, "RETURNN's older pretrain option (construction_algo)"),
    "pretrain_copy_output_layer": (_any, None, "RETURNN's older pretrain option (copy_output_layer)"),
    "pretrain_greedy": (_any, None, "RETURNN's older pretrain option (greedy; not supported)"),
    "num_epochs": (_pos_int, None, "number of epochs to train"),
    "batch_size": (_pos_int, 32, "examples per step"),
    "optimizer": (_optimizer, None, "{'class': 'adam', ...} (Keras optimizer class and its options)"),
    "train": (_data, None, "training data"),
    "dev": (_data, None, "development data, scored after every epoch"),
    "callbacks": (_seq, (), "callbacks whose state is saved with the checkpoint (state_dict / load_state_dict)"),
    "init_new_network_callback": (
        _func, None, "init_new_network_callback(new_epoch=, new_network=, old_network_params=)"
    ),
    # loading (see _load_options)
    "load": (_opt_str, None, "load this checkpoint and continue its training"),
    "load_epoch": (_opt_pos_int, None, "epoch of the checkpoint under `model` to load"),
    "import_model_train_epoch1": (_opt_str, None, "initialise from this checkpoint and start at epoch 1"),
    "allow_random_model_init": (_bool, False, "allow a non-training task without a model"),
    "load_ignore_missing_vars": (_bool, False, "params missing from the loaded checkpoint keep their init"),
    "preload_from_files": (_opt_dict, None, "{name: {'filename': ..., 'init_for_train': True, ...}}"),
    # saving and keeping
    "keep_last_n": (_opt_nonneg_int, None, "keep the last N epoch checkpoints"),
    "keep_best_n": (_opt_nonneg_int, None, "keep the best N epoch checkpoints by `keep_best_score`"),
    "keep_best_score": (_opt_str, None, "score that ranks checkpoints for keep_best_n (default: the lr-control score)"),
    "keep_best_mode": (_check(lambda v: v in ("min", "max"), "'min' or 'max'"), "min", "whether lower is better"),
    "keep_every_n_epochs": (_opt_pos_int, None, "also keep every N-th epoch"),
    "save_every_n_steps": (_opt_pos_int, None, "also save within an epoch every N steps"),
    # misc
    "random_seed": (_int, 42, "seed of Python, numpy, TF and the data shuffle"),
    "deterministic": (_bool, False, "enable TF's deterministic ops"),
    "log": (_opt_str, None, "also write the log to this file"),
    "log_verbosity": (_int, 3, "log detail (RETURNN's scale; 3 = the epoch lines)"),
    "use_tensorflow": (_use_tf, True, "RETURNN's backend switch (must be True)"),
    "backend": (_backend, "tensorflow", "RETURNN's backend switch (must be 'tensorflow')"),
}
for _key in LR_CONFIG_KEYS:
    KNOWN_KEYS[_key] = (_lr_any, None, "learning-rate control (RETURNN's option)")
KNOWN_KEYS["learning_rate"] = (_lr_any, 1.0, "initial learning rate (RETURNN's default 1.0)")

#: options whose value is a function: a helper function whose name looks like one of these is a typo
_CALLABLE_KEYS = ("get_network", "init_new_network_callback", "train", "dev", "optimizer")


class Config(Mapping[str, Any]):
    """The options of a config, with defaults for the ones not set. `path` is the file (None for a dict)."""

    def __init__(self, values: Mapping[str, Any], path: str | None = None) -> None:
        self._values = dict(values)
        self.path = path

    def __getitem__(self, key: str) -> Any:
        if key in self._values:
            return self._values[key]
        if key in KNOWN_KEYS:
            return KNOWN_KEYS[key][1]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def is_set(self, key: str) -> bool:
        """Whether the config sets `key` (a default does not count)."""
        return key in self._values and self._values[key] is not None

    def require(self, *keys: str) -> None:
        """Raise a ConfigError naming the first of `keys` that the config does not set."""
        for key in keys:
            if not self.is_set(key):
                where = f" in {self.path}" if self.path else ""
                raise ConfigError(f"config option {key!r} is required{where}: {KNOWN_KEYS[key][2]}")

    def where(self) -> str:
        return f"config {self.path}" if self.path else "config dict"

    def __repr__(self) -> str:
        return f"Config({self.path or 'dict'}, {sorted(self._values)})"


def _imported_names(source: str, filename: str) -> set[str]:
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        raise ConfigError(f"config {filename} has a syntax error at line {exc.lineno}: {exc.msg}") from None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
    return names


def _exec_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    imported = _imported_names(source, path)
    namespace: dict[str, Any] = {"__file__": os.path.abspath(path), "__name__": "__transition_config__"}
    code = compile(source, path, "exec")
    exec(code, namespace)  # the user's own config file: executing it is how RETURNN configs work
    options: dict[str, Any] = {}
    for name, value in namespace.items():
        if name.startswith("_") or name in imported or isinstance(value, types.ModuleType):
            continue
        if name not in KNOWN_KEYS and (inspect.isfunction(value) or inspect.isclass(value)):
            hint = did_you_mean(name, _CALLABLE_KEYS)
            if hint:
                raise ConfigError(
                    f"config {path}: function {name!r} is not an option{hint}; rename it, or start its name with '_' "
                    "if it is a helper"
                )
            continue
        options[name] = value
    return options


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """Parse `--key=value` arguments; a value is a Python literal where possible, else the string itself."""
    out: dict[str, Any] = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise ConfigError(f"config override {arg!r} must look like --key=value (e.g. --num_epochs=5)")
        key, text = arg[2:].split("=", 1)
        key = key.replace("-", "_")
        value: Any
        if text.strip().lower() in ("inf", "+inf", "-inf", "nan"):
            value = float(text)
        else:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                value = text
        out[key] = value
    return out


def _validate(options: Mapping[str, Any], where: str, origin: str) -> None:
    for key, value in options.items():
        if key not in KNOWN_KEYS:
            raise ConfigError(
                f"{where}: unknown {origin} {key!r}{did_you_mean(key, KNOWN_KEYS)}; "
                "start helper names with '_' (known options are listed in transition.training._config.KNOWN_KEYS)"
            )
        validator = KNOWN_KEYS[key][0]
        if value is None:
            continue  # None means "not set"
        try:
            validator(key, value)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def load_config(
    source: str | os.PathLike | Mapping[str, Any],
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
) -> Config:
    """Load a config from a Python config file or a dict, apply `overrides` and check every option."""
    if isinstance(source, Config):
        options, path = dict(source._values), source.path
    elif isinstance(source, Mapping):
        options, path = dict(source), None
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ConfigError(f"config file {path} does not exist")
        options = _exec_file(path)
    else:
        raise ConfigError(f"a config is a file path or a dict, got {type(source).__name__}")
    where = f"config {path}" if path else "config dict"
    _validate(options, where, "option")
    if overrides:
        if not isinstance(overrides, Mapping):
            overrides = parse_overrides(list(overrides))
        _validate(overrides, where, "override")
        options.update(overrides)
    if options.get("network") is not None and options.get("get_network") is not None:
        raise ConfigError(f"{where}: set either 'network' or 'get_network', not both")
    config = Config(options, path)
    try:
        LearningRateControl.from_config(config)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return config
