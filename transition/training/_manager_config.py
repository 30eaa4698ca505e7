"""From a RETURNN-style config to the keyword arguments of `TransitionManager` (used by `from_config`)."""

from __future__ import annotations

from typing import Any

from transition.training._config import Config
from transition.errors import ConfigError
from transition.store._keep import KeepPolicy
from transition.training._lr_control import LearningRateControl
from transition.netdict._pretrain import Pretrain, pretrain_from_config

__all__ = ["manager_kwargs_from_config"]


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


def manager_kwargs_from_config(cfg: Config) -> dict[str, Any]:
    """The TransitionManager arguments a (checked) config gives: network / pretrain, learning-rate control, loading,
    keep and save options. ConfigError names the missing or conflicting option. `deterministic = True` turns on
    TF's op determinism here (it is process-wide)."""
    if cfg["task"] != "train":
        raise ConfigError(f"{cfg.where()}: task={cfg['task']!r}; the manager trains (task='train')")
    cfg.require("model", "extern_data", "num_epochs")
    if not cfg.is_set("network") and not cfg.is_set("get_network"):
        raise ConfigError(f"{cfg.where()}: set 'network' (a net dict) or 'get_network' (a function of the epoch)")
    pretrain = _pretrain_of(cfg)
    num_pretrain = pretrain.get_train_num_epochs() if pretrain is not None else 0
    if cfg["deterministic"]:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    return {
        "model": str(cfg["model"]),
        "network": cfg["network"],
        "get_network": cfg["get_network"],
        "pretrain": pretrain,
        "extern_data": cfg["extern_data"],
        "optimizer": cfg["optimizer"] if cfg.is_set("optimizer") else {"class": "adam"},
        "num_epochs": cfg["num_epochs"],
        "callbacks": list(cfg["callbacks"]),
        "learning_rate_control": LearningRateControl.from_config(cfg, num_pretrain_epochs=num_pretrain),
        "load": cfg["load"],
        "load_epoch": cfg["load_epoch"],
        "import_model_train_epoch1": cfg["import_model_train_epoch1"],
        "allow_random_model_init": cfg["allow_random_model_init"],
        "load_ignore_missing_vars": cfg["load_ignore_missing_vars"],
        "preload_from_files": cfg["preload_from_files"],
        "keep": _keep_policy_of(cfg),
        "save_every_n_steps": cfg["save_every_n_steps"],
        "seed": cfg["random_seed"],
        "init_new_network_callback": cfg["init_new_network_callback"],
    }
