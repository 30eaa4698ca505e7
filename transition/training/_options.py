"""`ManagerOptions`: every option of `TransitionManager`, declared once (name, type check, default, config key, help).

The manager takes them as keyword arguments, the config loader derives its known keys (and their checks and
defaults) from the fields that have a config key, and `transition train --help` lists them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from transition.errors import ConfigError, did_you_mean
from transition.params._copy_modes import COPY_PARAM_MODES

__all__ = ["Check", "ManagerOptions", "CONFIG", "HELP", "growth_options"]

CONFIG = "transition.config"  # metadata key: the config file's name of the option (None: API only)
HELP = "transition.help"  # metadata key: one line for people


@attrs.frozen
class Check:
    """A check of one option's value: `pred(value)` must hold; `what` describes the valid values."""

    pred: Callable[[Any], bool]
    what: str

    def check(self, name: str, value: Any, kind: str = "option") -> None:
        """ConfigError naming the option (`kind` "option" or "config option") unless the value is valid."""
        if not self.pred(value):
            raise ConfigError(f"{kind} {name!r} must be {self.what}, got {value!r} ({type(value).__name__})")

    def __call__(self, _instance: Any, attribute: attrs.Attribute, value: Any) -> None:  # an attrs validator
        self.check(attribute.name, value)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


ANY = Check(lambda v: True, "anything")
DICT = Check(lambda v: isinstance(v, Mapping), "a dict")
PATH = Check(lambda v: isinstance(v, (str, os.PathLike)) and bool(os.fspath(v)), "a path string")
BOOL = Check(lambda v: isinstance(v, bool), "True or False")
INT = Check(_is_int, "an int")
POS_INT = Check(lambda v: _is_int(v) and v >= 1, "an int >= 1")
NONNEG_INT = Check(lambda v: _is_int(v) and v >= 0, "an int >= 0")
FUNC = Check(callable, "a function")
SEQ = Check(lambda v: isinstance(v, (list, tuple)), "a list")
OPTIMIZER = Check(lambda v: callable(v) or (isinstance(v, Mapping) and isinstance(v.get("class"), str)),
                  'a dict with a "class" (e.g. {"class": "adam", "epsilon": 1e-8}) or a function returning a Keras '
                  "optimizer")
def _is_keras_model(v: Any) -> bool:
    keras = sys.modules.get("keras")  # a Keras model exists only once keras is imported
    return keras is not None and isinstance(v, keras.Model)


NETWORK = Check(lambda v: isinstance(v, Mapping) or _is_keras_model(v), "a net dict or a built keras.Model")
COPY_MODE = Check(lambda v: isinstance(v, str) and v in COPY_PARAM_MODES,
                  "one of " + ", ".join(repr(m) for m in COPY_PARAM_MODES))
FRACTION = Check(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1,
                 "a number in [0, 1)")
TOLERANCE = Check(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, "a number >= 0")
IMPORTERS = Check(lambda v: isinstance(v, Mapping) and all(
    isinstance(k, str) and (callable(f) or (isinstance(f, str) and f in COPY_PARAM_MODES)) for k, f in v.items()),
    "a dict {layer name: function or copy mode string}")
DISTRIBUTION = Check(lambda v: v in ("mirrored", "multi_worker_mirrored"),
                     "'mirrored' or 'multi_worker_mirrored' (or None: no tf.distribute strategy)")
PRETRAIN = Check(lambda v: isinstance(v, (bool, str, Mapping)) or type(v).__name__ == "Pretrain",
                 'None, "default", a dict of Pretrain options, or a Pretrain')


def _option(default: Any = attrs.NOTHING, check: Check | None = None, *, config: str | None | bool = True,
            help: str) -> Any:  # noqa: A002 - the option's help text
    """An attrs field with its check, config key (True: the field's name; None: API only) and help."""
    validator = check if check is None or default is attrs.NOTHING else attrs.validators.optional(check)
    return attrs.field(default=default, validator=validator, kw_only=True,
                       metadata={CONFIG: config, HELP: help, "check": check})


@attrs.frozen
class ManagerOptions:
    """The options of a `TransitionManager` (see each field's help); checked when made."""

    model: str = _option(check=PATH, help="checkpoint prefix, e.g. 'runs/exp/network' (epochs at network.001, ...)")
    network: Any = _option(None, NETWORK, help="the RETURNN-style net dict (the final one with pretrain) or a built "
                           "keras.Model")
    get_network: Callable[..., Any] | None = _option(None, FUNC, help="get_network(epoch, **kwargs) -> net dict or "
                                                     "built keras.Model, per epoch")
    extern_data: Mapping[str, Any] | None = _option(None, DICT, help="the data keys of net dicts: {'data': {'dim': "
                                                    "64}, 'classes': {'dim': 10, 'sparse': True}}")
    behavior_version: int | None = _option(None, NONNEG_INT, help="RETURNN's behavior_version of the net dicts "
                                           "(not set: 0, as in RETURNN; e.g. conv has a bias by default from 10 on)")
    optimizer: Any = _option({"class": "adam"}, OPTIMIZER, help="{'class': 'adam', ...} (a Keras optimizer class "
                             "and its options) or a function returning an optimizer")
    num_epochs: int = _option(check=POS_INT, help="number of epochs to train")
    pretrain: Any = _option(None, PRETRAIN, help="pretraining: 'default', a dict of Pretrain options, or a Pretrain")
    callbacks: Sequence[object] = _option((), SEQ, help="callbacks whose state is saved with the checkpoints "
                                          "(state_dict / load_state_dict; Keras EarlyStopping & co. are adapted)")
    learning_rate_control: Any = _option(None, config=None, help="a LearningRateControl (the config gives it by "
                                         "learning_rate, learning_rate_control, newbob_*, ...)")
    load: str | None = _option(None, PATH, help="load this checkpoint and continue its training")
    load_epoch: int | None = _option(None, POS_INT, help="epoch of the checkpoint under `model` to load")
    import_model_train_epoch1: str | None = _option(None, PATH, help="initialise from this checkpoint and start at "
                                                    "epoch 1")
    allow_random_model_init: bool = _option(False, BOOL, help="allow a non-training task without a model")
    load_ignore_missing_vars: bool = _option(False, BOOL, help="params missing from the loaded checkpoint keep "
                                             "their init")
    preload_from_files: Mapping[str, Any] | None = _option(None, DICT, help="{name: {'filename': ..., "
                                                           "'init_for_train': True, ...}}")
    keep: Any = _option(None, config=None, help="a KeepPolicy (the config gives it by keep_last_n, keep_best_n, ...)")
    save_every_n_steps: int | None = _option(None, POS_INT, help="also save within an epoch every N (global) steps")
    seed: int = _option(42, INT, config="random_seed", help="seed of Python, numpy, TF and the data shuffle")
    copy_param_mode: str | None = _option(None, COPY_MODE, help="copy mode of every transition whose schedule "
                                          "(or net dict) sets none: None, 'ifpossible', 'subset', 'reset', "
                                          "'preserve' or 'net2wider' (these two keep what the network computes)")
    verify_inputs: Any = _option(None, ANY, help="a batch (as the network takes it, e.g. {'data': array}) or a "
                                 "function of the epoch giving one: each transition runs the old and the new network "
                                 "on it and reports the largest output difference (an error above verify_tolerance)")
    verify_tolerance: float = _option(1e-5, TOLERANCE, help="the largest relative output difference "
                                      "verify_inputs allows at a transition")
    net2wider_noise: float = _option(0.01, FRACTION, help="net2wider: the relative spread of the shares of a "
                                     "copied unit's outgoing weights (they still add up; breaks the copies' symmetry)")
    custom_param_importers: Mapping[str, Any] | None = _option(
        None, IMPORTERS, help="{layer name: custom_param_importer} (RETURNN's signature), e.g. for Keras layers")
    init_new_network_callback: Callable[..., Any] | None = _option(
        None, FUNC, help="init_new_network_callback(new_epoch=, new_network=, old_network_params=)")
    strategy: Any = _option(None, config=None, help="a tf.distribute.Strategy (MirroredStrategy, "
                            "MultiWorkerMirroredStrategy): networks and optimizers are built in its scope, batches "
                            "split across its replicas, the chief writes the checkpoints")
    distribution: str | None = _option(None, DISTRIBUTION, help="'mirrored' (the local GPUs, else CPUs) or "
                                       "'multi_worker_mirrored' (the cluster of TF_CONFIG): the manager creates the "
                                       "strategy")
    resume: bool = _option(True, BOOL, config=None, help="resume from the model's checkpoints (False: refuse to "
                           "start when there are some)")
    handle_preemption: bool = _option(True, BOOL, config=None, help="save and exit with 75 on SIGTERM / SIGUSR1")
    log: Callable[[str], None] | None = _option(None, FUNC, config=None, help="where the loading / resume lines "
                                                "go (default: print)")

    def __attrs_post_init__(self) -> None:
        if (self.network is None) == (self.get_network is None):
            raise ConfigError("give exactly one of network (a net dict) and get_network (a function of the epoch)")
        if self.pretrain is not None and self.get_network is not None:
            raise ConfigError("give either pretrain or get_network, not both: pretrain needs 'network' (the final "
                              "net dict)")
        if self.pretrain is not None and not isinstance(self.network, Mapping):
            raise ConfigError("pretrain needs a net dict as 'network'; a Keras model grows through "
                              "get_network(epoch) returning the model of each epoch")
        if self.strategy is not None and self.distribution is not None:
            raise ConfigError(f"give either strategy (a tf.distribute.Strategy) or distribution "
                              f"({self.distribution!r}: the manager creates the strategy), not both")
        if isinstance(self.network, Mapping) and self.extern_data is None:
            raise ConfigError("option 'extern_data' is required for a net dict (the data keys it reads, e.g. "
                              "{'data': {'dim': 64}, 'classes': {'dim': 10, 'sparse': True}}); a keras.Model needs "
                              "none")

    @classmethod
    def make(cls, **options: Any) -> ManagerOptions:
        """`ManagerOptions(**options)`, an unknown or missing option a ConfigError naming it."""
        fields = attrs.fields_dict(cls)
        for key in options:
            if key not in fields:
                raise ConfigError(f"TransitionManager: unknown option {key!r}{did_you_mean(key, fields)}; the options "
                                  f"are {', '.join(fields)}")
        for key, field in fields.items():
            if field.default is attrs.NOTHING and key not in options:
                raise ConfigError(f"TransitionManager: option {key!r} is required: {field.metadata[HELP]}")
        return cls(**options)

    @classmethod
    def config_keys(cls) -> dict[str, attrs.Attribute]:
        """{config key: field} of the options a config file sets directly."""
        out = {}
        for field in attrs.fields(cls):
            key = field.metadata[CONFIG]
            if key is not None:
                out[field.name if key is True else key] = field
        return out


def growth_options(options: ManagerOptions, epoch: int) -> dict[str, Any]:
    """The keywords of `transition_network` that the options give for the transition into `epoch`: the check
    (`verify_inputs`, called with the epoch where it is a function), net2wider's noise and seed (from the job's)."""
    batch = options.verify_inputs(epoch) if callable(options.verify_inputs) else options.verify_inputs
    return {"verify_inputs": batch, "verify_tolerance": options.verify_tolerance,
            "net2wider_noise": options.net2wider_noise, "seed": (options.seed % 2**32, epoch)}
