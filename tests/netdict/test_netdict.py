"""Tests of net dict normalisation and diffs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transition.errors import ConfigError
from transition.netdict._netdict import (
    MISSING,
    diff_net_dicts,
    normalize_layer_dict,
    normalize_net_dict,
)

BASE = {
    "l1": {"class": "linear", "activation": "tanh", "n_out": 8, "from": ["data"]},
    "output": {"class": "softmax", "loss": "ce", "from": ["l1"], "target": "classes"},
}


def test_equivalent_spellings_are_not_a_change():
    new = {
        "l1": {"class": "linear", "activation": "tanh", "n_out": 8.0},  # no "from" == ["data"], 8.0 == 8
        "output": {"class": "softmax", "loss": "ce", "from": "l1", "target": "classes"},  # str == [str]
    }
    d = diff_net_dicts(BASE, new)
    assert d.is_empty and d.added == () and d.removed == () and d.changed == {}
    assert "equivalent" in str(d)


def test_tuple_vs_list_and_nested_dicts():
    a = {"c": {"class": "conv", "filter_size": (3,), "opts": {"x": (1, 2.0), "y": {"z": 3}}}}
    b = {"c": {"class": "conv", "filter_size": [3], "opts": {"x": [1, 2], "y": {"z": 3.0}}}}
    assert diff_net_dicts(a, b).is_empty
    c = {"c": {"class": "conv", "filter_size": [3], "opts": {"x": [1, 2], "y": {"z": 4}}}}
    d = diff_net_dicts(a, c)
    assert d.changed == {"c": {"opts": ({"x": [1, 2], "y": {"z": 3}}, {"x": [1, 2], "y": {"z": 4}})}}


def test_added_removed_changed():
    new = {
        "l1": {"class": "linear", "activation": "relu", "n_out": 8},
        "l2": {"class": "linear", "activation": "tanh", "n_out": 8, "from": "l1"},
        "output": {"class": "softmax", "loss": "ce", "from": "l2", "target": "classes", "dropout": 0.1},
    }
    old = dict(BASE, l0={"class": "copy"})
    d = diff_net_dicts(old, new)
    assert d.added == ("l2",)
    assert d.removed == ("l0",)
    assert d.changed == {
        "l1": {"activation": ("tanh", "relu")},
        "output": {"from": (["l1"], ["l2"]), "dropout": (MISSING, 0.1)},
    }
    assert not d.is_empty
    text = str(d)
    assert "+ l2" in text and "- l0" in text and "~ output" in text
    assert "from: ['l1'] -> ['l2']" in text and "dropout: <unset> -> 0.1" in text


def test_hash_keys_are_not_layers():
    old = dict(BASE, **{"#repetition": 1, "#config": {"learning_rate": 0.1}})
    new = dict(BASE, **{"#repetition": 2, "#copy_param_mode": "subset", "#config": {"learning_rate": 0.1}})
    d = diff_net_dicts(old, new)
    assert d.is_empty and d.added == ()
    assert d.meta_changed == {"#repetition": (1, 2), "#copy_param_mode": (MISSING, "subset")}
    assert "#repetition" in str(d)


def test_bool_is_not_int_and_numpy_values():
    a = {"l": {"class": "linear", "with_bias": True, "n_out": np.int64(4), "w": np.array([1.0, 2.0])}}
    b = {"l": {"class": "linear", "with_bias": 1, "n_out": 4, "w": [1, 2]}}
    d = diff_net_dicts(a, b)
    assert list(d.changed["l"]) == ["with_bias"]


def test_subnetwork_from_normalised():
    a = {"s": {"class": "subnetwork", "subnetwork": {"x": {"class": "copy"}, "output": {"class": "copy", "from": "x"}}}}
    b = {"s": {"class": "subnetwork", "from": ["data"],
               "subnetwork": {"x": {"class": "copy", "from": "data"}, "output": {"class": "copy", "from": ["x"]}}}}
    assert diff_net_dicts(a, b).is_empty


def test_errors_name_the_layer():
    with pytest.raises(ConfigError, match="'l1'.*'from'"):
        normalize_layer_dict("l1", {"class": "copy", "from": 3})
    with pytest.raises(ConfigError, match="'l2'"):
        normalize_net_dict({"l2": "linear"})
    with pytest.raises(ConfigError, match="net dict"):
        diff_net_dicts([], {})


def test_normalize_does_not_modify_input():
    layer = {"class": "linear", "from": "x", "n_out": 3.0}
    out = normalize_layer_dict("l", layer)
    assert out == {"class": "linear", "from": ["x"], "n_out": 3} and layer["from"] == "x"


names = st.sampled_from(["a", "b", "c", "d"])
layer_st = st.fixed_dictionaries({"class": st.sampled_from(["linear", "copy"]), "n_out": st.integers(1, 5)},
                                 optional={"from": st.lists(names, max_size=2)})
net_st = st.dictionaries(names, layer_st, max_size=4)


@settings(max_examples=50, deadline=None)
@given(net_st, net_st)
def test_diff_properties(a, b):
    assert diff_net_dicts(a, a).is_empty
    d = diff_net_dicts(a, b)
    r = diff_net_dicts(b, a)
    assert set(d.added) == set(r.removed) and set(d.removed) == set(r.added)
    assert set(d.changed) == set(r.changed)
    for layer, opts in d.changed.items():
        assert {k: (v[1], v[0]) for k, v in opts.items()} == r.changed[layer]
    assert d.is_empty == (normalize_net_dict(a) == normalize_net_dict(b))
