"""Sequence lengths in the data: numpy `"<key>:seq_len"`, lists of variable-length arrays padded per batch,
tf.data batches carrying them, and losses / scores over the real frames only."""

from __future__ import annotations

import numpy as np
import pytest

from transition.errors import ConfigError

EXTERN = {"data": {"dim": 3}, "classes": {"dim": 4, "sparse": True}}
NET = {"fw": {"class": "rec", "unit": "lstm", "n_out": 5, "from": "data"},
       "bw": {"class": "rec", "unit": "lstm", "n_out": 5, "direction": -1, "from": "data"},
       "output": {"class": "softmax", "loss": "ce", "target": "classes", "from": ["fw", "bw"]}}
LENS = [6, 2, 4, 1, 5]


def _sequences(seed=0):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((n, 3)).astype("float32") for n in LENS]
    ys = [rng.integers(0, 4, n).astype("int32") for n in LENS]
    return xs, ys


def test_lists_of_sequences_are_padded_per_batch_with_their_lengths():
    from transition.training._data import check_numpy_data, numpy_batches

    xs, ys = _sequences()
    arrays = check_numpy_data("train", {"data": xs, "classes": ys}, EXTERN)
    batches = list(numpy_batches(arrays, 2, seed=None))
    assert [b["data"].shape for b in batches] == [(2, 6, 3), (2, 4, 3), (1, 5, 3)]  # each to its longest
    assert [b["data:seq_len"].tolist() for b in batches] == [[6, 2], [4, 1], [5]]
    assert batches[0]["classes:seq_len"].tolist() == [6, 2] and batches[0]["classes"].shape == (2, 6)
    np.testing.assert_array_equal(batches[0]["data"][1, :2], xs[1])
    assert not batches[0]["data"][1, 2:].any() and not batches[0]["classes"][1, 2:].any()


def test_padded_arrays_with_lengths_are_cut_to_each_batchs_longest_sequence():
    from transition.training._data import check_numpy_data, numpy_batches

    xs, ys = _sequences()
    x = np.zeros((5, 9, 3), "float32")  # padded to 9 frames, more than any sequence has
    y = np.zeros((5, 9), "int32")
    for i, (a, b) in enumerate(zip(xs, ys)):
        x[i, : len(a)], y[i, : len(b)] = a, b
    arrays = check_numpy_data("train", {"data": x, "data:seq_len": LENS, "classes": y}, EXTERN)
    batches = list(numpy_batches(arrays, 2, seed=None))
    assert [b["data"].shape[1] for b in batches] == [6, 4, 5]
    assert [b["classes"].shape[1] for b in batches] == [6, 4, 5]  # padded like "data": cut with it
    lists = list(numpy_batches(check_numpy_data("train", {"data": xs, "classes": ys}, EXTERN), 2, seed=None))
    for a, b in zip(batches, lists):
        np.testing.assert_array_equal(a["data"], b["data"])
        np.testing.assert_array_equal(a["data:seq_len"], b["data:seq_len"])


@pytest.mark.parametrize("data, match", [
    ({"data": np.zeros((2, 3, 3)), "data:seq_len": [1, 4]}, r"'data:seq_len' has lengths in \[1, 4\].*3 frames"),
    ({"data:seq_len": [1, 2]}, r"has 'data:seq_len' but not 'data'"),
    ({"data": np.zeros((2, 3, 3)), "classes:seq_len": [1, 2]}, r"but not 'classes'"),
    ({"data": np.zeros((2, 3, 3)), "x:seq_len": [1, 2]}, r"no key 'x' with a time axis"),
    ({"data": [np.zeros((1, 3)), np.zeros((2, 3))], "data:seq_len": [1, 2]}, r"either the list or a padded array"),
    ({"data": [np.zeros((1, 3)), np.zeros((2, 4))]}, r"'data' \(sequence 1\) has shape \(1, 2, 4\).*\[N, T, 3\]"),
    ({"data": np.zeros((2, 3, 3)), "data:seq_len": [1.5, 2]}, r"must be ints"),
])
def test_sequence_data_errors_name_the_key(data, match):
    from transition.training._data import check_numpy_data

    with pytest.raises(ConfigError, match=match):
        check_numpy_data("train", data, EXTERN)


def _network():
    from transition.network._network import Network

    return Network.from_dict(NET, EXTERN)


def test_loss_counts_only_the_real_frames():
    """The loss of a padded batch is the frame-weighted mean of each sequence's own loss (computed alone, unpadded),
    and the frame errors likewise."""
    from transition.training._data import check_numpy_data, numpy_batches

    net = _network()
    net.layers["output"].params["b"].assign(np.array([-3.0, 0.0, 0.0, 3.0], "float32"))  # padded targets (0) cost
    xs, ys = _sequences()
    batch = next(numpy_batches(check_numpy_data("t", {"data": xs, "classes": ys}, EXTERN), 5, seed=None))
    term = net.loss_terms(batch, training=False, errors=True)["output"]
    alone = [net.loss_terms({"data": x[None], "classes": y[None]}, training=False, errors=True)["output"]
             for x, y in zip(xs, ys)]
    assert float(term.frames) == sum(LENS)
    assert float(term.loss_sum) == pytest.approx(sum(float(t.loss_sum) for t in alone), rel=1e-5)
    assert float(term.errors) == sum(float(t.errors) for t in alone)
    assert float(net.compute_loss(batch, training=False)) == pytest.approx(float(term.loss_sum) / sum(LENS), rel=1e-6)
    unmasked = float(net.compute_loss({"data": batch["data"], "classes": batch["classes"]}, training=False))
    assert unmasked > float(term.value) + 0.5  # the padded frames would count otherwise


def test_tf_data_batches_carry_the_lengths_and_give_the_same_loss():
    import tensorflow as tf

    from transition.training._data import check_numpy_data, numpy_batches

    net = _network()
    xs, ys = _sequences()
    ds = tf.data.Dataset.from_generator(
        lambda: ({"data": x, "data:seq_len": np.int32(len(x)), "classes": y} for x, y in zip(xs, ys)),
        output_signature={"data": tf.TensorSpec((None, 3), tf.float32), "data:seq_len": tf.TensorSpec((), tf.int32),
                          "classes": tf.TensorSpec((None,), tf.int32)}).padded_batch(5)
    from_tf = next(iter(ds))
    from_numpy = next(numpy_batches(check_numpy_data("t", {"data": xs, "classes": ys}, EXTERN), 5, seed=None))
    assert float(net.compute_loss(from_tf, training=False)) == pytest.approx(
        float(net.compute_loss(from_numpy, training=False)), rel=1e-6)


def test_the_loop_trains_on_variable_length_sequences_and_scores_real_frames(tmp_path):
    from transition.training._loop import train_from_config

    xs, ys = _sequences()
    cfg = {"model": str(tmp_path / "m"), "extern_data": EXTERN, "network": NET, "num_epochs": 1, "batch_size": 2,
           "train": {"data": xs, "classes": ys}, "dev": {"data": xs, "classes": ys}, "log_verbosity": 0}
    mgr = train_from_config(cfg)
    net = mgr.network
    from transition.training._data import check_numpy_data, numpy_batches
    from transition.training._loop import evaluate

    whole = next(numpy_batches(check_numpy_data("d", {"data": xs, "classes": ys}, EXTERN), 5, seed=None))
    term = net.loss_terms(whole, training=False, errors=True)["output"]
    scores = evaluate(net, numpy_batches(check_numpy_data("d", {"data": xs, "classes": ys}, EXTERN), 2, seed=None),
                      EXTERN)
    assert scores["dev_score"] == pytest.approx(float(term.value), rel=1e-5)  # frame-weighted over the batches
    assert scores["dev_error"] == pytest.approx(float(term.errors / term.frames), rel=1e-6)
