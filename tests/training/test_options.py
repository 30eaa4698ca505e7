"""training._options: the manager's options are declared once and used by the manager, the config and the CLI."""

from __future__ import annotations

import inspect

import attrs
import pytest

from transition.errors import ConfigError
from transition.training._cadence import SaveCadence
from transition.training._config import KNOWN_KEYS, load_config
from transition.training._options import ManagerOptions

BASE = {"model": "m", "network": {}, "extern_data": {"data": {"dim": 2}}, "num_epochs": 1}


def test_unknown_and_missing_options_are_errors_naming_them():
    with pytest.raises(ConfigError, match=r"unknown option 'save_every_n_step'.*did you mean 'save_every_n_steps'"):
        ManagerOptions.make(**BASE, save_every_n_step=5)
    with pytest.raises(ConfigError, match=r"option 'num_epochs' is required"):
        ManagerOptions.make(**{k: v for k, v in BASE.items() if k != "num_epochs"})
    with pytest.raises(ConfigError, match=r"option 'save_every_n_steps' must be an int >= 1, got 0"):
        ManagerOptions.make(**BASE, save_every_n_steps=0)


def test_config_keys_come_from_the_options():
    for key, field in ManagerOptions.config_keys().items():
        assert KNOWN_KEYS[key].check is field.metadata["check"], key
        assert KNOWN_KEYS[key].help == field.metadata["transition.help"], key
    assert "random_seed" in KNOWN_KEYS and "seed" not in KNOWN_KEYS  # the config's name of `seed`
    assert "strategy" not in KNOWN_KEYS  # an API-only option
    with pytest.raises(ConfigError, match=r"config option 'save_every_n_steps' must be an int >= 1"):
        load_config({**BASE, "save_every_n_steps": -1})


def test_the_manager_signature_lists_every_option():
    from transition.training._manager import TransitionManager

    params = inspect.signature(TransitionManager.__init__).parameters
    assert list(params)[:3] == ["self", "model", "network"]
    assert {f.name for f in attrs.fields(ManagerOptions)} <= set(params)
    assert params["seed"].default == 42 and params["num_epochs"].default is inspect.Parameter.empty


def test_save_cadence_counts_global_steps():
    cadence = SaveCadence(100)
    assert cadence.due(200) and not cadence.due(150) and not cadence.due(0)
    assert not SaveCadence(None).due(100)
    with pytest.raises(ConfigError, match="every_n_steps"):
        SaveCadence(0)


def test_growth_options_reach_the_transition():
    from transition.training._options import growth_options

    assert {"verify_inputs", "verify_tolerance", "net2wider_noise"} <= set(KNOWN_KEYS)
    opts = ManagerOptions.make(**BASE, copy_param_mode="net2wider", verify_inputs=lambda epoch: {"data": epoch},
                               net2wider_noise=0.0, seed=-1)
    assert growth_options(opts, 3) == {"verify_inputs": {"data": 3}, "verify_tolerance": 1e-5,
                                       "net2wider_noise": 0.0, "seed": (2**32 - 1, 3)}
    with pytest.raises(ConfigError, match=r"option 'net2wider_noise' must be a number in \[0, 1\), got 1.5"):
        ManagerOptions.make(**BASE, net2wider_noise=1.5)
    with pytest.raises(ConfigError, match=r"option 'copy_param_mode' must be one of .*'preserve', 'net2wider'"):
        ManagerOptions.make(**BASE, copy_param_mode="preserved")
    with pytest.raises(ConfigError, match=r"config option 'verify_tolerance' must be a number >= 0"):
        load_config({**BASE, "verify_tolerance": -1})
