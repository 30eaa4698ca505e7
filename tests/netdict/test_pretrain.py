"""Tests of the pretrain schedules (transition.netdict._pretrain, transition.netdict._construct)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transition.errors import ConfigError
from transition.netdict._pretrain import Pretrain, WrapEpochValue, pretrain_from_config

try:
    import returnn.pretrain as returnn_pretrain
except Exception:  # pragma: no cover - returnn is optional
    returnn_pretrain = None

needs_returnn = pytest.mark.skipif(returnn_pretrain is None, reason="returnn is not installed")


def lin(src, n_out=4, **opts):
    return {"class": "linear", "activation": "tanh", "n_out": n_out, "from": src, **opts}


def out(src, **opts):
    return {"class": "softmax", "loss": "ce", "target": "classes", "from": src, **opts}


def mlp(n):
    """A chain data -> l1 -> ... -> ln -> output."""
    net = {f"l{i}": lin([f"l{i - 1}" if i > 1 else "data"]) for i in range(1, n + 1)}
    net["output"] = out([f"l{n}"])
    return net


def schedule(p):
    return [p.get_network_json_for_epoch(e) for e in range(1, p.get_train_num_epochs() + 1)]


def layer_names(net):
    return {k for k in net if not k.startswith("#")}


def is_valid(net, inputs=("data",)):
    """Every "from" of every layer names a layer of the net or an input."""
    for name in layer_names(net):
        src = net[name].get("from", ["data"])
        for s in [src] if isinstance(src, str) else src:
            if s not in net and s not in inputs and not s.startswith("data:"):
                return False
    return True


def returnn_schedule(net, **opts):
    """RETURNN's per-epoch net dicts (it mutates its input: give it a copy)."""
    p = returnn_pretrain.Pretrain(copy.deepcopy(net), **opts)
    return [p.get_network_json_for_epoch(e) for e in range(1, p.get_train_num_epochs() + 1)]


# ---- oracle: same per-epoch net dicts as RETURNN

ORACLE_CASES = {
    "deep_mlp": (mlp(5), {}),
    "deep_mlp_from_input": (mlp(4), {"construction_algo": "from_input"}),
    "concat_inputs": (
        {
            "a": lin(["data"]),
            "b": lin(["data"]),
            "a2": lin(["a"]),
            "b2": lin(["b"]),
            "c": lin(["a2", "b2"]),
            "output": out(["c"]),
        },
        {},
    ),
    "concat_inputs_from_input": (
        {
            "a": lin(["data"]),
            "b": lin(["data"]),
            "a2": lin(["a"]),
            "c": lin(["a2", "b"]),
            "d": lin(["c"]),
            "output": out(["d"]),
        },
        {"construction_algo": "from_input"},
    ),
    "repetitions_list": (mlp(4), {"repetitions": [2, 1, 3]}),
    "repetitions_int": (mlp(3), {"repetitions": 2}),
    "repetitions_dict": (mlp(4), {"repetitions": {"default": 2, "final": 3}}),
    "repetitions_dict_indices": (mlp(4), {"repetitions": {"default": 2, 1: 0, -1: 3}}),
    "non_trainable_from_input": (
        {
            "window": {"class": "copy", "from": ["data"], "trainable": False},
            "l1": lin(["window"]),
            "l2": lin(["l1"]),
            "l3": lin(["l2"]),
            "output": out(["l3"]),
        },
        {"construction_algo": "from_input"},
    ),
    "non_trainable_from_output": (
        {
            "l1": lin(["data"]),
            "frozen": lin(["l1"], trainable=False),
            "l2": lin(["frozen"]),
            "l3": lin(["l2"]),
            "output": out(["l3"]),
        },
        {},
    ),
    "no_network_modifications": (mlp(3), {"construction_algo": "no_network_modifications", "repetitions": 2}),
    "two_outputs": (
        {"a": lin(["data"]), "a2": lin(["a"]), "b": lin(["data"]), "output": out(["a2"]), "out2": out(["b"])},
        {"output_layers": ("output", "out2"), "construction_algo": "from_input"},
    ),
    "two_outputs_from_output": (
        {"a": lin(["data"]), "b": lin(["data"]), "output": out(["a"]), "out2": out(["b"])},
        {"output_layers": ("output", "out2")},
    ),
    "two_extern_inputs": (
        {"l1": lin(["data", "data:f2"]), "l2": lin(["l1"]), "l3": lin(["l2"]), "output": out(["l3"])},
        {"input_layers": ("data", "data:f2")},
    ),
    "output_named_out_from_input": (
        {"l1": lin(["data"]), "l2": lin(["l1"]), "out": out(["l2"])},
        {"construction_algo": "from_input"},
    ),
    "copy_param_mode_key": (
        {**mlp(3), "#copy_param_mode": "subset"},
        {"construction_algo": "no_network_modifications", "copy_param_mode": "ifpossible"},
    ),
}


@needs_returnn
@pytest.mark.oracle
@pytest.mark.parametrize("case", sorted(ORACLE_CASES))
def test_schedule_equals_returnn(case):
    net, opts = ORACLE_CASES[case]
    expected = returnn_schedule(net, **opts)
    p = Pretrain(copy.deepcopy(net), **opts)
    assert schedule(p) == expected
    assert p.get_final_network_json() == expected[-1]
    assert len(expected) > 1 or opts.get("construction_algo") == "no_network_modifications" or case.startswith("two")
    if case == "two_outputs_from_output":
        assert len(expected) == 1


def _growing_custom_algo(idx, net_dict):
    if idx >= 2:
        return None
    keep = {"l1"} if idx == 0 else {"l1", "l2"}
    new = {k: v for k, v in net_dict.items() if k in keep or k == "output"}
    new["output"]["from"] = [sorted(keep)[-1]]
    if idx == 1:
        new["#repetition"] = 2
        new["#copy_param_mode"] = "reset"
    return new


@needs_returnn
@pytest.mark.oracle
def test_custom_algo_equals_returnn():
    net = mlp(3)
    expected = returnn_schedule(net, construction_algo=_growing_custom_algo)
    p = Pretrain(net, construction_algo=_growing_custom_algo)
    assert schedule(p) == expected
    assert [len(layer_names(n)) for n in schedule(p)] == [2, 3, 3, 4]
    assert p.get_copy_param_mode_for_epoch(2) == "reset"
    assert p.get_copy_param_mode_for_epoch(1) is None


@needs_returnn
@pytest.mark.oracle
def test_wrap_epoch_value_equals_returnn():
    net = mlp(3)
    net["l1"]["dropout"] = returnn_pretrain.WrapEpochValue(lambda epoch: 0.1 * epoch)
    net["output"]["loss_opts"] = {"scale": [returnn_pretrain.WrapEpochValue(lambda epoch: epoch), 7]}
    expected = returnn_schedule(net, repetitions=2)
    p = Pretrain(net, repetitions=2)
    got = schedule(p)
    assert got == expected
    assert [n["l1"]["dropout"] for n in got] == pytest.approx([0.1 * e for e in range(1, 7)])


# random DAG nets: where RETURNN gives valid nets ours are equal; elsewhere ours are valid or a ConfigError


@st.composite
def random_nets(draw):
    n = draw(st.integers(1, 7))
    net = {}
    names = []
    for i in range(n):
        # mostly a chain (deep nets), sometimes with extra sources (concatenation, skip connections)
        first = names[-1] if names and draw(st.integers(0, 4)) else "data"
        extra = draw(st.lists(st.sampled_from(["data", *names]), max_size=2 if draw(st.integers(0, 2)) == 0 else 0))
        layer = lin(list(dict.fromkeys([first, *extra])))
        if draw(st.integers(0, 4)) == 0:
            layer["trainable"] = False
        net[f"h{i}"] = layer
        names.append(f"h{i}")
    extra = draw(st.lists(st.sampled_from(names), max_size=1 if draw(st.booleans()) else 0))
    net["output"] = out(list(dict.fromkeys([names[-1], *extra])))
    if draw(st.booleans()):
        net["aux"] = out([draw(st.sampled_from(names))])
    return net


def _returnn_or_none(net, **opts):
    try:
        result = returnn_schedule(net, **opts)
    except Exception:
        return None
    return result if all(is_valid(n) for n in result) else None


@needs_returnn
@pytest.mark.oracle
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    net=random_nets(),
    algo=st.sampled_from(["from_output", "from_input", "no_network_modifications"]),
    reps=st.sampled_from([None, 2, [1, 2], {"default": 1, "final": 2}]),
)
def test_random_nets_against_returnn(net, algo, reps):
    expected = _returnn_or_none(net, construction_algo=algo, repetitions=reps)
    try:
        got = schedule(Pretrain(copy.deepcopy(net), construction_algo=algo, repetitions=reps))
    except ConfigError as exc:
        assert expected is None, f"RETURNN gives a valid schedule but we raise {exc}"
        return
    if expected is not None:
        assert got == expected
    assert all(is_valid(n) for n in got)
    assert got[-1] == net


# ---- where RETURNN fails: a correct schedule or a clear error


def test_string_from_is_normalised():
    # RETURNN matches "l1" as a substring of "l10" and iterates a string "from" char by char.
    net = {
        "l1": lin("data"),
        "l10": lin("l1"),
        "l2": lin("l10"),
        "output": out("l2"),
    }
    listed = {k: {**v, "from": [v["from"]]} for k, v in net.items()}
    for algo in ("from_output", "from_input"):
        if returnn_pretrain is not None:
            with pytest.raises((AssertionError, KeyError)):
                returnn_schedule(net, construction_algo=algo)
        got = schedule(Pretrain(net, construction_algo=algo))
        assert got == schedule(Pretrain(listed, construction_algo=algo))
        assert [sorted(layer_names(n)) for n in got] == [
            ["l1", "output"],
            ["l1", "l10", "output"],
            ["l1", "l10", "l2", "output"],
        ]
        assert all(is_valid(n) for n in got)


def test_skip_connection_to_output_gives_valid_schedule():
    # RETURNN asserts: the output reads l2 and its source l1, and l1 gets removed while still read.
    net = {"l1": lin(["data"]), "l2": lin(["l1"]), "l3": lin(["l2"]), "output": out(["l3", "l1"])}
    if returnn_pretrain is not None:
        with pytest.raises(AssertionError):
            returnn_schedule(net)
    got = schedule(Pretrain(net))
    assert all(is_valid(n) for n in got)
    assert got[-1] == net
    # l1 stays while the layers above it go, one per step
    assert [sorted(layer_names(n)) for n in got] == [["l1", "output"], ["l1", "l2", "output"], sorted(net)]
    assert [n["output"]["from"] for n in got] == [["l1"], ["l1", "l2"], ["l3", "l1"]]


def test_output_reading_removed_layer_names_it():
    # "aux" reads l2, which the step removes (RETURNN silently gives a net where aux reads a missing layer).
    net = {"l1": lin(["data"]), "l2": lin(["l1"]), "output": out(["l2"]), "aux": out(["l2"])}
    with pytest.raises(ConfigError, match="'aux' reads 'l2'.*output_layers"):
        Pretrain(net)
    got = schedule(Pretrain(net, output_layers=("output", "aux")))
    assert got[0]["aux"]["from"] == ["l1"] and "l2" not in got[0]


def test_two_outputs_reading_one_layer():
    net = {"l1": lin(["data"]), "l2": lin(["l1"]), "l3": lin(["l2"]), "output": out(["l3"]), "out2": out(["l3"])}
    if returnn_pretrain is not None:  # RETURNN removes l3 for "output", then asserts for "out2"
        with pytest.raises(AssertionError):
            returnn_schedule(net, output_layers=("output", "out2"))
    got = schedule(Pretrain(net, output_layers=("output", "out2")))
    assert [sorted(layer_names(n)) for n in got] == [
        ["l1", "out2", "output"],
        ["l1", "l2", "out2", "output"],
        ["l1", "l2", "l3", "out2", "output"],
    ]
    assert got[0]["output"]["from"] == got[0]["out2"]["from"] == ["l1"]


def test_other_input_than_data():
    net = {"l1": lin(["data:feat"]), "l2": lin(["l1"]), "l3": lin(["l2"]), "output": out(["l3"])}
    if returnn_pretrain is not None:  # RETURNN's from_output treats only input_layers as inputs
        with pytest.raises(AssertionError):
            returnn_schedule(net)
    got = schedule(Pretrain(net))
    assert [len(layer_names(n)) for n in got] == [2, 3, 4]
    assert got[0]["output"]["from"] == ["l1"]
    # from_input grows from "data" only (as RETURNN): nothing reads it, so no pretraining
    assert schedule(Pretrain(net, construction_algo="from_input")) == [net]
    # a net that reads both: RETURNN fails on "data:feat" (KeyError); we keep it as an input
    net = {"l1": lin(["data"]), "m1": lin(["data:feat"]), "c": lin(["l1", "m1"]), "output": out(["c"])}
    if returnn_pretrain is not None:
        with pytest.raises(KeyError):
            returnn_schedule(net, construction_algo="from_input")
    got = schedule(Pretrain(net, construction_algo="from_input"))
    assert [n["output"]["from"] for n in got] == [["l1", "data:feat"], ["c"], ["c"]]
    assert got[1]["c"]["from"] == ["l1", "data:feat"] and "m1" not in got[1]
    assert all(is_valid(n) for n in got)


def test_output_without_from_and_hash_keys_in_original():
    # RETURNN fails on both (KeyError "from"; "#..." values treated as layers).
    net = {"output": {"class": "softmax", "target": "classes"}, "#copy_param_mode": "subset"}
    p = Pretrain(net)
    assert p.get_train_num_epochs() == 1 and p.get_final_network_json() == net
    net = {**mlp(2), "#copy_param_mode": "subset", "#repetition": 3}
    p = Pretrain(net, copy_param_mode="ifpossible")
    assert p.repetitions == (1, 3)
    assert [sorted(n) for n in schedule(p)] == [["l1", "output"]] + [sorted(set(net) - {"#repetition"})] * 3
    assert [p.get_copy_param_mode_for_epoch(e) for e in (1, 2, 4, 5)] == ["ifpossible", "subset", "subset", "subset"]


def test_output_reading_output_is_an_error():
    net = {"l1": lin(["data"]), "o2": out(["l1"]), "output": out(["o2"])}
    with pytest.raises(ConfigError, match="'output' reads output layer 'o2'"):
        Pretrain(net, output_layers=("output", "o2"))


# ---- properties of the schedule


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), algo=st.sampled_from(["from_output", "from_input"]), rep=st.integers(1, 3))
def test_chain_schedule(n, algo, rep):
    net = mlp(n)
    p = Pretrain(net, construction_algo=algo, repetitions=rep)
    nets = schedule(p)
    assert p.get_train_num_epochs() == n * rep == len(nets)
    for i, step in enumerate(nets[::rep], start=1):
        assert layer_names(step) == {f"l{j}" for j in range(1, i + 1)} | {"output"}
        assert step["output"]["from"] == [f"l{i}"]
        assert is_valid(step)
        for name in layer_names(step) - {"output"}:
            assert step[name] == net[name]
    assert nets[-1] == net == p.get_final_network_json()
    assert p.get_network_json_for_epoch(n * rep + 5) == net
    assert p.is_pretrain_epoch(n * rep) and not p.is_pretrain_epoch(n * rep + 1)


@settings(max_examples=60, deadline=None)
@given(net=random_nets(), algo=st.sampled_from(["from_output", "from_input"]))
def test_random_steps_are_growing_valid_subnets(net, algo):
    opts = {"construction_algo": algo}
    if "aux" in net:
        opts["output_layers"] = ("output", "aux")
    nets = schedule(Pretrain(net, **opts))
    assert nets[-1] == net
    for before, after in zip(nets, nets[1:]):
        assert layer_names(before) <= layer_names(after)
    for step in nets:
        assert is_valid(step) and layer_names(step) <= layer_names(net)
        # a kept layer keeps all its options; only the outputs and the rewired layers change "from"
        for name in layer_names(step):
            assert {k: v for k, v in step[name].items() if k != "from"} == {
                k: v for k, v in net[name].items() if k != "from"
            }


# ---- options


def test_repetitions_forms():
    net = mlp(3)
    assert Pretrain(net, repetitions=[2]).repetitions == (2, 2, 2)
    assert Pretrain(net, repetitions=[1, 3]).repetitions == (1, 3, 3)
    assert Pretrain(net, repetitions={"default": 2, "final": 1}).repetitions == (2, 2, 1)
    assert Pretrain(net, repetitions={0: 0, -1: 4}).repetitions == (0, 1, 4)
    assert Pretrain(net, repetitions=None).repetitions == (1, 1, 1)
    p = Pretrain(net, repetitions=[0, 2, 1])
    assert [len(layer_names(n)) for n in schedule(p)] == [3, 3, 4]


@pytest.mark.parametrize(
    "reps, match",
    [
        ([1, 1, 1, 1], "4 entries but the schedule has only 3 steps"),
        ({"defualt": 2}, "'defualt'.*did you mean 'default'"),
        ({7: 1}, "key 7"),
        ({"final": 2, 2: 1}, "last step twice"),
        ([1, -1], r"repetitions\[1\] must be an int >= 0"),
        (-2, "repetitions must be an int >= 1"),
        ("3", "repetitions must be an int"),
        ([0, 0, 0], "final step .* has 0 repetitions"),
        ({"final": 0}, "final step .* has 0 repetitions"),
    ],
)
def test_repetitions_errors(reps, match):
    with pytest.raises(ConfigError, match=match):
        Pretrain(mlp(3), repetitions=reps)


def test_hash_repetition_key_overrides_and_is_checked():
    def algo(idx, net_dict):
        if idx:
            return None
        return {"l1": net_dict["l1"], "output": {**net_dict["output"], "from": ["l1"]}, "#repetition": "x"}

    with pytest.raises(ConfigError, match="'#repetition' of step 0"):
        Pretrain(mlp(2), construction_algo=algo)


def test_copy_param_mode_options():
    p = Pretrain(mlp(2), copy_param_mode="subset")
    assert p.copy_param_mode == "subset" and p.copy_output_layer == "subset"
    assert p.get_copy_param_mode_for_epoch(1) == "subset"
    assert p.get_copy_param_mode_for_epoch(3) is None  # after pretraining: no mode
    assert Pretrain(mlp(2)).copy_output_layer == "ifpossible"
    assert Pretrain(mlp(2), copy_param_mode="reset").copy_output_layer is False
    assert Pretrain(mlp(2), copy_output_layer=True).copy_output_layer is True
    with pytest.raises(ConfigError, match="copy_param_mode 'subest'.*did you mean 'subset'"):
        Pretrain(mlp(2), copy_param_mode="subest")
    with pytest.raises(ConfigError, match="copy_output_layer 'yes'"):
        Pretrain(mlp(2), copy_output_layer="yes")
    with pytest.raises(ConfigError, match="'#copy_param_mode' of step 0"):
        Pretrain({**mlp(2), "#copy_param_mode": "all"}, construction_algo="no_network_modifications")


def test_name_errors():
    with pytest.raises(ConfigError, match="construction_algo 'from_ouput'.*did you mean 'from_output'"):
        Pretrain(mlp(2), construction_algo="from_ouput")
    with pytest.raises(ConfigError, match="output layer 'outptu'.*did you mean 'output'"):
        Pretrain(mlp(2), output_layers=("outptu",))
    no_output = {"l1": lin(["data"]), "l2": lin(["l1"]), "out": out(["l2"])}
    with pytest.raises(ConfigError, match="output layer 'output'.*not a layer"):
        Pretrain(no_output)  # from_output needs them
    assert Pretrain(no_output, construction_algo="from_input").get_train_num_epochs() == 2  # as RETURNN
    with pytest.raises(ConfigError, match="output layer 'ot'.*did you mean 'out'"):
        Pretrain(no_output, construction_algo="from_input", output_layers=("ot",))
    with pytest.raises(ConfigError, match="input layer 'feats'"):
        Pretrain(mlp(2), input_layers=("feats",))
    with pytest.raises(ConfigError, match="layer 'l2' reads 'l11'.*did you mean 'l1'"):
        Pretrain({"l1": lin(["data"]), "l2": lin(["l11"]), "output": out(["l2"])})
    with pytest.raises(ConfigError, match="layer 'l1': 'from' must be"):
        Pretrain({"l1": lin(3), "output": out(["l1"])})
    with pytest.raises(ConfigError, match="layer 'l1' must be a dict"):
        Pretrain({"l1": "linear", "output": out(["l1"])})
    with pytest.raises(ConfigError, match="output_layers must be a list"):
        Pretrain(mlp(2), output_layers="output")
    p = Pretrain(mlp(2))
    with pytest.raises(ConfigError, match="epoch 0"):
        p.get_network_json_for_epoch(0)


def test_custom_algo_errors_and_returned_copies():
    with pytest.raises(ConfigError, match="step 0 of construction_algo 'bad'.*got list"):

        def bad(idx, net_dict):
            return [1]

        Pretrain(mlp(2), construction_algo=bad)

    def dangling(idx, net_dict):
        return None if idx else {"output": net_dict["output"]}

    with pytest.raises(ConfigError, match="step 0 of construction_algo 'dangling'.*'output' reads 'l2'"):
        Pretrain(mlp(2), construction_algo=dangling)
    with pytest.raises(ConfigError, match="must return None"):
        Pretrain(mlp(1), construction_algo=lambda idx, net_dict: net_dict)


def test_input_dict_not_mutated_and_results_are_copies():
    net = {**mlp(3), "#repetition": 2}
    before = copy.deepcopy(net)
    p = Pretrain(net)
    assert net == before
    got = p.get_network_json_for_epoch(1)
    got["output"]["from"] = ["zzz"]
    assert p.get_network_json_for_epoch(1)["output"]["from"] == ["l1"]


def test_own_wrap_epoch_value():
    net = mlp(2)
    net["l1"]["dropout"] = WrapEpochValue(lambda epoch: epoch / 10)
    net["l2"]["extra"] = (WrapEpochValue(lambda epoch: -epoch), {"x": [WrapEpochValue(lambda e: e * 2)]})
    p = Pretrain(net, repetitions=[1, 2])
    nets = schedule(p)
    assert [n["l1"]["dropout"] for n in nets] == [0.1, 0.2, 0.3]
    assert [n["l2"]["extra"] for n in nets[1:]] == [(-2, {"x": [4]}), (-3, {"x": [6]})]
    assert p.get_final_network_json()["l1"]["dropout"] == 0.3
    assert p.get_network_json_for_epoch(10)["l1"]["dropout"] == 0.3


# ---- pretrain_from_config


def test_pretrain_from_config_forms():
    net = mlp(3)
    for off in (None, False, "", {}, "false", "0"):
        assert pretrain_from_config(off, net) is None
    for on in ("default", True, "true", "1"):
        p = pretrain_from_config(on, net)
        assert schedule(p) == schedule(Pretrain(net))
    p = pretrain_from_config({"construction_algo": "from_input", "repetitions": 2, "greedy": False}, net)
    assert p.get_train_num_epochs() == 6 and p.construction_algo == "from_input"
    p = pretrain_from_config("default", net, pretrain_repetitions="1 2", pretrain_copy_output_layer="false")
    assert p.repetitions == (1, 2, 2) and p.copy_output_layer is False
    p = pretrain_from_config(True, net, pretrain_construction_algo="no_network_modifications", pretrain_greedy="0")
    assert p.get_train_num_epochs() == 1 and p.construction_algo == "no_network_modifications"
    p = pretrain_from_config({"repetitions": 3}, net, pretrain_repetitions=[1, 2])
    assert p.repetitions == (3, 3, 3)  # the dict wins over the older pretrain_* keys


def test_pretrain_from_config_errors():
    with pytest.raises(ConfigError, match="unknown option 'repetition'.*did you mean 'repetitions'"):
        pretrain_from_config({"repetition": 2}, mlp(2))
    with pytest.raises(ConfigError, match="unknown value 'greedy'"):
        pretrain_from_config("greedy", mlp(2))
    with pytest.raises(ConfigError, match="'greedy'=True is not supported"):
        pretrain_from_config({"greedy": True}, mlp(2))
    with pytest.raises(ConfigError, match="pretrain_repetitions 'a b'"):
        pretrain_from_config("default", mlp(2), pretrain_repetitions="a b")
