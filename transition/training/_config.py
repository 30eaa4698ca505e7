"""RETURNN-style config files: a Python file (or a dict) whose top-level names are the options.

A config file is the user's own Python code and is executed (never unpickled). Top-level names that start with "_",
names bound by imports, and functions / classes whose name is not an option are helpers, not options. Every other
top-level name must be a known option (`KNOWN_KEYS`: the manager's options, declared in `ManagerOptions`, and the
keys of the reference loop, keep policy, learning-rate control and RETURNN's older pretrain keys); an unknown one is
a ConfigError that suggests the closest known option. `--key=value` overrides from the command line are parsed as
Python literals where possible.
"""

from __future__ import annotations

import ast
import inspect
import os
import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import attrs

from transition.errors import ConfigError, did_you_mean, listed
from transition.internal import _fs
from transition.netdict._pretrain import Pretrain, pretrain_from_config
from transition.store._keep import KeepPolicy
from transition.training._lr_control import LR_CONFIG_KEYS, LearningRateControl
from transition.training._options import (
    ANY,
    BOOL,
    FUNC,
    HELP,
    INT,
    NONNEG_INT,
    POS_INT,
    Check,
    ManagerOptions,
)

__all__ = ["Config", "ConfigKey", "KNOWN_KEYS", "load_config", "check_config_file", "check_overrides", "parse_overrides",
           "manager_options"]


class ConfigKey(NamedTuple):
    """A key a config may set: its check, its default (None: not set) and a line for people."""

    check: Check
    default: Any
    help: str


def _one_of(*values: Any) -> Check:
    return Check(lambda v: any(v is x or (type(v) is type(x) and v == x) for x in values),
                 "one of " + ", ".join(repr(v) for v in values))


_LR = Check(lambda v: True, "checked by LearningRateControl")
_PATH = Check(lambda v: isinstance(v, (str, os.PathLike)), "a path string")
_DATA = Check(lambda v: isinstance(v, Mapping) or callable(v),
              "a dict of numpy arrays keyed like extern_data, or a function returning a tf.data.Dataset")

#: the keys a config sets besides the manager's options (those come from `ManagerOptions`, declared there)
_CONFIG_ONLY: dict[str, ConfigKey] = {
    "task": ConfigKey(_one_of("train", "eval", "forward", "search"), "train", "what to do: 'train'"),
    "pretrain_repetitions": ConfigKey(ANY, None, "RETURNN's older pretrain option (repetitions)"),
    "pretrain_construction_algo": ConfigKey(ANY, None, "RETURNN's older pretrain option (construction_algo)"),
    "pretrain_copy_output_layer": ConfigKey(ANY, None, "RETURNN's older pretrain option (copy_output_layer)"),
    "pretrain_greedy": ConfigKey(ANY, None, "RETURNN's older pretrain option (greedy; not supported)"),
    "batch_size": ConfigKey(POS_INT, 32, "examples per step"),
    "train": ConfigKey(_DATA, None, "training data"),
    "dev": ConfigKey(_DATA, None, "development data, scored after every epoch"),
    "keep_last_n": ConfigKey(NONNEG_INT, None, "keep the last N epoch checkpoints"),
    "keep_best_n": ConfigKey(NONNEG_INT, None, "keep the best N epoch checkpoints by `keep_best_score`"),
    "keep_best_score": ConfigKey(_PATH, None, "score that ranks checkpoints for keep_best_n (default: the lr-control "
                                 "score)"),
    "keep_best_mode": ConfigKey(_one_of("min", "max"), "min", "whether lower is better"),
    "keep_every_n_epochs": ConfigKey(POS_INT, None, "also keep every N-th epoch"),
    "deterministic": ConfigKey(BOOL, False, "enable TF's deterministic ops"),
    "log": ConfigKey(_PATH, None, "also write the log to this file"),
    "log_verbosity": ConfigKey(INT, 3, "log detail (RETURNN's scale; 3 = the epoch lines)"),
    "use_tensorflow": ConfigKey(_one_of(True), True, "RETURNN's backend switch (must be True)"),
    "backend": ConfigKey(_one_of("tensorflow", "tf"), "tensorflow", "RETURNN's backend switch (must be 'tensorflow')"),
    **{key: ConfigKey(_LR, None, "learning-rate control (RETURNN's option)") for key in LR_CONFIG_KEYS},
    "learning_rate": ConfigKey(_LR, 1.0, "initial learning rate (RETURNN's default 1.0)"),
}

#: every key a config may set -> ConfigKey(check, default, help)
KNOWN_KEYS: dict[str, ConfigKey] = {
    **{key: ConfigKey(field.metadata["check"] or ANY, None if field.default is attrs.NOTHING else field.default,
                      field.metadata[HELP])
       for key, field in ManagerOptions.config_keys().items()},
    **_CONFIG_ONLY,
}

#: options whose value is a function: a helper function whose name looks like one of these is a typo
_CALLABLE_KEYS = tuple(k for k, v in KNOWN_KEYS.items() if v.check in (FUNC, _DATA)) + ("optimizer",)


class Config(Mapping[str, Any]):
    """The options of a config, with defaults for the ones not set. `path` is the file (None for a dict)."""

    def __init__(self, values: Mapping[str, Any], path: str | None = None) -> None:
        self._values = dict(values)
        self.path = path

    def __getitem__(self, key: str) -> Any:
        if key in self._values:
            return self._values[key]
        if key in KNOWN_KEYS:
            return KNOWN_KEYS[key].default
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
                raise ConfigError(f"config option {key!r} is required{where}: {KNOWN_KEYS[key].help}")

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
        source = _fs.read_text(path)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    imported = _imported_names(source, path)
    namespace: dict[str, Any] = {"__file__": os.path.abspath(path) if _fs.is_local(path) else path, "__name__": "__transition_config__"}
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
                f"{where}: unknown {origin} {key!r}{did_you_mean(key, KNOWN_KEYS)}; " + (
                    "`transition train --help` lists the config keys" if origin == "override" else
                    "start helper names with '_' (known options are listed in transition.training._config.KNOWN_KEYS)")
            )
        if value is None:
            continue  # None means "not set"
        try:
            KNOWN_KEYS[key].check.check(key, value, "config option")
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def check_config_file(path: str | os.PathLike) -> None:
    """A ConfigError unless `path` is a file: it does not exist, or it is a directory (naming its config files)."""
    path = os.fspath(path)
    if _fs.isfile(path):
        return
    if not _fs.isdir(path):
        raise ConfigError(f"config file {path} does not exist")
    try:
        names = _fs.listdir(path)
        configs = sorted(os.path.join(path, f) for f in names if f.endswith(".config")) or sorted(
            os.path.join(path, f) for f in names if f.endswith(".py"))  # RETURNN configs may be .py files
    except OSError:
        configs = []
    hint = f": give a config file in it, one of {listed(configs)}" if configs else ": give the config file"
    raise ConfigError(f"config file {path} is a directory, not a file{hint}")


def check_overrides(args: Sequence[str]) -> dict[str, Any]:
    """Parse `--key=value` overrides (`parse_overrides`) and check them as `load_config` does: known keys, values
    of the right type (without reading a config)."""
    overrides = parse_overrides(args)
    _validate(overrides, "command line", "override")
    return overrides


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
        check_config_file(path)
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


def _pretrain_of(cfg: Config) -> Pretrain | None:
    if not cfg.is_set("pretrain"):
        return None
    if not cfg.is_set("network"):
        raise ConfigError(f"{cfg.where()}: 'pretrain' needs 'network' (the final net dict)")
    return pretrain_from_config(
        cfg["pretrain"], cfg["network"],
        pretrain_repetitions=cfg["pretrain_repetitions"],
        pretrain_construction_algo=cfg["pretrain_construction_algo"],
        pretrain_copy_output_layer=cfg["pretrain_copy_output_layer"],
        pretrain_greedy=cfg["pretrain_greedy"],
    )


def _keep_policy_of(cfg: Config) -> KeepPolicy:
    keep_kwargs: dict[str, Any] = {}
    if cfg.is_set("keep_last_n"):
        keep_kwargs["keep_last"] = cfg["keep_last_n"]
    if cfg.is_set("keep_best_n"):
        keep_kwargs["keep_best"] = cfg["keep_best_n"]
        keep_kwargs["score"] = cfg["keep_best_score"] or cfg["learning_rate_control_error_measure"] or "dev_score"
        keep_kwargs["mode"] = cfg["keep_best_mode"]
    if cfg.is_set("keep_every_n_epochs"):
        keep_kwargs["keep_every"] = cfg["keep_every_n_epochs"]
    return KeepPolicy(**keep_kwargs)


def manager_options(cfg: Config, **api_options: Any) -> ManagerOptions:
    """The manager's options that a (checked) config gives, plus `api_options` (those without a config key, such
    as strategy, resume, log). ConfigError names the missing or conflicting option. `deterministic = True` turns on
    TF's op determinism here (it is process-wide)."""
    if cfg["task"] != "train":
        raise ConfigError(f"{cfg.where()}: task={cfg['task']!r}; the manager trains (task='train')")
    cfg.require("model", "extern_data", "num_epochs")
    if not cfg.is_set("network") and not cfg.is_set("get_network"):
        raise ConfigError(f"{cfg.where()}: set 'network' (a net dict) or 'get_network' (a function of the epoch)")
    pretrain = _pretrain_of(cfg)
    if cfg["deterministic"]:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    num_pretrain = pretrain.get_train_num_epochs() if pretrain is not None else 0
    options = {field.name: cfg[key] for key, field in ManagerOptions.config_keys().items() if cfg.is_set(key)}
    options.update(
        model=str(cfg["model"]),
        pretrain=pretrain,
        callbacks=[*cfg["callbacks"], *api_options.pop("callbacks", ())],
        learning_rate_control=LearningRateControl.from_config(cfg, num_pretrain_epochs=num_pretrain),
        keep=_keep_policy_of(cfg),
    )
    return ManagerOptions.make(**options, **api_options)
